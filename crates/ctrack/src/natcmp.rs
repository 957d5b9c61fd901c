//! NAT-aware comparison of `conntrack -L`, /proc and `conntrack -E` lines (issue 7).
//!
//! When a source port (or ICMP id) has to be moved, the kernel starts its search at a
//! random offset (`get_random_u16()`, boot-random), so the exact port it picks cannot be
//! reproduced. Where a line's reply tuple shows such a remap (its `dport` differs from
//! the original `sport`, or its ICMP `id` from the original one), the port is replaced
//! by its class before the lines are compared: `dport=~1-511`, `dport=~600-1023`,
//! `dport=~1024-65535` (the kernel's default classes, §13.3; a rule's explicit range
//! lies inside one of them), or `id=~`. The decision itself (identity or remap) and
//! everything else on the line are still compared exactly. Destination-port changes
//! (DNAT, redirect) are deterministic and left alone. Separately, no two entries of one
//! table may share a reply tuple ([`duplicate_reply_tuples`]). See docs/divergences.md.

use std::collections::BTreeMap;

/// The class of a remapped port: the default range of §13.3 it falls in.
fn port_class(port: u32) -> &'static str {
    match port {
        1..=511 => "~1-511",
        512..=1023 => "~600-1023",
        _ => "~1024-65535",
    }
}

/// Token ranges of the original and reply tuples of a line (each starts at a `src=`
/// token and runs to the next tuple or to the first token that is not a tuple field).
fn tuple_spans(toks: &[&str]) -> Option<((usize, usize), (usize, usize))> {
    let starts: Vec<usize> = toks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.starts_with("src="))
        .map(|(i, _)| i)
        .collect();
    let (&o, &r) = (starts.first()?, starts.get(1)?);
    let is_field = |t: &str| {
        [
            "src=", "dst=", "sport=", "dport=", "type=", "code=", "id=", "srckey=", "dstkey=",
        ]
        .iter()
        .any(|p| t.starts_with(p))
    };
    let end = (r..toks.len())
        .find(|&i| !is_field(toks[i]))
        .unwrap_or(toks.len());
    Some(((o, r), (r, end)))
}

fn field<'a>(toks: &[&'a str], span: (usize, usize), name: &str) -> Option<(usize, &'a str)> {
    (span.0..span.1).find_map(|i| toks[i].strip_prefix(name).map(|v| (i, v)))
}

/// `line` with a randomly remapped source port (or ICMP id) in its reply tuple replaced
/// by its class; other lines unchanged.
pub fn normalise(line: &str) -> String {
    let toks: Vec<&str> = line.split(' ').collect();
    let Some((orig, reply)) = tuple_spans(&toks) else {
        return line.to_string();
    };
    let mut out: Vec<String> = toks.iter().map(|t| (*t).to_string()).collect();
    if let (Some((_, sport)), Some((i, dport))) =
        (field(&toks, orig, "sport="), field(&toks, reply, "dport="))
    {
        if sport != dport {
            let class = dport.parse::<u32>().map_or("~?", port_class);
            out[i] = format!("dport={class}");
        }
    }
    if let (Some((_, oid)), Some((i, rid))) =
        (field(&toks, orig, "id="), field(&toks, reply, "id="))
    {
        if oid != rid {
            out[i] = "id=~".to_string();
        }
    }
    out.join(" ")
}

/// [`normalise`] on every line.
pub fn normalise_all(lines: &[String]) -> Vec<String> {
    lines.iter().map(|l| normalise(l)).collect()
}

