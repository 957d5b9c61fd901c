//! SCTP tracker tests: hand-built SCTP/IPv4 packets (common header, chunks, real
//! CRC32c) driven through `error` / `SctpConn::new` / `SctpConn::packet` by a small
//! simulated entry ([`Assoc`]) that plays the engine's part: first packet → `new` +
//! `packet` with `unconfirmed`, then confirmed; SEEN_REPLY after the first accepted
//! reply; ASSURED when the tracker asks. Expected values come from
//! kernel-semantics-2.md §1 (all confirmed on the live kernel).

use super::*;
use crate::status::Status;
use crate::time::{secs, Instant};
use crate::tuple::Dir::{Original as O, Reply as R};

// ---------------------------------------------------------------------------------
// Packet building
// ---------------------------------------------------------------------------------

const CLIENT: [u8; 4] = [10, 1, 0, 10];
const SERVER: [u8; 4] = [10, 2, 0, 20];
const CPORT: u16 = 5000;
const SPORT: u16 = 5001;

/// The client's initiate tag (carried by server→client packets after setup).
const TC: u32 = 0xC1C1_0001;
/// The server's initiate tag (carried by client→server packets after setup).
const TS: u32 = 0x5E5E_0002;
/// The tag of the first HEARTBEAT on a secondary path.
const THB: u32 = 0x4B4B_0003;

const DATA: u8 = cid::DATA;
const SACK: u8 = 3;
const FORWARD_TSN: u8 = 192;

/// A chunk with a correct length field, padded to 4 bytes.
fn chunk(t: u8, flags: u8, body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(CHUNK_HDR_LEN + body.len()).expect("small chunk");
    chunk_with_len(t, flags, len, body)
}

/// A chunk with an arbitrary length field, the body padded to 4 bytes.
fn chunk_with_len(t: u8, flags: u8, len: u16, body: &[u8]) -> Vec<u8> {
    let mut c = vec![t, flags];
    c.extend_from_slice(&len.to_be_bytes());
    c.extend_from_slice(body);
    while c.len() % 4 != 0 {
        c.push(0);
    }
    c
}

/// INIT / INIT_ACK fixed header: initiate tag, a_rwnd, streams, initial TSN.
fn init_body(tag: u32) -> Vec<u8> {
    let mut b = tag.to_be_bytes().to_vec();
    b.extend_from_slice(&0x0001_a000u32.to_be_bytes());
    b.extend_from_slice(&[0, 10, 0, 10]);
    b.extend_from_slice(&0x1000_0000u32.to_be_bytes());
    b
}

fn init(tag: u32) -> Vec<u8> {
    chunk(cid::INIT, 0, &init_body(tag))
}
fn init_ack(tag: u32) -> Vec<u8> {
    // The state cookie parameter (type 7) follows the fixed header.
    let mut b = init_body(tag);
    b.extend_from_slice(&[0, 7, 0, 8, 0xc0, 0x0c, 0x1e, 0x00]);
    chunk(cid::INIT_ACK, 0, &b)
}
fn data() -> Vec<u8> {
    // TSN, stream, SSN, PPID, 4 bytes of user data; flags B|E.
    chunk(
        DATA,
        0x03,
        &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, b'd', b'a', b't', b'a'],
    )
}
fn sack() -> Vec<u8> {
    chunk(SACK, 0, &[0, 0, 0, 1, 0, 1, 0xa0, 0, 0, 0, 0, 0])
}
fn heartbeat() -> Vec<u8> {
    // Heartbeat Info parameter (type 1).
    chunk(cid::HEARTBEAT, 0, &[0, 1, 0, 8, 1, 2, 3, 4])
}
fn heartbeat_ack() -> Vec<u8> {
    chunk(cid::HEARTBEAT_ACK, 0, &[0, 1, 0, 8, 1, 2, 3, 4])
}
fn abort(t: bool) -> Vec<u8> {
    chunk(cid::ABORT, u8::from(t), &[])
}
fn shutdown() -> Vec<u8> {
    chunk(cid::SHUTDOWN, 0, &[0, 0, 0, 1])
}
fn shutdown_ack() -> Vec<u8> {
    chunk(cid::SHUTDOWN_ACK, 0, &[])
}
fn error_chunk() -> Vec<u8> {
    // One "stale cookie" cause (3) with an 8-byte body.
    chunk(cid::ERROR, 0, &[0, 3, 0, 8, 0, 0, 0, 1])
}
fn cookie_echo() -> Vec<u8> {
    chunk(cid::COOKIE_ECHO, 0, &[0xc0, 0x0c, 0x1e, 0x00])
}
fn cookie_ack() -> Vec<u8> {
    chunk(cid::COOKIE_ACK, 0, &[])
}
fn shutdown_complete(t: bool) -> Vec<u8> {
    chunk(cid::SHUTDOWN_COMPLETE, u8::from(t), &[])
}

/// The SCTP part: common header (ports for `dir`), `vtag`, chunks; CRC32c filled in.
fn sctp_bytes(dir: Dir, vtag: u32, chunks: &[Vec<u8>]) -> Vec<u8> {
    let (sp, dp) = match dir {
        Dir::Original => (CPORT, SPORT),
        Dir::Reply => (SPORT, CPORT),
    };
    let mut s = Vec::new();
    s.extend_from_slice(&sp.to_be_bytes());
    s.extend_from_slice(&dp.to_be_bytes());
    s.extend_from_slice(&vtag.to_be_bytes());
    s.extend_from_slice(&[0; 4]);
    for c in chunks {
        s.extend_from_slice(c);
    }
    let crc = crc32c::sctp_checksum(&s);
    s[8..12].copy_from_slice(&crc.to_le_bytes());
    s
}

/// An IPv4 packet around an SCTP part.
fn ipv4(dir: Dir, sctp: &[u8]) -> Vec<u8> {
    let (src, dst) = match dir {
        Dir::Original => (CLIENT, SERVER),
        Dir::Reply => (SERVER, CLIENT),
    };
    let total = u16::try_from(20 + sctp.len()).expect("small packet");
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 132, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let csum = crate::packet::checksum::compute(0, &ip);
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    ip.extend_from_slice(sctp);
    ip
}

/// A complete SCTP/IPv4 packet travelling in `dir`.
fn pkt(dir: Dir, vtag: u32, chunks: &[Vec<u8>]) -> Vec<u8> {
    ipv4(dir, &sctp_bytes(dir, vtag, chunks))
}

// ---------------------------------------------------------------------------------
// The simulated entry
// ---------------------------------------------------------------------------------

/// What the tracker said about one packet: accepted (with its side effects) or the
/// SCTP reason it was rejected.
type Out = Result<Accepted, SctpReason>;

fn sctp_reason(r: InvalidReason) -> SctpReason {
    match r {
        InvalidReason::Sctp(s) => s,
        other => panic!("not an SCTP reason: {other:?}"),
    }
}

/// One would-be entry, driven as the engine drives the tracker.
struct Assoc {
    conn: Option<SctpConn>,
    status: Status,
    sysctls: Sysctls,
    check_checksum: bool,
    now: Instant,
}

impl Assoc {
    fn new() -> Assoc {
        Assoc {
            conn: None,
            status: Status::default(),
            sysctls: Sysctls::default(),
            check_checksum: true,
            now: Instant::from_secs(1000),
        }
    }

    /// Feed one IP packet travelling in `dir`.
    fn send(&mut self, dir: Dir, bytes: &[u8]) -> Out {
        let p = Packet::parse(bytes).expect("test packet parses");
        let cx = Cx {
            now: self.now,
            sysctls: &self.sysctls,
            check_checksum: self.check_checksum,
        };
        error(&p, &cx).map_err(sctp_reason)?;
        let result = match self.conn.as_mut() {
            None => {
                assert_eq!(dir, O, "a first packet is ORIGINAL by definition");
                let mut conn = SctpConn::new(&p, &cx).map_err(sctp_reason)?;
                let ecx = EntryCx {
                    status: Status::default(),
                    unconfirmed: true,
                    deadline: Instant::ZERO,
                    seqadj: None,
                };
                let r = conn.packet(&p, O, &ecx, &cx);
                if matches!(r, TrackerResult::Accept(_)) {
                    // Confirmed at the end of the hook pipeline.
                    self.conn = Some(conn);
                    self.status.set(Status::CONFIRMED);
                }
                r
            }
            Some(conn) => {
                let ecx = EntryCx {
                    status: self.status,
                    unconfirmed: false,
                    deadline: self.now + secs(5),
                    seqadj: None,
                };
                conn.packet(&p, dir, &ecx, &cx)
            }
        };
        match result {
            TrackerResult::Accept(a) => {
                if dir == R {
                    self.status.set(Status::SEEN_REPLY);
                }
                if a.set_assured {
                    self.status.set(Status::ASSURED);
                }
                Ok(a)
            }
            TrackerResult::Invalid {
                reason,
                set_timeout,
            } => {
                assert_eq!(set_timeout, None, "SCTP never sets a timeout on INVALID");
                Err(sctp_reason(reason))
            }
            TrackerResult::InvalidAfterUpdate {
                reason,
                set_assured,
                ..
            } => {
                if set_assured {
                    self.status.set(Status::ASSURED);
                }
                Err(sctp_reason(reason))
            }
            other => panic!("unexpected tracker result {other:?}"),
        }
    }

