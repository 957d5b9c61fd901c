//! The engine side of helpers and expectations (kernel `init_conntrack`'s expectation
//! lookup, `nf_confirm`'s helper call, `nf_ct_remove_expectations`): the glue between
//! [`Conntrack`] and [`crate::helper`] / [`crate::expect`].

use super::pptp::Siblings;
use super::{Confirmed, Conntrack, Tracked};
use crate::entry::{Entry, Extensions};
use crate::expect::{ExpectEvent, ExpectTable, Expectation};
use crate::helper::pptp::PptpAction;
use crate::helper::{HelpCx, HelperDrop, HelperKind, HelperState};
use crate::packet::Packet;
use crate::status::{CtInfo, Status};
use crate::table::EntryId;
use crate::time::Instant;
use crate::tuple::{Dir, Family};

impl Conntrack {
    /// The expectation table.
    pub fn expectations(&self) -> &ExpectTable {
        &self.helpers.expect
    }

    /// The GRE keymap the PPTP helper fills (kernel `nf_gre_net.keymap_list`).
    pub fn gre_keymap(&self) -> &crate::proto::gre_keymap::GreKeymap {
        &self.helpers.keymap
    }

    /// Take the expectation events recorded so far (when events are on).
    pub fn drain_expect_events(&mut self) -> Vec<ExpectEvent> {
        self.helpers.expect.drain_events()
    }

    /// Set the FTP helper's `loose` module parameter.
    pub fn set_ftp_loose(&mut self, loose: bool) {
        self.helpers.ftp_loose = loose;
    }

    /// `ct helper set` (kernel `nft_ct_helper_obj_eval`): attach `kind` to the packet's
    /// entry if it is still unconfirmed, of the helper's L4 protocol and of a family the
    /// object covers (`v4`, `v6`), and has no helper yet. Returns whether it attached.
    pub fn set_helper(&mut self, id: EntryId, kind: HelperKind, v4: bool, v6: bool) -> bool {
        if self.table.is_linked(id) {
            return false;
        }
        let Some(e) = self.table.get_mut(id) else {
            return false;
        };
        let t = &e.tuple(Dir::Original);
        let fam_ok = match t.family {
            Family::V4 => v4,
            Family::V6 => v6,
        };
        if !fam_ok || t.proto != kind.l4proto() {
            return false;
        }
        let ext = e.ext.get_or_insert_with(|| Box::new(Extensions::default()));
        if ext.helper.is_some() {
            return false;
        }
        ext.helper = Some(HelperState::new(kind));
        true
    }

    /// The helper attached to an entry.
    pub fn helper_of(e: &Entry) -> Option<HelperKind> {
        e.ext.as_ref()?.helper.as_ref().map(|h| h.kind)
    }

    /// `use=` as `conntrack -L` shows it: one, plus one per existing entry created from
    /// this entry's expectations.
    pub fn use_count(e: &Entry) -> u32 {
        1 + e.ext.as_ref().map_or(0, |x| x.children)
    }

    /// A new entry is being created: if an expectation waits for its original tuple,
    /// it becomes EXPECTED, takes its master's mark and a link to its master
    /// (`expect_new`), and the expectation is removed. Returns the master and the
    /// expectation's NAT part, for [`Conntrack::follow_master`] once the entry exists.
    pub(super) fn init_expected(
        &mut self,
        now: Instant,
        e: &mut Entry,
    ) -> Option<(EntryId, crate::expect::ExpectNat)> {
        if self.helpers.expect.is_empty() {
            return None;
        }
        let table = &self.table;
        let live = |id: EntryId, seq: u32| {
            table.is_linked(id)
                && table
                    .get(id)
                    .is_some_and(|m| m.seq == seq && !m.status.has(Status::DYING))
        };
        let exp = self.helpers.expect.find(
            &e.tuple(Dir::Original),
            e.zone.id,
            now,
            live,
            &mut self.stats,
        )?;
        e.status.set(Status::EXPECTED);
        if let Some(m) = self.table.get(exp.master) {
            e.mark = m.mark;
        }
        let ext = e.ext.get_or_insert_with(|| Box::new(Extensions::default()));
        ext.master = Some((exp.master, exp.master_seq));
        self.stats.expect_new += 1;
        if exp.helper == HelperKind::Pptp {
            // The expectation's expectfn, once the entry exists.
            self.pptp_expectfn(now, &exp, e.zone.id);
        }
        exp.nat.map(|n| (exp.master, n))
    }

    /// An entry is being deleted: its expectations go with it, and its master loses a
    /// reference (a GRE entry's master also loses its keymap entries).
    pub(super) fn forget_links(&mut self, id: EntryId, e: &Entry, now: Instant, confirmed: bool) {
        let Some(ext) = e.ext.as_ref() else {
            return;
        };
        self.gre_child_freed(Some(e));
        if ext.helper.is_some() {
            self.helpers
                .expect
                .remove_master(id, e.seq, now, &mut self.stats);
        }
        if let (Some((mid, mseq)), true) = (ext.master, confirmed) {
            if let Some(m) = self.table.get_mut(mid).filter(|m| m.seq == mseq) {
                if let Some(x) = m.ext.as_mut() {
                    x.children = x.children.saturating_sub(1);
                }
            }
        }
    }

