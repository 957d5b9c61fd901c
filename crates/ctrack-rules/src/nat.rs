//! NAT statements (`snat`, `dnat`, `masquerade`, `redirect`): their arguments parsed
//! into an engine range, and where each may appear.
//!
//! Accepted forms (nft syntax; `ip`/`ip6` selects the family in `inet` tables):
//!
//! ```text
//! snat [ip|ip6] to ADDR[-ADDR][:PORT[-PORT]] [FLAGS]     postrouting, input
//! dnat [ip|ip6] to ADDR[-ADDR][:PORT[-PORT]] [FLAGS]     prerouting, output
//! masquerade [to :PORT[-PORT]] [FLAGS]                    postrouting
//! redirect [to [:]PORT[-PORT]] [FLAGS]                    prerouting, output
//! FLAGS: random, fully-random, persistent (comma-separated)
//! ```
//!
//! IPv6 addresses with a port are written in brackets (`[2001:db8::1]:80`). The JSON of
//! `nft -j` (`{"addr": ..., "port": ..., "family": ..., "flags": ...}`) is read too.

use ctrack_core::nat::{flags, Manip, NatRange};
use ctrack_core::{Addr, Family};

/// The kind of NAT statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatKind {
    /// `snat`.
    Snat,
    /// `dnat`.
    Dnat,
    /// `masquerade`: SNAT to the outgoing interface's address.
    Masquerade,
    /// `redirect`: DNAT to the incoming interface's address (127.0.0.1 / ::1 on output).
    Redirect,
}

impl NatKind {
    /// The manip type the statement sets up.
    pub fn manip(self) -> Manip {
        match self {
            NatKind::Snat | NatKind::Masquerade => Manip::Src,
            NatKind::Dnat | NatKind::Redirect => Manip::Dst,
        }
    }
    /// nft's keyword.
    pub fn name(self) -> &'static str {
        match self {
            NatKind::Snat => "snat",
            NatKind::Dnat => "dnat",
            NatKind::Masquerade => "masquerade",
            NatKind::Redirect => "redirect",
        }
    }
}

/// A compiled NAT statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatStmt {
    /// Which statement.
    pub kind: NatKind,
    /// The family of its addresses (`None`: masquerade/redirect without addresses).
    pub family: Option<Family>,
    /// The range (for masquerade/redirect: flags and ports; the address is filled in
    /// from the interface at run time).
    pub range: NatRange,
}

fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let p = |x: &str| {
        x.trim()
            .parse::<u16>()
            .map_err(|_| format!("invalid port `{x}`"))
    };
    Ok((p(a)?, p(b)?))
}

fn parse_addr(s: &str) -> Result<(Family, Addr), String> {
    let s = s.trim_start_matches('[').trim_end_matches(']');
    match s.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => Ok((Family::V4, Addr::v4(a.octets()))),
        Ok(std::net::IpAddr::V6(a)) => Ok((Family::V6, Addr::v6(a.octets()))),
        Err(_) => Err(format!("invalid address `{s}`")),
    }
}

fn parse_addr_range(s: &str) -> Result<(Family, Addr, Addr), String> {
    // `a-b` where an IPv6 address contains ':' but never '-'.
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (fa, lo) = parse_addr(a)?;
    let (fb, hi) = parse_addr(b)?;
    if fa != fb {
        return Err(format!("`{s}`: both ends of a range must be of one family"));
    }
    Ok((fa, lo, hi))
}

/// `ADDR/LEN` as `FIRST-LAST` (`None` if the address or length is invalid).
fn prefix_range(addr: &str, len: u64) -> Option<String> {
    match addr.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(a) => {
            let host = u32::MAX.checked_shr(u32::try_from(len).ok().filter(|&l| l <= 32)?);
            let host = host.unwrap_or(0);
            let lo = u32::from(a) & !host;
            Some(format!(
                "{}-{}",
                std::net::Ipv4Addr::from(lo),
                std::net::Ipv4Addr::from(lo | host)
            ))
        }
        std::net::IpAddr::V6(a) => {
            let host = u128::MAX.checked_shr(u32::try_from(len).ok().filter(|&l| l <= 128)?);
            let host = host.unwrap_or(0);
            let lo = u128::from(a) & !host;
            Some(format!(
                "[{}]-[{}]",
                std::net::Ipv6Addr::from(lo),
                std::net::Ipv6Addr::from(lo | host)
            ))
        }
    }
}

