//! Zones per direction and connection labels in listings: what `conntrack -L` prints
//! and selects, as recorded from conntrack 1.4.7 on this machine's kernel (entries made
//! with `conntrack -I ... --orig-zone 5` / `--reply-zone 6` / `-w 7` / `--orig-zone 0`
//! and listed with each filter).

use super::args::parse;
use super::flow::Flow;
use super::{text, Labels, Session};
use ctrack_core::entry::{Entry, Extensions};
use ctrack_core::event::{bits, Event, EventKind};
use ctrack_core::status::Status;
use ctrack_core::tuple::{proto, Addr, Dir, Family, Tuple};
use ctrack_core::{Instant, Zone};

fn udp(dport: u16, zone: Zone, labels: u128) -> Entry {
    let (a, b) = (Addr::v4([1, 1, 1, 1]), Addr::v4([2, 2, 2, 2]));
    let t = |src, dst, su, du| Tuple {
        src,
        dst,
        src_u: su,
        dst_u: du,
        family: Family::V4,
        proto: proto::UDP,
    };
    let ext = (labels != 0).then(|| {
        Box::new(Extensions {
            labels,
            ..Extensions::default()
        })
    });
    let mut e = Entry::new([t(a, b, 1, dport), t(b, a, dport, 1)], ext);
    e.status = Status(Status::CONFIRMED);
    e.zone = zone;
    e.deadline = Instant::from_secs(101);
    e.seq = u32::from(dport);
    e
}

/// The four entries of the recording, in its listing order.
fn recorded() -> Vec<Entry> {
    vec![
        udp(5, Zone::one_way(0, Dir::Original), 0),
        udp(3, Zone::one_way(6, Dir::Reply), 0),
        udp(4, Zone::new(7), 0),
        udp(2, Zone::one_way(5, Dir::Original), 0),
    ]
}

fn line(e: &Entry) -> String {
    let now = Instant::from_secs(1);
    text::flow_text(&Flow::from_entry(e, now), text::TextFlags::default(), None)
}

#[test]
fn directional_zones_print_where_conntrack_prints_them() {
    let got: Vec<String> = recorded().iter().map(line).collect();
    assert_eq!(
        got,
        [
            "udp      17 99 src=1.1.1.1 dst=2.2.2.2 sport=1 dport=5 [UNREPLIED] src=2.2.2.2 dst=1.1.1.1 sport=5 dport=1 mark=0 use=1",
            "udp      17 99 src=1.1.1.1 dst=2.2.2.2 sport=1 dport=3 [UNREPLIED] src=2.2.2.2 dst=1.1.1.1 sport=3 dport=1 zone-reply=6 mark=0 use=1",
            "udp      17 99 src=1.1.1.1 dst=2.2.2.2 sport=1 dport=4 [UNREPLIED] src=2.2.2.2 dst=1.1.1.1 sport=4 dport=1 mark=0 zone=7 use=1",
            "udp      17 99 src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2 zone-orig=5 [UNREPLIED] src=2.2.2.2 dst=1.1.1.1 sport=2 dport=1 mark=0 use=1",
        ]
    );
    // core's own -L line agrees with the listing's.
    for e in recorded() {
        assert_eq!(
            ctrack_core::format::conntrack_line(&e, Instant::from_secs(1), Default::default()),
            line(&e)
        );
    }
    // /proc prints the zone at the same places, id 0 included (kernel ct_show_zone).
    let procs: Vec<String> = recorded()
        .iter()
        .map(|e| ctrack_core::format::proc_line(e, Instant::from_secs(1)))
        .collect();
    assert!(
        procs[0].contains("dport=5 zone-orig=0 [UNREPLIED]"),
        "{}",
        procs[0]
    );
    assert!(procs[0].ends_with("mark=0 use=2"), "{}", procs[0]);
    assert!(
        procs[1].contains("dport=1 zone-reply=6 mark=0 use=2"),
        "{}",
        procs[1]
    );
    assert!(procs[2].ends_with("mark=0 zone=7 use=2"), "{}", procs[2]);
}

