//! Pictures of a lab with its links' live states: Mermaid (for Markdown), Graphviz DOT, and a
//! self-contained HTML page with an inline SVG.
//!
//! All three draw every node (also nodes without links) and every link, labelled with its two
//! interface names; down links are red and dashed, pending ones grey and dotted, up ones green.
//! Output depends only on the lab and the states, so it can be diffed or regenerated.
//!
//! ```
//! use ovswire_cli::graph::{DrawnState, mermaid};
//! # let spec = ovswire_cli::file::parse(
//! #     "lab: demo\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n",
//! #     "demo.yaml",
//! #     ovswire_cli::file::Format::Native,
//! # ).unwrap();
//! let text = mermaid(&spec, &|link| if link.down { DrawnState::Down } else { DrawnState::Up });
//! assert!(text.starts_with("graph LR\n"));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::f64::consts::PI;
use std::fmt::{self, Write as _};

use crate::spec::{LabLink, LabSpec};

/// The state a link is drawn in: what it is doing right now, as far as the caller knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrawnState {
    /// Both ends are wired and the link carries traffic.
    Up,
    /// Administratively down: the cable is unplugged.
    Down,
    /// Not wired yet (an end is missing).
    Pending,
    /// No state is known (no agent to ask).
    Unknown,
}

impl DrawnState {
    /// Every state, in legend order.
    const ALL: [Self; 4] = [Self::Up, Self::Down, Self::Pending, Self::Unknown];

    fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Pending => "pending",
            Self::Unknown => "unknown",
        }
    }

    /// Colour and dash pattern in SVG.
    fn svg_stroke(self) -> (&'static str, Option<&'static str>) {
        match self {
            Self::Up => ("#2e7d32", None),
            Self::Down => ("#d32f2f", Some("8 5")),
            Self::Pending => ("#9e9e9e", Some("2 4")),
            Self::Unknown => ("#607d8b", None),
        }
    }
}

impl fmt::Display for DrawnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `node` is a LAN segment.
fn is_segment(spec: &LabSpec, node: &str) -> bool {
    spec.nodes
        .get(node)
        .is_some_and(crate::spec::NodeSpec::is_segment)
}

/// Every node name: the declared nodes and, should `spec` lack some, the links' nodes; sorted.
fn node_names(spec: &LabSpec) -> BTreeSet<&str> {
    spec.nodes
        .keys()
        .map(String::as_str)
        .chain(
            spec.links
                .iter()
                .flat_map(|l| [l.a.node.as_str(), l.b.node.as_str()]),
        )
        .collect()
}

/// A Mermaid flowchart (`graph LR`) of the lab: nodes as `n0["r1"]` (Mermaid ids cannot hold
/// every node name), links as `n0 ---|"eth1 — eth2"| n1`, styled by state with `linkStyle`.
pub fn mermaid(spec: &LabSpec, state: &dyn Fn(&LabLink) -> DrawnState) -> String {
    let names = node_names(spec);
    let ids: BTreeMap<&str, String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (*n, format!("n{i}")))
        .collect();
    let mut out = String::from("graph LR\n");
    // Comments end at the line's end: the name cannot escape one.
    let _ = writeln!(
        out,
        "  %% ovswire lab {}",
        one_line(spec.names.lab(&spec.name))
    );
    for (name, id) in &ids {
        let text = mermaid_text(spec.names.node(name));
        // A LAN segment is drawn as a stadium, nodes as boxes.
        let _ = if is_segment(spec, name) {
            writeln!(out, "  {id}([\"{text}\"])")
        } else {
            writeln!(out, "  {id}[\"{text}\"]")
        };
    }
    let states: Vec<DrawnState> = spec.links.iter().map(state).collect();
    for link in &spec.links {
        let label = format!(
            "{} — {}",
            spec.names.ifname(&link.a.node, &link.a.ifname),
            spec.names.ifname(&link.b.node, &link.b.ifname)
        );
        let _ = writeln!(
            out,
            "  {} ---|\"{}\"| {}",
            ids[link.a.node.as_str()],
            mermaid_text(&label),
            ids[link.b.node.as_str()]
        );
    }
    for s in DrawnState::ALL {
        let style = match s {
            DrawnState::Up => "stroke:green",
            DrawnState::Down => "stroke:red,stroke-dasharray:5 5",
            DrawnState::Pending => "stroke:grey,stroke-dasharray:2 4",
            DrawnState::Unknown => continue,
        };
        // Mermaid numbers edges in the order they are written, from 0.
        let links: Vec<String> = (0..states.len())
            .filter(|i| states[*i] == s)
            .map(|i| i.to_string())
            .collect();
        if !links.is_empty() {
            let _ = writeln!(out, "  linkStyle {} {style}", links.join(","));
        }
    }
    out
}

