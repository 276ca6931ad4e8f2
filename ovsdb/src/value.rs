//! The RFC 7047 §5.1 data model: atoms, sets, maps and rows, with their exact JSON forms.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};
use serde_json::{Value as Json, json};
pub use uuid::Uuid;

use crate::error::{Error, Result};

/// The id of a row inserted earlier in the same transaction (`["named-uuid", id]`).
///
/// RFC 7047 §3.1 `<id>`: `[a-zA-Z_][a-zA-Z0-9_]*`; ovsdb-server rejects anything else (so a
/// UUID string with `-` is not a valid name).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NamedUuid(String);

impl NamedUuid {
    /// Validate `id` as an RFC 7047 `<id>`.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        let mut bytes = id.bytes();
        let valid = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if valid {
            Ok(Self(id))
        } else {
            Err(Error::InvalidNamedUuid(id))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NamedUuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One scalar OVSDB value (RFC 7047 §5.1 `<atom>`).
#[derive(Clone, Debug, PartialEq)]
pub enum Atom {
    /// `<integer>`: a JSON number without fraction or exponent.
    Integer(i64),
    /// `<real>`: any other JSON number.
    Real(f64),
    /// `<boolean>`.
    Boolean(bool),
    /// `<string>`.
    String(String),
    /// `["uuid", "<uuid>"]`.
    Uuid(Uuid),
    /// `["named-uuid", <id>]`, only valid inside a transaction.
    NamedUuid(NamedUuid),
}

/// A column value (RFC 7047 §5.1 `<value>`): an atom, a set or a map.
///
/// A set with exactly one element may be sent as the bare atom, and ovsdb-server always does
/// so; the getters therefore treat [`Value::Atom`] as a one-element set.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A bare `<atom>`.
    Atom(Atom),
    /// `["set", [<atom>*]]`.
    Set(Vec<Atom>),
    /// `["map", [[<atom>, <atom>]*]]`.
    Map(Vec<(Atom, Atom)>),
}

fn describe(json: &Json) -> String {
    let mut s = json.to_string();
    if s.len() > 80 {
        let mut cut = 77;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

impl Atom {
    /// Parse an atom from its JSON form.
    pub fn from_json(json: &Json) -> Result<Self> {
        let wrong = || Error::UnexpectedType {
            expected: "an OVSDB atom",
            found: describe(json),
        };
        match json {
            Json::Number(n) => n
                .as_i64()
                .map(Atom::Integer)
                .or_else(|| n.is_f64().then(|| n.as_f64().map(Atom::Real)).flatten())
                .ok_or_else(wrong),
            Json::Bool(b) => Ok(Self::Boolean(*b)),
            Json::String(s) => Ok(Self::String(s.clone())),
            Json::Array(a) => match a.as_slice() {
                [Json::String(tag), Json::String(s)] if tag == "uuid" => Uuid::try_parse(s)
                    .map(Atom::Uuid)
                    .map_err(|_| Error::InvalidUuid(s.clone())),
                [Json::String(tag), Json::String(s)] if tag == "named-uuid" => {
                    NamedUuid::new(s.clone()).map(Atom::NamedUuid)
                }
                _ => Err(wrong()),
            },
            Json::Null | Json::Object(_) => Err(wrong()),
        }
    }

    /// The JSON form.
    pub fn to_json(&self) -> Json {
        match self {
            Self::Integer(i) => json!(i),
            Self::Real(r) => json!(r),
            Self::Boolean(b) => json!(b),
            Self::String(s) => json!(s),
            Self::Uuid(u) => json!(["uuid", u.hyphenated().to_string()]),
            Self::NamedUuid(n) => json!(["named-uuid", n.as_str()]),
        }
    }

    /// The integer, or a type error.
    pub fn as_i64(&self) -> Result<i64> {
        match self {
            Self::Integer(i) => Ok(*i),
            other => Err(other.unexpected("an integer")),
        }
    }

    /// The real (integers convert), or a type error.
    pub fn as_f64(&self) -> Result<f64> {
        match self {
            Self::Real(r) => Ok(*r),
            Self::Integer(i) => Ok(*i as f64),
            other => Err(other.unexpected("a real")),
        }
    }

    /// The boolean, or a type error.
    pub fn as_bool(&self) -> Result<bool> {
        match self {
            Self::Boolean(b) => Ok(*b),
            other => Err(other.unexpected("a boolean")),
        }
    }

    /// The string, or a type error.
    pub fn as_str(&self) -> Result<&str> {
        match self {
            Self::String(s) => Ok(s),
            other => Err(other.unexpected("a string")),
        }
    }

    /// The UUID, or a type error (a named-uuid has no UUID yet).
    pub fn as_uuid(&self) -> Result<Uuid> {
        match self {
            Self::Uuid(u) => Ok(*u),
            other => Err(other.unexpected("a uuid")),
        }
    }

    fn unexpected(&self, expected: &'static str) -> Error {
        Error::UnexpectedType {
            expected,
            found: describe(&self.to_json()),
        }
    }
}

impl Value {
    /// The empty set, which is also how an optional column says "none".
    pub fn empty() -> Self {
        Self::Set(Vec::new())
    }

    /// A set from atoms.
    pub fn set<A: Into<Atom>>(atoms: impl IntoIterator<Item = A>) -> Self {
        Self::Set(atoms.into_iter().map(Into::into).collect())
    }

    /// A map from key/value pairs.
    pub fn map<K: Into<Atom>, V: Into<Atom>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// An optional value: the atom, or the empty set.
    pub fn optional<A: Into<Atom>>(atom: Option<A>) -> Self {
        atom.map_or_else(Self::empty, |a| Self::Atom(a.into()))
    }

    /// Parse a value from its JSON form.
    pub fn from_json(json: &Json) -> Result<Self> {
        let tagged = match json {
            Json::Array(a) => match a.as_slice() {
                [Json::String(tag), Json::Array(items)] => Some((tag.as_str(), items)),
                _ => None,
            },
            _ => None,
        };
        match tagged {
            Some(("set", items)) => items
                .iter()
                .map(Atom::from_json)
                .collect::<Result<_>>()
                .map(Self::Set),
            Some(("map", items)) => items
                .iter()
                .map(|pair| match pair.as_array().map(Vec::as_slice) {
                    Some([k, v]) => Ok((Atom::from_json(k)?, Atom::from_json(v)?)),
                    _ => Err(Error::UnexpectedType {
                        expected: "a [key, value] pair",
                        found: describe(pair),
                    }),
                })
                .collect::<Result<_>>()
                .map(Self::Map),
            _ => Atom::from_json(json).map(Self::Atom),
        }
    }

    /// The JSON form.
    pub fn to_json(&self) -> Json {
        match self {
            Self::Atom(a) => a.to_json(),
            Self::Set(atoms) => json!(["set", atoms.iter().map(Atom::to_json).collect::<Vec<_>>()]),
            Self::Map(pairs) => json!([
                "map",
                pairs
                    .iter()
                    .map(|(k, v)| json!([k.to_json(), v.to_json()]))
                    .collect::<Vec<_>>()
            ]),
        }
    }

    /// The elements, treating a bare atom as a one-element set. Maps are a type error.
    pub fn atoms(&self) -> Result<&[Atom]> {
        match self {
            Self::Atom(a) => Ok(std::slice::from_ref(a)),
            Self::Set(atoms) => Ok(atoms),
            Self::Map(_) => Err(self.unexpected("a set")),
        }
    }

    /// The pairs of a map (an empty set counts as an empty map).
    pub fn pairs(&self) -> Result<&[(Atom, Atom)]> {
        match self {
            Self::Map(pairs) => Ok(pairs),
            Self::Set(atoms) if atoms.is_empty() => Ok(&[]),
            _ => Err(self.unexpected("a map")),
        }
    }

    /// The single atom of a scalar column (or of a one-element set).
    pub fn atom(&self) -> Result<&Atom> {
        match self.atoms() {
            Ok([a]) => Ok(a),
            _ => Err(self.unexpected("exactly one atom")),
        }
    }

    /// The atom of an optional column (`min 0, max 1`): `None` for the empty set.
    pub fn optional_atom(&self) -> Result<Option<&Atom>> {
        match self.atoms() {
            Ok([]) => Ok(None),
            Ok([a]) => Ok(Some(a)),
            _ => Err(self.unexpected("zero or one atom")),
        }
    }

    /// A scalar integer.
    pub fn as_i64(&self) -> Result<i64> {
        self.atom()?.as_i64()
    }

    /// A scalar real.
    pub fn as_f64(&self) -> Result<f64> {
        self.atom()?.as_f64()
    }

    /// A scalar boolean.
    pub fn as_bool(&self) -> Result<bool> {
        self.atom()?.as_bool()
    }

    /// A scalar string.
    pub fn as_str(&self) -> Result<&str> {
        self.atom()?.as_str()
    }

    /// A scalar UUID.
    pub fn as_uuid(&self) -> Result<Uuid> {
        self.atom()?.as_uuid()
    }

    /// An optional integer (`[]` is `None`).
    pub fn optional_i64(&self) -> Result<Option<i64>> {
        self.optional_atom()?.map(Atom::as_i64).transpose()
    }

    /// An optional string (`[]` is `None`).
    pub fn optional_str(&self) -> Result<Option<&str>> {
        self.optional_atom()?.map(Atom::as_str).transpose()
    }

    /// A set of UUIDs.
    pub fn uuids(&self) -> Result<Vec<Uuid>> {
        self.atoms()?.iter().map(Atom::as_uuid).collect()
    }

    /// A set of strings.
    pub fn strings(&self) -> Result<Vec<&str>> {
        self.atoms()?.iter().map(Atom::as_str).collect()
    }

    /// A string-to-string map.
    pub fn string_map(&self) -> Result<BTreeMap<String, String>> {
        self.pairs()?
            .iter()
            .map(|(k, v)| Ok((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
            .collect()
    }

    fn unexpected(&self, expected: &'static str) -> Error {
        Error::UnexpectedType {
            expected,
            found: describe(&self.to_json()),
        }
    }
}

macro_rules! atom_from {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {$(
        impl From<$t> for Atom {
            fn from($v: $t) -> Self {
                $e
            }
        }
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Self::Atom(v.into())
            }
        }
    )*};
}

atom_from! {
    i64 => |v| Self::Integer(v),
    u16 => |v| Self::Integer(v.into()),
    u32 => |v| Self::Integer(v.into()),
    f64 => |v| Self::Real(v),
    bool => |v| Self::Boolean(v),
    &str => |v| Self::String(v.to_owned()),
    String => |v| Self::String(v),
    &String => |v| Self::String(v.clone()),
    Uuid => |v| Self::Uuid(v),
    NamedUuid => |v| Self::NamedUuid(v),
    &NamedUuid => |v| Self::NamedUuid(v.clone()),
}

impl From<Atom> for Value {
    fn from(a: Atom) -> Self {
        Self::Atom(a)
    }
}

impl Serialize for Atom {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Atom {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::from_json(&Json::deserialize(d)?).map_err(D::Error::custom)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::from_json(&Json::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// A row: column name to value (RFC 7047 §5.1 `<row>`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Row(BTreeMap<String, Value>);

impl Row {
    /// An empty row.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse a row from a JSON object.
    pub fn from_json(json: &Json) -> Result<Self> {
        let obj = json.as_object().ok_or_else(|| Error::UnexpectedType {
            expected: "a row object",
            found: describe(json),
        })?;
        obj.iter()
            .map(|(k, v)| Ok((k.clone(), Value::from_json(v)?)))
            .collect::<Result<_>>()
            .map(Self)
    }

    /// The JSON object form.
    pub fn to_json(&self) -> Json {
        Json::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
        )
    }

    /// Set a column (builder style).
    pub fn with(mut self, column: impl Into<String>, value: impl Into<Value>) -> Self {
        self.insert(column, value);
        self
    }

    /// Set a column.
    pub fn insert(&mut self, column: impl Into<String>, value: impl Into<Value>) {
        self.0.insert(column.into(), value.into());
    }

    /// Remove a column, returning its value.
    pub fn remove(&mut self, column: &str) -> Option<Value> {
        self.0.remove(column)
    }

    /// A column's value, or [`Error::MissingColumn`].
    pub fn get(&self, column: &str) -> Result<&Value> {
        self.0
            .get(column)
            .ok_or_else(|| Error::MissingColumn(column.to_owned()))
    }

    /// Whether the row has the column.
    pub fn contains(&self, column: &str) -> bool {
        self.0.contains_key(column)
    }

    /// The `_uuid` column.
    pub fn uuid(&self) -> Result<Uuid> {
        self.get("_uuid")?.as_uuid()
    }

    /// Columns and values in column-name order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.0.iter()
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Row {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl IntoIterator for Row {
    type Item = (String, Value);
    type IntoIter = std::collections::btree_map::IntoIter<String, Value>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> Value {
        let json: Json = serde_json::from_str(text).unwrap();
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_value(&value).unwrap(), json, "{text}");
        assert_eq!(
            serde_json::from_value::<Value>(value.to_json()).unwrap(),
            value
        );
        value
    }

    #[test]
    fn rfc_7047_atoms_round_trip() {
        assert_eq!(round_trip("42"), Value::Atom(Atom::Integer(42)));
        assert_eq!(round_trip("-9223372036854775808"), Value::from(i64::MIN));
        assert_eq!(round_trip("1.5"), Value::from(1.5));
        assert_eq!(round_trip("1.0"), Value::Atom(Atom::Real(1.0)));
        assert_eq!(round_trip("true"), Value::from(true));
        assert_eq!(round_trip(r#""br0""#), Value::from("br0"));
        let u = round_trip(r#"["uuid","550e8400-e29b-41d4-a716-446655440000"]"#);
        assert_eq!(
            u.as_uuid().unwrap().to_string(),
            "550e8400-e29b-41d4-a716-446655440000"
        );
        let n = round_trip(r#"["named-uuid","row_1"]"#);
        assert_eq!(n, Value::from(NamedUuid::new("row_1").unwrap()));
    }

    #[test]
    fn rfc_7047_sets_and_maps_round_trip() {
        let s = round_trip(r#"["set",["OpenFlow13","OpenFlow14"]]"#);
        assert_eq!(s.strings().unwrap(), ["OpenFlow13", "OpenFlow14"]);
        assert_eq!(round_trip(r#"["set",[]]"#).optional_i64().unwrap(), None);
        let m = round_trip(r#"["map",[["datapath-id","0000000000000001"],["k","v"]]]"#);
        assert_eq!(m.string_map().unwrap()["datapath-id"], "0000000000000001");
        assert_eq!(round_trip(r#"["map",[]]"#).string_map().unwrap().len(), 0);
        let uuids = round_trip(
            r#"["set",[["uuid","550e8400-e29b-41d4-a716-446655440000"],["named-uuid","p0"]]]"#,
        );
        assert!(uuids.uuids().is_err(), "a named-uuid has no UUID yet");
    }

    #[test]
    fn a_bare_atom_is_a_one_element_set() {
        let v = round_trip("7");
        assert_eq!(v.atoms().unwrap(), [Atom::Integer(7)]);
        assert_eq!(v.optional_i64().unwrap(), Some(7));
        assert_eq!(Value::set([7i64]).as_i64().unwrap(), 7);
        assert_eq!(Value::from("x").strings().unwrap(), ["x"]);
    }

    #[test]
    fn named_uuid_ids_are_validated() {
        for ok in ["a", "_", "row_0", "Port12", "_x9"] {
            NamedUuid::new(ok).unwrap();
        }
        for bad in [
            "",
            "0row",
            "a-b",
            "550e8400-e29b-41d4-a716-446655440000",
            "ä",
            "a b",
        ] {
            assert!(
                matches!(NamedUuid::new(bad), Err(Error::InvalidNamedUuid(_))),
                "{bad:?}"
            );
        }
        assert!(serde_json::from_str::<Value>(r#"["named-uuid","a-b"]"#).is_err());
    }

    #[test]
    fn malformed_values_are_rejected() {
        for bad in [
            "null",
            "{}",
            r#"["uuid","not-a-uuid"]"#,
            r#"["set",[[1,2]]]"#,
            r#"["map",[[1]]]"#,
            r#"["map",[1,2]]"#,
            r#"["bag",[]]"#,
            "[1,2]",
            "18446744073709551615",
        ] {
            assert!(serde_json::from_str::<Value>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn getters_name_the_wrong_type() {
        let err = Value::from("x").as_i64().unwrap_err().to_string();
        assert_eq!(err, r#"expected an integer, found "x""#);
        assert!(Value::set([1i64, 2]).optional_i64().is_err());
        assert!(Value::map([("a", "b")]).atoms().is_err());
    }

    #[test]
    fn rows_round_trip() {
        let text = r#"{"_uuid":["uuid","550e8400-e29b-41d4-a716-446655440000"],"name":"br0",
            "ports":["set",[]],"other_config":["map",[["a","b"]]],"ofport":5}"#;
        let row: Row = serde_json::from_str(text).unwrap();
        assert_eq!(row.get("name").unwrap().as_str().unwrap(), "br0");
        assert_eq!(
            row.uuid().unwrap().to_string(),
            "550e8400-e29b-41d4-a716-446655440000"
        );
        assert!(matches!(row.get("nope"), Err(Error::MissingColumn(_))));
        let back: Row = serde_json::from_value(row.to_json()).unwrap();
        assert_eq!(back, row);
    }
}
