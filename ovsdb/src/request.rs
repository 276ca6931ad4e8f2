//! What a monitor asks for, table by table.

use serde_json::{Value as Json, json};

use crate::ops::Condition;

/// What to monitor in one table.
#[derive(Clone, Debug, PartialEq)]
pub struct MonitorRequest {
    /// Table name.
    pub table: String,
    /// Columns to report; `None` means all.
    pub columns: Option<Vec<String>>,
    /// Only rows matching all conditions (`monitor_cond` only); `None` means all rows.
    pub conditions: Option<Vec<Condition>>,
}

impl MonitorRequest {
    /// Every row and column of `table`.
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            columns: None,
            conditions: None,
        }
    }

    /// Report only these columns.
    pub fn columns<C: Into<String>>(mut self, columns: impl IntoIterator<Item = C>) -> Self {
        self.columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// Report only rows matching all `conditions`.
    pub fn conditions(mut self, conditions: Vec<Condition>) -> Self {
        self.conditions = Some(conditions);
        self
    }

    /// The `<monitor-cond-request>` (or `<monitor-request>` when `cond` is false).
    pub(crate) fn to_json(&self, cond: bool) -> Json {
        let mut o = serde_json::Map::new();
        if let Some(columns) = &self.columns {
            o.insert("columns".into(), json!(columns));
        }
        if let (true, Some(conditions)) = (cond, &self.conditions) {
            o.insert(
                "where".into(),
                conditions.iter().map(Condition::to_json).collect(),
            );
        }
        Json::Object(o)
    }
}