    /// Send and require acceptance.
    fn ok(&mut self, dir: Dir, bytes: &[u8]) -> Accepted {
        match self.send(dir, bytes) {
            Ok(a) => a,
            Err(r) => panic!("expected accept, got INVALID: {r} ({r:?})"),
        }
    }

    /// Send and require rejection.
    fn iv(&mut self, dir: Dir, bytes: &[u8]) -> SctpReason {
        match self.send(dir, bytes) {
            Ok(a) => panic!("expected INVALID, got accept {a:?}"),
            Err(r) => r,
        }
    }

    fn state(&self) -> Option<SctpState> {
        self.conn.as_ref().map(SctpConn::state)
    }

    fn conn(&self) -> &SctpConn {
        self.conn.as_ref().expect("entry exists")
    }

    fn vtag(&self, dir: Dir) -> u32 {
        self.conn().vtag(dir)
    }

    fn assured(&self) -> bool {
        self.status.has(Status::ASSURED)
    }
}

fn refresh_secs(a: &Accepted) -> Option<u64> {
    a.refresh.map(|d| d.as_secs())
}

/// A fresh association brought into `state` by real packets with the usual tags:
/// client INIT tag `TC`, server INIT_ACK tag `TS`; HEARTBEAT_SENT via a first
/// HEARTBEAT with tag `THB`.
fn assoc_in(state: SctpState) -> Assoc {
    use SctpState as S;
    let mut a = Assoc::new();
    let mut path: Vec<(Dir, Vec<u8>)> = Vec::new();
    match state {
        S::None => {}
        S::HeartbeatSent => path.push((O, pkt(O, THB, &[heartbeat()]))),
        _ => {
            path.push((O, pkt(O, 0, &[init(TC)])));
            if state.number() >= S::CookieWait.number() {
                path.push((R, pkt(R, TC, &[init_ack(TS)])));
            }
            if state.number() >= S::CookieEchoed.number() {
                path.push((O, pkt(O, TS, &[cookie_echo()])));
            }
            if state.number() >= S::Established.number() {
                path.push((R, pkt(R, TC, &[cookie_ack()])));
            }
            match state {
                S::ShutdownSent => path.push((O, pkt(O, TS, &[shutdown()]))),
                S::ShutdownRecd => path.push((R, pkt(R, TC, &[shutdown()]))),
                S::ShutdownAckSent => {
                    path.push((O, pkt(O, TS, &[shutdown()])));
                    path.push((R, pkt(R, TC, &[shutdown_ack()])));
                }
                _ => {}
            }
        }
    }
    for (dir, bytes) in path {
        a.ok(dir, &bytes);
    }
    let want = if state == S::None { None } else { Some(state) };
    assert_eq!(a.state(), want);
    a
}

// ---------------------------------------------------------------------------------
// Layout, names, CRC and sctp_error
// ---------------------------------------------------------------------------------

#[test]
fn sctp_conn_is_16_bytes() {
    assert_eq!(core::mem::size_of::<SctpConn>(), 16);
}

#[test]
fn sctp_state_names_and_numbers() {
    let names: Vec<&str> = SctpState::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            "NONE",
            "CLOSED",
            "COOKIE_WAIT",
            "COOKIE_ECHOED",
            "ESTABLISHED",
            "SHUTDOWN_SENT",
            "SHUTDOWN_RECD",
            "SHUTDOWN_ACK_SENT",
            "HEARTBEAT_SENT"
        ]
    );
    for (i, s) in SctpState::ALL.iter().enumerate() {
        assert_eq!(usize::from(s.number()), i);
        assert_eq!(s.to_string(), s.name());
    }
}

#[test]
fn sctp_can_early_drop_only_in_shutdown_states() {
    for s in SctpState::ALL {
        let conn = SctpConn {
            state: s,
            ..SctpConn::default()
        };
        let expect = matches!(
            s,
            SctpState::ShutdownSent | SctpState::ShutdownRecd | SctpState::ShutdownAckSent
        );
        assert_eq!(conn.can_early_drop(), expect, "{s}");
    }
}

/// The first four packets of a real association (arkime `tests/pcap/sctp-www.pcap`,
/// Apache-2.0; HTTP over SCTP, frames 1-4, IP part): INIT, INIT_ACK, COOKIE_ECHO,
/// COOKIE_ACK, all with the CRC32c their sender computed.
const REAL_HANDSHAKE: [&str; 4] = [
    "4502005c000040004084bcd89be6189bcbfffcc2804400500000000030baef540100003c3bb99c460001a000000affff2b2d7eb2000500089be6189b000500089be6189c000c00060005000080000004c0000004c006000800000000",
    "45000108000040003b84c12ecbfffcc29be6189b005080443bb99c46a3ba08e6020000e8d26ac1e50001a000000a000a64002a16000700c4b3493015e1c27625f53ab8185555b8db7a0f43dd000000000000000000000000e5c16ad2469cb93b0000000000000000f4c5c543952b00000a000a00162a0064020044809be6189b00000000000000000000000000000000000000005000010000000000000000000100003c3bb99c460001a000000affff2b2d7eb2000500089be6189b000500089be6189c000c00060005000080000004c0000004c0060008000000000000000000000000000000000000000000000000000000000000000080000004c0000004c006000800000000",
    "450200e4000040004084bc509be6189bcbfffcc280440050d26ac1e57514a49a0a0000c4b3493015e1c27625f53ab8185555b8db7a0f43dd000000000000000000000000e5c16ad2469cb93b0000000000000000f4c5c543952b00000a000a00162a0064020044809be6189b00000000000000000000000000000000000000005000010000000000000000000100003c3bb99c460001a000000affff2b2d7eb2000500089be6189b000500089be6189c000c00060005000080000004c0000004c00600080000000000000000000000000000000000000000000000000000000000000000",
    "45000024000040003b84c212cbfffcc29be6189b005080443bb99c4681cede0b0b000004",
];

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn sctp_real_capture_crc_and_handshake_established() {
    let mut a = Assoc::new();
    let dirs = [O, R, O, R];
    let expect = [
        SctpState::Closed,
        SctpState::CookieWait,
        SctpState::CookieEchoed,
        SctpState::Established,
    ];
    for ((hex, dir), state) in REAL_HANDSHAKE.iter().zip(dirs).zip(expect) {
        let bytes = unhex(hex);
        let p = Packet::parse(&bytes).expect("parses");
        let l4 = p.l4();
        let wire = u32::from_le_bytes([l4[8], l4[9], l4[10], l4[11]]);
        assert_eq!(crc32c::sctp_checksum(l4), wire);
        a.ok(dir, &bytes);
        assert_eq!(a.state(), Some(state));
    }
    assert!(a.assured());
    // `--orig-vtag` = the INIT_ACK's initiate tag, `--reply-vtag` = the INIT's.
    assert_eq!(a.vtag(O), 0xd26a_c1e5);
    assert_eq!(a.vtag(R), 0x3bb9_9c46);
}

#[test]
fn sctp_bad_crc_invalid_with_checksum_on_tracked_with_it_off() {
    let mut bytes = pkt(O, 0, &[init(TC)]);
    let n = bytes.len();
    bytes[n - 1] ^= 0x01; // corrupt the last byte of the initial TSN
    let mut a = Assoc::new();
    let r = a.iv(O, &bytes);
    assert!(matches!(r, SctpReason::BadCrc { .. }), "{r:?}");
    assert_eq!(r.to_string(), "nf_ct_sctp: bad CRC");
    assert!(r.kernel_logs());
    assert_eq!(a.state(), None);

    let mut a = Assoc::new();
    a.check_checksum = false;
    let acc = a.ok(O, &bytes);
    assert_eq!(a.state(), Some(SctpState::Closed));
    assert_eq!(refresh_secs(&acc), Some(10));
}

#[test]
fn sctp_bad_crc_field_byte_order_matters() {
    // The same CRC stored big-endian is wrong.
    let mut s = sctp_bytes(O, 0, &[init(TC)]);
    let crc = crc32c::sctp_checksum(&s);
    s[8..12].copy_from_slice(&crc.to_be_bytes());
    let bytes = ipv4(O, &s);
    let r = Assoc::new().iv(O, &bytes);
    assert_eq!(
        r,
        SctpReason::BadCrc {
            wire: crc.swap_bytes(),
            computed: crc
        }
    );
}

#[test]
fn sctp_short_packet_invalid() {
    let s = sctp_bytes(O, 0, &[]);
    let bytes = ipv4(O, &s[..11]);
    let r = Assoc::new().iv(O, &bytes);
    assert_eq!(r, SctpReason::ShortPacket);
    assert_eq!(r.to_string(), "nf_ct_sctp: short packet");
    // The checksum does not matter for the length check.
    let mut a = Assoc::new();
    a.check_checksum = false;
    assert_eq!(a.iv(O, &bytes), SctpReason::ShortPacket);
}

