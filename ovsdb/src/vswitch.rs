//! Typed operations on the `Open_vSwitch` database (schema in `vswitch.ovsschema`).
//!
//! The rules these helpers encode (RFC 7047 plus the OVS schema):
//! - Bridge, Port and Interface are not root tables: a row nobody references is garbage
//!   collected at commit. So a Bridge is inserted together with the `Open_vSwitch.bridges`
//!   mutation, Interface + Port together with the `Bridge.ports` mutation, and ports are
//!   deleted by removing them from `Bridge.ports`.
//! - Names are unique per table: one duplicate fails the whole transaction.
//! - A map `insert` mutation never overwrites a key, so changing a key is delete then insert.
//! - ovs-vswitchd copies `next_cfg` to `cur_cfg` after a reconfiguration that includes every
//!   earlier commit (and writes each `Interface.ofport` in the same pass), so one `next_cfg`
//!   bump per batch and one wait on `cur_cfg` replace a wait per port.

use std::{collections::BTreeMap, time::Duration};

use tracing::{debug, instrument};

use crate::{
    client::Client,
    error::{Error, Result},
    monitor::MonitorRequest,
    ops::{Condition, Mutation, Mutator, Operation},
    value::{NamedUuid, Row, Uuid, Value},
};

/// The database these helpers work on.
pub const DB: &str = "Open_vSwitch";

/// `Bridge.datapath_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatapathType {
    /// The kernel datapath (needs the openvswitch module).
    System,
    /// The userspace datapath: ovs-vswitchd forwards frames itself.
    Netdev,
}

impl DatapathType {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Netdev => "netdev",
        }
    }
}

/// `Bridge.fail_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailMode {
    /// Never install the NORMAL fallback flow: only the flows we add forward.
    Secure,
    /// Act as a learning switch while no controller is connected.
    Standalone,
}

impl FailMode {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secure => "secure",
            Self::Standalone => "standalone",
        }
    }
}

/// The maps of a bridge that say who made it and how (see [`Vswitch::bridge_ids`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeIds {
    /// `Bridge.external_ids`.
    pub external_ids: BTreeMap<String, String>,
    /// `Bridge.other_config` (`datapath-id` among others).
    pub other_config: BTreeMap<String, String>,
}

/// The desired state of a bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeSpec {
    /// Bridge name.
    pub name: String,
    /// Datapath type.
    pub datapath_type: DatapathType,
    /// Pinned datapath id: adding or deleting ports can otherwise change it and drop
    /// OpenFlow connections. Written as 16 hex digits to `other_config:datapath-id`.
    pub datapath_id: u64,
    /// Fail mode; `secure` by default.
    pub fail_mode: FailMode,
    /// Allowed OpenFlow versions; OpenFlow13 and OpenFlow14 by default.
    pub protocols: Vec<String>,
    /// Further `other_config` keys to enforce (others are left alone).
    pub other_config: BTreeMap<String, String>,
    /// `external_ids` keys to enforce (others are left alone).
    pub external_ids: BTreeMap<String, String>,
}

impl BridgeSpec {
    /// A secure bridge speaking OpenFlow 1.3 and 1.4 with a pinned datapath id.
    pub fn new(name: impl Into<String>, datapath_type: DatapathType, datapath_id: u64) -> Self {
        Self {
            name: name.into(),
            datapath_type,
            datapath_id,
            fail_mode: FailMode::Secure,
            protocols: vec!["OpenFlow13".into(), "OpenFlow14".into()],
            other_config: BTreeMap::new(),
            external_ids: BTreeMap::new(),
        }
    }

    /// Replace the allowed OpenFlow versions.
    pub fn protocols<S: Into<String>>(mut self, protocols: impl IntoIterator<Item = S>) -> Self {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Set the fail mode.
    pub fn fail_mode(mut self, mode: FailMode) -> Self {
        self.fail_mode = mode;
        self
    }

    /// Enforce an `other_config` key.
    pub fn other_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.other_config.insert(key.into(), value.into());
        self
    }

    /// Enforce an `external_ids` key.
    pub fn external_id(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.external_ids.insert(key.into(), value.into());
        self
    }

    fn wanted_other_config(&self) -> BTreeMap<String, String> {
        let mut m = self.other_config.clone();
        m.insert("datapath-id".into(), format!("{:016x}", self.datapath_id));
        m
    }
}

