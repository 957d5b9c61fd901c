//! The TFTP helper (kernel `nf_conntrack_tftp.c`; kernel-semantics.md §12.4).
//!
//! On a read (opcode 1) or write (opcode 2) request, in any packet of the helped entry
//! (the first one included: the helper does not look at ctinfo), it expects UDP from the
//! reply tuple's source address, any port, to the reply tuple's destination address and
//! port: the server answers from a new port, and that answer becomes RELATED. DATA, ACK
//! and ERROR (3, 4, 5) and unknown opcodes are ignored.

use super::{ExpectRequest, HelpCx, HelpOutcome, Helper, HelperState};
use crate::tuple::{proto, Dir};

/// TFTP opcode of a read request.
pub const OPCODE_READ: u16 = 1;
/// TFTP opcode of a write request.
pub const OPCODE_WRITE: u16 = 2;

/// The TFTP helper.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tftp;

impl Helper for Tftp {
    fn help(&self, _st: &mut HelperState, cx: &HelpCx<'_>) -> HelpOutcome {
        let mut out = HelpOutcome::default();
        // The opcode follows the 8-byte UDP header; a shorter packet is accepted.
        let Some(op) = cx.pkt.l4().get(8..10) else {
            return out;
        };
        let opcode = u16::from_be_bytes([op[0], op[1]]);
        if matches!(opcode, OPCODE_READ | OPCODE_WRITE) {
            let r = cx.entry.tuple(Dir::Reply);
            out.expect = Some(ExpectRequest {
                class: 0,
                family: r.family,
                proto: proto::UDP,
                src: Some(r.src),
                src_port: None,
                dst: r.dst,
                dst_port: r.dst_u,
            });
        }
        out
    }
}
