//! The JSON that `nft -j list ruleset` prints → [`ast::File`], so a live kernel's
//! ruleset can be exported and replayed. Handles come from the JSON; rules have no line.

use crate::ast::*;
use crate::error::{Error, Pos};
use serde_json::Value as J;

/// Parse `nft -j list ruleset` output; `file` names it in errors.
pub fn parse(file: &str, src: &str) -> Result<File, Error> {
    let root: J = serde_json::from_str(src).map_err(|e| {
        Error::at(
            file,
            Pos {
                line: e.line() as u32,
                col: e.column() as u32,
                end: e.column() as u32,
            },
            format!("JSON: {e}"),
        )
        .with_source(src)
    })?;
    let Some(list) = root.get("nftables").and_then(J::as_array) else {
        return Err(Error::file(file, "JSON: expected {\"nftables\": [...]}"));
    };
    let mut out = File::default();
    let err = |m: String| Error::file(file, format!("JSON: {m}"));
    let find_table = |out: &mut File, fam: &str, name: &str| -> Result<usize, Error> {
        let family = TableFamily::parse(fam).ok_or_else(|| err(format!("unknown family {fam}")))?;
        out.tables
            .iter()
            .position(|t| t.family == family && t.name == name)
            .ok_or_else(|| err(format!("table {fam} {name} is not declared before use")))
    };
    for obj in list {
        let Some((kind, body)) = obj.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        let s = |k: &str| body.get(k).and_then(J::as_str).unwrap_or("").to_string();
        match kind.as_str() {
            "metainfo" => {}
            "table" => {
                let family = TableFamily::parse(&s("family"))
                    .ok_or_else(|| err(format!("unknown family {}", s("family"))))?;
                out.tables.push(Table {
                    family,
                    name: s("name"),
                    chains: Vec::new(),
                    helpers: Vec::new(),
                    pos: Pos::default(),
                });
            }
            "chain" => {
                let ti = find_table(&mut out, &s("family"), &s("table"))?;
                let base = if body.get("hook").is_some() {
                    let chain_type = match s("type").as_str() {
                        "filter" => ChainType::Filter,
                        "nat" => ChainType::Nat,
                        "route" => ChainType::Route,
                        t => return Err(err(format!("chain {}: unknown type {t}", s("name")))),
                    };
                    let hook = HookName::parse(&s("hook")).ok_or_else(|| {
                        err(format!("chain {}: unknown hook {}", s("name"), s("hook")))
                    })?;
                    let priority = match body.get("prio") {
                        Some(J::Number(n)) => n.as_i64().unwrap_or(0) as i32,
                        Some(J::String(w)) => crate::parser::priority_keyword(w)
                            .ok_or_else(|| err(format!("chain {}: priority {w}", s("name"))))?,
                        _ => 0,
                    };
                    Some(BaseChain {
                        chain_type,
                        hook,
                        priority,
                        policy: if s("policy") == "drop" {
                            Policy::Drop
                        } else {
                            Policy::Accept
                        },
                        device: body.get("dev").and_then(J::as_str).map(str::to_string),
                    })
                } else {
                    None
                };
                out.tables[ti].chains.push(Chain {
                    name: s("name"),
                    base,
                    rules: Vec::new(),
                    handle: body.get("handle").and_then(J::as_u64).unwrap_or(0),
                    pos: Pos::default(),
                });
            }
            "ct helper" => {
                let ti = find_table(&mut out, &s("family"), &s("table"))?;
                out.tables[ti].helpers.push(CtHelperObject {
                    name: s("name"),
                    helper_type: s("type"),
                    protocol: s("protocol"),
                });
            }
            "rule" => {
                let ti = find_table(&mut out, &s("family"), &s("table"))?;
                let chain = s("chain");
                let handle = body.get("handle").and_then(J::as_u64).unwrap_or(0);
                let ctx = |m: String| err(format!("chain {chain} rule handle {handle}: {m}"));
                let Some(ci) = out.tables[ti].chains.iter().position(|c| c.name == chain) else {
                    return Err(ctx("chain is not declared".into()));
                };
                let mut items = Vec::new();
                for e in body.get("expr").and_then(J::as_array).into_iter().flatten() {
                    items.push(item(e).map_err(ctx)?);
                }
                out.tables[ti].chains[ci].rules.push(Rule {
                    items,
                    handle,
                    pos: Pos::default(),
                    comment: body.get("comment").and_then(J::as_str).map(str::to_string),
                });
            }
            "set" | "map" => {
                return Err(err(format!(
                    "named {kind} {}: named sets and maps are not supported",
                    s("name")
                )))
            }
            _ => {}
        }
    }
    Ok(out)
}

