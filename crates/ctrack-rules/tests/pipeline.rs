//! The hook pipeline on hand-made packets: drops before confirm leave no entry,
//! notrack, marks, `--local` paths, counters and logs.

use ctrack_core::conntrack::{Config, Conntrack};
use ctrack_core::defrag::Defrag;
use ctrack_core::topology::Side;
use ctrack_core::{CtState, Instant};
use ctrack_rules::{load_str, Fate, Path, Pipeline};

/// An IPv4 UDP packet (UDP checksum 0: not checked), TTL 64.
fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 29, 0, 0, 0x40, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let mut sum: u32 = p
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&[0, 9, 0, 0, b'x']);
    p
}

const C: [u8; 4] = [10, 1, 0, 1];
const S: [u8; 4] = [10, 2, 0, 1];

struct Router {
    ct: Conntrack,
    defrag: Defrag,
    p: Pipeline,
}

impl Router {
    fn new(rules: &str) -> Router {
        let rs = load_str("test.nft", rules).unwrap_or_else(|e| panic!("{e}"));
        Router {
            ct: Conntrack::new(Config::default()),
            defrag: Defrag::new(),
            p: Pipeline::new(rs, ("lan".into(), "wan".into())),
        }
    }
    fn send(&mut self, ms: u64, pkt: &[u8], side: Side) -> ctrack_rules::Outcome {
        self.p.packet(
            &mut self.ct,
            &mut self.defrag,
            Instant::from_nanos(ms * 1_000_000),
            pkt,
            side,
        )
    }
}

#[test]
fn new_packet_dropped_in_forward_leaves_no_entry() {
    let mut r = Router::new(
        "table inet f { chain fwd { type filter hook forward priority 0; policy accept; iifname \"lan\" udp dport 53 log prefix \"dns \" drop; } }",
    );
    let o = r.send(0, &udp4(C, S, 1000, 53), Side::Client);
    assert_eq!(
        (o.ctstate, o.fate, o.drop),
        (Some(CtState::New), Fate::Dropped, true)
    );
    assert_eq!(r.p.logs().collect::<Vec<_>>(), ["dns "]);
    assert_eq!(r.ct.count(), 0, "the unconfirmed entry was discarded");
    let o = r.send(1, &udp4(C, S, 1000, 54), Side::Client);
    assert_eq!(o.fate, Fate::Forwarded);
    assert_eq!(r.ct.count(), 1);
}

#[test]
fn notrack_in_raw_skips_conntrack() {
    let mut r = Router::new(
        "table ip raw { chain pre { type filter hook prerouting priority raw; udp dport 53 notrack; } }",
    );
    let o = r.send(0, &udp4(C, S, 1000, 53), Side::Client);
    assert_eq!(
        (o.ctstate, o.fate),
        (Some(CtState::Untracked), Fate::Forwarded)
    );
    assert_eq!(r.ct.count(), 0);
}

#[test]
fn ct_mark_set_reaches_the_entry_and_is_read_back() {
    let mut r = Router::new(
        "table inet m { chain fwd { type filter hook forward priority 0; ct state new ct mark set 0x2a; ct mark 0x2a counter; } }",
    );
    r.send(0, &udp4(C, S, 1000, 53), Side::Client);
    r.send(1, &udp4(S, C, 53, 1000), Side::Server);
    let marks: Vec<u32> =
        r.ct.entries(Instant::from_nanos(2_000_000))
            .iter()
            .map(|e| e.mark)
            .collect();
    assert_eq!(marks, [0x2a]);
    assert_eq!(r.p.counters()[0].packets, 2);
    assert_eq!(r.p.counters()[0].bytes, 58);
}

