//! The capacity report (`ctrack replay --report FILE.svg --report-json FILE`): the table
//! over capture time — entries by state, ASSURED or not, early drops and table-full drops
//! per second — with `nf_conntrack_max` as a line. Beyond what the kernel shows.

use ctrack_core::conntrack::Conntrack;
use ctrack_core::proto::ProtoState;
use ctrack_core::status::Status;
use ctrack_core::Instant;
use std::fmt::Write;

/// The categories stacked in the chart, bottom first.
pub const CATEGORIES: [&str; 7] = [
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "TCP closing",
    "UDP",
    "ICMP",
    "other",
];
const COLORS: [&str; 7] = [
    "#2e7d32", "#c62828", "#ef6c00", "#8d6e63", "#1565c0", "#6a1b9a", "#757575",
];

/// One sample of the table.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Sample {
    /// Seconds since the first packet.
    pub t: f64,
    /// Entries (confirmed, unexpired).
    pub entries: u32,
    /// Entries per category, in [`CATEGORIES`] order.
    pub by_state: [u32; 7],
    /// ASSURED entries.
    pub assured: u32,
    /// Early drops since the previous sample, per second.
    pub early_drops_per_s: f64,
    /// Table-full drops since the previous sample, per second.
    pub drops_per_s: f64,
}

/// Samples the table as a replay advances.
#[derive(Debug)]
pub struct Capacity {
    start: Option<Instant>,
    interval_ns: u64,
    next: u64,
    last_t: u64,
    last_early: u32,
    last_drop: u32,
    /// The samples so far.
    pub samples: Vec<Sample>,
    /// `nf_conntrack_max`.
    pub max: u32,
}

/// Samples kept at most; beyond that the interval doubles and samples are halved.
const MAX_SAMPLES: usize = 1200;

impl Capacity {
    /// A sampler; `max` is drawn as a line.
    pub fn new(max: u32) -> Capacity {
        Capacity {
            start: None,
            interval_ns: 1_000_000_000,
            next: 0,
            last_t: 0,
            last_early: 0,
            last_drop: 0,
            samples: Vec::new(),
            max,
        }
    }

    /// Call after each packet: takes the samples due at `now`.
    pub fn observe(&mut self, ct: &Conntrack, now: Instant) {
        let start = *self.start.get_or_insert(now);
        let t = now.saturating_since(start).as_nanos() as u64;
        if t < self.next {
            return;
        }
        self.sample(ct, now, t);
        self.next = (t / self.interval_ns + 1) * self.interval_ns;
    }

    /// The last sample, at the end of the replay.
    pub fn finish(&mut self, ct: &Conntrack, now: Instant) {
        let start = *self.start.get_or_insert(now);
        let t = now.saturating_since(start).as_nanos() as u64;
        if self.samples.last().is_none_or(|s| (s.t * 1e9) as u64 != t) {
            self.sample(ct, now, t);
        }
    }

    fn sample(&mut self, ct: &Conntrack, now: Instant, t: u64) {
        let mut s = Sample {
            t: t as f64 / 1e9,
            ..Sample::default()
        };
        for e in ct.entries(now) {
            s.entries += 1;
            if e.status.has(Status::ASSURED) {
                s.assured += 1;
            }
            let cat = match &e.proto {
                ProtoState::Tcp(_) => match e.proto.state_name() {
                    Some("ESTABLISHED") => 0,
                    Some("SYN_SENT") | Some("SYN_SENT2") => 1,
                    Some("SYN_RECV") => 2,
                    _ => 3,
                },
                ProtoState::Udp(_) => 4,
                ProtoState::Icmp => 5,
                _ => 6,
            };
            s.by_state[cat] += 1;
        }
        let st = ct.stats();
        let dt = (t.saturating_sub(self.last_t) as f64 / 1e9).max(1e-9);
        if !self.samples.is_empty() {
            s.early_drops_per_s = f64::from(st.early_drop.wrapping_sub(self.last_early)) / dt;
            s.drops_per_s = f64::from(st.drop.wrapping_sub(self.last_drop)) / dt;
        }
        self.last_early = st.early_drop;
        self.last_drop = st.drop;
        self.last_t = t;
        self.samples.push(s);
        if self.samples.len() > MAX_SAMPLES {
            // Keep every other sample; rates of dropped samples fold into the next one.
            let mut kept = Vec::with_capacity(self.samples.len() / 2 + 1);
            let mut carry = (0.0, 0.0, 0.0);
            let mut prev_t = 0.0;
            for (i, mut x) in std::mem::take(&mut self.samples).into_iter().enumerate() {
                let span = x.t - prev_t;
                carry.0 += x.early_drops_per_s * span;
                carry.1 += x.drops_per_s * span;
                carry.2 += span;
                prev_t = x.t;
                if i % 2 == 1 || i == 0 {
                    if carry.2 > 0.0 {
                        x.early_drops_per_s = carry.0 / carry.2;
                        x.drops_per_s = carry.1 / carry.2;
                    }
                    carry = (0.0, 0.0, 0.0);
                    kept.push(x);
                }
            }
            self.samples = kept;
            self.interval_ns *= 2;
        }
    }

