use super::*;

/// A plain RFC 1071 sum over `parts`, independent of the crate's checksum code.
fn rfc1071(parts: &[&[u8]]) -> u16 {
    let mut bytes = Vec::new();
    for p in parts {
        bytes.extend_from_slice(p);
    }
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    let mut sum: u32 = 0;
    for w in bytes.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

const SRC: [u8; 4] = [10, 2, 0, 254];
const DST: [u8; 4] = [10, 2, 0, 1];

fn pseudo(len: usize) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&SRC);
    p.extend_from_slice(&DST);
    p.extend_from_slice(&[0, 6]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p
}

/// A TCP segment (header with `opts`, then `data`) with a valid checksum.
fn segment(seq: u32, ack: Option<u32>, opts: &[u8], data: &[u8]) -> Vec<u8> {
    let hl = 20 + opts.len();
    assert_eq!(hl % 4, 0);
    let mut s = vec![0u8; hl];
    s[0..2].copy_from_slice(&40000u16.to_be_bytes());
    s[2..4].copy_from_slice(&21u16.to_be_bytes());
    s[4..8].copy_from_slice(&seq.to_be_bytes());
    if let Some(a) = ack {
        s[8..12].copy_from_slice(&a.to_be_bytes());
        s[13] = 0x18;
    } else {
        s[13] = 0x08;
    }
    s[12] = ((hl / 4) as u8) << 4;
    s[14..16].copy_from_slice(&502u16.to_be_bytes());
    s[20..].copy_from_slice(opts);
    s.extend_from_slice(data);
    let c = !rfc1071(&[&pseudo(s.len()), &s]);
    s[16..18].copy_from_slice(&c.to_be_bytes());
    s
}

fn checksum_ok(s: &[u8]) -> bool {
    rfc1071(&[&pseudo(s.len()), s]) == 0xffff
}

fn seq_of(s: &[u8]) -> u32 {
    u32::from_be_bytes([s[4], s[5], s[6], s[7]])
}

fn ack_of(s: &[u8]) -> u32 {
    u32::from_be_bytes([s[8], s[9], s[10], s[11]])
}

#[test]
fn seqadj_set_moves_the_correction_position_only_forward() {
    let mut a = SeqAdj::default();
    assert!(
        !a.set(Dir::Original, 1000, 0),
        "no change, nothing recorded"
    );
    assert_eq!(a, SeqAdj::default());
    assert!(a.set(Dir::Original, 1000, 2));
    let o = a.dirs[0];
    assert_eq!(
        (o.correction_pos, o.offset_before, o.offset_after),
        (1000, 0, 2)
    );
    // A retransmission of the rewritten segment: before/equal the position, no change.
    assert!(a.set(Dir::Original, 1000, 2));
    assert_eq!(a.dirs[0], o);
    assert!(a.set(Dir::Original, 900, -3));
    assert_eq!(a.dirs[0], o);
    // A later rewrite.
    assert!(a.set(Dir::Original, 1100, -5));
    let o = a.dirs[0];
    assert_eq!(
        (o.correction_pos, o.offset_before, o.offset_after),
        (1100, 2, -3)
    );
    assert_eq!(a.offset(Dir::Original, 1100), 2, "at the position: before");
    assert_eq!(a.offset(Dir::Original, 1101), -3);
    assert_eq!(a.offset(Dir::Original, 1050), 2);
    assert_eq!(
        a.dirs[1],
        SeqAdjDir::default(),
        "the other direction is untouched"
    );
}

#[test]
fn seqadj_wraps_around_the_sequence_space() {
    let mut a = SeqAdj::default();
    a.set(Dir::Reply, u32::MAX - 10, 4);
    assert_eq!(
        a.offset(Dir::Reply, 5),
        4,
        "after the position across the wrap"
    );
    assert_eq!(a.offset(Dir::Reply, u32::MAX - 20), 0);
    let mut s = segment(u32::MAX - 2, None, &[], b"data");
    assert!(a.adjust(&mut s, Dir::Reply));
    assert_eq!(seq_of(&s), 1, "u32::MAX - 2 + 4 wraps to 1");
    assert!(checksum_ok(&s));
}

