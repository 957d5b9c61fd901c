//! Unit tests of the TCP tracker: hand-built TCP/IPv4 packets driven through `error`,
//! `TcpConn::new` and `TcpConn::packet` with a simulated entry (kernel-semantics.md §7,
//! §15a traces).

use super::options::{highest_sack, syn_options, SynOptions};
use super::table::{Cell, TRANSITIONS};
use super::*;
use crate::packet::checksum;
use crate::packet::Packet;
use crate::proto::{Accepted, Cx, EntryCx, TrackerResult};
use crate::status::Status;
use crate::sysctl::Sysctls;
use crate::time::{Duration, Instant};
use crate::tuple::{Addr, Dir, Family};

use flags::{ACK, CWR, ECE, FIN, PSH, RST, SYN, URG};

const O: Dir = Dir::Original;
const R: Dir = Dir::Reply;

/// Client and server initial sequence numbers of the standard flow.
const C0: u32 = 1000;
const S0: u32 = 5000;

// ---------------------------------------------------------------------------------
// Packet builder
// ---------------------------------------------------------------------------------

/// One TCP segment to build.
#[derive(Debug, Clone)]
struct Seg {
    seq: u32,
    ack: u32,
    flags: u8,
    win: u16,
    opts: Vec<u8>,
    len: usize,
}

fn seg(flags: u8, seq: u32, ack: u32) -> Seg {
    Seg {
        seq,
        ack,
        flags,
        win: 65535,
        opts: Vec::new(),
        len: 0,
    }
}

impl Seg {
    fn win(mut self, w: u16) -> Seg {
        self.win = w;
        self
    }
    fn opts(mut self, o: &[u8]) -> Seg {
        self.opts = o.to_vec();
        self
    }
    fn len(mut self, n: usize) -> Seg {
        self.len = n;
        self
    }
    /// seq + len + SYN + FIN.
    fn end(&self) -> u32 {
        self.seq
            .wrapping_add(self.len as u32)
            .wrapping_add(u32::from(self.flags & SYN != 0))
            .wrapping_add(u32::from(self.flags & FIN != 0))
    }
}

const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [10, 0, 0, 2];

/// An IPv4 packet around `l4` (TCP checksum computed over `l4` at offset 16 when
/// `fix_csum`).
fn ipv4(dir: Dir, mut l4: Vec<u8>, fix_csum: bool) -> Vec<u8> {
    let (src, dst) = match dir {
        Dir::Original => (CLIENT, SERVER),
        Dir::Reply => (SERVER, CLIENT),
    };
    if fix_csum && l4.len() >= 18 {
        l4[16] = 0;
        l4[17] = 0;
        let acc = checksum::pseudo_header(
            Family::V4,
            &Addr::v4(src),
            &Addr::v4(dst),
            l4.len() as u32,
            6,
        );
        let c = checksum::compute(acc, &l4);
        l4[16..18].copy_from_slice(&c.to_be_bytes());
    }
    let total = 20 + l4.len();
    let mut ip = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        6,
        0,
        0,
    ];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = checksum::compute(0, &ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&l4);
    ip
}

/// The TCP header + payload of `s` (options padded with EOL to a multiple of 4).
fn tcp_bytes(dir: Dir, s: &Seg) -> Vec<u8> {
    let (sport, dport): (u16, u16) = match dir {
        Dir::Original => (40000, 80),
        Dir::Reply => (80, 40000),
    };
    let mut opts = s.opts.clone();
    opts.resize(opts.len().div_ceil(4) * 4, 0);
    let doff = (20 + opts.len()) / 4;
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&s.seq.to_be_bytes());
    t.extend_from_slice(&s.ack.to_be_bytes());
    t.push((doff as u8) << 4);
    t.push(s.flags);
    t.extend_from_slice(&s.win.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    t.extend_from_slice(&opts);
    t.extend(std::iter::repeat_n(0xabu8, s.len));
    t
}

fn build(dir: Dir, s: &Seg) -> Vec<u8> {
    ipv4(dir, tcp_bytes(dir, s), true)
}

// ---------------------------------------------------------------------------------
// Simulated entry
// ---------------------------------------------------------------------------------

/// One entry as the engine would hold it: the tracker state, the status bits and the
/// remaining time. SEEN_REPLY is set after the first accepted REPLY packet, ASSURED on
/// `set_assured`, the timeout follows `refresh` and `set_timeout`.
struct Sim {
    sys: Sysctls,
    check_checksum: bool,
    conn: Option<TcpConn>,
    status: Status,
    remaining: Duration,
    /// The tracker state right after the last `packet` call (also when the entry was
    /// then deleted).
    last_state: TcpState,
}

impl Sim {
    fn new() -> Sim {
        Sim::with(Sysctls::default())
    }
    fn with(sys: Sysctls) -> Sim {
        Sim {
            sys,
            check_checksum: true,
            conn: None,
            status: Status::default(),
            remaining: Duration::ZERO,
            last_state: TcpState::None,
        }
    }
    fn set(&mut self, name: &str, value: &str) {
        self.sys.set(name, value).expect("valid sysctl");
    }
    fn conn(&self) -> &TcpConn {
        self.conn.as_ref().expect("entry exists")
    }
    fn state(&self) -> TcpState {
        self.conn().state()
    }
    fn send(&mut self, dir: Dir, s: &Seg) -> TrackerResult {
        let bytes = build(dir, s);
        self.run(dir, &bytes, true)
    }
    /// As `send`, but without `error` first (to reach the table's "none" row).
    fn send_raw(&mut self, dir: Dir, s: &Seg) -> TrackerResult {
        let bytes = build(dir, s);
        self.run(dir, &bytes, false)
    }
    /// `TcpConn::new` only, leaving the connection in state NONE.
    fn new_only(&mut self, s: &Seg) {
        let bytes = build(O, s);
        let pkt = Packet::parse(&bytes).expect("test packet parses");
        let cx = Cx {
            now: Instant::ZERO,
            sysctls: &self.sys,
            check_checksum: self.check_checksum,
        };
        self.conn = Some(TcpConn::new(&pkt, &cx).expect("new accepts"));
        self.status = Status::default();
    }
    fn run(&mut self, dir: Dir, bytes: &[u8], check_error: bool) -> TrackerResult {
        let pkt = Packet::parse(bytes).expect("test packet parses");
        let cx = Cx {
            now: Instant::ZERO,
            sysctls: &self.sys,
            check_checksum: self.check_checksum,
        };
        if check_error {
            if let Err(reason) = error(&pkt, &cx) {
                return TrackerResult::Invalid {
                    reason,
                    set_timeout: None,
                };
            }
        }
        let mut unconfirmed = false;
        if self.conn.is_none() {
            assert_eq!(dir, O, "a new entry starts with an ORIGINAL packet");
            match TcpConn::new(&pkt, &cx) {
                Ok(c) => self.conn = Some(c),
                Err(reason) => {
                    return TrackerResult::Invalid {
                        reason,
                        set_timeout: None,
                    }
                }
            }
            self.status = Status::default();
            unconfirmed = true;
        }
        let ecx = EntryCx {
            status: self.status,
            unconfirmed,
            deadline: Instant::ZERO + self.remaining,
            seqadj: None,
        };
        let Some(conn) = self.conn.as_mut() else {
            unreachable!()
        };
        let res = conn.packet(&pkt, dir, &ecx, &cx);
        self.last_state = conn.state();
        match res {
            TrackerResult::Accept(a) => {
                if let Some(t) = a.refresh {
                    self.remaining = t;
                }
                if a.set_assured {
                    self.status.set(Status::ASSURED);
                }
                if dir == R {
                    self.status.set(Status::SEEN_REPLY);
                }
                if a.kill {
                    self.conn = None;
                }
            }
            TrackerResult::Invalid { set_timeout, .. } => {
                if unconfirmed {
                    self.conn = None;
                } else if let Some(t) = set_timeout {
                    self.remaining = t;
                }
            }
            TrackerResult::Repeat => {
                self.conn = None;
                self.status = Status::default();
            }
            TrackerResult::Drop(_) => {}
            TrackerResult::InvalidAfterUpdate { .. } => unreachable!("TCP never returns it"),
        }
        res
    }
}

/// A connection between client (ORIGINAL) and server (REPLY) that keeps each side's
/// next sequence number, so that every packet is in window unless a test says otherwise.
struct Flow {
    sim: Sim,
    next: [u32; 2],
}

impl Flow {
    fn new() -> Flow {
        Flow::with(Sim::new())
    }
    fn with(sim: Sim) -> Flow {
        Flow {
            sim,
            next: [C0, S0],
        }
    }
    /// The in-window segment `dir` would send now: seq = its next, ack = the peer's
    /// next (0 without ACK).
    fn seg(&self, dir: Dir, flags: u8, len: usize) -> Seg {
        let ack = if flags & ACK != 0 {
            self.next[dir.opposite().index()]
        } else {
            0
        };
        seg(flags, self.next[dir.index()], ack).len(len)
    }
    /// Send `s` and advance the sender's next sequence number to its end.
    fn send(&mut self, dir: Dir, s: Seg) -> TrackerResult {
        let n = &mut self.next[dir.index()];
        if crate::proto::tcp::after(s.end(), *n) {
            *n = s.end();
        }
        self.sim.send(dir, &s)
    }
    fn step(&mut self, dir: Dir, flags: u8, len: usize) -> TrackerResult {
        let s = self.seg(dir, flags, len);
        self.send(dir, s)
    }
    fn state(&self) -> TcpState {
        self.sim.state()
    }
    fn conn(&self) -> &TcpConn {
        self.sim.conn()
    }
    /// Drive the flow into `target` with in-window packets (the canonical path).
    fn to(&mut self, target: TcpState) {
        use TcpState::*;
        let path: &[(Dir, u8)] = match target {
            None => &[],
            SynSent => &[(O, SYN)],
            SynRecv => &[(O, SYN), (R, SYN | ACK)],
            Established => &[(O, SYN), (R, SYN | ACK), (O, ACK)],
            FinWait => &[(O, SYN), (R, SYN | ACK), (O, ACK), (O, FIN | ACK)],
            CloseWait => &[(O, SYN), (R, SYN | ACK), (O, ACK), (O, FIN | ACK), (R, ACK)],
            LastAck => &[
                (O, SYN),
                (R, SYN | ACK),
                (O, ACK),
                (O, FIN | ACK),
                (R, ACK),
                (R, FIN | ACK),
            ],
            TimeWait => &[
                (O, SYN),
                (R, SYN | ACK),
                (O, ACK),
                (O, FIN | ACK),
                (R, ACK),
                (R, FIN | ACK),
                (O, ACK),
            ],
            Close => &[(O, SYN), (R, SYN | ACK), (O, ACK), (O, RST)],
            SynSent2 => &[(O, SYN), (R, SYN)],
        };
        for &(dir, fl) in path {
            let r = self.step(dir, fl, 0);
            assert!(
                matches!(r, TrackerResult::Accept(a) if a.note.is_none() && !a.kill),
                "path to {target:?}: {dir:?} {fl:#x} gave {r:?}"
            );
        }
        if target != None {
            assert_eq!(self.state(), target);
        }
    }
}

