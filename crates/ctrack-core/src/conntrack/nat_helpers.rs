//! NAT helpers and sequence adjustment in the engine (kernel `nf_nat_ftp.c`,
//! `nf_nat_tftp.c`, `nf_nat_helper.c`, the seqadj step of `nf_confirm`;
//! kernel-semantics.md §12.5).
//!
//! * **FTP** on a NATed control connection: the expectation is moved to the address
//!   the data connection will really reach (the other direction's tuple destination)
//!   and to a free port (the announced one first, then random ones), the command's
//!   text is rewritten to announce them, and a length change is recorded in the
//!   entry's sequence adjustment.
//! * **TFTP** on a NATed entry: the expectation is registered unchanged, with the
//!   follow-master mapping.
//! * **Follow master**: the connection created from such an expectation gets the
//!   master's NAT mapping at creation, before any NAT hook runs.
//! * **Sequence adjustment** of every packet of an entry with SEQ_ADJUST, after its
//!   helper, before confirm.

use super::Conntrack;
use crate::expect::{ExpectError, ExpectNat, Expectation};
use crate::helper::ftp::FtpCommand;
use crate::helper::{mangle, nat_ftp, HelperDrop, HelperKind};
use crate::nat::{flags, Manip, NatRange};
use crate::packet::Packet;
use crate::status::{CtInfo, Status};
use crate::table::EntryId;
use crate::time::Instant;
use crate::tuple::Dir;

/// kernel `nf_nat_exp_find_port`: at most this many tries.
const MAX_PORT_ATTEMPTS: u32 = 128;

impl Conntrack {
    /// kernel `nf_nat_ftp`: register `exp` at a free port with the follow-master
    /// mapping, then rewrite the command's numbers in `pkt` and record the length
    /// change.
    pub(super) fn nat_ftp(
        &mut self,
        now: Instant,
        id: EntryId,
        ctinfo: CtInfo,
        mut exp: Expectation,
        cmd: &FtpCommand,
        pkt: &mut Vec<u8>,
    ) -> Result<(), HelperDrop> {
        let helper = HelperKind::Ftp;
        let dir = ctinfo.dir();
        let Some(master) = self.table.get(id) else {
            return Ok(());
        };
        // The data connection comes from wherever this packet goes.
        let other = master.tuple(dir.opposite());
        let (newaddr, family, mseq) = (other.dst, other.family, master.seq);
        exp.nat = Some(ExpectNat {
            dir: dir.opposite(),
            saved_port: exp.tuple.dst_u,
        });
        let Some(port) = self.exp_find_port(now, exp.clone()) else {
            return Err(HelperDrop::AllPortsInUse { helper });
        };
        exp.tuple.dst_u = port;
        let text = nat_ftp::command_text(cmd.kind, family, &newaddr, port);
        let at = Packet::parse(pkt).ok().map(|p| (p.l4_off, tcp_seq(p.l4())));
        let rewritten = at.and_then(|(l4_off, seq)| {
            let delta = mangle::mangle_tcp(pkt, l4_off, cmd.off, cmd.len, text.as_bytes())?;
            Some((seq, delta))
        });
        let Some((seq, delta)) = rewritten else {
            self.helpers
                .expect
                .unexpect(id, mseq, &exp.tuple, now, &mut self.stats);
            return Err(HelperDrop::CannotMangle { helper });
        };
        if let (Some(seq), Some(e), true) = (seq, self.table.get_mut(id), delta != 0) {
            // kernel nf_ct_seqadj_set. The kernel allocates the seqadj extension when
            // an entry has both a helper and a NAT binding, which is always the case
            // here; the state is created on the first length change (zero offsets
            // before it are the same as no state).
            let ext = e.ext.get_or_insert_with(Default::default);
            if ext
                .seqadj
                .get_or_insert_with(Default::default)
                .set(dir, seq, delta)
            {
                e.status.set(Status::SEQ_ADJUST);
            }
        }
        Ok(())
    }

