//! GRE (stub).
/// GRE per-entry state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GreConn;