/// A byte stream cut in segments, some of which a helper rewrites with a length
/// change: after adjustment every segment starts where the previous one ended in the
/// receiver's stream, and the receiver's acks map back onto the sender's numbers.
#[test]
fn seqadj_keeps_both_byte_streams_consistent_across_rewrites() {
    let isn = 0xfff0_0000u32;
    // (original length, length change by the rewrite)
    let plan: [(u32, i32); 8] = [
        (16, 0),
        (22, 2),
        (12, 0),
        (30, -2),
        (8, 0),
        (40, 26),
        (5, 0),
        (22, 2),
    ];
    let mut a = SeqAdj::default();
    let mut seq = isn;
    let mut out_next = isn; // next sequence number in the receiver's stream
    for (len, delta) in plan {
        // The helper rewrites at the confirm hook, then the segment is adjusted.
        a.set(Dir::Original, seq, delta);
        let new_len = (len as i32 + delta) as usize;
        let mut s = segment(seq, Some(7), &[], &vec![b'x'; new_len]);
        assert!(a.adjust(&mut s, Dir::Original));
        assert_eq!(seq_of(&s), out_next, "segment at sender seq {seq}");
        assert!(checksum_ok(&s));
        out_next = out_next.wrapping_add(new_len as u32);
        seq = seq.wrapping_add(len);
        // The receiver acks everything it got: the sender must see its own numbers.
        let mut r = segment(7, Some(out_next), &[], &[]);
        assert!(a.adjust(&mut r, Dir::Reply));
        assert_eq!(ack_of(&r), seq, "ack of everything up to sender seq {seq}");
        assert!(checksum_ok(&r));
        // tcp_in_window's view: the same correction, from `ack - 1`.
        let off = a.offset(Dir::Original, out_next.wrapping_sub(1));
        assert_eq!(out_next.wrapping_sub(off as u32), seq);
    }
}

#[test]
fn seqadj_adjusts_sack_blocks_and_keeps_the_checksum() {
    let mut a = SeqAdj::default();
    a.set(Dir::Original, 1000, 3);
    // NOP, NOP, SACK with two blocks: one before the rewrite, one after.
    let mut opts = vec![1, 1, 5, 18];
    for v in [900u32, 950, 1030, 1100] {
        opts.extend_from_slice(&v.to_be_bytes());
    }
    let mut s = segment(5000, Some(1020), &opts, &[]);
    assert!(a.adjust(&mut s, Dir::Reply));
    assert_eq!(seq_of(&s), 5000, "no offset in the reply direction");
    assert_eq!(ack_of(&s), 1017);
    let edge = |i: usize| {
        let o = 20 + 4 + 4 * i;
        u32::from_be_bytes([s[o], s[o + 1], s[o + 2], s[o + 3]])
    };
    assert_eq!([edge(0), edge(1), edge(2), edge(3)], [900, 950, 1027, 1097]);
    assert!(checksum_ok(&s));
}

#[test]
fn seqadj_without_ack_leaves_the_ack_field_alone() {
    let mut a = SeqAdj::default();
    a.set(Dir::Reply, 10, 5);
    a.set(Dir::Original, 10, 5);
    let mut s = segment(20, None, &[], b"x");
    s[8..12].copy_from_slice(&99u32.to_be_bytes());
    let c = !rfc1071(&[&pseudo(s.len()), &{
        let mut t = s.clone();
        t[16..18].copy_from_slice(&[0, 0]);
        t
    }]);
    s[16..18].copy_from_slice(&c.to_be_bytes());
    assert!(a.adjust(&mut s, Dir::Original));
    assert_eq!((seq_of(&s), ack_of(&s)), (25, 99));
    assert!(checksum_ok(&s));
}

#[test]
fn seqadj_refuses_malformed_options_and_short_headers() {
    let mut a = SeqAdj::default();
    a.set(Dir::Original, 10, 5);
    // An option whose length runs past the header.
    let mut s = segment(20, Some(30), &[8, 12, 0, 0], &[]);
    assert!(!a.adjust(&mut s, Dir::Reply));
    // A zero-length option.
    let mut s = segment(20, Some(30), &[8, 0, 0, 0], &[]);
    assert!(!a.adjust(&mut s, Dir::Reply));
    // End of options stops the walk: what follows is not read.
    let mut s = segment(20, Some(30), &[0, 8, 0, 0], &[]);
    assert!(a.adjust(&mut s, Dir::Reply));
    assert!(!a.adjust(&mut [0u8; 19], Dir::Original));
}