    /// The series as JSON.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "nf_conntrack_max": self.max,
            "categories": CATEGORIES,
            "samples": self.samples,
        })
        .to_string()
    }

    /// The chart as SVG: stacked entries by state with the max line (top), ASSURED vs not
    /// (middle), drops per second (bottom).
    pub fn to_svg(&self, title: &str) -> String {
        let (w, h) = (960.0f64, 720.0f64);
        let (left, right) = (80.0, 20.0);
        let pw = w - left - right;
        let tmax = self.samples.last().map_or(1.0, |s| s.t).max(1e-3);
        let x = |t: f64| left + pw * t / tmax;
        let mut o = String::new();
        let _ = write!(
            o,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = write!(o, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
        let _ = write!(
            o,
            r#"<text x="{left}" y="20" font-size="15" font-weight="bold">{}</text>"#,
            xml_escape(title)
        );
        // Panel 1: stacked entries by state.
        let (top, ph) = (40.0, 300.0);
        let ymax = self
            .samples
            .iter()
            .map(|s| s.entries)
            .max()
            .unwrap_or(0)
            .max(self.max.min(u32::MAX / 2))
            .max(1) as f64
            * 1.05;
        let y1 = |v: f64| top + ph - ph * v / ymax;
        axes(&mut o, left, top, pw, ph, ymax, tmax, "entries");
        let mut base = vec![0.0f64; self.samples.len()];
        for (c, name) in CATEGORIES.iter().enumerate() {
            if self.samples.iter().all(|s| s.by_state[c] == 0) {
                continue;
            }
            let mut pts = String::new();
            for (i, s) in self.samples.iter().enumerate() {
                let _ = write!(
                    pts,
                    "{:.1},{:.1} ",
                    x(s.t),
                    y1(base[i] + f64::from(s.by_state[c]))
                );
            }
            for (i, s) in self.samples.iter().enumerate().rev() {
                let _ = write!(pts, "{:.1},{:.1} ", x(s.t), y1(base[i]));
            }
            for (i, s) in self.samples.iter().enumerate() {
                base[i] += f64::from(s.by_state[c]);
            }
            let _ = write!(
                o,
                r#"<polygon points="{pts}" fill="{}" fill-opacity="0.8"><title>{name}</title></polygon>"#,
                COLORS[c]
            );
        }
        if self.max > 0 && f64::from(self.max) <= ymax {
            let ym = y1(f64::from(self.max));
            let _ = write!(
                o,
                r##"<line x1="{left}" y1="{ym:.1}" x2="{:.1}" y2="{ym:.1}" stroke="#000" stroke-dasharray="6,4"/><text x="{:.1}" y="{:.1}" text-anchor="end">nf_conntrack_max = {}</text>"##,
                left + pw,
                left + pw - 4.0,
                ym - 4.0,
                self.max
            );
        }
        // Legend.
        let mut lx = left;
        for (c, name) in CATEGORIES.iter().enumerate() {
            let _ = write!(
                o,
                r#"<rect x="{lx}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}">{name}</text>"#,
                top + ph + 22.0,
                COLORS[c],
                lx + 14.0,
                top + ph + 31.0
            );
            lx += 14.0 + 8.0 * name.len() as f64 + 16.0;
        }
        // Panel 2: assured vs not.
        let (top2, ph2) = (400.0, 130.0);
        let y2 = |v: f64| top2 + ph2 - ph2 * v / ymax;
        axes(&mut o, left, top2, pw, ph2, ymax, tmax, "ASSURED / not");
        for (pick, color, name) in [(0, "#2e7d32", "ASSURED"), (1, "#c62828", "not ASSURED")] {
            let mut pts = String::new();
            for s in &self.samples {
                let v = if pick == 0 {
                    s.assured
                } else {
                    s.entries - s.assured
                };
                let _ = write!(pts, "{:.1},{:.1} ", x(s.t), y2(f64::from(v)));
            }
            let _ = write!(
                o,
                r#"<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"><title>{name}</title></polyline>"#
            );
        }
        // Panel 3: drops per second.
        let (top3, ph3) = (570.0, 110.0);
        let dmax = self
            .samples
            .iter()
            .map(|s| s.early_drops_per_s.max(s.drops_per_s))
            .fold(0.0f64, f64::max)
            .max(1.0)
            * 1.05;
        let y3 = |v: f64| top3 + ph3 - ph3 * v / dmax;
        axes(&mut o, left, top3, pw, ph3, dmax, tmax, "drops / s");
        for (pick, color, name) in [
            (0, "#ef6c00", "early_drop"),
            (1, "#000000", "table full (drop)"),
        ] {
            let mut pts = String::new();
            for s in &self.samples {
                let v = if pick == 0 {
                    s.early_drops_per_s
                } else {
                    s.drops_per_s
                };
                let _ = write!(pts, "{:.1},{:.1} ", x(s.t), y3(v));
            }
            let _ = write!(
                o,
                r#"<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.5"><title>{name}</title></polyline>"#
            );
        }
        let _ = write!(
            o,
            r##"<text x="{left}" y="{}" fill="#ef6c00">early_drop/s</text><text x="{}" y="{}">table full (drop)/s</text><text x="{}" y="{}" text-anchor="middle">capture time (s)</text>"##,
            top3 + ph3 + 30.0,
            left + 110.0,
            top3 + ph3 + 30.0,
            left + pw / 2.0,
            h - 6.0
        );
        o.push_str("</svg>\n");
        o
    }
}

/// Render an SVG report to PNG (feature `png`). Text uses a system sans-serif font
/// (DejaVu Sans when installed); without any font the chart is drawn without labels.
#[cfg(feature = "png")]
pub fn svg_to_png(svg: &str) -> Result<Vec<u8>, String> {
    use resvg::{tiny_skia, usvg};
    let mut opt = usvg::Options::default();
    let db = opt.fontdb_mut();
    db.load_system_fonts();
    let family = db
        .faces()
        .filter_map(|f| f.families.first().map(|(n, _)| n.clone()))
        .min_by_key(|n| match n.as_str() {
            "DejaVu Sans" => 0,
            n if n.contains("Sans") => 1,
            _ => 2,
        });
    if let Some(f) = family {
        db.set_sans_serif_family(f);
    }
    let tree = usvg::Tree::from_str(svg, &opt).map_err(|e| format!("report SVG: {e}"))?;
    let size = tree.size().to_int_size();
    let mut pix = tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| "report: empty image".to_string())?;
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pix.as_mut());
    pix.encode_png().map_err(|e| format!("report PNG: {e}"))
}