/// A port with its single interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    /// Port and interface name.
    pub name: String,
    /// `Interface.type`: empty for a system interface (a veth), `internal`, `vxlan`, …
    pub kind: String,
    /// `Interface.ofport_request` (1–65279); OVS never auto-assigns 32768 and above.
    pub ofport_request: Option<u16>,
    /// `Interface.options`.
    pub options: BTreeMap<String, String>,
    /// `Interface.bfd`: BFD on the interface (`enable`, `min_rx`, `min_tx`, ...).
    pub bfd: BTreeMap<String, String>,
    /// `Interface.mtu_request`.
    pub mtu_request: Option<u32>,
    /// `Port.external_ids`.
    pub port_external_ids: BTreeMap<String, String>,
    /// `Interface.external_ids`.
    pub iface_external_ids: BTreeMap<String, String>,
}

impl PortSpec {
    /// A port for the existing system interface `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: String::new(),
            ofport_request: None,
            options: BTreeMap::new(),
            bfd: BTreeMap::new(),
            mtu_request: None,
            port_external_ids: BTreeMap::new(),
            iface_external_ids: BTreeMap::new(),
        }
    }

    /// Set `Interface.type`.
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = kind.into();
        self
    }

    /// An internal port (a tap device on the netdev datapath).
    pub fn internal(self) -> Self {
        self.kind("internal")
    }

    /// Request an OpenFlow port number.
    pub fn ofport_request(mut self, ofport: u16) -> Self {
        self.ofport_request = Some(ofport);
        self
    }

    /// Set an `Interface.options` key.
    pub fn option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.insert(key.into(), value.into());
        self
    }

    /// Set an `Interface.bfd` key.
    pub fn bfd(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.bfd.insert(key.into(), value.into());
        self
    }

    /// Request an MTU.
    pub fn mtu_request(mut self, mtu: u32) -> Self {
        self.mtu_request = Some(mtu);
        self
    }

    /// Set a `Port.external_ids` key.
    pub fn port_external_id(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.port_external_ids.insert(key.into(), value.into());
        self
    }

    /// Set an `Interface.external_ids` key.
    pub fn iface_external_id(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.iface_external_ids.insert(key.into(), value.into());
        self
    }

    fn interface_row(&self) -> Row {
        let mut row = Row::new()
            .with("name", &self.name)
            .with("type", &self.kind)
            .with("options", string_map(&self.options))
            .with("external_ids", string_map(&self.iface_external_ids));
        if let Some(ofport) = self.ofport_request {
            row.insert("ofport_request", ofport);
        }
        if !self.bfd.is_empty() {
            row.insert("bfd", string_map(&self.bfd));
        }
        if let Some(mtu) = self.mtu_request {
            row.insert("mtu_request", mtu);
        }
        row
    }
}

/// A port to delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortRef {
    /// By `Port.name`.
    Name(String),
    /// By `Port._uuid`.
    Uuid(Uuid),
}

impl From<&str> for PortRef {
    fn from(name: &str) -> Self {
        Self::Name(name.to_owned())
    }
}

impl From<String> for PortRef {
    fn from(name: String) -> Self {
        Self::Name(name)
    }
}

impl From<Uuid> for PortRef {
    fn from(uuid: Uuid) -> Self {
        Self::Uuid(uuid)
    }
}

/// One port inserted by [`Vswitch::add_ports`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddedPort {
    /// Its name.
    pub name: String,
    /// `Port._uuid`.
    pub port: Uuid,
    /// `Interface._uuid`.
    pub interface: Uuid,
}

/// The outcome of a batch that ovs-vswitchd still has to apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Pass to [`Vswitch::wait_applied`].
    pub next_cfg: i64,
    /// Ports inserted (empty for deletions).
    pub added: Vec<AddedPort>,
    /// How many ports were removed from the bridge (zero for insertions).
    pub removed: usize,
}

/// `Interface.ofport`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfPort {
    /// `[]`: ovs-vswitchd has not processed the interface yet.
    Pending,
    /// The assigned OpenFlow port number.
    Assigned(u32),
    /// `-1`: the interface could not be created; see [`InterfaceState::error`].
    Failed,
}

