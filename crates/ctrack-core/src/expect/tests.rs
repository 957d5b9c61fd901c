//! Expectation insert, eviction, expiry and matching (kernel-semantics.md §12.2).

use super::*;
use crate::helper::{ExpectRequest, HelperKind, Policy};
use crate::time::{secs, Instant};

fn req(dport: u16) -> ExpectRequest {
    ExpectRequest {
        class: 0,
        family: Family::V4,
        proto: proto::TCP,
        src: Some(Addr::v4([192, 168, 5, 9])),
        src_port: None,
        dst: Addr::v4([10, 0, 0, 1]),
        dst_port: dport,
    }
}

fn master_tuple() -> Tuple {
    Tuple {
        src: Addr::v4([10, 0, 0, 1]),
        dst: Addr::v4([192, 168, 5, 9]),
        src_u: 41021,
        dst_u: 21,
        family: Family::V4,
        proto: proto::TCP,
    }
}

fn exp(master: EntryId, dport: u16) -> Expectation {
    Expectation::from_request(&req(dport), HelperKind::Ftp, master, 7, master_tuple(), 0)
}

fn data_syn(sport: u16, dport: u16) -> Tuple {
    Tuple {
        src: Addr::v4([192, 168, 5, 9]),
        dst: Addr::v4([10, 0, 0, 1]),
        src_u: sport,
        dst_u: dport,
        family: Family::V4,
        proto: proto::TCP,
    }
}

const P: Policy = Policy {
    max_expected: 1,
    timeout: secs(300),
};

fn t(s: u64) -> Instant {
    Instant::from_secs(s)
}

#[test]
fn masked_match_any_source_port_exact_destination() {
    let e = exp(1, 40000);
    assert!(e.matches(&data_syn(20, 40000)));
    assert!(e.matches(&data_syn(33333, 40000)));
    assert!(!e.matches(&data_syn(20, 40001)));
    let mut other_src = data_syn(20, 40000);
    other_src.src = Addr::v4([192, 168, 5, 10]);
    assert!(!e.matches(&other_src));
    let mut udp = data_syn(20, 40000);
    udp.proto = proto::UDP;
    assert!(!e.matches(&udp));
}

#[test]
fn insert_find_consumes_and_counts() {
    let mut tab = ExpectTable::new(true);
    let mut st = Stats::default();
    tab.insert(exp(1, 40000), P, 4096, t(100), &mut st)
        .expect("insert");
    assert_eq!(st.expect_create, 1);
    assert_eq!(tab.live(t(100)).count(), 1);
    // The master must be live.
    assert!(tab
        .find(&data_syn(20, 40000), 0, t(101), |_, _| false, &mut st)
        .is_none());
    assert_eq!(tab.len(), 1);
    // Other zone: no match.
    assert!(tab
        .find(&data_syn(20, 40000), 5, t(101), |_, _| true, &mut st)
        .is_none());
    let hit = tab.find(&data_syn(20, 40000), 0, t(101), |_, _| true, &mut st);
    assert_eq!(hit.map(|e| e.master), Some(1));
    assert!(tab.is_empty());
    assert_eq!((st.expect_delete, st.expect_create), (1, 1));
    let kinds: Vec<_> = tab.drain_events().iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [ExpectEventKind::New, ExpectEventKind::Destroy]);
}

#[test]
fn max_expected_evicts_the_oldest_of_the_master() {
    let mut tab = ExpectTable::new(false);
    let mut st = Stats::default();
    tab.insert(exp(1, 40000), P, 4096, t(100), &mut st)
        .expect("first");
    tab.insert(exp(1, 40001), P, 4096, t(101), &mut st)
        .expect("second");
    let ports: Vec<u16> = tab.live(t(101)).map(|e| e.tuple.dst_u).collect();
    assert_eq!(ports, [40001]);
    assert_eq!((st.expect_create, st.expect_delete), (2, 1));
    // Another master keeps its own.
    let mut other = exp(2, 40002);
    other.master_seq = 9;
    tab.insert(other, P, 4096, t(102), &mut st)
        .expect("other master");
    assert_eq!(tab.len(), 2);
}

#[test]
fn same_expectation_replaces_clash_refuses_full_refuses() {
    let mut tab = ExpectTable::new(false);
    let mut st = Stats::default();
    let big = Policy {
        max_expected: 10,
        timeout: secs(300),
    };
    tab.insert(exp(1, 40000), big, 4096, t(100), &mut st)
        .expect("first");
    // Same tuple and mask from the same master: replaced (deadline renewed).
    tab.insert(exp(1, 40000), big, 4096, t(200), &mut st)
        .expect("again");
    assert_eq!(tab.len(), 1);
    assert_eq!(tab.live(t(450)).count(), 1);
    assert_eq!((st.expect_create, st.expect_delete), (2, 1));
    // The same tuple from another master: a clash.
    let mut other = exp(2, 40000);
    other.master_seq = 9;
    assert_eq!(
        tab.insert(other, big, 4096, t(201), &mut st),
        Err(ExpectError::Busy)
    );
    // Another class of the same expectation from the same master.
    let mut c1 = exp(1, 40000);
    c1.class = 1;
    assert_eq!(
        tab.insert(c1, big, 4096, t(201), &mut st),
        Err(ExpectError::Already)
    );
    // Table limit.
    assert_eq!(
        tab.insert(exp(1, 40005), big, 1, t(201), &mut st),
        Err(ExpectError::TableFull)
    );
}

#[test]
fn expired_ones_are_not_listed_nor_matched_and_go_on_the_next_visit() {
    let mut tab = ExpectTable::new(false);
    let mut st = Stats::default();
    tab.insert(exp(1, 40000), P, 4096, t(100), &mut st)
        .expect("insert");
    assert_eq!(tab.live(t(399)).count(), 1);
    assert_eq!(tab.live(t(400)).count(), 0);
    assert!(tab
        .find(&data_syn(20, 40000), 0, t(400), |_, _| true, &mut st)
        .is_none());
    assert!(tab.is_empty());
    assert_eq!(st.expect_delete, 1);
}

#[test]
fn master_death_removes_its_expectations() {
    let mut tab = ExpectTable::new(false);
    let mut st = Stats::default();
    tab.insert(exp(1, 40000), P, 4096, t(100), &mut st)
        .expect("insert");
    tab.remove_master(1, 6, t(101), &mut st);
    assert_eq!(tab.len(), 1, "another creation number is another master");
    tab.remove_master(1, 7, t(101), &mut st);
    assert!(tab.is_empty());
    assert_eq!(st.expect_delete, 1);
}

#[test]
fn listing_formats() {
    let mut tab = ExpectTable::new(false);
    let mut st = Stats::default();
    tab.insert(exp(1, 40000), P, 4096, t(100), &mut st)
        .expect("insert");
    let e = tab.live(t(100)).next().cloned().expect("one");
    assert_eq!(
        e.list_line(t(101)),
        "298 proto=6 src=192.168.5.9 dst=10.0.0.1 sport=0 dport=40000 \
         mask-src=255.255.255.255 mask-dst=255.255.255.255 sport=0 dport=65535 \
         master-src=10.0.0.1 master-dst=192.168.5.9 sport=41021 dport=21 class=0 helper=ftp"
    );
    assert_eq!(
        e.proc_line(t(101)),
        "298 l3proto = 2 proto=6 src=192.168.5.9 dst=10.0.0.1 sport=0 dport=40000 ftp"
    );
    assert!(e
        .event_line(ExpectEventKind::New, t(100))
        .starts_with("    [NEW] 300 proto=6 src=192.168.5.9"));
}
