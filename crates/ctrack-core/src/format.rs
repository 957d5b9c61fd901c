//! The kernel's text formats: `conntrack -L` lines (libnetfilter_conntrack's default
//! output), `/proc/net/nf_conntrack` lines, `conntrack -S` (kernel-semantics.md §14).

use crate::entry::Entry;
use crate::proto::{proto_name, ProtoState};
use crate::stats::Stats;
use crate::status::Status;
use crate::time::Instant;
use crate::tuple::{proto, Addr, Dir, Family, Tuple};
use crate::zone::Zone;
use std::fmt::Write;

/// Options of the `conntrack -L` text (`-o extended,id`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ListOptions {
    /// `-o extended`: the l3 name and number first.
    pub extended: bool,
    /// `-o id`: the entry id last.
    pub id: bool,
}

/// An IPv6 address as glibc's `inet_ntop` prints it (compressed, IPv4-embedded forms).
pub fn ipv6_compressed(a: &[u8; 16]) -> String {
    let w: Vec<u16> = (0..8)
        .map(|i| u16::from_be_bytes([a[2 * i], a[2 * i + 1]]))
        .collect();
    // Longest run of zero words (length >= 2), first one wins.
    let (mut best_base, mut best_len) = (usize::MAX, 0usize);
    let mut i = 0;
    while i < 8 {
        if w[i] == 0 {
            let start = i;
            while i < 8 && w[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                best_base = start;
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    if best_len < 2 {
        best_base = usize::MAX;
    }
    let mut s = String::new();
    let mut i = 0;
    while i < 8 {
        if i == best_base {
            if i == 0 {
                s.push(':');
            }
            s.push(':');
            i += best_len;
            continue;
        }
        if i == 6 && best_base == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)) {
            let _ = write!(s, "{}.{}.{}.{}", a[12], a[13], a[14], a[15]);
            break;
        }
        let _ = write!(s, "{:x}", w[i]);
        if i < 7 {
            s.push(':');
        }
        i += 1;
    }
    s
}

/// An IPv6 address fully expanded, as /proc prints it.
pub fn ipv6_expanded(a: &[u8; 16]) -> String {
    let mut s = String::with_capacity(39);
    for i in 0..8 {
        if i > 0 {
            s.push(':');
        }
        let _ = write!(s, "{:02x}{:02x}", a[2 * i], a[2 * i + 1]);
    }
    s
}

fn addr(a: &Addr, fam: Family, expanded: bool) -> String {
    match fam {
        Family::V4 => {
            let o = a.v4_octets();
            format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])
        }
        Family::V6 if expanded => ipv6_expanded(&a.0),
        Family::V6 => ipv6_compressed(&a.0),
    }
}

/// conntrack-tools' own protocol names (it knows DCCP, which this kernel tracks as
/// generic, and prints zero ports for it).
fn userspace_proto_name(p: u8) -> &'static str {
    match p {
        proto::DCCP => "dccp",
        _ => proto_name(p),
    }
}

fn tuple_text(out: &mut String, t: &Tuple, expanded: bool) {
    tuple_text_as(out, t, expanded, false)
}

