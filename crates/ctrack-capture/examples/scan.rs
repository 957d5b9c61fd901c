//! Throughput check: counts the IP records of a capture and prints records/s.
//!
//! `cargo run --release -p ctrack-capture --example scan -- FILE [PASSES]`
//!
//! Opens the file once (memory map), then walks all its records PASSES times
//! (default 20), touching every IP packet's first and last byte so the work
//! cannot be optimised away, and prints the best and median pass.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use ctrack_capture::{Capture, IpFamily, Payload};

/// One pass's counts.
#[derive(Default, PartialEq, Eq, Debug, Clone, Copy)]
struct Counts {
    /// All packet records.
    records: u64,
    /// IPv4 records.
    v4: u64,
    /// IPv6 records.
    v6: u64,
    /// L3 bytes.
    l3_bytes: u64,
    /// Checksum over the first and last L3 byte (keeps the reads alive).
    touch: u64,
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(path) = args.next().map(PathBuf::from) else {
        eprintln!("usage: scan FILE [PASSES]");
        return ExitCode::from(2);
    };
    let passes: usize = args
        .next()
        .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or(20)
        .max(1);

    let t0 = Instant::now();
    let cap = match Capture::open(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{}: {:?}, {} bytes, opened in {:?}",
        cap.name(),
        cap.format(),
        cap.bytes().len(),
        t0.elapsed()
    );

    // The first pass after opening pays for mapping the pages in: that is
    // the figure for a single end-to-end read of a warm file.
    let start = Instant::now();
    let first = scan(&cap);
    let first_s = start.elapsed().as_secs_f64();

    let mut times = Vec::with_capacity(passes);
    let mut counts = Counts::default();
    for _ in 0..passes {
        let start = Instant::now();
        let c = scan(&cap);
        times.push(start.elapsed().as_secs_f64());
        counts = c;
    }
    // A last pass that tallies the non-IP reasons (allocates; not timed).
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for rec in cap.records() {
        match rec {
            Ok(r) => {
                if let Payload::NonIp { reason } = r.payload {
                    *reasons.entry(reason.to_string()).or_default() += 1;
                }
            }
            Err(e) => {
                println!("error: {e}");
                break;
            }
        }
    }

    times.sort_by(f64::total_cmp);
    let best = times[0];
    let median = times[times.len() / 2];
    let rate = |t: f64| counts.records as f64 / t;
    println!(
        "records {} (IPv4 {}, IPv6 {}, non-IP {}), L3 bytes {}, touch {}",
        counts.records,
        counts.v4,
        counts.v6,
        counts.records - counts.v4 - counts.v6,
        counts.l3_bytes,
        counts.touch
    );
    for (reason, n) in &reasons {
        println!("  non-IP: {n} x {reason}");
    }
    assert_eq!(first, counts, "passes agree");
    println!(
        "first pass after open: {:.3} ms = {:.1} Mrecords/s",
        first_s * 1e3,
        counts.records as f64 / first_s / 1e6
    );
    println!(
        "{passes} passes: best {:.3} ms = {:.1} Mrecords/s ({:.2} GB/s), median {:.3} ms = {:.1} Mrecords/s",
        best * 1e3,
        rate(best) / 1e6,
        cap.bytes().len() as f64 / best / 1e9,
        median * 1e3,
        rate(median) / 1e6
    );
    ExitCode::SUCCESS
}

/// One pass over every record.
fn scan(cap: &Capture) -> Counts {
    let mut c = Counts::default();
    let mut recs = cap.records();
    while let Some(Ok(r)) = recs.next_record() {
        c.records += 1;
        if let Payload::Ip { family, l3, vlans } = r.payload {
            match family {
                IpFamily::V4 => c.v4 += 1,
                IpFamily::V6 => c.v6 += 1,
            }
            c.l3_bytes += l3.len() as u64;
            let first = l3.first().copied().unwrap_or(0);
            let last = l3.last().copied().unwrap_or(0);
            c.touch = c
                .touch
                .wrapping_add(u64::from(first) ^ u64::from(last) ^ r.ts_ns)
                .wrapping_add(vlans.len() as u64);
        }
    }
    c
}
