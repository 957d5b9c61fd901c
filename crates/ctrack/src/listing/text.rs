//! The default `conntrack -L` / `-E` text (libnetfilter_conntrack's default printer),
//! with the `-o extended`, `id`, `ktimestamp` and `labels` flags.

use super::flow::{proto_str, Flow, MsgType, SCTP_STATES, TCP_STATES};
use super::Labels;
use ctrack_core::format::ipv6_compressed;
use ctrack_core::tuple::{proto, Family, Tuple};
use std::fmt::Write;

/// Printer flags (`NFCT_OF_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextFlags {
    /// `-o extended` (`NFCT_OF_SHOW_LAYER3`).
    pub extended: bool,
    /// `-o id` (`NFCT_OF_ID`).
    pub id: bool,
    /// `-o ktimestamp` (`NFCT_OF_TIMESTAMP`).
    pub ktimestamp: bool,
}

/// An address as `inet_ntoa` / `inet_ntop` prints it.
pub fn addr_str(t: &Tuple, src: bool) -> String {
    let a = if src { &t.src } else { &t.dst };
    match t.family {
        Family::V4 => {
            let o = a.v4_octets();
            format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])
        }
        Family::V6 => ipv6_compressed(&a.0),
    }
}

fn tuple_text(out: &mut String, t: &Tuple) {
    let _ = write!(out, "src={} dst={} ", addr_str(t, true), addr_str(t, false));
    match t.proto {
        proto::TCP | proto::UDP | proto::UDPLITE | proto::SCTP | proto::DCCP => {
            let _ = write!(out, "sport={} dport={} ", t.src_u, t.dst_u);
        }
        proto::GRE => {
            let _ = write!(out, "srckey=0x{:x} dstkey=0x{:x} ", t.src_u, t.dst_u);
        }
        proto::ICMP | proto::ICMPV6 => {
            let _ = write!(
                out,
                "type={} code={} id={} ",
                t.icmp_type(),
                t.icmp_code(),
                t.src_u
            );
        }
        _ => {}
    }
}

/// `ctime()` without the newline, in UTC (`Thu Nov 26 20:10:45 2026`).
pub fn ctime_utc(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[(days % 7) as usize],
        MONTHS[(m - 1) as usize],
        d,
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        y
    )
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01.
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Howard Hinnant's algorithm, for non-negative day counts.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `delta-time`: stop (or now) seconds minus start seconds, each floored, as
/// libnetfilter_conntrack computes it.
pub fn delta_time(f: &Flow) -> Option<u64> {
    let start = f.ts_start? / 1_000_000_000;
    let stop = match f.ts_stop {
        Some(s) if s != 0 => s / 1_000_000_000,
        _ => f.now_ns / 1_000_000_000,
    };
    Some(stop.saturating_sub(start))
}

/// One line (no trailing space, no newline).
pub fn flow_text(f: &Flow, flags: TextFlags, labels: Option<&Labels>) -> String {
    let mut out = String::with_capacity(220);
    match f.msg {
        MsgType::Dump => {}
        MsgType::New => out.push_str("    [NEW] "),
        MsgType::Update => out.push_str(" [UPDATE] "),
        MsgType::Destroy => out.push_str("[DESTROY] "),
    }
    if flags.extended {
        let _ = write!(out, "{:<8} {} ", f.family().name(), f.family().number());
    }
    let _ = write!(out, "{:<8} {} ", proto_str(f.proto()), f.proto());
    if let Some(t) = f.timeout {
        let _ = write!(out, "{t} ");
    }
    if let Some(s) = f.tcp_state {
        let _ = write!(
            out,
            "{} ",
            TCP_STATES.get(usize::from(s)).unwrap_or(&"NONE")
        );
    }
    if let Some(s) = f.sctp_state {
        let _ = write!(
            out,
            "{} ",
            SCTP_STATES.get(usize::from(s)).unwrap_or(&"NONE")
        );
    }
    tuple_text(&mut out, &f.orig);
    if let Some(z) = f.orig_zone {
        let _ = write!(out, "zone-orig={z} ");
    }
    if let Some(c) = f.counters {
        let _ = write!(out, "packets={} bytes={} ", c[0].packets, c[0].bytes);
    }
    if let Some(s) = f.status {
        if s & super::flow::status_bits::SEEN_REPLY == 0 {
            out.push_str("[UNREPLIED] ");
        }
    }
    tuple_text(&mut out, &f.reply);
    if let Some(z) = f.reply_zone {
        let _ = write!(out, "zone-reply={z} ");
    }
    if let Some(c) = f.counters {
        let _ = write!(out, "packets={} bytes={} ", c[1].packets, c[1].bytes);
    }
    if let Some(s) = f.status {
        use super::flow::status_bits::{ASSURED, HW_OFFLOAD, OFFLOAD};
        if s & HW_OFFLOAD != 0 {
            out.push_str("[HW_OFFLOAD] ");
        } else if s & OFFLOAD != 0 {
            out.push_str("[OFFLOAD] ");
        } else if s & ASSURED != 0 {
            out.push_str("[ASSURED] ");
        }
    }
    if let Some(m) = f.mark {
        let _ = write!(out, "mark={m} ");
    }
    if let Some(z) = f.zone {
        let _ = write!(out, "zone={z} ");
    }
    if let Some(d) = delta_time(f) {
        let _ = write!(out, "delta-time={d} ");
    }
    if flags.ktimestamp {
        if let Some(s) = f.ts_start {
            let _ = write!(out, "[start={}] ", ctime_utc(s / 1_000_000_000));
        }
        if let Some(s) = f.ts_stop {
            let _ = write!(out, "[stop={}] ", ctime_utc(s / 1_000_000_000));
        }
    }
    if let Some(h) = &f.helper {
        let _ = write!(out, "helper={h} ");
    }
    if let Some(u) = f.use_count {
        let _ = write!(out, "use={u} ");
    }
    if flags.id {
        if let Some(id) = f.id {
            let _ = write!(out, "id={id} ");
        }
    }
    if let (Some(map), Some(bits)) = (labels, f.labels) {
        out.push_str(&map.field(bits));
        out.push(' ');
    }
    out.truncate(out.len().saturating_sub(1));
    out
}
