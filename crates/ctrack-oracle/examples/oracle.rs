//! Replays a few hand-built packets through the live kernel and prints the result as JSON.
//!
//! ```text
//! sudo cargo run -p ctrack-oracle --example oracle
//! ```
//! A TCP handshake 10.1.0.1:40000 → 10.2.0.1:80, a UDP query and answer, and an ICMP echo
//! request and reply. Exit status 2 when the oracle cannot run here (not root, no `nft`...).

use ctrack_oracle::craft::{self, tcp_flags, Tcp};
use ctrack_oracle::{available, run, InjectPacket, OracleConfig, Side};
use std::net::Ipv4Addr;
use std::process::ExitCode;

fn main() -> ExitCode {
    if let Err(why) = available() {
        eprintln!("the kernel oracle cannot run here: {why}");
        return ExitCode::from(2);
    }
    let c = Ipv4Addr::new(10, 1, 0, 1);
    let s = Ipv4Addr::new(10, 2, 0, 1);
    let syn = Tcp::new(40000, 80, tcp_flags::SYN).seq_ack(1000, 0);
    let syn_ack = Tcp::new(80, 40000, tcp_flags::SYN | tcp_flags::ACK).seq_ack(5000, 1001);
    let ack = Tcp::new(40000, 80, tcp_flags::ACK).seq_ack(1001, 5001);
    let l3 = [
        (Side::Client, craft::tcp4(c, s, &syn, &[])),
        (Side::Server, craft::tcp4(s, c, &syn_ack, &[])),
        (Side::Client, craft::tcp4(c, s, &ack, &[])),
        (Side::Client, craft::udp4(c, s, 5353, 53, b"query")),
        (Side::Server, craft::udp4(s, c, 53, 5353, b"answer")),
        (
            Side::Client,
            craft::icmp4_echo(c, s, false, 0x1234, 1, b"ping"),
        ),
        (
            Side::Server,
            craft::icmp4_echo(s, c, true, 0x1234, 1, b"ping"),
        ),
    ];
    let packets: Vec<InjectPacket> = l3
        .into_iter()
        .enumerate()
        .map(|(i, (side, l3))| InjectPacket {
            index: i as u64,
            ts_ns: i as u64 * 1_000_000,
            side,
            l3,
        })
        .collect();
    match run(&packets, &OracleConfig::default()) {
        Ok(kernel) => match serde_json::to_string_pretty(&kernel) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("serialising: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("oracle run failed: {e}");
            ExitCode::FAILURE
        }
    }
}
