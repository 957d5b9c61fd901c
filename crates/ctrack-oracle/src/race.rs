//! Races at confirm, made deterministic: several packets of one flow each get their own
//! **unconfirmed** conntrack (and NAT bindings) before any of them is confirmed, then
//! reach the confirm hook one after the other, in an order we choose.
//!
//! In the kernel this happens when two CPUs handle packets of one new flow at the same
//! time (glibc's parallel A and AAAA queries from one UDP socket; the "Kubernetes DNS
//! race" when a service DNAT picks a different backend for each). Sequential injection
//! never produces it: the second packet finds the first one's confirmed entry. Here each
//! racer is **queued** (NFQUEUE) after its conntrack and NAT hooks and before confirm:
//!
//! ```text
//! prerouting  −200 conntrack (new entry, unconfirmed)   −100 DNAT (the user's ruleset)
//! postrouting +100 SNAT / null binding   +200 QUEUE (table ip ctrack_race)
//!             +500 the oracle's "forwarded" log   INT_MAX confirm
//! ```
//!
//! The queue rule matches `ct state new ct direction original` in a base chain of
//! `table ip ctrack_race` (postrouting, priority 200) and jumps to a chain holding the
//! xtables `NFQUEUE` target (this kernel has no nft `queue` expression; see
//! [`crate::nfqueue::add_xt_queue_rule`]). Replies and other follow-ups are not queued.
//!
//! Sequence of [`run`]:
//! 1. every racer is injected from its side and synchronised with a barrier; the
//!    kernel queues it (its `ct state` is logged at prerouting as usual);
//! 2. the racers get verdicts ([`Verdict`]) in order, each accepted
//!    one completing its traversal, confirm included, inside the verdict call; each is
//!    followed by barriers, and its counter deltas are read;
//! 3. the tables are dumped ([`RaceRun::after_verdicts`]);
//! 4. the follow-ups (replies) are injected like a normal run;
//! 5. the tables are dumped again; then, after [`RaceConfig::linger`], the count is read
//!    **before** anything lists the table (listing deletes expired entries), then the
//!    tables once more.
//!
//! Every packet's **egress** — the frame as it arrived in the peer namespace, after NAT
//! — is captured with an `AF_PACKET` socket on the peer's veth end: it tells a packet
//! that reached postrouting +500 but was then dropped at confirm from one that left.
//!
//! IPv4 only (the queue table is `ip`).

use crate::error::OracleError;
use crate::inject::{self, Injector};
use crate::netns::{self, NetnsSet, Ns};
use crate::nflog::{LogMsg, NflogSocket};
use crate::nfqueue::{CopyMode, Queue, Verdict};
use crate::nft::{self, Mark};
use crate::procstat::StatFile;
use crate::runner::{self, Replay};
use crate::signal::{self, ActiveRun};
use crate::sysctl::{self, GlobalGuard};
use crate::{InjectPacket, KernelPacket, OracleConfig, Side, Stats};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// NFLOG copy range: the IP header and the L4 ports and checksum, after NAT.
const COPY_RANGE: u32 = 128;
/// The queue table's name (family `ip`).
const TABLE: &str = "ctrack_race";
/// The chain holding the NFQUEUE rule.
const QUEUE_CHAIN: &str = "race_q";
/// How long to wait for a racer's queue message after its barrier came back.
const QUEUE_WAIT: Duration = Duration::from_millis(500);

/// What to race.
#[derive(Debug, Clone)]
pub struct RaceConfig {
    /// nft text loaded into the firewall namespace before everything else (NAT rules:
    /// e.g. `dnat to numgen inc mod 2 map { 0 : A, 1 : B }` to give racers different
    /// backends). It may use the interface names of [`OracleConfig::ifnames`]. Must not
    /// define `table ip ctrack_race`, nor log to NFLOG groups 0 and 100.
    pub ruleset: String,
    /// The NFQUEUE number (any; the namespace is private).
    pub queue_num: u16,
    /// The racing packets, IPv4, each creating a new entry in the original direction so
    /// that it is queued. Injected in this order, then accepted in this order.
    pub racers: Vec<InjectPacket>,
    /// Injected after every racer has its verdict (typically replies); not queued.
    pub followups: Vec<InjectPacket>,
    /// After the follow-ups: how long to wait before reading the table once more
    /// ([`RaceRun::lingered`]); zero skips it.
    pub linger: Duration,
    /// Sysctls, interface names, barrier timeout, namespace keeping. Its `ruleset`,
    /// `events`, `max_gap` and `fw_addrs` are not used.
    pub oracle: OracleConfig,
}

