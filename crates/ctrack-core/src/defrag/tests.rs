//! Defrag tests: fragments built by hand, one test per rule of kernel-semantics-2.md
//! §3.3 for each family, plus lifetime, zones, max_dist, memory and header details.

use super::*;
use crate::packet::checksum;
use crate::packet::ip::{check_ipv4, check_ipv6};

const S4: [u8; 4] = [10, 1, 0, 1];
const D4: [u8; 4] = [10, 2, 0, 1];
const S6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const D6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const TCP: u8 = 6;
const UDP: u8 = 17;

fn t(s: u64) -> Instant {
    Instant::from_secs(s)
}

fn sys() -> Sysctls {
    Sysctls::default()
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

/// UDP header + `n` payload bytes (the checksum is not checked by defrag).
fn udp(n: usize) -> Vec<u8> {
    let mut v = vec![0x30, 0x39, 0x00, 0x35];
    v.extend_from_slice(&((8 + n) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend(pattern(n, 1));
    v
}

/// TCP header (20 bytes, SYN) + `n` payload bytes.
fn tcp(n: usize) -> Vec<u8> {
    let mut v = vec![
        0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ];
    v.extend(pattern(n, 3));
    v
}

/// IPv4 header fields of a test datagram.
#[derive(Clone)]
struct H4 {
    id: u16,
    proto: u8,
    tos: u8,
    opts: Vec<u8>,
    src: [u8; 4],
}

impl H4 {
    fn new(id: u16, proto: u8) -> H4 {
        H4 {
            id,
            proto,
            tos: 0,
            opts: Vec::new(),
            src: S4,
        }
    }

    /// A packet with fragment field `frag` and `data` after the header; valid checksum.
    fn packet(&self, frag: u16, data: &[u8]) -> Vec<u8> {
        let ihl = 20 + self.opts.len();
        assert_eq!(ihl % 4, 0);
        let mut p = vec![0x40 | (ihl / 4) as u8, self.tos];
        p.extend_from_slice(&((ihl + data.len()) as u16).to_be_bytes());
        p.extend_from_slice(&self.id.to_be_bytes());
        p.extend_from_slice(&frag.to_be_bytes());
        p.extend_from_slice(&[64, self.proto, 0, 0]);
        p.extend_from_slice(&self.src);
        p.extend_from_slice(&D4);
        p.extend_from_slice(&self.opts);
        let c = checksum::compute(0, &p[..ihl]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(data);
        check_ipv4(&p).expect("valid test packet");
        p
    }

    /// A fragment at byte `offset` (multiple of 8) with MF and DF as given.
    fn frag(&self, offset: usize, mf: bool, df: bool, data: &[u8]) -> Vec<u8> {
        assert_eq!(offset % 8, 0);
        let mut f = (offset / 8) as u16;
        if mf {
            f |= 0x2000;
        }
        if df {
            f |= 0x4000;
        }
        self.packet(f, data)
    }

    /// Fragments of `l4` cut at the given byte boundaries (the last has MF=0).
    fn split(&self, l4: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(l4.len());
        bounds
            .windows(2)
            .map(|w| self.frag(w[0], w[1] != l4.len(), false, &l4[w[0]..w[1]]))
            .collect()
    }
}

/// IPv6 fragment: fixed header (next header 44 unless `ext` is given), optional
/// extension headers `ext` before the fragment header (their chain must end in 44),
/// fragment header for `upper` at byte `offset`, then `data`.
fn frag6_ext(
    (first_nh, ext): (u8, &[u8]),
    id: u32,
    offset: usize,
    mf: bool,
    upper: u8,
    tc: u8,
    data: &[u8],
) -> Vec<u8> {
    let plen = ext.len() + 8 + data.len();
    let mut p = vec![0x60 | (tc >> 4), (tc << 4), 0, 0];
    p.extend_from_slice(&(plen as u16).to_be_bytes());
    p.extend_from_slice(&[first_nh, 64]);
    p.extend_from_slice(&S6);
    p.extend_from_slice(&D6);
    p.extend_from_slice(ext);
    let off = (offset as u16) | u16::from(mf);
    p.extend_from_slice(&[upper, 0]);
    p.extend_from_slice(&off.to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(data);
    check_ipv6(&p).expect("valid test packet");
    p
}

fn frag6(id: u32, offset: usize, mf: bool, upper: u8, data: &[u8]) -> Vec<u8> {
    frag6_ext((44, &[]), id, offset, mf, upper, 0, data)
}

/// Unfragmented IPv6 packet (what reassembly must produce).
fn plain6(first_nh: u8, ext: &[u8], tc: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60 | (tc >> 4), (tc << 4), 0, 0];
    p.extend_from_slice(&((ext.len() + body.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[first_nh, 64]);
    p.extend_from_slice(&S6);
    p.extend_from_slice(&D6);
    p.extend_from_slice(ext);
    p.extend_from_slice(body);
    p
}

fn split6(id: u32, upper: u8, l4: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(l4.len());
    bounds
        .windows(2)
        .map(|w| frag6(id, w[0], w[1] != l4.len(), upper, &l4[w[0]..w[1]]))
        .collect()
}

/// Push `frags` in the order given; all but the last must be held; returns the
/// reassembled datagram.
fn reassemble_in(d: &mut Defrag, frags: &[&Vec<u8>], zone: u16) -> Vec<u8> {
    let s = sys();
    let (last, rest) = frags.split_last().expect("fragments");
    for f in rest {
        assert_eq!(d.push(t(0), f, zone, &s), DefragResult::Held);
    }
    match d.push(t(0), last, zone, &s) {
        DefragResult::Complete(b) => b.to_vec(),
        other => panic!("expected Complete, got {other:?}"),
    }
}

fn push(d: &mut Defrag, p: &[u8]) -> DefragResult<'static> {
    // Results without a borrow, for assertions.
    match d.push(t(0), p, 0, &sys()) {
        DefragResult::Complete(_) => DefragResult::Complete(&[]),
        DefragResult::NotFragment => DefragResult::NotFragment,
        DefragResult::Held => DefragResult::Held,
        DefragResult::Dropped(r) => DefragResult::Dropped(r),
        DefragResult::PassThrough => DefragResult::PassThrough,
    }
}

const COMPLETE: DefragResult<'static> = DefragResult::Complete(&[]);
const HELD: DefragResult<'static> = DefragResult::Held;

// ---------------------------------------------------------------- in/out of order

#[test]
fn ipv4_udp_in_order() {
    let h = H4::new(1, UDP);
    let l4 = udp(2400);
    let fr = h.split(&l4, &[1000, 2000]);
    let mut d = Defrag::new();
    let out = reassemble_in(&mut d, &[&fr[0], &fr[1], &fr[2]], 0);
    assert_eq!(out, h.packet(0, &l4));
    assert_eq!(out.len(), 2428);
    assert!(checksum::verify(&out[..20]));
    assert_eq!(d.max_frag_size(), 1020);
    assert_eq!(
        d.original_fragments(),
        &[
            FragmentPiece {
                offset: 0,
                len: 1000
            },
            FragmentPiece {
                offset: 1000,
                len: 1000
            },
            FragmentPiece {
                offset: 2000,
                len: 408
            },
        ]
    );
    assert_eq!(d.queued(), 0);
    assert_eq!(d.ipv4_mem(), 0);
    let st = d.stats();
    assert_eq!((st.ipv4_reasm_reqds, st.ipv4_reasm_oks), (3, 1));
}

#[test]
fn ipv4_tcp_out_of_order() {
    let h = H4::new(2, TCP);
    let l4 = tcp(1500);
    let fr = h.split(&l4, &[512, 1024]);
    let mut d = Defrag::new();
    let out = reassemble_in(&mut d, &[&fr[2], &fr[0], &fr[1]], 0);
    assert_eq!(out, h.packet(0, &l4));
    // Offset order whatever the arrival order.
    let offs: Vec<u32> = d.original_fragments().iter().map(|p| p.offset).collect();
    assert_eq!(offs, [0, 512, 1024]);
    // The next push forgets the layout.
    assert_eq!(push(&mut d, &h.packet(0, &l4)), DefragResult::NotFragment);
    assert_eq!(d.max_frag_size(), 0);
    assert!(d.original_fragments().is_empty());
}

#[test]
fn ipv6_udp_in_order() {
    let l4 = udp(2400);
    let fr = split6(7, UDP, &l4, &[1232, 2000]);
    let mut d = Defrag::new();
    let out = reassemble_in(&mut d, &[&fr[0], &fr[1], &fr[2]], 0);
    assert_eq!(out, plain6(UDP, &[], 0, &l4));
    assert_eq!(out.len(), 2448);
    assert_eq!(d.max_frag_size(), 40 + 8 + 1232);
    assert_eq!(d.queued(), 0);
    assert_eq!(d.ipv6_mem(), 0);
}

#[test]
fn ipv6_tcp_out_of_order() {
    let l4 = tcp(3000);
    let fr = split6(8, TCP, &l4, &[1000, 2000]);
    let mut d = Defrag::new();
    let out = reassemble_in(&mut d, &[&fr[1], &fr[2], &fr[0]], 0);
    assert_eq!(out, plain6(TCP, &[], 0, &l4));
}

#[test]
fn not_fragments() {
    let mut d = Defrag::new();
    let h = H4::new(3, UDP);
    assert_eq!(
        push(&mut d, &h.packet(0, &udp(10))),
        DefragResult::NotFragment
    );
    // DF alone is not a fragment.
    assert_eq!(
        push(&mut d, &h.packet(0x4000, &udp(10))),
        DefragResult::NotFragment
    );
    assert_eq!(
        push(&mut d, &plain6(UDP, &[], 0, &udp(10))),
        DefragResult::NotFragment
    );
    // Garbage is passed on for the IP checks / conntrack to judge.
    for g in [&[][..], &[0x45][..], &[0x60, 0, 0][..], &[0x12; 50][..]] {
        assert_eq!(push(&mut d, g), DefragResult::NotFragment);
    }
    assert_eq!(d.queued(), 0);
}

// ---------------------------------------------------------------- duplicates

#[test]
fn ipv4_duplicate_dropped_queue_kept() {
    let h = H4::new(4, UDP);
    let l4 = udp(200);
    let fr = h.split(&l4, &[104]);
    let mut d = Defrag::new();
    assert_eq!(push(&mut d, &fr[0]), HELD);
    assert_eq!(
        push(&mut d, &fr[0]),
        DefragResult::Dropped(DefragDrop::Duplicate)
    );
    assert_eq!(d.queued(), 1);
    assert_eq!(push(&mut d, &fr[1]), COMPLETE);
    // A late duplicate starts a new queue.
    assert_eq!(push(&mut d, &fr[1]), HELD);
    assert_eq!(d.queued(), 1);
}

#[test]
fn ipv6_duplicate_dropped_queue_kept() {
    let l4 = udp(200);
    let fr = split6(9, UDP, &l4, &[104]);
    let mut d = Defrag::new();
    assert_eq!(push(&mut d, &fr[1]), HELD);
    assert_eq!(
        push(&mut d, &fr[1]),
        DefragResult::Dropped(DefragDrop::Duplicate)
    );
    assert_eq!(push(&mut d, &fr[0]), COMPLETE);
}

// ---------------------------------------------------------------- contiguous runs

/// Three pieces [0,8) [8,16) [16,40) then a fragment spanning [0,16).
fn run_span_v4(order_first_two: [usize; 2]) -> (DefragResult<'static>, usize) {
    let h = H4::new(5, UDP);
    let l4 = udp(32);
    let fr = h.split(&l4, &[8, 16]);
    let span = h.frag(0, true, false, &l4[..16]);
    let mut d = Defrag::new();
    for i in order_first_two {
        assert_eq!(push(&mut d, &fr[i]), HELD);
    }
    let r = push(&mut d, &span);
    (r, d.queued())
}

#[test]
fn ipv4_span_over_in_order_run_is_duplicate() {
    assert_eq!(
        run_span_v4([0, 1]),
        (DefragResult::Dropped(DefragDrop::Duplicate), 1)
    );
}

#[test]
fn ipv4_span_over_reverse_order_pieces_is_overlap() {
    assert_eq!(
        run_span_v4([1, 0]),
        (DefragResult::Dropped(DefragDrop::Overlap), 0)
    );
}

#[test]
fn ipv6_span_over_runs() {
    let l4 = udp(32);
    let fr = split6(10, UDP, &l4, &[8, 16]);
    let span = frag6(10, 0, true, UDP, &l4[..16]);
    // In order: one run, the spanning fragment is a duplicate, the datagram completes.
    let mut d = Defrag::new();
    assert_eq!(push(&mut d, &fr[0]), HELD);
    assert_eq!(push(&mut d, &fr[1]), HELD);
    assert_eq!(
        push(&mut d, &span),
        DefragResult::Dropped(DefragDrop::Duplicate)
    );
    assert_eq!(push(&mut d, &fr[2]), COMPLETE);
    // Reverse order: two runs, the spanning fragment overlaps, the queue is gone.
    let mut d = Defrag::new();
    assert_eq!(push(&mut d, &fr[1]), HELD);
    assert_eq!(push(&mut d, &fr[0]), HELD);
    assert_eq!(
        push(&mut d, &span),
        DefragResult::Dropped(DefragDrop::Overlap)
    );
    assert_eq!(d.queued(), 0);
    // Later fragments start a new queue.
    assert_eq!(push(&mut d, &fr[2]), HELD);
    assert_eq!(d.queued(), 1);
}

#[test]
fn gap_filler_does_not_join_runs() {
    // [0,8) and [16,24) then [8,16) filling the gap: three separate runs, so a
    // fragment over [0,24) is an overlap even though all its bytes are queued.
    let h = H4::new(6, UDP);
    let l4 = udp(40);
    let fr = h.split(&l4, &[8, 16, 24]);
    let mut d = Defrag::new();
    assert_eq!(push(&mut d, &fr[0]), HELD);
    assert_eq!(push(&mut d, &fr[2]), HELD);
    assert_eq!(push(&mut d, &fr[1]), HELD);
    assert_eq!(
        push(&mut d, &h.frag(0, true, false, &l4[..24])),
        DefragResult::Dropped(DefragDrop::Overlap)
    );
}

#[test]
fn insert_run_model() {
    let mut runs = Vec::new();
    assert_eq!(insert_run(&mut runs, 16, 24), Insert::Ok);
    assert_eq!(insert_run(&mut runs, 24, 32), Insert::Ok); // appended
    assert_eq!(runs, [Run { start: 16, end: 32 }]);
    assert_eq!(insert_run(&mut runs, 40, 48), Insert::Ok); // new last run
    assert_eq!(insert_run(&mut runs, 0, 8), Insert::Ok); // gap, own run
    assert_eq!(insert_run(&mut runs, 8, 16), Insert::Ok); // gap, own run
    assert_eq!(runs.len(), 4);
    assert_eq!(insert_run(&mut runs, 16, 32), Insert::Dup);
    assert_eq!(insert_run(&mut runs, 20, 24), Insert::Dup);
    assert_eq!(insert_run(&mut runs, 4, 12), Insert::Overlap);
    assert_eq!(insert_run(&mut runs, 32, 44), Insert::Overlap);
    assert_eq!(insert_run(&mut runs, 44, 56), Insert::Overlap); // tail path
    assert_eq!(insert_run(&mut runs, 32, 40), Insert::Ok); // gap before the last run
    assert_eq!(insert_run(&mut runs, 48, 56), Insert::Ok);
    assert_eq!(runs.last(), Some(&Run { start: 40, end: 56 }));
}

// ---------------------------------------------------------------- partial overlap

#[test]
fn ipv4_partial_overlap_discards_queue() {
    let h = H4::new(11, UDP);
    let l4 = udp(64);
    let mut d = Defrag::new();
    assert_eq!(push(&mut d, &h.frag(0, true, false, &l4[..24])), HELD);
    assert_eq!(
        push(&mut d, &h.frag(16, true, false, &l4[16..40])),
        DefragResult::Dropped(DefragDrop::Overlap)
    );
    assert_eq!(d.queued(), 0);
    let st = *d.stats();
    assert_eq!((st.ipv4_reasm_overlaps, st.ipv4_reasm_fails), (1, 1));
    // The rest now starts a new queue and cannot complete without the head.
    assert_eq!(push(&mut d, &h.frag(24, false, false, &l4[24..])), HELD);
}

#[test]
fn ipv6_partial_overlap_discards_queue() {
    let l4 = udp(64);
    let mut d = Defrag::new();
    assert_eq!(push(&mut d, &frag6(12, 16, true, UDP, &l4[16..40])), HELD);
    assert_eq!(
        push(&mut d, &frag6(12, 0, true, UDP, &l4[..24])),
        DefragResult::Dropped(DefragDrop::Overlap)
    );
    assert_eq!(d.queued(), 0);
}

// ---------------------------------------------------------------- inconsistent last

#[test]
fn ipv4_last_before_queued_data_discards_queue() {
    let h = H4::new(13, UDP);
    let l4 = udp(64);
    let mut d = Defrag::new();
    assert_eq!(push(&mut d, &h.frag(32, true, false, &l4[32..64])), HELD);
    assert_eq!(
        push(&mut d, &h.frag(8, false, false, &l4[8..16])),
        DefragResult::Dropped(DefragDrop::InconsistentLast {
            queue_discarded: true
        })
    );
    assert_eq!(d.queued(), 0);
}

#[test]
fn ipv4_second_last_with_other_end_discards_queue() {
    let h = H4::new(14, UDP);
    let l4 = udp(64);
    let mut d = Defrag::new();
    assert_eq!(push(&mut d, &h.frag(48, false, false, &l4[48..72])), HELD);
    assert_eq!(
        push(&mut d, &h.frag(48, false, false, &pattern(32, 0))),
        DefragResult::Dropped(DefragDrop::InconsistentLast {
            queue_discarded: true
        })
    );
    assert_eq!(d.queued(), 0);
}

#[test]
fn ipv6_inconsistent_last_dropped_queue_kept() {
    let l4 = udp(64);
    let fr = split6(15, UDP, &l4, &[32]);
    let mut d = Defrag::new();
    assert_eq!(push(&mut d, &fr[1]), HELD); // last: [32,72)
                                            // A last fragment ending before queued data.
    assert_eq!(
        push(&mut d, &frag6(15, 8, false, UDP, &l4[8..16])),
        DefragResult::Dropped(DefragDrop::InconsistentLast {
            queue_discarded: false
        })
    );
    // A second last fragment with another end.
    assert_eq!(
        push(&mut d, &frag6(15, 32, false, UDP, &pattern(48, 0))),
        DefragResult::Dropped(DefragDrop::InconsistentLast {
            queue_discarded: false
        })
    );
    assert_eq!(d.queued(), 1);
    assert_eq!(push(&mut d, &fr[0]), COMPLETE);
}

// ---------------------------------------------------------------- not a multiple of 8

#[test]
fn ipv4_non_multiple_of_8_rounded_down() {
    let h = H4::new(16, UDP);
    let l4 = udp(40); // 48 bytes
    let mut d = Defrag::new();
    // First fragment carries 20 bytes with MF: kept as [0,16), 4 bytes dropped.
    assert_eq!(push(&mut d, &h.frag(0, true, false, &l4[..20])), HELD);
    let out = {
        let s = sys();
        match d.push(t(0), &h.frag(16, false, false, &l4[16..]), 0, &s) {
            DefragResult::Complete(b) => b.to_vec(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(out, h.packet(0, &l4));
    assert_eq!(d.original_fragments()[0].len, 16);
    assert_eq!(d.max_frag_size(), 20 + 32);
}

#[test]
fn ipv6_non_multiple_of_8_passed_on_and_queue_killed() {
    let l4 = udp(64);
    let mut d = Defrag::new();
    assert_eq!(push(&mut d, &frag6(17, 32, false, UDP, &l4[32..])), HELD);
    assert_eq!(d.queued(), 1);
    assert_eq!(
        push(&mut d, &frag6(17, 0, true, UDP, &l4[..20])),
        DefragResult::PassThrough
    );
    assert_eq!(d.queued(), 0);
    // Also with no queue yet: none is left behind.
    assert_eq!(
        push(&mut d, &frag6(18, 8, true, UDP, &l4[8..13])),
        DefragResult::PassThrough
    );
    assert_eq!(d.queued(), 0);
    assert_eq!(d.ipv6_mem(), 0);
}

// ---------------------------------------------------------------- empty fragments

#[test]
fn ipv4_empty_fragment_discards_queue() {
    let h = H4::new(19, UDP);
    let l4 = udp(64);
    let mut d = Defrag::new();
    assert_eq!(push(&mut d, &h.frag(0, true, false, &l4[..16])), HELD);
    assert_eq!(
        push(&mut d, &h.frag(16, false, false, &[])),
        DefragResult::Dropped(DefragDrop::Empty {
            queue_discarded: true
        })
    );
    assert_eq!(d.queued(), 0);
    // A non-last fragment with fewer than 8 bytes is empty after rounding down.
    assert_eq!(push(&mut d, &h.frag(0, true, false, &l4[..16])), HELD);
    assert_eq!(
        push(&mut d, &h.frag(16, true, false, &l4[16..21])),
        DefragResult::Dropped(DefragDrop::Empty {
            queue_discarded: true
        })
    );
    assert_eq!(d.queued(), 0);
}

#[test]
fn ipv6_empty_fragment_dropped_alone() {
    let l4 = udp(64);
    let fr = split6(20, UDP, &l4, &[32]);
    let mut d = Defrag::new();
    assert_eq!(push(&mut d, &fr[0]), HELD);
    assert_eq!(
        push(&mut d, &frag6(20, 16, true, UDP, &[])),
        DefragResult::Dropped(DefragDrop::Empty {
            queue_discarded: false
        })
    );
    assert_eq!(push(&mut d, &fr[1]), COMPLETE);
}

// ---------------------------------------------------------------- beyond the end

#[test]
fn ipv4_data_beyond_end_discards_queue() {
    let h = H4::new(21, UDP);
    let l4 = udp(64);
    let mut d = Defrag::new();
    assert_eq!(push(&mut d, &h.frag(32, false, false, &l4[32..])), HELD); // ends at 72
    assert_eq!(
        push(&mut d, &h.frag(64, true, false, &pattern(16, 9))),
        DefragResult::Dropped(DefragDrop::BeyondEnd {
            queue_discarded: true
        })
    );
    assert_eq!(d.queued(), 0);
}

#[test]
fn ipv6_data_beyond_end_dropped_alone() {
    let l4 = udp(64);
    let fr = split6(22, UDP, &l4, &[32]);
    let mut d = Defrag::new();
    assert_eq!(push(&mut d, &fr[1]), HELD);
    assert_eq!(
        push(&mut d, &frag6(22, 64, true, UDP, &pattern(16, 9))),
        DefragResult::Dropped(DefragDrop::BeyondEnd {
            queue_discarded: false
        })
    );
    assert_eq!(push(&mut d, &fr[0]), COMPLETE);
}

// ---------------------------------------------------------------- end > 65535

#[test]
fn ipv4_oversize_fails_at_completion() {
    let h = H4::new(23, UDP);
    let mut d = Defrag::new();
    // 65504 + 32 = 65536 data bytes: each fragment is fine, the datagram is not.
    assert_eq!(
        push(&mut d, &h.frag(0, true, false, &pattern(65504, 0))),
        HELD
    );
    assert_eq!(
        push(&mut d, &h.frag(65504, false, false, &pattern(32, 0))),
        DefragResult::Dropped(DefragDrop::Oversize)
    );
    assert_eq!(d.queued(), 0);
    assert_eq!(d.stats().ipv4_reasm_fails, 1);
    // The largest offset with the largest fragment: no overflow, just held.
    assert_eq!(
        push(&mut d, &h.frag(8191 * 8, false, false, &pattern(65000, 0))),
        HELD
    );
}

#[test]
fn ipv6_end_beyond_65535_dropped_at_once() {
    let mut d = Defrag::new();
    let l4 = udp(64);
    assert_eq!(push(&mut d, &frag6(24, 0, true, UDP, &l4[..32])), HELD);
    assert_eq!(
        push(&mut d, &frag6(24, 65528, false, UDP, &pattern(16, 0))),
        DefragResult::Dropped(DefragDrop::OffsetTooLarge)
    );
    assert_eq!(d.queued(), 1);
    // The queue survives and still completes.
    assert_eq!(
        push(&mut d, &frag6(24, 32, false, UDP, &l4[32..])),
        COMPLETE
    );
}

#[test]
fn ipv6_payload_over_65535_with_ext_headers_fails_at_completion() {
    // Destination options (8 bytes) before the fragment header: payload length =
    // 8 + 65528 > 65535.
    let ext = [44, 0, 1, 4, 0, 0, 0, 0];
    let mut d = Defrag::new();
    let s = sys();
    let a = frag6_ext((60, &ext), 25, 0, true, UDP, 0, &pattern(65000, 0));
    let b = frag6_ext((60, &ext), 25, 65000, false, UDP, 0, &pattern(528, 0));
    assert_eq!(d.push(t(0), &a, 0, &s), DefragResult::Held);
    assert_eq!(
        d.push(t(0), &b, 0, &s),
        DefragResult::Dropped(DefragDrop::Oversize)
    );
}

// ---------------------------------------------------------------- short first fragment

#[test]
fn ipv6_first_fragment_without_upper_header_passed_on() {
    let l4 = tcp(40);
    let mut d = Defrag::new();
    // 16 bytes of a 20-byte TCP header.
    assert_eq!(
        push(&mut d, &frag6(26, 0, true, TCP, &l4[..16])),
        DefragResult::PassThrough
    );
    assert_eq!(d.queued(), 0);
    // The rest is queued but can never complete.
    assert_eq!(push(&mut d, &frag6(26, 16, false, TCP, &l4[16..])), HELD);
    assert_eq!(d.queued(), 1);
    // UDP needs 8 bytes: an 8-byte first piece is enough.
    let u = udp(32);
    assert_eq!(push(&mut d, &frag6(27, 0, true, UDP, &u[..8])), HELD);
    assert_eq!(push(&mut d, &frag6(27, 8, false, UDP, &u[8..])), COMPLETE);
    // Other protocols need 1 byte; an empty first fragment of one is truncated.
    assert_eq!(
        push(&mut d, &frag6(28, 0, true, 47, &[])),
        DefragResult::PassThrough
    );
}

#[test]
fn ipv4_eight_byte_first_piece_of_tcp_reassembles() {
    let h = H4::new(29, TCP);
    let l4 = tcp(0);
    let fr = h.split(&l4, &[8]);
    let mut d = Defrag::new();
    let out = reassemble_in(&mut d, &[&fr[0], &fr[1]], 0);
    assert_eq!(out, h.packet(0, &l4));
}

// ---------------------------------------------------------------- atomic fragments

#[test]
fn ipv6_atomic_fragment_reassembled_at_once() {
    let l4 = udp(100);
    let mut d = Defrag::new();
    let s = sys();
    let f = frag6(30, 0, false, UDP, &l4);
    match d.push(t(0), &f, 0, &s) {
        DefragResult::Complete(b) => assert_eq!(b, &plain6(UDP, &[], 0, &l4)[..]),
        other => panic!("{other:?}"),
    }
    assert_eq!(d.queued(), 0);
    assert_eq!(d.max_frag_size(), f.len());
}

#[test]
fn ipv6_extension_headers_before_fragment_header() {
    // Hop-by-hop (PadN) → fragment header → TCP.
    let hbh = [44, 0, 1, 4, 0, 0, 0, 0];
    let l4 = tcp(100);
    let mut d = Defrag::new();
    let s = sys();
    let a = frag6_ext((0, &hbh), 31, 0, true, TCP, 0, &l4[..64]);
    let b = frag6_ext((0, &hbh), 31, 64, false, TCP, 0, &l4[64..]);
    assert_eq!(d.push(t(0), &b, 0, &s), DefragResult::Held);
    let out = match d.push(t(0), &a, 0, &s) {
        DefragResult::Complete(x) => x.to_vec(),
        other => panic!("{other:?}"),
    };
    let mut hbh_out = hbh;
    hbh_out[0] = TCP;
    assert_eq!(out, plain6(0, &hbh_out, 0, &l4));
    assert!(check_ipv6(&out).is_ok());
}

#[test]
fn ipv6_next_header_offset_kept_modulo_256() {
    // Kernel quirk: find_prev_fhdr keeps the next-header offset in a u8. With a
    // 264-byte hop-by-hop header, the destination-options header naming the fragment
    // header sits at 304; the reassembly writes the upper protocol at 304 % 256 = 48
    // (inside the hop-by-hop options) and leaves 44 at 304.
    let mut ext = vec![0u8; 264 + 8];
    ext[0] = 60; // HBH → DST
    ext[1] = 32; // (32 + 1) * 8 = 264
    ext[2] = 0x3e; // an option to skip ...
    ext[3] = 254; // ... filling the header with 2 + 254 bytes
    ext[258] = 1; // PadN
    ext[259] = 4;
    ext[264] = 44; // DST → FRAG
    ext[266] = 1; // PadN
    ext[267] = 4;
    let l4 = udp(24);
    let mut d = Defrag::new();
    let s = sys();
    let f = frag6_ext((0, &ext), 32, 0, false, UDP, 0, &l4);
    let out = match d.push(t(0), &f, 0, &s) {
        DefragResult::Complete(x) => x.to_vec(),
        other => panic!("{other:?}"),
    };
    assert_eq!(out.len(), f.len() - 8);
    assert_eq!(out[304], 44);
    assert_eq!(out[48], UDP);
}

#[test]
fn ipv6_truncated_fragment_header_dropped() {
    let mut p = frag6(33, 8, false, UDP, &[]);
    // Keep only 6 bytes of the fragment header: id cut, payload length 6.
    p.truncate(46);
    p[4..6].copy_from_slice(&6u16.to_be_bytes());
    let mut d = Defrag::new();
    assert_eq!(
        push(&mut d, &p),
        DefragResult::Dropped(DefragDrop::TruncatedHeader)
    );
    assert_eq!(d.queued(), 0);
}

// ---------------------------------------------------------------- lifetime

#[test]
fn ipv4_queue_lifetime_and_fresh_queue() {
    let h = H4::new(34, UDP);
    let l4 = udp(64);
    let fr = h.split(&l4, &[32]);
    let mut s = sys();
    s.set("ipfrag_time", "1").unwrap();
    let mut d = Defrag::new();
    assert_eq!(d.push(t(100), &fr[0], 0, &s), DefragResult::Held);
    // Later fragments do not extend the lifetime.
    assert_eq!(
        d.push(t(100) + Duration::from_millis(900), &fr[0], 0, &s),
        DefragResult::Dropped(DefragDrop::Duplicate)
    );
    // At the deadline the queue is gone; the last piece starts a fresh queue.
    assert_eq!(d.push(t(101), &fr[1], 0, &s), DefragResult::Held);
    assert_eq!(d.queued(), 1);
    assert_eq!(d.stats().ipv4_reasm_timeout, 1);
    // Resending the missing piece completes from the new queue.
    assert!(matches!(
        d.push(t(101), &fr[0], 0, &s),
        DefragResult::Complete(_)
    ));
    // expire() on its own.
    assert_eq!(d.push(t(200), &fr[0], 0, &s), DefragResult::Held);
    d.expire(t(200) + Duration::from_millis(999), &s);
    assert_eq!(d.queued(), 1);
    d.expire(t(201), &s);
    assert_eq!(d.queued(), 0);
    assert_eq!(d.ipv4_mem(), 0);
    let st = d.stats();
    assert_eq!((st.ipv4_reasm_timeout, st.ipv4_reasm_fails), (2, 2));
}

#[test]
fn ipv6_queue_lifetime_and_fresh_queue() {
    let l4 = udp(64);
    let fr = split6(35, UDP, &l4, &[32]);
    let mut d = Defrag::new();
    let mut s = sys();
    // Default 60 s, separate from IPv4's 30 s.
    assert_eq!(d.push(t(0), &fr[0], 0, &s), DefragResult::Held);
    assert_eq!(
        d.push(t(59), &fr[0], 0, &s),
        DefragResult::Dropped(DefragDrop::Duplicate)
    );
    assert_eq!(d.push(t(60), &fr[1], 0, &s), DefragResult::Held);
    assert_eq!(d.stats().ipv6_reasm_timeout, 1);
    s.set("nf_conntrack_frag6_timeout", "1").unwrap();
    // The lifetime was fixed at creation (60 s): still there at 61.
    assert!(matches!(
        d.push(t(61), &fr[0], 0, &s),
        DefragResult::Complete(_)
    ));
    assert_eq!(d.push(t(70), &fr[0], 0, &s), DefragResult::Held);
    assert_eq!(d.push(t(71), &fr[1], 0, &s), DefragResult::Held);
    assert_eq!(d.queued(), 1);
}

// ---------------------------------------------------------------- zones

#[test]
fn zones_reassemble_separately() {
    let h = H4::new(36, UDP);
    let l4 = udp(64);
    let fr = h.split(&l4, &[32]);
    let f6 = split6(36, UDP, &l4, &[32]);
    let mut d = Defrag::new();
    let s = sys();
    assert_eq!(d.push(t(0), &fr[0], 0, &s), DefragResult::Held);
    assert_eq!(d.push(t(0), &fr[1], 1, &s), DefragResult::Held);
    assert_eq!(d.push(t(0), &f6[0], 0, &s), DefragResult::Held);
    assert_eq!(d.push(t(0), &f6[1], 1, &s), DefragResult::Held);
    assert_eq!(d.queued(), 4);
    assert!(matches!(
        d.push(t(0), &fr[1], 0, &s),
        DefragResult::Complete(_)
    ));
    assert!(matches!(
        d.push(t(0), &f6[0], 1, &s),
        DefragResult::Complete(_)
    ));
    assert_eq!(d.queued(), 2);
}

#[test]
fn ipv4_key_includes_protocol() {
    let l4 = udp(64);
    let a = H4::new(37, UDP).split(&l4, &[32]);
    let b = H4::new(37, TCP).split(&l4, &[32]);
    let mut d = Defrag::new();
    assert_eq!(push(&mut d, &a[0]), HELD);
    assert_eq!(push(&mut d, &b[1]), HELD);
    assert_eq!(d.queued(), 2);
}

// ---------------------------------------------------------------- ipfrag_max_dist

#[test]
fn ipv4_max_dist_restarts_queue() {
    let mut s = sys();
    s.set("ipfrag_max_dist", "3").unwrap();
    let a = H4::new(38, UDP);
    let l4 = udp(64);
    let fa = a.split(&l4, &[32]);
    let mut d = Defrag::new();
    assert_eq!(d.push(t(0), &fa[0], 0, &s), DefragResult::Held);
    // Three fragments of other datagrams from the same source: distance 4 > 3 at A's
    // next fragment.
    for id in 100..103 {
        let o = H4::new(id, UDP).frag(0, true, false, &l4[..32]);
        assert_eq!(d.push(t(1), &o, 0, &s), DefragResult::Held);
    }
    // Restart: A's first piece is flushed, the last piece is all the queue holds, and
    // the queue lives ipfrag_time from now.
    assert_eq!(d.push(t(10), &fa[1], 0, &s), DefragResult::Held);
    assert_eq!(d.stats().ipv4_reasm_fails, 1);
    assert_eq!(d.queued(), 4);
    assert!(matches!(
        d.push(t(35), &fa[0], 0, &s),
        DefragResult::Complete(_)
    ));
    // Other sources do not count.
    let mut d = Defrag::new();
    assert_eq!(d.push(t(0), &fa[0], 0, &s), DefragResult::Held);
    for id in 100..110 {
        let mut o = H4::new(id, UDP);
        o.src = [10, 9, 9, 9];
        assert_eq!(
            d.push(t(0), &o.frag(0, true, false, &l4[..32]), 0, &s),
            DefragResult::Held
        );
    }
    assert!(matches!(
        d.push(t(0), &fa[1], 0, &s),
        DefragResult::Complete(_)
    ));
}

#[test]
fn ipv4_max_dist_within_limit_and_off() {
    let l4 = udp(64);
    let fa = H4::new(39, UDP).split(&l4, &[32]);
    for (dist, others) in [(3u32, 2u16), (0, 200)] {
        let mut s = sys();
        s.set("ipfrag_max_dist", &dist.to_string()).unwrap();
        let mut d = Defrag::new();
        assert_eq!(d.push(t(0), &fa[0], 0, &s), DefragResult::Held);
        for id in 0..others {
            let o = H4::new(1000 + id, UDP).frag(0, true, false, &l4[..32]);
            assert_eq!(d.push(t(0), &o, 0, &s), DefragResult::Held);
        }
        assert!(matches!(
            d.push(t(0), &fa[1], 0, &s),
            DefragResult::Complete(_)
        ));
        assert_eq!(d.stats().ipv4_reasm_fails, 0);
    }
}

// ---------------------------------------------------------------- memory limit

#[test]
fn memory_limit_drops_every_fragment() {
    let l4 = udp(64);
    let fa = H4::new(40, UDP).split(&l4, &[32]);
    let f6 = split6(40, UDP, &l4, &[32]);
    let mut s = sys();
    s.set("ipfrag_high_thresh", "1").unwrap();
    s.set("nf_conntrack_frag6_high_thresh", "1").unwrap();
    let mut d = Defrag::new();
    // Below the limit before the first fragment; above it afterwards, so even the
    // fragment completing the existing queue is refused.
    assert_eq!(d.push(t(0), &fa[0], 0, &s), DefragResult::Held);
    assert_eq!(
        d.push(t(0), &fa[1], 0, &s),
        DefragResult::Dropped(DefragDrop::MemoryLimit)
    );
    assert_eq!(d.ipv4_mem(), IPV4_QUEUE_SIZE + approx_truesize(fa[0].len()));
    assert_eq!(d.stats().ipv4_reasm_fails, 1);
    // IPv6 has its own counter.
    assert_eq!(d.push(t(0), &f6[0], 0, &s), DefragResult::Held);
    assert_eq!(
        d.push(t(0), &f6[1], 0, &s),
        DefragResult::Dropped(DefragDrop::MemoryLimit)
    );
    // A threshold of 0 refuses everything.
    s.set("ipfrag_high_thresh", "0").unwrap();
    let mut d = Defrag::new();
    assert_eq!(
        d.push(t(0), &fa[0], 0, &s),
        DefragResult::Dropped(DefragDrop::MemoryLimit)
    );
    assert_eq!(d.queued(), 0);
}

#[test]
fn truesize_model() {
    assert_eq!(approx_truesize(1500), 2304);
    assert_eq!(approx_truesize(100), 768);
    assert!(approx_truesize(65535) >= 65535);
}

// ---------------------------------------------------------------- ECN, DF, header

#[test]
fn ecn_rules() {
    let l4 = udp(64);
    let mut h = H4::new(41, UDP);
    let mut d = Defrag::new();
    // Not-ECT mixed with CE: the datagram fails.
    h.tos = 0;
    assert_eq!(push(&mut d, &h.frag(0, true, false, &l4[..32])), HELD);
    h.tos = 3;
    assert_eq!(
        push(&mut d, &h.frag(32, false, false, &l4[32..])),
        DefragResult::Dropped(DefragDrop::EcnMismatch)
    );
    assert_eq!(d.queued(), 0);
    // ECT(0) head + CE: the result carries CE.
    h.tos = 0x02;
    let a = h.frag(0, true, false, &l4[..32]);
    h.tos = 0x03;
    let b = h.frag(32, false, false, &l4[32..]);
    let out = reassemble_in(&mut d, &[&a, &b], 0);
    assert_eq!(out[1], 0x03);
    assert!(checksum::verify(&out[..20]));
    // IPv6 likewise.
    let a6 = frag6_ext((44, &[]), 42, 0, true, UDP, 0x00, &l4[..32]);
    let b6 = frag6_ext((44, &[]), 42, 32, false, UDP, 0x03, &l4[32..]);
    assert_eq!(push(&mut d, &a6), HELD);
    assert_eq!(
        push(&mut d, &b6),
        DefragResult::Dropped(DefragDrop::EcnMismatch)
    );
    let a6 = frag6_ext((44, &[]), 43, 0, true, UDP, 0xb9, &l4[..32]);
    let b6 = frag6_ext((44, &[]), 43, 32, false, UDP, 0x03, &l4[32..]);
    let out = reassemble_in(&mut d, &[&a6, &b6], 0);
    assert_eq!(out, plain6(UDP, &[], 0xbb, &l4));
}

#[test]
fn ipv4_df_only_if_largest_fragment_had_df() {
    let h = H4::new(44, UDP);
    let l4 = udp(64); // 72 bytes
    let mut d = Defrag::new();
    // Largest fragment (48 bytes of data) has DF.
    let a = h.frag(0, true, true, &l4[..48]);
    let b = h.frag(48, false, false, &l4[48..]);
    let out = reassemble_in(&mut d, &[&a, &b], 0);
    assert_eq!(u16::from_be_bytes([out[6], out[7]]), 0x4000);
    assert_eq!(d.max_frag_size(), 68);
    // Largest fragment without DF, a smaller one with DF.
    let a = h.frag(0, true, false, &l4[..48]);
    let b = h.frag(48, false, true, &l4[48..]);
    let out = reassemble_in(&mut d, &[&a, &b], 0);
    assert_eq!(u16::from_be_bytes([out[6], out[7]]), 0);
    assert!(checksum::verify(&out[..20]));
    assert_eq!(d.max_frag_size(), 68);
}

#[test]
fn ipv4_header_of_offset_zero_fragment() {
    let mut h = H4::new(45, UDP);
    let l4 = udp(64);
    // The head carries options (NOP x3 + EOL); the later fragment has none and
    // another TTL.
    h.opts = vec![1, 1, 1, 0];
    let a = h.frag(0, true, false, &l4[..32]);
    let mut h2 = h.clone();
    h2.opts.clear();
    let mut b = h2.frag(32, false, false, &l4[32..]);
    b[8] = 9;
    b[10] = 0;
    b[11] = 0;
    let c = checksum::compute(0, &b[..20]);
    b[10..12].copy_from_slice(&c.to_be_bytes());
    let mut d = Defrag::new();
    let out = reassemble_in(&mut d, &[&b, &a], 0);
    assert_eq!(out, h.packet(0, &l4));
    assert_eq!(out.len(), 24 + 72);
    assert_eq!(d.max_frag_size(), 20 + 40);
}

#[test]
fn hostile_offsets_do_not_panic() {
    let mut d = Defrag::new();
    let s = sys();
    let h = H4::new(46, UDP);
    for off in [0usize, 8, 65528, 8191 * 8] {
        for len in [0usize, 1, 7, 8, 9, 1000] {
            for mf in [false, true] {
                let _ = d.push(t(0), &h.frag(off, mf, false, &pattern(len, 0)), 0, &s);
                if off <= 65528 {
                    let _ = d.push(t(0), &frag6(46, off, mf, UDP, &pattern(len, 0)), 0, &s);
                }
            }
        }
    }
    // Bad IHL and a fragment header running past the packet.
    let mut p = h.frag(8, true, false, &pattern(16, 0));
    p[0] = 0x4f;
    assert_eq!(d.push(t(0), &p, 0, &s), DefragResult::NotFragment);
    let mut q = frag6(47, 8, true, UDP, &pattern(16, 0));
    q[6] = 0; // hop-by-hop whose length runs past the packet
    q[41] = 200;
    assert_eq!(d.push(t(0), &q, 0, &s), DefragResult::NotFragment);
}

#[test]
fn drop_reasons_display() {
    assert_eq!(
        DefragDrop::Overlap.to_string(),
        "defrag: overlapping fragment (queue discarded)"
    );
    assert_eq!(
        DefragDrop::InconsistentLast {
            queue_discarded: false
        }
        .to_string(),
        "defrag: inconsistent last fragment"
    );
    assert!(!DefragDrop::Duplicate.queue_discarded());
    assert!(DefragDrop::Empty {
        queue_discarded: true
    }
    .queue_discarded());
}

#[test]
fn buffers_are_reused() {
    let h = H4::new(48, UDP);
    let l4 = udp(1400);
    let fr = h.split(&l4, &[704]);
    let mut d = Defrag::new();
    let s = sys();
    let mut ptr = None;
    for _ in 0..3 {
        assert_eq!(d.push(t(0), &fr[0], 0, &s), DefragResult::Held);
        match d.push(t(0), &fr[1], 0, &s) {
            DefragResult::Complete(b) => {
                let p = b.as_ptr();
                if let Some(old) = ptr {
                    assert_eq!(old, p);
                }
                ptr = Some(p);
            }
            other => panic!("{other:?}"),
        }
    }
}
