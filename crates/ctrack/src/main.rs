//! `ctrack`: connection tracking as the Linux kernel does it.
//!
//! A thin binary: arguments → resolved options → the library's commands.

mod bench;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use ctrack::diff::{self, KnownDifference};
use ctrack::input::{self, Loaded};
use ctrack::kernel::{self, KernelOptions};
use ctrack::output::{self, OutputFormat};
use ctrack::replay::{Replay, ReplayOptions};
use ctrack_core::format;
use ctrack_core::topology::{Cidr, Side};
use ctrack_core::Sysctls;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "ctrack",
    version,
    about = "Connection tracking as the Linux kernel does it"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Replay captures through the engine and print the table as `conntrack -L` would.
    Replay(ReplayArgs),
    /// Replay a capture through the live Linux kernel (root; network namespaces).
    KernelReplay(KernelArgs),
    /// Replay a capture through both and print every disagreement.
    Diff(DiffArgs),
    /// Run a synthetic benchmark workload (issue 6; see BENCHMARKS.md).
    Bench(bench::BenchArgs),
}

#[derive(Args, Clone)]
struct CommonArgs {
    /// Set a sysctl (kernel name, e.g. nf_conntrack_tcp_loose=0); repeatable.
    #[arg(long = "sysctl", value_name = "NAME=VALUE")]
    sysctls: Vec<String>,
    /// Packets whose source is in this prefix enter on the client side; repeatable.
    #[arg(long = "client-net", value_name = "CIDR")]
    client_nets: Vec<String>,
    /// Rename the router's interfaces: client=NAME or server=NAME; repeatable.
    #[arg(long = "ifname", value_name = "SIDE=NAME")]
    ifnames: Vec<String>,
    /// An address of the router's interface on a side: client=ADDR or server=ADDR
    /// (masquerade and redirect use them; they are local addresses); repeatable.
    #[arg(long = "addr", value_name = "SIDE=ADDR")]
    addrs: Vec<String>,
}

#[derive(Args)]
struct ReplayArgs {
    /// pcap or pcapng files, replayed in order through one table.
    #[arg(required = true)]
    captures: Vec<PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
    /// Print one line per packet (with -o json: JSON lines).
    #[arg(long)]
    packets: bool,
    /// Print conntrack -E style events as they happen.
    #[arg(long)]
    events: bool,
    /// Print conntrack -S counters at the end.
    #[arg(long)]
    stats: bool,
    /// Output format: text, extended, id, proc, json, timestamp (comma-separated).
    #[arg(short = 'o', long = "output", default_value = "text")]
    output: String,
    /// Seed of the hash key and random choices.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// An nftables ruleset (nft -f text, or the JSON of `nft -j list ruleset`).
    #[arg(long)]
    ruleset: Option<PathBuf>,
    /// An address of the router itself (INPUT/OUTPUT paths); repeatable.
    #[arg(long = "local", value_name = "ADDR")]
    locals: Vec<std::net::IpAddr>,
    /// Write the packets as they leave the router (NAT applied, dropped ones absent) to
    /// this pcap file (raw IP, nanosecond timestamps).
    #[arg(long, value_name = "OUT.pcap")]
    write: Option<PathBuf>,
    /// With `--write`: one wire's view instead — every packet arriving from this side
    /// as it arrived (before NAT, whatever its fate), and every packet forwarded to
    /// this side as it left (NAT applied). The written capture is consistent, so it
    /// can be replayed again (e.g. into the kernel).
    #[arg(long = "write-side", value_name = "client|server", requires = "write")]
    write_side: Option<WriteSide>,
    /// Print the expectation table as `conntrack -L expect` (empty until helpers exist).
    #[arg(long)]
    expect: bool,
    /// Draw the table over capture time into this SVG or PNG file (entries by state,
    /// ASSURED or not, drops per second, nf_conntrack_max).
    #[arg(long, value_name = "FILE.svg|FILE.png")]
    report: Option<PathBuf>,
    /// Write the same series as JSON.
    #[arg(long = "report-json", value_name = "FILE")]
    report_json: Option<PathBuf>,
    /// After `--`: a conntrack(8) command line run on the final table and the events,
    /// e.g. `-- -L -p tcp --dport 80 -o save` (see README).
    #[arg(last = true, value_name = "CONNTRACK-ARGS")]
    conntrack: Vec<String>,
}