/// One packet of a race.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RacePacket {
    /// What the oracle's logs say (seen, `ct state`, direction, reached postrouting
    /// +500) and the counters it changed (for a racer: its injection and its verdict
    /// together).
    pub packet: KernelPacket,
    /// It was queued; the netfilter hook it was queued at (4 = POST_ROUTING).
    pub queued_at_hook: Option<u8>,
    /// The first bytes of the packet as logged at postrouting +500 (after NAT), if it
    /// got there.
    pub postrouting_l3: Vec<u8>,
    /// The packet as it arrived in the peer namespace (from the IP header on), if it
    /// left the firewall: passed confirm and was transmitted.
    pub egress: Option<Vec<u8>>,
}

/// The firewall's conntrack state at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDump {
    /// `conntrack -L` lines.
    pub table: Vec<String>,
    /// `/proc/net/nf_conntrack` lines.
    pub proc_table: Vec<String>,
    /// `/proc/net/stat/nf_conntrack`, summed over CPUs.
    pub stats: Stats,
    /// `conntrack -S`.
    pub stats_text: String,
    /// `conntrack -C`, read after the listings.
    pub count: u64,
    /// When it was read, ns since the first racer was injected.
    pub offset_ns: u64,
}

/// The table after [`RaceConfig::linger`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lingered {
    /// `conntrack -C` before anything listed the table (expired entries not yet
    /// collected still count).
    pub count_before_listing: u64,
    /// The dump that followed (listing deletes expired entries on its way).
    pub dump: TableDump,
}

/// The result of one race.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaceRun {
    /// One per [`RaceConfig::racers`].
    pub racers: Vec<RacePacket>,
    /// Right after the last verdict.
    pub after_verdicts: TableDump,
    /// One per [`RaceConfig::followups`].
    pub followups: Vec<RacePacket>,
    /// After the follow-ups.
    pub after_followups: TableDump,
    /// After the linger time, if any.
    pub lingered: Option<Lingered>,
}

/// The queue table: new original-direction IPv4 packets are queued at postrouting 200.
fn queue_ruleset() -> String {
    format!(
        "table ip {TABLE} {{\n\
         \tchain {QUEUE_CHAIN} {{\n\
         \t}}\n\
         \tchain queue_new {{\n\
         \t\ttype filter hook postrouting priority 200; policy accept;\n\
         \t\tct state new ct direction original jump {QUEUE_CHAIN}\n\
         \t}}\n\
         }}\n"
    )
}

/// Runs a race through the live kernel. Needs root (see [`crate::available`]).
pub fn run(cfg: &RaceConfig) -> Result<RaceRun, OracleError> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(OracleError::NotRoot(euid));
    }
    for p in &cfg.racers {
        if p.l3.first().map(|b| b >> 4) != Some(4) {
            return Err(OracleError::Packet {
                index: p.index,
                reason: "racers must be IPv4 (the queue table is `ip`)".to_owned(),
            });
        }
    }
    for p in cfg.racers.iter().chain(&cfg.followups) {
        if p.l3.len() > cfg.oracle.mtu as usize {
            return Err(OracleError::Packet {
                index: p.index,
                reason: format!("{} bytes do not fit the veth MTU", p.l3.len()),
            });
        }
    }
    crate::cleanup_stale();
    let _signals =
        ActiveRun::enter().map_err(|e| OracleError::io("installing signal handlers", e))?;
    let result = guarded(cfg);
    match (result, signal::pending()) {
        (Err(_), Some(sig)) => Err(OracleError::Interrupted(sig)),
        (result, _) => result,
    }
}