    /// kernel `nf_nat_exp_find_port`: the announced port first; while the insert
    /// clashes with another master's expectation (`EBUSY`), up to 128 random ports
    /// above it. Any other failure ends the search. Returns the port registered.
    fn exp_find_port(&mut self, now: Instant, mut exp: Expectation) -> Option<u16> {
        let min = exp.tuple.dst_u;
        let range = 65_535 - u32::from(min);
        let mut attempts_left = range.min(MAX_PORT_ATTEMPTS) as i64;
        let mut port = min;
        loop {
            exp.tuple.dst_u = port;
            match self.expect_related(now, exp.clone()) {
                Ok(()) => return Some(port),
                Err(ExpectError::Busy) => {
                    attempts_left -= 1;
                    if attempts_left < 0 {
                        return None;
                    }
                }
                Err(_) => return None,
            }
            let r = self.helpers.random_below(range);
            port = (u32::from(min) + r) as u16;
        }
    }

    /// kernel `nf_nat_tftp`'s help: the expectation as the helper made it, with the
    /// follow-master mapping back to the client's original source port.
    pub(super) fn nat_tftp(
        &mut self,
        now: Instant,
        mut exp: Expectation,
    ) -> Result<(), HelperDrop> {
        let Some(master) = self.table.get(exp.master) else {
            return Ok(());
        };
        exp.nat = Some(ExpectNat {
            dir: Dir::Reply,
            saved_port: master.tuple(Dir::Original).src_u,
        });
        self.expect_related(now, exp)
            .map_err(|_| HelperDrop::CannotExpect {
                helper: HelperKind::Tftp,
            })
    }

    /// kernel `nf_nat_follow_master`: the new entry `id`, created from an expectation
    /// of `master` with NAT part `nat`, gets its source mapped to where the master
    /// sends (the destination of the master's tuple opposite to `nat.dir`) and its
    /// destination to that tuple's source with the saved port.
    pub(super) fn follow_master(
        &mut self,
        now: Instant,
        id: EntryId,
        master: EntryId,
        nat: ExpectNat,
    ) {
        let Some(m) = self.table.get(master) else {
            return;
        };
        let t = m.tuple(nat.dir.opposite());
        self.nat_setup(now, id, &NatRange::addr(t.dst), Manip::Src);
        let range = NatRange {
            flags: flags::MAP_IPS | flags::PROTO_SPECIFIED,
            min_addr: t.src,
            max_addr: t.src,
            min_port: nat.saved_port,
            max_port: nat.saved_port,
            base_port: 0,
        };
        self.nat_setup(now, id, &range, Manip::Dst);
    }

    /// The seqadj step of `nf_confirm`: an entry with SEQ_ADJUST has the packet's seq,
    /// ack and SACK blocks corrected (kernel `nf_ct_seq_adjust`). A failure drops the
    /// packet and counts `drop`.
    pub(super) fn seq_adjust(
        &mut self,
        id: EntryId,
        ctinfo: CtInfo,
        pkt: &mut [u8],
    ) -> Result<(), HelperDrop> {
        let Some(e) = self.table.get(id) else {
            return Ok(());
        };
        if !e.status.has(Status::SEQ_ADJUST) {
            return Ok(());
        }
        let Some(sa) = e.ext.as_ref().and_then(|x| x.seqadj) else {
            return Ok(());
        };
        let Some(l4_off) = Packet::parse(pkt).ok().map(|p| p.l4_off) else {
            return Ok(());
        };
        let ok = pkt
            .get_mut(l4_off..)
            .is_some_and(|l4| sa.adjust(l4, ctinfo.dir()));
        if ok {
            Ok(())
        } else {
            self.stats.drop += 1;
            Err(HelperDrop::SeqAdjust)
        }
    }
}

/// The sequence number of a TCP header, if it is long enough.
fn tcp_seq(l4: &[u8]) -> Option<u32> {
    let b = l4.get(4..8)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}