/// The accepted side effects, or a panic naming what came back.
#[track_caller]
fn accepted(r: TrackerResult) -> Accepted {
    match r {
        TrackerResult::Accept(a) => a,
        other => panic!("expected Accept, got {other:?}"),
    }
}

/// Accepted with a refresh of `secs`.
#[track_caller]
fn assert_refresh(r: TrackerResult, secs: u64) -> Accepted {
    let a = accepted(r);
    assert_eq!(a.refresh, Some(Duration::from_secs(secs)), "{a:?}");
    assert!(a.note.is_none(), "{a:?}");
    a
}

/// Accepted without refresh, with this TCP note.
#[track_caller]
fn assert_ignored(r: TrackerResult, note: TcpReason) {
    let a = accepted(r);
    assert_eq!(a.refresh, None, "{a:?}");
    assert_eq!(a.note, Some(InvalidReason::Tcp(note)), "{a:?}");
    assert!(note.is_ignore());
    assert!(!a.kill && !a.set_assured && !a.state_changed);
}

/// INVALID with this TCP reason and timeout change.
#[track_caller]
fn assert_invalid(r: TrackerResult, reason: TcpReason, set_timeout: Option<u64>) {
    assert_eq!(
        r,
        TrackerResult::Invalid {
            reason: InvalidReason::Tcp(reason),
            set_timeout: set_timeout.map(Duration::from_secs),
        }
    );
    assert!(!reason.is_ignore());
}

fn ignored(index: PacketIndex, dir: Dir, state: TcpState) -> TcpReason {
    TcpReason::Ignored { index, dir, state }
}

// ---------------------------------------------------------------------------------
// Layout, helpers, Display
// ---------------------------------------------------------------------------------

#[test]
fn tcp_conn_fits_56_bytes() {
    assert_eq!(core::mem::size_of::<DirState>(), 18);
    assert_eq!(core::mem::size_of::<TcpConn>(), 56);
    assert_eq!(core::mem::size_of::<crate::proto::ProtoState>(), 56);
}

#[test]
fn tcp_seq_before_after_wrap() {
    assert!(before(1, 2));
    assert!(!before(2, 2));
    assert!(after(3, 2));
    assert!(before(0xffff_fff0, 0x10), "across the wrap");
    assert!(after(0x10, 0xffff_fff0));
    // Half the space away: the signed difference decides.
    assert!(before(0, 0x7fff_ffff));
    assert!(after(0, 0x8000_0001));
}

#[test]
fn tcp_state_names_and_numbers() {
    use TcpState::*;
    let all = [
        (None, "NONE"),
        (SynSent, "SYN_SENT"),
        (SynRecv, "SYN_RECV"),
        (Established, "ESTABLISHED"),
        (FinWait, "FIN_WAIT"),
        (CloseWait, "CLOSE_WAIT"),
        (LastAck, "LAST_ACK"),
        (TimeWait, "TIME_WAIT"),
        (Close, "CLOSE"),
        (SynSent2, "SYN_SENT2"),
    ];
    for (i, (s, name)) in all.iter().enumerate() {
        assert_eq!(s.name(), *name);
        assert_eq!(usize::from(s.number()), i);
        assert_eq!(s.to_string(), *name);
    }
}

#[test]
fn tcp_can_early_drop_states() {
    let mut f = Flow::new();
    f.to(TcpState::Established);
    assert!(!f.conn().can_early_drop());
    for (st, expect) in [
        (TcpState::SynSent, false),
        (TcpState::SynRecv, false),
        (TcpState::Established, false),
        (TcpState::FinWait, true),
        (TcpState::CloseWait, true),
        (TcpState::LastAck, true),
        (TcpState::TimeWait, true),
        (TcpState::Close, true),
        (TcpState::SynSent2, false),
    ] {
        let mut f = Flow::new();
        f.to(st);
        assert_eq!(f.conn().can_early_drop(), expect, "{st:?}");
    }
}

#[test]
fn tcp_reason_display_kernel_wording() {
    use PacketIndex as P;
    let cases: &[(TcpReason, &str)] = &[
        (TcpReason::ShortHeader, "truncated packet"),
        (TcpReason::Truncated, "truncated packet"),
        (TcpReason::BadChecksum, "bad checksum"),
        (TcpReason::InvalidFlags, "invalid tcp flag combination"),
        (TcpReason::InvalidNew, "invalid new"),
        (
            ignored(P::Ack, R, TcpState::SynRecv),
            "packet (index 3) in dir 1 ignored, state SYN_RECV",
        ),
        (
            TcpReason::InvalidTransition {
                index: P::Fin,
                dir: O,
                state: TcpState::SynSent,
            },
            "packet (index 2) in dir 0 invalid, state SYN_SENT",
        ),
        (TcpReason::InvalidRst, "invalid rst"),
        (TcpReason::ChallengeAck, "challenge-ack ignored"),
        (TcpReason::Overshot(12), "12 bytes more than expected"),
        (
            TcpReason::SeqOverUpperBound(12345),
            "SEQ is over upper bound 12345 (over the window of the receiver)",
        ),
        (
            TcpReason::AckOverUpperBound(7),
            "ACK is over upper bound 7 (ACKed data not seen yet)",
        ),
        (
            TcpReason::SeqUnderLowerBound(4294967295),
            "SEQ is under lower bound 4294967295 (already ACKed data retransmitted)",
        ),
        (
            TcpReason::AckUnderLowerBound(1),
            "ignored ACK under lower bound 1 (possible overly delayed)",
        ),
        (TcpReason::LoweredTimeout, "lowered timeout to UNACK"),
    ];
    for (r, text) in cases {
        assert_eq!(r.to_string(), *text);
        assert_eq!(InvalidReason::Tcp(*r).to_string(), *text);
    }
    assert!(!TcpReason::ShortHeader.logged());
    assert!(!TcpReason::NoPickup.logged());
    assert!(TcpReason::Truncated.logged());
    for r in [
        TcpReason::InvalidRst,
        TcpReason::SeqOverUpperBound(0),
        TcpReason::AckOverUpperBound(0),
        TcpReason::InvalidNew,
    ] {
        assert!(!r.is_ignore());
    }
}

#[test]
fn tcp_packet_index_first_match_wins() {
    use PacketIndex as P;
    assert_eq!(P::of(RST | ACK), P::Rst);
    assert_eq!(P::of(RST | SYN | FIN), P::Rst);
    assert_eq!(P::of(SYN), P::Syn);
    assert_eq!(P::of(SYN | ACK), P::SynAck);
    assert_eq!(P::of(SYN | FIN), P::Syn);
    assert_eq!(P::of(FIN | ACK), P::Fin);
    assert_eq!(P::of(ACK | PSH), P::Ack);
    assert_eq!(P::of(PSH | URG), P::None);
    assert_eq!(P::of(0), P::None);
}

// ---------------------------------------------------------------------------------
// tcp_error (§7.2)
// ---------------------------------------------------------------------------------

fn run_error(bytes: &[u8], check_checksum: bool) -> Result<(), InvalidReason> {
    let sys = Sysctls::default();
    let pkt = Packet::parse(bytes).expect("parses");
    let cx = Cx {
        now: Instant::ZERO,
        sysctls: &sys,
        check_checksum,
    };
    error(&pkt, &cx)
}

