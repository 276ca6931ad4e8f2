//! `transact` operations (RFC 7047 §5.2), conditions, mutations and result checking.

use serde::{Serialize, Serializer};
use serde_json::{Map, Value as Json, json};

use crate::{
    error::{Error, Result},
    value::{NamedUuid, Row, Uuid, Value},
};

/// A condition function (RFC 7047 §5.1 `<function>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `>=`
    Ge,
    /// `>`
    Gt,
    /// `includes`
    Includes,
    /// `excludes`
    Excludes,
}

impl Function {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Ge => ">=",
            Self::Gt => ">",
            Self::Includes => "includes",
            Self::Excludes => "excludes",
        }
    }
}

/// `[<column>, <function>, <value>]`: which rows an operation applies to.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// Column name (`_uuid` allowed).
    pub column: String,
    /// Comparison.
    pub function: Function,
    /// Value compared against.
    pub value: Value,
}

impl Condition {
    /// A condition with any function.
    pub fn new(column: impl Into<String>, function: Function, value: impl Into<Value>) -> Self {
        Self {
            column: column.into(),
            function,
            value: value.into(),
        }
    }

    /// `column == value`.
    pub fn eq(column: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::new(column, Function::Eq, value)
    }

    /// `column != value`.
    pub fn ne(column: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::new(column, Function::Ne, value)
    }

    /// `column includes value`.
    pub fn includes(column: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::new(column, Function::Includes, value)
    }

    /// `column excludes value`.
    pub fn excludes(column: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::new(column, Function::Excludes, value)
    }

    /// `_uuid == uuid`.
    pub fn uuid(uuid: Uuid) -> Self {
        Self::eq("_uuid", uuid)
    }

    /// The JSON form.
    pub fn to_json(&self) -> Json {
        json!([self.column, self.function.as_str(), self.value.to_json()])
    }
}

/// A mutator (RFC 7047 §5.1 `<mutator>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutator {
    /// `+=`
    Add,
    /// `-=`
    Sub,
    /// `*=`
    Mul,
    /// `/=`
    Div,
    /// `%=`
    Mod,
    /// `insert`: add set elements or map pairs; an existing map key is never overwritten.
    Insert,
    /// `delete`: remove set elements, map pairs, or (given a set of keys) map keys.
    Delete,
}

impl Mutator {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "+=",
            Self::Sub => "-=",
            Self::Mul => "*=",
            Self::Div => "/=",
            Self::Mod => "%=",
            Self::Insert => "insert",
            Self::Delete => "delete",
        }
    }
}

/// `[<column>, <mutator>, <value>]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mutation {
    /// Column name.
    pub column: String,
    /// Mutator.
    pub mutator: Mutator,
    /// Operand.
    pub value: Value,
}

impl Mutation {
    /// A mutation with any mutator.
    pub fn new(column: impl Into<String>, mutator: Mutator, value: impl Into<Value>) -> Self {
        Self {
            column: column.into(),
            mutator,
            value: value.into(),
        }
    }

    /// `column insert value`.
    pub fn insert(column: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::new(column, Mutator::Insert, value)
    }

    /// `column delete value`.
    pub fn delete(column: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::new(column, Mutator::Delete, value)
    }

    /// The JSON form.
    pub fn to_json(&self) -> Json {
        json!([self.column, self.mutator.as_str(), self.value.to_json()])
    }
}

/// The `until` of a wait operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// Wait until the selected rows equal `rows`.
    Eq,
    /// Wait until they differ.
    Ne,
}

