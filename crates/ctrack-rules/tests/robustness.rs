//! A broken ruleset gets an error, never a panic: every ruleset of `tests/rulesets`
//! mutated many times (characters deleted, inserted, replaced, lines swapped, cut short),
//! as nft text and as the JSON shape, through parse and compile. Every error must name
//! the file. Deterministic (fixed seed).

use std::path::Path;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const ALPHABET: &[u8] = b" \n\t{};:,.-/\"#$=!<>[]()0123456789abcdefghijklmnopqrstuvwxyz";

fn mutate(rng: &mut Rng, src: &str) -> String {
    let mut b: Vec<u8> = src.as_bytes().to_vec();
    for _ in 0..=rng.below(3) {
        if b.is_empty() {
            break;
        }
        let i = rng.below(b.len());
        match rng.below(5) {
            0 => {
                b.remove(i);
            }
            1 => b.insert(i, ALPHABET[rng.below(ALPHABET.len())]),
            2 => b[i] = ALPHABET[rng.below(ALPHABET.len())],
            3 => b.truncate(i),
            _ => {
                let j = rng.below(b.len());
                b.swap(i, j);
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

/// Label names as their numbers (from tests/rulesets/connlabel.conf), so a ruleset with
/// names compiles without /etc/connlabel.conf in place.
fn numeric_labels(dir: &Path, mut src: String) -> String {
    let map = std::fs::read_to_string(dir.join("connlabel.conf")).unwrap_or_default();
    for line in map.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut it = line.split_whitespace();
        if let (Some(bit), Some(name)) = (it.next(), it.next()) {
            for pre in ["label set ", "label != ", "label "] {
                src = src.replace(&format!("{pre}{name}\n"), &format!("{pre}{bit}\n"));
                src = src.replace(&format!("{pre}{name} "), &format!("{pre}{bit} "));
            }
        }
    }
    src
}

#[test]
fn mutated_rulesets_give_errors_not_panics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/rulesets");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/rulesets")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "nft"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut rng = Rng(0x5eed_1234_abcd_9876);
    let (mut ok, mut err) = (0u32, 0u32);
    for f in &files {
        let src = numeric_labels(&dir, std::fs::read_to_string(f).expect("read"));
        assert!(
            ctrack_rules::load_str("r.nft", &src).is_ok(),
            "{} must compile",
            f.display()
        );
        for _ in 0..1500 {
            let m = mutate(&mut rng, &src);
            match ctrack_rules::load_str("r.nft", &m) {
                Ok(_) => ok += 1,
                Err(e) => {
                    err += 1;
                    assert!(
                        e.to_string().contains("r.nft"),
                        "error without the file: {e}"
                    );
                }
            }
        }
    }
    // JSON input: mutate a small, valid document.
    let json = r#"{"nftables":[{"metainfo":{"json_schema_version":1}},{"table":{"family":"inet","name":"t","handle":1}},{"chain":{"family":"inet","table":"t","name":"c","handle":1,"type":"filter","hook":"forward","prio":0,"policy":"accept"}},{"rule":{"family":"inet","table":"t","chain":"c","handle":2,"expr":[{"match":{"op":"in","left":{"ct":{"key":"state"}},"right":["established","related"]}},{"accept":null}]}}]}"#;
    for _ in 0..3000 {
        let m = mutate(&mut rng, json);
        match ctrack_rules::load_str("r.json", &m) {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
    }
    assert!(
        err > 0 && ok > 0,
        "mutations should both pass and fail: {ok} ok, {err} errors"
    );
}
