//! One run from start to end: setup, the paced per-packet loop with barriers, the final
//! dumps. The pieces live in their own modules; this file only orders them.

use crate::error::OracleError;
use crate::inject::{self, Injector};
use crate::netns::{self, NetnsSet, Ns};
use crate::nflog::{LogMsg, NflogSocket};
use crate::nft::{self, Mark};
use crate::procstat::{Snapshot, StatFile};
use crate::signal::{self, ActiveRun};
use crate::sysctl::{self, GlobalGuard};
use crate::{InjectPacket, KernelPacket, KernelRun, OracleConfig};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// NFLOG copy range: enough for the barrier payload and the start of a packet.
const COPY_RANGE: u32 = 64;
/// Longest single wait, so signals are noticed quickly.
const SLICE: Duration = Duration::from_millis(50);

pub(crate) fn interrupted() -> Result<(), OracleError> {
    match signal::pending() {
        Some(sig) => Err(OracleError::Interrupted(sig)),
        None => Ok(()),
    }
}

/// See [`crate::available`].
pub(crate) fn available() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(format!("not root (euid {euid})"));
    }
    for (path, what) in [
        ("/proc/sys/net/netfilter/nf_conntrack_max", "nf_conntrack"),
        ("/proc/sys/net/netfilter/nf_log/2", "nf_log"),
        ("/proc/net/netfilter/nfnetlink_log", "nfnetlink_log"),
    ] {
        if !Path::new(path).exists() {
            return Err(format!("{what} is not available ({path} is missing)"));
        }
    }
    for (bin, arg) in [
        ("ip", "-V"),
        ("nft", "--version"),
        ("conntrack", "--version"),
    ] {
        match Command::new(bin).arg(arg).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => return Err(format!("`{bin} {arg}` failed: {}", o.status)),
            Err(e) => {
                return Err(format!(
                    "`{bin}` is not usable ({e}); install iproute2, nftables and conntrack"
                ))
            }
        }
    }
    let unshare = std::thread::spawn(|| {
        // SAFETY: unshare only affects this short-lived thread.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    })
    .join();
    match unshare {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot create network namespaces: {e}")),
        Err(_) => Err("namespace probe thread panicked".to_owned()),
    }
}

/// See [`crate::run`].
pub(crate) fn run(packets: &[InjectPacket], cfg: &OracleConfig) -> Result<KernelRun, OracleError> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(OracleError::NotRoot(euid));
    }
    for p in packets {
        if p.l3.len() > cfg.mtu as usize {
            return Err(OracleError::Packet {
                index: p.index,
                reason: format!(
                    "{} bytes do not fit the veth MTU of {} (raise OracleConfig::mtu)",
                    p.l3.len(),
                    cfg.mtu
                ),
            });
        }
    }
    crate::cleanup_stale();
    // Dropped last: everything `guarded` sets up is removed before a pending signal is
    // re-raised.
    let _signals =
        ActiveRun::enter().map_err(|e| OracleError::io("installing signal handlers", e))?;
    let result = guarded(packets, cfg);
    match (result, signal::pending()) {
        // A Ctrl-C also reaches the helper programs; report the signal, not their death.
        (Err(_), Some(sig)) => Err(OracleError::Interrupted(sig)),
        (result, _) => result,
    }
}

