//! The tokenizer for nft's text syntax (`nft -f` files), with `define` variables
//! expanded as the tokens are produced.
//!
//! Words are runs of anything that is not blank, punctuation or an operator, so
//! addresses (`10.0.0.0/8`, `fe80::1`), ranges (`1024-2048`) and symbolic names
//! (`nd-neighbor-solicit`) are single words: the compiler interprets a word by the type
//! of what it is compared with, as nft's evaluator does.

use crate::error::{Error, Pos};
use std::collections::HashMap;

/// A token kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// A bare word.
    Word(String),
    /// A quoted string (quotes removed).
    Str(String),
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `;` or a newline: ends a statement.
    Sep,
    /// `,`
    Comma,
    /// `&`
    Amp,
    /// `|`
    Pipe,
    /// `=` (in `define x = y`)
    Assign,
    /// A comparison: `==`, `!=`, `<`, `>`, `<=`, `>=`.
    Cmp(&'static str),
    /// `$name` (only seen inside the lexer; expanded before the parser sees it).
    Var(String),
}

impl Tok {
    /// How nft's error messages name the token.
    pub fn describe(&self) -> String {
        match self {
            Tok::Word(w) => w.clone(),
            Tok::Str(s) => format!("quoted string \"{s}\""),
            Tok::LBrace => "'{'".into(),
            Tok::RBrace => "'}'".into(),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::Sep => "end of statement".into(),
            Tok::Comma => "comma".into(),
            Tok::Amp => "'&'".into(),
            Tok::Pipe => "'|'".into(),
            Tok::Assign => "'='".into(),
            Tok::Cmp(c) => format!("'{c}'"),
            Tok::Var(v) => format!("${v}"),
        }
    }
}

/// A token and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// Its position.
    pub pos: Pos,
}

fn is_word_char(c: char) -> bool {
    !(c.is_whitespace()
        || matches!(
            c,
            '{' | '}'
                | '('
                | ')'
                | ';'
                | ','
                | '&'
                | '|'
                | '='
                | '!'
                | '<'
                | '>'
                | '"'
                | '#'
                | '$'
                | '\\'
        ))
}

/// Split `src` into tokens (no variable expansion).
pub fn raw_tokens(file: &str, src: &str) -> Result<Vec<Token>, Error> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1u32, 1u32);
    while i < chars.len() {
        let c = chars[i];
        let start = Pos {
            line,
            col,
            end: col,
        };
        let adv = |n: usize, i: &mut usize, col: &mut u32| {
            *i += n;
            *col += n as u32;
        };
        match c {
            '\n' => {
                out.push(Token {
                    tok: Tok::Sep,
                    pos: start,
                });
                i += 1;
                line += 1;
                col = 1;
            }
            '\\' if chars.get(i + 1) == Some(&'\n') => {
                i += 2;
                line += 1;
                col = 1;
            }
            c if c.is_whitespace() => adv(1, &mut i, &mut col),
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '"' => {
                let mut s = String::new();
                let mut j = i + 1;
                while j < chars.len() && chars[j] != '"' && chars[j] != '\n' {
                    s.push(chars[j]);
                    j += 1;
                }
                if chars.get(j) != Some(&'"') {
                    return Err(Error::at(file, start, "unterminated string"));
                }
                let n = j + 1 - i;
                let pos = Pos {
                    end: col + n as u32 - 1,
                    ..start
                };
                out.push(Token {
                    tok: Tok::Str(s),
                    pos,
                });
                adv(n, &mut i, &mut col);
            }
            '$' => {
                let mut j = i + 1;
                let mut s = String::new();
                while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                    s.push(chars[j]);
                    j += 1;
                }
                if s.is_empty() {
                    return Err(Error::at(file, start, "syntax error, unexpected '$'"));
                }
                let n = j - i;
                let pos = Pos {
                    end: col + n as u32 - 1,
                    ..start
                };
                out.push(Token {
                    tok: Tok::Var(s),
                    pos,
                });
                adv(n, &mut i, &mut col);
            }
            '=' | '!' | '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let (tok, n) = match (c, next) {
                    ('=', Some('=')) => (Tok::Cmp("=="), 2),
                    ('!', Some('=')) => (Tok::Cmp("!="), 2),
                    ('<', Some('=')) => (Tok::Cmp("<="), 2),
                    ('>', Some('=')) => (Tok::Cmp(">="), 2),
                    ('<', _) => (Tok::Cmp("<"), 1),
                    ('>', _) => (Tok::Cmp(">"), 1),
                    ('=', _) => (Tok::Assign, 1),
                    _ => return Err(Error::at(file, start, "syntax error, unexpected '!'")),
                };
                let pos = Pos {
                    end: col + n as u32 - 1,
                    ..start
                };
                out.push(Token { tok, pos });
                adv(n, &mut i, &mut col);
            }
            '{' | '}' | '(' | ')' | ';' | ',' | '&' | '|' => {
                let tok = match c {
                    '{' => Tok::LBrace,
                    '}' => Tok::RBrace,
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    ';' => Tok::Sep,
                    ',' => Tok::Comma,
                    '&' => Tok::Amp,
                    _ => Tok::Pipe,
                };
                out.push(Token { tok, pos: start });
                adv(1, &mut i, &mut col);
            }
            _ => {
                let mut j = i;
                let mut s = String::new();
                while j < chars.len() && is_word_char(chars[j]) {
                    s.push(chars[j]);
                    j += 1;
                }
                let n = j - i;
                let pos = Pos {
                    end: col + n as u32 - 1,
                    ..start
                };
                out.push(Token {
                    tok: Tok::Word(s),
                    pos,
                });
                adv(n, &mut i, &mut col);
            }
        }
    }
    Ok(out)
}