fn key(left: &J) -> Result<Key, String> {
    let Some((kind, body)) = left.as_object().and_then(|o| o.iter().next()) else {
        return Err(format!("unsupported expression {left}"));
    };
    let s = |k: &str| body.get(k).and_then(J::as_str).unwrap_or("");
    let l4 = |p: &str| -> Option<u8> {
        Some(match p {
            "th" => 0,
            "tcp" => 6,
            "udp" => 17,
            "dccp" => 33,
            "sctp" => 132,
            "udplite" => 136,
            _ => return None,
        })
    };
    let k = match kind.as_str() {
        "payload" => match (s("protocol"), s("field")) {
            ("ip", "saddr") => Key::IpSaddr,
            ("ip", "daddr") => Key::IpDaddr,
            ("ip", "protocol") => Key::IpProtocol,
            ("ip6", "saddr") => Key::Ip6Saddr,
            ("ip6", "daddr") => Key::Ip6Daddr,
            ("ip6", "nexthdr") => Key::Ip6Nexthdr,
            ("tcp", "flags") => Key::TcpFlags,
            ("icmp", "type") => Key::IcmpType,
            ("icmp", "code") => Key::IcmpCode,
            ("icmpv6", "type") => Key::Icmpv6Type,
            ("icmpv6", "code") => Key::Icmpv6Code,
            (p, "sport") if l4(p).is_some() => Key::Sport(l4(p).unwrap_or(0)),
            (p, "dport") if l4(p).is_some() => Key::Dport(l4(p).unwrap_or(0)),
            (p, f) => return Err(format!("payload {p} {f} is not supported")),
        },
        "meta" => match s("key") {
            "l4proto" => Key::L4proto,
            "nfproto" => Key::Nfproto,
            "mark" => Key::MetaMark,
            "iifname" => Key::Iifname,
            "oifname" => Key::Oifname,
            "length" => Key::Length,
            k => return Err(format!("meta {k} is not supported")),
        },
        "ct" => {
            let reply = match s("dir") {
                "" => None,
                "original" => Some(false),
                "reply" => Some(true),
                d => return Err(format!("ct direction {d}")),
            };
            match (s("key"), reply) {
                ("state", None) => Key::CtState,
                ("status", None) => Key::CtStatus,
                ("direction", None) => Key::CtDirection,
                ("mark", None) => Key::CtMark,
                ("zone", dir) => Key::CtZone(dir),
                ("label", None) => Key::CtLabel,
                ("helper", None) => Key::CtHelper,
                ("l3proto", None) => Key::CtL3proto,
                ("protocol", None) => Key::CtProtocol,
                ("saddr", Some(r)) => Key::CtAddr(r, true, 0),
                ("daddr", Some(r)) => Key::CtAddr(r, false, 0),
                ("ip saddr", Some(r)) => Key::CtAddr(r, true, 4),
                ("ip daddr", Some(r)) => Key::CtAddr(r, false, 4),
                ("ip6 saddr", Some(r)) => Key::CtAddr(r, true, 6),
                ("ip6 daddr", Some(r)) => Key::CtAddr(r, false, 6),
                ("proto-src", Some(r)) => Key::CtProto(r, true),
                ("proto-dst", Some(r)) => Key::CtProto(r, false),
                (k, _) => return Err(format!("ct {k} is not supported")),
            }
        }
        k => return Err(format!("{k} expressions are not supported")),
    };
    Ok(k)
}

fn value(v: &J) -> Result<Value, String> {
    Ok(match v {
        J::Number(n) => Value::Num(n.as_u64().ok_or_else(|| format!("bad number {n}"))?),
        J::String(s) => Value::Word(s.clone(), Pos::default()),
        J::Bool(b) => Value::Num(u64::from(*b)),
        J::Array(a) => Value::Flags(a.iter().map(value).collect::<Result<_, _>>()?),
        J::Object(o) => {
            if let Some(s) = o.get("set") {
                match s {
                    J::Array(a) => Value::Set(a.iter().map(value).collect::<Result<_, _>>()?),
                    one => Value::Set(vec![value(one)?]),
                }
            } else if let Some(r) = o.get("range").and_then(J::as_array) {
                let (Some(a), Some(b)) = (r.first(), r.get(1)) else {
                    return Err("range needs two values".into());
                };
                Value::Range(Box::new(value(a)?), Box::new(value(b)?))
            } else if let Some(p) = o.get("prefix") {
                let a = p.get("addr").ok_or("prefix without addr")?;
                let len = p
                    .get("len")
                    .and_then(J::as_u64)
                    .ok_or("prefix without len")?;
                Value::Prefix(Box::new(value(a)?), len.min(128) as u8)
            } else if o.contains_key("ct") || o.contains_key("meta") {
                Value::Key(key(v)?)
            } else {
                return Err(format!("unsupported value {v}"));
            }
        }
        J::Null => return Err("null value".into()),
    })
}