/// One operation of a `transact` request.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Operation {
    /// §5.2.1 insert.
    Insert {
        /// Table.
        table: String,
        /// Initial column values; omitted columns get their defaults.
        row: Row,
        /// Name by which later operations of the transaction reference the new row.
        uuid_name: Option<NamedUuid>,
    },
    /// §5.2.2 select.
    Select {
        /// Table.
        table: String,
        /// Conditions (all must hold).
        conditions: Vec<Condition>,
        /// Columns to return; `None` returns all.
        columns: Option<Vec<String>>,
    },
    /// §5.2.3 update.
    Update {
        /// Table.
        table: String,
        /// Conditions.
        conditions: Vec<Condition>,
        /// New column values.
        row: Row,
    },
    /// §5.2.4 mutate.
    Mutate {
        /// Table.
        table: String,
        /// Conditions.
        conditions: Vec<Condition>,
        /// Mutations.
        mutations: Vec<Mutation>,
    },
    /// §5.2.5 delete.
    Delete {
        /// Table.
        table: String,
        /// Conditions.
        conditions: Vec<Condition>,
    },
    /// §5.2.6 wait.
    Wait {
        /// Table.
        table: String,
        /// Conditions.
        conditions: Vec<Condition>,
        /// Columns compared.
        columns: Vec<String>,
        /// `==` or `!=`.
        until: Until,
        /// Expected rows.
        rows: Vec<Row>,
        /// Milliseconds before the wait fails with `timed out`; `None` waits forever.
        timeout_ms: Option<u64>,
    },
    /// §5.2.7 commit.
    Commit {
        /// Whether to wait until the commit is durable.
        durable: bool,
    },
    /// §5.2.8 abort: fail the transaction on purpose.
    Abort,
    /// §5.2.9 comment: recorded in the database log.
    Comment(String),
}

impl Operation {
    /// Insert a row.
    pub fn insert(table: impl Into<String>, row: Row) -> Self {
        Self::Insert {
            table: table.into(),
            row,
            uuid_name: None,
        }
    }

    /// Insert a row that later operations reference as `["named-uuid", name]`.
    pub fn insert_named(table: impl Into<String>, row: Row, name: NamedUuid) -> Self {
        Self::Insert {
            table: table.into(),
            row,
            uuid_name: Some(name),
        }
    }

    /// Select all columns of matching rows.
    pub fn select(table: impl Into<String>, conditions: Vec<Condition>) -> Self {
        Self::Select {
            table: table.into(),
            conditions,
            columns: None,
        }
    }

    /// Select some columns of matching rows.
    pub fn select_columns<C: Into<String>>(
        table: impl Into<String>,
        conditions: Vec<Condition>,
        columns: impl IntoIterator<Item = C>,
    ) -> Self {
        Self::Select {
            table: table.into(),
            conditions,
            columns: Some(columns.into_iter().map(Into::into).collect()),
        }
    }

    /// Update matching rows.
    pub fn update(table: impl Into<String>, conditions: Vec<Condition>, row: Row) -> Self {
        Self::Update {
            table: table.into(),
            conditions,
            row,
        }
    }

    /// Mutate matching rows.
    pub fn mutate(
        table: impl Into<String>,
        conditions: Vec<Condition>,
        mutations: Vec<Mutation>,
    ) -> Self {
        Self::Mutate {
            table: table.into(),
            conditions,
            mutations,
        }
    }

    /// Delete matching rows.
    pub fn delete(table: impl Into<String>, conditions: Vec<Condition>) -> Self {
        Self::Delete {
            table: table.into(),
            conditions,
        }
    }

    /// Block the transaction until `columns` of the matching rows compare `until` to `rows`.
    pub fn wait<C: Into<String>>(
        table: impl Into<String>,
        conditions: Vec<Condition>,
        columns: impl IntoIterator<Item = C>,
        until: Until,
        rows: Vec<Row>,
        timeout_ms: Option<u64>,
    ) -> Self {
        Self::Wait {
            table: table.into(),
            conditions,
            columns: columns.into_iter().map(Into::into).collect(),
            until,
            rows,
            timeout_ms,
        }
    }