/// Split `ADDR[-ADDR][:PORTS]` into the address part and the port part.
fn split_target(s: &str) -> (&str, Option<&str>) {
    if let Some(rest) = s.strip_prefix('[') {
        // [v6]-[v6]:ports or [v6]:ports
        if let Some(close) = s.rfind(']') {
            let after = &s[close + 1..];
            let _ = rest;
            return (&s[..=close], after.strip_prefix(':'));
        }
        return (s, None);
    }
    if s.matches(':').count() > 1 {
        return (s, None); // a bare IPv6 address or range
    }
    match s.split_once(':') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    }
}

impl NatStmt {
    /// Parse the arguments of a NAT statement as the parser stored them (tokens joined
    /// by spaces, `comma` for `,`), or the JSON body of `nft -j`.
    pub fn parse(kind: NatKind, args: &str) -> Result<NatStmt, String> {
        let t = args.trim();
        if t.starts_with('{') || t == "null" {
            return Self::parse_json(kind, t);
        }
        let mut st = NatStmt {
            kind,
            family: None,
            range: NatRange::default(),
        };
        let mut words = t.split_whitespace().peekable();
        if let Some(&w) = words.peek() {
            if w == "ip" || w == "ip6" {
                st.family = Some(if w == "ip" { Family::V4 } else { Family::V6 });
                words.next();
            }
        }
        let mut target = None;
        if words.peek() == Some(&"to") {
            words.next();
            target = Some(words.next().ok_or("expected an address after `to`")?);
        } else if matches!(kind, NatKind::Snat | NatKind::Dnat) {
            if let Some(&w) = words.peek() {
                if !matches!(w, "random" | "fully-random" | "persistent") {
                    target = words.next();
                }
            }
        }
        if let Some(tg) = target {
            st.apply_target(tg)?;
        } else if matches!(kind, NatKind::Snat | NatKind::Dnat) {
            return Err(format!("{}: an address is required", kind.name()));
        }
        for w in words {
            st.range.flags |= match w {
                "comma" => 0,
                "random" => flags::PROTO_RANDOM,
                "fully-random" => flags::PROTO_RANDOM_FULLY,
                "persistent" => flags::PERSISTENT,
                other => return Err(format!("unexpected `{other}`")),
            };
        }
        Ok(st)
    }

    fn apply_target(&mut self, tg: &str) -> Result<(), String> {
        let (addr, ports) = split_target(tg);
        if !addr.is_empty() {
            if matches!(self.kind, NatKind::Masquerade | NatKind::Redirect) {
                if self.kind == NatKind::Redirect && ports.is_none() {
                    // `redirect to 8080`
                    return self.set_ports(addr);
                }
                return Err(format!("{}: only ports can be given", self.kind.name()));
            }
            let (fam, lo, hi) = parse_addr_range(addr)?;
            if let Some(f) = self.family {
                if f != fam {
                    return Err(format!("`{addr}`: address of the wrong family"));
                }
            }
            self.family = Some(fam);
            self.range.flags |= flags::MAP_IPS;
            self.range.min_addr = lo;
            self.range.max_addr = hi;
        }
        if let Some(p) = ports {
            self.set_ports(p)?;
        }
        Ok(())
    }

    fn set_ports(&mut self, p: &str) -> Result<(), String> {
        let (lo, hi) = parse_port_range(p)?;
        self.range.flags |= flags::PROTO_SPECIFIED;
        self.range.min_port = lo;
        self.range.max_port = hi;
        Ok(())
    }