fn item(e: &J) -> Result<Item, String> {
    let Some((kind, body)) = e.as_object().and_then(|o| o.iter().next()) else {
        return Err(format!("unsupported expression {e}"));
    };
    let p = Pos::default();
    let st = match kind.as_str() {
        "match" => {
            let op = match body.get("op").and_then(J::as_str).unwrap_or("==") {
                "==" => Op::Eq,
                // `!`: none of the flag bits (nft's print of `flags & bits == 0`).
                "!=" | "!" => Op::Ne,
                "<" => Op::Lt,
                ">" => Op::Gt,
                "<=" => Op::Le,
                ">=" => Op::Ge,
                "in" => Op::In,
                o => return Err(format!("operator {o} is not supported")),
            };
            let left = body.get("left").ok_or("match without left")?;
            let (k, mask) = match left.get("&").and_then(J::as_array) {
                Some(a) => {
                    let (Some(l), Some(m)) = (a.first(), a.get(1)) else {
                        return Err("& needs two operands".into());
                    };
                    (key(l)?, Some(value(m)?))
                }
                None => (key(left)?, None),
            };
            let right = body.get("right").ok_or("match without right")?;
            let mut v = value(right)?;
            // A JSON string is a name for string keys.
            if let (Key::Iifname | Key::Oifname | Key::CtHelper, Value::Word(w, p)) = (k, &v) {
                v = Value::Str(w.clone(), *p);
            }
            // `==` with a mask on a flag type is an exact comparison after masking;
            // a bare `==` on a flag type compares the whole value.
            return Ok(Item::Match(Match {
                key: k,
                mask,
                op,
                value: v,
                pos: p,
            }));
        }
        "accept" => Stmt::Accept,
        "drop" => Stmt::Drop,
        "return" => Stmt::Return,
        "continue" => Stmt::Continue,
        "reject" => Stmt::Reject(body.to_string()),
        "jump" | "goto" => {
            let t = body
                .get("target")
                .and_then(J::as_str)
                .ok_or("jump without target")?
                .to_string();
            if kind == "jump" {
                Stmt::Jump(t)
            } else {
                Stmt::Goto(t)
            }
        }
        "counter" => Stmt::Counter {
            packets: body.get("packets").and_then(J::as_u64).unwrap_or(0),
            bytes: body.get("bytes").and_then(J::as_u64).unwrap_or(0),
        },
        "log" => Stmt::Log {
            prefix: body.get("prefix").and_then(J::as_str).map(str::to_string),
            group: body.get("group").and_then(J::as_u64).map(|g| g as u16),
        },
        "notrack" => Stmt::Notrack,
        "mangle" => {
            let k = key(body.get("key").ok_or("mangle without key")?)?;
            let v = value(body.get("value").ok_or("mangle without value")?)?;
            match k {
                Key::CtMark => Stmt::CtMarkSet(v),
                Key::CtZone(dir) => Stmt::CtZoneSet(dir, v),
                Key::CtLabel => Stmt::CtLabelSet(v),
                Key::MetaMark => Stmt::MetaMarkSet(v),
                _ => return Err("this key cannot be set".into()),
            }
        }
        "ct helper" => Stmt::CtHelperSet(body.as_str().unwrap_or("").to_string()),
        "snat" => Stmt::Nat(NatKind::Snat, body.to_string()),
        "dnat" => Stmt::Nat(NatKind::Dnat, body.to_string()),
        "masquerade" => Stmt::Nat(NatKind::Masquerade, body.to_string()),
        "redirect" => Stmt::Nat(NatKind::Redirect, body.to_string()),
        other => Stmt::Unsupported(other.to_string()),
    };
    Ok(Item::Stmt(st, p))
}
