//! `-o save`: each flow as the `conntrack` command line that would re-create it
//! (conntrack-tools' `ct_save_snprintf`).

use super::flow::{Flow, MsgType, TCP_STATES};
use super::text::addr_str;
use ctrack_core::tuple::proto;
use std::fmt::Write;

/// conntrack-tools' own SCTP state table for `--state`: it stops at SHUTDOWN_ACK_SENT,
/// so HEARTBEAT_SENT prints as `(null)`.
const SAVE_SCTP_STATES: [&str; 8] = [
    "NONE",
    "CLOSED",
    "COOKIE_WAIT",
    "COOKIE_ECHOED",
    "ESTABLISHED",
    "SHUTDOWN_SENT",
    "SHUTDOWN_RECD",
    "SHUTDOWN_ACK_SENT",
];

/// The status bits `-u` names in save output (bit order).
const SAVE_STATUS: [(u32, &str); 4] = [
    (1 << 0, "EXPECTED"),
    (1 << 1, "SEEN_REPLY"),
    (1 << 2, "ASSURED"),
    (1 << 10, "FIXED_TIMEOUT"),
];

/// One `-o save` line.
pub fn save_line(f: &Flow) -> String {
    let mut o = String::with_capacity(200);
    match f.msg {
        MsgType::Dump | MsgType::New => o.push_str("-A "),
        MsgType::Update => o.push_str("-U "),
        MsgType::Destroy => o.push_str("-D "),
    }
    if let Some(t) = f.timeout {
        let _ = write!(o, "-t {t} ");
    }
    if let Some(s) = f.status {
        o.push_str("-u ");
        let names: Vec<&str> = SAVE_STATUS
            .iter()
            .filter(|(b, _)| s & b != 0)
            .map(|(_, n)| *n)
            .collect();
        if names.is_empty() {
            o.push_str("UNSET ");
        } else {
            o.push_str(&names.join(","));
            o.push(' ');
        }
    }
    if let Some(z) = f.zone {
        let _ = write!(o, "-w {z} ");
    }
    if let Some(z) = f.orig_zone {
        let _ = write!(o, "--orig-zone {z} ");
    }
    if let Some(z) = f.reply_zone {
        let _ = write!(o, "--reply-zone {z} ");
    }
    let _ = write!(
        o,
        "-s {} -d {} ",
        addr_str(&f.orig, true),
        addr_str(&f.orig, false)
    );
    let _ = write!(
        o,
        "{} {} ",
        if f.is_dnat() { "-g" } else { "-r" },
        addr_str(&f.reply, true)
    );
    let _ = write!(
        o,
        "{} {} ",
        if f.is_snat() { "-n" } else { "-q" },
        addr_str(&f.reply, false)
    );
    let p = f.proto();
    let name = match p {
        proto::TCP => Some("tcp"),
        proto::UDP => Some("udp"),
        proto::UDPLITE => Some("udplite"),
        proto::SCTP => Some("sctp"),
        proto::DCCP => Some("dccp"),
        proto::ICMP => Some("icmp"),
        proto::ICMPV6 => Some("icmpv6"),
        proto::GRE => Some("gre"),
        _ => None,
    };
    match name {
        None => {
            let _ = write!(o, "-p {p} ");
        }
        Some(n) => {
            let _ = write!(o, "-p {n} ");
            if f.has_ports() {
                let (s, d, rs, rd) = if p == proto::GRE {
                    ("--srckey", "--dstkey", "--reply-key-src", "--reply-key-dst")
                } else {
                    ("--sport", "--dport", "--reply-port-src", "--reply-port-dst")
                };
                let _ = write!(
                    o,
                    "{s} {} {d} {} {rs} {} {rd} {} ",
                    f.orig.src_u, f.orig.dst_u, f.reply.src_u, f.reply.dst_u
                );
            }
            if f.has_icmp() {
                let w = if p == proto::ICMP { "icmp" } else { "icmpv6" };
                let _ = write!(
                    o,
                    "--{w}-type {} --{w}-code {} --{w}-id {} ",
                    f.orig.icmp_type(),
                    f.orig.icmp_code(),
                    f.orig.src_u
                );
            }
            if let Some(s) = f.tcp_state {
                let _ = write!(
                    o,
                    "--state {} ",
                    TCP_STATES.get(usize::from(s)).unwrap_or(&"(null)")
                );
            }
            if let Some(s) = f.sctp_state {
                let _ = write!(
                    o,
                    "--state {} ",
                    SAVE_SCTP_STATES.get(usize::from(s)).unwrap_or(&"(null)")
                );
                if let Some((a, b)) = f.sctp_vtags {
                    let _ = write!(
                        o,
                        "--orig-vtag {} --reply-vtag {} ",
                        a.swap_bytes(),
                        b.swap_bytes()
                    );
                }
            }
        }
    }
    o.truncate(o.trim_end_matches(' ').len());
    o
}