/// The run proper; every resource it creates is released when it returns.
fn guarded(packets: &[InjectPacket], cfg: &OracleConfig) -> Result<KernelRun, OracleError> {
    let _globals = GlobalGuard::acquire(&cfg.global_sysctls)?;
    interrupted()?;

    let ns = NetnsSet::create(&cfg.ifnames, cfg.mtu, cfg.keep_netns)?;
    let fw = ns.file(Ns::Fw);
    sysctl::set_in(
        fw,
        &[
            ("net.netfilter.nf_log.2", "nfnetlink_log"),
            ("net.netfilter.nf_log.10", "nfnetlink_log"),
            ("net.netfilter.nf_conntrack_log_invalid", "255"),
        ],
    )?;
    sysctl::set_user_in(fw, &cfg.sysctls)?;
    nft::load(fw, &cfg.ifnames, cfg.ruleset.as_deref())?;
    let (mut nflog, mut stat) = netns::in_netns(fw, || {
        let nflog = NflogSocket::open_here(&[nft::GROUP, nft::KERNEL_GROUP], COPY_RANGE)?;
        let stat = StatFile::open_here()
            .map_err(|e| OracleError::io("opening /proc/net/stat/nf_conntrack", e))?;
        Ok::<_, OracleError>((nflog, stat))
    })
    .map_err(|e| OracleError::io("entering the firewall namespace", e))??;
    let listener = if cfg.events {
        let flows = crate::events::EventListener::spawn(fw, false)?;
        let expect = crate::events::EventListener::spawn(fw, true)?;
        crate::events::settle();
        Some((flows, expect))
    } else {
        None
    };
    ns.start(&cfg.ifnames, &cfg.fw_addrs)?;
    let nonce = nonce();
    let mut inj = Injector::open(&ns, nonce)?;
    interrupted()?;

    let mut replay = Replay {
        inj: &mut inj,
        nflog: &mut nflog,
        stat: &mut stat,
        nonce,
        cfg,
    };
    let (kernel_packets, t0) = std::thread::scope(|s| s.spawn(|| replay.all(packets)).join())
        .map_err(|_| OracleError::Netns("the injecting thread panicked".to_owned()))??;
    let mut run = dump(&ns, &mut stat, kernel_packets, t0)?;
    if let Some((flows, expect)) = listener {
        // The wall-clock time of the first injection.
        let t0_wall = crate::events::wall_ns() as i64 - t0.elapsed().as_nanos() as i64;
        let convert = |v: Vec<(u64, String)>| -> Vec<crate::KernelEvent> {
            v.into_iter()
                .map(|(ns, line)| {
                    let body = line.split_once('\t').map_or(line.as_str(), |(_, b)| b);
                    crate::KernelEvent {
                        offset_ns: ns as i64 - t0_wall,
                        line: body.to_owned(),
                    }
                })
                .collect()
        };
        crate::events::settle();
        run.events = convert(flows.finish_now());
        run.expect_events = convert(expect.finish_now());
    }
    Ok(run)
}

pub(crate) fn nonce() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    t ^ std::process::id().rotate_left(16)
}

/// The injecting side of a run: injection, barriers, logs and counters.
pub(crate) struct Replay<'a> {
    pub(crate) inj: &'a mut Injector,
    pub(crate) nflog: &'a mut NflogSocket,
    pub(crate) stat: &'a mut StatFile,
    pub(crate) nonce: u32,
    pub(crate) cfg: &'a OracleConfig,
}

pub(crate) fn stat_err(e: String) -> OracleError {
    OracleError::io(
        "reading /proc/net/stat/nf_conntrack",
        std::io::Error::other(e),
    )
}

/// Sleeps until `when`, in slices, watching for signals.
fn sleep_until(when: Instant) -> Result<(), OracleError> {
    loop {
        interrupted()?;
        let now = Instant::now();
        if now >= when {
            return Ok(());
        }
        std::thread::sleep((when - now).min(SLICE));
    }
}