/// What ovs-vswitchd reports about an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceState {
    /// Name.
    pub name: String,
    /// `_uuid`.
    pub uuid: Uuid,
    /// `ofport`.
    pub ofport: OfPort,
    /// `error`: why the interface failed, if it did.
    pub error: Option<String>,
    /// `link_state` (`up`/`down`), ephemeral.
    pub link_state: Option<String>,
    /// `admin_state` (`up`/`down`), ephemeral.
    pub admin_state: Option<String>,
    /// `mtu`, ephemeral.
    pub mtu: Option<i64>,
    /// `ofport_request`: the port number asked for, if any.
    pub ofport_request: Option<u32>,
    /// `external_ids`.
    pub external_ids: BTreeMap<String, String>,
    /// `bfd`: the BFD configuration.
    pub bfd: BTreeMap<String, String>,
    /// `bfd_status`: the BFD session's state (`state`, `forwarding`, ...), ephemeral.
    pub bfd_status: BTreeMap<String, String>,
}

/// Names read by one transaction of [`Vswitch::interfaces_named`].
const NAMED_PER_READ: usize = 128;

const IFACE_COLUMNS: [&str; 11] = [
    "bfd",
    "bfd_status",
    "_uuid",
    "name",
    "ofport",
    "error",
    "link_state",
    "admin_state",
    "mtu",
    "ofport_request",
    "external_ids",
];

impl InterfaceState {
    fn from_row(row: &Row) -> Result<Self> {
        let ofport = match row.get("ofport")?.optional_i64()? {
            None => OfPort::Pending,
            Some(n) if n > 0 => {
                OfPort::Assigned(u32::try_from(n).map_err(|_| Error::UnexpectedType {
                    expected: "an OpenFlow port number",
                    found: n.to_string(),
                })?)
            }
            Some(_) => OfPort::Failed,
        };
        let opt = |c: &str| -> Result<Option<String>> {
            Ok(row.get(c)?.optional_str()?.map(str::to_owned))
        };
        Ok(Self {
            name: row.get("name")?.as_str()?.to_owned(),
            uuid: row.uuid()?,
            ofport,
            error: opt("error")?,
            link_state: opt("link_state")?,
            admin_state: opt("admin_state")?,
            mtu: row.get("mtu")?.optional_i64()?,
            ofport_request: row
                .get("ofport_request")?
                .optional_i64()?
                .and_then(|n| u32::try_from(n).ok()),
            external_ids: row.get("external_ids")?.string_map()?,
            bfd: row.get("bfd")?.string_map()?,
            bfd_status: row.get("bfd_status")?.string_map()?,
        })
    }
}

/// Typed access to the `Open_vSwitch` database over one [`Client`].
#[derive(Clone, Debug)]
pub struct Vswitch {
    client: Client,
}

fn next_cfg_ops() -> [Operation; 2] {
    [
        Operation::mutate(
            DB,
            vec![],
            vec![Mutation::new("next_cfg", Mutator::Add, 1i64)],
        ),
        Operation::select_columns(DB, vec![], ["next_cfg"]),
    ]
}

fn read_next_cfg(result: &crate::ops::OpResult) -> Result<i64> {
    let rows = result.rows()?;
    let row = rows.first().ok_or_else(|| Error::NotFound {
        table: DB,
        name: "(root row)".into(),
    })?;
    row.get("next_cfg")?.as_i64()
}

fn string_map(m: &BTreeMap<String, String>) -> Value {
    Value::map(m)
}