#[test]
fn sctp_ipv6_init_tracked() {
    let s = sctp_bytes(O, 0, &[init(TC)]);
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&u16::try_from(s.len()).expect("small").to_be_bytes());
    ip.extend_from_slice(&[132, 64]);
    ip.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    ip.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    ip.extend_from_slice(&s);
    let mut a = Assoc::new();
    let acc = a.ok(O, &ip);
    assert_eq!(a.state(), Some(SctpState::Closed));
    assert_eq!(refresh_secs(&acc), Some(10));
    assert_eq!(a.vtag(R), TC);
}

// ---------------------------------------------------------------------------------
// The transition tables, every cell (kernel-semantics-2.md §1.3)
// ---------------------------------------------------------------------------------

/// §1.3, ORIGINAL direction, copied from the spec (columns NO CL CW CE ES SS SR SA HS).
const SPEC_ORIGINAL: &str = "
INIT              CL CL CW CE ES CL CL SA CW
INIT_ACK          CL CL CW CE ES SS SR SA CL
ABORT             CL CL CL CL CL CL CL CL CL
SHUTDOWN          CL CL CW CE SS SS SR SA CL
SHUTDOWN_ACK      SA CL CW CE ES SA SA SA SA
ERROR             CL CL CW CE ES SS SR SA CL
COOKIE_ECHO       CL CL CE CE ES SS SR SA CL
COOKIE_ACK        CL CL CW ES ES SS SR SA CL
SHUTDOWN_COMPLETE CL CL CW CE ES SS SR CL CL
HEARTBEAT         HS CL CW CE ES SS SR SA HS
HEARTBEAT_ACK     CL CL CW CE ES SS SR SA HS
";

/// §1.3, REPLY direction.
const SPEC_REPLY: &str = "
INIT              IV CL CW CE ES SS SR SA IV
INIT_ACK          IV CW CW CE ES SS SR SA IV
ABORT             IV CL CL CL CL CL CL CL IV
SHUTDOWN          IV CL CW CE SR SS SR SA IV
SHUTDOWN_ACK      IV CL CW CE ES SA SA SA IV
ERROR             IV CL CW CL ES SS SR SA IV
COOKIE_ECHO       IV CL CE CE ES SS SR SA IV
COOKIE_ACK        IV CL CW ES ES SS SR SA IV
SHUTDOWN_COMPLETE IV CL CW CE ES SS SR CL IV
HEARTBEAT         IV CL CW CE ES SS SR SA HS
HEARTBEAT_ACK     IV CL CW CE ES SS SR SA ES
";

fn chunk_type_named(name: &str) -> u8 {
    match name {
        "INIT" => cid::INIT,
        "INIT_ACK" => cid::INIT_ACK,
        "ABORT" => cid::ABORT,
        "SHUTDOWN" => cid::SHUTDOWN,
        "SHUTDOWN_ACK" => cid::SHUTDOWN_ACK,
        "ERROR" => cid::ERROR,
        "COOKIE_ECHO" => cid::COOKIE_ECHO,
        "COOKIE_ACK" => cid::COOKIE_ACK,
        "SHUTDOWN_COMPLETE" => cid::SHUTDOWN_COMPLETE,
        "HEARTBEAT" => cid::HEARTBEAT,
        "HEARTBEAT_ACK" => cid::HEARTBEAT_ACK,
        other => panic!("unknown chunk {other}"),
    }
}

/// `None` = IV.
fn state_abbrev(s: &str) -> Option<SctpState> {
    Some(match s {
        "NO" => SctpState::None,
        "CL" => SctpState::Closed,
        "CW" => SctpState::CookieWait,
        "CE" => SctpState::CookieEchoed,
        "ES" => SctpState::Established,
        "SS" => SctpState::ShutdownSent,
        "SR" => SctpState::ShutdownRecd,
        "SA" => SctpState::ShutdownAckSent,
        "HS" => SctpState::HeartbeatSent,
        "IV" => return None,
        other => panic!("unknown state {other}"),
    })
}

/// (chunk type, [expected per column NO..HS]) rows of a spec grid.
fn spec_grid(text: &str) -> Vec<(u8, Vec<Option<SctpState>>)> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut w = l.split_whitespace();
            let t = chunk_type_named(w.next().expect("chunk name"));
            let cells: Vec<_> = w.map(state_abbrev).collect();
            assert_eq!(cells.len(), 9);
            (t, cells)
        })
        .collect()
}

/// The single-chunk packet that exercises a cell: it passes every tag rule, so only
/// the table decides. INIT carries tag 0 and a fresh initiate tag; INIT_ACK's initiate
/// tag is the one already known for the other direction (or a fresh one if none);
/// everything else carries the direction's tag, T bit clear.
fn cell_packet(a: &Assoc, dir: Dir, t: u8) -> Vec<u8> {
    let mine = a.vtag(dir);
    let other = a.vtag(dir.opposite());
    let fresh = 0xF7E5_0000;
    let c = match t {
        cid::INIT => return pkt(dir, 0, &[init(fresh)]),
        cid::INIT_ACK => init_ack(if other != 0 { other } else { fresh }),
        cid::ABORT => abort(false),
        cid::SHUTDOWN => shutdown(),
        cid::SHUTDOWN_ACK => shutdown_ack(),
        cid::ERROR => error_chunk(),
        cid::COOKIE_ECHO => cookie_echo(),
        cid::COOKIE_ACK => cookie_ack(),
        cid::SHUTDOWN_COMPLETE => shutdown_complete(false),
        cid::HEARTBEAT => heartbeat(),
        cid::HEARTBEAT_ACK => heartbeat_ack(),
        _ => unreachable!(),
    };
    pkt(dir, mine, &[c])
}

/// Drive every cell of one direction's table (columns CL..HS) with a fresh association
/// per cell; return the mismatches.
fn check_grid(dir: Dir, text: &str) -> Vec<String> {
    let mut bad = Vec::new();
    let mut cells = 0;
    for (t, row) in spec_grid(text) {
        for (col, &want) in row.iter().enumerate().skip(1) {
            let from = SctpState::ALL[col];
            let mut a = assoc_in(from);
            let bytes = cell_packet(&a, dir, t);
            let got = a.send(dir, &bytes);
            cells += 1;
            let ok = match (want, &got) {
                (Some(s), Ok(_)) => a.state() == Some(s),
                (None, Err(r)) => {
                    *r == SctpReason::Invalid {
                        old_state: from,
                        dir,
                        chunk_type: t,
                    } && a.state() == Some(from)
                }
                _ => false,
            };
            if !ok {
                bad.push(format!(
                    "{} {} from {}: want {:?}, got {:?} (state now {:?})",
                    dir.name(),
                    chunk_name(t),
                    from,
                    want,
                    got,
                    a.state()
                ));
            }
        }
    }
    assert_eq!(cells, 88);
    bad
}

