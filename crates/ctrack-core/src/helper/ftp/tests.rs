//! The FTP parser and line-start tracking, from the kernel's rules
//! (kernel-semantics.md §12.3).

use super::*;

fn v4(a: [u8; 4]) -> Addr {
    Addr::v4(a)
}

const C: [u8; 4] = [10, 0, 0, 1];

fn cmd(p: Parse) -> FtpCommand {
    match p {
        Parse::Command(c) => c,
        other => panic!("expected a command, got {other:?}"),
    }
}

#[test]
fn port_command() {
    let c = cmd(parse(
        b"PORT 10,0,0,1,156,64\r\n",
        Dir::Original,
        Family::V4,
        v4(C),
    ));
    assert_eq!(c.kind, FtpType::Port);
    assert_eq!(c.addr, v4(C));
    assert_eq!(c.port, 40000);
    assert_eq!((c.off, c.len), (5, 15));
    // Case-insensitive, and the address is the one written.
    let c = cmd(parse(
        b"port 1,2,3,4,0,21\r\n",
        Dir::Original,
        Family::V4,
        v4(C),
    ));
    assert_eq!((c.addr, c.port), (v4([1, 2, 3, 4]), 21));
}

#[test]
fn port_needs_cr_and_six_numbers() {
    // A bare \n instead of \r: the numbers do not end at the terminator → partial.
    assert_eq!(
        parse(b"PORT 10,0,0,1,156,64\n", Dir::Original, Family::V4, v4(C)),
        Parse::Partial("PORT")
    );
    assert_eq!(
        parse(b"PORT 10,0,0,1,156\r\n", Dir::Original, Family::V4, v4(C)),
        Parse::Partial("PORT")
    );
    // A seventh separator ends the scan: partial.
    assert_eq!(
        parse(
            b"PORT 10,0,0,1,156,64,\r\n",
            Dir::Original,
            Family::V4,
            v4(C)
        ),
        Parse::Partial("PORT")
    );
    // No space after PORT before the end: partial.
    assert_eq!(
        parse(b"PORTX", Dir::Original, Family::V4, v4(C)),
        Parse::Partial("PORT")
    );
}

#[test]
fn short_payloads_are_partial_when_they_begin_a_pattern() {
    assert_eq!(
        parse(b"PO", Dir::Original, Family::V4, v4(C)),
        Parse::Partial("PORT")
    );
    assert_eq!(
        parse(b"PORT", Dir::Original, Family::V4, v4(C)),
        Parse::Partial("PORT")
    );
    assert_eq!(
        parse(b"EP", Dir::Original, Family::V4, v4(C)),
        Parse::Partial("EPRT")
    );
    assert_eq!(
        parse(b"22", Dir::Reply, Family::V4, v4(C)),
        Parse::Partial("227 ")
    );
    assert_eq!(
        parse(b"229", Dir::Reply, Family::V4, v4(C)),
        Parse::Partial("229 ")
    );
    assert_eq!(
        parse(b"USER x\r\n", Dir::Original, Family::V4, v4(C)),
        Parse::NoMatch
    );
    assert_eq!(
        parse(b"U", Dir::Original, Family::V4, v4(C)),
        Parse::NoMatch
    );
    // Patterns belong to one direction only.
    assert_eq!(
        parse(b"PORT 10,0,0,1,156,64\r\n", Dir::Reply, Family::V4, v4(C)),
        Parse::NoMatch
    );
    assert_eq!(
        parse(
            b"227 Entering Passive Mode (1,2,3,4,5,6)\r\n",
            Dir::Original,
            Family::V4,
            v4(C)
        ),
        Parse::NoMatch
    );
}

#[test]
fn pasv_227_scans_to_the_first_digit() {
    let s = v4([192, 168, 5, 9]);
    let c = cmd(parse(
        b"227 Entering Passive Mode (192,168,5,9,100,1).\r\n",
        Dir::Reply,
        Family::V4,
        s,
    ));
    assert_eq!((c.kind, c.addr, c.port), (FtpType::Pasv, s, 25601));
    assert_eq!(c.off, 4 + 23);
    // Without parentheses (RFC 1123), any terminator.
    let c = cmd(parse(
        b"227 =192,168,5,9,0,80\r\n",
        Dir::Reply,
        Family::V4,
        s,
    ));
    assert_eq!(c.port, 80);
    // The numbers must be followed by something (the segment ends mid-number).
    assert_eq!(
        parse(b"227 =192,168,5,9,0,80", Dir::Reply, Family::V4, s),
        Parse::Partial("227 ")
    );
    // No digit at all: partial (dropped).
    assert_eq!(
        parse(b"227 Entering Passive Mode\r\n", Dir::Reply, Family::V4, s),
        Parse::Partial("227 ")
    );
}

