//! The PPTP helper in the engine: control messages on an established TCP connection
//! with the `pptp` helper attached create the two GRE expectations and the keymap
//! entries; the call's GRE is RELATED with its source key from the keymap; a
//! Call-Disconnect-Notify kills it. The same flows run against the live kernel in
//! tests/rulesets/pptp_helper.nft (scenarios pptp_outgoing_call, pptp_incoming_call).

use ctrack_core::conntrack::{Config, Conntrack, Hook};
use ctrack_core::helper::HelperKind;
use ctrack_core::status::CtInfo;
use ctrack_core::{Instant, Sysctls};

const C: [u8; 4] = [10, 1, 0, 1];
const S: [u8; 4] = [10, 2, 0, 1];

fn ip_csum(p: &mut [u8]) {
    let mut sum = 0u32;
    for w in p[..20].chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let len = (20 + l4.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&[0, 1, 0, 0, 64, proto, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    ip_csum(&mut p);
    p.extend_from_slice(l4);
    p
}

/// A TCP segment (checksums are not verified: `nf_conntrack_checksum=0`).
fn tcp(
    (src, sp): ([u8; 4], u16),
    (dst, dp): ([u8; 4], u16),
    seq: u32,
    ack: u32,
    flags: u8,
    data: &[u8],
) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sp.to_be_bytes());
    t.extend_from_slice(&dp.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xfa, 0xf0, 0, 0, 0, 0]);
    t.extend_from_slice(data);
    ipv4(src, dst, 6, &t)
}

/// An enhanced GRE (version 1, PPP) packet with `call_id`.
fn gre(src: [u8; 4], dst: [u8; 4], call_id: u16) -> Vec<u8> {
    let mut g = vec![0x20, 0x01, 0x88, 0x0b, 0, 4];
    g.extend_from_slice(&call_id.to_be_bytes());
    g.extend_from_slice(&[0xff, 0x03, 0x00, 0x21]);
    ipv4(src, dst, 47, &g)
}

fn pptp(kind: u16, body: &[u8], size: usize) -> Vec<u8> {
    let mut b = body.to_vec();
    b.resize(size.max(body.len()), 0);
    let mut m = ((12 + b.len()) as u16).to_be_bytes().to_vec();
    m.extend_from_slice(&[0, 1, 0x1a, 0x2b, 0x3c, 0x4d]);
    m.extend_from_slice(&kind.to_be_bytes());
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&b);
    m
}

fn ids(a: u16, b: u16, result: u8) -> Vec<u8> {
    let mut v = a.to_be_bytes().to_vec();
    v.extend_from_slice(&b.to_be_bytes());
    v.push(result);
    v
}

struct Pptp {
    ct: Conntrack,
    now: Instant,
    seq: [u32; 2],
}

impl Pptp {
    fn new() -> Pptp {
        let mut sysctls = Sysctls::default();
        sysctls.set("nf_conntrack_checksum", "0").expect("sysctl");
        Pptp {
            ct: Conntrack::new(Config {
                sysctls,
                seed: 1,
                events: false,
            }),
            now: Instant::from_secs(10),
            seq: [1000, 5000],
        }
    }

    /// Track, run the helper, confirm: the packet's ctinfo.
    fn pass(&mut self, pkt: &[u8]) -> Option<CtInfo> {
        let t = self.ct.track(self.now, pkt, Hook::PreRouting, 0u16);
        if let Some(id) = t.entry {
            if t.ctinfo == Some(CtInfo::New) && pkt[9] == 6 {
                self.ct.set_helper(id, HelperKind::Pptp, true, true);
            }
        }
        let mut buf = pkt.to_vec();
        self.ct
            .help_and_confirm(self.now, &t, &mut buf)
            .expect("the PPTP helper never drops");
        t.ctinfo
    }

    /// One control segment from the client (`c`) or the server.
    fn msg(&mut self, c: bool, data: &[u8]) -> Option<CtInfo> {
        let (i, o) = if c { (0, 1) } else { (1, 0) };
        let (src, sp, dst, dp) = if c {
            (C, 40723, S, 1723)
        } else {
            (S, 1723, C, 40723)
        };
        let p = tcp((src, sp), (dst, dp), self.seq[i], self.seq[o], 0x18, data);
        self.seq[i] = self.seq[i].wrapping_add(data.len() as u32);
        self.pass(&p)
    }

    fn handshake(&mut self) {
        assert_eq!(
            self.pass(&tcp((C, 40723), (S, 1723), 999, 0, 0x02, &[])),
            Some(CtInfo::New)
        );
        let synack = tcp((S, 1723), (C, 40723), 4999, 1000, 0x12, &[]);
        assert_eq!(self.pass(&synack), Some(CtInfo::EstablishedReply));
        let ack = tcp((C, 40723), (S, 1723), 1000, 5000, 0x10, &[]);
        assert_eq!(self.pass(&ack), Some(CtInfo::Established));
        self.msg(true, &pptp(1, &[1, 0], 144));
        self.msg(false, &pptp(2, &[1, 0, 1], 144));
    }
}

#[test]
fn pptp_out_call_gre_is_related_keyed_and_killed_by_disconnect() {
    let mut p = Pptp::new();
    p.handshake();
    p.msg(true, &pptp(7, &0x4001u16.to_be_bytes(), 156));
    assert_eq!(p.ct.expectations().len(), 0);
    p.msg(false, &pptp(8, &ids(0x8002, 0x4001, 1), 20));
    assert_eq!(p.ct.expectations().len(), 2);
    assert_eq!(p.ct.gre_keymap().len(), 2);
    let before = p.ct.count();
    assert_eq!(p.pass(&gre(C, S, 0x8002)), Some(CtInfo::Related));
    // The other direction's expectation was withdrawn when the entry was created.
    assert_eq!(p.ct.expectations().len(), 0);
    let e =
        p.ct.entries(p.now)
            .into_iter()
            .find(|e| e.proto_num() == 47)
            .expect("GRE entry")
            .clone();
    let o = e.tuple(ctrack_core::Dir::Original);
    assert_eq!((o.src_u, o.dst_u), (0x4001, 0x8002));
    assert_eq!(p.pass(&gre(S, C, 0x4001)), Some(CtInfo::EstablishedReply));
    assert_eq!(p.ct.count(), before + 1);
    // Call-Disconnect-Notify: keymap gone, the GRE entry killed.
    p.msg(false, &pptp(13, &0x8002u16.to_be_bytes(), 136));
    assert!(p.ct.gre_keymap().is_empty());
    assert_eq!(p.ct.count(), before);
    // GRE of the dead call: src key 0, a new flow.
    assert_eq!(p.pass(&gre(C, S, 0x8002)), Some(CtInfo::New));
}

#[test]
fn pptp_truncated_segments_are_accepted_and_ignored() {
    let mut p = Pptp::new();
    p.handshake();
    p.msg(true, &pptp(7, &0x4001u16.to_be_bytes(), 156));
    let reply = pptp(8, &ids(0x8002, 0x4001, 1), 20);
    for n in [0usize, 1, 7, 8, 11, 12, 31] {
        assert_eq!(p.msg(false, &reply[..n]), Some(CtInfo::EstablishedReply));
        assert_eq!(p.ct.expectations().len(), 0, "{n} bytes");
    }
    assert_eq!(p.pass(&gre(C, S, 0x8002)), Some(CtInfo::New));
}