fn nft_text(fw: &std::fs::File, text: &str, what: &str) -> Result<(), OracleError> {
    let mut cmd = netns::command_in(fw, "nft");
    cmd.args(["-f", "-"]);
    netns::run_command(cmd, Some(text)).map_err(|e| match e {
        OracleError::Command { stderr, .. } => OracleError::Nft {
            what: what.to_owned(),
            stderr,
        },
        other => other,
    })?;
    Ok(())
}

fn guarded(cfg: &RaceConfig) -> Result<RaceRun, OracleError> {
    let oc = &cfg.oracle;
    let _globals = GlobalGuard::acquire(&oc.global_sysctls)?;
    runner::interrupted()?;
    let ns = NetnsSet::create(&oc.ifnames, oc.mtu, oc.keep_netns)?;
    let fw = ns.file(Ns::Fw);
    sysctl::set_in(
        fw,
        &[
            ("net.netfilter.nf_log.2", "nfnetlink_log"),
            ("net.netfilter.nf_log.10", "nfnetlink_log"),
            ("net.netfilter.nf_conntrack_log_invalid", "255"),
        ],
    )?;
    sysctl::set_user_in(fw, &oc.sysctls)?;
    nft_text(fw, &cfg.ruleset, "the race ruleset")?;
    nft::load(fw, &oc.ifnames, None)?;
    nft_text(fw, &queue_ruleset(), "the race's queue table")?;
    let num = cfg.queue_num;
    let (mut nflog, mut stat, mut queue) = netns::in_netns(fw, || {
        let nflog = NflogSocket::open_here(&[nft::GROUP, nft::KERNEL_GROUP], COPY_RANGE)?;
        let stat = StatFile::open_here()
            .map_err(|e| OracleError::io("opening /proc/net/stat/nf_conntrack", e))?;
        let queue = Queue::open(num, CopyMode::Packet(COPY_RANGE))
            .map_err(|e| OracleError::io(format!("binding NFQUEUE {num}"), e))?;
        crate::nfqueue::add_xt_queue_rule(libc::NFPROTO_IPV4 as u8, TABLE, QUEUE_CHAIN, num)
            .map_err(|e| OracleError::io("adding the NFQUEUE rule", e))?;
        Ok::<_, OracleError>((nflog, stat, queue))
    })
    .map_err(|e| OracleError::io("entering the firewall namespace", e))??;
    let sniff = |which: Ns| {
        netns::in_netns(ns.file(which), || Sniffer::open_here(netns::PEER_IF))
            .and_then(|r| r)
            .map_err(|e| OracleError::io(format!("AF_PACKET capture in {}", ns.name(which)), e))
    };
    ns.start(&oc.ifnames, &[])?;
    let mut sniffers = [sniff(Ns::Client)?, sniff(Ns::Server)?];
    let nonce = runner::nonce();
    let mut inj = Injector::open(&ns, nonce)?;
    runner::interrupted()?;

    let mut replay = Replay {
        inj: &mut inj,
        nflog: &mut nflog,
        stat: &mut stat,
        nonce,
        cfg: oc,
    };
    let mut race = Race {
        replay: &mut replay,
        queue: &mut queue,
        sniffers: &mut sniffers,
        seq: 0,
        t0: Instant::now(),
    };
    std::thread::scope(|s| s.spawn(|| race.all(cfg, &ns)).join())
        .map_err(|_| OracleError::Netns("the injecting thread panicked".to_owned()))?
}

struct Race<'a, 'b> {
    replay: &'a mut Replay<'b>,
    queue: &'a mut Queue,
    sniffers: &'a mut [Sniffer; 2],
    seq: u64,
    t0: Instant,
}

impl Race<'_, '_> {
    fn offset(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }

    /// Two barriers from `side`: the first returns the logs; once the second is back,
    /// frames the firewall transmitted before it have reached the peer namespace.
    fn settle(&mut self, side: Side, index: u64) -> Result<Vec<LogMsg>, OracleError> {
        self.seq += 1;
        let logs = self.replay.sync(side, self.seq, index)?;
        self.seq += 1;
        let late = self.replay.sync(side, self.seq, index)?;
        Ok(logs.into_iter().chain(late).collect())
    }

