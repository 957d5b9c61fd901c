//! `ctrack replay --write`: the packets as they leave the router, NAT applied, checked
//! independently of the rewriting code: every IPv4 header, TCP, UDP, ICMP and ICMPv6
//! checksum verified from the bytes with the plain RFC 1071 sum.
//!
//! (Replaying the written capture into the kernel needs one wire's view — the packets
//! leaving towards the server *and* the replies as the server sent them; `--write`
//! writes every packet as it leaves, on whichever side, so the two address spaces mix.
//! A per-side writer is the next step.)

use ctrack_capture::Capture;
use ctrack_core::packet::checksum;
use ctrack_core::{Addr, Family};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[derive(Deserialize)]
struct Entry {
    ruleset: String,
    scenarios: Vec<String>,
    #[serde(default)]
    addrs: Vec<String>,
    #[serde(default)]
    client_nets: Vec<String>,
}

/// Verify every checksum of one IP packet; returns a description of the first bad one.
fn bad_checksum(l3: &[u8]) -> Option<String> {
    let v = l3.first()? >> 4;
    let (family, src, dst, proto, off, end) = match v {
        4 => {
            let ihl = usize::from(l3[0] & 15) * 4;
            if !checksum::verify(&l3[..ihl]) {
                return Some("IPv4 header".into());
            }
            let tot = usize::from(u16::from_be_bytes([l3[2], l3[3]]));
            let s = Addr::v4([l3[12], l3[13], l3[14], l3[15]]);
            let d = Addr::v4([l3[16], l3[17], l3[18], l3[19]]);
            if u16::from_be_bytes([l3[6], l3[7]]) & 0x1fff != 0 {
                return None; // a non-first fragment carries no L4 header
            }
            (Family::V4, s, d, l3[9], ihl, tot.min(l3.len()))
        }
        6 => {
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&l3[8..24]);
            d.copy_from_slice(&l3[24..40]);
            let end = (40 + usize::from(u16::from_be_bytes([l3[4], l3[5]]))).min(l3.len());
            (Family::V6, Addr::v6(s), Addr::v6(d), l3[6], 40, end)
        }
        _ => return None,
    };
    let l4 = &l3[off..end];
    let ok = match proto {
        6 => checksum::verify_with_pseudo(family, &src, &dst, 6, l4),
        17 if l4.len() >= 8 && l4[6] == 0 && l4[7] == 0 => family == Family::V4,
        17 => checksum::verify_with_pseudo(family, &src, &dst, 17, l4),
        1 => checksum::verify(l4),
        58 => checksum::verify_with_pseudo(family, &src, &dst, 58, l4),
        _ => true,
    };
    (!ok).then(|| format!("protocol {proto}"))
}

#[test]
fn nat_rewritten_captures_have_valid_checksums() {
    let manifest: Vec<Entry> = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/rulesets/manifest.json")).expect("manifest"),
    )
    .expect("manifest parses");
    let nat: Vec<&Entry> = manifest
        .iter()
        .filter(|e| e.ruleset.starts_with("nat_"))
        .collect();
    assert!(nat.len() >= 8, "the NAT rulesets are in the manifest");
    let dir = std::env::temp_dir().join(format!("ctrack-write-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (mut packets, mut files) = (0usize, 0usize);
    for e in &nat {
        for s in &e.scenarios {
            let out = dir.join(format!("{}-{s}.pcap", e.ruleset));
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctrack"));
            cmd.arg("replay")
                .arg("--ruleset")
                .arg(root().join("tests/rulesets").join(&e.ruleset))
                .arg("--write")
                .arg(&out);
            for a in &e.addrs {
                cmd.arg("--addr").arg(a);
            }
            for n in &e.client_nets {
                cmd.arg("--client-net").arg(n);
            }
            cmd.arg(
                root()
                    .join("tests/scenarios/pcap")
                    .join(format!("{s}.pcap")),
            );
            let st = cmd.output().expect("run ctrack");
            assert!(
                st.status.success(),
                "{}: {}",
                e.ruleset,
                String::from_utf8_lossy(&st.stderr)
            );
            let cap = Capture::open(&out).expect("the written capture reads back");
            let mut recs = cap.records();
            while let Some(r) = recs.next_record() {
                let r = r.expect("record");
                let Some(l3) = r.payload.l3() else { continue };
                packets += 1;
                if let Some(what) = bad_checksum(l3) {
                    panic!(
                        "{} on {s}: packet {}: bad {what} checksum",
                        e.ruleset, r.index
                    );
                }
            }
            files += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("--write: {files} rewritten captures, {packets} packets, all checksums valid");
    assert!(packets > 0);
}