    /// The `op` name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Insert { .. } => "insert",
            Self::Select { .. } => "select",
            Self::Update { .. } => "update",
            Self::Mutate { .. } => "mutate",
            Self::Delete { .. } => "delete",
            Self::Wait { .. } => "wait",
            Self::Commit { .. } => "commit",
            Self::Abort => "abort",
            Self::Comment(_) => "comment",
        }
    }

    /// The JSON form.
    pub fn to_json(&self) -> Json {
        let mut o = Map::new();
        o.insert("op".into(), self.name().into());
        let conds = |c: &[Condition]| Json::Array(c.iter().map(Condition::to_json).collect());
        match self {
            Self::Insert {
                table,
                row,
                uuid_name,
            } => {
                o.insert("table".into(), table.as_str().into());
                o.insert("row".into(), row.to_json());
                if let Some(name) = uuid_name {
                    o.insert("uuid-name".into(), name.as_str().into());
                }
            }
            Self::Select {
                table,
                conditions,
                columns,
            } => {
                o.insert("table".into(), table.as_str().into());
                o.insert("where".into(), conds(conditions));
                if let Some(columns) = columns {
                    o.insert("columns".into(), json!(columns));
                }
            }
            Self::Update {
                table,
                conditions,
                row,
            } => {
                o.insert("table".into(), table.as_str().into());
                o.insert("where".into(), conds(conditions));
                o.insert("row".into(), row.to_json());
            }
            Self::Mutate {
                table,
                conditions,
                mutations,
            } => {
                o.insert("table".into(), table.as_str().into());
                o.insert("where".into(), conds(conditions));
                o.insert(
                    "mutations".into(),
                    mutations.iter().map(Mutation::to_json).collect(),
                );
            }
            Self::Delete { table, conditions } => {
                o.insert("table".into(), table.as_str().into());
                o.insert("where".into(), conds(conditions));
            }
            Self::Wait {
                table,
                conditions,
                columns,
                until,
                rows,
                timeout_ms,
            } => {
                o.insert("table".into(), table.as_str().into());
                o.insert("where".into(), conds(conditions));
                o.insert("columns".into(), json!(columns));
                o.insert(
                    "until".into(),
                    if *until == Until::Eq { "==" } else { "!=" }.into(),
                );
                o.insert("rows".into(), rows.iter().map(Row::to_json).collect());
                if let Some(ms) = timeout_ms {
                    o.insert("timeout".into(), json!(ms));
                }
            }
            Self::Commit { durable } => {
                o.insert("durable".into(), json!(durable));
            }
            Self::Abort => {}
            Self::Comment(text) => {
                o.insert("comment".into(), text.as_str().into());
            }
        }
        Json::Object(o)
    }
}

impl Serialize for Operation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// The result of one successful operation.
#[derive(Clone, Debug, PartialEq)]
pub enum OpResult {
    /// insert: the new row's UUID.
    Inserted(Uuid),
    /// select: the rows.
    Rows(Vec<Row>),
    /// update, mutate, delete: how many rows matched.
    Count(u64),
    /// wait, commit, comment: `{}`.
    Empty,
}

impl OpResult {
    /// The inserted UUID, or a type error.
    pub fn uuid(&self) -> Result<Uuid> {
        match self {
            Self::Inserted(u) => Ok(*u),
            other => Err(other.unexpected("an insert result")),
        }
    }

    /// The selected rows, or a type error.
    pub fn rows(&self) -> Result<&[Row]> {
        match self {
            Self::Rows(r) => Ok(r),
            other => Err(other.unexpected("a select result")),
        }
    }

    /// Consume into the selected rows.
    pub fn into_rows(self) -> Result<Vec<Row>> {
        match self {
            Self::Rows(r) => Ok(r),
            other => Err(other.unexpected("a select result")),
        }
    }

    /// The row count, or a type error.
    pub fn count(&self) -> Result<u64> {
        match self {
            Self::Count(c) => Ok(*c),
            other => Err(other.unexpected("a count result")),
        }
    }

    fn unexpected(&self, expected: &'static str) -> Error {
        Error::UnexpectedType {
            expected,
            found: format!("{self:?}"),
        }
    }

