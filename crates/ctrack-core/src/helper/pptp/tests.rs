//! The PPTP message parser and state machine (kernel `conntrack_pptp_help`,
//! `pptp_outbound_pkt`, `pptp_inbound_pkt`).

use super::*;

fn message(kind: u16, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&((12 + body.len()) as u16).to_be_bytes());
    m.extend_from_slice(&PACKET_CONTROL.to_be_bytes());
    m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    m.extend_from_slice(&kind.to_be_bytes());
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(body);
    m
}

/// A body of the message's full size with the given leading bytes.
fn body(kind: u16, head: &[u8]) -> Vec<u8> {
    let mut b = head.to_vec();
    b.resize(MSG_SIZE[usize::from(kind)].max(head.len()), 0);
    b
}

fn ocrp(cid: u16, pcid: u16, result: u8) -> Vec<u8> {
    let mut h = cid.to_be_bytes().to_vec();
    h.extend_from_slice(&pcid.to_be_bytes());
    h.push(result);
    message(msg::OUT_CALL_REPLY, &body(msg::OUT_CALL_REPLY, &h))
}

fn with_id(kind: u16, id: u16) -> Vec<u8> {
    message(kind, &body(kind, &id.to_be_bytes()))
}

fn feed(d: &mut PptpData, dir: Dir, bytes: &[u8]) -> Option<PptpAction> {
    let m = parse(bytes)?;
    match dir {
        Dir::Original => d.outbound(&m),
        Dir::Reply => d.inbound(&m),
    }
}

fn confirmed() -> PptpData {
    let mut d = PptpData::default();
    feed(&mut d, Dir::Original, &message(1, &body(1, &[])));
    assert_eq!(d.sstate, SessionState::Requested);
    feed(&mut d, Dir::Reply, &message(2, &body(2, &[1, 0, 1])));
    assert_eq!(d.sstate, SessionState::Confirmed);
    d
}

#[test]
fn pptp_outgoing_call_expects_gre_with_both_call_ids() {
    let mut d = confirmed();
    assert_eq!(
        feed(
            &mut d,
            Dir::Original,
            &with_id(msg::OUT_CALL_REQUEST, 0x4001)
        ),
        None
    );
    assert_eq!((d.cstate, d.pns_call_id), (CallState::OutReq, 0x4001));
    // A reply for another peer call ID is invalid: nothing changes.
    assert_eq!(feed(&mut d, Dir::Reply, &ocrp(0x8002, 0x9999, 1)), None);
    assert_eq!((d.cstate, d.pac_call_id), (CallState::OutReq, 0));
    assert_eq!(
        feed(&mut d, Dir::Reply, &ocrp(0x8002, 0x4001, 1)),
        Some(PptpAction::ExpectGre {
            callid: 0x8002,
            peer_callid: 0x4001
        })
    );
    assert_eq!((d.cstate, d.pac_call_id), (CallState::OutConf, 0x8002));
    // A retransmission asks again (the glue replaces the expectations).
    assert!(feed(&mut d, Dir::Reply, &ocrp(0x8002, 0x4001, 1)).is_some());
    assert_eq!(
        feed(
            &mut d,
            Dir::Reply,
            &with_id(msg::CALL_DISCONNECT_NOTIFY, 0x8002)
        ),
        Some(PptpAction::DestroySiblings)
    );
    assert_eq!(d.cstate, CallState::None);
}