    /// Frames that reached the peers since the last call (IP packets only).
    fn egress(&mut self) -> Result<Vec<Vec<u8>>, OracleError> {
        let mut out = Vec::new();
        for s in self.sniffers.iter_mut() {
            s.drain(&mut out)
                .map_err(|e| OracleError::io("reading the egress capture", e))?;
        }
        Ok(out)
    }

    fn counters(
        &mut self,
        prev: &mut crate::procstat::Snapshot,
    ) -> Result<BTreeMap<String, u64>, OracleError> {
        let cur = self.replay.stat.read().map_err(runner::stat_err)?;
        let d = cur.delta(prev);
        *prev = cur;
        Ok(d)
    }

    fn all(&mut self, cfg: &RaceConfig, ns: &NetnsSet) -> Result<RaceRun, OracleError> {
        inject::pin_to_current_cpu().map_err(|e| OracleError::io("pinning to one CPU", e))?;
        let mut prev = self.replay.stat.read().map_err(runner::stat_err)?;
        self.egress()?;
        self.t0 = Instant::now();

        // 1. Every racer up to the queue.
        let mut racers = Vec::new();
        let mut ids = Vec::new();
        for p in &cfg.racers {
            let offset = self.offset();
            self.send(p)?;
            let logs = self.settle(p.side, p.index)?;
            let queued = self
                .queue
                .recv(QUEUE_WAIT)
                .map_err(|e| OracleError::io("receiving from NFQUEUE", e))?;
            ids.push(queued.as_ref().map(|q| q.id));
            let counters = self.counters(&mut prev)?;
            let egress = self.egress()?.pop();
            racers.push((
                p.index,
                offset,
                logs,
                counters,
                queued.map(|q| q.hook),
                egress,
            ));
        }
        // 2. Verdicts, in order.
        let mut out = Vec::new();
        for ((index, offset, mut logs, mut counters, hook, mut egress), (p, id)) in
            racers.into_iter().zip(cfg.racers.iter().zip(ids))
        {
            if let Some(id) = id {
                self.queue
                    .verdict(id, Verdict::Accept)
                    .map_err(|e| OracleError::io(format!("verdict for packet {index}"), e))?;
                logs.extend(self.settle(p.side, index)?);
                for (k, v) in self.counters(&mut prev)? {
                    *counters.entry(k).or_default() += v;
                }
                egress = egress.or(self.egress()?.pop());
            }
            out.push(race_packet(index, offset, &logs, counters, hook, egress));
        }
        let after_verdicts = self.dump(ns)?;
        let _ = self.counters(&mut prev)?;

        // 3. Follow-ups.
        let mut followups = Vec::new();
        for p in &cfg.followups {
            let offset = self.offset();
            self.send(p)?;
            let logs = self.settle(p.side, p.index)?;
            let counters = self.counters(&mut prev)?;
            let egress = self.egress()?.pop();
            followups.push(race_packet(p.index, offset, &logs, counters, None, egress));
        }
        let after_followups = self.dump(ns)?;

        // 4. Linger: the count first, then the listings.
        let lingered = if cfg.linger.is_zero() {
            None
        } else {
            let until = Instant::now() + cfg.linger;
            while Instant::now() < until {
                runner::interrupted()?;
                std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
            }
            let count_before_listing = count(ns)?;
            Some(Lingered {
                count_before_listing,
                dump: self.dump(ns)?,
            })
        };
        Ok(RaceRun {
            racers: out,
            after_verdicts,
            followups,
            after_followups,
            lingered,
        })
    }

    fn send(&mut self, p: &InjectPacket) -> Result<(), OracleError> {
        self.replay
            .inj
            .send_packet(p.side, &p.l3)
            .map_err(|e| OracleError::Packet {
                index: p.index,
                reason: format!("injecting {} bytes: {e}", p.l3.len()),
            })
    }

    fn dump(&mut self, ns: &NetnsSet) -> Result<TableDump, OracleError> {
        let offset_ns = self.offset();
        let k = runner::dump(ns, self.replay.stat, Vec::new(), self.t0)?;
        Ok(TableDump {
            table: k.table,
            proc_table: k.proc_table,
            stats: k.stats,
            stats_text: k.stats_text,
            count: k.count,
            offset_ns,
        })
    }
}