fn tuple_text_as(out: &mut String, t: &Tuple, expanded: bool, userspace: bool) {
    let _ = write!(
        out,
        "src={} dst={} ",
        addr(&t.src, t.family, expanded),
        addr(&t.dst, t.family, expanded)
    );
    match t.proto {
        proto::TCP | proto::UDP | proto::UDPLITE | proto::SCTP => {
            let _ = write!(out, "sport={} dport={} ", t.src_u, t.dst_u);
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
        proto::GRE => {
            let _ = write!(out, "srckey=0x{:x} dstkey=0x{:x} ", t.src_u, t.dst_u);
        }
        proto::DCCP if userspace => {
            let _ = write!(out, "sport={} dport={} ", t.src_u, t.dst_u);
        }
        _ => {}
    }
}

/// The zone at one of its three places (after the original tuple, after the reply
/// tuple, after `mark=`): printed there only when the zone's direction mask is exactly
/// `place`. /proc (kernel `ct_show_zone`) prints it even for id 0; ctnetlink
/// (`ctnetlink_dump_zone_id`, what `conntrack -L`/`-E` print) omits id 0.
fn zone_text(out: &mut String, e: &Entry, place: u8, proc: bool) {
    if e.zone.dir != place || (!proc && e.zone.id == 0) {
        return;
    }
    let name = match place {
        Zone::ORIG => "zone-orig",
        Zone::REPLY => "zone-reply",
        _ => "zone",
    };
    let _ = write!(out, "{name}={} ", e.zone.id);
}

fn counters(out: &mut String, e: &Entry, dir: Dir) {
    if let Some(c) = e.ext.as_ref().and_then(|x| x.acct) {
        let c = c[dir.index()];
        let _ = write!(out, "packets={} bytes={} ", c.packets, c.bytes);
    }
}

/// Seconds since confirm (stop − start for a deleted entry).
/// Seconds since confirm as the kernel's /proc prints it: the floored difference.
fn delta_time(e: &Entry, now: Instant) -> Option<u64> {
    let (start, stop) = e.ext.as_ref()?.tstamp?;
    let end = stop.unwrap_or(now);
    Some(end.saturating_since(start).as_secs())
}

/// Seconds since confirm as libnetfilter_conntrack prints it (`conntrack -L`, `-E`):
/// whole seconds of the stop (or now) minus whole seconds of the start.
fn delta_time_userspace(e: &Entry, now: Instant) -> Option<u64> {
    let (start, stop) = e.ext.as_ref()?.tstamp?;
    let end = stop.unwrap_or(now);
    Some((end.as_nanos() / 1_000_000_000).saturating_sub(start.as_nanos() / 1_000_000_000))
}

/// One `conntrack -L` line (no trailing space, no newline).
pub fn conntrack_line(e: &Entry, now: Instant, opts: ListOptions) -> String {
    let mut out = String::with_capacity(200);
    body(
        &mut out,
        e,
        opts.extended,
        Some(e.display_timeout(now)),
        true,
    );
    let _ = write!(out, "mark={} ", e.mark);
    zone_text(&mut out, e, Zone::BOTH, false);
    if let Some(d) = delta_time_userspace(e, now) {
        let _ = write!(out, "delta-time={d} ");
    }
    if let Some(h) = crate::Conntrack::helper_of(e) {
        let _ = write!(out, "helper={h} ");
    }
    let _ = write!(out, "use={} ", crate::Conntrack::use_count(e));
    if opts.id {
        let _ = write!(out, "id={} ", e.seq);
    }
    out.truncate(out.trim_end().len());
    out
}

/// The part shared by dumps and events: protocol, timeout, state, tuples, flags.
fn body(out: &mut String, e: &Entry, extended: bool, timeout: Option<u64>, state: bool) {
    let t0 = e.tuple(Dir::Original);
    if extended {
        let _ = write!(out, "{:<8} {} ", t0.family.name(), t0.family.number());
    }
    let _ = write!(out, "{:<8} {} ", userspace_proto_name(t0.proto), t0.proto);
    if let Some(t) = timeout {
        let _ = write!(out, "{t} ");
    }
    if state {
        if let Some(s) = e.proto.state_name() {
            let _ = write!(out, "{s} ");
        }
    }
    tuple_text_as(out, &t0, false, true);
    zone_text(out, e, Zone::ORIG, false);
    counters(out, e, Dir::Original);
    if !e.status.has(Status::SEEN_REPLY) {
        out.push_str("[UNREPLIED] ");
    }
    tuple_text_as(out, &e.tuple(Dir::Reply), false, true);
    zone_text(out, e, Zone::REPLY, false);
    counters(out, e, Dir::Reply);
    if e.status.has(Status::ASSURED) {
        out.push_str("[ASSURED] ");
    }
}

/// One `conntrack -E` line body after the `[KIND] ` prefix: events show the timeout just
/// set, the TCP/SCTP state only when it changed (PROTOINFO), `mark=` only when non-zero.
pub fn event_body(e: &Entry, now: Instant, mask: u16, destroy: bool) -> String {
    use crate::event::bits;
    let mut out = String::with_capacity(200);
    let timeout = if destroy {
        let t = e.display_timeout(now);
        (t != 0).then_some(t)
    } else {
        Some(e.remaining(now).as_secs())
    };
    let state = destroy || mask & bits::PROTOINFO != 0;
    body(&mut out, e, false, timeout, state);
    if e.mark != 0 {
        let _ = write!(out, "mark={} ", e.mark);
    }
    zone_text(&mut out, e, Zone::BOTH, false);
    if destroy {
        if let Some(d) = delta_time_userspace(e, now) {
            let _ = write!(out, "delta-time={d} ");
        }
    } else if let Some(h) = crate::Conntrack::helper_of(e) {
        let _ = write!(out, "helper={h} ");
    }
    out.truncate(out.trim_end().len());
    out
}

/// One `/proc/net/nf_conntrack` line (trailing `use=2`, as a reader sees it).
pub fn proc_line(e: &Entry, now: Instant) -> String {
    let mut out = String::with_capacity(220);
    let t0 = e.tuple(Dir::Original);
    let _ = write!(
        out,
        "{:<8} {} {:<8} {} {} ",
        t0.family.name(),
        t0.family.number(),
        proto_name(t0.proto),
        t0.proto,
        e.display_timeout(now)
    );
    if let Some(s) = e.proto.state_name() {
        let _ = write!(out, "{s} ");
    }
    if let ProtoState::Gre(g) = &e.proto {
        let _ = write!(
            out,
            "timeout={}, stream_timeout={} ",
            g.timeout, g.stream_timeout
        );
    }
    tuple_text(&mut out, &t0, true);
    zone_text(&mut out, e, Zone::ORIG, true);
    counters(&mut out, e, Dir::Original);
    if !e.status.has(Status::SEEN_REPLY) {
        out.push_str("[UNREPLIED] ");
    }
    tuple_text(&mut out, &e.tuple(Dir::Reply), true);
    zone_text(&mut out, e, Zone::REPLY, true);
    counters(&mut out, e, Dir::Reply);
    if e.status.has(Status::ASSURED) {
        out.push_str("[ASSURED] ");
    }
    let _ = write!(out, "mark={} ", e.mark);
    zone_text(&mut out, e, Zone::BOTH, true);
    if let Some(d) = delta_time(e, now) {
        let _ = write!(out, "delta-time={d} ");
    }
    let _ = write!(out, "use={}", crate::Conntrack::use_count(e) + 1);
    out
}

/// `conntrack -S` output: one line per worker (`cpu=N`).
pub fn stats_lines(per_cpu: &[Stats]) -> String {
    let mut out = String::new();
    for (i, s) in per_cpu.iter().enumerate() {
        let _ = write!(out, "cpu={i:<4}\t");
        for (name, v) in s.fields() {
            let _ = write!(out, "{name}={v} ");
        }
        out.push('\n');
    }
    out
}

/// The `conntrack -L` summary line (printed on stderr).
pub fn summary_line(n: usize) -> String {
    format!("conntrack v1.4.7 (conntrack-tools): {n} flow entries have been shown.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_like_inet_ntop() {
        let mut a = [0u8; 16];
        a[15] = 1;
        assert_eq!(ipv6_compressed(&a), "::1");
        assert_eq!(ipv6_compressed(&[0; 16]), "::");
        let b: [u8; 16] = "2001:db8:1::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        assert_eq!(ipv6_compressed(&b), "2001:db8:1::1");
        let c: [u8; 16] = "::ffff:10.1.2.3"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        assert_eq!(ipv6_compressed(&c), "::ffff:10.1.2.3");
        let d: [u8; 16] = "fe80::1:0:0:1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        assert_eq!(ipv6_compressed(&d), "fe80::1:0:0:1");
        let e: [u8; 16] = "1:0:0:2:0:0:0:3"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        assert_eq!(ipv6_compressed(&e), "1:0:0:2::3");
        assert_eq!(ipv6_expanded(&a), "0000:0000:0000:0000:0000:0000:0000:0001");
    }
}