/// The wire `--write-side` records.
#[derive(Clone, Copy, clap::ValueEnum)]
enum WriteSide {
    /// The client side's wire.
    Client,
    /// The server side's wire.
    Server,
}

impl WriteSide {
    fn side(self) -> ctrack_core::topology::Side {
        match self {
            WriteSide::Client => ctrack_core::topology::Side::Client,
            WriteSide::Server => ctrack_core::topology::Side::Server,
        }
    }
}

#[derive(Args)]
struct KernelArgs {
    /// A pcap or pcapng file.
    capture: PathBuf,
    #[command(flatten)]
    common: CommonArgs,
    /// An nft ruleset loaded into the firewall namespace.
    #[arg(long)]
    ruleset: Option<PathBuf>,
    /// Output format: text or json.
    #[arg(short = 'o', long = "output", default_value = "text")]
    output: String,
    /// Cap on each gap between capture timestamps, in seconds.
    #[arg(long, default_value_t = 3.0)]
    max_gap: f64,
    /// Keep the namespaces after the run (debugging).
    #[arg(long)]
    keep_netns: bool,
}

#[derive(Args)]
struct DiffArgs {
    /// A pcap or pcapng file.
    capture: PathBuf,
    #[command(flatten)]
    common: CommonArgs,
    /// Cap on each gap between capture timestamps, in seconds.
    #[arg(long, default_value_t = 3.0)]
    max_gap: f64,
    /// A known-differences file (JSON) whose entries are reported but do not fail.
    #[arg(long)]
    known: Option<PathBuf>,
    /// Print every packet's pair of results, not only the differences.
    #[arg(long)]
    verbose: bool,
    /// An nft ruleset, loaded into the kernel's firewall and into the engine.
    #[arg(long)]
    ruleset: Option<PathBuf>,
}

fn parse_sysctls(list: &[String]) -> Result<(Sysctls, Vec<(String, String)>)> {
    let mut s = Sysctls::default();
    let mut pairs = Vec::new();
    for kv in list {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("--sysctl {kv}: expected NAME=VALUE");
        };
        s.set(k.trim(), v.trim())
            .map_err(|e| anyhow::anyhow!("--sysctl {kv}: {e}"))?;
        pairs.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok((s, pairs))
}

fn parse_nets(list: &[String]) -> Result<Vec<Cidr>> {
    list.iter()
        .map(|s| Cidr::parse(s).map_err(|e| anyhow::anyhow!("--client-net {e}")))
        .collect()
}

fn parse_ifnames(list: &[String]) -> Result<(String, String)> {
    let mut names = ("client".to_string(), "server".to_string());
    for kv in list {
        match kv.split_once('=') {
            Some(("client", n)) if !n.is_empty() && n.len() < 16 => names.0 = n.to_string(),
            Some(("server", n)) if !n.is_empty() && n.len() < 16 => names.1 = n.to_string(),
            _ => bail!("--ifname {kv}: expected client=NAME or server=NAME (1-15 characters)"),
        }
    }
    Ok(names)
}

/// `--addr SIDE=ADDR` pairs.
fn parse_addrs(list: &[String]) -> Result<Vec<(Side, std::net::IpAddr)>> {
    list.iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("--addr {kv}: expected client=ADDR or server=ADDR")
            })?;
            let side = match k {
                "client" => Side::Client,
                "server" => Side::Server,
                _ => bail!("--addr {kv}: the side is client or server"),
            };
            let a = v
                .parse()
                .map_err(|_| anyhow::anyhow!("--addr {kv}: `{v}` is not an address"))?;
            Ok((side, a))
        })
        .collect()
}

/// `--ruleset`: read and compile (errors print as nft prints them).
fn load_ruleset(path: Option<&std::path::Path>) -> Result<Option<ctrack_rules::Ruleset>> {
    match path {
        None => Ok(None),
        Some(p) => ctrack_rules::load_file(p)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{e}")),
    }
}