#[test]
fn local_addresses_take_input_and_output() {
    let mut r = Router::new(
        "table inet h { chain in { type filter hook input priority 0; policy drop; ct state established accept; udp dport 22 accept; }
                        chain out { type filter hook output priority 0; oifname \"wan\" counter; } }",
    );
    r.p.add_local("10.2.0.1".parse().unwrap_or_else(|_| unreachable!()));
    // To the router: INPUT, policy drop → no entry.
    let o = r.send(0, &udp4(C, S, 1000, 53), Side::Client);
    assert_eq!(
        (o.path, o.fate, o.ctstate),
        (Path::Input, Fate::Dropped, Some(CtState::New))
    );
    assert_eq!(r.ct.count(), 0);
    // Accepted on INPUT: confirmed at LOCAL_IN.
    let o = r.send(1, &udp4(C, S, 1000, 22), Side::Client);
    assert_eq!((o.path, o.fate), (Path::Input, Fate::Local));
    // From the router: OUTPUT (the reply leaves on the client side, "lan").
    let o = r.send(2, &udp4(S, C, 22, 1000), Side::Server);
    assert_eq!(
        (o.path, o.fate, o.ctstate),
        (Path::Output, Fate::Forwarded, Some(CtState::Established))
    );
    // A new connection from the router towards the server side ("wan").
    let o = r.send(3, &udp4(S, [10, 3, 0, 1], 5000, 123), Side::Client);
    assert_eq!(
        (o.path, o.fate, o.ctstate),
        (Path::Output, Fate::Forwarded, Some(CtState::New))
    );
    assert_eq!(r.p.counters()[0].packets, 1);
    assert_eq!(r.ct.count(), 2);
}

#[test]
fn nat_and_helpers_are_refused_with_a_position() {
    // NAT statements need a type nat chain on a hook of their manip type.
    let e = load_str("n.nft", "table ip n {\n chain c {\n  type filter hook postrouting priority 100;\n  masquerade\n }\n}\n")
        .expect_err("masquerade outside a nat chain");
    assert!(
        e.to_string()
            .starts_with("n.nft:4:3-12: Error: Could not process rule: Operation not supported"),
        "{e}"
    );
    load_str(
        "n.nft",
        "table ip n { chain c { type nat hook postrouting priority srcnat; masquerade; } }",
    )
    .expect("masquerade in a nat chain");
    // `ct helper set` needs a `ct helper` object of that name in the table, of a helper
    // the engine has.
    let e = load_str("h.nft", "table ip h { chain c { type filter hook prerouting priority raw; ct helper set \"ftp\"; } }")
        .expect_err("no such object");
    assert!(e.to_string().contains("No such file or directory"), "{e}");
    let e = load_str("h.nft", "table ip h { ct helper x { type \"sip\" protocol udp; } chain c { type filter hook prerouting priority raw; ct helper set \"x\"; } }")
        .expect_err("no sip helper");
    assert!(e.to_string().contains("not supported"), "{e}");
    load_str("h.nft", "table ip h { ct helper x { type \"ftp\" protocol tcp; } chain c { type filter hook prerouting priority raw; tcp dport 21 ct helper set \"x\"; } }")
        .expect("ftp helper");
    // PPTP is registered for IPv4 only: an inet table's object helps IPv4 connections,
    // an ip6 table cannot have one (nft: "Could not process rule: No such file or
    // directory" on the object).
    load_str("h.nft", "table inet h { ct helper x { type \"pptp\" protocol tcp; } chain c { type filter hook prerouting priority filter; tcp dport 1723 ct helper set \"x\"; } }")
        .expect("pptp helper in inet");
    let e = load_str("h.nft", "table ip6 h { ct helper x { type \"pptp\" protocol tcp; } chain c { type filter hook prerouting priority filter; tcp dport 1723 ct helper set \"x\"; } }")
        .expect_err("no IPv6 pptp helper");
    assert!(e.to_string().contains("No such file or directory"), "{e}");
}

#[test]
fn nat_port_mapping_needs_a_transport_protocol_match() {
    // (rule, accepted): each checked against `nft -c -f` below when nft can run.
    let cases = [
        (
            "ip saddr 10.0.0.0/8 snat to 1.2.3.4-1.2.3.5:1000-2000",
            false,
        ),
        ("masquerade to :1000-2000", false),
        ("ip protocol tcp masquerade to :1000-2000", true),
        ("ip protocol != tcp masquerade to :1000-2000", false),
        ("tcp dport 80 snat to 1.2.3.4:8080", true),
        ("th dport 80 snat to 1.2.3.4:8080", false),
        ("ip saddr 10.0.0.0/8 snat to 1.2.3.4", true),
        ("meta l4proto { tcp, udp } snat to 1.2.3.4:1000-2000", true),
        ("udp sport 53 snat to 1.2.3.4:1000", true),
        ("masquerade random", true),
    ];
    let nft_ok = std::process::Command::new("nft")
        .args(["-c", "-f", "/dev/null"])
        .output()
        .is_ok_and(|o| o.status.success());
    for (rule, accepted) in cases {
        let text = format!(
            "table ip t {{\n chain p {{\n  type nat hook postrouting priority srcnat;\n  {rule}\n }}\n}}\n"
        );
        let ours = load_str("t.nft", &text);
        assert_eq!(ours.is_ok(), accepted, "{rule}: {:?}", ours.err());
        if let Err(e) = ours {
            assert!(
                e.to_string().contains(
                    "Error: transport protocol mapping is only valid after transport protocol match"
                ),
                "{rule}: {e}"
            );
        }
        if nft_ok {
            let path =
                std::env::temp_dir().join(format!("ctrack-natcheck-{}.nft", std::process::id()));
            std::fs::write(&path, &text).expect("temp file");
            let st = std::process::Command::new("nft")
                .arg("-c")
                .arg("-f")
                .arg(&path)
                .output()
                .expect("nft runs");
            let _ = std::fs::remove_file(&path);
            assert_eq!(st.status.success(), accepted, "nft -c disagrees on {rule}");
        }
    }
}

/// `ct original zone set` applies to one direction; the first zone set wins; `ct
/// [original|reply] zone` read the zone per direction; `ct label set` with numbers
/// (no connlabel.conf needed) is matched later; the JSON form compiles the same.
#[test]
fn zones_per_direction_and_labels() {
    let rules = r#"
table inet t {
	chain raw {
		type filter hook prerouting priority raw; policy accept;
		iifname "lan" ct original zone set 3
		iifname "lan" ct zone set 9
	}
	chain fwd {
		type filter hook forward priority filter; policy accept;
		ct state new ct label set 7
		ct reply zone 3 drop
		ct zone 9 drop
		ct direction reply ct label != 7 drop
		ct direction reply ct label 7 ct original zone 3 ct label set 100
	}
}
"#;
    let mut r = Router::new(rules);
    let o = r.send(0, &udp4(C, S, 1000, 53), Side::Client);
    assert_eq!((o.ctstate, o.fate), (Some(CtState::New), Fate::Forwarded));
    let o = r.send(1, &udp4(S, C, 53, 1000), Side::Server);
    assert_eq!(
        (o.ctstate, o.fate),
        (Some(CtState::Established), Fate::Forwarded)
    );
    let e = r.ct.entries(Instant::from_nanos(2_000_000));
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].zone,
        ctrack_core::Zone::one_way(3, ctrack_core::Dir::Original)
    );
    assert_eq!(e[0].labels(), 1 << 7 | 1 << 100);
    for bad in ["ct label set 128", "ct original zone set"] {
        let text =
            format!("table ip t {{ chain c {{ type filter hook forward priority 0; {bad}; }} }}");
        assert!(load_str("bad.nft", &text).is_err(), "{bad}");
    }
    let json = r#"{"nftables": [{"table": {"family": "inet", "name": "t"}},
 {"chain": {"family": "inet", "table": "t", "name": "raw", "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"}},
 {"rule": {"family": "inet", "table": "t", "chain": "raw", "expr": [{"mangle": {"key": {"ct": {"key": "zone", "dir": "reply"}}, "value": 4}}]}},
 {"chain": {"family": "inet", "table": "t", "name": "fwd", "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}},
 {"rule": {"family": "inet", "table": "t", "chain": "fwd", "expr": [{"mangle": {"key": {"ct": {"key": "label"}}, "value": 5}}]}},
 {"rule": {"family": "inet", "table": "t", "chain": "fwd", "expr": [{"match": {"op": "in", "left": {"ct": {"key": "label"}}, "right": 5}}, {"match": {"op": "==", "left": {"ct": {"key": "zone", "dir": "reply"}}, "right": 4}}, {"drop": null}]}}]}"#;
    let mut r = Router {
        ct: Conntrack::new(Config::default()),
        defrag: Defrag::new(),
        p: Pipeline::new(
            load_str("t.json", json).unwrap_or_else(|e| panic!("{e}")),
            ("lan".into(), "wan".into()),
        ),
    };
    let o = r.send(0, &udp4(C, S, 1000, 53), Side::Client);
    assert_eq!((o.ctstate, o.fate), (Some(CtState::New), Fate::Dropped));
}
