//! `-o xml`: libnetfilter_conntrack's XML printer (one `<flow>` per line, inside
//! `<conntrack>` with the XML declaration before the first one).

use super::flow::{proto_str, Flow, MsgType, TCP_STATES};
use super::text::{addr_str, civil_from_days};
use super::Labels;
use ctrack_core::tuple::{proto, Dir, Family, Tuple};
use std::fmt::Write;

/// The lines before the first flow.
pub const HEADER: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<conntrack>";
/// The line after the last flow (only when a header was printed).
pub const FOOTER: &str = "</conntrack>";

fn tuple_xml(o: &mut String, f: &Flow, dir: Dir) {
    let (t, zone): (&Tuple, Option<u16>) = match dir {
        Dir::Original => (&f.orig, f.orig_zone),
        Dir::Reply => (&f.reply, f.reply_zone),
    };
    let fam = t.family;
    let _ = write!(
        o,
        "<meta direction=\"{}\"><layer3 protonum=\"{}\" protoname=\"{}\"><src>{}</src><dst>{}</dst></layer3>",
        dir.name(),
        fam.number(),
        match fam {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        },
        addr_str(t, true),
        addr_str(t, false)
    );
    let _ = write!(
        o,
        "<layer4 protonum=\"{}\" protoname=\"{}\">",
        t.proto,
        proto_str(t.proto)
    );
    match t.proto {
        proto::TCP | proto::UDP | proto::UDPLITE | proto::SCTP | proto::DCCP => {
            let _ = write!(o, "<sport>{}</sport><dport>{}</dport>", t.src_u, t.dst_u);
        }
        proto::GRE => {
            let _ = write!(
                o,
                "<srckey>0x{:x}</srckey><dstkey>0x{:x}</dstkey>",
                t.src_u, t.dst_u
            );
        }
        _ => {}
    }
    o.push_str("</layer4>");
    if let Some(z) = zone {
        let _ = write!(o, "<zone>{z}</zone>");
    }
    if let Some(c) = f.counters {
        let c = c[dir.index()];
        let _ = write!(
            o,
            "<counters><packets>{}</packets><bytes>{}</bytes></counters>",
            c.packets, c.bytes
        );
    }
    o.push_str("</meta>");
}

/// One `<flow>` element. `ktimestamp` adds `<timestamp>`, `when` adds `<when>` (events
/// with `-o timestamp`; the flow's time, in UTC).
pub fn flow_xml(f: &Flow, ktimestamp: bool, when: bool, labels: Option<&Labels>) -> String {
    let mut o = String::with_capacity(600);
    o.push_str(match f.msg {
        MsgType::Dump => "<flow>",
        MsgType::New => "<flow type=\"new\">",
        MsgType::Update => "<flow type=\"update\">",
        MsgType::Destroy => "<flow type=\"destroy\">",
    });
    tuple_xml(&mut o, f, Dir::Original);
    tuple_xml(&mut o, f, Dir::Reply);
    let independent = f.tcp_state.is_some()
        || f.sctp_state.is_some()
        || f.timeout.is_some()
        || f.mark.is_some()
        || f.zone.is_some()
        || f.use_count.is_some()
        || f.status.is_some()
        || f.id.is_some()
        || f.labels.is_some()
        || f.ts_start.is_some()
        || f.ts_stop.is_some();
    if independent {
        o.push_str("<meta direction=\"independent\">");
    }
    // The XML printer uses the TCP names for every protocol's state number.
    for s in [f.tcp_state, f.sctp_state].into_iter().flatten() {
        let _ = write!(
            o,
            "<state>{}</state>",
            TCP_STATES.get(usize::from(s)).unwrap_or(&"NONE")
        );
    }
    if let Some(t) = f.timeout {
        let _ = write!(o, "<timeout>{t}</timeout>");
    }
    if let Some(m) = f.mark {
        let _ = write!(o, "<mark>{m}</mark>");
    }
    if let (Some(map), Some(bits)) = (labels, f.labels) {
        o.push_str("<labels>");
        for n in map.names_of(bits) {
            let _ = write!(o, "<label>{n}</label>");
        }
        o.push_str("</labels>");
    }
    if let Some(z) = f.zone {
        let _ = write!(o, "<zone>{z}</zone>");
    }
    if let Some(u) = f.use_count {
        let _ = write!(o, "<use>{u}</use>");
    }
    if let Some(id) = f.id {
        let _ = write!(o, "<id>{id}</id>");
    }
    if let Some(s) = f.status {
        if s & super::flow::status_bits::ASSURED != 0 {
            o.push_str("<assured/>");
        }
        if s & super::flow::status_bits::SEEN_REPLY == 0 {
            o.push_str("<unreplied/>");
        }
    }
    if ktimestamp && (f.ts_start.is_some() || f.ts_stop.is_some()) {
        o.push_str("<timestamp>");
        if let Some(s) = f.ts_start {
            let _ = write!(o, "<start>{s}</start>");
        }
        if let Some(s) = f.ts_stop {
            let _ = write!(o, "<stop>{s}</stop>");
        }
        o.push_str("</timestamp>");
    }
    match (f.ts_start, f.ts_stop) {
        (Some(a), Some(b)) => {
            let _ = write!(
                o,
                "<deltatime>{}</deltatime>",
                b.saturating_sub(a) / 1_000_000_000
            );
        }
        (Some(a), None) => {
            let _ = write!(
                o,
                "<deltatime>{}</deltatime>",
                (f.now_ns / 1_000_000_000).saturating_sub(a / 1_000_000_000)
            );
        }
        _ => {}
    }
    if independent {
        o.push_str("</meta>");
    }
    if when {
        let secs = f.now_ns / 1_000_000_000;
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        let _ = write!(
            o,
            "<when><hour>{}</hour><min>{:02}</min><sec>{:02}</sec><wday>{}</wday><day>{}</day><month>{}</month><year>{}</year></when>",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60,
            (days + 4) % 7 + 1,
            d,
            m,
            y
        );
    }
    if let Some(h) = &f.helper {
        let _ = write!(o, "<helper>{h}</helper>");
    }
    o.push_str("</flow>");
    o
}