/// `-w`, `--orig-zone` and `--reply-zone` select as conntrack 1.4.7 did: `-w` only
/// bidirectional zones, the directional options only their own attribute, a missing
/// attribute counting as zone 0; values parse like strtoul (hex, octal, garbage = 0,
/// -1 = 65535).
#[test]
fn zone_filters_select_as_conntrack() {
    let entries = recorded();
    let flows: Vec<Flow> = entries
        .iter()
        .map(|e| Flow::from_entry(e, Instant::from_secs(1)))
        .collect();
    let pick = |args: &str| -> Vec<u16> {
        let v: Vec<String> = format!("-L {args}")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let l = parse(&v).expect(args);
        flows
            .iter()
            .filter(|f| l.filter.matches(f))
            .map(|f| f.orig.dst_u)
            .collect()
    };
    assert_eq!(pick("-w 5"), Vec::<u16>::new());
    assert_eq!(pick("-w 6"), Vec::<u16>::new());
    assert_eq!(pick("-w 7"), [4]);
    assert_eq!(pick("--orig-zone 5"), [2]);
    assert_eq!(pick("--orig-zone 7"), Vec::<u16>::new());
    assert_eq!(pick("--reply-zone 6"), [3]);
    assert_eq!(pick("--reply-zone 7"), Vec::<u16>::new());
    assert_eq!(pick("--orig-zone 0"), [5, 3, 4]);
    assert_eq!(pick("-w 0"), [5, 3, 2]);
    assert_eq!(pick("--reply-zone 0"), [5, 4, 2]);
    assert_eq!(pick("-w abc"), [5, 3, 2]);
    assert_eq!(pick("-w 5 -w 0"), [5, 3, 2]);
    assert_eq!(pick("-w 0x7"), [4]);
    assert_eq!(pick("-w 07"), [4]);
    assert_eq!(pick("--orig-zone 5x"), [2]);
    assert_eq!(pick("-w 65543"), [4], "70000-style values wrap to 16 bits");
    let l = parse(&["-L".into(), "-w".into(), "-1".into()]).expect("-w -1");
    assert_eq!(l.filter.zone, Some(65535));
}

/// Labels: `-o labels` prints the named bits (a set with no named bit prints a bare
/// `labels`, as the kernel's conntrack does: see tests/rulesets/labels.nft); `-l`
/// selects entries carrying every given label; an event carries labels only when they
/// changed.
#[test]
fn labels_print_filter_and_travel_with_label_events() {
    let map = Labels::parse("0 dns\n5 replied\n127 blocked\n");
    assert_eq!(map.field(1 | 1 << 5), "labels=dns,replied");
    assert_eq!(map.field(1 << 42), "labels");
    assert_eq!(map.field(1 << 127 | 1 << 42), "labels=blocked");
    let mut l = parse(&["-L".into(), "-o".into(), "labels".into()]).expect("parses");
    l.labels = Some(map.clone());
    l.filter.labels = Some(1 << 5);
    let now = Instant::from_secs(1);
    let with = udp(9, Zone::DEFAULT, 1 | 1 << 5);
    let other = udp(8, Zone::DEFAULT, 1);
    let none = udp(7, Zone::DEFAULT, 0);
    let s = Session::new(l);
    let f = Flow::from_entry(&with, now);
    assert_eq!(f.labels, Some(0b100001));
    assert!(s.listing.filter.matches(&f));
    assert!(!s.listing.filter.matches(&Flow::from_entry(&other, now)));
    assert!(!s.listing.filter.matches(&Flow::from_entry(&none, now)));
    assert_eq!(Flow::from_entry(&none, now).labels, None);
    assert!(s
        .render(&f, Some(&with), now)
        .ends_with("mark=0 use=1 labels=dns,replied"));
    // Events: labels only with IPCT_LABEL (then an UPDATE, or the NEW it joined).
    let ev = |mask| Event {
        time: now,
        kind: EventKind::Update,
        mask,
        entry: with.clone(),
    };
    assert_eq!(Flow::from_event(&ev(bits::ASSURED)).labels, None);
    assert_eq!(Flow::from_event(&ev(bits::LABEL)).labels, Some(0b100001));
}
