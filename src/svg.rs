//! A picture of the ring as SVG (`rs2p status --svg`, `rs2p demo --svg`):
//! the ring as a circle, each node at its id's angle (0 at the top,
//! clockwise), coloured py2p or rs2p; the arc each node owns shaded by the
//! items it holds; links drawn as straight chords, fingers as dashed curves;
//! a legend.

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::fmt::Write;

use rs2p::chord::StatusReport;

/// Width of the picture, in pixels: the ring and, at its right, the legend.
const WIDTH: f64 = 1080.0;
/// Height of the picture, in pixels.
const HEIGHT: f64 = 760.0;
/// Centre of the ring (x).
const CX: f64 = 380.0;
/// Centre of the ring (y).
const CY: f64 = 380.0;
/// Radius of the ring: room for the labels outside it.
const R: f64 = 300.0;
/// Half the width of the band where arcs are shaded.
const BAND: f64 = 22.0;
/// Radius of a node's dot.
const DOT: f64 = 9.0;
/// Nodes drawn at most (a report lists at most `MAX_STATUS_LINKS`); past
/// this the picture would be unreadable anyway.
pub const MAX_NODES: usize = 512;

/// Colour of an rs2p node (Rust's orange).
const RS2P_COLOUR: &str = "#d9641e";
/// Colour of a py2p node (Python's blue).
const PY2P_COLOUR: &str = "#2f6db5";
/// Colour of a link.
const LINK_COLOUR: &str = "#7a7a7a";
/// Colour of a finger.
const FINGER_COLOUR: &str = "#2a9d4b";
/// Colour of an arc whose items are known (darker: more items).
const ARC_COLOUR: &str = "#8e44ad";
/// Colour of an arc whose items are not known.
const UNKNOWN_ARC: &str = "#e4e4e4";

/// One node as drawn.
struct Dot {
    /// Short id, the label.
    short: String,
    /// An rs2p node (else py2p).
    rs2p: bool,
    /// Fraction of a turn.
    position: f64,
    /// Fraction of the ring it owns.
    share: f64,
    /// Items it holds, if known.
    items: Option<u64>,
}

/// What the picture shows: nodes by id, and links and fingers as id pairs.
#[derive(Default)]
pub struct Picture {
    /// The nodes, by full id.
    nodes: BTreeMap<String, Dot>,
    /// Links, each pair once (smaller id first).
    links: Vec<(String, String)>,
    /// Fingers (from, to).
    fingers: Vec<(String, String)>,
    /// A line under the title.
    subtitle: String,
}

fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

impl Picture {
    /// The ring seen by one or several nodes: the union of their rings,
    /// links and fingers; items where a node reported its own.
    pub fn from_reports(reports: &[StatusReport], subtitle: &str) -> Picture {
        let mut p = Picture { subtitle: subtitle.to_owned(), ..Picture::default() };
        for r in reports {
            for n in &r.ring {
                if p.nodes.len() >= MAX_NODES && !p.nodes.contains_key(&n.id) {
                    continue;
                }
                let dot = p.nodes.entry(n.id.clone()).or_insert_with(|| Dot {
                    short: short(&n.id),
                    rs2p: n.rs2p,
                    position: n.position,
                    share: n.share,
                    items: None,
                });
                if n.id == r.id {
                    // A node's own report is the authority on its arc and items.
                    dot.items = Some(r.total_items());
                    dot.share = n.share;
                }
            }
        }
        for r in reports {
            for l in &r.links {
                let pair = if r.id < l.id { (r.id.clone(), l.id.clone()) } else { (l.id.clone(), r.id.clone()) };
                if p.nodes.contains_key(&pair.0) && p.nodes.contains_key(&pair.1) && !p.links.contains(&pair) {
                    p.links.push(pair);
                }
            }
            for f in &r.fingers {
                let pair = (r.id.clone(), f.clone());
                if p.nodes.contains_key(f) && p.nodes.contains_key(&r.id) && !p.fingers.contains(&pair) {
                    p.fingers.push(pair);
                }
            }
        }
        p
    }

