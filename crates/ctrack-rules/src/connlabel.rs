//! Connection label names, as nft resolves them: `/etc/connlabel.conf` (nft 1.0.6's
//! `CONNLABEL_CONF`), lines `BIT NAME` (whitespace-separated, `#` comments, bits
//! 0..127). nft reads the file when it meets a label name; so does the compiler, so a
//! ruleset with numeric labels only needs no file.

use std::path::Path;

/// Where nft reads label names.
pub const PATH: &str = "/etc/connlabel.conf";

/// The highest label bit (`XT_CONNLABEL_MAXBIT`).
pub const MAX_BIT: u8 = 127;

/// The bit of `name` in the map text, if listed.
pub fn bit_in(text: &str, name: &str) -> Option<u8> {
    text.lines().find_map(|line| {
        let line = line.trim_start();
        if line.starts_with('#') {
            return None;
        }
        let mut it = line.split_whitespace();
        let bit = it.next()?.parse::<u8>().ok().filter(|b| *b <= MAX_BIT)?;
        (it.next()? == name).then_some(bit)
    })
}

/// A label word as nft parses it: a number 0..=127, else a name from [`PATH`]. The
/// error is nft's text.
pub fn resolve(word: &str) -> Result<u8, String> {
    resolve_in(Path::new(PATH), word)
}

/// [`resolve`] with the map at `path`.
pub fn resolve_in(path: &Path, word: &str) -> Result<u8, String> {
    if let Ok(n) = word.parse::<u32>() {
        return u8::try_from(n)
            .ok()
            .filter(|b| *b <= MAX_BIT)
            .ok_or_else(|| format!("Value {word} exceeds valid range 0-{MAX_BIT}"));
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    bit_in(&text, word).ok_or_else(|| {
        format!(
            "{}: could not parse conntrack label \"{word}\"",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        let text = "# labels\n5 five\n7\tseven extra\n200 big\nx bad\n";
        assert_eq!(bit_in(text, "five"), Some(5));
        assert_eq!(bit_in(text, "seven"), Some(7));
        assert_eq!(bit_in(text, "big"), None);
        assert_eq!(bit_in(text, "labels"), None);
        assert_eq!(resolve_in(Path::new("/nonexistent"), "12"), Ok(12));
        assert_eq!(
            resolve_in(Path::new("/nonexistent"), "128"),
            Err("Value 128 exceeds valid range 0-127".into())
        );
        assert_eq!(
            resolve_in(Path::new("/nonexistent"), "five"),
            Err("/nonexistent: could not parse conntrack label \"five\"".into())
        );
    }
}