/// The segment the tracker gets from `error_segment` is the header as
/// `Segment::parse` reads it (the tests' way in), for every packet that passes.
#[test]
fn error_segment_reads_the_header_as_parse_does() {
    let sys = Sysctls::default();
    let mut checked = 0;
    for flags in [SYN, SYN | ACK, ACK, FIN | ACK, RST, PSH | ACK, ACK | URG] {
        for opts in [&[][..], &[1, 1, 1, 1], &[2, 4, 5, 180, 4, 2, 1, 3, 3, 7]] {
            for len in [0usize, 1, 10, 1400] {
                for check_checksum in [false, true] {
                    let s = seg(flags, 0x8000_0001, 77).opts(opts).len(len);
                    let b = ipv4(O, tcp_bytes(O, &s), true);
                    let pkt = Packet::parse(&b).expect("parses");
                    let cx = Cx {
                        now: Instant::ZERO,
                        sysctls: &sys,
                        check_checksum,
                    };
                    let got = error_segment(&pkt, &cx).expect("a valid segment");
                    let want = Segment::parse(&pkt).expect("a header");
                    assert_eq!(
                        (
                            got.seq,
                            got.ack,
                            got.win,
                            got.flags,
                            got.payload_len,
                            got.opts
                        ),
                        (
                            want.seq,
                            want.ack,
                            want.win,
                            want.flags,
                            want.payload_len,
                            want.opts
                        ),
                        "{flags:#x} {opts:?} {len}"
                    );
                    assert_eq!(got.payload_len as usize, len);
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 7 * 3 * 4 * 2);
}

#[test]
fn tcp_error_short_header() {
    let mut l4 = tcp_bytes(O, &seg(SYN, 1, 0));
    l4.truncate(19);
    let b = ipv4(O, l4, false);
    assert_eq!(
        run_error(&b, false),
        Err(InvalidReason::Tcp(TcpReason::ShortHeader))
    );
}

#[test]
fn tcp_error_doff_too_small_truncated() {
    let mut l4 = tcp_bytes(O, &seg(SYN, 1, 0));
    l4[12] = 4 << 4; // 16-byte header
    let b = ipv4(O, l4, true);
    assert_eq!(
        run_error(&b, true),
        Err(InvalidReason::Tcp(TcpReason::Truncated))
    );
}

#[test]
fn tcp_error_doff_past_end_truncated() {
    let mut l4 = tcp_bytes(O, &seg(SYN, 1, 0).opts(&[1, 1, 1, 1]));
    l4[12] = 15 << 4; // claims 60 bytes, has 24
    let b = ipv4(O, l4, true);
    assert_eq!(
        run_error(&b, true),
        Err(InvalidReason::Tcp(TcpReason::Truncated))
    );
    // doff*4 == L4 length exactly is fine.
    let l4 = tcp_bytes(O, &seg(SYN, 1, 0).opts(&[1, 1, 1, 1]));
    assert_eq!(run_error(&ipv4(O, l4, true), true), Ok(()));
}

#[test]
fn tcp_error_bad_checksum_only_when_checked() {
    let mut b = build(O, &seg(SYN, 1, 0).len(10));
    assert_eq!(run_error(&b, true), Ok(()));
    let last = b.len() - 1;
    b[last] ^= 0xff;
    assert_eq!(
        run_error(&b, true),
        Err(InvalidReason::Tcp(TcpReason::BadChecksum))
    );
    assert_eq!(run_error(&b, false), Ok(()));
}

#[test]
fn tcp_error_flag_combination_table() {
    // The nine valid combinations of FIN/SYN/RST/ACK/URG (§7.2); ECE, CWR and PSH
    // never matter.
    let valid = [
        SYN,
        SYN | URG,
        SYN | ACK,
        RST,
        RST | ACK,
        FIN | ACK,
        FIN | ACK | URG,
        ACK,
        ACK | URG,
    ];
    for byte in 0..=255u8 {
        let b = build(O, &seg(byte, 1, 1));
        let expect_ok = valid.contains(&(byte & !(ECE | CWR | PSH)));
        let got = run_error(&b, true);
        if expect_ok {
            assert_eq!(got, Ok(()), "flags {byte:#04x}");
        } else {
            assert_eq!(
                got,
                Err(InvalidReason::Tcp(TcpReason::InvalidFlags)),
                "flags {byte:#04x}"
            );
        }
    }
    // Named cases from the live-kernel log.
    for bad in [
        SYN | FIN,
        SYN | RST,
        FIN,
        0,
        FIN | PSH | URG,
        SYN | ACK | URG,
        RST | URG,
    ] {
        assert!(
            run_error(&build(O, &seg(bad, 1, 1)), true).is_err(),
            "{bad:#x}"
        );
    }
    for good in [SYN | URG, SYN | ECE | CWR, ACK | PSH, FIN | ACK | PSH] {
        assert!(
            run_error(&build(O, &seg(good, 1, 1)), true).is_ok(),
            "{good:#x}"
        );
    }
}

// ---------------------------------------------------------------------------------
// The transition tables (§7.4): all 120 cells
// ---------------------------------------------------------------------------------

/// §7.4, copied from the document (not from table.rs).
const EXPECTED_ORIGINAL: [&str; 6] = [
    "SS SS IG IG IG IG IG SS SS S2",
    "IV IV SR IV IV IV IV IV IV SR",
    "IV IV FW FW LA LA LA TW CL IV",
    "ES IV ES ES CW CW TW TW CL IV",
    "IV CL CL CL CL CL CL CL CL CL",
    "IV IV IV IV IV IV IV IV IV IV",
];
const EXPECTED_REPLY: [&str; 6] = [
    "IV S2 IV IV IV IV IV SS IV S2",
    "IV SR IG IG IG IG IG IG IG SR",
    "IV IV FW FW LA LA LA TW CL IV",
    "IV IG SR ES CW CW TW TW CL IG",
    "IV CL CL CL CL CL CL CL CL CL",
    "IV IV IV IV IV IV IV IV IV IV",
];

const COLUMNS: [TcpState; 10] = [
    TcpState::None,
    TcpState::SynSent,
    TcpState::SynRecv,
    TcpState::Established,
    TcpState::FinWait,
    TcpState::CloseWait,
    TcpState::LastAck,
    TcpState::TimeWait,
    TcpState::Close,
    TcpState::SynSent2,
];

/// The flags of each row's packet: syn, synack, fin, ack, rst, none.
const ROW_FLAGS: [u8; 6] = [SYN, SYN | ACK, FIN | ACK, ACK, RST, 0];

fn abbr(s: TcpState) -> &'static str {
    match s {
        TcpState::None => "NO",
        TcpState::SynSent => "SS",
        TcpState::SynRecv => "SR",
        TcpState::Established => "ES",
        TcpState::FinWait => "FW",
        TcpState::CloseWait => "CW",
        TcpState::LastAck => "LA",
        TcpState::TimeWait => "TW",
        TcpState::Close => "CL",
        TcpState::SynSent2 => "S2",
    }
}

/// Drive one cell: bring a flow into `old`, send the row's packet in window from `dir`,
/// and name the outcome like the table does. A reopen (Repeat) is followed through: the
/// packet is looked up again and creates a fresh entry, whose state is the result.
fn drive_cell(dir: Dir, row: usize, old: TcpState) -> String {
    let flags = ROW_FLAGS[row];
    let mut f = Flow::new();
    let res = if old == TcpState::None {
        if dir == O {
            // The first packet of an entry: tcp_new, then the state machine.
            let s = f.seg(O, flags, 0);
            f.sim.send_raw(O, &s)
        } else {
            // State NONE only exists between tcp_new and the first packet() call.
            f.sim.new_only(&seg(SYN, C0, 0));
            let s = f.seg(R, flags, 0);
            f.sim.send_raw(R, &s)
        }
    } else {
        f.to(old);
        let s = f.seg(dir, flags, 0);
        if flags == 0 {
            // tcp_error rejects a packet without RST/SYN/FIN/ACK before the table;
            // skip it to reach the table's last row.
            assert!(run_error(&build(dir, &s), true).is_err());
            f.sim.send_raw(dir, &s)
        } else {
            f.send(dir, s)
        }
    };
    match res {
        TrackerResult::Invalid { .. } => "IV".into(),
        TrackerResult::Accept(a) => match a.note {
            Some(InvalidReason::Tcp(TcpReason::Ignored { .. })) => "IG".into(),
            Some(other) => format!("?{other}"),
            None => abbr(f.sim.last_state).into(),
        },
        TrackerResult::Repeat => {
            // The old entry is gone; the packet creates a new one as its ORIGINAL.
            let s = f.seg(dir, flags, 0);
            let again = f.sim.send(O, &s);
            accepted(again);
            abbr(f.sim.last_state).into()
        }
        TrackerResult::Drop(r) => format!("drop {r}"),
        TrackerResult::InvalidAfterUpdate { .. } => unreachable!("TCP never returns it"),
    }
}

#[test]
fn tcp_transition_table_all_120_cells() {
    let mut failures = Vec::new();
    for (dir, expected) in [(O, EXPECTED_ORIGINAL), (R, EXPECTED_REPLY)] {
        for (row, line) in expected.iter().enumerate() {
            for (col, want) in line.split(' ').enumerate() {
                let got = drive_cell(dir, row, COLUMNS[col]);
                if got != want {
                    failures.push(format!(
                        "{dir:?} row {row} old {}: want {want}, got {got}",
                        COLUMNS[col].name()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn tcp_transition_table_const_matches_document() {
    for (d, expected) in [EXPECTED_ORIGINAL, EXPECTED_REPLY].iter().enumerate() {
        for (row, line) in expected.iter().enumerate() {
            for (col, want) in line.split(' ').enumerate() {
                let cell = TRANSITIONS[d][row][col];
                let got = match cell {
                    Cell::Invalid => "IV",
                    Cell::Ignore => "IG",
                    Cell::To(s) => abbr(s),
                };
                assert_eq!(got, want, "dir {d} row {row} col {col}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// tcp_new (§7.4 NONE column, §7.6 first-packet initialisation)
// ---------------------------------------------------------------------------------

#[test]
fn tcp_new_syn_initialises_original() {
    let mut sim = Sim::new();
    sim.new_only(
        &seg(SYN, C0, 0)
            .win(0)
            .opts(&[2, 4, 5, 0xb4, 4, 2, 1, 3, 3, 7]),
    );
    let c = sim.conn();
    assert_eq!(c.state(), TcpState::None);
    assert_eq!({ c.seen[0].td_end }, C0 + 1);
    assert_eq!({ c.seen[0].td_maxend }, C0 + 1);
    assert_eq!({ c.seen[0].td_maxwin }, 1, "window 0 counts as 1");
    assert_eq!({ c.seen[0].td_scale }, 7);
    assert_eq!(
        { c.seen[0].flags },
        DIR_FLAG_SACK_PERM | DIR_FLAG_WINDOW_SCALE
    );
    assert_eq!(c.seen[1], DirState::default());
    assert_eq!(c.last_index, PacketIndex::None);
}

#[test]
fn tcp_new_pickup_loose_1_is_liberal_both_ways() {
    let mut sim = Sim::new();
    sim.new_only(&seg(ACK, C0, S0).win(1000).len(10));
    let c = sim.conn();
    assert_eq!({ c.seen[0].td_end }, C0 + 10);
    assert_eq!({ c.seen[0].td_maxwin }, 1000);
    assert_eq!({ c.seen[0].td_maxend }, C0 + 10 + 1000);
    for d in [O, R] {
        assert_eq!(c.dir_flags(d), DIR_FLAG_SACK_PERM | DIR_FLAG_BE_LIBERAL);
    }
}

#[test]
fn tcp_new_pickup_loose_0_invalid() {
    let mut sim = Sim::new();
    sim.set("nf_conntrack_tcp_loose", "0");
    let r = sim.send(O, &seg(ACK, C0, S0));
    assert_invalid(r, TcpReason::NoPickup, None);
    assert!(sim.conn.is_none());
    // A SYN is still fine.
    assert_refresh(sim.send(O, &seg(SYN, C0, 0)), 120);
}

#[test]
fn tcp_new_other_first_packets_invalid_new() {
    for fl in [SYN | ACK, FIN | ACK, RST, RST | ACK] {
        let mut sim = Sim::new();
        assert_invalid(sim.send(O, &seg(fl, C0, S0)), TcpReason::InvalidNew, None);
        assert!(sim.conn.is_none());
    }
}

// ---------------------------------------------------------------------------------
// §15a worked traces
// ---------------------------------------------------------------------------------

#[test]
fn tcp_trace_open_data_active_close_time_wait_reopen() {
    let mut f = Flow::new();
    // 1 C→S SYN: SYN_SENT 120.
    let a = assert_refresh(f.step(O, SYN, 0), 120);
    assert!(a.state_changed && !a.set_assured && !a.kill);
    assert_eq!(f.state(), TcpState::SynSent);
    // 2 S→C SYN/ACK: SYN_RECV 60.
    let a = assert_refresh(f.step(R, SYN | ACK, 0), 60);
    assert!(a.state_changed && !a.set_assured);
    assert_eq!(f.state(), TcpState::SynRecv);
    assert!(f.sim.status.has(Status::SEEN_REPLY));
    // 3 C→S ACK: ESTABLISHED 432000, ASSURED.
    let a = assert_refresh(f.step(O, ACK, 0), 432_000);
    assert!(a.state_changed && a.set_assured);
    assert_eq!(f.state(), TcpState::Established);
    // 4 C→S data: 300 (DATA_UNACK on C).
    let a = assert_refresh(f.step(O, PSH | ACK, 100), 300);
    assert!(!a.state_changed && !a.set_assured);
    assert_ne!(f.conn().dir_flags(O) & DIR_FLAG_DATA_UNACK, 0);
    // 5 S→C ACK of the data: 432000.
    assert_refresh(f.step(R, ACK, 0), 432_000);
    assert_eq!(f.conn().dir_flags(O) & DIR_FLAG_DATA_UNACK, 0);
    // 6 C→S FIN/ACK: FIN_WAIT 120, CLOSE_INIT on C.
    let a = assert_refresh(f.step(O, FIN | ACK, 0), 120);
    assert!(a.state_changed);
    assert_eq!(f.state(), TcpState::FinWait);
    assert_ne!(f.conn().dir_flags(O) & DIR_FLAG_CLOSE_INIT, 0);
    assert_eq!(f.conn().dir_flags(R) & DIR_FLAG_CLOSE_INIT, 0);
    // 7a S→C ACK: CLOSE_WAIT 60.
    assert_refresh(f.step(R, ACK, 0), 60);
    assert_eq!(f.state(), TcpState::CloseWait);
    // 7b S→C FIN/ACK: LAST_ACK 30.
    assert_refresh(f.step(R, FIN | ACK, 0), 30);
    assert_eq!(f.state(), TcpState::LastAck);
    // 8 C→S ACK: TIME_WAIT 120.
    assert_refresh(f.step(O, ACK, 0), 120);
    assert_eq!(f.state(), TcpState::TimeWait);
    // 9 C→S SYN, same ports: the old entry is deleted and the packet looked up again.
    let syn = seg(SYN, 77_000, 0);
    assert_eq!(f.sim.send(O, &syn), TrackerResult::Repeat);
    assert!(f.sim.conn.is_none());
    let a = assert_refresh(f.sim.send(O, &syn), 120);
    assert!(a.state_changed);
    assert_eq!(f.sim.state(), TcpState::SynSent);
}

#[test]
fn tcp_trace_simultaneous_fin_skips_close_wait() {
    let mut f = Flow::new();
    f.to(TcpState::FinWait);
    // S sends FIN together with its ACK: FIN_WAIT → LAST_ACK directly.
    assert_refresh(f.step(R, FIN | ACK, 0), 30);
    assert_eq!(f.state(), TcpState::LastAck);
    assert_refresh(f.step(O, ACK, 0), 120);
    assert_eq!(f.state(), TcpState::TimeWait);
}

#[test]
fn tcp_trace_refused_syn_rst_kills() {
    let mut f = Flow::new();
    assert_refresh(f.step(O, SYN, 0), 120);
    // S→C RST/ACK, seq 0 (as Linux answers a SYN to a closed port).
    let a = accepted(f.sim.send(R, &seg(RST | ACK, 0, C0 + 1)));
    assert!(a.kill, "unreplied entry answered by an RST is deleted");
    assert!(a.state_changed);
    assert_eq!(a.refresh, None, "no refresh: DESTROY shows the old timeout");
    assert_eq!(f.sim.last_state, TcpState::Close);
    assert!(f.sim.conn.is_none());
}

#[test]
fn tcp_trace_pickup_assured_on_third_packet() {
    let mut f = Flow::new();
    // C→S ACK: ESTABLISHED, capped at UNACK (300), not assured.
    let a = assert_refresh(f.step(O, ACK, 0), 300);
    assert!(a.state_changed && !a.set_assured);
    assert_eq!(f.state(), TcpState::Established);
    // S→C ACK: still 300 (SEEN_REPLY is set only after this packet).
    let a = assert_refresh(f.step(R, ACK, 0), 300);
    assert!(!a.state_changed && !a.set_assured);
    assert!(f.sim.status.has(Status::SEEN_REPLY));
    // C→S ACK: ASSURED, 5 days.
    let a = assert_refresh(f.step(O, ACK, 0), 432_000);
    assert!(a.set_assured);
    // Liberal forever: a wildly out-of-window packet is still accepted.
    let r = f.sim.send(O, &seg(ACK, C0 + 0x4000_0000, S0).len(10));
    accepted(r);
}

#[test]
fn tcp_pickup_with_data_in_both_directions() {
    let mut f = Flow::new();
    // The first packet of each direction initialises that direction from itself (its
    // data counts as seen, not as unacknowledged).
    assert_refresh(f.step(O, PSH | ACK, 50), 300);
    assert_refresh(f.step(R, PSH | ACK, 70), 300);
    let a = assert_refresh(f.step(O, ACK, 0), 432_000);
    assert!(a.set_assured, "ES→ES with SEEN_REPLY");
    // New data from C is unacknowledged until S acks it.
    assert_refresh(f.step(O, PSH | ACK, 10), 300);
    assert_ne!(f.conn().dir_flags(O) & DIR_FLAG_DATA_UNACK, 0);
    assert_refresh(f.step(R, ACK, 0), 432_000);
}

// ---------------------------------------------------------------------------------
// §7.7: timeouts
// ---------------------------------------------------------------------------------

#[test]
fn tcp_syn_retransmit_in_syn_sent_no_refresh() {
    let mut f = Flow::new();
    assert_refresh(f.step(O, SYN, 0), 120);
    f.sim.remaining = Duration::from_secs(117);
    let a = accepted(f.sim.send(O, &seg(SYN, C0, 0)));
    assert_eq!(
        a,
        Accepted::default(),
        "no refresh, no note, no state change"
    );
    assert_eq!(f.sim.remaining, Duration::from_secs(117));
    assert_eq!(f.state(), TcpState::SynSent);
}

#[test]
fn tcp_syn_with_new_isn_in_syn_sent_reinitialises() {
    let mut f = Flow::new();
    f.step(O, SYN, 0);
    // A new ISN (after the old one): the original direction starts over.
    let a = accepted(f.sim.send(O, &seg(SYN, C0 + 50_000, 0).opts(&[3, 3, 9])));
    assert_eq!(a.refresh, None);
    assert_eq!({ f.conn().seen[0].td_end }, C0 + 50_001);
    assert_eq!({ f.conn().seen[0].td_scale }, 9);
    // The SYN/ACK acks the new ISN.
    assert_refresh(f.sim.send(R, &seg(SYN | ACK, S0, C0 + 50_001)), 60);
}

#[test]
fn tcp_retransmission_three_identical_acks_retrans_timeout() {
    let mut f = Flow::new();
    f.to(TcpState::Established);
    let ack = seg(ACK, C0 + 1, S0 + 1);
    // The handshake ACK was recorded; two identical repeats are not enough.
    assert_refresh(f.sim.send(O, &ack), 432_000);
    assert_refresh(f.sim.send(O, &ack), 432_000);
    assert_eq!(f.conn().retrans, 2);
    // The third repeat: RETRANS (300 s).
    assert_refresh(f.sim.send(O, &ack), 300);
    assert_eq!(f.conn().retrans, 3);
    // A different packet resets the counter.
    assert_refresh(f.step(R, ACK, 0), 432_000);
    assert_eq!(f.conn().retrans, 0);
}

#[test]
fn tcp_retransmission_counts_data_repeats() {
    let mut sim = Sim::new();
    sim.set("nf_conntrack_tcp_max_retrans", "2");
    sim.set("nf_conntrack_tcp_timeout_max_retrans", "250");
    let mut f = Flow::with(sim);
    f.to(TcpState::Established);
    let data = seg(PSH | ACK, C0 + 1, S0 + 1).len(100);
    assert_refresh(f.send(O, data.clone()), 300);
    assert_refresh(f.send(O, data.clone()), 300);
    // retrans 2 ≥ max_retrans 2, and T[ES] > 250.
    assert_refresh(f.send(O, data), 250);
}

#[test]
fn tcp_zero_window_retrans_timeout() {
    let mut f = Flow::new();
    f.to(TcpState::Established);
    let s = f.seg(R, ACK, 0).win(0);
    assert_refresh(f.send(R, s), 300);
    assert_eq!(f.conn().last_win, 0);
    // The window opens again: back to 5 days.
    assert_refresh(f.step(R, ACK, 0), 432_000);
}

#[test]
fn tcp_zero_window_not_applied_when_state_timeout_shorter() {
    let mut f = Flow::new();
    f.to(TcpState::Established);
    let s = f.seg(R, ACK, 0).win(0);
    assert_refresh(f.send(R, s), 300);
    // last_win is still 0, but FIN_WAIT (120) < RETRANS (300): the state's own timeout.
    assert_refresh(f.step(O, FIN | ACK, 0), 120);
    assert_eq!(f.conn().last_win, 0, "FIN packets are not recorded");
}

#[test]
fn tcp_data_unack_timeout_restored_after_ack() {
    let mut sim = Sim::new();
    sim.set("nf_conntrack_tcp_timeout_unacknowledged", "200");
    let mut f = Flow::with(sim);
    f.to(TcpState::Established);
    assert_refresh(f.step(O, PSH | ACK, 1000), 200);
    // A partial ack leaves data outstanding.
    let partial = seg(ACK, S0 + 1, C0 + 1 + 500);
    assert_refresh(f.send(R, partial), 200);
    assert_refresh(f.step(R, ACK, 0), 432_000);
}

#[test]
fn tcp_rst_timeout_is_close_even_when_staying_established() {
    // §7.9 on the live 6.18.44 kernel: close=7, unack=200 → ESTABLISHED with 7 s.
    let mut sim = Sim::new();
    sim.set("nf_conntrack_tcp_timeout_close", "7");
    sim.set("nf_conntrack_tcp_timeout_unacknowledged", "200");
    let mut f = Flow::with(sim);
    f.to(TcpState::Established);
    // Inexact RST: after the server's highest ack (C0+1), inside the window.
    let a = assert_refresh(f.sim.send(O, &seg(RST, C0 + 11, 0)), 7);
    assert!(!a.state_changed);
    assert_eq!(f.state(), TcpState::Established);
    // The RST advanced td_end: the next packet gets UNACK.
    assert_refresh(f.step(R, ACK, 0), 200);
}

#[test]
fn tcp_fin_wait_with_unacked_fin_gets_unack() {
    let mut sim = Sim::new();
    sim.set("nf_conntrack_tcp_timeout_fin_wait", "1000");
    let mut f = Flow::with(sim);
    f.to(TcpState::Established);
    // FIN sets DATA_UNACK on C; T[FW]=1000 > UNACK → 300.
    assert_refresh(f.step(O, FIN | ACK, 0), 300);
    // Acked: CLOSE_WAIT's own 60.
    assert_refresh(f.step(R, ACK, 0), 60);
}

// ---------------------------------------------------------------------------------
// §7.5 special cases
// ---------------------------------------------------------------------------------

#[test]
fn tcp_ignored_syn_in_established_then_resync_on_synack() {
    let mut f = Flow::new();
    f.to(TcpState::Established);
    // The client reuses the port with a new ISN: ignored, options recorded.
    let c1 = 900_000;
    let syn = seg(SYN, c1, 0).win(29200).opts(&[4, 2, 3, 3, 3]);
    assert_ignored(
        f.sim.send(O, &syn),
        ignored(PacketIndex::Syn, O, TcpState::Established),
    );
    assert_eq!(f.state(), TcpState::Established);
    assert_eq!(f.conn().last_end, c1 + 1);
    assert_eq!(f.conn().last_wscale, 3);
    // The server answers it: resync, treated as SYN_SENT → SYN_RECV.
    let s1 = 700_000;
    let synack = seg(SYN | ACK, s1, c1 + 1).opts(&[4, 2, 3, 3, 5]);
    let a = assert_refresh(f.sim.send(R, &synack), 60);
    assert!(a.state_changed);
    assert_eq!(f.state(), TcpState::SynRecv);
    let c = f.conn();
    assert_eq!({ c.seen[0].td_end }, c1 + 1);
    assert_eq!({ c.seen[0].td_maxwin }, 29200);
    assert_eq!({ c.seen[0].td_scale }, 3);
    assert_eq!({ c.seen[1].td_end }, s1 + 1);
    assert_eq!({ c.seen[1].td_scale }, 5);
    // The client's ACK completes the new handshake (already ASSURED: no new event).
    let a = assert_refresh(f.sim.send(O, &seg(ACK, c1 + 1, s1 + 1)), 432_000);
    assert!(!a.set_assured && a.state_changed);
    assert_eq!(f.state(), TcpState::Established);
}

#[test]
fn tcp_synack_not_matching_ignored_syn_stays_ignored() {
    let mut f = Flow::new();
    f.to(TcpState::Established);
    f.sim.send(O, &seg(SYN, 900_000, 0));
    let r = f.sim.send(R, &seg(SYN | ACK, 700_000, 123));
    assert_ignored(r, ignored(PacketIndex::SynAck, R, TcpState::Established));
}

#[test]
fn tcp_challenge_ack_in_last_ack_ignored() {
    let mut f = Flow::new();
    f.to(TcpState::LastAck);
    // A new SYN while in LAST_ACK: ignored, challenge ACK expected.
    let syn = seg(SYN, 900_000, 0);
    assert_ignored(
        f.sim.send(O, &syn),
        ignored(PacketIndex::Syn, O, TcpState::LastAck),
    );
    assert_ne!(f.conn().last_flags & LAST_FLAG_EXP_CHALLENGE_ACK, 0);
    // The server's challenge ACK is not the last ACK.
    let ack = f.seg(R, ACK, 0);
    assert_ignored(f.sim.send(R, &ack), TcpReason::ChallengeAck);
    assert_eq!(f.state(), TcpState::LastAck);
    assert_eq!(f.conn().last_flags & LAST_FLAG_EXP_CHALLENGE_ACK, 0);
    // Only once: a second ACK counts as the last ACK.
    assert_refresh(f.sim.send(R, &ack), 120);
    assert_eq!(f.state(), TcpState::TimeWait);
}

#[test]
fn tcp_simultaneous_open() {
    let mut sim = Sim::new();
    sim.set("nf_conntrack_tcp_timeout_syn_sent", "99");
    let mut f = Flow::with(sim);
    assert_refresh(f.step(O, SYN, 0), 99);
    // S's own SYN: SYN_SENT2. No SEEN_REPLY yet and old = SYN_SENT: not refreshed.
    let a = accepted(f.step(R, SYN, 0));
    assert!(a.state_changed && a.refresh.is_none());
    assert_eq!(f.state(), TcpState::SynSent2);
    assert_ne!(f.conn().last_flags & LAST_FLAG_SIMULTANEOUS_OPEN, 0);
    // The bare REPLY SYN is accepted right after initialising its direction: nothing
    // else (e.g. the client's right edge) is updated from it.
    assert_eq!({ f.conn().seen[1].td_end }, S0 + 1);
    assert_eq!({ f.conn().seen[0].td_maxend }, C0 + 1);
    // A retransmitted SYN in SYN_SENT2 refreshes with the built-in 120 s.
    assert_refresh(f.sim.send(O, &seg(SYN, C0, 0)), 120);
    // C's SYN/ACK (its own ISN again, acking S's SYN) → SYN_RECV.
    assert_refresh(f.send(O, seg(SYN | ACK, C0, S0 + 1)), 60);
    assert_eq!(f.state(), TcpState::SynRecv);
    // S's ACK (a REPLY ACK, normally SR → SR) completes the open.
    let a = assert_refresh(f.step(R, ACK, 0), 432_000);
    assert!(a.set_assured && a.state_changed);
    assert_eq!(f.state(), TcpState::Established);
}

#[test]
fn tcp_reply_ack_in_syn_recv_without_simultaneous_open_stays() {
    let mut f = Flow::new();
    f.to(TcpState::SynRecv);
    let a = assert_refresh(f.step(R, ACK, 0), 60);
    assert!(!a.state_changed);
    assert_eq!(f.state(), TcpState::SynRecv);
}

#[test]
fn tcp_reopen_from_time_wait_reply_syn_repeat() {
    let mut f = Flow::new();
    f.to(TcpState::TimeWait);
    // The server opens towards the client: delete and look up again (roles swapped).
    assert_eq!(f.sim.send(R, &seg(SYN, 31337, 0)), TrackerResult::Repeat);
}

#[test]
fn tcp_reopen_from_close_after_own_rst_repeat() {
    let mut f = Flow::new();
    f.to(TcpState::Close); // closed by C's RST
    assert_eq!(f.sim.send(O, &seg(SYN, 31337, 0)), TrackerResult::Repeat);
}

#[test]
fn tcp_syn_in_close_after_peer_rst_ignored() {
    let mut f = Flow::new();
    f.to(TcpState::Established);
    assert_refresh(f.step(R, RST, 0), 10); // S's exact RST
    assert_eq!(f.state(), TcpState::Close);
    // No CLOSE_INIT, last RST came from the other side: IGNORE.
    assert_ignored(
        f.sim.send(O, &seg(SYN, 31337, 0)),
        ignored(PacketIndex::Syn, O, TcpState::Close),
    );
    assert_eq!(f.state(), TcpState::Close);
}

#[test]
fn tcp_syn_sent_reply_ack_ignored_records_last_ack() {
    let mut f = Flow::new();
    f.step(O, SYN, 0);
    let r = f.sim.send(R, &seg(ACK, 42, 0x1234_5678));
    assert_ignored(r, ignored(PacketIndex::Ack, R, TcpState::SynSent));
    assert_eq!(f.conn().last_ack, 0x1234_5678);
    assert_eq!(f.conn().last_end, 42);
}

// --- RST rules ---------------------------------------------------------------------

#[test]
fn tcp_rst_rule1_closing_state_skips_window() {
    for st in [
        TcpState::FinWait,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::TimeWait,
        TcpState::Close,
    ] {
        for dir in [O, R] {
            let mut f = Flow::new();
            f.to(st);
            // Far outside any window.
            let a = assert_refresh(f.sim.send(dir, &seg(RST, 0x7000_0000, 0)), 10);
            assert_eq!(a.state_changed, st != TcpState::Close);
            assert_eq!(f.state(), TcpState::Close, "{st:?} {dir:?}");
        }
    }
}

#[test]
fn tcp_rst_rule2a_seq_zero_not_established_window_checked() {
    let mut f = Flow::new();
    f.to(TcpState::SynRecv);
    // seq 0 is before the peer's max ack (C0+1), but not "invalid rst": 2a goes straight
    // to the window check, which it passes.
    assert_refresh(f.sim.send(O, &seg(RST, 0, 0)), 10);
    assert_eq!(f.state(), TcpState::Close);
}

#[test]
fn tcp_rst_rule2a_seq_zero_out_of_window_invalid() {
    let mut f = Flow::new();
    f.next = [3_000_000_000, S0];
    f.to(TcpState::SynRecv);
    // seq 0 lies more than 2^31 after td_maxend: check I fails.
    let r = f.sim.send(O, &seg(RST, 0, 0));
    let maxend = f.conn().seen[0].td_maxend;
    assert_invalid(
        r,
        TcpReason::SeqOverUpperBound(maxend.wrapping_add(1)),
        None,
    );
    assert_eq!(f.state(), TcpState::SynRecv);
}

#[test]
fn tcp_rst_rule2b_before_maxack_invalid() {
    let mut f = Flow::new();
    f.to(TcpState::SynRecv);
    // Not established, seq before the server's ack C0+1.
    assert_invalid(
        f.sim.send(O, &seg(RST, C0 - 1, 0)),
        TcpReason::InvalidRst,
        None,
    );
    assert_eq!(f.state(), TcpState::SynRecv);
}

#[test]
fn tcp_rst_rule2b_established_ignore_invalid_rst_0_and_1() {
    let mut f = Flow::new();
    f.to(TcpState::Established);
    assert_invalid(f.sim.send(O, &seg(RST, C0, 0)), TcpReason::InvalidRst, None);
    assert_eq!(f.state(), TcpState::Established);

    let mut sim = Sim::new();
    sim.set("nf_conntrack_tcp_ignore_invalid_rst", "1");
    let mut f = Flow::with(sim);
    f.to(TcpState::Established);
    // Not refused any more: inexact in an assured connection → stays ESTABLISHED (2e),
    // passes the window check, CLOSE timeout (6.18).
    let a = assert_refresh(f.sim.send(O, &seg(RST, C0, 0)), 10);
    assert!(!a.state_changed);
    assert_eq!(f.state(), TcpState::Established);
}

#[test]
fn tcp_rst_rule2c_exact_seq_closes() {
    let mut f = Flow::new();
    f.to(TcpState::Established);
    let a = assert_refresh(f.sim.send(R, &seg(RST, S0 + 1, 0)), 10);
    assert!(a.state_changed);
    assert_eq!(f.state(), TcpState::Close);
}

#[test]
fn tcp_rst_rule2c_not_established_inexact_closes() {
    let mut f = Flow::new();
    f.to(TcpState::SynRecv);
    assert_refresh(f.sim.send(O, &seg(RST, C0 + 50, 0)), 10);
    assert_eq!(f.state(), TcpState::Close);
}

#[test]
fn tcp_rst_rule2c_not_assured_established_inexact_closes() {
    // ESTABLISHED but not ASSURED: a pickup after its first two packets.
    let mut f = Flow::new();
    f.step(O, ACK, 0);
    f.step(R, ACK, 0);
    assert!(!f.sim.status.has(Status::ASSURED));
    assert_refresh(f.sim.send(O, &seg(RST, C0 + 500, 0)), 10);
    assert_eq!(f.state(), TcpState::Close);
}

#[test]
fn tcp_rst_rule2d_end_of_data_train_closes() {
    let mut f = Flow::new();
    f.to(TcpState::Established);
    f.step(R, PSH | ACK, 19);
    // RST right after the data, seq = its end, not yet acked by the client.
    let a = assert_refresh(f.sim.send(R, &seg(RST | ACK, S0 + 20, C0 + 1)), 10);
    assert!(a.state_changed);
    assert_eq!(f.state(), TcpState::Close);
}

#[test]
fn tcp_rst_rule2e_inexact_stays_established() {
    let mut f = Flow::new();
    f.to(TcpState::Established);
    let a = assert_refresh(f.sim.send(R, &seg(RST, S0 + 100, 0)), 10);
    assert!(!a.state_changed && !a.kill);
    assert_eq!(f.state(), TcpState::Established);
    // The exact RST that follows a challenge ACK closes.
    f.step(O, ACK, 0);
    assert_refresh(f.sim.send(R, &seg(RST, S0 + 1, 0)), 10);
    assert_eq!(f.state(), TcpState::Close);
}

#[test]
fn tcp_rst_rule2e_inexact_out_of_window_invalid() {
    let mut f = Flow::new();
    f.to(TcpState::Established);
    // After max ack but past the window: rule 2e, then check I fails.
    let r = f.sim.send(R, &seg(RST, S0 + 1_000_000, 0));
    assert!(matches!(
        r,
        TrackerResult::Invalid {
            reason: InvalidReason::Tcp(TcpReason::SeqOverUpperBound(_)),
            set_timeout: None
        }
    ));
}

#[test]
fn tcp_rst_rule3_answers_ignored_syn_skips_window() {
    let mut f = Flow::new();
    f.to(TcpState::Established);
    let c1 = 900_000;
    f.sim.send(O, &seg(SYN, c1, 0));
    // The server resets the (ignored) SYN: ack = its end; seq anywhere.
    let a = assert_refresh(f.sim.send(R, &seg(RST | ACK, 0x6000_0000, c1 + 1)), 10);
    assert!(a.state_changed);
    assert_eq!(f.state(), TcpState::Close);
}

#[test]
fn tcp_rst_rule3_answers_ignored_ack_unassured_skips_window() {
    let mut f = Flow::new();
    f.step(O, SYN, 0);
    // A half-open connection: the server sends an ACK (ignored in SYN_SENT).
    let y = 0x2222_0000;
    f.sim.send(R, &seg(ACK, y, 0x3333_0000));
    // The client's RST acks it.
    let a = assert_refresh(f.sim.send(O, &seg(RST | ACK, 0x5555_0000, y)), 10);
    assert!(!a.kill, "the ignored ACK set SEEN_REPLY");
    assert_eq!(f.state(), TcpState::Close);
}

#[test]
fn tcp_rst_rule4_answers_challenge_ack_in_syn_sent() {
    let mut f = Flow::new();
    f.step(O, SYN, 0);
    // The server's challenge ACK (ignored), then the client's RST with seq = its ack.
    let w = 0x4000_0000;
    f.sim.send(R, &seg(ACK, 77, w));
    let a = assert_refresh(f.sim.send(O, &seg(RST, w, 0)), 10);
    assert!(a.state_changed);
    assert_eq!(f.state(), TcpState::Close);
}

#[test]
fn tcp_syn_sent_rst_bad_ack_invalid() {
    let mut f = Flow::new();
    f.step(O, SYN, 0);
    let w = 0x4000_0000;
    f.sim.send(R, &seg(ACK, 77, w));
    // Not rule 4 (seq ≠ the challenge ACK's ack), and far out of window.
    let r = f.sim.send(O, &seg(RST, w + 1, 0));
    assert!(matches!(
        r,
        TrackerResult::Invalid {
            reason: InvalidReason::Tcp(TcpReason::SeqOverUpperBound(_)),
            ..
        }
    ));
    // A server RST/ACK whose ack is not what the client sent: ACK over upper bound.
    let mut f = Flow::new();
    f.step(O, SYN, 0);
    let r = f.sim.send(R, &seg(RST | ACK, 0, C0 + 100));
    assert_invalid(r, TcpReason::AckOverUpperBound(C0 + 2), None);
    assert!(f.sim.conn.is_some(), "entry survives");
}

#[test]
fn tcp_syn_sent_rst_seq_zero_placed_at_sender_end() {
    // With the client's ISN far from 0, an RST with seq 0 would fail check I; in
    // SYN_SENT the kernel moves it to the sender's td_end first.
    let mut f = Flow::new();
    f.next = [3_000_000_000, S0];
    f.step(O, SYN, 0);
    let a = accepted(f.sim.send(O, &seg(RST, 0, 0)));
    assert!(a.kill);
    // Not in SYN_SENT: no such help (SYN_RECV, seq 0 → rule 2a → check I fails).
    let mut f = Flow::new();
    f.next = [3_000_000_000, S0];
    f.to(TcpState::SynRecv);
    assert!(matches!(
        f.sim.send(O, &seg(RST, 0, 0)),
        TrackerResult::Invalid { .. }
    ));
}

#[test]
fn tcp_rst_without_reply_kills_from_original_too() {
    let mut f = Flow::new();
    f.step(O, SYN, 0);
    let a = accepted(f.sim.send(O, &seg(RST, C0 + 1, 0)));
    assert!(a.kill && a.refresh.is_none());
}

// ---------------------------------------------------------------------------------
// §7.6 window checks
// ---------------------------------------------------------------------------------

#[test]
fn tcp_window_check1_seq_over_upper_bound_invalid() {
    let mut f = Flow::new();
    f.to(TcpState::Established);
    let maxend = f.conn().seen[0].td_maxend;
    assert_eq!(maxend, C0 + 1 + 65535);
    let r = f.sim.send(O, &seg(PSH | ACK, C0 + 200_000, S0 + 1).len(10));
    assert_invalid(r, TcpReason::SeqOverUpperBound(maxend + 1), None);
    // seq exactly at td_maxend is allowed.
    accepted(f.sim.send(O, &seg(PSH | ACK, maxend, S0 + 1).len(10)));
}

#[test]
fn tcp_window_overshoot_ignored_and_remembered() {
    let mut f = Flow::new();
    f.to(TcpState::Established);
    let maxend = f.conn().seen[0].td_maxend;
    let s = seg(PSH | ACK, maxend + 1, S0 + 1).len(10);
    let end = s.end();
    assert_ignored(f.sim.send(O, &s), TcpReason::Overshot(end - maxend + 1));
    assert_eq!(
        TcpReason::Overshot(12).to_string(),
        "12 bytes more than expected"
    );
    assert_eq!({ f.conn().seen[0].td_end }, end);
    assert_ne!(f.conn().dir_flags(O) & DIR_FLAG_DATA_UNACK, 0);
    // The server may now ack it without tripping check III.
    assert_refresh(f.sim.send(R, &seg(ACK, S0 + 1, end)), 432_000);
}

#[test]
fn tcp_window_check3_ack_over_upper_bound_invalid() {
    let mut f = Flow::new();
    f.to(TcpState::Established);
    let r = f.sim.send(O, &seg(ACK, C0 + 1, S0 + 100));
    assert_invalid(r, TcpReason::AckOverUpperBound(S0 + 2), None);
    assert_eq!(
        r.to_string_reason(),
        format!(
            "ACK is over upper bound {} (ACKed data not seen yet)",
            S0 + 2
        )
    );
}

#[test]
fn tcp_window_check2_seq_under_lower_bound_ignored() {
    let mut f = Flow::new();
    f.to(TcpState::Established);
    let seq = (C0 + 1).wrapping_sub(70_000);
    let lower = (C0 + 1).wrapping_sub(65_535).wrapping_sub(1);
    let r = f.sim.send(O, &seg(ACK, seq, S0 + 1));
    assert_ignored(r, TcpReason::SeqUnderLowerBound(lower));
}

#[test]
fn tcp_window_check4_ack_under_lower_bound_ignored() {
    let mut f = Flow::new();
    f.to(TcpState::Established);
    let ack = (S0 + 1).wrapping_sub(70_000);
    let lower = (S0 + 1).wrapping_sub(66_000).wrapping_sub(1);
    let r = f.sim.send(O, &seg(ACK, C0 + 1, ack));
    assert_ignored(r, TcpReason::AckUnderLowerBound(lower));
}

#[test]
fn tcp_window_checks_exact_boundaries() {
    let fresh = || {
        let mut f = Flow::new();
        f.to(TcpState::Established);
        f
    };
    // I: seq == td_maxend passes, td_maxend + 1 does not (here: overshoot of 1 byte).
    let mut f = fresh();
    let maxend = f.conn().seen[0].td_maxend;
    accepted(f.sim.send(O, &seg(ACK, maxend, S0 + 1)));
    let mut f = fresh();
    assert_ignored(
        f.sim.send(O, &seg(ACK, maxend + 1, S0 + 1)),
        TcpReason::Overshot(2),
    );
    // III: ack == receiver td_end passes, + 1 is invalid.
    let mut f = fresh();
    assert_refresh(f.sim.send(O, &seg(ACK, C0 + 1, S0 + 1)), 432_000);
    assert_invalid(
        f.sim.send(O, &seg(ACK, C0 + 1, S0 + 2)),
        TcpReason::AckOverUpperBound(S0 + 2),
        None,
    );
    // II: end == td_end − receiver td_maxwin − 1 is under, one more is in.
    let lower = (C0 + 1).wrapping_sub(65_535).wrapping_sub(1);
    let mut f = fresh();
    assert_ignored(
        f.sim.send(O, &seg(ACK, lower, S0 + 1)),
        TcpReason::SeqUnderLowerBound(lower),
    );
    let mut f = fresh();
    assert_refresh(
        f.sim.send(O, &seg(ACK, lower.wrapping_add(1), S0 + 1)),
        432_000,
    );
    // IV: sack == receiver td_end − MAXACKWINDOW − 1 is under, one more is in.
    let ack_lower = (S0 + 1).wrapping_sub(66_000).wrapping_sub(1);
    let mut f = fresh();
    assert_ignored(
        f.sim.send(O, &seg(ACK, C0 + 1, ack_lower)),
        TcpReason::AckUnderLowerBound(ack_lower),
    );
    let mut f = fresh();
    assert_refresh(
        f.sim.send(O, &seg(ACK, C0 + 1, ack_lower.wrapping_add(1))),
        432_000,
    );
}

#[test]
fn tcp_window_maxackwindow_uses_larger_sender_window() {
    // With a sender window above 66000 (scaled), check IV allows that much.
    let mut f = Flow::new();
    f.send(O, f.seg(O, SYN, 0).opts(&[3, 3, 4]));
    f.send(R, f.seg(R, SYN | ACK, 0).opts(&[3, 3, 4]));
    f.step(O, ACK, 0); // C's window: 65535 << 4
    let maxwin = f.conn().seen[0].td_maxwin;
    assert_eq!(maxwin, 65535 << 4);
    let ack_lower = (S0 + 1).wrapping_sub(maxwin).wrapping_sub(1);
    assert_ignored(
        f.sim.send(O, &seg(ACK, C0 + 1, ack_lower)),
        TcpReason::AckUnderLowerBound(ack_lower),
    );
    accepted(f.sim.send(O, &seg(ACK, C0 + 1, ack_lower.wrapping_add(1))));
}

#[test]
fn tcp_be_liberal_sysctl_accepts_out_of_window_without_update() {
    let mut sim = Sim::new();
    sim.set("nf_conntrack_tcp_be_liberal", "1");
    let mut f = Flow::with(sim);
    f.to(TcpState::Established);
    let before_conn = f.conn().clone();
    // III, I, II and IV failures are all accepted.
    assert_refresh(f.sim.send(O, &seg(ACK, C0 + 1, S0 + 100)), 432_000);
    assert_refresh(
        f.sim.send(O, &seg(PSH | ACK, C0 + 200_000, S0 + 1).len(10)),
        432_000,
    );
    assert_refresh(
        f.sim
            .send(O, &seg(ACK, (C0 + 1).wrapping_sub(70_000), S0 + 1)),
        432_000,
    );
    assert_refresh(
        f.sim
            .send(O, &seg(ACK, C0 + 1, (S0 + 1).wrapping_sub(70_000))),
        432_000,
    );
    // Window data untouched by the forgiven packets.
    assert_eq!(f.conn().seen, before_conn.seen);
    // The RST check is not affected by be_liberal.
    assert_invalid(f.sim.send(O, &seg(RST, C0, 0)), TcpReason::InvalidRst, None);
}

#[test]
fn tcp_be_liberal_overshoot_accepted_and_remembered() {
    let mut sim = Sim::new();
    sim.set("nf_conntrack_tcp_be_liberal", "1");
    let mut f = Flow::with(sim);
    f.to(TcpState::Established);
    let maxend = f.conn().seen[0].td_maxend;
    let s = seg(PSH | ACK, maxend + 1, S0 + 1).len(10);
    let end = s.end();
    // Accepted (with UNACK because the overshoot branch set DATA_UNACK).
    assert_refresh(f.sim.send(O, &s), 300);
    assert_eq!({ f.conn().seen[0].td_end }, end);
}

#[test]
fn tcp_lowered_timeout_on_out_of_window_fin_after_peer_fin() {
    let mut sim = Sim::new();
    sim.set("nf_conntrack_tcp_timeout_fin_wait", "600");
    let mut f = Flow::with(sim);
    f.to(TcpState::Established);
    // C's FIN in window: FIN_WAIT; with DATA_UNACK the timeout is UNACK (300)...
    assert_refresh(f.step(O, FIN | ACK, 0), 300);
    // ...suppose a while later 600 s remain (e.g. the FIN was acked meanwhile).
    f.sim.remaining = Duration::from_secs(600);
    // S's FIN far out of window: INVALID, timeout lowered to UNACK.
    let r = f.sim.send(R, &seg(FIN | ACK, S0 + 5_000_000, C0 + 2));
    let maxend = f.conn().seen[1].td_maxend;
    assert_invalid(
        r,
        TcpReason::SeqOverUpperBound(maxend.wrapping_add(1)),
        Some(300),
    );
    assert_eq!(f.sim.remaining, Duration::from_secs(300));
    assert_eq!(f.state(), TcpState::FinWait);
}

#[test]
fn tcp_lowered_timeout_conditions() {
    let setup = |remaining: u64| {
        let mut sim = Sim::new();
        sim.set("nf_conntrack_tcp_timeout_fin_wait", "600");
        let mut f = Flow::with(sim);
        f.to(TcpState::Established);
        f.step(O, FIN | ACK, 0);
        f.sim.remaining = Duration::from_secs(remaining);
        f
    };
    let bad_fin = seg(FIN | ACK, S0 + 5_000_000, C0 + 2);
    // Remaining ≤ UNACK: nothing to lower.
    let mut f = setup(300);
    let r = f.sim.send(R, &bad_fin);
    assert!(matches!(
        r,
        TrackerResult::Invalid {
            set_timeout: None,
            ..
        }
    ));
    // Less than 120 s remaining (even with a smaller UNACK timeout)...
    let mut f = setup(119);
    f.sim.set("nf_conntrack_tcp_timeout_unacknowledged", "60");
    assert!(matches!(
        f.sim.send(R, &bad_fin),
        TrackerResult::Invalid {
            set_timeout: None,
            ..
        }
    ));
    // ...but exactly 120 s is enough.
    let mut f = setup(120);
    f.sim.set("nf_conntrack_tcp_timeout_unacknowledged", "60");
    assert!(matches!(
        f.sim.send(R, &bad_fin),
        TrackerResult::Invalid { set_timeout: Some(t), .. } if t == Duration::from_secs(60)
    ));
    // Less than 120 s remaining.
    let mut f = setup(100);
    assert!(matches!(
        f.sim.send(R, &bad_fin),
        TrackerResult::Invalid {
            set_timeout: None,
            ..
        }
    ));
    // Same direction as the last FIN: only recorded.
    let mut f = setup(600);
    let r = f.sim.send(O, &seg(FIN | ACK, C0 + 5_000_000, S0 + 1));
    assert!(matches!(
        r,
        TrackerResult::Invalid {
            set_timeout: None,
            ..
        }
    ));
    assert_eq!(f.conn().last_index, PacketIndex::Fin);
    assert_eq!(f.conn().last_dir, O);
    // FIXED_TIMEOUT: never.
    let mut f = setup(600);
    f.sim.status.set(Status::FIXED_TIMEOUT);
    assert!(matches!(
        f.sim.send(R, &bad_fin),
        TrackerResult::Invalid {
            set_timeout: None,
            ..
        }
    ));
    // Not ASSURED: never.
    let mut f = setup(600);
    f.sim.status.clear(Status::ASSURED);
    assert!(matches!(
        f.sim.send(R, &bad_fin),
        TrackerResult::Invalid {
            set_timeout: None,
            ..
        }
    ));
    // An ACK (not FIN/RST): never, and nothing recorded.
    let mut f = setup(600);
    let r = f.sim.send(R, &seg(ACK, S0 + 5_000_000, C0 + 2));
    assert!(matches!(
        r,
        TrackerResult::Invalid {
            set_timeout: None,
            ..
        }
    ));
    assert_eq!(f.conn().last_index, PacketIndex::Fin);
}

#[test]
fn tcp_lowered_timeout_out_of_window_fin_records_then_peer_fin_lowers() {
    let mut f = Flow::new();
    f.to(TcpState::Established);
    f.sim.remaining = Duration::from_secs(432_000);
    // C's out-of-window FIN: recorded as last FIN from C (not lowered: last was an ACK
    // from C itself).
    let r = f.sim.send(O, &seg(FIN | ACK, C0 + 5_000_000, S0 + 1));
    assert!(matches!(
        r,
        TrackerResult::Invalid {
            set_timeout: None,
            ..
        }
    ));
    assert_eq!(f.conn().last_index, PacketIndex::Fin);
    // S's out-of-window RST right after: lowered to UNACK.
    let r = f.sim.send(R, &seg(RST | ACK, S0 + 5_000_000, C0 + 1));
    assert!(
        matches!(r, TrackerResult::Invalid { set_timeout: Some(t), .. } if t == Duration::from_secs(300))
    );
}

#[test]
fn tcp_window_scaling_applied_after_both_syns() {
    let mut f = Flow::new();
    f.send(O, f.seg(O, SYN, 0).opts(&[3, 3, 2]));
    f.send(R, f.seg(R, SYN | ACK, 0).opts(&[1, 3, 3, 2]));
    assert_eq!(f.conn().wscale(O), 2);
    assert_eq!(f.conn().wscale(R), 2);
    f.step(O, ACK, 0);
    // The server's first non-SYN window is scaled: 65535 << 2.
    f.step(R, ACK, 0);
    assert_eq!({ f.conn().seen[0].td_maxend }, C0 + 1 + (65535 << 2));
    // Data 200000 bytes ahead fits the scaled window.
    let s = seg(PSH | ACK, C0 + 1 + 200_000, S0 + 1).len(10);
    accepted(f.sim.send(O, &s));
}

#[test]
fn tcp_window_scaling_needs_both_sides() {
    let mut f = Flow::new();
    f.send(O, f.seg(O, SYN, 0).opts(&[3, 3, 2]));
    f.send(R, f.seg(R, SYN | ACK, 0));
    assert_eq!(f.conn().wscale(O), 0);
    assert_eq!(f.conn().wscale(R), 0);
    f.step(O, ACK, 0);
    f.step(R, ACK, 0);
    assert_eq!({ f.conn().seen[0].td_maxend }, C0 + 1 + 65535);
    let s = seg(PSH | ACK, C0 + 1 + 200_000, S0 + 1).len(10);
    assert_invalid(
        f.sim.send(O, &s),
        TcpReason::SeqOverUpperBound(C0 + 1 + 65535 + 1),
        None,
    );
}

#[test]
fn tcp_window_scale_over_14_clamped() {
    let mut f = Flow::new();
    f.send(O, f.seg(O, SYN, 0).opts(&[3, 3, 7]));
    f.send(R, f.seg(R, SYN | ACK, 0).opts(&[3, 3, 16]));
    assert_eq!(f.conn().wscale(O), 7);
    assert_eq!(f.conn().wscale(R), 14);
    assert_eq!(
        syn_options(&[3, 3, 255]),
        SynOptions {
            sack_perm: false,
            wscale: Some(14)
        }
    );
}

#[test]
fn tcp_sack_blocks_used_when_permitted() {
    let sack_opt = |left: u32, right: u32| {
        let mut o = vec![1, 1, 5, 10];
        o.extend_from_slice(&left.to_be_bytes());
        o.extend_from_slice(&right.to_be_bytes());
        o
    };
    // Both sides permit SACK.
    let mut f = Flow::new();
    f.send(O, f.seg(O, SYN, 0).opts(&[4, 2]));
    f.send(R, f.seg(R, SYN | ACK, 0).opts(&[4, 2]));
    f.step(O, ACK, 0);
    f.step(O, PSH | ACK, 300);
    // S acks the first byte only, SACKs up to the end: sack = C0+301.
    let s = seg(ACK, S0 + 1, C0 + 1).opts(&sack_opt(C0 + 101, C0 + 301));
    accepted(f.sim.send(R, &s));
    // swin = win + (sack − ack) = 65535 + 300.
    assert_eq!({ f.conn().seen[1].td_maxwin }, 65535 + 300);
    // A SACK edge past what C sent: check III on the SACK.
    let s = seg(ACK, S0 + 1, C0 + 1).opts(&sack_opt(C0 + 101, C0 + 1000));
    assert_invalid(
        f.sim.send(R, &s),
        TcpReason::AckOverUpperBound(C0 + 302),
        None,
    );
}

#[test]
fn tcp_sack_blocks_ignored_without_sack_perm() {
    let mut f = Flow::new();
    f.to(TcpState::Established);
    f.step(O, PSH | ACK, 300);
    let mut o = vec![1, 1, 5, 10];
    o.extend_from_slice(&(C0 + 101).to_be_bytes());
    o.extend_from_slice(&(C0 + 100_000).to_be_bytes());
    let s = seg(ACK, S0 + 1, C0 + 1).opts(&o);
    accepted(f.sim.send(R, &s));
}

#[test]
fn tcp_sequence_wraparound() {
    let mut f = Flow::new();
    f.next = [0xffff_ff00, 0xffff_fff0];
    f.to(TcpState::Established);
    // 500 bytes across 2^32.
    assert_refresh(f.step(O, PSH | ACK, 500), 300);
    assert_eq!(
        { f.conn().seen[0].td_end },
        0xffff_ff01u32.wrapping_add(500)
    );
    assert_refresh(f.step(R, PSH | ACK, 100), 300);
    assert_eq!({ f.conn().seen[1].td_end }, 0x55);
    assert_refresh(f.step(O, ACK, 0), 432_000);
    assert_refresh(f.step(R, ACK, 0), 432_000);
    // Old data from before the wrap is still recognised as old, not as far ahead.
    let r = f
        .sim
        .send(O, &seg(ACK, 0xffff_ff01u32.wrapping_sub(70_000), 0x54));
    assert!(matches!(
        accepted(r).note,
        Some(InvalidReason::Tcp(TcpReason::SeqUnderLowerBound(_)))
    ));
}

#[test]
fn tcp_keepalive_reply_on_picked_up_direction() {
    // Pickup from C's ACK: C's td_end = C0. The REPLY side is first seen answering a
    // keep-alive (ack = C's td_end + 1): C's td_end moves up by one for check III.
    let mut f = Flow::new();
    f.step(O, ACK, 0);
    assert_eq!({ f.conn().seen[0].td_end }, C0);
    accepted(f.sim.send(R, &seg(ACK, S0, C0 + 1)));
    assert_eq!({ f.conn().seen[0].td_end }, C0 + 1);
    assert_eq!({ f.conn().seen[1].td_end }, S0);
}

// ---------------------------------------------------------------------------------
// options.rs
// ---------------------------------------------------------------------------------

#[test]
fn tcp_options_parse_and_stop_rules() {
    // MSS, SACK_PERM, TS, NOP, WSCALE.
    let opts = [
        2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
    ];
    assert_eq!(
        syn_options(&opts),
        SynOptions {
            sack_perm: true,
            wscale: Some(7)
        }
    );
    // EOL stops.
    assert_eq!(syn_options(&[0, 3, 3, 7]), SynOptions::default());
    // Length < 2 stops ("silly option").
    assert_eq!(syn_options(&[8, 1, 3, 3, 7]), SynOptions::default());
    // Length past the end stops; what came before stays.
    assert_eq!(
        syn_options(&[4, 2, 8, 10, 0]),
        SynOptions {
            sack_perm: true,
            wscale: None
        }
    );
    // A kind byte with no length byte.
    assert_eq!(syn_options(&[1, 1, 3]), SynOptions::default());
    // Wrong lengths are skipped, not taken.
    assert_eq!(syn_options(&[4, 3, 0, 3, 4, 7, 0]), SynOptions::default());
}

#[test]
fn tcp_options_syn_without_options_keeps_flags() {
    let mut d = DirState {
        td_scale: 5,
        flags: DIR_FLAG_WINDOW_SCALE | DIR_FLAG_CLOSE_INIT | DIR_FLAG_BE_LIBERAL,
        ..DirState::default()
    };
    options::apply_syn_options(&mut d, &[]);
    assert_eq!(d.td_scale, 5);
    assert_eq!(
        d.flags,
        DIR_FLAG_WINDOW_SCALE | DIR_FLAG_CLOSE_INIT | DIR_FLAG_BE_LIBERAL
    );
    // With options: cleared except BE_LIBERAL, then set from the options.
    options::apply_syn_options(&mut d, &[4, 2, 1, 1]);
    assert_eq!(d.td_scale, 0);
    assert_eq!(d.flags, DIR_FLAG_BE_LIBERAL | DIR_FLAG_SACK_PERM);
}

#[test]
fn tcp_sack_parsing() {
    let block = |l: u32, r: u32| {
        let mut v = l.to_be_bytes().to_vec();
        v.extend_from_slice(&r.to_be_bytes());
        v
    };
    // Two blocks: the highest right edge after ack wins.
    let mut o = vec![1, 1, 5, 18];
    o.extend(block(200, 300));
    o.extend(block(400, 500));
    assert_eq!(highest_sack(&o, 100), 500);
    // Edges before ack do not lower it.
    assert_eq!(highest_sack(&o, 1000), 1000);
    // Timestamp-only fast path.
    let ts = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
    assert_eq!(highest_sack(&ts, 7), 7);
    // Not a whole number of blocks: skipped.
    let mut bad = vec![5, 11];
    bad.extend(block(1, 900));
    bad.push(0);
    assert_eq!(highest_sack(&bad, 100), 100);
    // A truncated SACK option: stop.
    let mut trunc = vec![5, 18];
    trunc.extend(block(1, 900));
    assert_eq!(highest_sack(&trunc, 100), 100);
    // Wraparound: an edge just past 2^32 is after an ack just before it.
    let mut w = vec![5, 10];
    w.extend(block(0xffff_fff0, 0x10));
    assert_eq!(highest_sack(&w, 0xffff_ff00), 0x10);
    // Garbage never panics.
    for len in 0..40usize {
        let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 5) as u8).collect();
        let _ = highest_sack(&junk, 1);
        let _ = syn_options(&junk);
    }
}

// ---------------------------------------------------------------------------------
// Robustness
// ---------------------------------------------------------------------------------

#[test]
fn tcp_packet_on_short_header_is_invalid_not_panic() {
    let mut l4 = tcp_bytes(O, &seg(ACK, 1, 1));
    l4.truncate(10);
    let bytes = ipv4(O, l4, false);
    let pkt = Packet::parse(&bytes).expect("parses");
    let sys = Sysctls::default();
    let cx = Cx {
        now: Instant::ZERO,
        sysctls: &sys,
        check_checksum: false,
    };
    assert!(TcpConn::new(&pkt, &cx).is_err());
    let mut f = Flow::new();
    f.to(TcpState::Established);
    let ecx = EntryCx {
        status: f.sim.status,
        unconfirmed: false,
        deadline: Instant::ZERO + Duration::from_secs(1),
        seqadj: None,
    };
    let Some(conn) = f.sim.conn.as_mut() else {
        unreachable!()
    };
    assert_invalid(
        conn.packet(&pkt, O, &ecx, &cx),
        TcpReason::ShortHeader,
        None,
    );
}

/// Helper used by one test: the reason text of an INVALID result.
trait ReasonText {
    fn to_string_reason(&self) -> String;
}
impl ReasonText for TrackerResult {
    fn to_string_reason(&self) -> String {
        match self {
            TrackerResult::Invalid { reason, .. } => reason.to_string(),
            TrackerResult::Accept(a) => a.note.map(|n| n.to_string()).unwrap_or_default(),
            other => format!("{other:?}"),
        }
    }
}
