//! Finding the line of a YAML node after the fact.
//!
//! `serde_yaml_ng` has no spanned values: only errors carry a position. So to say where a
//! semantically wrong link or node is, the document is walked a second time along the node's
//! path, and the walk fails on purpose at the node: the parser stamps that error with the node's
//! position. This only runs when there is an error to report, and works whatever the YAML style
//! (block, flow, anchors).

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step from a YAML node to one of its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// The value of this mapping key.
    Key(String),
    /// The element at this index (from 0) of a sequence.
    Index(usize),
}

impl Step {
    /// A [`Step::Key`].
    pub(crate) fn key(k: &str) -> Self {
        Self::Key(k.to_owned())
    }
}

/// What the probe's visitor "expects" at the target node, so the resulting error is ours.
const TARGET: &str = "ovswire-locate-target";

/// The 1-based line of the node at `path` in `text`, if the path leads to one.
pub(crate) fn line_of(text: &str, path: &[Step]) -> Option<usize> {
    if path.is_empty() {
        return None;
    }
    let de = serde_yaml_ng::Deserializer::from_str(text);
    match (Probe { path }).deserialize(de) {
        Err(e) if e.to_string().contains(TARGET) => e.location().map(|l| l.line()),
        _ => None,
    }
}

/// Walks `path`, then fails at the node it leads to.
struct Probe<'p> {
    path: &'p [Step],
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.path.split_first() {
            None => d.deserialize_any(Target),
            Some((Step::Key(key), rest)) => d.deserialize_map(InMap { key, rest }),
            Some((Step::Index(index), rest)) => d.deserialize_seq(InSeq {
                index: *index,
                rest,
            }),
        }
    }
}

/// Accepts nothing: every kind of node is an "invalid type" error expecting [`TARGET`].
struct Target;

impl Visitor<'_> for Target {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(TARGET)
    }
}

struct InMap<'p> {
    key: &'p str,
    rest: &'p [Step],
}

impl<'de> Visitor<'de> for InMap<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(k) = map.next_key::<String>()? {
            if k == self.key {
                return map.next_value_seed(Probe { path: self.rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

struct InSeq<'p> {
    index: usize,
    rest: &'p [Step],
}

impl<'de> Visitor<'de> for InSeq<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        for _ in 0..self.index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Probe { path: self.rest }).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(steps: &[&str]) -> Vec<Step> {
        steps
            .iter()
            .map(|s| match s.parse() {
                Ok(i) => Step::Index(i),
                Err(_) => Step::key(s),
            })
            .collect()
    }

    #[test]
    fn finds_keys_and_elements_in_block_and_flow_style() {
        let text = "a: 1\ntopology:\n  nodes:\n    r1: {kind: linux}\n\n    r2:\n  links:\n    # first\n    - endpoints: [r1:e1, r2:e1]\n    -   endpoints: [r1:e2, r2:e2]\n    - {endpoints: [r1:e3, r2:e3]}\nflow: [x, {y: 1}, z]\n";
        assert_eq!(line_of(text, &path(&["a"])), Some(1));
        assert_eq!(line_of(text, &path(&["topology", "nodes", "r1"])), Some(4));
        assert_eq!(line_of(text, &path(&["topology", "links", "0"])), Some(9));
        assert_eq!(line_of(text, &path(&["topology", "links", "1"])), Some(10));
        assert_eq!(line_of(text, &path(&["topology", "links", "2"])), Some(11));
        assert_eq!(line_of(text, &path(&["flow", "1"])), Some(12));
    }

    #[test]
    fn missing_paths_and_bad_yaml_give_none() {
        let text = "a: 1\nlinks: [x]\n";
        assert_eq!(line_of(text, &path(&["b"])), None);
        assert_eq!(line_of(text, &path(&["links", "5"])), None);
        assert_eq!(line_of(text, &path(&["a", "x"])), None);
        assert_eq!(line_of(text, &[]), None);
        assert_eq!(line_of("{{{", &path(&["a"])), None);
        assert_eq!(line_of("", &path(&["a"])), None);
    }
}
