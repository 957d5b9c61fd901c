//! Prints one line per record of a capture, for comparison with
//! `tcpdump -r FILE -tt -n -e`.
//!
//! `cargo run -p ctrack-capture --example dump -- FILE [COUNT]`

use std::path::PathBuf;
use std::process::ExitCode;

use ctrack_capture::{Capture, Payload};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(path) = args.next().map(PathBuf::from) else {
        eprintln!("usage: dump FILE [COUNT]");
        return ExitCode::from(2);
    };
    let count: usize = args
        .next()
        .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or(usize::MAX);
    let cap = match Capture::open(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}: {:?}", cap.name(), cap.format());
    for rec in cap.records().take(count) {
        let r = match rec {
            Ok(r) => r,
            Err(e) => {
                println!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let ts = format!("{}.{:09}", r.ts_ns / 1_000_000_000, r.ts_ns % 1_000_000_000);
        let what = match r.payload {
            Payload::Ip { family, l3, vlans } => {
                let head: Vec<String> = l3.iter().take(20).map(|b| format!("{b:02x}")).collect();
                format!(
                    "{family:?} vlans {vlans:?} l3 {} bytes: {}",
                    l3.len(),
                    head.join("")
                )
            }
            Payload::NonIp { reason } => format!("non-IP: {reason}"),
        };
        println!(
            "#{} {ts} if {} link {} caplen {} len {} {what}",
            r.index,
            r.interface,
            r.link_type,
            r.frame.len(),
            r.orig_len
        );
    }
    ExitCode::SUCCESS
}