    fn from_json(json: &Json) -> Option<Self> {
        let o = json.as_object()?;
        if let Some(uuid) = o.get("uuid") {
            return crate::value::Atom::from_json(uuid)
                .ok()?
                .as_uuid()
                .ok()
                .map(Self::Inserted);
        }
        if let Some(rows) = o.get("rows") {
            return rows
                .as_array()?
                .iter()
                .map(|r| Row::from_json(r).ok())
                .collect::<Option<_>>()
                .map(Self::Rows);
        }
        if let Some(count) = o.get("count") {
            return count.as_u64().map(Self::Count);
        }
        o.is_empty().then_some(Self::Empty)
    }
}

/// The `error` and `details` of an error object, if `json` is one.
pub(crate) fn error_object(json: &Json) -> Option<(String, Option<String>)> {
    let error = json.get("error")?;
    let error = error
        .as_str()
        .map_or_else(|| error.to_string(), str::to_owned);
    let details = json
        .get("details")
        .map(|d| d.as_str().map_or_else(|| d.to_string(), str::to_owned));
    Some((error, details))
}

/// Check a `transact` result array against the operations sent (RFC 7047 §4.1.3).
///
/// The array has one element per operation. After a failed operation the rest are `null`.
/// When every operation succeeded but the commit failed, there is one extra element holding the
/// error. Any error becomes [`Error::OperationFailed`] or [`Error::CommitFailed`].
pub fn check_results(ops: &[Operation], result: &Json) -> Result<Vec<OpResult>> {
    let results = result
        .as_array()
        .ok_or_else(|| Error::Protocol(format!("transact result is not an array: {result}")))?;
    let mut out = Vec::with_capacity(ops.len());
    for (index, r) in results.iter().enumerate() {
        let Some(op) = ops.get(index) else {
            return match error_object(r) {
                Some((error, details)) if index == ops.len() => {
                    Err(Error::CommitFailed { error, details })
                }
                _ => Err(Error::Protocol(format!(
                    "transact returned {} results for {} operations",
                    results.len(),
                    ops.len()
                ))),
            };
        };
        if let Some((error, details)) = error_object(r) {
            return Err(Error::OperationFailed {
                index,
                op: op.name(),
                error,
                details,
            });
        }
        let parsed = OpResult::from_json(r).ok_or_else(|| {
            Error::Protocol(format!(
                "unexpected result for operation {index} ({}): {r}",
                op.name()
            ))
        })?;
        out.push(parsed);
    }
    if out.len() < ops.len() {
        return Err(Error::Protocol(format!(
            "transact returned {} results for {} operations",
            results.len(),
            ops.len()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Atom;

    #[test]
    fn operations_serialize_exactly() {
        let name = NamedUuid::new("iface0").unwrap();
        let ops = vec![
            Operation::insert_named("Interface", Row::new().with("name", "a1"), name.clone()),
            Operation::select_columns(
                "Bridge",
                vec![Condition::eq("name", "br0")],
                ["_uuid", "ports"],
            ),
            Operation::select("Bridge", vec![]),
            Operation::update("Bridge", vec![], Row::new().with("fail_mode", "secure")),
            Operation::mutate(
                "Open_vSwitch",
                vec![],
                vec![
                    Mutation::new("next_cfg", Mutator::Add, 1i64),
                    Mutation::insert("bridges", Value::set([name])),
                    Mutation::delete("other_config", Value::set(["k"])),
                ],
            ),
            Operation::delete(
                "Port",
                vec![Condition::includes("trunks", Value::set([1i64, 2]))],
            ),
            Operation::wait(
                "Interface",
                vec![],
                ["ofport"],
                Until::Ne,
                vec![Row::new().with("ofport", Value::empty())],
                Some(500),
            ),
            Operation::Commit { durable: false },
            Operation::Abort,
            Operation::Comment("hello".into()),
        ];
        let got = serde_json::to_value(&ops).unwrap();
        let want = json!([
            {"op": "insert", "table": "Interface", "row": {"name": "a1"}, "uuid-name": "iface0"},
            {"op": "select", "table": "Bridge", "where": [["name", "==", "br0"]], "columns": ["_uuid", "ports"]},
            {"op": "select", "table": "Bridge", "where": []},
            {"op": "update", "table": "Bridge", "where": [], "row": {"fail_mode": "secure"}},
            {"op": "mutate", "table": "Open_vSwitch", "where": [], "mutations": [
                ["next_cfg", "+=", 1],
                ["bridges", "insert", ["set", [["named-uuid", "iface0"]]]],
                ["other_config", "delete", ["set", ["k"]]]]},
            {"op": "delete", "table": "Port", "where": [["trunks", "includes", ["set", [1, 2]]]]},
            {"op": "wait", "table": "Interface", "where": [], "columns": ["ofport"], "until": "!=",
             "rows": [{"ofport": ["set", []]}], "timeout": 500},
            {"op": "commit", "durable": false},
            {"op": "abort"},
            {"op": "comment", "comment": "hello"},
        ]);
        assert_eq!(got, want);
    }

    fn ops(n: usize) -> Vec<Operation> {
        (0..n).map(|_| Operation::Comment(String::new())).collect()
    }

    #[test]
    fn results_parse_per_operation() {
        let result = json!([
            {"uuid": ["uuid", "550e8400-e29b-41d4-a716-446655440000"]},
            {"rows": [{"next_cfg": 3}]},
            {"count": 2},
            {},
        ]);
        let r = check_results(&ops(4), &result).unwrap();
        assert_eq!(
            r[0].uuid().unwrap().to_string(),
            "550e8400-e29b-41d4-a716-446655440000"
        );
        assert_eq!(
            r[1].rows().unwrap()[0]
                .get("next_cfg")
                .unwrap()
                .as_i64()
                .unwrap(),
            3
        );
        assert_eq!(r[2].count().unwrap(), 2);
        assert_eq!(r[3], OpResult::Empty);
        assert!(r[3].count().is_err());
    }

    #[test]
    fn failed_operation_is_named_and_later_nulls_are_accepted() {
        let mut o = ops(3);
        o[1] = Operation::wait::<String>("T", vec![], [], Until::Eq, vec![], Some(0));
        let result =
            json!([{}, {"error": "timed out", "details": "\"wait\" timed out after 0 ms"}, null]);
        let err = check_results(&o, &result).unwrap_err();
        assert!(
            matches!(&err, Error::OperationFailed { index: 1, op: "wait", error, .. } if error == "timed out"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "OVSDB transaction failed at operation 1 (wait): timed out: \"wait\" timed out after 0 ms"
        );
    }

    #[test]
    fn extra_element_is_the_commit_error() {
        let details = "Transaction causes multiple rows in \"Interface\" table to have identical \
                       values (a1) for index on column \"name\".";
        let result = json!([
            {"uuid": ["uuid", "550e8400-e29b-41d4-a716-446655440000"]},
            {"count": 1},
            {"error": "constraint violation", "details": details},
        ]);
        let err = check_results(&ops(2), &result).unwrap_err();
        assert!(
            matches!(&err, Error::CommitFailed { error, .. } if error == "constraint violation")
        );
        let text = err.to_string();
        assert!(
            text.contains("constraint violation: Transaction causes multiple rows"),
            "{text}"
        );
        assert!(text.contains("(a1)"), "{text}");
    }

    #[test]
    fn malformed_result_arrays_are_protocol_errors() {
        for bad in [
            json!({}),
            json!([{}]),
            json!([{}, {}, {}, {}]),
            json!([{}, null]),
            json!([{}, {"weird": 1}]),
            json!([{}, {}, {}]),
        ] {
            assert!(
                matches!(check_results(&ops(2), &bad), Err(Error::Protocol(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn condition_and_atom_helpers() {
        let u = Uuid::nil();
        assert_eq!(
            Condition::uuid(u).to_json(),
            json!(["_uuid", "==", ["uuid", u.to_string()]])
        );
        assert_eq!(
            Condition::ne("ofport", -1i64).to_json(),
            json!(["ofport", "!=", -1])
        );
        assert_eq!(
            Condition::excludes("x", Atom::Boolean(true)).to_json(),
            json!(["x", "excludes", true])
        );
    }
}
