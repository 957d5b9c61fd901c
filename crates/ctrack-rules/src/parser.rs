//! The text parser: tokens → [`ast::File`], for the `nft -f` subset documented in the
//! README (tables, chains with their hook header, rules, `ct helper` objects,
//! `flush ruleset`, `define`). Handles are assigned as nft assigns them when the file
//! is loaded into an empty namespace: per table, chains first, then objects, then each
//! rule (an anonymous set takes a handle just before its rule).

use crate::ast::*;
use crate::error::{Error, Pos};
use crate::lexer::{self, Tok, Token};

/// Parse a ruleset text; `file` names it in errors.
pub fn parse(file: &str, src: &str) -> Result<File, Error> {
    let toks = lexer::tokens(file, src).map_err(|e| e.with_source(src))?;
    let mut p = Parser {
        file,
        toks,
        i: 0,
        out: File::default(),
    };
    p.file_body().map_err(|e| e.with_source(src))?;
    for t in &mut p.out.tables {
        assign_handles(t);
    }
    Ok(p.out)
}

fn assign_handles(t: &mut Table) {
    let mut h = 1u64;
    for c in &mut t.chains {
        c.handle = h;
        h += 1;
    }
    h += t.helpers.len() as u64;
    for c in &mut t.chains {
        for r in &mut c.rules {
            for it in &r.items {
                if let Item::Match(m) = it {
                    if matches!(m.value, Value::Set(_)) {
                        h += 1;
                    }
                }
            }
            r.handle = h;
            h += 1;
        }
    }
}

/// The priority keywords of the ip, ip6 and inet families (nft `std_prio_table`).
pub fn priority_keyword(w: &str) -> Option<i32> {
    Some(match w {
        "raw" => -300,
        "mangle" => -150,
        "dstnat" => -100,
        "filter" => 0,
        "security" => 50,
        "srcnat" => 100,
        _ => return None,
    })
}

struct Parser<'a> {
    file: &'a str,
    toks: Vec<Token>,
    i: usize,
    out: File,
}

