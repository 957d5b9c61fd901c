//! The oracle's own nft tables in the firewall namespace, and the meaning of their log
//! prefixes.
//!
//! | chain | hook, priority | logs |
//! |---|---|---|
//! | `pre_seen` | prerouting −450 (before defrag −400 and conntrack −200) | `ctko:seen` |
//! | `pre_state` | prerouting −150 (after conntrack) | `ctko:ct:<state>[:<direction>]` |
//! | `post_fwd` | postrouting +500 (before confirm at INT_MAX) | `ctko:fwd` |
//! | `input_local` | input +500 (before confirm at INT_MAX) | `ctko:in` |
//! | `output_drop` | output −500 | nothing: drops whatever the firewall emits, before conntrack |
//! | netdev `bar_*` | ingress −10000 of each firewall interface (before any user chain) | `ctko:bar`, drops the barrier |
//!
//! The `ct` expressions are also what makes the kernel register its conntrack hooks in
//! the namespace.

use crate::error::OracleError;
use crate::netns;
use crate::{CtState, Direction};
use std::fs::File;

/// NFLOG group of the oracle's own rules.
pub(crate) const GROUP: u16 = 100;
/// NFLOG group on which the kernel's own nf_log messages arrive: conntrack's invalid
/// logs go through `nf_log_packet` without logger info, so nfnetlink_log uses its
/// default (group 0).
pub(crate) const KERNEL_GROUP: u16 = 0;
/// Ethertype of the barrier frames (IEEE "local experimental").
pub(crate) const BARRIER_ETHERTYPE: u16 = 0x88b5;

const SEEN: &str = "ctko:seen";
const STATE: &str = "ctko:ct:";
const FWD: &str = "ctko:fwd";
const LOCAL_IN: &str = "ctko:in";
const BARRIER: &str = "ctko:bar";

/// What one of the oracle's log messages says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    Seen,
    State(CtState, Option<Direction>),
    Forwarded,
    LocalIn,
    Barrier,
}

/// Reads one of our prefixes; `None` for anything else.
pub(crate) fn classify(prefix: &str) -> Option<Mark> {
    match prefix {
        SEEN => return Some(Mark::Seen),
        FWD => return Some(Mark::Forwarded),
        LOCAL_IN => return Some(Mark::LocalIn),
        BARRIER => return Some(Mark::Barrier),
        _ => {}
    }
    let rest = prefix.strip_prefix(STATE)?;
    let (state, dir) = match rest.split_once(':') {
        Some((s, d)) => (s, Some(d)),
        None => (rest, None),
    };
    let state = [
        CtState::New,
        CtState::Established,
        CtState::Related,
        CtState::Invalid,
        CtState::Untracked,
    ]
    .into_iter()
    .find(|s| s.as_str() == state)?;
    let dir = match dir {
        None => None,
        Some(d) => Some(
            [Direction::Original, Direction::Reply]
                .into_iter()
                .find(|x| x.as_str() == d)?,
        ),
    };
    Some(Mark::State(state, dir))
}

/// The oracle's ruleset text for firewall interfaces `ifnames`.
pub(crate) fn ruleset(ifnames: &(String, String)) -> String {
    let log = |prefix: &str| format!("log group {GROUP} prefix \"{prefix}\"");
    let mut states = String::new();
    for s in [CtState::Invalid, CtState::Untracked] {
        states += &format!(
            "\t\tct state {} {}\n",
            s.as_str(),
            log(&format!("{STATE}{}", s.as_str()))
        );
    }
    for s in [CtState::New, CtState::Established, CtState::Related] {
        for d in [Direction::Original, Direction::Reply] {
            states += &format!(
                "\t\tct state {} ct direction {} {}\n",
                s.as_str(),
                d.as_str(),
                log(&format!("{STATE}{}:{}", s.as_str(), d.as_str()))
            );
        }
    }
    let barrier = |name: &str, dev: &str| {
        format!(
            "\tchain {name} {{\n\
             \t\ttype filter hook ingress device \"{dev}\" priority -10000; policy accept;\n\
             \t\tether type {BARRIER_ETHERTYPE:#06x} {} drop\n\
             \t}}\n",
            log(BARRIER)
        )
    };
    format!(
        "table inet ctrack_oracle {{\n\
         \tchain pre_seen {{\n\
         \t\ttype filter hook prerouting priority -450; policy accept;\n\
         \t\t{seen}\n\
         \t}}\n\
         \tchain pre_state {{\n\
         \t\ttype filter hook prerouting priority -150; policy accept;\n\
         {states}\
         \t}}\n\
         \tchain post_fwd {{\n\
         \t\ttype filter hook postrouting priority 500; policy accept;\n\
         \t\t{fwd}\n\
         \t}}\n\
         \tchain input_local {{\n\
         \t\ttype filter hook input priority 500; policy accept;\n\
         \t\t{local}\n\
         \t}}\n\
         \tchain output_drop {{\n\
         \t\ttype filter hook output priority -500; policy drop;\n\
         \t}}\n\
         }}\n\
         table netdev ctrack_oracle {{\n\
         {bc}\
         {bs}\
         }}\n",
        seen = log(SEEN),
        fwd = log(FWD),
        local = log(LOCAL_IN),
        bc = barrier("bar_client", &ifnames.0),
        bs = barrier("bar_server", &ifnames.1),
    )
}

/// Loads the user's ruleset (if any), then the oracle's, into the firewall namespace.
pub(crate) fn load(
    fw: &File,
    ifnames: &(String, String),
    user: Option<&std::path::Path>,
) -> Result<(), OracleError> {
    let nft_err = |what: String| {
        move |e: OracleError| match e {
            OracleError::Command { stderr, .. } => OracleError::Nft { what, stderr },
            other => other,
        }
    };
    if let Some(path) = user {
        let mut cmd = netns::command_in(fw, "nft");
        cmd.arg("-f").arg(path);
        netns::run_command(cmd, None).map_err(nft_err(path.display().to_string()))?;
    }
    let mut cmd = netns::command_in(fw, "nft");
    cmd.args(["-f", "-"]);
    netns::run_command(cmd, Some(&ruleset(ifnames)))
        .map_err(nft_err("the oracle's logging tables".to_owned()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_logged_prefix_classifies() {
        let text = ruleset(&("client".into(), "server".into()));
        let prefixes: Vec<&str> = text
            .split("prefix \"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .collect();
        assert_eq!(prefixes.len(), 1 + 8 + 2 + 2, "{text}");
        for p in prefixes {
            assert!(classify(p).is_some(), "{p}");
        }
        assert!(text.contains("device \"client\""));
        assert!(text.contains("ether type 0x88b5"));
    }

    #[test]
    fn classify_states() {
        assert_eq!(
            classify("ctko:ct:established:reply"),
            Some(Mark::State(CtState::Established, Some(Direction::Reply)))
        );
        assert_eq!(
            classify("ctko:ct:invalid"),
            Some(Mark::State(CtState::Invalid, None))
        );
        assert_eq!(classify("ctko:ct:bogus"), None);
        assert_eq!(classify("ctko:ct:new:sideways"), None);
        assert_eq!(classify("nf_ct_proto_6: x"), None);
        assert_eq!(classify("ctko:bar"), Some(Mark::Barrier));
    }
}