impl Replay<'_> {
    /// Injects every packet at its paced time; returns the results and t0.
    fn all(
        &mut self,
        packets: &[InjectPacket],
    ) -> Result<(Vec<KernelPacket>, Instant), OracleError> {
        inject::pin_to_current_cpu().map_err(|e| OracleError::io("pinning to one CPU", e))?;
        let mut prev = self.stat.read().map_err(stat_err)?;
        let mut out = Vec::with_capacity(packets.len());
        let mut t0 = None;
        let mut due = Duration::ZERO;
        let mut last_ts = packets.first().map_or(0, |p| p.ts_ns);
        for (seq, p) in (1u64..).zip(packets) {
            let gap = Duration::from_nanos(p.ts_ns.saturating_sub(last_ts));
            last_ts = p.ts_ns;
            due += gap.min(self.cfg.max_gap);
            if let Some(t0) = t0 {
                sleep_until(t0 + due)?;
            } else {
                interrupted()?;
            }
            let now = Instant::now();
            let start = *t0.get_or_insert(now);
            let offset = (now - start).as_nanos() as u64;
            let logs = self.one(p, seq)?;
            let cur = self.stat.read().map_err(stat_err)?;
            let mut kp = assemble(p.index, offset, &logs);
            kp.counters = cur.delta(&prev);
            prev = cur;
            out.push(kp);
        }
        Ok((out, t0.unwrap_or_else(Instant::now)))
    }

    /// Sends one packet and its barrier; returns the logs the packet caused.
    fn one(&mut self, p: &InjectPacket, seq: u64) -> Result<Vec<LogMsg>, OracleError> {
        let side = format!("{:?}", p.side).to_lowercase();
        self.inj
            .send_packet(p.side, &p.l3)
            .map_err(|e| OracleError::Packet {
                index: p.index,
                reason: format!("injecting {} bytes on the {side} side: {e}", p.l3.len()),
            })?;
        self.sync(p.side, seq, p.index)
    }

    /// Sends barrier `seq` from `side` and returns the logs that came before it: once it
    /// is back, everything injected earlier from that side (on this CPU) has been
    /// handled. `index` names the packet in a timeout error.
    pub(crate) fn sync(
        &mut self,
        side: crate::Side,
        seq: u64,
        index: u64,
    ) -> Result<Vec<LogMsg>, OracleError> {
        self.inj
            .send_barrier(side, seq)
            .map_err(|e| OracleError::io(format!("sending barrier {seq}"), e))?;
        let deadline = Instant::now() + self.cfg.barrier_timeout;
        let mut logs = Vec::new();
        loop {
            let slice = (Instant::now() + SLICE).min(deadline);
            let scanned = logs.len();
            self.nflog.wait(slice, &mut logs)?;
            if let Some(pos) = logs[scanned..].iter().position(|l| self.is_barrier(l, seq)) {
                // Anything after our barrier cannot come from this packet.
                logs.truncate(scanned + pos);
                return Ok(logs);
            }
            interrupted()?;
            if Instant::now() >= deadline {
                return Err(OracleError::BarrierTimeout {
                    index,
                    seq,
                    timeout: self.cfg.barrier_timeout,
                });
            }
        }
    }

    fn is_barrier(&self, l: &LogMsg, seq: u64) -> bool {
        l.group == nft::GROUP
            && nft::classify(&l.prefix) == Some(Mark::Barrier)
            && inject::barrier_seq(&l.payload, self.nonce) == Some(seq)
    }
}