    fn parse_json(kind: NatKind, t: &str) -> Result<NatStmt, String> {
        use serde_json::Value as J;
        let v: J = serde_json::from_str(t).map_err(|e| e.to_string())?;
        let mut st = NatStmt {
            kind,
            family: None,
            range: NatRange::default(),
        };
        if let Some(f) = v.get("family").and_then(J::as_str) {
            st.family = Some(if f == "ip6" { Family::V6 } else { Family::V4 });
        }
        let scalar = |x: &J| -> Option<String> {
            x.as_str()
                .map(str::to_string)
                .or_else(|| x.as_u64().map(|n| n.to_string()))
        };
        let range_of = |x: &J| -> Option<String> {
            if let Some(p) = x.get("prefix") {
                // nft -j writes an aligned address range as a prefix.
                prefix_range(p.get("addr")?.as_str()?, p.get("len")?.as_u64()?)
            } else if let Some(r) = x.get("range").and_then(J::as_array) {
                Some(format!("{}-{}", scalar(r.first()?)?, scalar(r.get(1)?)?))
            } else {
                scalar(x)
            }
        };
        if let Some(a) = v.get("addr") {
            let s = range_of(a).ok_or("unsupported addr expression")?;
            let (fam, lo, hi) = parse_addr_range(&s)?;
            st.family = Some(fam);
            st.range.flags |= flags::MAP_IPS;
            st.range.min_addr = lo;
            st.range.max_addr = hi;
        }
        if let Some(p) = v.get("port") {
            let s = range_of(p).ok_or("unsupported port expression")?;
            st.set_ports(&s)?;
        }
        let fl: Vec<String> = match v.get("flags") {
            Some(J::String(s)) => vec![s.clone()],
            Some(J::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        for f in fl {
            st.range.flags |= match f.as_str() {
                "random" => flags::PROTO_RANDOM,
                "fully-random" => flags::PROTO_RANDOM_FULLY,
                "persistent" => flags::PERSISTENT,
                other => return Err(format!("unknown flag `{other}`")),
            };
        }
        if matches!(kind, NatKind::Snat | NatKind::Dnat) && st.range.flags & flags::MAP_IPS == 0 {
            return Err(format!("{}: an address is required", kind.name()));
        }
        Ok(st)
    }

    /// Whether the statement may appear in a nat chain of hook `hook` (nft's
    /// validation: snat postrouting/input, dnat and redirect prerouting/output,
    /// masquerade postrouting).
    pub fn valid_at(&self, hook: crate::HookName) -> bool {
        use crate::HookName as H;
        matches!(
            (self.kind, hook),
            (NatKind::Snat, H::Postrouting | H::Input)
                | (NatKind::Dnat | NatKind::Redirect, H::Prerouting | H::Output)
                | (NatKind::Masquerade, H::Postrouting)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let s = NatStmt::parse(NatKind::Snat, "to 198.51.100.1-198.51.100.4:1024-2047").unwrap();
        assert_eq!(s.family, Some(Family::V4));
        assert_eq!(s.range.flags, flags::MAP_IPS | flags::PROTO_SPECIFIED);
        assert_eq!(s.range.max_addr, Addr::v4([198, 51, 100, 4]));
        assert_eq!((s.range.min_port, s.range.max_port), (1024, 2047));
        let d = NatStmt::parse(NatKind::Dnat, "ip to 172.17.0.2:80").unwrap();
        assert_eq!((d.range.min_port, d.range.max_port), (80, 80));
        let m = NatStmt::parse(NatKind::Masquerade, "").unwrap();
        assert_eq!(m.range.flags, 0);
        let m =
            NatStmt::parse(NatKind::Masquerade, "to :1024-2000 random comma persistent").unwrap();
        assert_eq!(
            m.range.flags,
            flags::PROTO_SPECIFIED | flags::PROTO_RANDOM | flags::PERSISTENT
        );
        let r = NatStmt::parse(NatKind::Redirect, "to :8080").unwrap();
        assert_eq!(r.range.min_port, 8080);
        let r = NatStmt::parse(NatKind::Redirect, "to 8080").unwrap();
        assert_eq!(r.range.min_port, 8080);
        let v6 = NatStmt::parse(NatKind::Dnat, "ip6 to [2001:db8::1]:80").unwrap();
        assert_eq!(v6.family, Some(Family::V6));
        assert_eq!(v6.range.min_port, 80);
        let v6 = NatStmt::parse(NatKind::Snat, "to 2001:db8::1").unwrap();
        assert_eq!(v6.family, Some(Family::V6));
        assert!(NatStmt::parse(NatKind::Snat, "").is_err());
        let j = NatStmt::parse(
            NatKind::Snat,
            r#"{"addr": {"range": ["10.0.0.1", "10.0.0.2"]}, "port": {"range": [1000, 2000]}, "flags": ["persistent"]}"#,
        )
        .unwrap();
        assert_eq!(j.range.max_addr, Addr::v4([10, 0, 0, 2]));
        assert_eq!(j.range.flags & flags::PERSISTENT, flags::PERSISTENT);
    }

    #[test]
    fn json_prefix_addresses() {
        // nft -j writes 10.2.0.100-10.2.0.103 as a /30 prefix.
        let j = NatStmt::parse(
            NatKind::Snat,
            r#"{"addr": {"prefix": {"addr": "10.2.0.100", "len": 30}}, "port": {"range": [20000, 20099]}}"#,
        )
        .unwrap();
        assert_eq!(j.range.min_addr, Addr::v4([10, 2, 0, 100]));
        assert_eq!(j.range.max_addr, Addr::v4([10, 2, 0, 103]));
        assert_eq!(
            prefix_range("2001:db8::5", 126).as_deref(),
            Some("[2001:db8::4]-[2001:db8::7]")
        );
        assert_eq!(prefix_range("10.0.0.1", 33), None);
    }
}