/// Reply tuples (with the zone, when shown) held by more than one entry of a table:
/// NAT must never give two live entries the same reply tuple.
pub fn duplicate_reply_tuples(lines: &[String]) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for l in lines {
        let toks: Vec<&str> = l.split_whitespace().collect();
        let Some((_, reply)) = tuple_spans(&toks) else {
            continue;
        };
        let mut key = toks[reply.0..reply.1].join(" ");
        // The protocol (name and number: every protocol without a tracker is named
        // `unknown`) and the zone are part of the tuple's identity.
        if let Some(i) = toks
            .iter()
            .position(|t| t.chars().all(|c| c.is_ascii_lowercase()))
        {
            let num = toks.get(i + 1).copied().unwrap_or("");
            key = format!("{} {num} {key}", toks[i]);
        }
        if let Some(z) = toks.iter().find(|t| t.starts_with("zone=")) {
            key.push(' ');
            key.push_str(z);
        }
        *seen.entry(key).or_default() += 1;
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(k, n)| format!("{n} entries with reply tuple {k}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REMAPPED: &str = "tcp      6 119 SYN_SENT src=10.1.0.2 dst=10.2.0.1 sport=40000 dport=80 [UNREPLIED] src=10.2.0.1 dst=10.2.0.254 sport=80 dport=41044 mark=0 use=1";

    #[test]
    fn remapped_source_ports_compare_by_class() {
        let other = REMAPPED.replace("dport=41044", "dport=5353");
        assert_eq!(normalise(REMAPPED), normalise(&other));
        assert!(normalise(REMAPPED).contains("dport=~1024-65535"));
        let low = REMAPPED.replace("dport=41044", "dport=791");
        assert_ne!(normalise(REMAPPED), normalise(&low));
        assert!(normalise(&low).contains("dport=~600-1023"));
        // Identity is not a remap: kept exactly.
        let id = REMAPPED.replace("dport=41044", "dport=40000");
        assert_eq!(normalise(&id), id);
        assert_ne!(normalise(&id), normalise(REMAPPED));
    }

    #[test]
    fn dnat_ports_and_icmp_ids() {
        let dnat = "tcp      6 119 SYN_SENT src=10.1.0.1 dst=10.2.0.1 sport=40010 dport=80 [UNREPLIED] src=10.1.0.254 dst=10.1.0.1 sport=8080 dport=40010 mark=0 use=1";
        assert_eq!(normalise(dnat), dnat);
        let icmp = "icmp     1 29 src=10.1.0.1 dst=10.2.0.1 type=8 code=0 id=7 src=10.2.0.1 dst=10.2.0.254 type=0 code=0 id=9 mark=0 use=1";
        assert!(normalise(icmp).ends_with("id=~ mark=0 use=1"));
    }

    #[test]
    fn generic_protocols_differ_by_number() {
        let a = "unknown  253 599 src=10.1.0.1 dst=10.2.0.1 src=10.2.0.1 dst=10.1.0.1 mark=0 use=1";
        let b = "unknown  99 599 src=10.1.0.1 dst=10.2.0.1 src=10.2.0.1 dst=10.1.0.1 mark=0 use=1";
        assert!(duplicate_reply_tuples(&[a.to_string(), b.to_string()]).is_empty());
        assert_eq!(
            duplicate_reply_tuples(&[a.to_string(), a.to_string()]).len(),
            1
        );
    }

    #[test]
    fn duplicates_are_found() {
        let a = REMAPPED.to_string();
        let b = a.replace("src=10.1.0.2", "src=10.1.0.3");
        assert!(duplicate_reply_tuples(&[a.clone(), b.clone()]).len() == 1);
        let c = b.replace("dport=41044", "dport=41045");
        assert!(duplicate_reply_tuples(&[a, c]).is_empty());
        // GRE keys are part of the tuple.
        let g1 = "gre      47 29 src=10.1.0.1 dst=10.2.0.1 srckey=0x1 dstkey=0x2 src=10.2.0.1 dst=10.1.0.1 srckey=0x2 dstkey=0x1 mark=0 use=1";
        let g2 = g1.replace("0x1", "0x3");
        assert!(duplicate_reply_tuples(&[g1.to_string(), g2]).is_empty());
    }
}
