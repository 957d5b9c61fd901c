//! Generic tracker for every protocol without its own (kernel
//! `nf_conntrack_proto_generic.c`; also DCCP on the target kernel): zero ports, 600 s
//! refreshed by every packet, never ASSURED.

use super::{Accepted, Cx, TrackerResult};
use crate::time::secs;

/// `nf_generic_packet`.
pub(crate) fn packet(cx: &Cx<'_>) -> TrackerResult {
    TrackerResult::Accept(Accepted::refresh(secs(
        cx.sysctls.nf_conntrack_generic_timeout.into(),
    )))
}