/// Text inside a Mermaid `"..."` label, with its special characters as Mermaid entity codes.
fn mermaid_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '&' => out.push_str("#amp;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '`' => out.push_str("#96;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// `s` with line breaks and other control characters turned into spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A Graphviz graph (`graph "lab" { ... }`, undirected) of the lab: links carry their interface
/// names as `taillabel`/`headlabel` and are coloured by state, down ones dashed.
pub fn dot(spec: &LabSpec, state: &dyn Fn(&LabLink) -> DrawnState) -> String {
    let mut out = String::new();
    let name = dot_text(spec.names.lab(&spec.name));
    let _ = writeln!(out, "graph \"{name}\" {{");
    let _ = writeln!(out, "  label=\"{name}\";");
    out.push_str("  labelloc=t;\n");
    out.push_str("  node [shape=box, style=rounded];\n");
    out.push_str("  edge [fontsize=10, labeldistance=2];\n");
    for node in node_names(spec) {
        let shown = spec.names.node(node);
        let mut attrs = Vec::new();
        if shown != node {
            attrs.push(format!("label=\"{}\"", dot_text(shown)));
        }
        if is_segment(spec, node) {
            attrs.push("shape=ellipse, style=dashed".to_owned());
        }
        if attrs.is_empty() {
            let _ = writeln!(out, "  \"{}\";", dot_text(node));
        } else {
            let _ = writeln!(out, "  \"{}\" [{}];", dot_text(node), attrs.join(", "));
        }
    }
    for link in &spec.links {
        let s = state(link);
        let look = match s {
            DrawnState::Up => ", color=green",
            DrawnState::Down => ", style=dashed, color=red",
            DrawnState::Pending => ", style=dotted, color=grey",
            DrawnState::Unknown => "",
        };
        let _ = writeln!(
            out,
            "  \"{}\" -- \"{}\" [taillabel=\"{}\", headlabel=\"{}\", tooltip=\"{} ({s})\"{look}];",
            dot_text(&link.a.node),
            dot_text(&link.b.node),
            dot_text(spec.names.ifname(&link.a.node, &link.a.ifname)),
            dot_text(spec.names.ifname(&link.b.node, &link.b.ifname)),
            dot_text(&spec.written_name(link)),
        );
    }
    out.push_str("}\n");
    out
}

/// Text inside a DOT `"..."` string.
fn dot_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Space around the drawing, in pixels.
const MARGIN: f64 = 60.0;
/// Horizontal room per node in a row of the layered layout.
const COLUMN: f64 = 150.0;
/// Vertical distance between rows of the layered layout.
const ROW: f64 = 170.0;
/// Length of the circle per node in the circular layout.
const ARC: f64 = 200.0;
/// Height of a node's box.
const NODE_HEIGHT: f64 = 30.0;
/// Height of the legend.
const LEGEND_HEIGHT: f64 = 50.0;
/// Width of one legend entry.
const LEGEND_ENTRY: f64 = 120.0;
/// Distance between parallel links of the same two nodes.
const PARALLEL_GAP: f64 = 30.0;

/// Where nodes sit, and how big the drawing is.
#[derive(Debug)]
struct Layout<'a> {
    at: BTreeMap<&'a str, (f64, f64)>,
    width: f64,
    height: f64,
}