const EOF_POS: Pos = Pos {
    line: 0,
    col: 0,
    end: 0,
};

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.tok)
    }
    fn peek_word(&self) -> Option<&str> {
        match self.peek() {
            Some(Tok::Word(w)) => Some(w.as_str()),
            _ => None,
        }
    }
    fn pos(&self) -> Pos {
        self.toks
            .get(self.i)
            .or_else(|| self.toks.last())
            .map_or(EOF_POS, |t| t.pos)
    }
    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.i).cloned();
        self.i += 1;
        t
    }
    fn unexpected(&self, expecting: &str) -> Error {
        match self.toks.get(self.i) {
            Some(t) => {
                let mut m = format!("syntax error, unexpected {}", t.tok.describe());
                if !expecting.is_empty() {
                    m.push_str(", expecting ");
                    m.push_str(expecting);
                }
                Error::at(self.file, t.pos, m)
            }
            None => Error::at(
                self.file,
                self.pos(),
                format!("syntax error, unexpected end of file, expecting {expecting}"),
            ),
        }
    }
    fn err(&self, pos: Pos, msg: impl Into<String>) -> Error {
        Error::at(self.file, pos, msg)
    }
    fn skip_seps(&mut self) {
        while self.peek() == Some(&Tok::Sep) {
            self.i += 1;
        }
    }
    fn word(&mut self, expecting: &str) -> Result<(String, Pos), Error> {
        match self.toks.get(self.i) {
            Some(Token {
                tok: Tok::Word(w),
                pos,
            }) => {
                let r = (w.clone(), *pos);
                self.i += 1;
                Ok(r)
            }
            _ => Err(self.unexpected(expecting)),
        }
    }
    /// A word or a quoted string (names).
    fn name(&mut self) -> Result<(String, Pos), Error> {
        match self.toks.get(self.i) {
            Some(Token {
                tok: Tok::Word(w) | Tok::Str(w),
                pos,
            }) => {
                let r = (w.clone(), *pos);
                self.i += 1;
                Ok(r)
            }
            _ => Err(self.unexpected("string")),
        }
    }
    fn expect(&mut self, t: Tok, what: &str) -> Result<(), Error> {
        if self.peek() == Some(&t) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }
    fn expect_word(&mut self, w: &str) -> Result<Pos, Error> {
        if self.peek_word() == Some(w) {
            let p = self.pos();
            self.i += 1;
            Ok(p)
        } else {
            Err(self.unexpected(w))
        }
    }
    fn at_rule_end(&self) -> bool {
        matches!(self.peek(), None | Some(Tok::Sep) | Some(Tok::RBrace))
    }

    fn file_body(&mut self) -> Result<(), Error> {
        loop {
            self.skip_seps();
            let Some(w) = self.peek_word().map(str::to_string) else {
                if self.peek().is_none() {
                    return Ok(());
                }
                return Err(self.unexpected("command"));
            };
            let pos = self.pos();
            match w.as_str() {
                "flush" => {
                    self.i += 1;
                    self.expect_word("ruleset")?;
                    // Only the whole ruleset can be flushed here (we start empty).
                    if !self.at_rule_end() {
                        self.word("family")?;
                    }
                    self.out.tables.clear();
                }
                "table" => {
                    self.i += 1;
                    self.table()?;
                }
                "add" | "create" => {
                    self.i += 1;
                    self.add_command()?;
                }
                "include" => return Err(self.err(pos, "include is not supported")),
                _ => {
                    return Err(
                        self.unexpected("table or flush or add or define (the supported commands)")
                    )
                }
            }
        }
    }

    fn family_and_name(&mut self) -> Result<(TableFamily, String, Pos), Error> {
        let (first, pos) = self.name()?;
        if let Some(f) = TableFamily::parse(&first) {
            if matches!(self.peek(), Some(Tok::Word(_) | Tok::Str(_))) {
                let (n, _) = self.name()?;
                return Ok((f, n, pos));
            }
        }
        Ok((TableFamily::Ip, first, pos))
    }

    fn table_index(&mut self, family: TableFamily, name: &str, pos: Pos) -> usize {
        if let Some(i) = self
            .out
            .tables
            .iter()
            .position(|t| t.family == family && t.name == name)
        {
            return i;
        }
        self.out.tables.push(Table {
            family,
            name: name.to_string(),
            chains: Vec::new(),
            helpers: Vec::new(),
            pos,
        });
        self.out.tables.len() - 1
    }

    fn table(&mut self) -> Result<(), Error> {
        let (family, name, pos) = self.family_and_name()?;
        let ti = self.table_index(family, &name, pos);
        if self.peek() != Some(&Tok::LBrace) {
            return Ok(());
        }
        self.i += 1;
        loop {
            self.skip_seps();
            match self.peek() {
                Some(Tok::RBrace) => {
                    self.i += 1;
                    return Ok(());
                }
                Some(Tok::Word(w)) => {
                    match w.as_str() {
                        "chain" => {
                            self.i += 1;
                            let (cname, cpos) = self.name()?;
                            let ci = self.chain_index(ti, &cname, cpos);
                            if self.peek() == Some(&Tok::LBrace) {
                                self.i += 1;
                                self.chain_body(ti, ci, family)?;
                            }
                        }
                        "ct" => {
                            self.i += 1;
                            self.ct_object(ti)?;
                        }
                        "flags" | "comment" => {
                            self.i += 1;
                            self.next();
                        }
                        "set" | "map" => return Err(self.err(
                            self.pos(),
                            "named sets and maps are not supported (use anonymous sets { ... })",
                        )),
                        _ => return Err(self.unexpected("chain or ct helper or '}'")),
                    }
                }
                _ => return Err(self.unexpected("chain or '}'")),
            }
        }
    }

    fn chain_index(&mut self, ti: usize, name: &str, pos: Pos) -> usize {
        let t = &mut self.out.tables[ti];
        if let Some(i) = t.chains.iter().position(|c| c.name == name) {
            return i;
        }
        t.chains.push(Chain {
            name: name.to_string(),
            base: None,
            rules: Vec::new(),
            handle: 0,
            pos,
        });
        t.chains.len() - 1
    }

    fn ct_object(&mut self, ti: usize) -> Result<(), Error> {
        let (kind, kpos) = self.word("helper")?;
        if kind != "helper" {
            return Err(self.err(
                kpos,
                format!("ct {kind} objects are not supported (only ct helper)"),
            ));
        }
        let (name, _) = self.name()?;
        self.expect(Tok::LBrace, "'{'")?;
        let mut obj = CtHelperObject {
            name,
            helper_type: String::new(),
            protocol: String::new(),
        };
        loop {
            self.skip_seps();
            match self.next() {
                Some(Token {
                    tok: Tok::RBrace, ..
                }) => break,
                Some(Token {
                    tok: Tok::Word(w),
                    pos,
                }) => match w.as_str() {
                    "type" => {
                        obj.helper_type = self.name()?.0;
                        if self.peek_word() == Some("protocol") {
                            self.i += 1;
                            obj.protocol = self.word("tcp or udp")?.0;
                        }
                    }
                    "l3proto" | "policy" => {
                        while !self.at_rule_end() {
                            self.i += 1;
                        }
                    }
                    _ => return Err(self.err(pos, format!("syntax error, unexpected {w}"))),
                },
                _ => {
                    self.i -= 1;
                    return Err(self.unexpected("type or '}'"));
                }
            }
        }
        self.out.tables[ti].helpers.push(obj);
        Ok(())
    }

    fn add_command(&mut self) -> Result<(), Error> {
        let (what, _) = self.word("table or chain or rule")?;
        match what.as_str() {
            "table" => self.table(),
            "chain" => {
                let (family, tname, pos) = self.family_and_name()?;
                let ti = self.table_index(family, &tname, pos);
                let (cname, cpos) = self.name()?;
                let ci = self.chain_index(ti, &cname, cpos);
                if self.peek() == Some(&Tok::LBrace) {
                    self.i += 1;
                    self.chain_body(ti, ci, family)?;
                }
                Ok(())
            }
            "rule" => {
                let (family, tname, pos) = self.family_and_name()?;
                let Some(ti) = self
                    .out
                    .tables
                    .iter()
                    .position(|t| t.family == family && t.name == tname)
                else {
                    return Err(self.err(
                        pos,
                        format!(
                            "No such file or directory; did you mean table ‘{tname}’ in family {}?",
                            family.name()
                        ),
                    ));
                };
                let (cname, cpos) = self.name()?;
                let Some(ci) = self.out.tables[ti]
                    .chains
                    .iter()
                    .position(|c| c.name == cname)
                else {
                    return Err(self.err(
                        cpos,
                        format!("No such file or directory; chain {cname} does not exist"),
                    ));
                };
                let r = self.rule()?;
                self.out.tables[ti].chains[ci].rules.push(r);
                Ok(())
            }
            _ => Err(self.err(self.pos(), format!("add {what} is not supported"))),
        }
    }

    fn chain_body(&mut self, ti: usize, ci: usize, family: TableFamily) -> Result<(), Error> {
        loop {
            self.skip_seps();
            match self.peek() {
                Some(Tok::RBrace) => {
                    self.i += 1;
                    return Ok(());
                }
                None => return Err(self.unexpected("'}'")),
                Some(Tok::Word(w)) if w == "type" => {
                    self.i += 1;
                    let b = self.chain_header(family)?;
                    self.out.tables[ti].chains[ci].base = Some(b);
                }
                Some(Tok::Word(w)) if w == "policy" => {
                    self.i += 1;
                    let pol = self.policy()?;
                    match &mut self.out.tables[ti].chains[ci].base {
                        Some(b) => b.policy = pol,
                        None => {
                            return Err(self.err(self.pos(), "policy on a chain without a hook"))
                        }
                    }
                }
                Some(Tok::Word(w)) if w == "comment" => {
                    self.i += 1;
                    self.next();
                }
                _ => {
                    let r = self.rule()?;
                    self.out.tables[ti].chains[ci].rules.push(r);
                }
            }
        }
    }

    fn policy(&mut self) -> Result<Policy, Error> {
        let (w, pos) = self.word("accept or drop")?;
        match w.as_str() {
            "accept" => Ok(Policy::Accept),
            "drop" => Ok(Policy::Drop),
            _ => Err(self.err(
                pos,
                format!("syntax error, unexpected {w}, expecting accept or drop"),
            )),
        }
    }

    fn chain_header(&mut self, family: TableFamily) -> Result<BaseChain, Error> {
        let (t, tpos) = self.word("filter or nat or route")?;
        let chain_type = match t.as_str() {
            "filter" => ChainType::Filter,
            "nat" => ChainType::Nat,
            "route" => ChainType::Route,
            _ => return Err(self.err(tpos, format!("unknown chain type {t}"))),
        };
        self.expect_word("hook")?;
        let (h, hpos) = self.name()?;
        let Some(hook) = HookName::parse(&h) else {
            return Err(self.err(hpos, format!("unknown chain hook {h}")));
        };
        let mut device = None;
        if self.peek_word() == Some("device") {
            self.i += 1;
            device = Some(self.name()?.0);
        }
        self.expect_word("priority")?;
        let priority = self.priority(family)?;
        let mut policy = Policy::Accept;
        if self.peek() == Some(&Tok::Sep) {
            self.i += 1;
        }
        if self.peek_word() == Some("policy") {
            self.i += 1;
            policy = self.policy()?;
        }
        Ok(BaseChain {
            chain_type,
            hook,
            priority,
            policy,
            device,
        })
    }

    fn priority(&mut self, family: TableFamily) -> Result<i32, Error> {
        let (w, pos) = self.word("priority")?;
        let base = match w.parse::<i32>() {
            Ok(n) => n,
            Err(_) => match (family, priority_keyword(&w)) {
                (TableFamily::Ip | TableFamily::Ip6 | TableFamily::Inet, Some(n)) => n,
                (TableFamily::Other(_), Some(0)) => 0,
                _ => {
                    return Err(self.err(pos, format!("'{w}' is invalid priority in this context.")))
                }
            },
        };
        // `filter + 10`, `raw - 5`, `mangle-1`
        let mut total = base;
        loop {
            match self.peek_word() {
                Some("+") | Some("-") => {
                    let neg = self.peek_word() == Some("-");
                    self.i += 1;
                    let (n, npos) = self.word("number")?;
                    let v: i32 = n
                        .parse()
                        .map_err(|_| self.err(npos, format!("invalid priority offset {n}")))?;
                    total = if neg { total - v } else { total + v };
                }
                Some(w) if (w.starts_with('+') || w.starts_with('-')) && w.len() > 1 => {
                    let v: i32 = w.parse().map_err(|_| {
                        self.err(self.pos(), format!("invalid priority offset {w}"))
                    })?;
                    self.i += 1;
                    total += v;
                }
                _ => break,
            }
        }
        Ok(total)
    }

    fn rule(&mut self) -> Result<Rule, Error> {
        let pos = self.pos();
        let mut items = Vec::new();
        let mut comment = None;
        while !self.at_rule_end() {
            let ipos = self.pos();
            let (w, _) = self.word("match or statement")?;
            if w == "comment" {
                comment = Some(self.name()?.0);
                continue;
            }
            let it = self.item(&w, ipos)?;
            items.push(it);
        }
        if items.is_empty() {
            return Err(self.unexpected("match or statement"));
        }
        Ok(Rule {
            items,
            handle: 0,
            pos,
            comment,
        })
    }

    fn key_after(&mut self, w: &str, pos: Pos) -> Result<Option<Key>, Error> {
        let l4 = |s: &str| -> Option<u8> {
            Some(match s {
                "th" => 0,
                "tcp" => 6,
                "udp" => 17,
                "dccp" => 33,
                "sctp" => 132,
                "udplite" => 136,
                _ => return None,
            })
        };
        let k = match w {
            "ip" | "ip6" => {
                let (f, fpos) = self.word("saddr or daddr")?;
                match (w, f.as_str()) {
                    ("ip", "saddr") => Key::IpSaddr,
                    ("ip", "daddr") => Key::IpDaddr,
                    ("ip", "protocol") => Key::IpProtocol,
                    ("ip6", "saddr") => Key::Ip6Saddr,
                    ("ip6", "daddr") => Key::Ip6Daddr,
                    ("ip6", "nexthdr") => Key::Ip6Nexthdr,
                    _ => return Err(self.err(fpos, format!("{w} {f} is not supported"))),
                }
            }
            p if l4(p).is_some() => {
                let n = l4(p).unwrap_or(0);
                let (f, fpos) = self.word("sport or dport")?;
                match f.as_str() {
                    "sport" => Key::Sport(n),
                    "dport" => Key::Dport(n),
                    "flags" if n == 6 => Key::TcpFlags,
                    _ => return Err(self.err(fpos, format!("{p} {f} is not supported"))),
                }
            }
            "icmp" | "icmpv6" => {
                let (f, fpos) = self.word("type or code")?;
                match (w, f.as_str()) {
                    ("icmp", "type") => Key::IcmpType,
                    ("icmp", "code") => Key::IcmpCode,
                    ("icmpv6", "type") => Key::Icmpv6Type,
                    ("icmpv6", "code") => Key::Icmpv6Code,
                    _ => return Err(self.err(fpos, format!("{w} {f} is not supported"))),
                }
            }
            "meta" => {
                let (f, fpos) = self.word("meta key")?;
                match meta_key(&f) {
                    Some(k) => k,
                    None => return Err(self.err(fpos, format!("meta {f} is not supported"))),
                }
            }
            "iifname" | "oifname" | "mark" | "l4proto" | "nfproto" | "length" => {
                meta_key(w).unwrap_or(Key::MetaMark)
            }
            "ct" => {
                let (f, fpos) = self.word("ct key")?;
                match f.as_str() {
                    "state" => Key::CtState,
                    "status" => Key::CtStatus,
                    "direction" => Key::CtDirection,
                    "mark" => Key::CtMark,
                    "zone" => Key::CtZone(None),
                    "label" => Key::CtLabel,
                    "helper" => Key::CtHelper,
                    "l3proto" => Key::CtL3proto,
                    "protocol" => Key::CtProtocol,
                    "original" | "reply" => {
                        let reply = f == "reply";
                        let (mut g, mut gpos) =
                            self.word("saddr or daddr or proto-src or proto-dst")?;
                        let mut fam = 0;
                        if g == "ip" || g == "ip6" {
                            fam = if g == "ip" { 4 } else { 6 };
                            (g, gpos) = self.word("saddr or daddr")?;
                        }
                        match g.as_str() {
                            "saddr" => Key::CtAddr(reply, true, fam),
                            "daddr" => Key::CtAddr(reply, false, fam),
                            "proto-src" if fam == 0 => Key::CtProto(reply, true),
                            "proto-dst" if fam == 0 => Key::CtProto(reply, false),
                            "zone" => Key::CtZone(Some(reply)),
                            _ => return Err(self.err(gpos, format!("ct {f} {g} is not supported"))),
                        }
                    }
                    "count" => {
                        return Err(self.err(fpos, "ct count is not supported yet"));
                    }
                    _ => return Err(self.err(fpos, format!("ct {f} is not supported"))),
                }
            }
            _ => return Ok(None),
        };
        let _ = pos;
        Ok(Some(k))
    }

    fn item(&mut self, w: &str, pos: Pos) -> Result<Item, Error> {
        if let Some(key) = self.key_after(w, pos)? {
            if self.peek_word() == Some("set") {
                self.i += 1;
                let v = self.value(key)?;
                let st = match key {
                    Key::CtMark => Stmt::CtMarkSet(v),
                    Key::CtZone(dir) => Stmt::CtZoneSet(dir, v),
                    Key::CtLabel => Stmt::CtLabelSet(v),
                    Key::MetaMark => Stmt::MetaMarkSet(v),
                    Key::CtHelper => match v {
                        Value::Str(s, _) | Value::Word(s, _) => Stmt::CtHelperSet(s),
                        _ => return Err(self.err(pos, "ct helper set expects a name")),
                    },
                    _ => return Err(self.err(pos, "this key cannot be set")),
                };
                return Ok(Item::Stmt(st, pos));
            }
            return self.match_rest(key, pos).map(Item::Match);
        }
        let st = match w {
            "accept" => Stmt::Accept,
            "drop" => Stmt::Drop,
            "return" => Stmt::Return,
            "continue" => Stmt::Continue,
            "jump" | "goto" => {
                let (c, _) = self.name()?;
                if w == "jump" {
                    Stmt::Jump(c)
                } else {
                    Stmt::Goto(c)
                }
            }
            "reject" => {
                let mut s = String::new();
                while !self.at_rule_end() && !self.peek_word().is_some_and(is_stmt_keyword) {
                    if let Some(t) = self.next() {
                        if !s.is_empty() {
                            s.push(' ');
                        }
                        s.push_str(&t.tok.describe());
                    }
                }
                Stmt::Reject(s)
            }
            "counter" => {
                let (mut packets, mut bytes) = (0, 0);
                while let Some(k @ ("packets" | "bytes")) = self.peek_word() {
                    let is_p = k == "packets";
                    self.i += 1;
                    let (n, npos) = self.word("number")?;
                    let v: u64 = n
                        .parse()
                        .map_err(|_| self.err(npos, format!("invalid counter value {n}")))?;
                    if is_p {
                        packets = v;
                    } else {
                        bytes = v;
                    }
                }
                Stmt::Counter { packets, bytes }
            }
            "log" => {
                let (mut prefix, mut group) = (None, None);
                loop {
                    match self.peek_word() {
                        Some("prefix") => {
                            self.i += 1;
                            prefix = Some(self.name()?.0);
                        }
                        Some("group") => {
                            self.i += 1;
                            let (n, npos) = self.word("number")?;
                            group =
                                Some(n.parse().map_err(|_| {
                                    self.err(npos, format!("invalid log group {n}"))
                                })?);
                        }
                        Some("level" | "snaplen" | "queue-threshold") => {
                            self.i += 2;
                        }
                        Some("flags") => {
                            self.i += 1;
                            while matches!(self.peek(), Some(Tok::Word(w)) if !is_stmt_keyword(w))
                                || self.peek() == Some(&Tok::Comma)
                            {
                                self.i += 1;
                            }
                        }
                        _ => break,
                    }
                }
                Stmt::Log { prefix, group }
            }
            "notrack" => Stmt::Notrack,
            "snat" | "dnat" | "masquerade" | "redirect" => {
                let kind = match w {
                    "snat" => NatKind::Snat,
                    "dnat" => NatKind::Dnat,
                    "masquerade" => NatKind::Masquerade,
                    _ => NatKind::Redirect,
                };
                let mut s = String::new();
                while !self.at_rule_end() && self.peek_word() != Some("comment") {
                    if let Some(t) = self.next() {
                        if !s.is_empty() {
                            s.push(' ');
                        }
                        s.push_str(&t.tok.describe());
                    }
                }
                Stmt::Nat(kind, s)
            }
            "limit" | "queue" | "quota" | "meter" | "set" | "update" | "add" | "dup" | "fwd"
            | "synproxy" | "tproxy" | "flow" => {
                while !self.at_rule_end() {
                    self.i += 1;
                }
                Stmt::Unsupported(w.to_string())
            }
            _ => {
                self.i -= 1;
                return Err(self.unexpected("a match or a statement"));
            }
        };
        Ok(Item::Stmt(st, pos))
    }

    fn match_rest(&mut self, key: Key, pos: Pos) -> Result<Match, Error> {
        let mut mask = None;
        if self.peek() == Some(&Tok::Amp) {
            self.i += 1;
            mask = Some(self.value(key)?);
        }
        let mut op = match self.peek() {
            Some(Tok::Cmp(c)) => {
                let o = match *c {
                    "==" => Op::Eq,
                    "!=" => Op::Ne,
                    "<" => Op::Lt,
                    ">" => Op::Gt,
                    "<=" => Op::Le,
                    _ => Op::Ge,
                };
                self.i += 1;
                o
            }
            Some(Tok::Word(w)) => match w.as_str() {
                "eq" => Op::Eq,
                "ne" => Op::Ne,
                "lt" => Op::Lt,
                "gt" => Op::Gt,
                "le" => Op::Le,
                "ge" => Op::Ge,
                _ => Op::Implicit,
            },
            _ => Op::Implicit,
        };
        if op != Op::Implicit && matches!(self.peek(), Some(Tok::Word(_))) {
            if let Some(Tok::Word(w)) = self.peek() {
                if matches!(w.as_str(), "eq" | "ne" | "lt" | "gt" | "le" | "ge") {
                    self.i += 1;
                }
            }
        }
        if self.at_rule_end() {
            return Err(self.unexpected("a value"));
        }
        let value = self.value(key)?;
        // `tcp flags syn / syn,ack`: (flags & mask) == value.
        if self.peek_word() == Some("/") && mask.is_none() {
            self.i += 1;
            mask = Some(self.value(key)?);
            if op == Op::Implicit {
                op = Op::Eq;
            }
        }
        let end = self
            .toks
            .get(self.i.saturating_sub(1))
            .map_or(pos, |t| t.pos);
        Ok(Match {
            key,
            mask,
            op,
            value,
            pos: Pos {
                line: pos.line,
                col: pos.col,
                end: if end.line == pos.line {
                    end.end
                } else {
                    pos.end
                },
            },
        })
    }

    /// A value: a word (with `,` or `|` flag lists), a string, a `{ set }`, `( a|b )`,
    /// or another key (`ct mark`, `meta mark`) for `set` statements.
    fn value(&mut self, key: Key) -> Result<Value, Error> {
        let one = |p: &mut Parser<'_>| -> Result<Value, Error> {
            match p.next() {
                Some(Token {
                    tok: Tok::Word(w),
                    pos,
                }) => {
                    if is_stmt_keyword(&w) {
                        p.i -= 1;
                        return Err(p.unexpected("a value"));
                    }
                    if (w == "ct" || w == "meta")
                        && matches!(key, Key::CtMark | Key::MetaMark | Key::CtZone(_))
                    {
                        if let Some(k) = p.key_after(&w, pos)? {
                            return Ok(Value::Key(k));
                        }
                    }
                    if w == "mark" && matches!(key, Key::CtMark | Key::MetaMark) {
                        return Ok(Value::Key(Key::MetaMark));
                    }
                    Ok(Value::Word(w, pos))
                }
                Some(Token {
                    tok: Tok::Str(s),
                    pos,
                }) => Ok(Value::Str(s, pos)),
                Some(Token {
                    tok: Tok::LParen, ..
                }) => {
                    let v = p.value(key)?;
                    p.expect(Tok::RParen, "')'")?;
                    Ok(v)
                }
                _ => {
                    p.i -= 1;
                    Err(p.unexpected("a value"))
                }
            }
        };
        if self.peek() == Some(&Tok::LBrace) {
            self.i += 1;
            let mut elems = Vec::new();
            loop {
                self.skip_seps();
                if self.peek() == Some(&Tok::RBrace) {
                    self.i += 1;
                    break;
                }
                elems.push(one(self)?);
                self.skip_seps();
                match self.peek() {
                    Some(Tok::Comma) => self.i += 1,
                    Some(Tok::RBrace) => {}
                    _ => return Err(self.unexpected("comma or '}'")),
                }
            }
            return Ok(Value::Set(elems));
        }
        let first = one(self)?;
        if matches!(self.peek(), Some(Tok::Comma | Tok::Pipe)) {
            let mut v = vec![first];
            while matches!(self.peek(), Some(Tok::Comma | Tok::Pipe)) {
                self.i += 1;
                v.push(one(self)?);
            }
            return Ok(Value::Flags(v));
        }
        Ok(first)
    }
}