fn count(ns: &NetnsSet) -> Result<u64, OracleError> {
    let text = runner::conntrack(ns, &["-C"])?;
    text.trim().parse().map_err(|e| OracleError::Command {
        command: "conntrack -C".to_owned(),
        status: format!("unexpected output {text:?}: {e}"),
        stderr: String::new(),
    })
}

fn race_packet(
    index: u64,
    offset: u64,
    logs: &[LogMsg],
    counters: BTreeMap<String, u64>,
    queued_at_hook: Option<u8>,
    egress: Option<Vec<u8>>,
) -> RacePacket {
    let mut packet = runner::assemble(index, offset, logs);
    packet.counters = counters;
    let postrouting_l3 = logs
        .iter()
        .find(|l| l.group == nft::GROUP && nft::classify(&l.prefix) == Some(Mark::Forwarded))
        .map(|l| l.payload.clone())
        .unwrap_or_default();
    RacePacket {
        packet,
        queued_at_hook,
        postrouting_l3,
        egress,
    }
}

/// A receive-only `AF_PACKET` socket on a peer's veth end: what the firewall transmits.
struct Sniffer {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl Sniffer {
    /// Opens the capture on `ifname`; call inside the namespace.
    fn open_here(ifname: &str) -> io::Result<Sniffer> {
        let name = CString::new(ifname).map_err(io::Error::other)?;
        // SAFETY: `name` is a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(proto),
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll and its size is passed.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Sniffer {
            fd,
            buf: vec![0; 65536],
        })
    }

    /// Appends every received IPv4/IPv6 frame's L3 part to `out` (frames this namespace
    /// sent itself, the injections, are skipped).
    fn drain(&mut self, out: &mut Vec<Vec<u8>>) -> io::Result<()> {
        loop {
            // SAFETY: all-zero is a valid sockaddr_ll.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: the buffer and `from` are valid for their lengths during the call.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    libc::MSG_DONTWAIT,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.raw_os_error() {
                    Some(libc::EAGAIN) => Ok(()),
                    // EINTR, or a pending error from a link state change: read on.
                    Some(libc::EINTR | libc::ENETDOWN) => continue,
                    _ => Err(e),
                };
            }
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            let frame = &self.buf[..n as usize];
            if let Some(l3) = ip_of_frame(frame) {
                out.push(l3.to_vec());
            }
        }
    }
}

/// The IP packet of an Ethernet frame, trimmed to its IP length; `None` for other
/// ethertypes or a malformed header.
fn ip_of_frame(frame: &[u8]) -> Option<&[u8]> {
    let ty = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let l3 = frame.get(14..)?;
    let len = match ty {
        0x0800 => usize::from(u16::from_be_bytes([*l3.get(2)?, *l3.get(3)?])),
        0x86dd => 40 + usize::from(u16::from_be_bytes([*l3.get(4)?, *l3.get(5)?])),
        _ => return None,
    };
    l3.get(..len.min(l3.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_to_ip() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        f.extend_from_slice(&[0x45, 0, 0, 20]);
        f.extend_from_slice(&[0; 16]);
        f.extend_from_slice(&[0xee; 6]); // Ethernet padding
        assert_eq!(ip_of_frame(&f).map(<[u8]>::len), Some(20));
        f[12] = 0x88;
        assert_eq!(ip_of_frame(&f), None, "not IP");
        assert_eq!(ip_of_frame(&f[..13]), None);
        let mut v6 = vec![0u8; 12];
        v6.extend_from_slice(&0x86ddu16.to_be_bytes());
        v6.extend_from_slice(&[0x60, 0, 0, 0, 0, 8, 17, 64]);
        v6.extend_from_slice(&[0; 40]);
        assert_eq!(ip_of_frame(&v6).map(<[u8]>::len), Some(48));
        assert_eq!(ip_of_frame(&v6[..17]), None);
    }

    #[test]
    fn queue_table_text() {
        let t = queue_ruleset();
        assert!(t.contains("table ip ctrack_race"));
        assert!(t.contains("hook postrouting priority 200"));
        assert!(t.contains("ct state new ct direction original jump race_q"));
    }
}
