//! # ctrack: the command-line frontends of the ctrack engine
//!
//! * `replay` — a capture through the engine, printed as the kernel's tools would show it;
//! * `kernel-replay` — the same capture through the live Linux kernel (network namespaces);
//! * `diff` — both, compared packet by packet.
//!
//! The binary (`main.rs`) only parses arguments; the work is in these modules so the
//! parity tests can call it directly.

pub mod capacity;
pub mod diff;
pub mod feed;
pub mod input;
pub mod kernel;
pub mod listing;
pub mod natcmp;
pub mod output;
pub mod replay;
pub mod report;
pub mod write;