/// Mutations that make `column` contain `wanted` (other keys untouched): delete the keys whose
/// value differs, then insert them, because a map insert never overwrites.
fn map_fix(
    column: &str,
    current: &BTreeMap<String, String>,
    wanted: &BTreeMap<String, String>,
) -> Vec<Mutation> {
    let stale: Vec<_> = wanted
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .collect();
    if stale.is_empty() {
        return Vec::new();
    }
    vec![
        Mutation::delete(column, Value::set(stale.iter().map(|(k, _)| k.as_str()))),
        Mutation::insert(
            column,
            Value::map(stale.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        ),
    ]
}

impl Vswitch {
    /// Wrap a client.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Names of all bridges.
    pub async fn bridges(&self) -> Result<Vec<String>> {
        let r = self
            .client
            .transact(DB)
            .op(Operation::select_columns("Bridge", vec![], ["name"]))
            .execute()
            .await?;
        let mut names = r[0]
            .rows()?
            .iter()
            .map(|row| Ok(row.get("name")?.as_str()?.to_owned()))
            .collect::<Result<Vec<_>>>()?;
        names.sort();
        Ok(names)
    }

    /// Removes the bridge `name` with all its ports and interfaces (like `ovs-vsctl --if-exists
    /// del-br`) in one transaction that also bumps `next_cfg`. Returns the `next_cfg` to pass
    /// to [`wait_applied`](Self::wait_applied) (ovs-vswitchd removes the bridge's devices only
    /// when it applies the commit), or `None` when there was no such bridge.
    #[instrument(skip(self))]
    pub async fn delete_bridge(&self, name: &str) -> Result<Option<i64>> {
        let r = self
            .client
            .transact(DB)
            .op(Operation::select_columns(
                "Bridge",
                vec![Condition::eq("name", name)],
                ["_uuid"],
            ))
            .execute()
            .await?;
        let Some(row) = r[0].rows()?.first() else {
            return Ok(None);
        };
        // Unreferenced from the root row, the bridge and everything only it refers to (its
        // ports, their interfaces) are garbage-collected in the same commit.
        let r = self
            .client
            .transact(DB)
            .op(Operation::mutate(
                DB,
                vec![],
                vec![Mutation::delete("bridges", Value::set([row.uuid()?]))],
            ))
            .ops(next_cfg_ops())
            .execute()
            .await?;
        read_next_cfg(&r[2]).map(Some)
    }

    /// Create the bridge, or fix the columns of an existing one that differ from `spec`.
    /// Returns the bridge's UUID. Idempotent: a bridge already as wanted costs one read.
    #[instrument(skip_all, fields(bridge = %spec.name))]
    pub async fn ensure_bridge(&self, spec: &BridgeSpec) -> Result<Uuid> {
        let cols = [
            "_uuid",
            "datapath_type",
            "fail_mode",
            "protocols",
            "other_config",
            "external_ids",
        ];
        let mut raced = false;
        loop {
            let r = self
                .client
                .transact(DB)
                .op(Operation::select_columns(
                    "Bridge",
                    vec![Condition::eq("name", &spec.name)],
                    cols,
                ))
                .op(Operation::select_columns(DB, vec![], ["_uuid"]))
                .execute()
                .await?;
            if let Some(existing) = r[0].rows()?.first() {
                return self.repair_bridge(spec, existing).await;
            }
            let root = r[1].rows()?.first().map(Row::uuid).transpose()?;
            match self.create_bridge(spec, root).await {
                // Someone else created it between our read and our insert: repair theirs.
                Err(e) if !raced && e.ovsdb_error() == Some("constraint violation") => raced = true,
                other => return other,
            }
        }
    }

    async fn create_bridge(&self, spec: &BridgeSpec, root: Option<Uuid>) -> Result<Uuid> {
        let bridge = NamedUuid::new("bridge")?;
        // Like `ovs-vsctl add-br`: the bridge's own internal port and interface.
        let iface = NamedUuid::new("local_iface")?;
        let port = NamedUuid::new("local_port")?;
        let iface_row = Row::new().with("name", &spec.name).with("type", "internal");
        let port_row = Row::new()
            .with("name", &spec.name)
            .with("interfaces", Value::set([iface.clone()]));
        let row = Row::new()
            .with("name", &spec.name)
            .with("ports", Value::set([port.clone()]))
            .with("datapath_type", spec.datapath_type.as_str())
            .with("fail_mode", spec.fail_mode.as_str())
            .with("protocols", Value::set(spec.protocols.iter()))
            .with("other_config", string_map(&spec.wanted_other_config()))
            .with("external_ids", string_map(&spec.external_ids));
        let tx = self
            .client
            .transact(DB)
            .op(Operation::insert_named("Bridge", row, bridge.clone()))
            .op(Operation::insert_named("Interface", iface_row, iface))
            .op(Operation::insert_named("Port", port_row, port));
        // In the same transaction, or the new Bridge row is garbage-collected at commit.
        let reference = Value::set([bridge]);
        let tx = match root {
            Some(root) => tx.op(Operation::mutate(
                DB,
                vec![Condition::uuid(root)],
                vec![Mutation::insert("bridges", reference)],
            )),
            // A database never initialised (what `ovs-vsctl init` does): create the root row.
            None => tx.op(Operation::insert(DB, Row::new().with("bridges", reference))),
        };
        let r = tx.execute().await?;
        debug!("bridge created");
        r[0].uuid()
    }

    async fn repair_bridge(&self, spec: &BridgeSpec, existing: &Row) -> Result<Uuid> {
        let uuid = existing.uuid()?;
        let mut fix = Row::new();
        if existing.get("datapath_type")?.as_str()? != spec.datapath_type.as_str() {
            fix.insert("datapath_type", spec.datapath_type.as_str());
        }
        if existing.get("fail_mode")?.optional_str()? != Some(spec.fail_mode.as_str()) {
            fix.insert("fail_mode", spec.fail_mode.as_str());
        }
        let mut have: Vec<_> = existing.get("protocols")?.strings()?;
        let mut want: Vec<_> = spec.protocols.iter().map(String::as_str).collect();
        have.sort_unstable();
        want.sort_unstable();
        if have != want {
            fix.insert("protocols", Value::set(spec.protocols.iter()));
        }
        let other_config = existing.get("other_config")?.string_map()?;
        let external_ids = existing.get("external_ids")?.string_map()?;
        let mut mutations = map_fix("other_config", &other_config, &spec.wanted_other_config());
        mutations.extend(map_fix("external_ids", &external_ids, &spec.external_ids));
        if fix.is_empty() && mutations.is_empty() {
            debug!("bridge already as wanted");
            return Ok(uuid);
        }
        let mut tx = self.client.transact(DB);
        if !fix.is_empty() {
            tx = tx.op(Operation::update(
                "Bridge",
                vec![Condition::uuid(uuid)],
                fix,
            ));
        }
        if !mutations.is_empty() {
            tx = tx.op(Operation::mutate(
                "Bridge",
                vec![Condition::uuid(uuid)],
                mutations,
            ));
        }
        tx.execute().await?;
        debug!("bridge columns fixed");
        Ok(uuid)
    }

    /// Add all `ports` to `bridge` in one transaction that also bumps `next_cfg`.
    ///
    /// Either every port is added or none (a duplicate name fails the whole transaction with
    /// `constraint violation`). Wait with [`wait_applied`](Self::wait_applied) for
    /// ovs-vswitchd to create them, then read ofports with [`interfaces`](Self::interfaces).
    #[instrument(skip_all, fields(bridge, ports = ports.len()))]
    pub async fn add_ports(&self, bridge: &str, ports: &[PortSpec]) -> Result<Batch> {
        let mut ops = Vec::with_capacity(2 * ports.len() + 3);
        let mut port_names = Vec::with_capacity(ports.len());
        for (i, p) in ports.iter().enumerate() {
            let iface = NamedUuid::new(format!("iface{i}"))?;
            let port = NamedUuid::new(format!("port{i}"))?;
            ops.push(Operation::insert_named(
                "Interface",
                p.interface_row(),
                iface.clone(),
            ));
            let row = Row::new()
                .with("name", &p.name)
                .with("interfaces", Value::set([iface]))
                .with("external_ids", string_map(&p.port_external_ids));
            ops.push(Operation::insert_named("Port", row, port.clone()));
            port_names.push(port);
        }
        let bridge_op = ops.len();
        ops.push(Operation::mutate(
            "Bridge",
            vec![Condition::eq("name", bridge)],
            vec![Mutation::insert("ports", Value::set(port_names))],
        ));
        ops.extend(next_cfg_ops());
        let r = self.client.transact(DB).ops(ops).execute().await?;
        if r[bridge_op].count()? == 0 {
            // Nothing references the new rows, so the commit garbage-collected them.
            return Err(Error::NotFound {
                table: "Bridge",
                name: bridge.to_owned(),
            });
        }
        let next_cfg = read_next_cfg(&r[bridge_op + 2])?;
        let added = ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Ok(AddedPort {
                    name: p.name.clone(),
                    interface: r[2 * i].uuid()?,
                    port: r[2 * i + 1].uuid()?,
                })
            })
            .collect::<Result<_>>()?;
        debug!(next_cfg, "ports inserted");
        Ok(Batch {
            next_cfg,
            added,
            removed: 0,
        })
    }

    /// Remove ports from `bridge` in one transaction that also bumps `next_cfg`; their Port
    /// and Interface rows are garbage-collected. Names that do not exist are skipped.
    #[instrument(skip_all, fields(bridge, ports = ports.len()))]
    pub async fn delete_ports(&self, bridge: &str, ports: &[PortRef]) -> Result<Batch> {
        let mut uuids: Vec<Uuid> = ports
            .iter()
            .filter_map(|p| match p {
                PortRef::Uuid(u) => Some(*u),
                PortRef::Name(_) => None,
            })
            .collect();
        let names: Vec<&str> = ports
            .iter()
            .filter_map(|p| match p {
                PortRef::Name(n) => Some(n.as_str()),
                PortRef::Uuid(_) => None,
            })
            .collect();
        if !names.is_empty() {
            let conditions = match names.as_slice() {
                [one] => vec![Condition::eq("name", *one)],
                _ => vec![],
            };
            let r = self
                .client
                .transact(DB)
                .op(Operation::select_columns(
                    "Port",
                    conditions,
                    ["_uuid", "name"],
                ))
                .execute()
                .await?;
            let wanted: std::collections::HashSet<&str> = names.into_iter().collect();
            for row in r[0].rows()? {
                if wanted.contains(row.get("name")?.as_str()?) {
                    uuids.push(row.uuid()?);
                }
            }
        }
        let mut tx = self.client.transact(DB).op(Operation::select_columns(
            "Bridge",
            vec![Condition::eq("name", bridge)],
            ["ports"],
        ));
        tx = tx.op(Operation::mutate(
            "Bridge",
            vec![Condition::eq("name", bridge)],
            vec![Mutation::delete("ports", Value::set(uuids.iter().copied()))],
        ));
        let r = tx.ops(next_cfg_ops()).execute().await?;
        let before = r[0].rows()?.first().ok_or_else(|| Error::NotFound {
            table: "Bridge",
            name: bridge.to_owned(),
        })?;
        let present: std::collections::HashSet<Uuid> =
            before.get("ports")?.uuids()?.into_iter().collect();
        let removed = uuids.iter().filter(|u| present.contains(u)).count();
        let next_cfg = read_next_cfg(&r[3])?;
        debug!(next_cfg, removed, "ports removed");
        Ok(Batch {
            next_cfg,
            added: Vec::new(),
            removed,
        })
    }

    /// Wait until ovs-vswitchd reports `cur_cfg >= next_cfg`, watching a monitor (no polling).
    #[instrument(skip(self))]
    pub async fn wait_applied(&self, next_cfg: i64, timeout: Duration) -> Result<()> {
        let wait = async {
            let mut stream = self
                .client
                .monitor(DB, vec![MonitorRequest::new(DB).columns(["cur_cfg"])])
                .await?;
            loop {
                let event = stream.next_event().await.ok_or(Error::ConnectionClosed)??;
                let mut reached = false;
                for (_, row) in stream.rows(DB) {
                    // `update2` leaves out columns holding their default: a root row that
                    // was just created has no `cur_cfg` yet, which means 0.
                    let cur_cfg = match row.get("cur_cfg") {
                        Ok(v) => v.as_i64()?,
                        Err(_) => 0,
                    };
                    reached |= cur_cfg >= next_cfg;
                }
                if reached {
                    debug!(kind = ?event.kind, "configuration applied");
                    return Ok(());
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| Error::Timeout {
                what: format!("ovs-vswitchd to reach cur_cfg {next_cfg}"),
                after: timeout,
            })?
    }

    /// [`add_ports`](Self::add_ports), [`wait_applied`](Self::wait_applied), then the state
    /// of every new interface (in the order of `ports`).
    pub async fn add_ports_and_wait(
        &self,
        bridge: &str,
        ports: &[PortSpec],
        timeout: Duration,
    ) -> Result<Vec<InterfaceState>> {
        let batch = self.add_ports(bridge, ports).await?;
        self.wait_applied(batch.next_cfg, timeout).await?;
        self.interfaces(ports.iter().map(|p| p.name.as_str())).await
    }

    /// The state of the named interfaces, in the order given.
    pub async fn interfaces<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<InterfaceState>> {
        let names: Vec<&str> = names.into_iter().collect();
        let conditions = match names.as_slice() {
            [one] => vec![Condition::eq("name", *one)],
            _ => vec![],
        };
        let r = self
            .client
            .transact(DB)
            .op(Operation::select_columns(
                "Interface",
                conditions,
                IFACE_COLUMNS,
            ))
            .execute()
            .await?;
        let mut by_name = std::collections::HashMap::new();
        for row in r[0].rows()? {
            let state = InterfaceState::from_row(row)?;
            by_name.insert(state.name.clone(), state);
        }
        names
            .iter()
            .map(|n| {
                by_name.remove(*n).ok_or_else(|| Error::NotFound {
                    table: "Interface",
                    name: (*n).to_owned(),
                })
            })
            .collect()
    }

    /// The state of those of the named interfaces that exist, one select by name each, at
    /// most 128 (`NAMED_PER_READ`) to a transaction: a small read of a few rows of a large table,
    /// and for thousands of names, a series of small reads rather than one answer whose
    /// parsing would briefly take megabytes.
    pub async fn interfaces_named(&self, names: &[&str]) -> Result<Vec<InterfaceState>> {
        let mut found = Vec::with_capacity(names.len());
        for chunk in names.chunks(NAMED_PER_READ) {
            let r = self
                .client
                .transact(DB)
                .ops(chunk.iter().map(|n| {
                    Operation::select_columns(
                        "Interface",
                        vec![Condition::eq("name", *n)],
                        IFACE_COLUMNS,
                    )
                }))
                .execute()
                .await?;
            for result in r.iter().take(chunk.len()) {
                for row in result.rows()? {
                    found.push(InterfaceState::from_row(row)?);
                }
            }
        }
        Ok(found)
    }

    /// Every interface whose `external_ids` hold `key=value` (e.g. the rows an application
    /// tagged as its own): their names in one select, then their rows by name
    /// ([`Self::interfaces_named`]), so thousands of rows never arrive as one answer. A row
    /// deleted in between is left out.
    pub async fn interfaces_tagged(&self, key: &str, value: &str) -> Result<Vec<InterfaceState>> {
        let tag = Value::map([(key, value)]);
        let r = self
            .client
            .transact(DB)
            .op(Operation::select_columns(
                "Interface",
                vec![Condition::includes("external_ids", tag)],
                ["name"],
            ))
            .execute()
            .await?;
        let names = r[0]
            .rows()?
            .iter()
            .map(|row| Ok(row.get("name")?.as_str()?.to_owned()))
            .collect::<Result<Vec<String>>>()?;
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.interfaces_named(&names).await
    }

    /// `bfd_status` of the interfaces of type `kind` tagged `key=value` in `external_ids`, by
    /// name: a small read for watching tunnels' BFD sessions.
    pub async fn bfd_status_tagged(
        &self,
        kind: &str,
        key: &str,
        value: &str,
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
        let r = self
            .client
            .transact(DB)
            .op(Operation::select_columns(
                "Interface",
                vec![
                    Condition::eq("type", kind),
                    Condition::includes("external_ids", Value::map([(key, value)])),
                ],
                ["name", "bfd_status"],
            ))
            .execute()
            .await?;
        r[0].rows()?
            .iter()
            .map(|row| {
                Ok((
                    row.get("name")?.as_str()?.to_owned(),
                    row.get("bfd_status")?.string_map()?,
                ))
            })
            .collect()
    }

    /// Bumps `next_cfg` and returns its new value: [`wait_applied`](Self::wait_applied) with it
    /// returns once ovs-vswitchd has applied everything written before, by anyone.
    pub async fn bump_next_cfg(&self) -> Result<i64> {
        let r = self
            .client
            .transact(DB)
            .ops(next_cfg_ops())
            .execute()
            .await?;
        read_next_cfg(&r[1])
    }

    /// `Bridge.external_ids` of bridge `bridge`.
    pub async fn bridge_external_ids(&self, bridge: &str) -> Result<BTreeMap<String, String>> {
        match self.bridge_ids(bridge).await? {
            Some(ids) => Ok(ids.external_ids),
            None => Err(Error::NotFound {
                table: "Bridge",
                name: bridge.to_owned(),
            }),
        }
    }

    /// `external_ids` and `other_config` of bridge `bridge`, or `None` if there is no such bridge.
    #[instrument(skip(self))]
    pub async fn bridge_ids(&self, bridge: &str) -> Result<Option<BridgeIds>> {
        let r = self
            .client
            .transact(DB)
            .op(Operation::select_columns(
                "Bridge",
                vec![Condition::eq("name", bridge)],
                ["external_ids", "other_config"],
            ))
            .execute()
            .await?;
        r[0].rows()?
            .first()
            .map(|row| {
                Ok(BridgeIds {
                    external_ids: row.get("external_ids")?.string_map()?,
                    other_config: row.get("other_config")?.string_map()?,
                })
            })
            .transpose()
    }

    /// Sets `Bridge.external_ids:key` of bridge `bridge` to `value`, replacing any value, or
    /// removes the key when `value` is `None`.
    #[instrument(skip(self))]
    pub async fn set_bridge_external_id(
        &self,
        bridge: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<()> {
        let mut mutations = vec![Mutation::delete("external_ids", Value::set([key]))];
        if let Some(value) = value {
            mutations.push(Mutation::insert("external_ids", Value::map([(key, value)])));
        }
        self.client
            .transact(DB)
            .op(Operation::mutate(
                "Bridge",
                vec![Condition::eq("name", bridge)],
                mutations,
            ))
            .execute()
            .await?;
        Ok(())
    }

    /// `Open_vSwitch.other_config`.
    pub async fn other_config(&self) -> Result<BTreeMap<String, String>> {
        let r = self
            .client
            .transact(DB)
            .op(Operation::select_columns(DB, vec![], ["other_config"]))
            .execute()
            .await?;
        match r[0].rows()?.first() {
            Some(row) => row.get("other_config")?.string_map(),
            None => Ok(BTreeMap::new()),
        }
    }

    /// Set `Open_vSwitch.other_config:key` (e.g. `flow-restore-wait`), replacing any value.
    #[instrument(skip(self))]
    pub async fn set_other_config(&self, key: &str, value: &str) -> Result<()> {
        let mutations = vec![
            Mutation::delete("other_config", Value::set([key])),
            Mutation::insert("other_config", Value::map([(key, value)])),
        ];
        self.client
            .transact(DB)
            .op(Operation::mutate(DB, vec![], mutations))
            .execute()
            .await?;
        Ok(())
    }

    /// Remove `Open_vSwitch.other_config:key`.
    #[instrument(skip(self))]
    pub async fn remove_other_config(&self, key: &str) -> Result<()> {
        let mutations = vec![Mutation::delete("other_config", Value::set([key]))];
        self.client
            .transact(DB)
            .op(Operation::mutate(DB, vec![], mutations))
            .execute()
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datapath_id_is_sixteen_hex_digits() {
        let spec = BridgeSpec::new("br", DatapathType::Netdev, 0xab);
        assert_eq!(
            spec.wanted_other_config()["datapath-id"],
            "00000000000000ab"
        );
    }

    #[test]
    fn map_fix_deletes_then_inserts_only_changed_keys() {
        let current: BTreeMap<_, _> =
            [("a".to_owned(), "1".to_owned()), ("b".into(), "2".into())].into();
        let wanted: BTreeMap<_, _> = [
            ("a".to_owned(), "1".to_owned()),
            ("b".into(), "3".into()),
            ("c".into(), "4".into()),
        ]
        .into();
        let m = map_fix("other_config", &current, &wanted);
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0],
            Mutation::delete("other_config", Value::set(["b", "c"]))
        );
        assert_eq!(
            m[1],
            Mutation::insert("other_config", Value::map([("b", "3"), ("c", "4")]))
        );
        assert!(map_fix("x", &wanted, &current).len() == 2);
        assert!(map_fix("x", &current, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn interface_rows_become_typed_state() {
        let row = |ofport: Value| {
            Row::new()
                .with("_uuid", Uuid::nil())
                .with("name", "a1")
                .with("ofport", ofport)
                .with("error", Value::empty())
                .with("link_state", "up")
                .with("admin_state", Value::empty())
                .with("mtu", 1500i64)
                .with("ofport_request", 40000i64)
                .with("external_ids", Value::map([("owner", "me")]))
                .with("bfd", Value::map([("enable", "true")]))
                .with("bfd_status", Value::map([("forwarding", "false")]))
        };
        let s = InterfaceState::from_row(&row(Value::empty())).unwrap();
        assert_eq!(s.bfd["enable"], "true");
        assert_eq!(s.bfd_status["forwarding"], "false");
        assert_eq!(
            (s.ofport, s.link_state.as_deref(), s.mtu),
            (OfPort::Pending, Some("up"), Some(1500))
        );
        assert_eq!(s.ofport_request, Some(40000));
        assert_eq!(
            s.external_ids,
            BTreeMap::from([("owner".to_owned(), "me".to_owned())])
        );
        assert_eq!(
            InterfaceState::from_row(&row(Value::from(7i64)))
                .unwrap()
                .ofport,
            OfPort::Assigned(7)
        );
        assert_eq!(
            InterfaceState::from_row(&row(Value::from(-1i64)))
                .unwrap()
                .ofport,
            OfPort::Failed
        );
    }

    #[test]
    fn port_spec_rows() {
        let p = PortSpec::new("p1")
            .internal()
            .ofport_request(40000)
            .mtu_request(9000)
            .option("k", "v")
            .iface_external_id("a", "b");
        let row = p.interface_row();
        assert_eq!(
            row.to_json(),
            serde_json::json!({"name": "p1", "type": "internal", "ofport_request": 40000, "mtu_request": 9000,
                "options": ["map", [["k", "v"]]], "external_ids": ["map", [["a", "b"]]]})
        );
    }
}