/// The row a node goes in when names tell a Clos fabric: spines on top, leaves below, the rest
/// (servers, clients) at the bottom.
fn tier(name: &str) -> usize {
    if ["spine", "super", "core"].iter().any(|w| name.contains(w)) {
        0
    } else if ["leaf", "tor"].iter().any(|w| name.contains(w)) {
        1
    } else {
        2
    }
}

/// Spines and leaves in rows when the names have both, every node on a circle otherwise.
fn layout<'a>(names: &BTreeSet<&'a str>) -> Layout<'a> {
    let mut rows: [Vec<&str>; 3] = Default::default();
    for name in names {
        rows[tier(name)].push(name);
    }
    if !rows[0].is_empty() && !rows[1].is_empty() {
        let rows: Vec<&Vec<&str>> = rows.iter().filter(|r| !r.is_empty()).collect();
        let widest = rows.iter().map(|r| r.len()).max().unwrap_or(1) as f64;
        let width = widest * COLUMN + 2.0 * MARGIN;
        let mut at = BTreeMap::new();
        for (r, row) in rows.iter().enumerate() {
            // Centre each row under the widest one.
            let left = (width - row.len() as f64 * COLUMN) / 2.0;
            for (c, name) in row.iter().enumerate() {
                let x = left + (c as f64 + 0.5) * COLUMN;
                let y = MARGIN + NODE_HEIGHT + r as f64 * ROW;
                at.insert(*name, (x, y));
            }
        }
        let height = 2.0 * (MARGIN + NODE_HEIGHT) + (rows.len() - 1) as f64 * ROW;
        return Layout { at, width, height };
    }
    let n = names.len();
    // Room for about ARC pixels of circumference per node, so neighbours' links are long
    // enough for both interface names.
    let radius = if n <= 1 {
        0.0
    } else {
        (n as f64 * ARC / (2.0 * PI)).max(ARC / 2.0)
    };
    let centre = radius + MARGIN + NODE_HEIGHT;
    let at = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            // Start at the top, go clockwise.
            let angle = 2.0 * PI * i as f64 / n as f64 - PI / 2.0;
            (
                *name,
                (centre + radius * angle.cos(), centre + radius * angle.sin()),
            )
        })
        .collect();
    Layout {
        at,
        width: 2.0 * centre,
        height: 2.0 * centre,
    }
}

/// A self-contained HTML page (no scripts, nothing fetched) showing the lab as an inline SVG —
/// nodes as boxes, links as lines labelled with their interface names near each end, styled by
/// state, with a legend — followed by a table of the links and their states.
pub fn html(spec: &LabSpec, state: &dyn Fn(&LabLink) -> DrawnState) -> String {
    page(spec, state, "")
}