#[test]
fn sctp_table_original_every_cell() {
    let bad = check_grid(O, SPEC_ORIGINAL);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn sctp_table_reply_every_cell() {
    let bad = check_grid(R, SPEC_REPLY);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn sctp_table_none_column_matches_first_packet_rules() {
    // The NO column of the ORIGINAL table, as seen through first packets (§1.6): only
    // ABORT, SHUTDOWN_COMPLETE and COOKIE_ACK are refused (out of the blue) although
    // the table has a cell for them.
    for (t, row) in spec_grid(SPEC_ORIGINAL) {
        let want = row[0].expect("no IV in the ORIGINAL NO column");
        let c = match t {
            cid::INIT => init(TC),
            cid::INIT_ACK => init_ack(TS),
            other => chunk(other, 0, &[0, 0, 0, 0]),
        };
        let mut a = Assoc::new();
        let got = a.send(O, &pkt(O, 0, &[c]));
        if matches!(t, cid::ABORT | cid::SHUTDOWN_COMPLETE | cid::COOKIE_ACK) {
            assert_eq!(got, Err(SctpReason::OutOfTheBlue { chunk_type: t }));
        } else {
            assert!(got.is_ok(), "{}: {got:?}", chunk_name(t));
            assert_eq!(a.state(), Some(want), "{}", chunk_name(t));
        }
    }
}

// ---------------------------------------------------------------------------------
// Normal life, timeouts, ASSURED, events
// ---------------------------------------------------------------------------------

#[test]
fn sctp_full_life_default_timeouts_and_events() {
    let mut a = Assoc::new();
    // (dir, packet, state after, refresh, state_changed, set_assured)
    let steps: Vec<(Dir, Vec<u8>, SctpState, u64, bool, bool)> = vec![
        (
            O,
            pkt(O, 0, &[init(TC)]),
            SctpState::Closed,
            10,
            true,
            false,
        ),
        (
            R,
            pkt(R, TC, &[init_ack(TS)]),
            SctpState::CookieWait,
            3,
            true,
            false,
        ),
        (
            O,
            pkt(O, TS, &[cookie_echo(), data()]),
            SctpState::CookieEchoed,
            3,
            true,
            false,
        ),
        (
            R,
            pkt(R, TC, &[cookie_ack(), sack()]),
            SctpState::Established,
            210,
            true,
            true,
        ),
        (
            O,
            pkt(O, TS, &[data()]),
            SctpState::Established,
            210,
            false,
            false,
        ),
        (
            R,
            pkt(R, TC, &[sack()]),
            SctpState::Established,
            210,
            false,
            false,
        ),
        (
            O,
            pkt(O, TS, &[shutdown()]),
            SctpState::ShutdownSent,
            3,
            true,
            false,
        ),
        (
            R,
            pkt(R, TC, &[shutdown_ack()]),
            SctpState::ShutdownAckSent,
            3,
            true,
            false,
        ),
        (
            O,
            pkt(O, TS, &[shutdown_complete(false)]),
            SctpState::Closed,
            10,
            true,
            false,
        ),
    ];
    for (i, (dir, bytes, state, refresh, changed, assured)) in steps.into_iter().enumerate() {
        let acc = a.ok(dir, &bytes);
        assert_eq!(a.state(), Some(state), "step {i}");
        assert_eq!(refresh_secs(&acc), Some(refresh), "step {i}");
        assert_eq!(acc.state_changed, changed, "step {i}");
        assert_eq!(acc.set_assured, assured, "step {i}");
        assert_eq!(acc.note, None, "step {i}");
        assert!(!acc.kill);
    }
    assert!(a.assured(), "ASSURED stays after SHUTDOWN_COMPLETE");
    assert!(a.status.has(Status::SEEN_REPLY));
}

#[test]
fn sctp_timeouts_follow_each_state_sysctl() {
    let mut a = Assoc::new();
    for (name, v) in [
        ("nf_conntrack_sctp_timeout_closed", "11"),
        ("nf_conntrack_sctp_timeout_cookie_wait", "12"),
        ("nf_conntrack_sctp_timeout_cookie_echoed", "13"),
        ("nf_conntrack_sctp_timeout_established", "14"),
        ("nf_conntrack_sctp_timeout_shutdown_sent", "15"),
        ("nf_conntrack_sctp_timeout_shutdown_recd", "16"),
        ("nf_conntrack_sctp_timeout_shutdown_ack_sent", "17"),
        ("nf_conntrack_sctp_timeout_heartbeat_sent", "18"),
    ] {
        a.sysctls.set(name, v).expect("sysctl");
    }
    let s = a.sysctls.clone();
    let expect = [10u64, 11, 12, 13, 14, 15, 16, 17, 18];
    for (state, want) in SctpState::ALL.iter().zip(expect) {
        assert_eq!(state.timeout(&s), secs(want), "{state}");
    }

    // Through packets: each refresh uses the new state's sysctl.
    assert_eq!(refresh_secs(&a.ok(O, &pkt(O, 0, &[init(TC)]))), Some(11));
    assert_eq!(
        refresh_secs(&a.ok(R, &pkt(R, TC, &[init_ack(TS)]))),
        Some(12)
    );
    assert_eq!(
        refresh_secs(&a.ok(O, &pkt(O, TS, &[cookie_echo()]))),
        Some(13)
    );
    assert_eq!(
        refresh_secs(&a.ok(R, &pkt(R, TC, &[cookie_ack()]))),
        Some(14)
    );
    assert_eq!(refresh_secs(&a.ok(R, &pkt(R, TC, &[shutdown()]))), Some(16));
    assert_eq!(
        refresh_secs(&a.ok(O, &pkt(O, TS, &[shutdown_ack()]))),
        Some(17)
    );
    // A sysctl change applies at the next packet.
    a.sysctls
        .set("nf_conntrack_sctp_timeout_shutdown_ack_sent", "42")
        .expect("sysctl");
    assert_eq!(refresh_secs(&a.ok(O, &pkt(O, TS, &[data()]))), Some(42));

    let mut h = Assoc::new();
    h.sysctls = s;
    assert_eq!(
        refresh_secs(&h.ok(O, &pkt(O, THB, &[heartbeat()]))),
        Some(18)
    );
    let mut ss = assoc_in(SctpState::ShutdownSent);
    ss.sysctls
        .set("nf_conntrack_sctp_timeout_shutdown_sent", "15")
        .expect("sysctl");
    assert_eq!(refresh_secs(&ss.ok(O, &pkt(O, TS, &[data()]))), Some(15));
}

#[test]
fn sctp_cookie_echoed_cookie_ack_reply_established() {
    let mut a = assoc_in(SctpState::CookieEchoed);
    assert!(!a.assured());
    let acc = a.ok(R, &pkt(R, TC, &[cookie_ack()]));
    assert_eq!(a.state(), Some(SctpState::Established));
    assert!(acc.set_assured && acc.state_changed);
    assert!(a.assured());
}

#[test]
fn sctp_cookie_echoed_cookie_ack_original_established() {
    // COOKIE_ACK enters ESTABLISHED from either direction.
    let mut a = assoc_in(SctpState::CookieEchoed);
    let acc = a.ok(O, &pkt(O, TS, &[cookie_ack()]));
    assert_eq!(a.state(), Some(SctpState::Established));
    assert!(acc.set_assured);
}

#[test]
fn sctp_established_cookie_ack_again_no_new_assured() {
    let mut a = assoc_in(SctpState::Established);
    let acc = a.ok(R, &pkt(R, TC, &[cookie_ack()]));
    assert!(!acc.set_assured && !acc.state_changed);
}

#[test]
fn sctp_established_abort_closed_assured_kept() {
    let mut a = assoc_in(SctpState::Established);
    assert!(a.assured());
    let acc = a.ok(R, &pkt(R, TC, &[abort(false)]));
    assert_eq!(a.state(), Some(SctpState::Closed));
    assert_eq!(refresh_secs(&acc), Some(10));
    assert!(!acc.set_assured);
    assert!(a.assured());
    // Later packets in CLOSED do not clear it either.
    a.ok(O, &pkt(O, TS, &[data()]));
    assert!(a.assured());
}

#[test]
fn sctp_cookie_echoed_error_reply_closed() {
    // The one ERROR asymmetry: a reply ERROR during setup (stale cookie) closes.
    let mut a = assoc_in(SctpState::CookieEchoed);
    a.ok(R, &pkt(R, TC, &[error_chunk()]));
    assert_eq!(a.state(), Some(SctpState::Closed));
    let mut b = assoc_in(SctpState::CookieEchoed);
    b.ok(O, &pkt(O, TS, &[error_chunk()]));
    assert_eq!(b.state(), Some(SctpState::CookieEchoed));
}

#[test]
fn sctp_established_shutdown_reply_recd_then_ack_sent() {
    let mut a = assoc_in(SctpState::Established);
    a.ok(R, &pkt(R, TC, &[shutdown()]));
    assert_eq!(a.state(), Some(SctpState::ShutdownRecd));
    assert!(a.conn().can_early_drop());
    a.ok(O, &pkt(O, TS, &[shutdown_ack()]));
    assert_eq!(a.state(), Some(SctpState::ShutdownAckSent));
    a.ok(R, &pkt(R, TC, &[shutdown_complete(false)]));
    assert_eq!(a.state(), Some(SctpState::Closed));
    assert!(!a.conn().can_early_drop());
}

#[test]
fn sctp_established_data_wrong_vtag_invalid_unchanged() {
    let mut a = assoc_in(SctpState::Established);
    let before = a.conn().clone();
    let r = a.iv(O, &pkt(O, TC, &[data()]));
    assert_eq!(
        r,
        SctpReason::VtagCheck {
            vtag: TC,
            expected: TS,
            dir: O
        }
    );
    let r = a.iv(R, &pkt(R, TS, &[sack()]));
    assert_eq!(
        r,
        SctpReason::VtagCheck {
            vtag: TS,
            expected: TC,
            dir: R
        }
    );
    assert_eq!(a.conn(), &before);
    a.ok(O, &pkt(O, TS, &[data()]));
    a.ok(R, &pkt(R, TC, &[sack()]));
}

#[test]
fn sctp_vtag_check_prints_byte_swapped() {
    let r = SctpReason::VtagCheck {
        vtag: 0x0BAD_BAD0,
        expected: 0x1234_5678,
        dir: R,
    };
    assert_eq!(
        r.to_string(),
        "verification tag check failed d0baad0b vs 78563412 for dir 1"
    );
    assert!(r.kernel_logs());
}

#[test]
fn sctp_invalid_prints_kernel_numbers() {
    let r = SctpReason::Invalid {
        old_state: SctpState::HeartbeatSent,
        dir: R,
        chunk_type: cid::INIT,
    };
    assert_eq!(r.to_string(), "Invalid, old_state 8, dir 1, type 1");
    assert!(r.kernel_logs());
    assert!(!SctpReason::InitRetransmit.kernel_logs());
    assert!(!SctpReason::OutOfTheBlue { chunk_type: 6 }.kernel_logs());
}

// ---------------------------------------------------------------------------------
// ABORT / SHUTDOWN_COMPLETE T bit, COOKIE_ECHO and INIT tag rules (§1.5)
// ---------------------------------------------------------------------------------

#[test]
fn sctp_established_abort_t_bit_all_four_cases() {
    for dir in [O, R] {
        let own = if dir == O { TS } else { TC };
        let peer = if dir == O { TC } else { TS };
        for (t, vtag, ok) in [
            (false, own, true),
            (true, peer, true),
            (false, peer, false),
            (true, own, false),
        ] {
            let mut a = assoc_in(SctpState::Established);
            let got = a.send(dir, &pkt(dir, vtag, &[abort(t)]));
            if ok {
                assert!(got.is_ok(), "{dir:?} T={t}: {got:?}");
                assert_eq!(a.state(), Some(SctpState::Closed));
            } else {
                assert_eq!(
                    got,
                    Err(SctpReason::TBitVtag {
                        chunk_type: cid::ABORT,
                        t_bit: t,
                        vtag,
                        expected: vtag ^ TS ^ TC,
                    }),
                    "{dir:?} T={t}"
                );
                assert_eq!(a.state(), Some(SctpState::Established));
            }
        }
    }
}

#[test]
fn sctp_shutdown_ack_sent_shutdown_complete_t_bit_all_four_cases() {
    for dir in [O, R] {
        let own = if dir == O { TS } else { TC };
        let peer = if dir == O { TC } else { TS };
        for (t, vtag, ok) in [
            (false, own, true),
            (true, peer, true),
            (false, peer, false),
            (true, own, false),
        ] {
            let mut a = assoc_in(SctpState::ShutdownAckSent);
            let got = a.send(dir, &pkt(dir, vtag, &[shutdown_complete(t)]));
            if ok {
                assert!(got.is_ok(), "{dir:?} T={t}: {got:?}");
                assert_eq!(a.state(), Some(SctpState::Closed));
            } else {
                assert!(
                    matches!(got, Err(SctpReason::TBitVtag { chunk_type: cid::SHUTDOWN_COMPLETE, t_bit, .. }) if t_bit == t),
                    "{dir:?} T={t}: {got:?}"
                );
                assert_eq!(a.state(), Some(SctpState::ShutdownAckSent));
            }
        }
    }
}

#[test]
fn sctp_cookie_wait_cookie_echo_wrong_vtag_invalid() {
    let mut a = assoc_in(SctpState::CookieWait);
    let r = a.iv(O, &pkt(O, TC, &[cookie_echo()]));
    assert_eq!(
        r,
        SctpReason::CookieEchoVtag {
            vtag: TC,
            expected: TS
        }
    );
    assert_eq!(a.state(), Some(SctpState::CookieWait));
}

#[test]
fn sctp_established_init_nonzero_vtag_invalid() {
    let mut a = assoc_in(SctpState::Established);
    let r = a.iv(O, &pkt(O, TS, &[init(0x1234)]));
    assert_eq!(r, SctpReason::InitVtagNonZero { vtag: TS });
}

#[test]
fn sctp_established_init_truncated_header_invalid() {
    // The INIT's 16-byte fixed header must be inside the packet.
    let mut a = assoc_in(SctpState::Established);
    let c = chunk(cid::INIT, 0, &[0, 0, 0, 9, 0, 0, 0, 0]);
    let r = a.iv(O, &pkt(O, 0, &[c]));
    assert_eq!(
        r,
        SctpReason::InitHeaderTruncated {
            chunk_type: cid::INIT
        }
    );
    assert_eq!(a.state(), Some(SctpState::Established));
}

// ---------------------------------------------------------------------------------
// First packet (§1.6)
// ---------------------------------------------------------------------------------

/// Run one first packet; return the outcome and the entry (if created).
fn first(vtag: u32, chunks: &[Vec<u8>]) -> (Out, Assoc) {
    let mut a = Assoc::new();
    let out = a.send(O, &pkt(O, vtag, chunks));
    (out, a)
}

#[test]
fn sctp_first_init_vtag_zero_closed() {
    let (out, a) = first(0, &[init(TC)]);
    let acc = out.expect("accepted");
    assert_eq!(a.state(), Some(SctpState::Closed));
    assert_eq!(refresh_secs(&acc), Some(10));
    assert!(acc.state_changed && !acc.set_assured);
    assert_eq!((a.vtag(O), a.vtag(R)), (0, TC));
    assert_eq!(a.conn().init, [true, false]);
}

#[test]
fn sctp_first_init_vtag_nonzero_invalid() {
    let (out, a) = first(7, &[init(TC)]);
    assert_eq!(out, Err(SctpReason::NewEntryInitVtag { vtag: 7 }));
    assert_eq!(a.state(), None);
}

#[test]
fn sctp_first_init_truncated_invalid() {
    let c = chunk(cid::INIT, 0, &[0, 0, 0, 9]);
    let (out, _) = first(0, &[c]);
    assert_eq!(
        out,
        Err(SctpReason::InitHeaderTruncated {
            chunk_type: cid::INIT
        })
    );
}

#[test]
fn sctp_first_init_ack_shutdown_error_cookie_echo_vtag_zero_closed() {
    for c in [init_ack(TS), shutdown(), error_chunk(), cookie_echo()] {
        let (out, a) = first(0, std::slice::from_ref(&c));
        let acc = out.unwrap_or_else(|r| panic!("type {}: {r:?}", c[0]));
        assert_eq!(a.state(), Some(SctpState::Closed), "type {}", c[0]);
        assert_eq!(refresh_secs(&acc), Some(10));
    }
}

#[test]
fn sctp_first_init_ack_shutdown_error_cookie_echo_vtag_nonzero_invalid() {
    for c in [init_ack(TS), shutdown(), error_chunk()] {
        let (out, a) = first(0x99, std::slice::from_ref(&c));
        assert_eq!(
            out,
            Err(SctpReason::VtagCheck {
                vtag: 0x99,
                expected: 0,
                dir: O
            }),
            "type {}",
            c[0]
        );
        assert_eq!(a.state(), None);
    }
    let (out, _) = first(0x99, &[cookie_echo()]);
    assert_eq!(
        out,
        Err(SctpReason::CookieEchoVtag {
            vtag: 0x99,
            expected: 0
        })
    );
}

#[test]
fn sctp_first_heartbeat_any_vtag_heartbeat_sent() {
    for vtag in [0, THB] {
        let (out, a) = first(vtag, &[heartbeat()]);
        let acc = out.expect("accepted");
        assert_eq!(a.state(), Some(SctpState::HeartbeatSent));
        assert_eq!(refresh_secs(&acc), Some(30));
        assert_eq!((a.vtag(O), a.vtag(R)), (vtag, 0));
    }
}

#[test]
fn sctp_first_heartbeat_ack_any_vtag_closed() {
    for vtag in [0, 0x77] {
        let (out, a) = first(vtag, &[heartbeat_ack()]);
        let acc = out.expect("accepted");
        assert_eq!(a.state(), Some(SctpState::Closed));
        assert_eq!(refresh_secs(&acc), Some(10));
        assert_eq!(a.vtag(O), vtag, "learnt by the HEARTBEAT_ACK");
    }
}

#[test]
fn sctp_first_shutdown_ack_any_vtag_shutdown_ack_sent() {
    for vtag in [0, 0x55] {
        let (out, a) = first(vtag, &[shutdown_ack()]);
        let acc = out.expect("accepted");
        assert_eq!(a.state(), Some(SctpState::ShutdownAckSent));
        assert_eq!(refresh_secs(&acc), Some(3));
        assert_eq!((a.vtag(O), a.vtag(R)), (0, vtag));
    }
    // The answer carrying that tag passes with the T bit clear (it is the REPLY tag).
    let (_, mut a) = first(0x55, &[shutdown_ack()]);
    a.ok(R, &pkt(R, 0x55, &[shutdown_complete(false)]));
    assert_eq!(a.state(), Some(SctpState::Closed));
    // RFC 9260 §8.4 (5) has the peer answer with the T bit set and the reflected tag;
    // the kernel then compares with the ORIGINAL tag, which is still 0, and refuses it.
    let (_, mut a) = first(0x55, &[shutdown_ack()]);
    assert_eq!(
        a.iv(R, &pkt(R, 0x55, &[shutdown_complete(true)])),
        SctpReason::TBitVtag {
            chunk_type: cid::SHUTDOWN_COMPLETE,
            t_bit: true,
            vtag: 0x55,
            expected: 0
        }
    );
    a.ok(R, &pkt(R, 0, &[shutdown_complete(true)]));
    assert_eq!(a.state(), Some(SctpState::Closed));
}

#[test]
fn sctp_first_abort_shutdown_complete_cookie_ack_out_of_the_blue() {
    for vtag in [0, 0x42] {
        for (c, t) in [
            (abort(false), cid::ABORT),
            (abort(true), cid::ABORT),
            (shutdown_complete(false), cid::SHUTDOWN_COMPLETE),
            (cookie_ack(), cid::COOKIE_ACK),
        ] {
            let (out, a) = first(vtag, &[c]);
            assert_eq!(out, Err(SctpReason::OutOfTheBlue { chunk_type: t }));
            assert_eq!(a.state(), None);
        }
    }
    // Also when bundled after an acceptable chunk.
    let (out, _) = first(THB, &[heartbeat(), abort(false)]);
    assert_eq!(
        out,
        Err(SctpReason::OutOfTheBlue {
            chunk_type: cid::ABORT
        })
    );
}

#[test]
fn sctp_first_data_sack_forward_tsn_other_invalid() {
    for vtag in [0, 0x42] {
        for t in [DATA, SACK, FORWARD_TSN, 13, 0x80, 0xff] {
            let (out, a) = first(vtag, &[chunk(t, 0, &[0, 0, 0, 1])]);
            assert_eq!(out, Err(SctpReason::NewEntryChunk { chunk_type: t }));
            assert_eq!(a.state(), None);
        }
    }
}

#[test]
fn sctp_first_bundles_every_chunk_must_start_the_entry() {
    let (out, _) = first(THB, &[heartbeat(), data()]);
    assert_eq!(out, Err(SctpReason::NewEntryChunk { chunk_type: DATA }));
    let (out, _) = first(0, &[cookie_echo(), data()]);
    assert_eq!(out, Err(SctpReason::NewEntryChunk { chunk_type: DATA }));
    // HEARTBEAT + ERROR: the last chunk wins.
    let (out, a) = first(THB, &[heartbeat(), error_chunk()]);
    let acc = out.expect("accepted");
    assert_eq!(a.state(), Some(SctpState::Closed));
    assert_eq!(refresh_secs(&acc), Some(10));
    assert!(acc.state_changed);
}

#[test]
fn sctp_new_builds_none_state_with_first_packet_tags() {
    let sysctls = Sysctls::default();
    let cx = Cx {
        now: Instant::ZERO,
        sysctls: &sysctls,
        check_checksum: true,
    };
    let bytes = pkt(O, 0, &[init(TC)]);
    let p = Packet::parse(&bytes).expect("parses");
    let conn = SctpConn::new(&p, &cx).expect("new");
    assert_eq!(conn.state(), SctpState::None);
    assert_eq!((conn.vtag(O), conn.vtag(R)), (0, TC));
    let bytes = pkt(O, 0x31, &[shutdown_ack()]);
    let p = Packet::parse(&bytes).expect("parses");
    let conn = SctpConn::new(&p, &cx).expect("new");
    assert_eq!((conn.vtag(O), conn.vtag(R)), (0, 0x31));
    let bytes = pkt(O, 0, &[data()]);
    let p = Packet::parse(&bytes).expect("parses");
    assert_eq!(
        SctpConn::new(&p, &cx),
        Err(SctpReason::NewEntryChunk { chunk_type: DATA }.into())
    );
}

#[test]
fn sctp_first_init_retransmit_before_confirm_refreshes() {
    // The same INIT, first as a new entry, then as a retransmit on the confirmed entry.
    let mut a = Assoc::new();
    let bytes = pkt(O, 0, &[init(TC)]);
    assert_eq!(refresh_secs(&a.ok(O, &bytes)), Some(10));
    let acc = a.ok(O, &bytes);
    assert_eq!(acc.refresh, None);
    assert_eq!(acc.note, Some(SctpReason::InitRetransmit.into()));
    assert!(!acc.state_changed);
    assert_eq!(a.state(), Some(SctpState::Closed));
    assert!(!a.status.has(Status::SEEN_REPLY));
}

// ---------------------------------------------------------------------------------
// do_basic_checks (§1.4 step 2)
// ---------------------------------------------------------------------------------

#[test]
fn sctp_basic_checks_init_not_alone_invalid() {
    for (chunks, num, t) in [
        (vec![init(TC), data()], 1, DATA),
        (vec![data(), init(TC)], 1, cid::INIT),
        (vec![init_ack(TS), sack()], 1, SACK),
        (vec![heartbeat(), init_ack(TS)], 1, cid::INIT_ACK),
        (vec![shutdown_complete(false), data()], 1, DATA),
        (
            vec![data(), data(), shutdown_complete(true)],
            2,
            cid::SHUTDOWN_COMPLETE,
        ),
    ] {
        let mut a = assoc_in(SctpState::Established);
        let r = a.iv(O, &pkt(O, TS, &chunks));
        assert!(
            matches!(r, SctpReason::BasicChecks { chunk_num, chunk_type, flag: true, .. } if chunk_num == num && chunk_type == t),
            "{r:?}"
        );
        assert_eq!(a.state(), Some(SctpState::Established));
    }
}

#[test]
fn sctp_basic_checks_cookie_echo_or_ack_not_first_invalid() {
    let mut a = assoc_in(SctpState::CookieWait);
    let r = a.iv(O, &pkt(O, TS, &[data(), cookie_echo()]));
    assert_eq!(
        r,
        SctpReason::BasicChecks {
            chunk_num: 1,
            chunk_type: cid::COOKIE_ECHO,
            len_printed: 0x0800,
            flag: false
        }
    );
    assert_eq!(
        r.to_string(),
        "do_basic_checks failed. chunk num 1, type 10, len 2048 flag 0"
    );
    let mut a = assoc_in(SctpState::CookieEchoed);
    let r = a.iv(R, &pkt(R, TC, &[sack(), cookie_ack()]));
    assert!(
        matches!(
            r,
            SctpReason::BasicChecks {
                chunk_num: 1,
                chunk_type: cid::COOKIE_ACK,
                flag: false,
                ..
            }
        ),
        "{r:?}"
    );
    assert_eq!(a.state(), Some(SctpState::CookieEchoed));
}

#[test]
fn sctp_basic_checks_cookie_echo_data_and_cookie_ack_sack_accepted() {
    let mut a = assoc_in(SctpState::CookieWait);
    a.ok(O, &pkt(O, TS, &[cookie_echo(), data()]));
    assert_eq!(a.state(), Some(SctpState::CookieEchoed));
    a.ok(R, &pkt(R, TC, &[cookie_ack(), sack()]));
    assert_eq!(a.state(), Some(SctpState::Established));
}

#[test]
fn sctp_basic_checks_zero_length_invalid() {
    let mut a = assoc_in(SctpState::Established);
    let r = a.iv(O, &pkt(O, TS, &[chunk_with_len(DATA, 3, 0, &[0; 4])]));
    assert_eq!(
        r,
        SctpReason::BasicChecks {
            chunk_num: 0,
            chunk_type: DATA,
            len_printed: 0,
            flag: false
        }
    );
    let r = a.iv(O, &pkt(O, TS, &[data(), chunk_with_len(SACK, 0, 0, &[])]));
    assert!(
        matches!(r, SctpReason::BasicChecks { chunk_num: 1, .. }),
        "{r:?}"
    );
}

#[test]
fn sctp_basic_checks_length_printed_raw() {
    // A 21-byte chunk prints as 5376 (0x0015 read little-endian).
    let mut a = assoc_in(SctpState::CookieWait);
    let body = [0u8; 17];
    let r = a.iv(
        O,
        &pkt(
            O,
            TS,
            &[
                chunk_with_len(DATA, 3, 21, &body),
                chunk_with_len(cid::COOKIE_ECHO, 0, 21, &body),
            ],
        ),
    );
    assert_eq!(
        r.to_string(),
        "do_basic_checks failed. chunk num 1, type 10, len 5376 flag 0"
    );
}

#[test]
fn sctp_basic_checks_no_chunk_invalid() {
    let mut a = assoc_in(SctpState::Established);
    assert_eq!(a.iv(O, &pkt(O, TS, &[])), SctpReason::NoChunks);
    // 1-3 trailing bytes are not a chunk header.
    let bytes = ipv4(O, &{
        let mut s = sctp_bytes(O, TS, &[]);
        s.extend_from_slice(&[0, 0, 0]);
        let crc = crc32c::sctp_checksum(&s);
        s[8..12].copy_from_slice(&crc.to_le_bytes());
        s
    });
    assert_eq!(a.iv(O, &bytes), SctpReason::NoChunks);
    // A first packet too.
    assert_eq!(first(0, &[]).0, Err(SctpReason::NoChunks));
}

#[test]
fn sctp_basic_checks_trailing_bytes_and_overlong_length_accepted() {
    let mut a = assoc_in(SctpState::Established);
    let mut s = sctp_bytes(O, TS, &[data()]);
    s.extend_from_slice(&[0xaa, 0xbb]);
    let crc = crc32c::sctp_checksum(&s);
    s[8..12].copy_from_slice(&crc.to_le_bytes());
    a.ok(O, &ipv4(O, &s));
    // A length running past the end: the walk just stops.
    a.ok(O, &pkt(O, TS, &[chunk_with_len(DATA, 3, 400, &[0; 12])]));
    // Lengths 1-3 advance by 4 bytes: DATA(len 1) then a SACK right after its header.
    a.ok(O, &pkt(O, TS, &[chunk_with_len(DATA, 3, 1, &[]), sack()]));
    assert_eq!(a.state(), Some(SctpState::Established));
}

// ---------------------------------------------------------------------------------
// INIT / INIT_ACK bookkeeping (§1.5)
// ---------------------------------------------------------------------------------

#[test]
fn sctp_closed_init_retransmit_no_refresh() {
    let mut a = assoc_in(SctpState::Closed);
    let acc = a.ok(O, &pkt(O, 0, &[init(TC)]));
    assert_eq!(acc.refresh, None);
    assert_eq!(acc.note, Some(SctpReason::InitRetransmit.into()));
    assert_eq!(a.state(), Some(SctpState::Closed));
    // A new tag in CLOSED is just as ignored, but recorded.
    let acc = a.ok(O, &pkt(O, 0, &[init(0xabc)]));
    assert_eq!(acc.refresh, None);
    assert_eq!(a.vtag(R), 0xabc);
    // A reply INIT in CLOSED too.
    let acc = a.ok(R, &pkt(R, 0, &[init(TS)]));
    assert_eq!(acc.refresh, None);
    assert_eq!(a.vtag(O), TS);
    // Other packets in CLOSED still refresh.
    let acc = a.ok(O, &pkt(O, TS, &[data()]));
    assert_eq!(refresh_secs(&acc), Some(10));
}

#[test]
fn sctp_closed_after_abort_init_restarts_no_refresh_then_handshake() {
    let mut a = assoc_in(SctpState::Established);
    a.ok(O, &pkt(O, TS, &[abort(false)]));
    assert_eq!(a.state(), Some(SctpState::Closed));
    let acc = a.ok(O, &pkt(O, 0, &[init(0x1010)]));
    assert_eq!(acc.refresh, None);
    a.ok(R, &pkt(R, 0x1010, &[init_ack(0x2020)]));
    assert_eq!(a.state(), Some(SctpState::CookieWait));
    assert_eq!((a.vtag(O), a.vtag(R)), (0x2020, 0x1010));
}

#[test]
fn sctp_established_init_ack_without_init_invalid() {
    let mut a = assoc_in(SctpState::Established);
    let r = a.iv(R, &pkt(R, TC, &[init_ack(0x0BAD)]));
    assert_eq!(
        r,
        SctpReason::InitAckWithoutInit {
            vtag: TS,
            init_tag: 0x0BAD
        }
    );
    assert_eq!(a.vtag(O), TS);
    // The same tag as known passes (and changes nothing).
    a.ok(R, &pkt(R, TC, &[init_ack(TS)]));
    assert_eq!(a.state(), Some(SctpState::Established));
    assert_eq!(a.vtag(O), TS);
}

#[test]
fn sctp_established_restart_init_new_tag_switches_tags() {
    let mut a = assoc_in(SctpState::Established);
    let acc = a.ok(O, &pkt(O, 0, &[init(0x7C7C)]));
    assert_eq!(refresh_secs(&acc), Some(210));
    assert_eq!(a.conn().init, [true, false]);
    a.ok(R, &pkt(R, 0x7C7C, &[init_ack(0x7D7D)]));
    assert_eq!(a.state(), Some(SctpState::Established));
    assert_eq!((a.vtag(O), a.vtag(R)), (0x7D7D, 0x7C7C));
    a.ok(O, &pkt(O, 0x7D7D, &[data()]));
    a.iv(O, &pkt(O, TS, &[data()]));
}

#[test]
fn sctp_established_stale_init_not_recorded_init_ack_invalid() {
    // An INIT whose tag is already the reply tag (stale or retransmitted) does not mark
    // an INIT as pending, so an INIT_ACK with a new tag is "without INIT".
    let mut a = assoc_in(SctpState::Established);
    let acc = a.ok(O, &pkt(O, 0, &[init(TC)]));
    assert_eq!(refresh_secs(&acc), Some(210));
    assert_eq!(a.conn().init, [false, false]);
    let r = a.iv(R, &pkt(R, TC, &[init_ack(0x7D7D)]));
    assert_eq!(
        r,
        SctpReason::InitAckWithoutInit {
            vtag: TS,
            init_tag: 0x7D7D
        }
    );
    assert_eq!((a.vtag(O), a.vtag(R)), (TS, TC));
}

#[test]
fn sctp_cookie_wait_init_retransmit_not_recorded_again() {
    // The client's INIT retransmitted in COOKIE_WAIT: not recorded, tags unchanged,
    // the timeout refreshed (only CLOSED→CLOSED is ignored).
    let mut a = assoc_in(SctpState::CookieWait);
    let acc = a.ok(O, &pkt(O, 0, &[init(TC)]));
    assert_eq!(refresh_secs(&acc), Some(3));
    assert_eq!((a.vtag(O), a.vtag(R)), (TS, TC));
}

#[test]
fn sctp_closed_init_collision_init_ack_must_keep_tag() {
    // Both sides send INIT (collision): INITs pending from both directions.
    let mut a = assoc_in(SctpState::Closed);
    a.ok(R, &pkt(R, 0, &[init(TS)]));
    assert_eq!(a.conn().init, [true, true]);
    assert_eq!((a.vtag(O), a.vtag(R)), (TS, TC));
    // An INIT_ACK carrying yet another tag is refused...
    let r = a.iv(R, &pkt(R, TC, &[init_ack(0x3333)]));
    assert_eq!(
        r,
        SctpReason::InitCollision {
            vtag: TS,
            init_tag: 0x3333
        }
    );
    assert_eq!(a.state(), Some(SctpState::Closed));
    // ...the one matching the known tag passes.
    a.ok(R, &pkt(R, TC, &[init_ack(TS)]));
    assert_eq!(a.state(), Some(SctpState::CookieWait));
    a.ok(O, &pkt(O, TS, &[init_ack(TC)]));
    assert_eq!(a.state(), Some(SctpState::CookieWait));
}

#[test]
fn sctp_closed_init_from_both_sides_then_original_forgets_reply_init() {
    // init[dir] && init[other] → the other side's pending INIT is forgotten.
    let mut a = assoc_in(SctpState::Closed);
    a.ok(R, &pkt(R, 0, &[init(TS)]));
    assert_eq!(a.conn().init, [true, true]);
    a.ok(O, &pkt(O, 0, &[init(0x4444)]));
    assert_eq!(a.conn().init, [true, false]);
}

#[test]
fn sctp_cookie_ack_clears_pending_inits() {
    let mut a = assoc_in(SctpState::CookieEchoed);
    assert_eq!(a.conn().init, [true, false]);
    a.ok(R, &pkt(R, TC, &[cookie_ack()]));
    assert_eq!(a.conn().init, [false, false]);
}

#[test]
fn sctp_init_ack_truncated_invalid() {
    let mut a = assoc_in(SctpState::Closed);
    let c = chunk(cid::INIT_ACK, 0, &[0, 0, 0, 1, 0, 0, 0, 0]);
    let r = a.iv(R, &pkt(R, TC, &[c]));
    assert_eq!(
        r,
        SctpReason::InitHeaderTruncated {
            chunk_type: cid::INIT_ACK
        }
    );
    assert_eq!(a.state(), Some(SctpState::Closed));
}

// ---------------------------------------------------------------------------------
// Heartbeats and multi-homing (§1.9)
// ---------------------------------------------------------------------------------

#[test]
fn sctp_heartbeat_secondary_path_established_assured() {
    let mut a = assoc_in(SctpState::HeartbeatSent);
    assert_eq!((a.vtag(O), a.vtag(R)), (THB, 0));
    // More HEARTBEATs keep it in HS.
    assert_eq!(
        refresh_secs(&a.ok(O, &pkt(O, THB, &[heartbeat()]))),
        Some(30)
    );
    // Until the reply tag is learnt, reply DATA with a non-zero tag is INVALID...
    assert_eq!(
        a.iv(R, &pkt(R, 0x600D, &[data()])),
        SctpReason::VtagCheck {
            vtag: 0x600D,
            expected: 0,
            dir: R
        }
    );
    // ...while reply SACK/DATA with tag 0 passes.
    let acc = a.ok(R, &pkt(R, 0, &[sack()]));
    assert_eq!(refresh_secs(&acc), Some(30));
    assert_eq!(a.state(), Some(SctpState::HeartbeatSent));
    // A reply HEARTBEAT learns the reply tag.
    a.ok(R, &pkt(R, 0x600D, &[heartbeat()]));
    assert_eq!(a.vtag(R), 0x600D);
    assert_eq!(a.state(), Some(SctpState::HeartbeatSent));
    // The reply HEARTBEAT_ACK confirms the path.
    let acc = a.ok(R, &pkt(R, 0x600D, &[heartbeat_ack()]));
    assert_eq!(a.state(), Some(SctpState::Established));
    assert!(acc.set_assured && acc.state_changed);
    assert_eq!(refresh_secs(&acc), Some(210));
    assert!(a.assured());
    a.ok(R, &pkt(R, 0x600D, &[data()]));
}

#[test]
fn sctp_heartbeat_sent_heartbeat_ack_reply_learns_and_establishes() {
    let mut a = assoc_in(SctpState::HeartbeatSent);
    let acc = a.ok(R, &pkt(R, 0x600D, &[heartbeat_ack()]));
    assert_eq!(a.vtag(R), 0x600D);
    assert_eq!(a.state(), Some(SctpState::Established));
    assert!(acc.set_assured);
}

#[test]
fn sctp_heartbeat_sent_heartbeat_ack_original_stays() {
    let mut a = assoc_in(SctpState::HeartbeatSent);
    let acc = a.ok(O, &pkt(O, THB, &[heartbeat_ack()]));
    assert_eq!(a.state(), Some(SctpState::HeartbeatSent));
    assert!(!acc.set_assured && !acc.state_changed);
}

#[test]
fn sctp_heartbeat_sent_init_original_cookie_wait_reply_invalid() {
    let mut a = assoc_in(SctpState::HeartbeatSent);
    a.ok(O, &pkt(O, 0, &[init(TC)]));
    assert_eq!(a.state(), Some(SctpState::CookieWait));
    let mut b = assoc_in(SctpState::HeartbeatSent);
    assert_eq!(
        b.iv(R, &pkt(R, 0, &[init(TS)])),
        SctpReason::Invalid {
            old_state: SctpState::HeartbeatSent,
            dir: R,
            chunk_type: cid::INIT
        }
    );
    assert_eq!(b.state(), Some(SctpState::HeartbeatSent));
}

#[test]
fn sctp_established_heartbeat_mismatch_then_heartbeat_ack_rekeys() {
    let mut a = assoc_in(SctpState::Established);
    // The client restarted unseen: its HEARTBEAT carries an unknown tag.
    let acc = a.ok(O, &pkt(O, 0xAAAA, &[heartbeat()]));
    assert_eq!(acc.refresh, None);
    assert!(!acc.state_changed);
    assert_eq!(
        acc.note,
        Some(
            SctpReason::HeartbeatVtagIgnored {
                vtag: 0xAAAA,
                expected: TS
            }
            .into()
        )
    );
    assert!(a.conn().hb_vtag_failed);
    assert_eq!(a.conn().last_dir, O);
    assert_eq!((a.vtag(O), a.vtag(R)), (TS, TC));
    // The answer from the other side re-keys: reply gets the new tag, orig is cleared.
    let acc = a.ok(R, &pkt(R, 0xBBBB, &[heartbeat_ack()]));
    assert_eq!(refresh_secs(&acc), Some(210));
    assert!(!a.conn().hb_vtag_failed);
    assert_eq!((a.vtag(O), a.vtag(R)), (0, 0xBBBB));
    // The next HEARTBEAT from the original side relearns its tag.
    a.ok(O, &pkt(O, 0xAAAA, &[heartbeat()]));
    assert_eq!(a.vtag(O), 0xAAAA);
    a.ok(O, &pkt(O, 0xAAAA, &[data()]));
    a.ok(R, &pkt(R, 0xBBBB, &[sack()]));
    assert_eq!(a.state(), Some(SctpState::Established));
}

#[test]
fn sctp_established_heartbeat_ack_mismatch_without_flag_invalid() {
    let mut a = assoc_in(SctpState::Established);
    let r = a.iv(R, &pkt(R, 0xBBBB, &[heartbeat_ack()]));
    assert_eq!(
        r,
        SctpReason::HeartbeatAckVtag {
            vtag: 0xBBBB,
            expected: TC
        }
    );
    assert_eq!((a.vtag(O), a.vtag(R)), (TS, TC));
}

#[test]
fn sctp_established_heartbeat_ack_mismatch_same_direction_invalid() {
    let mut a = assoc_in(SctpState::Established);
    a.ok(O, &pkt(O, 0xAAAA, &[heartbeat()]));
    let r = a.iv(O, &pkt(O, 0xAAAA, &[heartbeat_ack()]));
    assert_eq!(
        r,
        SctpReason::HeartbeatAckVtag {
            vtag: 0xAAAA,
            expected: TS
        }
    );
    assert!(a.conn().hb_vtag_failed);
}

#[test]
fn sctp_established_matching_heartbeat_clears_mismatch_flag() {
    let mut a = assoc_in(SctpState::Established);
    a.ok(O, &pkt(O, 0xAAAA, &[heartbeat()]));
    assert!(a.conn().hb_vtag_failed);
    let acc = a.ok(O, &pkt(O, TS, &[heartbeat()]));
    assert_eq!(refresh_secs(&acc), Some(210));
    assert!(!a.conn().hb_vtag_failed);
    a.iv(R, &pkt(R, 0xBBBB, &[heartbeat_ack()]));
    // A matching HEARTBEAT_ACK clears it too.
    a.ok(O, &pkt(O, 0xAAAA, &[heartbeat()]));
    a.ok(R, &pkt(R, TC, &[heartbeat_ack()]));
    assert!(!a.conn().hb_vtag_failed);
}

#[test]
fn sctp_established_heartbeat_mismatch_with_data_invalid() {
    let mut a = assoc_in(SctpState::Established);
    let r = a.iv(O, &pkt(O, 0xAAAA, &[heartbeat(), data()]));
    assert_eq!(
        r,
        SctpReason::HeartbeatVtagBundled {
            chunk_type: cid::HEARTBEAT,
            vtag: 0xAAAA,
            expected: TS
        }
    );
    assert!(!a.conn().hb_vtag_failed);
    // The same with the right tag is fine (DATA rides along).
    a.ok(O, &pkt(O, TS, &[heartbeat(), data()]));
}

#[test]
fn sctp_established_two_mismatching_heartbeats_invalid() {
    let mut a = assoc_in(SctpState::Established);
    let r = a.iv(O, &pkt(O, 0xAAAA, &[heartbeat(), heartbeat()]));
    assert!(
        matches!(
            r,
            SctpReason::HeartbeatVtagBundled {
                chunk_type: cid::HEARTBEAT,
                ..
            }
        ),
        "{r:?}"
    );
    // The first chunk's changes stay (§1.4 step 5): the flag is set.
    assert!(a.conn().hb_vtag_failed);
}

// ---------------------------------------------------------------------------------
// Multi-chunk partial updates (§1.4 step 5)
// ---------------------------------------------------------------------------------

#[test]
fn sctp_cookie_echoed_cookie_ack_then_bad_abort_keeps_established() {
    // COOKIE_ACK moves CE → ES, then the ABORT fails its tag rule: the packet is
    // INVALID but the entry keeps ESTABLISHED and becomes ASSURED, as in the kernel.
    let mut a = assoc_in(SctpState::CookieEchoed);
    assert!(!a.assured());
    let r = a.iv(R, &pkt(R, TC, &[cookie_ack(), abort(true)]));
    assert!(
        matches!(
            r,
            SctpReason::TBitVtag {
                chunk_type: cid::ABORT,
                t_bit: true,
                ..
            }
        ),
        "{r:?}"
    );
    assert_eq!(a.state(), Some(SctpState::Established));
    assert!(
        a.assured(),
        "entering ESTABLISHED sets ASSURED even if a later chunk fails"
    );
    assert_eq!(a.conn().init, [false, false]);
}

#[test]
fn sctp_established_data_then_shutdown_then_bad_abort_keeps_shutdown_sent() {
    let mut a = assoc_in(SctpState::Established);
    let r = a.iv(O, &pkt(O, TS, &[data(), shutdown(), abort(true)]));
    assert!(matches!(r, SctpReason::TBitVtag { .. }), "{r:?}");
    assert_eq!(a.state(), Some(SctpState::ShutdownSent));
}

#[test]
fn sctp_first_packet_failure_leaves_no_entry() {
    // A DATA-bundled HEARTBEAT leaves nothing; HEARTBEAT + HEARTBEAT_ACK is a valid
    // first packet (NO → HS, then an orig HEARTBEAT_ACK keeps HS).
    let (out, a) = first(THB, &[heartbeat(), data()]);
    assert!(out.is_err());
    assert!(a.conn.is_none());
    let (out, a) = first(THB, &[heartbeat(), heartbeat_ack()]);
    out.expect("accepted");
    assert_eq!(a.state(), Some(SctpState::HeartbeatSent));
}

#[test]
fn sctp_unconfirmed_packet_rerun_is_idempotent() {
    // The engine calls `new` and then `packet` with `unconfirmed`; `packet` re-runs the
    // new-entry rules itself, as the kernel does for an unconfirmed entry.
    let sysctls = Sysctls::default();
    let cx = Cx {
        now: Instant::ZERO,
        sysctls: &sysctls,
        check_checksum: true,
    };
    let bytes = pkt(O, 0, &[init(TC)]);
    let p = Packet::parse(&bytes).expect("parses");
    let ecx = EntryCx {
        status: Status::default(),
        unconfirmed: true,
        deadline: Instant::ZERO,
        seqadj: None,
    };
    let mut from_new = SctpConn::new(&p, &cx).expect("new");
    let mut from_default = SctpConn::default();
    let r1 = from_new.packet(&p, O, &ecx, &cx);
    let r2 = from_default.packet(&p, O, &ecx, &cx);
    assert_eq!(r1, r2);
    assert_eq!(from_new, from_default);
    assert_eq!(from_new.state(), SctpState::Closed);
}