#[allow(clippy::too_many_arguments)]
fn axes(o: &mut String, left: f64, top: f64, pw: f64, ph: f64, ymax: f64, tmax: f64, label: &str) {
    let _ = write!(
        o,
        r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##
    );
    for k in 0..=4 {
        let v = ymax * f64::from(k) / 4.0;
        let y = top + ph - ph * f64::from(k) / 4.0;
        let _ = write!(
            o,
            r##"<text x="{}" y="{:.1}" text-anchor="end">{}</text><line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/>"##,
            left - 6.0,
            y + 4.0,
            human(v),
            left + pw
        );
        let t = tmax * f64::from(k) / 4.0;
        let xx = left + pw * f64::from(k) / 4.0;
        let _ = write!(
            o,
            r#"<text x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            top + ph + 14.0,
            human(t)
        );
    }
    let _ = write!(
        o,
        r#"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">{label}</text>"#,
        top + ph / 2.0,
        top + ph / 2.0
    );
}

fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ctrack_core::conntrack::Config;

    #[test]
    fn samples_and_svg_shape() {
        let ct = Conntrack::new(Config::default());
        let mut c = Capacity::new(65536);
        for s in 0..5u64 {
            c.observe(&ct, Instant::from_secs(100 + s));
        }
        c.finish(&ct, Instant::from_secs(105));
        assert_eq!(c.samples.len(), 6);
        let svg = c.to_svg("t");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("nf_conntrack_max = 65536"));
        #[cfg(feature = "png")]
        {
            let png = svg_to_png(&svg).expect("renders");
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        }
        let v: serde_json::Value = serde_json::from_str(&c.to_json()).unwrap();
        assert_eq!(v["samples"].as_array().unwrap().len(), 6);
    }

    #[test]
    fn downsampling_bounds_the_series() {
        let ct = Conntrack::new(Config::default());
        let mut c = Capacity::new(10);
        for s in 0..5000u64 {
            c.observe(&ct, Instant::from_secs(s));
        }
        assert!(c.samples.len() <= MAX_SAMPLES);
        assert!(c.samples.windows(2).all(|w| w[0].t < w[1].t));
    }
}
