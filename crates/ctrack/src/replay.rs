//! The replay pipeline for one packet, as the replay router's kernel would run it:
//! IP input checks → defrag (−400) → conntrack (−200) → routing → confirm at
//! POSTROUTING/LOCAL_IN, or the unconfirmed entry vanishes with the packet.

use crate::report::{Fate, PacketReport};
use ctrack_core::conntrack::{Config, Confirmed, Conntrack, Hook, Verdict};
use ctrack_core::defrag::{Defrag, DefragResult};
use ctrack_core::packet::ip;
use ctrack_core::topology::{self, Route, Side};
use ctrack_core::{Instant, Stats, Sysctls};

/// Replay settings.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// The sysctls.
    pub sysctls: Sysctls,
    /// Seed for the hash key and random choices.
    pub seed: u64,
    /// Record events.
    pub events: bool,
}

/// A replay in progress: the engine plus the router around it.
pub struct Replay {
    /// The engine.
    pub ct: Conntrack,
    /// IPv4/IPv6 reassembly in front of conntrack (nf_defrag, priority −400).
    pub defrag: Defrag,
    last_gc: Instant,
    /// Time of the last packet.
    pub now: Instant,
}

impl Replay {
    /// A fresh replay.
    pub fn new(opts: &ReplayOptions) -> Replay {
        Replay {
            ct: Conntrack::new(Config {
                sysctls: opts.sysctls.clone(),
                seed: opts.seed,
                events: opts.events,
            }),
            defrag: Defrag::new(),
            last_gc: Instant::ZERO,
            now: Instant::ZERO,
        }
    }

    /// Advance the clock: expired entries are reaped about once a simulated second, as
    /// the kernel's GC worker eventually does.
    pub fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
        if self.now.saturating_since(self.last_gc).as_secs() >= 1 {
            self.ct.expire(self.now);
            self.defrag.expire(self.now, self.ct.sysctls());
            self.last_gc = self.now;
        }
    }

    /// Run one IP packet (`l3` from the IP header to the end of the frame).
    pub fn packet(&mut self, index: u64, ts_ns: u64, l3: &[u8], side: Side) -> PacketReport {
        let now = Instant::from_nanos(ts_ns);
        self.advance(now);
        let before = self.ct.stats();
        let mut rep = PacketReport {
            index,
            ts_ns,
            ctstate: None,
            direction: None,
            drop: false,
            reason: None,
            side,
            fate: Fate::NotSeen,
            counters: Vec::new(),
        };
        let checked = match l3.first().map(|b| b >> 4) {
            Some(6) => ip::check_ipv6(l3),
            _ => ip::check_ipv4(l3),
        };
        let data = match checked {
            Ok(d) => d,
            Err(e) => {
                rep.drop = true;
                rep.reason = Some(e.to_string());
                return rep;
            }
        };
        let data = match self.defrag.push(now, data, 0, self.ct.sysctls()) {
            DefragResult::NotFragment | DefragResult::PassThrough => data,
            DefragResult::Complete(whole) => whole,
            DefragResult::Held => {
                rep.fate = Fate::Held;
                rep.reason = Some("held by defrag".into());
                return rep;
            }
            DefragResult::Dropped(why) => {
                rep.fate = Fate::Held;
                rep.drop = true;
                rep.reason = Some(format!("defrag: {why}"));
                return rep;
            }
        };
        let t = self.ct.track(now, data, Hook::PreRouting, 0);
        rep.ctstate = t.ctstate();
        rep.direction = t.direction();
        rep.reason = t.reason.map(|r| r.to_string());
        if t.verdict == Verdict::Drop {
            rep.drop = true;
            rep.fate = Fate::Dropped;
            self.ct.discard(&t);
        } else {
            match topology::route(data) {
                route @ (Route::Forward | Route::Local) => {
                    rep.fate = if route == Route::Local {
                        Fate::Local
                    } else {
                        Fate::Forwarded
                    };
                    if let Confirmed::Failed(r) = self.ct.confirm(now, &t) {
                        rep.drop = true;
                        rep.fate = Fate::Dropped;
                        rep.reason = Some(r.to_string());
                    }
                }
                Route::Drop(why) => {
                    self.ct.discard(&t);
                    rep.fate = Fate::Dropped;
                    if rep.reason.is_none() {
                        rep.reason = Some(why.to_string());
                    }
                }
            }
        }
        rep.counters = stats_delta(&before, &self.ct.stats());
        rep
    }
}

/// Non-zero counter changes, in `conntrack -S` order.
pub fn stats_delta(a: &Stats, b: &Stats) -> Vec<(&'static str, u32)> {
    a.fields()
        .iter()
        .zip(b.fields().iter())
        .filter(|(x, y)| x.1 != y.1)
        .map(|(x, y)| (x.0, y.1.wrapping_sub(x.1)))
        .collect()
}
