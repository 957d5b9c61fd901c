//! The engine side of the PPTP helper (kernel `nf_conntrack_pptp.c`: `exp_gre`,
//! `pptp_destroy_siblings`, `destroy_sibling_or_exp`, `pptp_expectfn`; and
//! `nf_conntrack_core.c`'s `destroy_gre_conntrack`): the actions
//! [`crate::helper::pptp`] asks for, carried out on the table, the expectations and the
//! GRE keymap.

use super::Conntrack;
use crate::entry::Entry;
use crate::expect::Expectation;
use crate::helper::pptp::PptpData;
use crate::helper::{ExpectRequest, HelperKind};
use crate::table::EntryId;
use crate::time::Instant;
use crate::tuple::{proto, Dir, Tuple};
use crate::zone::Zone;

/// What `pptp_destroy_siblings` needs of a master, taken before the master is freed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Siblings {
    master: (EntryId, u32),
    tuples: [Tuple; 2],
    zone: Zone,
    data: PptpData,
}

impl Siblings {
    /// The sibling data of an entry with the PPTP helper, `None` for any other entry.
    pub(super) fn of(id: EntryId, e: &Entry) -> Option<Siblings> {
        let h = e.ext.as_ref()?.helper.as_ref()?;
        (h.kind == HelperKind::Pptp).then_some(Siblings {
            master: (id, e.seq),
            tuples: e.tuples(),
            zone: e.zone,
            data: h.pptp,
        })
    }
}

impl Conntrack {
    /// The source key of a version-1 PPP GRE packet's tuple from the keymap (the last
    /// step of kernel `gre_pkt_to_tuple`); other tuples are left alone.
    pub(super) fn gre_src_key(&self, t: &mut Tuple, l4: &[u8]) {
        if t.proto == proto::GRE
            && !self.helpers.keymap.is_empty()
            && crate::proto::gre::pptp_call_id(l4).is_some()
        {
            t.src_u = self.helpers.keymap.lookup(t);
        }
    }

    /// Kernel `exp_gre(ct, callid, peer_callid)` for the master `id`: two class-0
    /// expectations with exact masks, PNS → PAC keyed (peer_callid, callid) from the
    /// original tuple's addresses and PAC → PNS keyed (callid, peer_callid) from the
    /// reply tuple's, then the two keymap entries. Any failure withdraws what was added
    /// (and a failed second keymap entry removes the first); the packet passes anyway.
    pub(super) fn pptp_expect_gre(
        &mut self,
        now: Instant,
        id: EntryId,
        callid: u16,
        peer_callid: u16,
    ) {
        let Some(e) = self.table.get(id) else {
            return;
        };
        let (seq, orig, zone) = (e.seq, e.tuple(Dir::Original), e.zone.id);
        let exp = |t: &Tuple, sk: u16, dk: u16| {
            let req = ExpectRequest {
                class: 0,
                family: t.family,
                proto: proto::GRE,
                src: Some(t.src),
                src_port: Some(sk),
                dst: t.dst,
                dst_port: dk,
            };
            Expectation::from_request(&req, HelperKind::Pptp, id, seq, orig, zone)
        };
        let exp_orig = exp(&e.tuple(Dir::Original), peer_callid, callid);
        let exp_reply = exp(&e.tuple(Dir::Reply), callid, peer_callid);
        let (t_orig, t_reply) = (exp_orig.tuple, exp_reply.tuple);
        if self.expect_related(now, exp_orig).is_err() {
            return;
        }
        if self.expect_related(now, exp_reply).is_err() {
            self.unexpect(now, id, seq, &t_orig);
            return;
        }
        let km = &mut self.helpers.keymap;
        let ok = if km.add((id, seq), Dir::Original, &t_orig).is_err() {
            false
        } else if km.add((id, seq), Dir::Reply, &t_reply).is_err() {
            km.destroy((id, seq));
            false
        } else {
            true
        };
        if !ok {
            self.unexpect(now, id, seq, &t_reply);
            self.unexpect(now, id, seq, &t_orig);
        }
    }

    /// Kernel `nf_ct_unexpect_related` of the master's expectation with this tuple.
    fn unexpect(&mut self, now: Instant, id: EntryId, seq: u32, t: &Tuple) {
        self.helpers
            .expect
            .unexpect(id, seq, t, now, &mut self.stats);
    }

    /// Kernel `pptp_destroy_siblings` (on Call-Disconnect-Notify, and as the helper's
    /// destroy callback when the master is deleted): the master's keymap entries go;
    /// then for each direction of the call, the GRE connection with that tuple (PNS →
    /// PAC: the original addresses with keys (PNS call ID, PAC call ID); PAC → PNS: the
    /// reply addresses with (PAC, PNS)) is killed, or else the expectation it fulfils is
    /// withdrawn.
    pub(super) fn pptp_destroy_siblings(&mut self, now: Instant, s: Siblings) {
        self.helpers.keymap.destroy(s.master);
        let keys = [
            (s.data.pns_call_id, s.data.pac_call_id),
            (s.data.pac_call_id, s.data.pns_call_id),
        ];
        for (t, (sk, dk)) in s.tuples.iter().zip(keys) {
            let t = Tuple {
                proto: proto::GRE,
                src_u: sk,
                dst_u: dk,
                ..*t
            };
            self.destroy_sibling_or_exp(now, &t, s.zone);
        }
    }

    /// Kernel `destroy_sibling_or_exp`: kill the confirmed entry with tuple `t` (either
    /// direction) in `zone`, or else withdraw the expectation `t` fulfils.
    fn destroy_sibling_or_exp(&mut self, now: Instant, t: &Tuple, zone: Zone) {
        if let Some((sid, _)) = self.lookup(t, zone, now) {
            self.delete(sid, now);
            return;
        }
        self.helpers
            .expect
            .unexpect_matching(t, zone.id, now, &mut self.stats);
    }

    /// Kernel `pptp_expectfn` (without NAT), run when a connection is created from a
    /// PPTP expectation `exp`: the expectation of the other direction (the inverted
    /// tuple) is withdrawn, so one call makes one GRE connection. (It also sets the GRE
    /// timeouts to 600 s / 18000 s, but the GRE tracker overwrites them with the sysctls
    /// before the new entry is confirmed: nothing to do.)
    pub(super) fn pptp_expectfn(&mut self, now: Instant, exp: &Expectation, zone: u16) {
        if let Some(inv) = super::invert(&exp.tuple) {
            self.helpers
                .expect
                .unexpect_matching(&inv, zone, now, &mut self.stats);
        }
    }

    /// Kernel `destroy_gre_conntrack`: a GRE connection created from an expectation is
    /// freed (deleted, or discarded unconfirmed), so its master's keymap entries go.
    pub(super) fn gre_child_freed(&mut self, e: Option<&Entry>) {
        let Some(e) = e else {
            return;
        };
        if e.proto_num() != proto::GRE {
            return;
        }
        if let Some(m) = e.ext.as_ref().and_then(|x| x.master) {
            self.helpers.keymap.destroy(m);
        }
    }
}
