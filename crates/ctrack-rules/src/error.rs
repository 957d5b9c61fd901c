//! Ruleset errors, printed as nft prints them: `FILE:LINE:COL-END: Error: what`, then
//! the source line and carets under the offending text.

use std::fmt;

/// A position in a ruleset file: 1-based line, 1-based first and last column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line (1-based).
    pub line: u32,
    /// First column (1-based, in characters).
    pub col: u32,
    /// Last column (inclusive).
    pub end: u32,
}

/// A ruleset that could not be read, parsed or compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The file name (as given).
    pub file: String,
    /// Where, if known.
    pub pos: Option<Pos>,
    /// What went wrong (`syntax error, unexpected X, expecting Y`).
    pub msg: String,
    /// The source line, for the caret display.
    pub line_text: Option<String>,
}

impl Error {
    /// An error at `pos` in `file`.
    pub fn at(file: &str, pos: Pos, msg: impl Into<String>) -> Error {
        Error {
            file: file.to_string(),
            pos: Some(pos),
            msg: msg.into(),
            line_text: None,
        }
    }

    /// An error with no position.
    pub fn file(file: &str, msg: impl Into<String>) -> Error {
        Error {
            file: file.to_string(),
            pos: None,
            msg: msg.into(),
            line_text: None,
        }
    }

    /// Attach the source line from `src` (the whole file text).
    pub fn with_source(mut self, src: &str) -> Error {
        if let Some(p) = self.pos {
            self.line_text = src
                .lines()
                .nth(p.line.saturating_sub(1) as usize)
                .map(str::to_string);
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some(p) if p.end > p.col => write!(
                f,
                "{}:{}:{}-{}: Error: {}",
                self.file, p.line, p.col, p.end, self.msg
            )?,
            Some(p) => write!(f, "{}:{}:{}: Error: {}", self.file, p.line, p.col, self.msg)?,
            None => write!(f, "{}: Error: {}", self.file, self.msg)?,
        }
        if let (Some(p), Some(l)) = (self.pos, &self.line_text) {
            write!(f, "\n{l}\n")?;
            // Keep tabs so the carets line up under the text, as nft does.
            let mut pad = String::new();
            for (i, c) in l.chars().enumerate() {
                if i + 1 >= p.col as usize {
                    break;
                }
                pad.push(if c == '\t' { '\t' } else { ' ' });
            }
            let n = (p.end.max(p.col) - p.col + 1) as usize;
            write!(f, "{pad}{}", "^".repeat(n))?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}
