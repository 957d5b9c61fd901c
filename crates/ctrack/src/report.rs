//! The per-packet report: what happened to one packet. Its JSON line is the shape shared
//! by `ctrack replay --packets -o json` and `ctrack kernel-replay -o json`, so the two can
//! be diffed line by line.

use ctrack_core::topology::Side;
use ctrack_core::{CtState, Dir};
use std::fmt::Write;

/// Where the packet went after conntrack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Dropped by the IP layer before netfilter (bad header): never seen.
    NotSeen,
    /// Held by defrag (an incomplete datagram): no ctstate.
    Held,
    /// Forwarded: reached POSTROUTING, so a new entry is confirmed.
    Forwarded,
    /// Delivered to the router itself: reached LOCAL_IN, confirmed there.
    Local,
    /// Seen and given a ctstate, but dropped before confirm (routing, TTL, conntrack drop).
    Dropped,
}

impl From<ctrack_rules::Fate> for Fate {
    fn from(f: ctrack_rules::Fate) -> Fate {
        match f {
            ctrack_rules::Fate::NotSeen => Fate::NotSeen,
            ctrack_rules::Fate::Held => Fate::Held,
            ctrack_rules::Fate::Forwarded => Fate::Forwarded,
            ctrack_rules::Fate::Local => Fate::Local,
            ctrack_rules::Fate::Dropped => Fate::Dropped,
        }
    }
}

impl Fate {
    /// The JSON word.
    pub fn name(self) -> &'static str {
        match self {
            Fate::NotSeen => "not-seen",
            Fate::Held => "held",
            Fate::Forwarded => "forwarded",
            Fate::Local => "local",
            Fate::Dropped => "dropped",
        }
    }
}

/// One packet's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketReport {
    /// Record number in the capture.
    pub index: u64,
    /// Timestamp used for the packet (ns).
    pub ts_ns: u64,
    /// `ct state`, or None when the packet never got a conntrack.
    pub ctstate: Option<CtState>,
    /// `ct direction` for packets with a conntrack.
    pub direction: Option<Dir>,
    /// Accepted or dropped.
    pub drop: bool,
    /// Why: invalid, error, ignored, dropped (our explanation or the kernel's log).
    pub reason: Option<String>,
    /// The router interface it entered on.
    pub side: Side,
    /// Where it went.
    pub fate: Fate,
    /// Counters changed by this packet (name, delta), in `conntrack -S` order.
    pub counters: Vec<(&'static str, u32)>,
    /// The rule that decided the verdict (`inet fw forward handle 8 (line 12)`, or
    /// `... policy drop`); `None` with no ruleset or when only policies accepted.
    pub rule: Option<String>,
    /// The `log prefix` texts of the rules the packet hit, in order.
    pub log: Vec<String>,
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl PacketReport {
    /// The JSON line (no newline).
    pub fn json(&self) -> String {
        let mut o = String::with_capacity(160);
        let _ = write!(
            o,
            "{{\"index\":{},\"ts\":{}.{:06},\"ctstate\":",
            self.index,
            self.ts_ns / 1_000_000_000,
            (self.ts_ns % 1_000_000_000) / 1000
        );
        match self.ctstate {
            Some(s) => json_str(&mut o, s.name()),
            None => o.push_str("null"),
        }
        o.push_str(",\"direction\":");
        match self.direction {
            Some(d) => json_str(&mut o, d.name()),
            None => o.push_str("null"),
        }
        let _ = write!(
            o,
            ",\"verdict\":\"{}\",\"reason\":",
            if self.drop { "drop" } else { "accept" }
        );
        match &self.reason {
            Some(r) => json_str(&mut o, r),
            None => o.push_str("null"),
        }
        let side = match self.side {
            Side::Client => "client",
            Side::Server => "server",
        };
        let _ = write!(
            o,
            ",\"side\":\"{side}\",\"fate\":\"{}\",\"counters\":{{",
            self.fate.name()
        );
        for (i, (k, v)) in self.counters.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let _ = write!(o, "\"{k}\":{v}");
        }
        o.push_str("},\"rule\":");
        match &self.rule {
            Some(r) => json_str(&mut o, r),
            None => o.push_str("null"),
        }
        o.push_str(",\"log\":[");
        for (i, l) in self.log.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            json_str(&mut o, l);
        }
        o.push_str("]}");
        o
    }

    /// A human line: index, time, state, direction, verdict, fate, reason.
    pub fn human(&self) -> String {
        let mut o = format!(
            "#{:<6} {}.{:06} {:<11} {:<8} {:<6} {:<6} {:<9}",
            self.index,
            self.ts_ns / 1_000_000_000,
            (self.ts_ns % 1_000_000_000) / 1000,
            self.ctstate.map_or("-", |s| s.name()),
            self.direction.map_or("-", |d| d.name()),
            if self.drop { "drop" } else { "accept" },
            match self.side {
                Side::Client => "client",
                Side::Server => "server",
            },
            self.fate.name(),
        );
        if let Some(r) = &self.reason {
            o.push(' ');
            o.push_str(r);
        }
        for (k, v) in &self.counters {
            let _ = write!(o, " {k}+{v}");
        }
        if let Some(r) = &self.rule {
            let _ = write!(o, " [{r}]");
        }
        for l in &self.log {
            let _ = write!(o, " log={l:?}");
        }
        o.trim_end().to_string()
    }
}
