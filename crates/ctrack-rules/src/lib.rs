//! # ctrack-rules: stateful rules around the conntrack engine
//!
//! Users write nftables; this crate reads their rules and walks each packet through the
//! netfilter hooks in the kernel's priority order, calling the engine (`ctrack-core`)
//! where the kernel calls conntrack.
//!
//! * Input: the text of an `nft -f` file ([`parser`], with [`lexer`] expanding
//!   `define`s) or the JSON of `nft -j list ruleset` ([`json`]), both into one AST
//!   ([`ast`]).
//! * [`compile()`] turns the AST into an immutable [`Ruleset`]: values interpreted by
//!   the type of the key they meet ([`expr`]), jumps resolved, base chains indexed by
//!   hook and sorted by priority. Unsupported features (NAT, `ct helper set`, named
//!   sets) are errors naming the file, line and column — never silently ignored.
//! * [`Pipeline`] runs packets: raw chains → conntrack in → the other chains of the
//!   path → confirm, discarding the unconfirmed entry of a dropped packet.
//!
//! ```
//! use ctrack_rules::{load_str, Pipeline};
//! let rs = load_str("fw.nft", "table inet fw { chain fwd { type filter hook forward priority filter; policy drop; ct state established accept; } }")?;
//! let _router = Pipeline::new(rs, ("client".into(), "server".into()));
//! # Ok::<(), ctrack_rules::Error>(())
//! ```

pub mod ast;
pub mod compile;
pub mod connlabel;
mod error;
pub mod expr;
pub mod json;
pub mod lexer;
pub mod nat;
pub mod parser;
pub mod pipeline;

pub use ast::{HookName, Policy, TableFamily};
pub use compile::{compile, load_file, load_str, Ruleset};
pub use error::{Error, Pos};
pub use pipeline::{CounterValue, Fate, Outcome, Path, Pipeline, Reason, RuleRef};