/// Tokenize and expand `define NAME = ...` / `$NAME` (also `redefine`, `undefine`).
/// Definitions are removed from the stream; a use is replaced by the defined tokens
/// (positioned at the use).
pub fn tokens(file: &str, src: &str) -> Result<Vec<Token>, Error> {
    let raw = raw_tokens(file, src)?;
    let mut defs: HashMap<String, Vec<Tok>> = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    let at_stmt_start = |out: &Vec<Token>| {
        matches!(
            out.last().map(|t| &t.tok),
            None | Some(Tok::Sep) | Some(Tok::LBrace) | Some(Tok::RBrace)
        )
    };
    while i < raw.len() {
        let t = &raw[i];
        match &t.tok {
            Tok::Word(w) if (w == "define" || w == "redefine") && at_stmt_start(&out) => {
                let Some(Token {
                    tok: Tok::Word(name),
                    ..
                }) = raw.get(i + 1)
                else {
                    let p = raw.get(i + 1).map_or(t.pos, |t| t.pos);
                    return Err(Error::at(file, p, "syntax error, expecting string"));
                };
                match raw.get(i + 2) {
                    Some(Token {
                        tok: Tok::Assign, ..
                    }) => {}
                    other => {
                        let p = other.map_or(t.pos, |t| t.pos);
                        return Err(Error::at(file, p, "syntax error, expecting '='"));
                    }
                }
                let mut j = i + 3;
                let mut depth = 0i32;
                let mut val = Vec::new();
                while j < raw.len() {
                    match &raw[j].tok {
                        Tok::Sep if depth == 0 => break,
                        Tok::Sep => {
                            j += 1;
                            continue;
                        }
                        Tok::LBrace => depth += 1,
                        Tok::RBrace => depth -= 1,
                        _ => {}
                    }
                    match &raw[j].tok {
                        Tok::Var(v) => match defs.get(v) {
                            Some(ts) => val.extend(ts.iter().cloned()),
                            None => {
                                return Err(Error::at(
                                    file,
                                    raw[j].pos,
                                    format!("unknown identifier '{v}'"),
                                ))
                            }
                        },
                        tok => val.push(tok.clone()),
                    }
                    j += 1;
                }
                if val.is_empty() {
                    return Err(Error::at(file, t.pos, "syntax error, empty definition"));
                }
                if w == "define" && defs.contains_key(name) {
                    return Err(Error::at(
                        file,
                        raw[i + 1].pos,
                        format!("redefinition of symbol '{name}'"),
                    ));
                }
                defs.insert(name.clone(), val);
                i = j;
            }
            Tok::Word(w) if w == "undefine" && at_stmt_start(&out) => {
                if let Some(Token {
                    tok: Tok::Word(name),
                    ..
                }) = raw.get(i + 1)
                {
                    defs.remove(name);
                }
                i += 2;
            }
            Tok::Var(v) => {
                let Some(ts) = defs.get(v) else {
                    return Err(Error::at(file, t.pos, format!("unknown identifier '{v}'")));
                };
                for tok in ts {
                    out.push(Token {
                        tok: tok.clone(),
                        pos: t.pos,
                    });
                }
                i += 1;
            }
            _ => {
                out.push(t.clone());
                i += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(src: &str) -> Vec<Tok> {
        tokens("t", src)
            .expect("lexes")
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    #[test]
    fn words_keep_addresses_and_ranges() {
        assert_eq!(
            words("ip saddr 10.0.0.0/8 tcp dport 1024-2048 ip6 daddr fe80::1"),
            [
                "ip",
                "saddr",
                "10.0.0.0/8",
                "tcp",
                "dport",
                "1024-2048",
                "ip6",
                "daddr",
                "fe80::1"
            ]
            .iter()
            .map(|w| Tok::Word(w.to_string()))
            .collect::<Vec<_>>()
        );
    }

    #[test]
    fn defines_expand_and_vanish() {
        let t = words("define p = { 22, 80 }\ntcp dport $p # c\n");
        assert_eq!(t[0], Tok::Sep);
        assert_eq!(t[3], Tok::LBrace);
        assert_eq!(t[6], Tok::Word("80".into()));
    }

    #[test]
    fn positions_are_one_based() {
        let t = tokens("t", "table ip x {\n\tchain y\n").expect("lexes");
        let y = t
            .iter()
            .find(|t| t.tok == Tok::Word("y".into()))
            .expect("y");
        assert_eq!(
            y.pos,
            Pos {
                line: 2,
                col: 8,
                end: 8
            }
        );
    }

    #[test]
    fn unknown_variable_is_an_error() {
        assert!(tokens("t", "tcp dport $nope").is_err());
    }
}
