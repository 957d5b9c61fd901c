//! The `conntrack(8)` listing grammar on the replay's final table and on its events.
//!
//! `ctrack replay CAPTURE -- -L -p tcp --dport 80 -o save` takes everything after `--`
//! as a conntrack 1.4.7 command line: the same options, the same filters, the same
//! output formats (`-o extended,id,ktimestamp,labels,xml,save,timestamp`, plus ctrack's
//! `json`), and the same error messages and exit statuses for bad combinations.
//!
//! * [`args`] parses the vector with conntrack's getopt rules and legality tables;
//! * [`flow`] is an entry as ctnetlink hands it to conntrack (which attributes a dump or
//!   an event carries);
//! * [`filter`] decides which flows are printed;
//! * [`text`], [`save`] and [`xml`] print them.

pub mod args;
pub mod filter;
pub mod flow;
pub mod save;
pub mod text;
pub mod xml;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod zone_label_tests;

pub use args::{parse, Command, CtError, Listing, OutputWords, Table};
pub use flow::Flow;

use crate::output;
use ctrack_core::conntrack::Conntrack;
use ctrack_core::entry::Entry;
use ctrack_core::event::{Event, EventKind};
use ctrack_core::format;
use ctrack_core::Instant;
use std::io::{self, Write};
use std::path::Path;

/// A connlabel map (`/etc/xtables/connlabel.conf`: `BIT NAME` lines, `#` comments).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    names: Vec<(u8, String)>,
}

impl Labels {
    /// Where libnetfilter_conntrack reads the map.
    pub const PATH: &'static str = "/etc/xtables/connlabel.conf";

    /// Parse the map's text.
    pub fn parse(text: &str) -> Labels {
        let mut names = Vec::new();
        for line in text.lines() {
            let line = line.trim_start();
            if line.starts_with('#') {
                continue;
            }
            let mut it = line.split_whitespace();
            if let (Some(b), Some(n)) = (it.next(), it.next()) {
                if let Ok(bit) = b.parse::<u8>() {
                    if bit < 128 {
                        names.push((bit, n.to_string()));
                    }
                }
            }
        }
        Labels { names }
    }

    /// Read the map; the error text is what `perror` would print after the colon.
    pub fn load(path: &Path) -> Result<Labels, String> {
        match std::fs::read_to_string(path) {
            Ok(t) => Ok(Labels::parse(&t)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err("No such file or directory".to_string())
            }
            Err(e) => {
                let s = e.to_string();
                Err(match s.find(" (os error") {
                    Some(i) => s[..i].to_string(),
                    None => s,
                })
            }
        }
    }

    /// The bit of a name.
    pub fn bit(&self, name: &str) -> Option<u8> {
        self.names.iter().find(|(_, n)| n == name).map(|(b, _)| *b)
    }

    /// The `labels=a,b` field of `-o labels`: libnetfilter_conntrack writes `labels=`,
    /// then `name,` per named bit, then drops the last character, so when no set bit has
    /// a name the field is a bare `labels` (checked against the kernel's conntrack).
    pub fn field(&self, bits: u128) -> String {
        let names = self.names_of(bits);
        if names.is_empty() {
            "labels".to_string()
        } else {
            format!("labels={}", names.join(","))
        }
    }

    /// Append ` ` + [`Labels::field`] to a line (conntrack's `-o labels`) when `bits` is
    /// non-zero and a map was loaded.
    pub fn append_to(line: &mut String, bits: u128, map: Option<&Labels>) {
        if let (Some(map), true) = (map, bits != 0) {
            line.push(' ');
            line.push_str(&map.field(bits));
        }
    }

    /// The names of the set bits, in bit order (unnamed bits are skipped).
    pub fn names_of(&self, bits: u128) -> Vec<&str> {
        (0..128u8)
            .filter(|b| bits & (1u128 << b) != 0)
            .filter_map(|b| {
                self.names
                    .iter()
                    .find(|(x, _)| *x == b)
                    .map(|(_, n)| n.as_str())
            })
            .collect()
    }
}

/// Prints flows for one parsed command line, keeping the XML document state and the
/// number of flows shown.
#[derive(Debug)]
pub struct Session {
    /// The parsed command line.
    pub listing: Listing,
    xml_open: bool,
    /// Flows printed so far (the footer's N).
    pub shown: usize,
}

impl Session {
    /// A session for a parsed command line.
    pub fn new(listing: Listing) -> Session {
        Session {
            listing,
            xml_open: false,
            shown: 0,
        }
    }

    /// Parse a conntrack(8) vector into a session.
    pub fn parse(args: &[String]) -> Result<Session, CtError> {
        args::parse(args).map(Session::new)
    }

    /// The text of one flow in the selected format (`entry` gives `-o json` its data).
    pub fn render(&self, f: &Flow, entry: Option<&Entry>, now: Instant) -> String {
        let o = self.listing.output;
        let labels = if o.labels {
            self.listing.labels.as_ref()
        } else {
            None
        };
        if o.save {
            save::save_line(f)
        } else if o.xml {
            xml::flow_xml(
                f,
                o.ktimestamp,
                o.timestamp && f.msg != flow::MsgType::Dump,
                labels,
            )
        } else if o.json {
            let body = entry
                .map(|e| output::entry_json(e, now))
                .unwrap_or_default();
            match f.msg {
                flow::MsgType::Dump => body,
                flow::MsgType::New => format!("{{\"event\":\"new\",\"flow\":{body}}}"),
                flow::MsgType::Update => format!("{{\"event\":\"update\",\"flow\":{body}}}"),
                flow::MsgType::Destroy => format!("{{\"event\":\"destroy\",\"flow\":{body}}}"),
            }
        } else {
            let mut line = String::new();
            if o.timestamp && f.msg != flow::MsgType::Dump {
                let ns = f.now_ns;
                line.push_str(&format!(
                    "[{:08}.{:06}]\t",
                    ns / 1_000_000_000,
                    (ns % 1_000_000_000) / 1000
                ));
            }
            line.push_str(&text::flow_text(
                f,
                text::TextFlags {
                    extended: o.extended,
                    id: o.id,
                    ktimestamp: o.ktimestamp,
                },
                labels,
            ));
            line
        }
    }

