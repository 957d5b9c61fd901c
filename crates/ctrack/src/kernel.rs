//! `ctrack kernel-replay`: the capture through the live kernel (ctrack-oracle), turned
//! into the same per-packet reports as `ctrack replay`.

use crate::input::Loaded;
use crate::report::{Fate, PacketReport};
use ctrack_core::topology::Side;
use ctrack_core::{CtState, Dir, Sysctls};
use ctrack_oracle::{InjectPacket, KernelPacket, KernelRun, OracleConfig};
use std::path::PathBuf;
use std::time::Duration;

/// The interface MTU of the harness: the largest, so every IP packet can be injected
/// and forwarded (the replay router has the same MTU).
pub const HARNESS_MTU: u32 = 65535;

/// Settings for a kernel run.
#[derive(Debug, Clone)]
pub struct KernelOptions {
    /// `--sysctl` pairs (validated against our names first).
    pub sysctls: Vec<(String, String)>,
    /// `--ruleset`.
    pub ruleset: Option<PathBuf>,
    /// `--ifname` names of the client and server interfaces.
    pub ifnames: (String, String),
    /// Pacing cap per gap.
    pub max_gap: Duration,
    /// Keep the namespaces for debugging.
    pub keep_netns: bool,
    /// Record the kernel's `conntrack -E` events.
    pub events: bool,
    /// `--addr` addresses of the firewall's interfaces (masquerade, redirect).
    pub addrs: Vec<(Side, std::net::IpAddr)>,
}

impl Default for KernelOptions {
    fn default() -> Self {
        KernelOptions {
            sysctls: Vec::new(),
            ruleset: None,
            ifnames: ("client".into(), "server".into()),
            max_gap: Duration::from_secs(3),
            keep_netns: false,
            events: true,
            addrs: Vec::new(),
        }
    }
}

/// `(name, value)` sysctl pairs.
pub type SysctlPairs = Vec<(String, String)>;

/// Split sysctls into per-netns and global ones, rejecting unknown names and bad values
/// with our own parser (so both sides get the same settings).
pub fn split_sysctls(pairs: &[(String, String)]) -> Result<(SysctlPairs, SysctlPairs), String> {
    let mut probe = Sysctls::default();
    let mut local = Vec::new();
    let mut global = Vec::new();
    for (k, v) in pairs {
        probe.set(k, v).map_err(|e| e.to_string())?;
        let short = k.trim_start_matches("net.netfilter.").to_string();
        match short.as_str() {
            "ipfrag_time" | "ipfrag_high_thresh" | "ipfrag_max_dist" => {
                local.push((format!("net.ipv4.{short}"), v.clone()))
            }
            s if Sysctls::is_global(s) => global.push((short, v.clone())),
            _ => local.push((short, v.clone())),
        }
    }
    Ok((local, global))
}

/// Run the loaded capture through the kernel.
pub fn run(loaded: &Loaded, opts: &KernelOptions) -> Result<KernelRun, String> {
    let (local, global) = split_sysctls(&opts.sysctls)?;
    let packets: Vec<InjectPacket> = loaded
        .packets
        .iter()
        .map(|p| InjectPacket {
            index: p.index,
            ts_ns: p.ts_ns,
            side: match p.side {
                Side::Client => ctrack_oracle::Side::Client,
                Side::Server => ctrack_oracle::Side::Server,
            },
            l3: p.l3.clone(),
        })
        .collect();
    let cfg = OracleConfig {
        sysctls: local,
        global_sysctls: global,
        ruleset: opts.ruleset.clone(),
        ifnames: opts.ifnames.clone(),
        max_gap: opts.max_gap,
        keep_netns: opts.keep_netns,
        mtu: HARNESS_MTU,
        events: opts.events,
        fw_addrs: opts
            .addrs
            .iter()
            .map(|(s, a)| {
                let side = match s {
                    Side::Client => ctrack_oracle::Side::Client,
                    Side::Server => ctrack_oracle::Side::Server,
                };
                (side, *a)
            })
            .collect(),
        ..OracleConfig::default()
    };
    ctrack_oracle::cleanup_stale();
    ctrack_oracle::run(&packets, &cfg).map_err(|e| e.to_string())
}

const COUNTER_ORDER: [&str; 10] = [
    "found",
    "invalid",
    "insert",
    "insert_failed",
    "drop",
    "early_drop",
    "error",
    "search_restart",
    "clash_resolve",
    "chaintoolong",
];

/// The kernel's per-packet result as a [`PacketReport`].
pub fn report(k: &KernelPacket, ts_ns: u64, side: Side) -> PacketReport {
    let ctstate = k.ctstate.map(|s| match s {
        ctrack_oracle::CtState::New => CtState::New,
        ctrack_oracle::CtState::Established => CtState::Established,
        ctrack_oracle::CtState::Related => CtState::Related,
        ctrack_oracle::CtState::Invalid => CtState::Invalid,
        ctrack_oracle::CtState::Untracked => CtState::Untracked,
    });
    let direction = k.direction.map(|d| match d {
        ctrack_oracle::Direction::Original => Dir::Original,
        ctrack_oracle::Direction::Reply => Dir::Reply,
    });
    let dropped_by_ct = k.counters.get("drop").copied().unwrap_or(0) > 0;
    let fate = if !k.seen {
        Fate::NotSeen
    } else if k.forwarded {
        Fate::Forwarded
    } else if k.local_in {
        Fate::Local
    } else if ctstate.is_none() && !dropped_by_ct {
        Fate::Held
    } else {
        Fate::Dropped
    };
    let counters = COUNTER_ORDER
        .iter()
        .filter_map(|&n| {
            k.counters
                .get(n)
                .copied()
                .filter(|&v| v != 0)
                .map(|v| (n, u32::try_from(v).unwrap_or(u32::MAX)))
        })
        .collect();
    PacketReport {
        index: k.index,
        ts_ns,
        ctstate,
        direction,
        drop: !k.seen || dropped_by_ct,
        reason: (!k.log.is_empty()).then(|| k.log.join("; ")),
        side,
        fate,
        counters,
        rule: None,
        log: Vec::new(),
    }
}

/// All packets of a run as reports (capture timestamps, sides from the capture).
pub fn reports(run: &KernelRun, loaded: &Loaded) -> Vec<PacketReport> {
    run.packets
        .iter()
        .zip(loaded.packets.iter())
        .map(|(k, p)| report(k, p.ts_ns, p.side))
        .collect()
}