    /// The SVG text.
    pub fn to_svg(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">"#
        );
        let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
        let max_items = self.nodes.values().filter_map(|d| d.items).max().unwrap_or(0).max(1);
        // Arcs: each node's share of the ring, shaded by the items it holds.
        for d in self.nodes.values() {
            let (fill, opacity) = match d.items {
                Some(n) => (ARC_COLOUR, 0.15 + 0.85 * n as f64 / max_items as f64),
                None => (UNKNOWN_ARC, 1.0),
            };
            let share = d.share.clamp(0.0, 1.0);
            if share >= 0.999_999 {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{CX}" cy="{CY}" r="{R}" fill="none" stroke="{fill}" stroke-opacity="{opacity:.3}" stroke-width="{}"/>"#,
                    2.0 * BAND
                );
            } else if share > 0.0 {
                let _ = writeln!(
                    s,
                    r##"<path d="{}" fill="{fill}" fill-opacity="{opacity:.3}" stroke="#ffffff" stroke-width="1"/>"##,
                    sector(d.position, d.position + share)
                );
            }
        }
        let _ =
            writeln!(s, r##"<circle cx="{CX}" cy="{CY}" r="{R}" fill="none" stroke="#444444" stroke-width="1.5"/>"##);
        // Links: straight chords.
        for (a, b) in &self.links {
            let (x1, y1) = point(self.nodes[a].position, R - BAND);
            let (x2, y2) = point(self.nodes[b].position, R - BAND);
            let _ = writeln!(
                s,
                r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{LINK_COLOUR}" stroke-width="1.2" stroke-opacity="0.7"/>"#
            );
        }
        // Fingers: dashed curves bent towards the centre, with an arrow dot at the target.
        for (a, b) in &self.fingers {
            let (x1, y1) = point(self.nodes[a].position, R - BAND);
            let (x2, y2) = point(self.nodes[b].position, R - BAND);
            let (qx, qy) = ((x1 + x2) / 4.0 + CX / 2.0, (y1 + y2) / 4.0 + CY / 2.0);
            let _ = writeln!(
                s,
                r#"<path d="M {x1:.1} {y1:.1} Q {qx:.1} {qy:.1} {x2:.1} {y2:.1}" fill="none" stroke="{FINGER_COLOUR}" stroke-width="2" stroke-dasharray="7 4"/>"#
            );
            let _ = writeln!(s, r#"<circle cx="{x2:.1}" cy="{y2:.1}" r="3.5" fill="{FINGER_COLOUR}"/>"#);
        }
        // Nodes and their labels.
        for d in self.nodes.values() {
            let (x, y) = point(d.position, R);
            let colour = if d.rs2p { RS2P_COLOUR } else { PY2P_COLOUR };
            let _ = writeln!(
                s,
                r##"<circle cx="{x:.1}" cy="{y:.1}" r="{DOT}" fill="{colour}" stroke="#222222" stroke-width="1.5"/>"##
            );
            let (lx, ly) = point(d.position, R + BAND + 22.0);
            let items = d.items.map(|n| format!(" ({n})")).unwrap_or_default();
            let _ = writeln!(
                s,
                r##"<text x="{lx:.1}" y="{ly:.1}" font-size="12" text-anchor="middle" dominant-baseline="middle" fill="#222222">{}{items}</text>"##,
                escape(&d.short)
            );
        }
        self.legend(&mut s);
        s.push_str("</svg>\n");
        s
    }

    fn legend(&self, s: &mut String) {
        let x = 790.0;
        let rs2p = self.nodes.values().filter(|d| d.rs2p).count();
        let py2p = self.nodes.len() - rs2p;
        let _ =
            writeln!(s, r##"<text x="{x}" y="40" font-size="20" font-weight="bold" fill="#222222">rs2p ring</text>"##);
        // The subtitle, one line per "; "-separated part.
        let parts: Vec<&str> = self.subtitle.split("; ").collect();
        for (i, part) in parts.iter().enumerate() {
            let y = 64.0 + 16.0 * i as f64;
            let _ = writeln!(s, r##"<text x="{x}" y="{y}" font-size="12" fill="#555555">{}</text>"##, escape(part));
        }
        let top = 100.0 + 16.0 * parts.len().saturating_sub(1) as f64;
        let rows: [(&str, String); 6] = [
            ("rs2p", format!("rs2p node ({rs2p})")),
            ("py2p", format!("py2p node ({py2p})")),
            ("arc", "arc owned, darker = more items".to_owned()),
            ("unknown", "arc owned, items unknown".to_owned()),
            ("link", format!("link ({})", self.links.len())),
            ("finger", format!("finger ({})", self.fingers.len())),
        ];
        for (i, (kind, text)) in rows.iter().enumerate() {
            let y = top + 32.0 * i as f64;
            let swatch = match *kind {
                "rs2p" => {
                    format!(r##"<circle cx="{}" cy="{y}" r="{DOT}" fill="{RS2P_COLOUR}" stroke="#222222"/>"##, x + 10.0)
                }
                "py2p" => {
                    format!(r##"<circle cx="{}" cy="{y}" r="{DOT}" fill="{PY2P_COLOUR}" stroke="#222222"/>"##, x + 10.0)
                }
                "arc" => format!(
                    r#"<rect x="{x}" y="{}" width="22" height="14" fill="{ARC_COLOUR}" fill-opacity="0.7"/>"#,
                    y - 7.0
                ),
                "unknown" => format!(r#"<rect x="{x}" y="{}" width="22" height="14" fill="{UNKNOWN_ARC}"/>"#, y - 7.0),
                "link" => format!(
                    r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{LINK_COLOUR}" stroke-width="2"/>"#,
                    x + 22.0
                ),
                _ => format!(
                    r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{FINGER_COLOUR}" stroke-width="2" stroke-dasharray="7 4"/>"#,
                    x + 22.0
                ),
            };
            let _ = writeln!(s, "{swatch}");
            let _ = writeln!(
                s,
                r##"<text x="{}" y="{}" font-size="13" fill="#222222">{}</text>"##,
                x + 32.0,
                y + 4.0,
                escape(text)
            );
        }
    }
}

/// The point at `turn` (fraction of a turn, 0 at the top, clockwise) and radius `r`.
fn point(turn: f64, r: f64) -> (f64, f64) {
    let a = 2.0 * PI * turn - PI / 2.0;
    (CX + r * a.cos(), CY + r * a.sin())
}

/// The band between R-BAND and R+BAND from turn `a` to turn `b` (b > a).
fn sector(a: f64, b: f64) -> String {
    let large = if b - a > 0.5 { 1 } else { 0 };
    let (ox1, oy1) = point(a, R + BAND);
    let (ox2, oy2) = point(b, R + BAND);
    let (ix2, iy2) = point(b, R - BAND);
    let (ix1, iy1) = point(a, R - BAND);
    let (ro, ri) = (R + BAND, R - BAND);
    format!(
        "M {ox1:.2} {oy1:.2} A {ro} {ro} 0 {large} 1 {ox2:.2} {oy2:.2} L {ix2:.2} {iy2:.2} A {ri} {ri} 0 {large} 0 {ix1:.2} {iy1:.2} Z"
    )
}

/// Escapes text for SVG (ids are base58, but addresses and subnets are a peer's choice).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Writes the picture to `path`.
pub fn write(path: &std::path::Path, picture: &Picture) -> Result<(), super::Failure> {
    std::fs::write(path, picture.to_svg())
        .map_err(|e| super::Failure::new(super::EXIT_USAGE, format!("cannot write {}: {e}", path.display())))
}