#[test]
fn pptp_out_call_reply_refused_or_out_of_state_expects_nothing() {
    let mut d = confirmed();
    feed(&mut d, Dir::Original, &with_id(msg::OUT_CALL_REQUEST, 7));
    assert_eq!(feed(&mut d, Dir::Reply, &ocrp(9, 7, 4)), None, "busy");
    assert_eq!(d.cstate, CallState::None);
    assert_eq!(feed(&mut d, Dir::Reply, &ocrp(9, 7, 1)), None, "no request");
    // Before the session is confirmed, a request is invalid.
    let mut d = PptpData::default();
    feed(&mut d, Dir::Original, &with_id(msg::OUT_CALL_REQUEST, 7));
    assert_eq!(d.cstate, CallState::None);
    // A refused session.
    let mut d = PptpData::default();
    feed(&mut d, Dir::Original, &message(1, &body(1, &[])));
    feed(&mut d, Dir::Reply, &message(2, &body(2, &[1, 0, 2])));
    assert_eq!(d.sstate, SessionState::Error);
    // The PAC's messages sent by the PNS are invalid (the direction decides).
    let mut d = confirmed();
    feed(&mut d, Dir::Original, &with_id(msg::OUT_CALL_REQUEST, 7));
    assert_eq!(feed(&mut d, Dir::Original, &ocrp(9, 7, 1)), None);
    assert_eq!(
        feed(
            &mut d,
            Dir::Original,
            &with_id(msg::CALL_DISCONNECT_NOTIFY, 9)
        ),
        None
    );
    assert_eq!(d.cstate, CallState::OutReq);
}

#[test]
fn pptp_incoming_call_three_way_handshake() {
    let mut d = confirmed();
    feed(&mut d, Dir::Reply, &with_id(msg::IN_CALL_REQUEST, 0x7001));
    assert_eq!((d.cstate, d.pac_call_id), (CallState::InReq, 0x7001));
    let mut icrp = 0x3001u16.to_be_bytes().to_vec();
    icrp.extend_from_slice(&0x7001u16.to_be_bytes());
    icrp.push(1);
    feed(
        &mut d,
        Dir::Original,
        &message(msg::IN_CALL_REPLY, &body(msg::IN_CALL_REPLY, &icrp)),
    );
    assert_eq!((d.cstate, d.pns_call_id), (CallState::InRep, 0x3001));
    assert_eq!(
        feed(&mut d, Dir::Reply, &with_id(msg::IN_CALL_CONNECT, 0x3001)),
        Some(PptpAction::ExpectGre {
            callid: 0x7001,
            peer_callid: 0x3001
        })
    );
    assert_eq!(d.cstate, CallState::InConf);
    // Stop: request from the PNS, reply from the PAC.
    feed(&mut d, Dir::Original, &message(3, &[1, 0, 0, 0]));
    assert_eq!(d.sstate, SessionState::StopReq);
    feed(&mut d, Dir::Reply, &message(4, &[1, 0, 0, 0]));
    assert_eq!(d.sstate, SessionState::None);
}

#[test]
fn pptp_short_or_foreign_payloads_are_ignored() {
    let good = ocrp(0x8002, 0x4001, 1);
    // Every truncation of a valid message is ignored: the kernel needs the whole
    // structure (20 bytes for an Outgoing-Call-Reply).
    for n in 0..good.len() {
        assert_eq!(parse(&good[..n]), None, "{n} bytes");
    }
    assert!(parse(&good).is_some());
    let mut bad_cookie = good.clone();
    bad_cookie[7] ^= 1;
    assert_eq!(parse(&bad_cookie), None);
    let mut mgmt = good.clone();
    mgmt[3] = 2;
    assert_eq!(parse(&mgmt), None);
    // Echoes have no size in the kernel's table: any length is read.
    assert!(parse(&message(msg::ECHO_REQUEST, &[])).is_some());
    // Unknown types parse (then count as invalid: no change).
    let mut d = confirmed();
    let before = d;
    for kind in [0u16, 16, 0xffff] {
        assert_eq!(feed(&mut d, Dir::Reply, &message(kind, &[])), None);
        assert_eq!(feed(&mut d, Dir::Original, &message(kind, &[])), None);
    }
    assert_eq!(d, before);
}

#[test]
fn pptp_any_bytes_never_panic() {
    // Deterministic pseudo-random payloads behind a valid header, every type, every
    // length up to past the largest structure, in both directions.
    let mut x = 0x1234_5678_u32;
    for kind in 0..=17u16 {
        for len in 0..=220usize {
            let mut b = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                b.push(x as u8);
            }
            let m = message(kind, &b);
            let mut d = confirmed();
            feed(&mut d, Dir::Original, &m);
            feed(&mut d, Dir::Reply, &m);
        }
    }
}