    fn emit(&mut self, out: &mut dyn Write, line: &str) -> io::Result<()> {
        if self.listing.output.xml && !self.listing.output.save && !self.xml_open {
            writeln!(out, "{}", xml::HEADER)?;
            self.xml_open = true;
        }
        writeln!(out, "{line}")?;
        self.shown += 1;
        Ok(())
    }

    /// Close the XML document if one was opened.
    pub fn close_xml(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if self.xml_open {
            writeln!(out, "{}", xml::FOOTER)?;
            self.xml_open = false;
        }
        Ok(())
    }

    /// Whether an event passes `-e` and the filter.
    pub fn event_selected(&self, ev: &Event) -> bool {
        if self.listing.table == Table::Expect {
            return false;
        }
        let bit = match ev.kind {
            EventKind::New => args::event_mask::NEW,
            EventKind::Update => args::event_mask::UPDATE,
            EventKind::Destroy => args::event_mask::DESTROY,
        };
        self.listing.event_mask & bit != 0 && self.listing.filter.matches(&Flow::from_event(ev))
    }

    /// Print one event if it is selected.
    pub fn event(&mut self, ev: &Event, out: &mut dyn Write) -> io::Result<()> {
        if self.event_selected(ev) {
            let line = self.render(&Flow::from_event(ev), Some(&ev.entry), ev.time);
            self.emit(out, &line)?;
        }
        Ok(())
    }

    /// Print one expectation event (`conntrack -E expect`): only when the session's
    /// command is `-E expect`; `-o timestamp` adds the time prefix.
    pub fn expect_event(
        &mut self,
        ev: &ctrack_core::expect::ExpectEvent,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        if self.listing.table != Table::Expect || self.listing.command != Command::Event {
            return Ok(());
        }
        let mut line = String::new();
        if self.listing.output.timestamp {
            let ns = ev.time.as_nanos();
            line.push_str(&format!(
                "[{:010}.{:06}]\t",
                ns / 1_000_000_000,
                (ns % 1_000_000_000) / 1000
            ));
        }
        line.push_str(&ev.exp.event_line(ev.kind, ev.time));
        writeln!(out, "{line}")?;
        self.shown += 1;
        Ok(())
    }

    /// The table entries the filter selects, in listing order.
    pub fn selected<'c>(&self, ct: &'c Conntrack, now: Instant) -> Vec<&'c Entry> {
        match self.listing.table {
            Table::Conntrack => ct
                .entries(now)
                .into_iter()
                .filter(|e| self.listing.filter.matches(&Flow::from_entry(e, now)))
                .collect(),
            // Nothing is dying or unconfirmed once a packet is done; expectations are
            // printed by `table`.
            _ => Vec::new(),
        }
    }

    /// Print the table (`-L`), and close the XML document.
    pub fn table(&mut self, ct: &Conntrack, now: Instant, out: &mut dyn Write) -> io::Result<()> {
        if self.listing.table == Table::Expect {
            // `conntrack -L expect`: the unexpired expectations of one family (`-f`,
            // IPv4 when none is given, as conntrack-tools dumps), text format.
            let family = self
                .listing
                .filter
                .family
                .unwrap_or(ctrack_core::Family::V4);
            for x in ct
                .expectations()
                .live(now)
                .filter(|x| x.tuple.family == family)
            {
                writeln!(out, "{}", x.list_line(now))?;
                self.shown += 1;
            }
            return Ok(());
        }
        for e in self.selected(ct, now) {
            let line = self.render(&Flow::from_entry(e, now), Some(e), now);
            self.emit(out, &line)?;
        }
        self.close_xml(out)
    }

    /// Run the end-of-replay part of the command (`-L`, `-C`, `-S`) on stdout; returns
    /// the line conntrack prints on stderr afterwards, if any. `-E` has printed its
    /// events already: this closes its XML document and gives its footer.
    pub fn finish(
        &mut self,
        ct: &Conntrack,
        now: Instant,
        out: &mut dyn Write,
    ) -> io::Result<Option<String>> {
        let expect = self.listing.table == Table::Expect;
        let pre = format!("{} v{} (conntrack-tools): ", args::PROGNAME, args::VERSION);
        match self.listing.command {
            Command::List => {
                self.table(ct, now, out)?;
                Ok(Some(if expect {
                    format!("{pre}{} expectations have been shown.", self.shown)
                } else {
                    format!("{pre}{} flow entries have been shown.", self.shown)
                }))
            }
            Command::Count => {
                let n = if expect {
                    ct.expectations().live(now).count()
                } else {
                    ct.entries(now).len()
                };
                writeln!(out, "{n}")?;
                Ok(None)
            }
            Command::Stats => {
                if expect {
                    let s = ct.stats();
                    writeln!(
                        out,
                        "cpu={:<4}\texpect_new={} expect_create={} expect_delete={} ",
                        0, s.expect_new, s.expect_create, s.expect_delete
                    )?;
                } else {
                    write!(out, "{}", format::stats_lines(&[ct.stats()]))?;
                }
                Ok(None)
            }
            Command::Event => {
                self.close_xml(out)?;
                Ok(Some(if expect {
                    format!("{pre}{} expectation events have been shown.", self.shown)
                } else {
                    format!("{pre}{} flow events have been shown.", self.shown)
                }))
            }
        }
    }
}
