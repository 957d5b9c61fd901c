//! Measures the oracle's throughput: N packets (TCP handshakes, data, UDP pairs) with no
//! capture-time gaps, then prints packets per second.
//!
//! ```text
//! sudo cargo run --release -p ctrack-oracle --example oracle_bench -- 5000
//! ```

use ctrack_oracle::craft::{self, tcp_flags as F, Tcp};
use ctrack_oracle::{available, run, CtState, InjectPacket, OracleConfig, Side};
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::Instant;

fn workload(n: usize) -> Vec<(Side, Vec<u8>)> {
    let c = Ipv4Addr::new(10, 1, 0, 1);
    let s = Ipv4Addr::new(10, 2, 0, 1);
    let mut out = Vec::with_capacity(n + 8);
    let mut flow = 0u16;
    while out.len() < n {
        let port = 10000 + flow;
        flow = flow.wrapping_add(1);
        let (cs, ss) = (1000u32, 5000u32);
        out.push((
            Side::Client,
            craft::tcp4(c, s, &Tcp::new(port, 80, F::SYN).seq_ack(cs, 0), &[]),
        ));
        out.push((
            Side::Server,
            craft::tcp4(
                s,
                c,
                &Tcp::new(80, port, F::SYN | F::ACK).seq_ack(ss, cs + 1),
                &[],
            ),
        ));
        out.push((
            Side::Client,
            craft::tcp4(
                c,
                s,
                &Tcp::new(port, 80, F::ACK).seq_ack(cs + 1, ss + 1),
                &[],
            ),
        ));
        out.push((
            Side::Client,
            craft::tcp4(
                c,
                s,
                &Tcp::new(port, 80, F::ACK | F::PSH).seq_ack(cs + 1, ss + 1),
                b"GET /",
            ),
        ));
        out.push((Side::Client, craft::udp4(c, s, port, 53, b"q")));
        out.push((Side::Server, craft::udp4(s, c, 53, port, b"a")));
    }
    out.truncate(n);
    out
}

fn main() -> ExitCode {
    if let Err(why) = available() {
        eprintln!("the kernel oracle cannot run here: {why}");
        return ExitCode::from(2);
    }
    let n = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5000usize);
    let packets: Vec<InjectPacket> = workload(n)
        .into_iter()
        .enumerate()
        .map(|(i, (side, l3))| InjectPacket {
            index: i as u64,
            ts_ns: 0,
            side,
            l3,
        })
        .collect();
    let start = Instant::now();
    let kernel = match run(&packets, &OracleConfig::default()) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("oracle run failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let total = start.elapsed();
    let inject = kernel
        .packets
        .last()
        .map_or(0.0, |p| p.inject_offset_ns as f64 / 1e9);
    let new = kernel
        .packets
        .iter()
        .filter(|p| p.ctstate == Some(CtState::New))
        .count();
    // The workload repeats: SYN new, SYN-ACK established, ACK, data, UDP new, UDP reply.
    let expected = [
        CtState::New,
        CtState::Established,
        CtState::Established,
        CtState::Established,
        CtState::New,
        CtState::Established,
    ];
    let wrong = kernel
        .packets
        .iter()
        .enumerate()
        .filter(|(i, p)| p.ctstate != Some(expected[i % 6]) || !p.forwarded)
        .count();
    println!(
        "{n} packets: injection phase {inject:.3} s = {:.0} pkt/s; whole run {:.3} s = {:.0} pkt/s; \
         {new} new, {} entries at the end, {wrong} packets not as expected",
        (n.saturating_sub(1)) as f64 / inject.max(1e-9),
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64(),
        kernel.count
    );
    ExitCode::SUCCESS
}
