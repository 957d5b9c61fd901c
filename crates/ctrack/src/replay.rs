//! The replay pipeline for one packet, as the replay router's kernel would run it:
//! IP input checks → defrag (−400) → raw chains → conntrack (−200) → the other chains
//! → routing → forward/input/postrouting chains → confirm at POSTROUTING/LOCAL_IN, or
//! the unconfirmed entry vanishes with the packet (`ctrack_rules::pipeline`). With no
//! ruleset every hook accepts.

use crate::report::{Fate, PacketReport};
use ctrack_core::conntrack::{Config, Conntrack};
use ctrack_core::defrag::Defrag;
use ctrack_core::topology::Side;
use ctrack_core::{Instant, Stats, Sysctls};
use ctrack_rules::{Pipeline, Reason, Ruleset};

/// Replay settings.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// The sysctls.
    pub sysctls: Sysctls,
    /// Seed for the hash key and random choices.
    pub seed: u64,
    /// Record events.
    pub events: bool,
    /// The compiled ruleset (`--ruleset`); `None` accepts everything.
    pub ruleset: Option<Ruleset>,
    /// The router's own addresses (`--local`).
    pub locals: Vec<std::net::IpAddr>,
    /// Interface names (client, server) that `iifname`/`oifname` see; `None`: the
    /// defaults `client` and `server`.
    pub ifnames: Option<(String, String)>,
    /// The router's interface addresses (`--addr SIDE=ADDR`): its own addresses, the
    /// source of masquerade and the target of redirect.
    pub addrs: Vec<(Side, std::net::IpAddr)>,
}

/// A replay in progress: the engine plus the router around it.
pub struct Replay {
    /// The engine.
    pub ct: Conntrack,
    /// IPv4/IPv6 reassembly in front of conntrack (nf_defrag, priority −400).
    pub defrag: Defrag,
    /// The hooks and the ruleset.
    pub pipeline: Pipeline,
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
            pipeline: {
                let names = opts
                    .ifnames
                    .clone()
                    .unwrap_or_else(|| ("client".into(), "server".into()));
                let mut p = Pipeline::new(opts.ruleset.clone().unwrap_or_default(), names);
                for a in &opts.locals {
                    p.add_local(*a);
                }
                for (side, a) in &opts.addrs {
                    p.add_addr(*side, *a);
                }
                p
            },
            last_gc: Instant::ZERO,
            now: Instant::ZERO,
        }
    }

    /// Advance the clock: the GC worker's passes that are due run (paced as the kernel
    /// paces them, `Conntrack::gc`); defrag queues whose lifetime ended are dropped.
    pub fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
        self.ct.gc(self.now);
        if self.now.saturating_since(self.last_gc).as_secs() >= 1 {
            self.defrag.expire(self.now, self.ct.sysctls());
            self.last_gc = self.now;
        }
    }

    /// Run one IP packet (`l3` from the IP header to the end of the frame) through the
    /// hooks of its path ([`ctrack_rules::Pipeline`]).
    pub fn packet(&mut self, index: u64, ts_ns: u64, l3: &[u8], side: Side) -> PacketReport {
        let now = Instant::from_nanos(ts_ns);
        self.advance(now);
        let before = self.ct.stats();
        let o = self
            .pipeline
            .packet(&mut self.ct, &mut self.defrag, now, l3, side);
        let rule = o
            .rule
            .map(|r| self.pipeline.ruleset().describe(r.chain, r.rule));
        let reason = match (o.reason, &rule) {
            (Some(Reason::Rule), Some(r)) => Some(format!("dropped by {r}")),
            (r, _) => r.map(|r| r.to_string()),
        };
        PacketReport {
            index,
            ts_ns,
            ctstate: o.ctstate,
            direction: o.direction,
            drop: o.drop,
            reason,
            side,
            fate: Fate::from(o.fate),
            counters: stats_delta(&before, &self.ct.stats()),
            rule,
            log: self.pipeline.logs().map(str::to_string).collect(),
        }
    }
}

impl Replay {
    /// [`Replay::packet`] without the report: what the pipeline decided, for callers
    /// that print no per-packet line (`ctrack replay` without `--packets`), so the
    /// counter deltas, log lines and rule descriptions are not built. `hint`: the
    /// look-ahead window's flow hash for `l3`, if any. Never inlined: it is the unit
    /// `scripts/instructions.sh` counts in replay (with LTO it would vanish into its
    /// callers).
    #[inline(never)]
    pub fn packet_outcome(
        &mut self,
        ts_ns: u64,
        l3: &[u8],
        side: Side,
        hint: Option<ctrack_core::lookahead::FlowHint>,
    ) -> ctrack_rules::Outcome {
        let now = Instant::from_nanos(ts_ns);
        self.advance(now);
        self.pipeline
            .packet_with_hint(&mut self.ct, &mut self.defrag, now, l3, side, hint)
    }

    /// The last packet as it left the router (NAT applied); meaningful when its report
    /// says it was forwarded (`--write`).
    pub fn last_packet(&self) -> &[u8] {
        self.pipeline.last_packet()
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
