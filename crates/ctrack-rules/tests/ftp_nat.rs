//! FTP through NAT on hand-made packets, through the hook pipeline with the project's
//! own rulesets (`tests/rulesets/ftp_snat.nft`, `ftp_dnat.nft`): the packets as they
//! leave the router carry the rewritten command, consistent lengths and checksums
//! (checked with a plain RFC 1071 sum written here), and sequence numbers that let
//! each end see one consistent byte stream: a segment leaves where the previous one
//! ended in the receiver's stream, an ack comes back in the sender's own numbers.
//! (What the kernel does with the same traffic is compared by the parity suite.)

use ctrack_core::conntrack::{Config, Conntrack};
use ctrack_core::defrag::Defrag;
use ctrack_core::topology::Side;
use ctrack_core::{CtState, Instant};
use ctrack_rules::{load_str, Pipeline};

const FTP_SNAT: &str = include_str!("../../../tests/rulesets/ftp_snat.nft");
const FTP_DNAT: &str = include_str!("../../../tests/rulesets/ftp_dnat.nft");

/// A plain RFC 1071 sum.
fn rfc1071(bytes: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    for w in bytes.chunks(2) {
        sum += u64::from(u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn v6(p: &[u8]) -> bool {
    p[0] >> 4 == 6
}

fn l4_off(p: &[u8]) -> usize {
    if v6(p) {
        40
    } else {
        usize::from(p[0] & 15) * 4
    }
}

fn pseudo(p: &[u8], seg_len: usize) -> Vec<u8> {
    let mut ph = Vec::new();
    if v6(p) {
        ph.extend_from_slice(&p[8..40]);
        ph.extend_from_slice(&(seg_len as u32).to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, 6]);
    } else {
        ph.extend_from_slice(&p[12..20]);
        ph.extend_from_slice(&[0, 6]);
        ph.extend_from_slice(&(seg_len as u16).to_be_bytes());
    }
    ph
}

/// A TCP packet with valid checksums; `opts` are TCP options.
#[allow(clippy::too_many_arguments)]
fn tcp(
    src: &str,
    dst: &str,
    ports: (u16, u16),
    flags: u8,
    seq: u32,
    ack: u32,
    opts: &[u8],
    data: &[u8],
) -> Vec<u8> {
    let (s, d): (std::net::IpAddr, std::net::IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
    let hl = 20 + opts.len();
    let mut t = vec![0u8; hl];
    t[0..2].copy_from_slice(&ports.0.to_be_bytes());
    t[2..4].copy_from_slice(&ports.1.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = ((hl / 4) as u8) << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    t[20..].copy_from_slice(opts);
    t.extend_from_slice(data);
    let mut p = match (s, d) {
        (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) => {
            let mut h = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0];
            h[2..4].copy_from_slice(&((20 + t.len()) as u16).to_be_bytes());
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            let c = !rfc1071(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            h
        }
        (std::net::IpAddr::V6(s), std::net::IpAddr::V6(d)) => {
            let mut h = vec![0x60, 0, 0, 0];
            h.extend_from_slice(&(t.len() as u16).to_be_bytes());
            h.extend_from_slice(&[6, 64]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            h
        }
        _ => panic!("mixed families"),
    };
    let ph = pseudo(&p, t.len());
    let c = !rfc1071(&[ph, t.clone()].concat());
    t[16..18].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&t);
    p
}

/// What left the router, decoded and checked.
struct Out {
    src: std::net::IpAddr,
    dst: std::net::IpAddr,
    seq: u32,
    ack: u32,
    opts: Vec<u8>,
    data: Vec<u8>,
}

fn decode(p: &[u8]) -> Out {
    let off = l4_off(p);
    if v6(p) {
        assert_eq!(usize::from(u16::from_be_bytes([p[4], p[5]])), p.len() - 40);
    } else {
        assert_eq!(
            usize::from(u16::from_be_bytes([p[2], p[3]])),
            p.len(),
            "IPv4 total length"
        );
        assert_eq!(rfc1071(&p[..off]), 0xffff, "IPv4 header checksum");
    }
    let t = &p[off..];
    let ph = pseudo(p, t.len());
    assert_eq!(rfc1071(&[ph, t.to_vec()].concat()), 0xffff, "TCP checksum");
    let hl = usize::from(t[12] >> 4) * 4;
    let ip = |b: &[u8]| -> std::net::IpAddr {
        if b.len() == 4 {
            std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).into()
        } else {
            let a: [u8; 16] = b.try_into().unwrap();
            std::net::Ipv6Addr::from(a).into()
        }
    };
    let (src, dst) = if v6(p) {
        (ip(&p[8..24]), ip(&p[24..40]))
    } else {
        (ip(&p[12..16]), ip(&p[16..20]))
    };
    Out {
        src,
        dst,
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        ack: u32::from_be_bytes([t[8], t[9], t[10], t[11]]),
        opts: t[20..hl].to_vec(),
        data: t[hl..].to_vec(),
    }
}

const SYN: u8 = 0x02;
const SYNACK: u8 = 0x12;
const ACK: u8 = 0x10;
const PSH: u8 = 0x18;

struct Router {
    ct: Conntrack,
    defrag: Defrag,
    p: Pipeline,
    ms: u64,
}

impl Router {
    fn new(rules: &str, addrs: &[(Side, &str)]) -> Router {
        let rs = load_str("test.nft", rules).unwrap_or_else(|e| panic!("{e}"));
        let mut p = Pipeline::new(rs, ("client".into(), "server".into()));
        for (side, a) in addrs {
            p.add_addr(*side, a.parse().unwrap());
        }
        Router {
            ct: Conntrack::new(Config::default()),
            defrag: Defrag::new(),
            p,
            ms: 0,
        }
    }

    /// Send one packet; it must be forwarded with `state`. Returns what left.
    fn fwd(&mut self, pkt: &[u8], side: Side, state: CtState) -> Out {
        self.ms += 1;
        let o = self.p.packet(
            &mut self.ct,
            &mut self.defrag,
            Instant::from_nanos(self.ms * 1_000_000),
            pkt,
            side,
        );
        assert_eq!(o.ctstate, Some(state), "{o:?}");
        assert!(!o.drop, "{o:?}");
        decode(self.p.last_packet())
    }
}

/// One TCP connection seen from both wires: `c_nxt`/`s_nxt` are each end's own next
/// sequence numbers, `c_off`/`s_off` what the router has added to them so far.
struct Ctl<'a> {
    c: (&'a str, &'a str, u16, u16),
    s: (&'a str, &'a str, u16, u16),
    c_nxt: u32,
    s_nxt: u32,
    c_off: i32,
    s_off: i32,
}

impl<'a> Ctl<'a> {
    /// A control connection: the client's packets as sent (`c`: src, dst, sport,
    /// dport), the server's as sent (`s`), their initial sequence numbers, no offsets.
    fn new(
        c: (&'a str, &'a str, u16, u16),
        s: (&'a str, &'a str, u16, u16),
        c_nxt: u32,
        s_nxt: u32,
    ) -> Ctl<'a> {
        Ctl {
            c,
            s,
            c_nxt,
            s_nxt,
            c_off: 0,
            s_off: 0,
        }
    }

    fn client_sends(&mut self, r: &mut Router, flags: u8, data: &[u8], state: CtState) -> Out {
        let ack = self.s_nxt.wrapping_add(self.s_off as u32);
        let (a, b, x, y) = self.c;
        let pkt = tcp(a, b, (x, y), flags, self.c_nxt, ack, &[], data);
        let out = r.fwd(&pkt, Side::Client, state);
        assert_eq!(
            out.seq,
            self.c_nxt.wrapping_add(self.c_off as u32),
            "the segment leaves where the server's stream is"
        );
        if flags & ACK != 0 {
            assert_eq!(
                out.ack, self.s_nxt,
                "the ack reaches the server in its own numbers"
            );
        }
        self.c_nxt = self
            .c_nxt
            .wrapping_add(data.len() as u32 + u32::from(flags & SYN != 0));
        self.c_off += out.data.len() as i32 - data.len() as i32;
        out
    }

    fn server_sends(&mut self, r: &mut Router, flags: u8, data: &[u8], opts: &[u8]) -> Out {
        let ack = self.c_nxt.wrapping_add(self.c_off as u32);
        let (a, b, x, y) = self.s;
        let pkt = tcp(a, b, (x, y), flags, self.s_nxt, ack, opts, data);
        let out = r.fwd(&pkt, Side::Server, CtState::Established);
        assert_eq!(out.seq, self.s_nxt.wrapping_add(self.s_off as u32));
        assert_eq!(
            out.ack, self.c_nxt,
            "the ack reaches the client in its own numbers"
        );
        self.s_nxt = self
            .s_nxt
            .wrapping_add(data.len() as u32 + u32::from(flags & SYN != 0));
        self.s_off += out.data.len() as i32 - data.len() as i32;
        out
    }

    fn login(&mut self, r: &mut Router) {
        self.client_sends(r, SYN, b"", CtState::New);
        self.server_sends(r, SYNACK, b"", &[]);
        self.client_sends(r, ACK, b"", CtState::Established);
        self.server_sends(r, PSH, b"220 ready\r\n", &[]);
        self.client_sends(r, PSH, b"USER ftp\r\n", CtState::Established);
        self.server_sends(r, PSH, b"331 password\r\n", &[]);
        self.client_sends(r, PSH, b"PASS x\r\n", CtState::Established);
        self.server_sends(r, PSH, b"230 ok\r\n", &[]);
    }
}

#[test]
fn ftp_snat_rewrites_port_and_adjusts_both_streams() {
    let mut r = Router::new(FTP_SNAT, &[(Side::Server, "10.2.0.254")]);
    // The client's sequence numbers wrap during the session.
    let mut ctl = Ctl::new(
        ("10.1.0.1", "10.2.0.1", 40021, 21),
        ("10.2.0.1", "10.2.0.254", 21, 40021),
        0xffff_fff0,
        2_000_000,
    );
    ctl.login(&mut r);
    let out = ctl.client_sends(
        &mut r,
        PSH,
        b"PORT 10,1,0,1,156,65\r\n",
        CtState::Established,
    );
    assert_eq!(out.data, b"PORT 10,2,0,254,156,65\r\n");
    assert_eq!(out.src.to_string(), "10.2.0.254");
    assert_eq!(ctl.c_off, 2);
    ctl.server_sends(&mut r, PSH, b"200 ok\r\n", &[]);
    ctl.client_sends(&mut r, PSH, b"RETR a\r\n", CtState::Established);

    // The data connection comes to the router's address and is DNATed to the client.
    let syn = tcp("10.2.0.1", "10.2.0.254", (20, 40001), SYN, 7, 0, &[], b"");
    let out = r.fwd(&syn, Side::Server, CtState::Related);
    assert_eq!(
        (out.src.to_string(), out.dst.to_string()),
        ("10.2.0.1".into(), "10.1.0.1".into())
    );
    let synack = tcp(
        "10.1.0.1",
        "10.2.0.1",
        (40001, 20),
        SYNACK,
        900,
        8,
        &[],
        b"",
    );
    let out = r.fwd(&synack, Side::Client, CtState::Established);
    assert_eq!(out.dst.to_string(), "10.2.0.1");
    assert_eq!(out.src.to_string(), "10.2.0.254");

    // A second rewrite; then a SACK from the server naming client data on both sides
    // of it (in the server's numbers) comes back in the client's.
    let port2 = ctl.c_nxt;
    let out = ctl.client_sends(
        &mut r,
        PSH,
        b"PORT 10,1,0,1,156,66\r\n",
        CtState::Established,
    );
    assert_eq!(out.data, b"PORT 10,2,0,254,156,66\r\n");
    assert_eq!(ctl.c_off, 4);
    let before = port2.wrapping_sub(8).wrapping_add(2); // RETR, sent with offset 2
    let after = ctl.c_nxt.wrapping_add(4);
    let mut sack = vec![1, 1, 5, 18];
    for v in [before, before.wrapping_add(8), port2.wrapping_add(2), after] {
        sack.extend_from_slice(&v.to_be_bytes());
    }
    let out = ctl.server_sends(&mut r, PSH, b"200 ok\r\n", &sack);
    let edge = |i: usize| {
        let o = 4 + 4 * i;
        u32::from_be_bytes([
            out.opts[o],
            out.opts[o + 1],
            out.opts[o + 2],
            out.opts[o + 3],
        ])
    };
    assert_eq!(
        [edge(0), edge(1), edge(2), edge(3)],
        [port2.wrapping_sub(8), port2, port2, ctl.c_nxt]
    );
    // Later traffic in both directions stays consistent.
    ctl.client_sends(&mut r, PSH, b"PASV\r\n", CtState::Established);
    let out = ctl.server_sends(
        &mut r,
        PSH,
        b"227 Entering Passive Mode (10,2,0,1,195,80).\r\n",
        &[],
    );
    assert_eq!(
        out.data,
        b"227 Entering Passive Mode (10,2,0,1,195,80).\r\n"
    );
    ctl.client_sends(&mut r, PSH, b"QUIT\r\n", CtState::Established);
    ctl.server_sends(&mut r, PSH, b"221 bye\r\n", &[]);

    // Another client whose address is longer than the router's: the command shrinks.
    let mut ctl2 = Ctl::new(
        ("10.1.200.100", "10.2.0.1", 40022, 21),
        ("10.2.0.1", "10.2.0.254", 21, 40022),
        1_000,
        5_000,
    );
    ctl2.login(&mut r);
    let out = ctl2.client_sends(
        &mut r,
        PSH,
        b"PORT 10,1,200,100,156,75\r\n",
        CtState::Established,
    );
    assert_eq!(out.data, b"PORT 10,2,0,254,156,75\r\n");
    assert_eq!(ctl2.c_off, -2);
    ctl2.server_sends(&mut r, PSH, b"200 ok\r\n", &[]);
    ctl2.client_sends(&mut r, PSH, b"LIST\r\n", CtState::Established);
    ctl2.server_sends(&mut r, PSH, b"150 here\r\n", &[]);
}

#[test]
fn ftp_snat_ipv6_eprt_and_epsv() {
    let mut r = Router::new(FTP_SNAT, &[(Side::Server, "2001:db8:2::fe")]);
    let mut ctl = Ctl::new(
        ("2001:db8:1::1", "2001:db8:2::1", 40023, 21),
        ("2001:db8:2::1", "2001:db8:2::fe", 21, 40023),
        1_700_000,
        2_700_000,
    );
    ctl.login(&mut r);
    let out = ctl.client_sends(
        &mut r,
        PSH,
        b"EPRT |2|2001:db8:1::1|40012|\r\n",
        CtState::Established,
    );
    assert_eq!(
        out.data,
        b"EPRT |2|2001:0db8:0002:0000:0000:0000:0000:00fe|40012|\r\n".to_vec()
    );
    ctl.server_sends(&mut r, PSH, b"200 ok\r\n", &[]);
    let syn = tcp(
        "2001:db8:2::1",
        "2001:db8:2::fe",
        (20, 40012),
        SYN,
        7,
        0,
        &[],
        b"",
    );
    let out = r.fwd(&syn, Side::Server, CtState::Related);
    assert_eq!(out.dst.to_string(), "2001:db8:1::1");
    ctl.client_sends(&mut r, PSH, b"EPSV\r\n", CtState::Established);
    let out = ctl.server_sends(
        &mut r,
        PSH,
        b"229 Entering Extended Passive Mode (!!!50001!)\r\n",
        &[],
    );
    assert_eq!(
        out.data,
        b"229 Entering Extended Passive Mode (|||50001|)\r\n".to_vec(),
        "the kernel writes its own delimiter"
    );
    ctl.client_sends(&mut r, PSH, b"LIST\r\n", CtState::Established);
    let syn = tcp(
        "2001:db8:1::1",
        "2001:db8:2::1",
        (40013, 50001),
        SYN,
        9,
        0,
        &[],
        b"",
    );
    let out = r.fwd(&syn, Side::Client, CtState::Related);
    assert_eq!(out.src.to_string(), "2001:db8:2::fe");
}

#[test]
fn ftp_dnat_rewrites_227_in_the_reply_direction() {
    let mut r = Router::new(
        FTP_DNAT,
        &[(Side::Client, "10.1.0.254"), (Side::Server, "10.2.0.254")],
    );
    let mut ctl = Ctl::new(
        ("10.1.0.1", "10.1.0.254", 40031, 21),
        ("10.2.0.1", "10.1.0.1", 21, 40031),
        1_000_000,
        0xffff_ff00,
    );
    ctl.login(&mut r);
    ctl.client_sends(&mut r, PSH, b"PASV\r\n", CtState::Established);
    let out = ctl.server_sends(
        &mut r,
        PSH,
        b"227 Entering Passive Mode (10,2,0,1,195,81).\r\n",
        &[],
    );
    assert_eq!(
        out.data,
        b"227 Entering Passive Mode (10,1,0,254,195,81).\r\n"
    );
    assert_eq!(ctl.s_off, 2);
    ctl.client_sends(&mut r, PSH, b"RETR a\r\n", CtState::Established);
    ctl.server_sends(&mut r, PSH, b"150 opening\r\n", &[]);
    let syn = tcp(
        "10.1.0.1",
        "10.1.0.254",
        (40032, 50001),
        SYN,
        7,
        0,
        &[],
        b"",
    );
    let out = r.fwd(&syn, Side::Client, CtState::Related);
    assert_eq!(
        out.dst.to_string(),
        "10.2.0.1",
        "DNATed to the server (follow master)"
    );
    // An active command on the same connection: same text, the server's data
    // connection is SNATed to the public address.
    let out = ctl.client_sends(
        &mut r,
        PSH,
        b"PORT 10,1,0,1,156,70\r\n",
        CtState::Established,
    );
    assert_eq!(out.data, b"PORT 10,1,0,1,156,70\r\n");
    ctl.server_sends(&mut r, PSH, b"200 ok\r\n", &[]);
    let syn = tcp("10.2.0.1", "10.1.0.1", (20, 40006), SYN, 7, 0, &[], b"");
    let out = r.fwd(&syn, Side::Server, CtState::Related);
    assert_eq!(out.src.to_string(), "10.1.0.254");
    ctl.client_sends(&mut r, PSH, b"QUIT\r\n", CtState::Established);
    ctl.server_sends(&mut r, PSH, b"221 bye\r\n", &[]);
}