fn meta_key(w: &str) -> Option<Key> {
    Some(match w {
        "l4proto" => Key::L4proto,
        "nfproto" => Key::Nfproto,
        "mark" => Key::MetaMark,
        "iifname" => Key::Iifname,
        "oifname" => Key::Oifname,
        "length" => Key::Length,
        "protocol" => return None,
        _ => return None,
    })
}

fn is_stmt_keyword(w: &str) -> bool {
    matches!(
        w,
        "accept"
            | "drop"
            | "return"
            | "jump"
            | "goto"
            | "counter"
            | "log"
            | "comment"
            | "notrack"
            | "continue"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_with_a_base_chain() {
        let f = parse(
            "t.nft",
            "flush ruleset\ntable inet fw {\n chain fwd {\n  type filter hook forward priority filter + 5; policy drop;\n  ct state established,related accept\n  tcp dport { 22, 80 } counter accept # ssh\n }\n}\n",
        )
        .expect("parses");
        let c = &f.tables[0].chains[0];
        let b = c.base.as_ref().expect("base");
        assert_eq!(
            (b.hook, b.priority, b.policy),
            (HookName::Forward, 5, Policy::Drop)
        );
        assert_eq!(c.rules.len(), 2);
        assert_eq!(c.handle, 1);
        assert_eq!(c.rules[0].handle, 2);
        assert_eq!(c.rules[1].handle, 4, "the anonymous set takes handle 3");
        assert_eq!(c.rules[1].pos.line, 6);
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = parse(
            "bad.nft",
            "table inet t {\n\tchain c {\n\t\ttcp dport accept\n\t}\n}\n",
        )
        .expect_err("fails");
        assert_eq!(e.pos.map(|p| (p.line, p.col)), Some((3, 13)));
        assert!(
            e.to_string()
                .starts_with("bad.nft:3:13-18: Error: syntax error"),
            "{e}"
        );
    }

    #[test]
    fn priority_keywords() {
        for (w, n) in [
            ("raw", -300),
            ("mangle", -150),
            ("dstnat", -100),
            ("security", 50),
            ("srcnat", 100),
            ("-250", -250),
        ] {
            let f = parse(
                "t",
                &format!(
                    "table ip t {{ chain c {{ type filter hook prerouting priority {w}; }} }}"
                ),
            )
            .expect("parses");
            assert_eq!(
                f.tables[0].chains[0].base.as_ref().map(|b| b.priority),
                Some(n),
                "{w}"
            );
        }
    }
}