#[test]
fn eprt_ipv4_and_ipv6() {
    let c = cmd(parse(
        b"EPRT |1|10.0.0.1|6275|\r\n",
        Dir::Original,
        Family::V4,
        v4(C),
    ));
    assert_eq!((c.kind, c.addr, c.port), (FtpType::Eprt, v4(C), 6275));
    let a6: std::net::Ipv6Addr = "fd00:10:16:1::3"
        .parse()
        .unwrap_or(std::net::Ipv6Addr::LOCALHOST);
    let c = cmd(parse(
        b"EPRT |2|fd00:10:16:1::3|36713|\r\n",
        Dir::Original,
        Family::V6,
        Addr::v6(a6.octets()),
    ));
    assert_eq!((c.addr, c.port), (Addr::v6(a6.octets()), 36713));
    // Any printable non-digit delimiter.
    let c = cmd(parse(
        b"EPRT !1!10.0.0.1!21!\r\n",
        Dir::Original,
        Family::V4,
        v4(C),
    ));
    assert_eq!(c.port, 21);
    // An IPv4-mapped tail is an IPv6 address too.
    let c = cmd(parse(
        b"EPRT |2|::ffff:10.0.0.1|21|\r\n",
        Dir::Original,
        Family::V6,
        v4(C),
    ));
    assert_eq!(c.addr.0[12..], [10, 0, 0, 1]);
}

#[test]
fn eprt_failures_are_partial() {
    // The protocol digit must match the connection's family.
    assert_eq!(
        parse(b"EPRT |2|::1|21|\r\n", Dir::Original, Family::V4, v4(C)),
        Parse::Partial("EPRT")
    );
    assert_eq!(
        parse(
            b"EPRT |1|10.0.0.1|21|\r\n",
            Dir::Original,
            Family::V6,
            v4(C)
        ),
        Parse::Partial("EPRT")
    );
    // A digit as delimiter, port zero, a missing final delimiter.
    for bad in [
        &b"EPRT 212110.0.0.1221\r\n"[..],
        b"EPRT |1|10.0.0.1|0|\r\n",
        b"EPRT |1|10.0.0.1|21\r\n",
        b"EPRT |1|10.0.0|21|\r\n",
        b"EPRT |2|fd00::zz|21|\r\n",
    ] {
        let fam = if bad.starts_with(b"EPRT |2") {
            Family::V6
        } else {
            Family::V4
        };
        assert_eq!(
            parse(bad, Dir::Original, fam, v4(C)),
            Parse::Partial("EPRT"),
            "{bad:?}"
        );
    }
}

#[test]
fn epsv_229_keeps_the_sender_address() {
    let s = v4([192, 168, 5, 9]);
    let c = cmd(parse(
        b"229 Entering Extended Passive Mode (|||6446|)\r\n",
        Dir::Reply,
        Family::V4,
        s,
    ));
    assert_eq!((c.kind, c.addr, c.port), (FtpType::Epsv, s, 6446));
    let a6 = Addr::v6([0x20, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x21]);
    let c = cmd(parse(b"229 ok (|||57086|)\r\n", Dir::Reply, Family::V6, a6));
    assert_eq!((c.addr, c.port), (a6, 57086));
    // No '(' or a malformed body: partial.
    assert_eq!(
        parse(
            b"229 Entering Extended Passive Mode\r\n",
            Dir::Reply,
            Family::V4,
            s
        ),
        Parse::Partial("229 ")
    );
    assert_eq!(
        parse(b"229 (||6446|)\r\n", Dir::Reply, Family::V4, s),
        Parse::Partial("229 ")
    );
    assert_eq!(
        parse(b"229 (|||0|)\r\n", Dir::Reply, Family::V4, s),
        Parse::Partial("229 ")
    );
}

#[test]
fn numbers_wrap_like_the_kernel() {
    // 256 in an octet wraps into the next byte, the port keeps its low 16 bits.
    let c = cmd(parse(
        b"PORT 10,0,0,257,1,0\r\n",
        Dir::Original,
        Family::V4,
        v4(C),
    ));
    assert_eq!(c.addr, v4([10, 0, 1, 1]));
    assert_eq!(c.port, 256);
}

#[test]
fn line_starts_two_slots_per_direction() {
    let mut d = FtpData::default();
    assert!(!d.starts_line(Dir::Original, 100));
    d.remember(Dir::Original, 100);
    d.remember(Dir::Original, 100);
    assert_eq!(d.num[0], 1);
    d.remember(Dir::Original, 200);
    assert!(d.starts_line(Dir::Original, 100) && d.starts_line(Dir::Original, 200));
    assert!(!d.starts_line(Dir::Reply, 100));
    // Full: the older slot is replaced by a newer number only.
    d.remember(Dir::Original, 50);
    assert!(d.starts_line(Dir::Original, 100));
    d.remember(Dir::Original, 300);
    assert!(!d.starts_line(Dir::Original, 100));
    assert!(d.starts_line(Dir::Original, 200) && d.starts_line(Dir::Original, 300));
    // Sequence numbers wrap.
    let mut w = FtpData::default();
    w.remember(Dir::Reply, u32::MAX - 10);
    w.remember(Dir::Reply, u32::MAX);
    w.remember(Dir::Reply, 5);
    assert!(w.starts_line(Dir::Reply, 5) && w.starts_line(Dir::Reply, u32::MAX));
}
