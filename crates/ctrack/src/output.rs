//! Printing the final table, statistics and events in the kernel tools' formats.

use ctrack_core::conntrack::Conntrack;
use ctrack_core::entry::Entry;
use ctrack_core::event::{Event, EventKind};
use ctrack_core::format::{self, ListOptions};
use ctrack_core::proto::proto_name;
use ctrack_core::status::Status;
use ctrack_core::tuple::{proto, Dir, Tuple};
use ctrack_core::Instant;
use std::fmt::Write;

/// Output format words accepted by `-o` (comma-separated, like conntrack's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputFormat {
    /// `extended`.
    pub extended: bool,
    /// `id`.
    pub id: bool,
    /// `json`.
    pub json: bool,
    /// `proc` (the /proc/net/nf_conntrack layout).
    pub proc: bool,
    /// `timestamp` (events).
    pub timestamp: bool,
}

impl OutputFormat {
    /// Parse `-o a,b,c`.
    pub fn parse(s: &str) -> Result<OutputFormat, String> {
        let mut f = OutputFormat::default();
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match w {
                "text" => {}
                "extended" => f.extended = true,
                "id" => f.id = true,
                "json" => f.json = true,
                "proc" => f.proc = true,
                "timestamp" => f.timestamp = true,
                other => {
                    return Err(format!(
                        "unknown output format `{other}` (expected text, extended, id, json, proc, timestamp)"
                    ))
                }
            }
        }
        Ok(f)
    }
}

/// The table lines at `now`, in creation order.
pub fn table_lines(ct: &Conntrack, now: Instant, f: OutputFormat) -> Vec<String> {
    ct.entries(now)
        .into_iter()
        .map(|e| {
            if f.json {
                entry_json(e, now)
            } else if f.proc {
                format::proc_line(e, now)
            } else {
                format::conntrack_line(
                    e,
                    now,
                    ListOptions {
                        extended: f.extended,
                        id: f.id,
                    },
                )
            }
        })
        .collect()
}

fn tuple_json(o: &mut String, t: &Tuple) {
    let _ = write!(
        o,
        "{{\"src\":\"{}\",\"dst\":\"{}\"",
        t.src.to_ip(t.family),
        t.dst.to_ip(t.family)
    );
    match t.proto {
        proto::TCP | proto::UDP | proto::UDPLITE | proto::SCTP => {
            let _ = write!(o, ",\"sport\":{},\"dport\":{}", t.src_u, t.dst_u);
        }
        proto::ICMP | proto::ICMPV6 => {
            let _ = write!(
                o,
                ",\"type\":{},\"code\":{},\"id\":{}",
                t.icmp_type(),
                t.icmp_code(),
                t.src_u
            );
        }
        proto::GRE => {
            let _ = write!(o, ",\"srckey\":{},\"dstkey\":{}", t.src_u, t.dst_u);
        }
        _ => {}
    }
    o.push('}');
}

/// One entry as a JSON object.
pub fn entry_json(e: &Entry, now: Instant) -> String {
    let t0 = e.tuple(Dir::Original);
    let mut o = String::with_capacity(300);
    let _ = write!(
        o,
        "{{\"family\":\"{}\",\"proto\":\"{}\",\"protonum\":{},\"timeout\":{}",
        t0.family.name(),
        proto_name(t0.proto),
        t0.proto,
        e.display_timeout(now)
    );
    if let Some(s) = e.proto.state_name() {
        let _ = write!(o, ",\"state\":\"{s}\"");
    }
    o.push_str(",\"original\":");
    tuple_json(&mut o, &t0);
    o.push_str(",\"reply\":");
    tuple_json(&mut o, &e.tuple(Dir::Reply));
    let names = [
        (Status::EXPECTED, "EXPECTED"),
        (Status::SEEN_REPLY, "SEEN_REPLY"),
        (Status::ASSURED, "ASSURED"),
        (Status::CONFIRMED, "CONFIRMED"),
        (Status::SRC_NAT, "SRC_NAT"),
        (Status::DST_NAT, "DST_NAT"),
        (Status::FIXED_TIMEOUT, "FIXED_TIMEOUT"),
    ];
    o.push_str(",\"status\":[");
    let mut first = true;
    for (bit, n) in names {
        if e.status.has(bit) {
            if !first {
                o.push(',');
            }
            first = false;
            let _ = write!(o, "\"{n}\"");
        }
    }
    let _ = write!(o, "],\"mark\":{},\"zone\":{}", e.mark, e.zone.id);
    if let Some(d) = e.zone.one_direction() {
        let _ = write!(o, ",\"zone_dir\":\"{}\"", d.name());
    }
    let labels = e.labels();
    if labels != 0 {
        let bits: Vec<String> = (0..128u32)
            .filter(|b| labels & (1u128 << b) != 0)
            .map(|b| b.to_string())
            .collect();
        let _ = write!(o, ",\"labels\":[{}]", bits.join(","));
    }
    if let Some(c) = e.ext.as_ref().and_then(|x| x.acct) {
        let _ = write!(
            o,
            ",\"counters\":{{\"original\":{{\"packets\":{},\"bytes\":{}}},\"reply\":{{\"packets\":{},\"bytes\":{}}}}}",
            c[0].packets, c[0].bytes, c[1].packets, c[1].bytes
        );
    }
    let _ = write!(o, ",\"id\":{}}}", e.seq);
    o
}

/// One `conntrack -E` line.
pub fn event_line(ev: &Event, f: OutputFormat) -> String {
    let (tag, destroy) = match ev.kind {
        EventKind::New => ("[NEW]", false),
        EventKind::Update => ("[UPDATE]", false),
        EventKind::Destroy => ("[DESTROY]", true),
    };
    let mut o = String::new();
    if f.timestamp {
        let ns = ev.time.as_nanos();
        let _ = write!(
            o,
            "[{:010}.{:06}]\t",
            ns / 1_000_000_000,
            (ns % 1_000_000_000) / 1000
        );
    }
    let _ = write!(
        o,
        "{tag:>9} {}",
        format::event_body(&ev.entry, ev.time, ev.mask, destroy)
    );
    o
}

/// Print drained events: through the conntrack(8) session when one was given after `--`
/// (its filters, `-e` and `-o` words), else as plain `conntrack -E` lines.
pub fn print_events(
    events: Vec<Event>,
    fmt: OutputFormat,
    session: Option<&mut crate::listing::Session>,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    match session {
        Some(s) => {
            for ev in &events {
                s.event(ev, out)?;
            }
        }
        None => {
            for ev in &events {
                writeln!(out, "{}", event_line(ev, fmt))?;
            }
        }
    }
    Ok(())
}

/// The end of a replay with a conntrack(8) command line: close the events' XML document,
/// then run `-L` / `-C` / `-S` (or finish `-E`). Returns conntrack's stderr footer.
pub fn finish_session(
    s: &mut crate::listing::Session,
    ct: &Conntrack,
    now: Instant,
    out: &mut dyn std::io::Write,
) -> std::io::Result<Option<String>> {
    if s.listing.command != crate::listing::Command::Event {
        // Events printed through `--events` were a separate `conntrack -E` run.
        s.close_xml(out)?;
        s.shown = 0;
    }
    s.finish(ct, now, out)
}
