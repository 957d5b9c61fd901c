//! The chain limit at confirm (kernel `__nf_conntrack_confirm`: `max_chainlen` = 50
//! plus a random draw below 30; a walk fails when more than `max_chainlen` nodes come
//! before the one it looks at): flows whose original tuples share one bucket are
//! confirmed while that chain holds at most 51 nodes, refused (`chaintoolong`,
//! `insert_failed`, `drop`) once it holds more than 80, and in between as the draw
//! says. The live kernel is compared by the parity suite's table scenarios; this pins
//! the engine's own arithmetic, off-by-one included.

use ctrack_core::conntrack::{invert, Config, Confirmed, Conntrack, Hook};
use ctrack_core::packet::checksum;
use ctrack_core::{Addr, Family, Instant, Sysctls, Tuple};

/// An IPv4 UDP packet 10.0.`a`.1:`sport` → 10.0.0.2:53 (UDP checksum 0: not checked).
fn udp(a: u8, sport: u16) -> Vec<u8> {
    let mut p = vec![
        0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, a, 1, 10, 0, 0, 2,
    ];
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&53u16.to_be_bytes());
    p.extend_from_slice(&8u16.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    let c = checksum::compute(0, &p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

#[test]
fn confirm_refuses_a_chain_longer_than_the_limit() {
    let mut sysctls = Sysctls::default();
    // The fewest buckets a table has (one page of heads), so flows that share one are
    // quick to find.
    sysctls.set("nf_conntrack_buckets", "512").expect("valid");
    let mut ct = Conntrack::new(Config {
        sysctls,
        seed: 1,
        events: false,
    });
    let tuple = |(a, sport): (u8, u16)| Tuple {
        src: Addr::v4([10, 0, a, 1]),
        dst: Addr::v4([10, 0, 0, 2]),
        src_u: sport,
        dst_u: 53,
        family: Family::V4,
        proto: 17,
    };
    // 120 flows whose original tuples fall in the bucket of the first.
    let bucket = ct.table().bucket(&tuple((0, 1000)), 0);
    let flows: Vec<(u8, u16)> = (0..=255u8)
        .flat_map(|a| (1000..2000u16).map(move |p| (a, p)))
        .filter(|&f| ct.table().bucket(&tuple(f), 0) == bucket)
        .take(120)
        .collect();
    assert_eq!(flows.len(), 120);
    let now = Instant::from_secs(1);
    let (mut inserted, mut refused) = (0u32, 0u32);
    let mut longest = 0;
    for &f in &flows {
        let t = ct.track(now, &udp(f.0, f.1), Hook::PreRouting, 0);
        // The original tuple's chain as confirm walks it (the new entry is not in it),
        // and the entry's draw (its creation number stands in for the kernel's random
        // value below 30).
        let chain = ct.table().chain_len(bucket);
        let id = t.entry.expect("a new entry");
        let max = 50 + ct.entry(id).expect("allocated").seq as usize % 30;
        let reply_bucket = ct
            .table()
            .bucket(&invert(&tuple(f)).expect("UDP inverts"), 0);
        // Inserted exactly when no node beyond `max` precedes any node of either walk:
        // both chains hold at most max + 1 nodes.
        let fits = chain <= max + 1 && ct.table().chain_len(reply_bucket) <= max + 1;
        match ct.confirm(now, &t) {
            Confirmed::Inserted => {
                assert!(fits, "inserted with a chain of {chain}, max {max}");
                inserted += 1;
            }
            Confirmed::Failed(_) => {
                assert!(!fits, "refused with a chain of {chain}, max {max}");
                refused += 1;
            }
            other => panic!("{other:?}"),
        }
        longest = longest.max(chain);
    }
    let s = ct.stats();
    // The chain went past the 51 nodes every draw allows, and confirms were refused.
    assert!(
        longest > 51 && refused > 0,
        "{inserted} inserted, {refused} refused"
    );
    assert_eq!(s.chaintoolong, refused, "{s:?}");
    assert_eq!(s.insert_failed, refused);
    assert_eq!(s.drop, refused);
    assert_eq!(ct.count(), inserted);
}