fn load(path: &std::path::Path, nets: &[Cidr]) -> Result<Loaded> {
    input::load(path, nets).with_context(|| format!("cannot read {}", path.display()))
}

fn cmd_replay(a: ReplayArgs) -> Result<ExitCode> {
    let (sysctls, _) = parse_sysctls(&a.common.sysctls)?;
    let nets = parse_nets(&a.common.client_nets)?;
    parse_ifnames(&a.common.ifnames)?;
    let fmt = OutputFormat::parse(&a.output).map_err(anyhow::Error::msg)?;
    let mut ct_args = a.conntrack.clone();
    if a.expect && ct_args.is_empty() {
        ct_args = vec!["-L".to_string(), "expect".to_string()];
    }
    let mut session = match ct_args.is_empty() {
        true => None,
        false => match ctrack::listing::Session::parse(&ct_args) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("{e}");
                return Ok(ExitCode::from(e.status));
            }
        },
    };
    for w in session.iter().flat_map(|s| s.listing.warnings.iter()) {
        eprintln!("{w}");
    }
    let ct_events = session
        .as_ref()
        .is_some_and(|s| s.listing.command == ctrack::listing::Command::Event);
    let events = a.events || ct_events;
    let opts = ReplayOptions {
        sysctls,
        seed: a.seed,
        events,
        ruleset: load_ruleset(a.ruleset.as_deref())?,
        locals: a.locals.clone(),
        ifnames: Some(parse_ifnames(&a.common.ifnames)?),
        addrs: parse_addrs(&a.common.addrs)?,
    };
    let need_side = a.packets || a.ruleset.is_some() || a.write_side.is_some();
    let wire = a.write_side.map(WriteSide::side);
    let mut r = Replay::new(&opts);
    let mut writer = match &a.write {
        Some(p) => Some(ctrack::write::PcapWriter::new(io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot write {}", p.display()))?,
        ))?),
        None => None,
    };
    // Only `--write` reads the packet as it left the router.
    r.pipeline.keep_last_packet(writer.is_some());
    let mut capacity = (a.report.is_some() || a.report_json.is_some())
        .then(|| ctrack::capacity::Capacity::new(r.ct.sysctls().nf_conntrack_max));
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut failed = false;
    let mut non_ip = 0u64;
    for path in &a.captures {
        let cap = ctrack_capture::Capture::open(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut sides = ctrack_core::topology::SideAssigner::new(nets.clone());
        // A progress bar for long replays; indicatif hides it when stderr is not a terminal.
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(cap.bytes().len() as u64),
            indicatif::ProgressDrawTarget::stderr(),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        // One record through the pipeline; `false` stops the replay (a broken record).
        let process = |r: &mut Replay, (rec, hint): &ctrack::feed::Item<'_>| -> Result<bool> {
            let (rec, hint) = match rec {
                Ok(r) => (*r, *hint),
                Err(e) => {
                    eprintln!("ctrack: {e}");
                    failed = true;
                    return Ok(false);
                }
            };
            let Some(l3) = rec.payload.l3() else {
                non_ip += 1;
                return Ok(true);
            };
            // The side only matters to `iifname`/`oifname` rules and the per-packet
            // report; skip the flow-map lookup when neither is asked for.
            let side = if need_side {
                sides.side(l3)
            } else {
                ctrack_core::topology::Side::Client
            };
            // The full report only when a line is printed for the packet.
            let (rep, drop, fate) = if a.packets {
                let rep = r.packet(rec.index, rec.ts_ns, l3, side);
                let (drop, fate) = (rep.drop, rep.fate);
                (Some(rep), drop, fate)
            } else {
                let o = r.packet_outcome(rec.ts_ns, l3, side, hint);
                (None, o.drop, ctrack::report::Fate::from(o.fate))
            };
            if let Some(w) = writer.as_mut() {
                let forwarded = !drop && fate == ctrack::report::Fate::Forwarded;
                match wire {
                    // Every packet as it leaves, on whichever side.
                    None if forwarded => w.packet(rec.ts_ns, r.last_packet())?,
                    None => {}
                    // One wire: what arrived from it, and what was forwarded onto it.
                    Some(wire) if side == wire => w.packet(rec.ts_ns, l3)?,
                    Some(_) if forwarded => w.packet(rec.ts_ns, r.last_packet())?,
                    Some(_) => {}
                }
            }
            if let Some(c) = capacity.as_mut() {
                c.observe(&r.ct, r.now);
            }
            if let Some(rep) = rep {
                let line = if fmt.json { rep.json() } else { rep.human() };
                writeln!(out, "{line}")?;
            }
            if events {
                output::print_events(r.ct.drain_events(), fmt, session.as_mut(), &mut out)?;
                print_expect_events(r, session.as_mut(), &mut out)?;
            }
            Ok(true)
        };
        // The records come from a reader thread that also parses and hashes each
        // packet; the next packets' buckets are prefetched while one is processed.
        ctrack::feed::replay(&cap, &mut r, |offset| bar.set_position(offset), process)?;
        bar.finish_and_clear();
    }
    if let Some(w) = writer.take() {
        w.finish()?;
    }
    let now = r.now;
    r.advance(now);
    if let Some(c) = capacity.as_mut() {
        c.finish(&r.ct, now);
        let title = a
            .captures
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        if let Some(p) = &a.report {
            let svg = c.to_svg(&format!("ctrack replay {title}"));
            let bytes = match p.extension().and_then(|e| e.to_str()) {
                Some("svg") => svg.into_bytes(),
                #[cfg(feature = "png")]
                Some("png") => ctrack::capacity::svg_to_png(&svg).map_err(anyhow::Error::msg)?,
                _ => bail!("--report {}: expected FILE.svg or FILE.png", p.display()),
            };
            std::fs::write(p, bytes).with_context(|| format!("cannot write {}", p.display()))?;
        }
        if let Some(p) = &a.report_json {
            std::fs::write(p, c.to_json())
                .with_context(|| format!("cannot write {}", p.display()))?;
        }
    }
    if events {
        output::print_events(r.ct.drain_events(), fmt, session.as_mut(), &mut out)?;
        print_expect_events(&mut r, session.as_mut(), &mut out)?;
    }
    let session_footer = match session.as_mut() {
        Some(s) => output::finish_session(s, &r.ct, now, &mut out)?,
        None => None,
    };
    let lines = match session {
        Some(_) => Vec::new(),
        None => output::table_lines(&r.ct, now, fmt),
    };
    if !a.packets && !a.events || a.stats {
        // The table is the default output; with --packets/--events it is still printed
        // unless only per-packet output was asked for.
    }
    if !(a.packets || a.events) || a.stats {
        for l in &lines {
            writeln!(out, "{l}")?;
        }
    }
    if a.stats {
        if fmt.json {
            writeln!(out, "{}", serde_json::to_string(&r.ct.stats())?)?;
        } else {
            write!(out, "{}", format::stats_lines(&[r.ct.stats()]))?;
        }
        for l in r.pipeline.counter_lines() {
            writeln!(out, "{l}")?;
        }
    }
    out.flush()?;
    if let Some(f) = &session_footer {
        eprintln!("{f}");
    } else if session.is_none() && (!(a.packets || a.events) || a.stats) {
        eprintln!("{}", format::summary_line(lines.len()));
    }
    if non_ip > 0 {
        eprintln!("ctrack: {non_ip} non-IP records skipped");
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `conntrack -E expect` lines, when the conntrack(8) command line asked for them.
fn print_expect_events(
    r: &mut Replay,
    session: Option<&mut ctrack::listing::Session>,
    out: &mut dyn Write,
) -> Result<()> {
    let evs = r.ct.drain_expect_events();
    if let Some(s) = session {
        for ev in &evs {
            s.expect_event(ev, out)?;
        }
    }
    Ok(())
}

fn kernel_opts(c: &CommonArgs, max_gap: f64) -> Result<KernelOptions> {
    let (_, pairs) = parse_sysctls(&c.sysctls)?;
    if !(max_gap.is_finite() && max_gap >= 0.0) {
        bail!("--max-gap {max_gap}: expected a non-negative number of seconds");
    }
    Ok(KernelOptions {
        sysctls: pairs,
        ifnames: parse_ifnames(&c.ifnames)?,
        max_gap: Duration::from_secs_f64(max_gap),
        addrs: parse_addrs(&c.addrs)?,
        ..KernelOptions::default()
    })
}

fn cmd_kernel(a: KernelArgs) -> Result<ExitCode> {
    let nets = parse_nets(&a.common.client_nets)?;
    let fmt = OutputFormat::parse(&a.output).map_err(anyhow::Error::msg)?;
    let mut opts = kernel_opts(&a.common, a.max_gap)?;
    opts.ruleset = a.ruleset.clone();
    opts.keep_netns = a.keep_netns;
    let loaded = load(&a.capture, &nets)?;
    if let Some(e) = &loaded.error {
        eprintln!("ctrack: {e}");
    }
    let run = kernel::run(&loaded, &opts).map_err(anyhow::Error::msg)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    for rep in kernel::reports(&run, &loaded) {
        let line = if fmt.json { rep.json() } else { rep.human() };
        writeln!(out, "{line}")?;
    }
    if fmt.json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"table": run.table, "proc": run.proc_table, "stats": run.stats, "count": run.count, "events": run.events.iter().map(|e| e.line.clone()).collect::<Vec<_>>(), "expect_events": run.expect_events.iter().map(|e| e.line.clone()).collect::<Vec<_>>()})
        )?;
    } else {
        writeln!(out, "# conntrack -L")?;
        for l in &run.table {
            writeln!(out, "{l}")?;
        }
        writeln!(out, "# /proc/net/nf_conntrack")?;
        for l in &run.proc_table {
            writeln!(out, "{l}")?;
        }
        writeln!(out, "# conntrack -S")?;
        write!(out, "{}", run.stats_text)?;
        writeln!(out, "# conntrack -E")?;
        for e in &run.events {
            writeln!(out, "{}", e.line)?;
        }
        writeln!(out, "# conntrack -E expect")?;
        for e in &run.expect_events {
            writeln!(out, "{}", e.line)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_diff(a: DiffArgs) -> Result<ExitCode> {
    let nets = parse_nets(&a.common.client_nets)?;
    let (sysctls, _) = parse_sysctls(&a.common.sysctls)?;
    let kopts = kernel_opts(&a.common, a.max_gap)?;
    let known: Vec<KnownDifference> = match &a.known {
        Some(p) => diff::load_known(p).map_err(anyhow::Error::msg)?,
        None => Vec::new(),
    };
    let loaded = load(&a.capture, &nets)?;
    let name = a
        .capture
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ropts = ReplayOptions {
        sysctls,
        ruleset: load_ruleset(a.ruleset.as_deref())?,
        ifnames: Some(kopts.ifnames.clone()),
        addrs: kopts.addrs.clone(),
        ..ReplayOptions::default()
    };
    let mut kopts = kopts;
    kopts.ruleset = a.ruleset.clone();
    let res = diff::diff(&name, &loaded, &kopts, &ropts, &known).map_err(anyhow::Error::msg)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    if a.verbose {
        for (o, k) in res.ours.iter().zip(res.theirs.iter()) {
            writeln!(out, "ours   {}", o.human())?;
            writeln!(out, "kernel {}", k.human())?;
        }
    }
    for d in &res.differences {
        writeln!(out, "{d}")?;
    }
    writeln!(out, "{}", res.summary())?;
    out.flush()?;
    Ok(if res.unknown().next().is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Replay(a) => cmd_replay(a),
        Cmd::KernelReplay(a) => cmd_kernel(a),
        Cmd::Diff(a) => cmd_diff(a),
        Cmd::Bench(a) => bench::run(a),
    };
    match r {
        Ok(c) => c,
        Err(e) => {
            if let Some(io) = e.downcast_ref::<io::Error>() {
                if io.kind() == io::ErrorKind::BrokenPipe {
                    return ExitCode::SUCCESS;
                }
            }
            eprintln!("ctrack: {e:#}");
            ExitCode::from(2)
        }
    }
}