/// [`html`] with `extra` (markup and scripts) at the end of the body; every link's group and
/// table row carry `data-link` (its name) for scripts to find, and an empty `text.rate` label.
pub fn page(spec: &LabSpec, state: &dyn Fn(&LabLink) -> DrawnState, extra: &str) -> String {
    let names = node_names(spec);
    let mut layout = layout(&names);
    let width = layout
        .width
        .max(DrawnState::ALL.len() as f64 * LEGEND_ENTRY + 2.0 * MARGIN);
    // Centre the drawing over a wider legend.
    let shift = (width - layout.width) / 2.0;
    for (x, _) in layout.at.values_mut() {
        *x += shift;
    }
    let height = layout.height + LEGEND_HEIGHT;
    let title = xml(spec.names.lab(&spec.name));
    let states: Vec<DrawnState> = spec.links.iter().map(state).collect();

    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title} — ovswire lab</title>\n<style>\n\
         body {{ font-family: sans-serif; margin: 1.5em; color: #212121; }}\n\
         svg {{ border: 1px solid #e0e0e0; max-width: 100%; height: auto; }}\n\
         table {{ border-collapse: collapse; margin-top: 1em; }}\n\
         th, td {{ border: 1px solid #e0e0e0; padding: 0.2em 0.6em; text-align: left; }}\n\
         </style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\" role=\"img\" \
         aria-label=\"{title}: {} nodes, {} links\">",
        names.len(),
        spec.links.len()
    );
    // Links first, so that node boxes cover their ends.
    out.push_str("<g class=\"links\" fill=\"none\" stroke-width=\"2\">\n");
    let mut pairs: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for link in &spec.links {
        *pairs.entry(pair(link)).or_default() += 1;
    }
    let mut drawn: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (link, s) in spec.links.iter().zip(&states) {
        let key = pair(link);
        let k = drawn.entry(key).or_default();
        // Spread parallel links symmetrically around the straight line; sideways is measured
        // from the pair's first node, whichever way each link is written.
        let mut offset = (*k as f64 - (pairs[&key] - 1) as f64 / 2.0) * PARALLEL_GAP;
        if link.a.node.as_str() != key.0 {
            offset = -offset;
        }
        *k += 1;
        let a = layout.at[link.a.node.as_str()];
        let b = layout.at[link.b.node.as_str()];
        svg_link(&mut out, spec, link, *s, (a, b), offset);
    }
    out.push_str("</g>\n<g class=\"nodes\">\n");
    for (name, (x, y)) in &layout.at {
        let name = spec.names.node(name);
        let w = node_width(name);
        let _ = writeln!(
            out,
            "<g class=\"node\"><title>{n}</title><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{w:.1}\" \
             height=\"{NODE_HEIGHT:.1}\" rx=\"8\" fill=\"#e3f2fd\" stroke=\"#1565c0\" \
             stroke-width=\"1.5\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" \
             font-size=\"14\">{n}</text></g>",
            x - w / 2.0,
            y - NODE_HEIGHT / 2.0,
            y + 5.0,
            n = xml(name),
        );
    }
    out.push_str("</g>\n");
    svg_legend(&mut out, layout.height);
    out.push_str("</svg>\n");
    links_table(&mut out, spec, &states);
    out.push_str(extra);
    out.push_str("</body>\n</html>\n");
    out
}

/// The two nodes of a link, in order, so parallel links share a key.
fn pair(link: &LabLink) -> (&str, &str) {
    let (a, b) = (link.a.node.as_str(), link.b.node.as_str());
    if a <= b { (a, b) } else { (b, a) }
}

/// Width of a node's box: room for its name.
fn node_width(name: &str) -> f64 {
    (name.chars().count() as f64 * 8.5 + 20.0).max(60.0)
}

/// One link: a curve from `a` to `b` bent `offset` pixels sideways (a loop when `a` is `b`),
/// with each interface name near its end.
fn svg_link(
    out: &mut String,
    spec: &LabSpec,
    link: &LabLink,
    state: DrawnState,
    (a, b): ((f64, f64), (f64, f64)),
    offset: f64,
) {
    let (color, dash) = state.svg_stroke();
    let dash = dash
        .map(|d| format!(" stroke-dasharray=\"{d}\""))
        .unwrap_or_default();
    let (path, label_a, label_b, middle) = if a == b {
        // A link between two interfaces of one node: a loop above it.
        let (x, y) = a;
        let lift = 70.0 + offset.abs() + offset;
        let path = format!(
            "M {:.1} {:.1} C {:.1} {:.1}, {:.1} {:.1}, {:.1} {:.1}",
            x - 12.0,
            y - NODE_HEIGHT / 2.0,
            x - 50.0,
            y - lift,
            x + 50.0,
            y - lift,
            x + 12.0,
            y - NODE_HEIGHT / 2.0
        );
        let label_y = y - lift * 0.75;
        (
            path,
            (x - 45.0, label_y),
            (x + 45.0, label_y),
            (x, y - lift * 0.8),
        )
    } else {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = dx.hypot(dy);
        // The quadratic's control point sits twice as far out as the curve's middle.
        let (nx, ny) = (-dy / len, dx / len);
        let c = (
            (a.0 + b.0) / 2.0 + 2.0 * offset * nx,
            (a.1 + b.1) / 2.0 + 2.0 * offset * ny,
        );
        let path = format!(
            "M {:.1} {:.1} Q {:.1} {:.1} {:.1} {:.1}",
            a.0, a.1, c.0, c.1, b.0, b.1
        );
        // Labels about 60 pixels from each end, outside the boxes.
        let t = (60.0 / len).min(0.45);
        (
            path,
            quadratic(a, c, b, t),
            quadratic(a, c, b, 1.0 - t),
            quadratic(a, c, b, 0.5),
        )
    };
    let _ = writeln!(
        out,
        "<g class=\"link {state}\" data-link=\"{name}\"><title>{shown} ({state})</title>\
         <path d=\"{path}\" stroke=\"{color}\"{dash}/>{}{}<text class=\"rate\" x=\"{:.1}\" \
         y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\" fill=\"#1565c0\" \
         stroke=\"#ffffff\" stroke-width=\"3\" paint-order=\"stroke\"></text></g>",
        svg_label(label_a, spec.names.ifname(&link.a.node, &link.a.ifname)),
        svg_label(label_b, spec.names.ifname(&link.b.node, &link.b.ifname)),
        middle.0,
        middle.1 - 6.0,
        name = xml(&link.agent_name()),
        shown = xml(&spec.written_name(link)),
    );
}

/// The point at `t` of the quadratic Bézier curve `p0`, `c`, `p2`.
fn quadratic(p0: (f64, f64), c: (f64, f64), p2: (f64, f64), t: f64) -> (f64, f64) {
    let u = 1.0 - t;
    (
        u * u * p0.0 + 2.0 * u * t * c.0 + t * t * p2.0,
        u * u * p0.1 + 2.0 * u * t * c.1 + t * t * p2.1,
    )
}

/// An interface name on a link, with a white halo so it reads over the line.
fn svg_label((x, y): (f64, f64), text: &str) -> String {
    format!(
        "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#424242\" \
         stroke=\"#ffffff\" stroke-width=\"3\" paint-order=\"stroke\">{}</text>",
        y + 4.0,
        xml(text)
    )
}

/// A row of line samples, one per state, below the drawing.
fn svg_legend(out: &mut String, top: f64) {
    let y = top + LEGEND_HEIGHT / 2.0;
    out.push_str("<g class=\"legend\" font-size=\"12\">\n");
    for (i, state) in DrawnState::ALL.iter().enumerate() {
        let x = MARGIN + i as f64 * LEGEND_ENTRY;
        let (color, dash) = state.svg_stroke();
        let dash = dash
            .map(|d| format!(" stroke-dasharray=\"{d}\""))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{color}\"{dash} \
             stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\">{state}</text>",
            x + 36.0,
            x + 44.0,
            y + 4.0,
        );
    }
    out.push_str("</g>\n");
}

/// The links and their states as a table, for reading and for searching the page.
fn links_table(out: &mut String, spec: &LabSpec, states: &[DrawnState]) {
    out.push_str(
        "<table>\n<tr><th>#</th><th>from</th><th>to</th><th>MTU</th><th>state</th></tr>\n",
    );
    for (i, (link, state)) in spec.links.iter().zip(states).enumerate() {
        let mtu = link
            .mtu
            .or(spec.mtu)
            .map(|m| m.to_string())
            .unwrap_or_else(|| "default".to_owned());
        let (color, _) = state.svg_stroke();
        let _ = writeln!(
            out,
            "<tr data-link=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{mtu}</td>\
             <td class=\"state\" style=\"color:{color}\">{state}</td></tr>",
            xml(&link.agent_name()),
            i + 1,
            xml(&spec.names.endpoint(&link.a.node, &link.a.ifname)),
            xml(&spec.names.endpoint(&link.b.node, &link.b.ifname)),
        );
    }
    out.push_str("</table>\n");
}

/// `s` escaped for XML text and attribute values.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 allows no other control characters, even escaped.
            '\t' | '\n' | '\r' => out.push(' '),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{EndpointSpec, NodeSpec};

    fn ep(node: &str, ifname: &str) -> EndpointSpec {
        EndpointSpec {
            node: node.to_owned(),
            ifname: ifname.to_owned(),
            addrs: Vec::new(),
        }
    }

    fn lab(name: &str, nodes: &[&str], links: &[(&str, &str, &str, &str, bool)]) -> LabSpec {
        LabSpec {
            name: name.to_owned(),
            mtu: None,
            mgmt: Default::default(),
            nodes: nodes
                .iter()
                .map(|n| ((*n).to_owned(), NodeSpec::default()))
                .collect(),
            links: links
                .iter()
                .map(|(an, ai, bn, bi, down)| LabLink {
                    a: ep(an, ai),
                    b: ep(bn, bi),
                    mtu: None,
                    down: *down,
                    impair: Default::default(),
                })
                .collect(),
            names: Default::default(),
        }
    }

    /// r1 -- r2 up, r2 -- r3 down, r3 -- r1 pending, r1 -- r2 again unknown; `spare` alone.
    fn triangle() -> LabSpec {
        lab(
            "tri",
            &["r1", "r2", "r3", "spare"],
            &[
                ("r1", "eth1", "r2", "eth1", false),
                ("r2", "eth2", "r3", "eth1", true),
                ("r3", "eth2", "r1", "eth2", false),
                ("r1", "eth3", "r2", "eth3", false),
            ],
        )
    }

    /// Down links are down, r3:eth2 is pending, r1:eth3 unknown, the rest up.
    fn states(link: &LabLink) -> DrawnState {
        match (link.down, link.a.ifname.as_str()) {
            (true, _) => DrawnState::Down,
            (false, "eth2") => DrawnState::Pending,
            (false, "eth3") => DrawnState::Unknown,
            _ => DrawnState::Up,
        }
    }

    /// Nodes and links with characters every format must escape.
    fn odd() -> LabSpec {
        lab(
            "a\"b<c>&'#`\\\n",
            &["x\"y", "p<q>&r"],
            &[("x\"y", "e\"1", "p<q>&r", "e<2>", true)],
        )
    }

    #[test]
    fn mermaid_draws_every_node_and_link_and_styles_them() {
        let text = mermaid(&triangle(), &states);
        assert_eq!(
            text,
            "graph LR\n  %% ovswire lab tri\n  n0[\"r1\"]\n  n1[\"r2\"]\n  n2[\"r3\"]\n  n3[\"spare\"]\n  \
             n0 ---|\"eth1 — eth1\"| n1\n  n1 ---|\"eth2 — eth1\"| n2\n  n2 ---|\"eth2 — eth2\"| n0\n  \
             n0 ---|\"eth3 — eth3\"| n1\n  linkStyle 0 stroke:green\n  \
             linkStyle 1 stroke:red,stroke-dasharray:5 5\n  linkStyle 2 stroke:grey,stroke-dasharray:2 4\n"
        );
    }

    #[test]
    fn mermaid_escapes_names() {
        let text = mermaid(&odd(), &states);
        assert!(text.contains("n0[\"p#lt;q#gt;#amp;r\"]"), "{text}");
        assert!(text.contains("n1[\"x#quot;y\"]"), "{text}");
        assert!(
            text.contains("n1 ---|\"e#quot;1 — e#lt;2#gt;\"| n0"),
            "{text}"
        );
        assert!(text.contains("%% ovswire lab a\"b<c>&'#`\\ \n"), "{text}");
        assert!(text.contains("linkStyle 0 stroke:red"), "{text}");
    }

    #[test]
    fn dot_draws_every_node_and_link_and_styles_them() {
        let text = dot(&triangle(), &states);
        assert!(text.starts_with("graph \"tri\" {\n"), "{text}");
        assert!(text.ends_with("}\n"), "{text}");
        for node in ["r1", "r2", "r3", "spare"] {
            assert!(text.contains(&format!("  \"{node}\";\n")), "{text}");
        }
        assert!(text.contains(
            "  \"r1\" -- \"r2\" [taillabel=\"eth1\", headlabel=\"eth1\", tooltip=\"r1:eth1--r2:eth1 (up)\", color=green];\n"
        ), "{text}");
        assert!(text.contains(
            "  \"r2\" -- \"r3\" [taillabel=\"eth2\", headlabel=\"eth1\", tooltip=\"r2:eth2--r3:eth1 (down)\", style=dashed, color=red];\n"
        ), "{text}");
        assert!(
            text.contains("(pending)\", style=dotted, color=grey];"),
            "{text}"
        );
        assert!(
            text.contains("tooltip=\"r1:eth3--r2:eth3 (unknown)\"];"),
            "{text}"
        );
        assert_eq!(text.matches(" -- ").count(), 4);
    }

    #[test]
    fn dot_escapes_names() {
        let text = dot(&odd(), &states);
        assert!(
            text.starts_with("graph \"a\\\"b<c>&'#`\\\\\\n\" {\n"),
            "{text}"
        );
        assert!(
            text.contains("\"x\\\"y\" -- \"p<q>&r\" [taillabel=\"e\\\"1\""),
            "{text}"
        );
    }

    #[test]
    fn html_is_a_self_contained_page_with_every_node_link_and_state() {
        let text = html(&triangle(), &states);
        assert!(text.starts_with("<!DOCTYPE html>\n"), "{text}");
        assert!(text.contains("<title>tri — ovswire lab</title>"));
        assert!(text.contains("<h1>tri</h1>"));
        assert!(!text.contains("<script") && !text.contains("src=") && !text.contains("href="));
        assert_eq!(text.matches("<g class=\"node\">").count(), 4);
        for node in ["r1", "r2", "r3", "spare"] {
            assert!(text.contains(&format!("<title>{node}</title>")), "{node}");
        }
        assert_eq!(text.matches("<g class=\"link ").count(), 4);
        assert_eq!(
            text.matches("<g class=\"link down\" data-link=\"r2:eth2--r3:eth1\">")
                .count(),
            1
        );
        assert!(text.contains("<title>r2:eth2--r3:eth1 (down)</title><path d=\"M"));
        // Down links red and dashed, pending grey and dotted, in the drawing and the legend.
        assert_eq!(
            text.matches("stroke=\"#d32f2f\" stroke-dasharray=\"8 5\"")
                .count(),
            2
        );
        assert_eq!(
            text.matches("stroke=\"#9e9e9e\" stroke-dasharray=\"2 4\"")
                .count(),
            2
        );
        for s in ["up", "down", "pending", "unknown"] {
            assert!(text.contains(&format!("\">{s}</text>")), "legend {s}");
        }
        // Interface labels, and the table.
        assert_eq!(text.matches(">eth1</text>").count(), 3);
        assert!(text.contains(
            "<tr data-link=\"r2:eth2--r3:eth1\"><td>2</td><td>r2:eth2</td><td>r3:eth1</td>\
             <td>default</td>"
        ));
        // The two r1 -- r2 links are bent apart, not drawn on top of each other.
        let paths: Vec<&str> = text
            .match_indices("<title>r1:eth")
            .map(|(i, _)| &text[i..i + 120])
            .filter(|p| p.contains("--r2:"))
            .collect();
        assert_eq!(paths.len(), 2);
        assert_ne!(paths[0].split("d=\"").nth(1), paths[1].split("d=\"").nth(1));
        assert!(text.ends_with("</html>\n"));
    }

    #[test]
    fn html_escapes_all_text() {
        let text = html(&odd(), &states);
        assert!(
            text.contains("<h1>a&quot;b&lt;c&gt;&amp;&apos;#`\\ </h1>"),
            "{text}"
        );
        assert!(text.contains("<title>x&quot;y</title>"));
        assert!(text.contains(">p&lt;q&gt;&amp;r</text>"));
        assert!(text.contains(">e&lt;2&gt;</text>"));
        assert!(!text.contains("p<q"), "{text}");
        assert!(!text.contains("x\"y"), "{text}");
    }

    #[test]
    fn html_lays_out_spines_over_leaves_and_others_on_a_circle() {
        let clos = lab(
            "clos",
            &["leaf1", "leaf2", "spine1", "srv"],
            &[
                ("leaf1", "e1", "spine1", "e1", false),
                ("leaf2", "e1", "spine1", "e2", false),
                ("srv", "eth1", "leaf1", "e3", false),
            ],
        );
        let names = node_names(&clos);
        let l = layout(&names);
        let y = |n: &str| l.at[n].1;
        assert!(y("spine1") < y("leaf1") && y("leaf1") == y("leaf2") && y("leaf2") < y("srv"));
        let tri = triangle();
        let names = node_names(&tri);
        let l = layout(&names);
        let centre = (l.width / 2.0, l.height / 2.0);
        let radius = |n: &str| (l.at[n].0 - centre.0).hypot(l.at[n].1 - centre.1);
        for n in ["r2", "r3", "spare"] {
            assert!((radius(n) - radius("r1")).abs() < 1e-6, "{n}");
        }
        // Everything stays on the canvas.
        for (x, y) in l.at.values() {
            assert!(*x > 0.0 && *y > 0.0 && *x < l.width && *y < l.height);
        }
    }

    #[test]
    fn output_is_deterministic_and_handles_odd_labs() {
        let spec = triangle();
        assert_eq!(html(&spec, &states), html(&spec.clone(), &states));
        assert_eq!(dot(&spec, &states), dot(&spec.clone(), &states));
        assert_eq!(mermaid(&spec, &states), mermaid(&spec.clone(), &states));
        // Empty labs, single nodes, loops and nodes only links mention.
        let empty = lab("e", &[], &[]);
        let looped = lab(
            "l",
            &[],
            &[
                ("r1", "eth1", "r1", "eth2", false),
                ("r1", "eth3", "r1", "eth4", true),
            ],
        );
        for spec in [empty, looped, lab("one", &["r1"], &[])] {
            let page = html(&spec, &states);
            assert!(!page.contains("NaN") && !page.contains("inf"), "{page}");
            assert!(mermaid(&spec, &states).starts_with("graph LR\n"));
            assert!(dot(&spec, &states).ends_with("}\n"));
        }
        // Parallel links bend apart whichever way they are written.
        let both_ways = lab(
            "b",
            &[],
            &[("a", "e1", "b", "e1", false), ("b", "e2", "a", "e2", false)],
        );
        let page = html(&both_ways, &states);
        // The quadratic curves' control points: "Q x y".
        let controls: Vec<Vec<&str>> = page
            .split(" Q ")
            .skip(1)
            .map(|s| s.split(' ').take(2).collect())
            .collect();
        assert_eq!(controls.len(), 2);
        assert_ne!(controls[0], controls[1]);
        let looped = lab("l", &[], &[("r1", "eth1", "r1", "eth2", false)]);
        assert!(mermaid(&looped, &states).contains("n0[\"r1\"]\n  n0 ---|\"eth1 — eth2\"| n0\n"));
    }
}
