//! The parts of a database schema (RFC 7047 §3.2) a client needs to read `update2` diffs.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::error::{Error, Result};

/// A database schema as returned by `get_schema`.
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    /// Database name (`Open_vSwitch`).
    pub name: String,
    /// Schema version (`8.3.1`).
    pub version: String,
    /// Tables by name.
    pub tables: BTreeMap<String, TableSchema>,
}

/// One table of a schema.
#[derive(Clone, Debug, PartialEq)]
pub struct TableSchema {
    /// Columns by name (without the implicit `_uuid` and `_version`).
    pub columns: BTreeMap<String, ColumnType>,
    /// Whether rows survive without references (RFC 7047 §3.2 `isRoot`).
    pub is_root: bool,
}

/// A column's `<type>`: atomic key type, optional value type, and element count bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnType {
    /// The key's atomic type (`integer`, `string`, `uuid`, …).
    pub key: String,
    /// The value's atomic type, for maps.
    pub value: Option<String>,
    /// Minimum number of elements (0 or 1).
    pub min: u64,
    /// Maximum number of elements; `None` is `"unlimited"`.
    pub max: Option<u64>,
}

impl ColumnType {
    /// Whether the column is a map.
    pub fn is_map(&self) -> bool {
        self.value.is_some()
    }

    /// Whether the column holds exactly one atom (not a set, not a map).
    pub fn is_scalar(&self) -> bool {
        self.value.is_none() && self.min == 1 && self.max == Some(1)
    }

    fn from_json(json: &Json) -> Option<Self> {
        fn base(json: &Json) -> Option<String> {
            match json {
                Json::String(s) => Some(s.clone()),
                Json::Object(o) => o.get("type")?.as_str().map(str::to_owned),
                _ => None,
            }
        }
        match json {
            Json::String(s) => Some(Self {
                key: s.clone(),
                value: None,
                min: 1,
                max: Some(1),
            }),
            Json::Object(o) => Some(Self {
                key: base(o.get("key")?)?,
                value: match o.get("value") {
                    Some(v) => Some(base(v)?),
                    None => None,
                },
                min: o.get("min").map_or(Some(1), Json::as_u64)?,
                max: match o.get("max") {
                    None => Some(1),
                    Some(Json::String(s)) if s == "unlimited" => None,
                    Some(m) => Some(m.as_u64()?),
                },
            }),
            _ => None,
        }
    }
}

impl Schema {
    /// Parse a `get_schema` result.
    pub fn from_json(json: &Json) -> Result<Self> {
        let bad = |what: &str| Error::Protocol(format!("malformed database schema: {what}"));
        let name = json
            .get("name")
            .and_then(Json::as_str)
            .ok_or_else(|| bad("no name"))?;
        let version = json
            .get("version")
            .and_then(Json::as_str)
            .unwrap_or_default();
        let tables = json
            .get("tables")
            .and_then(Json::as_object)
            .ok_or_else(|| bad("no tables"))?;
        let mut out = BTreeMap::new();
        for (table, def) in tables {
            let columns = def
                .get("columns")
                .and_then(Json::as_object)
                .ok_or_else(|| bad(&format!("table {table} has no columns")))?;
            let columns = columns
                .iter()
                .map(|(c, d)| {
                    d.get("type")
                        .and_then(ColumnType::from_json)
                        .map(|t| (c.clone(), t))
                        .ok_or_else(|| bad(&format!("column {table}.{c} has no valid type")))
                })
                .collect::<Result<_>>()?;
            let is_root = def.get("isRoot").and_then(Json::as_bool).unwrap_or(false);
            out.insert(table.clone(), TableSchema { columns, is_root });
        }
        Ok(Self {
            name: name.to_owned(),
            version: version.to_owned(),
            tables: out,
        })
    }

    /// A column's type; `_uuid` and `_version` are scalar UUIDs.
    pub fn column(&self, table: &str, column: &str) -> Result<ColumnType> {
        if column == "_uuid" || column == "_version" {
            return Ok(ColumnType {
                key: "uuid".into(),
                value: None,
                min: 1,
                max: Some(1),
            });
        }
        self.tables
            .get(table)
            .and_then(|t| t.columns.get(column))
            .cloned()
            .ok_or_else(|| Error::Schema {
                db: self.name.clone(),
                what: format!("column {table}.{column}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_column_types() {
        let json = serde_json::json!({
            "name": "Open_vSwitch", "version": "8.3.1",
            "tables": {
                "Open_vSwitch": {"isRoot": true, "columns": {
                    "next_cfg": {"type": "integer"},
                    "bridges": {"type": {"key": {"type": "uuid", "refTable": "Bridge"}, "min": 0, "max": "unlimited"}},
                    "other_config": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}}}},
                "Interface": {"columns": {"ofport": {"type": {"key": "integer", "min": 0, "max": 1}}}}
            }
        });
        let s = Schema::from_json(&json).unwrap();
        assert!(s.tables["Open_vSwitch"].is_root);
        assert!(!s.tables["Interface"].is_root);
        assert!(s.column("Open_vSwitch", "next_cfg").unwrap().is_scalar());
        let bridges = s.column("Open_vSwitch", "bridges").unwrap();
        assert_eq!(
            (bridges.key.as_str(), bridges.min, bridges.max),
            ("uuid", 0, None)
        );
        assert!(s.column("Open_vSwitch", "other_config").unwrap().is_map());
        let ofport = s.column("Interface", "ofport").unwrap();
        assert!(!ofport.is_scalar() && !ofport.is_map());
        assert!(s.column("Interface", "_uuid").unwrap().is_scalar());
        assert!(matches!(
            s.column("Interface", "nope"),
            Err(Error::Schema { .. })
        ));
    }

    #[test]
    fn parses_the_installed_vswitch_schema() {
        let Ok(text) = std::fs::read_to_string("/usr/share/openvswitch/vswitch.ovsschema") else {
            return;
        };
        let s = Schema::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(s.name, "Open_vSwitch");
        assert!(s.column("Bridge", "protocols").unwrap().max.is_none());
    }
}