    /// The confirm hook with the helper in front of it (kernel `nf_confirm`): the
    /// entry's helper, if any, sees the packet (not RELATED_REPLY ones) and may register
    /// an expectation, rewrite the payload (NAT) or drop the packet; then an entry with
    /// SEQ_ADJUST has the packet's seq/ack corrected ([`crate::conntrack::seqadj`]); then
    /// [`Conntrack::confirm`]. `pkt` is the packet as it reached the hook (after defrag
    /// and NAT): helpers and sequence adjustment rewrite it in place, so after the call
    /// it holds the packet as it leaves. On a drop the caller discards the packet as
    /// for any drop before confirm.
    pub fn help_and_confirm(
        &mut self,
        now: Instant,
        t: &Tracked,
        pkt: &mut Vec<u8>,
    ) -> Result<Confirmed, HelperDrop> {
        // An entry without extensions has no helper, no sequence adjustment, no master
        // and (having no helper) no expectations: only the confirm itself is left.
        let plain = match (t.entry, t.ctinfo) {
            (Some(id), Some(_)) => self.table.get(id).is_none_or(|e| e.ext.is_none()),
            _ => true,
        };
        if plain {
            return Ok(self.confirm(now, t));
        }
        let target = match (t.entry, t.ctinfo) {
            (Some(id), Some(ci)) => self.table.get(id).map(|e| (id, ci, e.seq)),
            _ => None,
        };
        if let Some((id, ci, seq)) = target {
            if ci != CtInfo::RelatedReply {
                let r = self
                    .run_helper(now, id, ci, pkt)
                    .and_then(|()| self.seq_adjust(id, ci, pkt));
                if let Err(d) = r {
                    if !self.table.is_linked(id) {
                        self.helpers
                            .expect
                            .remove_master(id, seq, now, &mut self.stats);
                    }
                    return Err(d);
                }
            }
        }
        let r = self.confirm(now, t);
        if let Some((id, _, seq)) = target {
            match r {
                Confirmed::Inserted | Confirmed::ReplyOnly => {
                    let master = self
                        .table
                        .get(id)
                        .and_then(|e| e.ext.as_ref())
                        .and_then(|x| x.master);
                    if let Some((mid, mseq)) = master {
                        if let Some(m) = self.table.get_mut(mid).filter(|m| m.seq == mseq) {
                            if let Some(x) = m.ext.as_mut() {
                                x.children += 1;
                            }
                        }
                    }
                }
                Confirmed::Merged(_) | Confirmed::Failed(_) => {
                    // The packet's own entry was freed: so are its expectations.
                    self.helpers
                        .expect
                        .remove_master(id, seq, now, &mut self.stats);
                }
                Confirmed::Nothing => {}
            }
        }
        Ok(r)
    }

    /// Run the entry's helper on one packet.
    fn run_helper(
        &mut self,
        now: Instant,
        id: EntryId,
        ctinfo: CtInfo,
        pkt: &mut Vec<u8>,
    ) -> Result<(), HelperDrop> {
        let Some(mut hs) = self
            .table
            .get_mut(id)
            .and_then(|e| e.ext.as_mut())
            .and_then(|x| x.helper.take())
        else {
            return Ok(());
        };
        let kind = hs.kind;
        let outcome = match (Packet::parse(pkt), self.table.get(id)) {
            (Ok(p), Some(e)) => {
                let cx = HelpCx {
                    pkt: &p,
                    ctinfo,
                    entry: e,
                    loose: self.helpers.ftp_loose,
                };
                Some((
                    kind.imp().help(&mut hs, &cx),
                    e.seq,
                    e.tuple(Dir::Original),
                    e.zone.id,
                    e.status,
                ))
            }
            _ => None,
        };
        if let Some(x) = self.table.get_mut(id).and_then(|e| e.ext.as_mut()) {
            x.helper = Some(hs);
        }
        let Some((out, seq, orig, zone, status)) = outcome else {
            return Ok(());
        };
        if let Some(d) = out.drop {
            return Err(d);
        }
        match out.pptp {
            Some(PptpAction::ExpectGre {
                callid,
                peer_callid,
            }) => self.pptp_expect_gre(now, id, callid, peer_callid),
            Some(PptpAction::DestroySiblings) => {
                if let Some(s) = self.table.get(id).and_then(|e| Siblings::of(id, e)) {
                    self.pptp_destroy_siblings(now, s);
                }
            }
            None => {}
        }
        let Some(req) = out.expect else {
            return Ok(());
        };
        let exp = Expectation::from_request(&req, kind, id, seq, orig, zone);
        let natted = status.0 & (Status::SRC_NAT | Status::DST_NAT) != 0;
        match (natted, kind, out.ftp) {
            (true, HelperKind::Ftp, Some(cmd)) => self.nat_ftp(now, id, ctinfo, exp, &cmd, pkt),
            (true, HelperKind::Tftp, _) => self.nat_tftp(now, exp),
            _ => self
                .expect_related(now, exp)
                .map_err(|_| HelperDrop::CannotExpect { helper: kind }),
        }
    }

    /// Register an expectation under its helper's policy (kernel
    /// `nf_ct_expect_related`).
    pub(super) fn expect_related(
        &mut self,
        now: Instant,
        exp: Expectation,
    ) -> Result<(), crate::expect::ExpectError> {
        let max = self.sysctls.nf_conntrack_expect_max;
        let policy = exp.helper.policy(exp.class);
        self.helpers
            .expect
            .insert(exp, policy, max, now, &mut self.stats)
    }
}
