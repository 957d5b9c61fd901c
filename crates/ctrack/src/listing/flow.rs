//! A conntrack entry as `conntrack(8)` receives it over ctnetlink: the tuples plus the
//! attributes the kernel put in that message. Dumps (`-L`) and events (`-E`) carry
//! different attributes (kernel-semantics.md §14.2, §14.3), and both the filters and the
//! printers of conntrack-tools look at "is this attribute present", so the listing code
//! works on this view rather than on [`Entry`] directly.

use ctrack_core::conntrack::Conntrack;
use ctrack_core::entry::{Counter, Entry};
use ctrack_core::event::{bits, Event, EventKind};
use ctrack_core::proto::ProtoState;
use ctrack_core::tuple::{proto, Dir, Family, Tuple};
use ctrack_core::Instant;

/// Kernel status bit numbers beyond those `ctrack_core::status::Status` names.
pub mod status_bits {
    /// `IPS_EXPECTED`.
    pub const EXPECTED: u32 = 1 << 0;
    /// `IPS_SEEN_REPLY`.
    pub const SEEN_REPLY: u32 = 1 << 1;
    /// `IPS_ASSURED`.
    pub const ASSURED: u32 = 1 << 2;
    /// `IPS_SRC_NAT_DONE`.
    pub const SRC_NAT_DONE: u32 = 1 << 7;
    /// `IPS_DST_NAT_DONE`.
    pub const DST_NAT_DONE: u32 = 1 << 8;
    /// `IPS_FIXED_TIMEOUT`.
    pub const FIXED_TIMEOUT: u32 = 1 << 10;
    /// `IPS_OFFLOAD`.
    pub const OFFLOAD: u32 = 1 << 14;
    /// `IPS_HW_OFFLOAD`.
    pub const HW_OFFLOAD: u32 = 1 << 15;
}

/// The message a flow came in (libnetfilter_conntrack's `NFCT_T_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgType {
    /// A dump (`-L`): no `[KIND]` prefix.
    Dump,
    /// `[NEW]`.
    New,
    /// `[UPDATE]`.
    Update,
    /// `[DESTROY]`.
    Destroy,
}

/// One flow with the ctnetlink attributes its message carried (`None` = absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// Message type.
    pub msg: MsgType,
    /// Original tuple (also gives the L3 family and L4 protocol).
    pub orig: Tuple,
    /// Reply tuple.
    pub reply: Tuple,
    /// `CTA_TIMEOUT` (seconds).
    pub timeout: Option<u32>,
    /// `CTA_PROTOINFO_TCP_STATE` (kernel number).
    pub tcp_state: Option<u8>,
    /// `CTA_PROTOINFO_SCTP_STATE` (kernel number).
    pub sctp_state: Option<u8>,
    /// SCTP verification tags (original, reply), sent with the SCTP state.
    pub sctp_vtags: Option<(u32, u32)>,
    /// `CTA_STATUS` (kernel bits).
    pub status: Option<u32>,
    /// `CTA_MARK`.
    pub mark: Option<u32>,
    /// `CTA_ZONE` (bidirectional zone, only when non-zero).
    pub zone: Option<u16>,
    /// `CTA_TUPLE_ZONE` of the original tuple (orig-only zone).
    pub orig_zone: Option<u16>,
    /// `CTA_TUPLE_ZONE` of the reply tuple (reply-only zone).
    pub reply_zone: Option<u16>,
    /// `CTA_COUNTERS_ORIG` / `_REPLY`.
    pub counters: Option<[Counter; 2]>,
    /// `CTA_TIMESTAMP_START` (ns since the epoch).
    pub ts_start: Option<u64>,
    /// `CTA_TIMESTAMP_STOP` (ns since the epoch).
    pub ts_stop: Option<u64>,
    /// `CTA_USE`.
    pub use_count: Option<u32>,
    /// `CTA_ID`.
    pub id: Option<u64>,
    /// `CTA_LABELS` (128 bits).
    pub labels: Option<u128>,
    /// `CTA_HELP` name.
    pub helper: Option<String>,
    /// The time the flow is looked at (`time(NULL)` in the printers' delta-time).
    pub now_ns: u64,
}