/// Turns the logs one packet caused into its [`KernelPacket`] (counters left empty).
pub(crate) fn assemble(index: u64, inject_offset_ns: u64, logs: &[LogMsg]) -> KernelPacket {
    let mut kp = KernelPacket {
        index,
        inject_offset_ns,
        seen: false,
        ctstate: None,
        direction: None,
        forwarded: false,
        local_in: false,
        log: Vec::new(),
        counters: Default::default(),
    };
    for l in logs {
        if l.group == nft::KERNEL_GROUP {
            kp.log.push(l.prefix.trim_end().to_owned());
            continue;
        }
        if l.group != nft::GROUP {
            continue;
        }
        match nft::classify(&l.prefix) {
            Some(Mark::Seen) => kp.seen = true,
            Some(Mark::State(s, d)) => {
                // A packet crosses prerouting once; keep the first if ever more.
                if kp.ctstate.is_none() {
                    kp.ctstate = Some(s);
                    kp.direction = d;
                }
            }
            Some(Mark::Forwarded) => kp.forwarded = true,
            Some(Mark::LocalIn) => kp.local_in = true,
            Some(Mark::Barrier) | None => {}
        }
    }
    kp
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

pub(crate) fn conntrack(ns: &NetnsSet, args: &[&str]) -> Result<String, OracleError> {
    let mut cmd = netns::command_in(ns.file(Ns::Fw), "conntrack");
    cmd.args(args);
    netns::run_command(cmd, None)
}

/// Reads the final state of the firewall namespace.
pub(crate) fn dump(
    ns: &NetnsSet,
    stat: &mut StatFile,
    packets: Vec<KernelPacket>,
    t0: Instant,
) -> Result<KernelRun, OracleError> {
    let dump_offset_ns = t0.elapsed().as_nanos() as u64;
    let snap: Snapshot = stat.read().map_err(stat_err)?;
    let (proc_table, expect) = netns::in_netns(ns.file(Ns::Fw), || {
        let read = |name: &str| {
            std::fs::read_to_string(format!("/proc/thread-self/net/{name}"))
                .map_err(|e| OracleError::io(format!("reading /proc/net/{name}"), e))
        };
        Ok::<_, OracleError>((read("nf_conntrack")?, read("nf_conntrack_expect")?))
    })
    .map_err(|e| OracleError::io("entering the firewall namespace", e))??;
    // `-o labels` adds `labels=` to entries that carry labels (names from
    // /etc/xtables/connlabel.conf; without that file conntrack prints a warning on stderr
    // and no labels); every other line is as plain `-L` prints it.
    let table = conntrack(ns, &["-L", "-o", "labels"])?;
    let table_extended = conntrack(ns, &["-L", "-o", "extended"])?;
    let expect_table = conntrack(ns, &["-L", "expect"])?;
    let stats_text = conntrack(ns, &["-S"])?;
    let count_text = conntrack(ns, &["-C"])?;
    let count = count_text
        .trim()
        .parse::<u64>()
        .map_err(|e| OracleError::Command {
            command: "conntrack -C".to_owned(),
            status: format!("unexpected output {count_text:?}: {e}"),
            stderr: String::new(),
        })?;
    Ok(KernelRun {
        packets,
        table: lines(&table),
        table_extended: lines(&table_extended),
        proc_table: lines(&proc_table),
        expect: lines(&expect),
        expect_table: lines(&expect_table),
        stats: snap.totals(),
        stats_text,
        count,
        dump_offset_ns,
        events: Vec::new(),
        expect_events: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CtState, Direction};

    fn msg(group: u16, prefix: &str) -> LogMsg {
        LogMsg {
            group,
            hook: None,
            prefix: prefix.to_owned(),
            payload: Vec::new(),
        }
    }

    #[test]
    fn assemble_a_forwarded_reply() {
        let kp = assemble(
            7,
            1000,
            &[
                msg(100, "ctko:seen"),
                msg(
                    0,
                    "nf_ct_proto_6: packet (index 3) in dir 1 ignored, state SYN_RECV ",
                ),
                msg(100, "ctko:ct:established:reply"),
                msg(100, "ctko:fwd"),
                msg(5, "a user log in another group"),
            ],
        );
        assert!(kp.seen && kp.forwarded && !kp.local_in);
        assert_eq!(kp.ctstate, Some(CtState::Established));
        assert_eq!(kp.direction, Some(Direction::Reply));
        assert_eq!(
            kp.log,
            vec!["nf_ct_proto_6: packet (index 3) in dir 1 ignored, state SYN_RECV"]
        );
        assert_eq!((kp.index, kp.inject_offset_ns), (7, 1000));
    }

    #[test]
    fn assemble_nothing_seen() {
        let kp = assemble(0, 0, &[]);
        assert!(!kp.seen);
        assert_eq!(kp.ctstate, None);
        assert_eq!(kp.direction, None);
    }

    #[test]
    fn assemble_invalid_has_no_direction() {
        let kp = assemble(0, 0, &[msg(100, "ctko:seen"), msg(100, "ctko:ct:invalid")]);
        assert_eq!(kp.ctstate, Some(CtState::Invalid));
        assert_eq!(kp.direction, None);
    }
}
