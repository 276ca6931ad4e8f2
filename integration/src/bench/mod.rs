//! Benchmark scenarios. Each builds its own private OVS nodes, measures ovswire and the
//! command-line baseline in the same run, and returns one [`Report`].

pub mod baseline;
pub mod cni;
pub mod flap;
pub mod floor;
pub mod flows;
pub mod idle;
pub mod impair;
pub mod lab;
pub mod latency;
pub mod ovsdb_ports;
pub mod stats;
pub mod tcp;
pub mod wire;

use serde_json::{Map, Value};

/// One scenario's figures, printed as one JSON object or as aligned text.
#[derive(Debug, Default)]
pub struct Report {
    fields: Map<String, Value>,
}

impl Report {
    /// A report for `scenario`.
    pub fn new(scenario: &str) -> Self {
        let mut r = Self::default();
        r.set("scenario", scenario);
        r
    }

    /// Sets a field (kept in insertion order of first set).
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.fields.insert(key.to_owned(), value.into());
    }

    /// Its figures (all but the scenario's name), in order.
    pub fn fields(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.fields.iter().filter(|(k, _)| *k != "scenario")
    }

    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        Value::Object(self.fields.clone()).to_string()
    }

    /// The report as `key: value` lines for people.
    pub fn to_text(&self) -> String {
        let width = self.fields.keys().map(String::len).max().unwrap_or(0);
        self.fields
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k:width$}  {s}\n"),
                other => format!("{k:width$}  {other}\n"),
            })
            .collect()
    }
}

/// Progress lines on stderr, so stdout stays machine-readable.
pub(crate) fn progress(msg: &str) {
    eprintln!("ovswire-bench: {msg}");
}