impl Flow {
    /// A flow with only the tuples set (everything else absent), as a dump of `now`.
    pub fn new(orig: Tuple, reply: Tuple, now_ns: u64) -> Flow {
        Flow {
            msg: MsgType::Dump,
            orig,
            reply,
            timeout: None,
            tcp_state: None,
            sctp_state: None,
            sctp_vtags: None,
            status: None,
            mark: None,
            zone: None,
            orig_zone: None,
            reply_zone: None,
            counters: None,
            ts_start: None,
            ts_stop: None,
            use_count: None,
            id: None,
            labels: None,
            helper: None,
            now_ns,
        }
    }

    /// An entry as `conntrack -L` receives it at `now` (ctnetlink dump: timeout, status,
    /// mark, use and id always; protoinfo always; zone when non-zero; counters and
    /// timestamps when the extensions exist).
    pub fn from_entry(e: &Entry, now: Instant) -> Flow {
        let mut f = Flow::new(e.tuple(Dir::Original), e.tuple(Dir::Reply), now.as_nanos());
        f.timeout = Some(u32::try_from(e.display_timeout(now)).unwrap_or(u32::MAX));
        f.set_protoinfo(e);
        f.status = Some(u32::from(e.status.0));
        f.mark = Some(e.mark);
        f.set_zone(e);
        f.set_extensions(e);
        f.labels = Some(e.labels()).filter(|l| *l != 0);
        f.helper = Conntrack::helper_of(e).map(|h| h.name().to_string());
        f.use_count = Some(Conntrack::use_count(e));
        f.id = Some(u64::from(e.seq));
        f
    }

    /// An event as `conntrack -E` receives it: the same attributes core's
    /// `format::event_body` prints (timeout just set, or the remaining one on DESTROY when
    /// non-zero; protoinfo only on DESTROY or when the state changed; mark when non-zero
    /// or on a MARK event; no use count).
    pub fn from_event(ev: &Event) -> Flow {
        let e = &ev.entry;
        let now = ev.time;
        let mut f = Flow::new(e.tuple(Dir::Original), e.tuple(Dir::Reply), now.as_nanos());
        let destroy = ev.kind == EventKind::Destroy;
        f.msg = match ev.kind {
            EventKind::New => MsgType::New,
            EventKind::Update => MsgType::Update,
            EventKind::Destroy => MsgType::Destroy,
        };
        f.timeout = if destroy {
            let t = e.display_timeout(now);
            (t != 0).then(|| u32::try_from(t).unwrap_or(u32::MAX))
        } else {
            Some(u32::try_from(e.remaining(now).as_secs()).unwrap_or(u32::MAX))
        };
        if destroy || ev.mask & bits::PROTOINFO != 0 {
            f.set_protoinfo(e);
        }
        f.status = Some(u32::from(e.status.0));
        f.mark = (e.mark != 0 || ev.mask & bits::MARK != 0).then_some(e.mark);
        f.set_zone(e);
        f.set_extensions(e);
        // ctnetlink sends the labels with an event only when they changed (IPCT_LABEL),
        // and then only when some are set.
        if !destroy && ev.mask & bits::LABEL != 0 {
            f.labels = Some(e.labels()).filter(|l| *l != 0);
        }
        if !destroy {
            // Timestamps travel with DESTROY only; event_body prints delta-time only then.
            f.ts_start = None;
            f.ts_stop = None;
            // ctnetlink sends the helper with NEW and UPDATE events.
            f.helper = Conntrack::helper_of(e).map(|h| h.name().to_string());
        }
        f.id = Some(u64::from(e.seq));
        f
    }

    /// `ctnetlink_dump_zone_id`: the zone goes in the attribute of its direction mask
    /// (`CTA_TUPLE_ZONE` of the original or reply tuple, or `CTA_ZONE` for both), and
    /// never when its id is 0.
    fn set_zone(&mut self, e: &Entry) {
        let id = Some(e.zone.id).filter(|z| *z != 0);
        match e.zone.one_direction() {
            Some(Dir::Original) => self.orig_zone = id,
            Some(Dir::Reply) => self.reply_zone = id,
            None => self.zone = id,
        }
    }

    fn set_protoinfo(&mut self, e: &Entry) {
        match &e.proto {
            ProtoState::Tcp(t) => self.tcp_state = Some(t.state().number()),
            ProtoState::Sctp(s) => {
                self.sctp_state = Some(s.state().number());
                self.sctp_vtags = Some((s.vtag(Dir::Original), s.vtag(Dir::Reply)));
            }
            _ => {}
        }
    }

    fn set_extensions(&mut self, e: &Entry) {
        if let Some(x) = e.ext.as_ref() {
            self.counters = x.acct;
            if let Some((start, stop)) = x.tstamp {
                self.ts_start = Some(start.as_nanos());
                self.ts_stop = stop.map(Instant::as_nanos);
            }
        }
    }

    /// The L3 family.
    pub fn family(&self) -> Family {
        self.orig.family
    }

    /// The L4 protocol number.
    pub fn proto(&self) -> u8 {
        self.orig.proto
    }

    /// Whether the kernel sends port attributes (`CTA_PROTO_SRC_PORT`...) for this
    /// protocol: TCP, UDP, UDP-Lite, SCTP and GRE (keys). DCCP is tracked as generic on
    /// the target kernel, so it has none.
    pub fn has_ports(&self) -> bool {
        matches!(
            self.proto(),
            proto::TCP | proto::UDP | proto::UDPLITE | proto::SCTP | proto::GRE
        )
    }

    /// Whether the flow carries ICMP type/code/id attributes.
    pub fn has_icmp(&self) -> bool {
        matches!(self.proto(), proto::ICMP | proto::ICMPV6)
    }

    fn status_or_done(&self, bit: u32) -> bool {
        self.status.is_none_or(|s| s & bit != 0)
    }

    /// libnetfilter_conntrack's `NFCT_GOPT_IS_SNAT`.
    pub fn is_snat(&self) -> bool {
        self.status_or_done(status_bits::SRC_NAT_DONE) && self.reply.dst != self.orig.src
    }

    /// `NFCT_GOPT_IS_DNAT`.
    pub fn is_dnat(&self) -> bool {
        self.status_or_done(status_bits::DST_NAT_DONE) && self.reply.src != self.orig.dst
    }

    /// `NFCT_GOPT_IS_SPAT`.
    pub fn is_spat(&self) -> bool {
        self.status_or_done(status_bits::SRC_NAT_DONE) && self.reply.dst_u != self.orig.src_u
    }

    /// `NFCT_GOPT_IS_DPAT`.
    pub fn is_dpat(&self) -> bool {
        self.status_or_done(status_bits::DST_NAT_DONE) && self.reply.src_u != self.orig.dst_u
    }
}

/// libnetfilter_conntrack's protocol names (`proto2str`).
pub fn proto_str(p: u8) -> &'static str {
    match p {
        proto::TCP => "tcp",
        proto::UDP => "udp",
        proto::UDPLITE => "udplite",
        proto::ICMP => "icmp",
        proto::ICMPV6 => "icmpv6",
        proto::SCTP => "sctp",
        proto::GRE => "gre",
        proto::DCCP => "dccp",
        _ => "unknown",
    }
}

/// libnetfilter_conntrack's TCP state names (`states[]`), by kernel number; also used by
/// its XML printer for SCTP numbers.
pub const TCP_STATES: [&str; 10] = [
    "NONE",
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "FIN_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "TIME_WAIT",
    "CLOSE",
    "SYN_SENT2",
];

/// libnetfilter_conntrack's SCTP state names (`sctp_states[]`).
pub const SCTP_STATES: [&str; 10] = [
    "NONE",
    "CLOSED",
    "COOKIE_WAIT",
    "COOKIE_ECHOED",
    "ESTABLISHED",
    "SHUTDOWN_SENT",
    "SHUTDOWN_RECD",
    "SHUTDOWN_ACK_SENT",
    "HEARTBEAT_SENT",
    "HEARTBEAT_ACKED",
];
