//! The agent's view of Open vSwitch: reading what it owns (observe) and changing it (apply),
//! over OVSDB and OpenFlow only.

use std::collections::BTreeMap;
use std::time::Duration;

use ovswire_openflow::conn::{self, Events, Handle};
use ovswire_openflow::msg::FlowStatsRequest;
use ovswire_openflow::types::port_config::OFPPC_PORT_DOWN;
use ovswire_openflow::types::port_state::OFPPS_LINK_DOWN;
use ovswire_openflow::{Action, FlowMod, Instruction, Message, OxmField};
use ovswire_ovsdb::Client;
use ovswire_ovsdb::vswitch::{
    BridgeSpec, DatapathType, OfPort as IfaceOfPort, PortRef, PortSpec, Vswitch,
};

use crate::error::OvsError;
use ovswire_core::naming::{COOKIE_TAG, COOKIE_TAG_MASK, OWNER_KEY, OWNER_VALUE};
use ovswire_core::plan::{
    FLOW_PRIORITY, Flow, FlowKey, Observed, ObservedPort, OfPort, OfportState, Plan, PortWant,
    TunnelOut,
};

/// How long ovs-vswitchd may take to apply a batch of ports.
pub(super) const APPLY_TIMEOUT: Duration = Duration::from_secs(300);
/// How long to wait for the bridge's management socket to appear.
const MGMT_WAIT: Duration = Duration::from_secs(10);
/// Prefix of the `Bridge.external_ids` keys that record links taken down through the API.
pub(crate) const ADMIN_DOWN_PREFIX: &str = "ovswire-down:";
/// `Bridge.external_ids` key prefix recording a link's impairments set through the API.
pub(crate) const IMPAIR_PREFIX: &str = "ovswire-impair:";
/// `Bridge.external_ids` key counting the agent's starts on this bridge.
const INCARNATION_KEY: &str = "ovswire-incarnation";
/// The first incarnation: its generations (`incarnation << 32`) are above the wall-clock
/// nanoseconds earlier agents sent, so peers that still hold one of those take the new ones.
pub const FIRST_INCARNATION: u32 = 1 << 29;

type Result<T, E = OvsError> = std::result::Result<T, E>;

/// Where the bridge lives and how to make it.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// Bridge name, `ovsbr0` by default.
    pub name: String,
    /// `system` on hosts with the OVS kernel module, `netdev` (userspace) elsewhere.
    pub datapath_type: DatapathType,
    /// Pinned datapath id, so adding ports never changes it and drops connections.
    pub datapath_id: u64,
    /// Directory holding `<bridge>.mgmt`.
    pub rundir: std::path::PathBuf,
    /// Take over a bridge of that name that ovswire did not make.
    pub adopt: bool,
}

/// The `Bridge.external_ids` key that marks a bridge as ovswire's.
pub(crate) const BRIDGE_MARK: &str = "ovswire-bridge";

/// The OpenFlow connection's settings. The bridge's management socket is local: if
/// ovs-vswitchd exits the socket closes, and the agent knows at once. A switch that does not
/// answer for seconds is busy, not gone (on the userspace datapath, one pass of its main loop
/// over thousands of new ports takes tens of seconds), and dropping the connection then would
/// only give it more to do: the agent reads everything back after a reconnection.
fn patient() -> conn::Options {
    let mut options = conn::Options::default();
    options.session.echo_timeout = Duration::from_secs(60);
    options.session.handshake_timeout = Duration::from_secs(60);
    options.request_timeout = Duration::from_secs(60);
    options.bundle_timeout = Duration::from_secs(300);
    options
}

/// OVSDB and OpenFlow connections to one bridge.
#[derive(Debug, Clone)]
pub struct Ovs {
    db: Vswitch,
    of: Handle,
    bridge: BridgeConfig,
}

impl Ovs {
    /// Ensures the bridge (fail_mode=secure, OpenFlow 1.3 and 1.4, pinned datapath id), waits
    /// for ovs-vswitchd to create it, and connects to its management socket.
    pub async fn connect(db: Client, bridge: BridgeConfig) -> Result<(Self, Events)> {
        let db = Vswitch::new(db);
        if let Some(ids) = db.bridge_ids(&bridge.name).await? {
            // A bridge made before the mark was written has the datapath id ovswire pins.
            let ours = ids.external_ids.contains_key(BRIDGE_MARK)
                || ids.other_config.get("datapath-id")
                    == Some(&format!("{:016x}", bridge.datapath_id));
            if !ours && !bridge.adopt {
                return Err(OvsError::ForeignBridge(bridge.name.clone()));
            }
            if !ours {
                tracing::warn!(bridge = %bridge.name, "taking over a bridge ovswire did not make (--adopt-bridge)");
            }
        }
        let spec = BridgeSpec::new(&bridge.name, bridge.datapath_type, bridge.datapath_id)
            .protocols(["OpenFlow13", "OpenFlow14"])
            .external_id(BRIDGE_MARK, "1");
        db.ensure_bridge(&spec).await?;
        let next_cfg = db.bump_next_cfg().await?;
        db.wait_applied(next_cfg, APPLY_TIMEOUT).await?;
        let (of, events) = Self::open_flow(&bridge).await?;
        Ok((Self { db, of, bridge }, events))
    }

    async fn open_flow(bridge: &BridgeConfig) -> Result<(Handle, Events)> {
        let mgmt = bridge.rundir.join(format!("{}.mgmt", bridge.name));
        // ovs-vswitchd opens the socket when it reconfigures the bridge; one that has just
        // started (or restarted) may not have it yet.
        let deadline = tokio::time::Instant::now() + MGMT_WAIT;
        loop {
            match conn::connect_with(mgmt.as_path(), patient()).await {
                Err(ovswire_openflow::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                    ) && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => return Ok(other?),
            }
        }
    }

    /// Opens a new OpenFlow connection after the old one died (e.g. ovs-vswitchd restarted).
    pub async fn reconnect_flow(&mut self) -> Result<Events> {
        let (of, events) = Self::open_flow(&self.bridge).await?;
        self.of = of;
        Ok(events)
    }

    /// How many times the OVSDB connection was lost and made again.
    pub fn ovsdb_reconnects(&self) -> u64 {
        self.db.client().reconnects()
    }

    /// The OpenFlow connection to the bridge.
    pub fn flow(&self) -> &Handle {
        &self.of
    }

    /// Whether the BFD session of each of the agent's tunnel ports says its far end forwards,
    /// by port name.
    pub async fn tunnels_forwarding(&self) -> Result<BTreeMap<String, Option<bool>>> {
        let status = self
            .db
            .bfd_status_tagged("vxlan", OWNER_KEY, OWNER_VALUE)
            .await?;
        Ok(status
            .iter()
            .map(|(name, s)| (name.clone(), bfd_forwarding(s)))
            .collect())
    }

    /// Everything the agent owns: its ports in OVSDB, its flows, and every OpenFlow port.
    pub async fn observe(&self) -> Result<Observed> {
        let began = std::time::Instant::now();
        let (ports, flows, of_ports) = tokio::try_join!(
            self.observe_ports(),
            self.observe_flows(),
            self.observe_of_ports()
        )?;
        tracing::debug!(
            ports = ports.len(),
            flows = flows.len(),
            of_ports = of_ports.len(),
            ms = began.elapsed().as_millis() as u64,
            "observed OVS"
        );
        Ok(Observed {
            ports,
            flows,
            of_ports,
        })
    }

    /// The agent's ports, from `Interface` rows tagged with its owner key.
    pub async fn observe_ports(&self) -> Result<BTreeMap<String, ObservedPort>> {
        let rows = self.db.interfaces_tagged(OWNER_KEY, OWNER_VALUE).await?;
        Ok(rows
            .into_iter()
            .map(|iface| (iface.name.clone(), observed_port(iface)))
            .collect())
    }

    /// The named ports as OVSDB has them now (those that exist): what became of ports the
    /// agent committed, once ovs-vswitchd applied them.
    pub async fn observe_named(&self, names: &[String]) -> Result<Vec<ObservedPort>> {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        Ok(self
            .db
            .interfaces_named(&names)
            .await?
            .into_iter()
            .map(observed_port)
            .collect())
    }

    /// The agent's flows in table 0, by match.
    pub async fn observe_flows(&self) -> Result<BTreeMap<FlowKey, Flow>> {
        let request = FlowStatsRequest {
            table_id: 0,
            cookie: COOKIE_TAG,
            cookie_mask: COOKIE_TAG_MASK,
            ..FlowStatsRequest::default()
        };
        let mut flows = BTreeMap::new();
        for f in self.of.flow_stats(request).await? {
            let mut in_port = None;
            let mut tun_match = None;
            let mut plain = f.priority == FLOW_PRIORITY;
            for m in &f.r#match.fields {
                match m {
                    OxmField::InPort(p) => in_port = Some(*p),
                    OxmField::TunnelId(id, None) => tun_match = u32::try_from(*id).ok(),
                    _ => plain = false,
                }
            }
            let Some(in_port) = in_port else { continue };
            // A flow of ours that is not a plain wire (outputs, then tunnels each after setting
            // its key; none for a drop) can never equal a desired flow, so the planner
            // replaces it.
            let outputs = match f.instructions.as_slice() {
                [] => Some((Vec::new(), Vec::new())),
                [Instruction::ApplyActions(a)] => outputs(a),
                _ => None,
            };
            let (out_ports, tunnels) = outputs
                .filter(|_| plain)
                .unwrap_or((vec![u32::MAX], Vec::new()));
            let flow = Flow {
                cookie: f.cookie,
                in_port,
                tun_match,
                out_ports,
                tunnels,
            };
            flows.insert(flow.key(), flow);
        }
        Ok(flows)
    }

    /// Every OpenFlow port of the bridge with its MAC and admin state.
    pub async fn observe_of_ports(&self) -> Result<BTreeMap<u32, OfPort>> {
        Ok(self
            .of
            .port_desc()
            .await?
            .into_iter()
            .map(|p| {
                (
                    p.port_no,
                    OfPort {
                        mac: p.hw_addr.0,
                        down: p.config & OFPPC_PORT_DOWN != 0,
                        link_down: p.state & OFPPS_LINK_DOWN != 0,
                    },
                )
            })
            .collect())
    }

    /// Commits port changes to OVSDB: deletions, then additions, each one transaction. Returns
    /// the configuration number ovs-vswitchd will have reached once it applied them (`None`
    /// without changes), not waited for: see [`Self::wait_applied`]. Once this returns, the
    /// ports are in the database, which outlives the agent: what an ADD waits for.
    pub async fn commit_ports(
        &self,
        add: &[PortWant],
        del: &[String],
    ) -> Result<Option<Committed>> {
        if add.is_empty() && del.is_empty() {
            return Ok(None);
        }
        let began = std::time::Instant::now();
        let mut next_cfg = 0;
        if !del.is_empty() {
            let refs: Vec<_> = del.iter().map(|n| PortRef::Name(n.clone())).collect();
            next_cfg = self
                .db
                .delete_ports(&self.bridge.name, &refs)
                .await?
                .next_cfg;
        }
        if !add.is_empty() {
            let specs: Vec<_> = add.iter().map(port_spec).collect();
            next_cfg = self.db.add_ports(&self.bridge.name, &specs).await?.next_cfg;
        }
        Ok(Some(Committed {
            next_cfg,
            took: began.elapsed(),
        }))
    }

    /// Puts a plan's flow changes in as one atomic OpenFlow bundle and waits for ovs-vswitchd
    /// to confirm it; how long that took (`None` without flow changes). Flows may name ports
    /// that do not exist yet: the agent chose their numbers.
    pub async fn bundle_flows(&self, plan: &Plan) -> Result<Option<Duration>> {
        let messages = flow_messages(plan);
        if messages.is_empty() {
            return Ok(None);
        }
        let began = std::time::Instant::now();
        self.of.bundle(messages).await?;
        Ok(Some(began.elapsed()))
    }

    /// Waits until ovs-vswitchd applied the database up to configuration `next_cfg` (it then
    /// has numbered the ports committed before it), at most `timeout`.
    pub async fn wait_applied(&self, next_cfg: i64, timeout: Duration) -> Result<()> {
        let began = std::time::Instant::now();
        self.db.wait_applied(next_cfg, timeout).await?;
        tracing::debug!(
            next_cfg,
            ms = began.elapsed().as_millis() as u64,
            "ovs-vswitchd applied the configuration"
        );
        Ok(())
    }

    /// The links recorded as administratively down in `Bridge.external_ids`.
    pub async fn admin_down_links(&self) -> Result<Vec<String>> {
        let ids = self.db.bridge_external_ids(&self.bridge.name).await?;
        Ok(ids
            .into_iter()
            .filter(|(_, v)| v == "true")
            .filter_map(|(k, _)| k.strip_prefix(ADMIN_DOWN_PREFIX).map(str::to_owned))
            .collect())
    }

    /// The impairments recorded in `Bridge.external_ids` by link (values that no longer parse
    /// are skipped with a warning).
    pub async fn impaired_links(
        &self,
    ) -> Result<std::collections::BTreeMap<String, ovswire_core::impair::LinkImpairment>> {
        let ids = self.db.bridge_external_ids(&self.bridge.name).await?;
        Ok(ids
            .into_iter()
            .filter_map(|(k, v)| {
                let link = k.strip_prefix(IMPAIR_PREFIX)?.to_owned();
                match v.parse() {
                    Ok(imp) => Some((link, imp)),
                    Err(e) => {
                        tracing::warn!(%link, error = %e, "ignoring a recorded impairment");
                        None
                    }
                }
            })
            .collect())
    }

    /// Records a link's impairments, so restarts keep them.
    pub async fn set_impaired(
        &self,
        link: &str,
        impair: &ovswire_core::impair::LinkImpairment,
    ) -> Result<()> {
        let key = format!("{IMPAIR_PREFIX}{link}");
        Ok(self
            .db
            .set_bridge_external_id(&self.bridge.name, &key, Some(&impair.to_string()))
            .await?)
    }

    /// Counts this start of the agent in `Bridge.external_ids` and returns its number: one
    /// more than the last start's, whatever the clock says.
    pub async fn next_incarnation(&self) -> Result<u32> {
        let ids = self.db.bridge_external_ids(&self.bridge.name).await?;
        let next = ids
            .get(INCARNATION_KEY)
            .and_then(|v| v.parse::<u32>().ok())
            .map_or(FIRST_INCARNATION, |n| n.max(FIRST_INCARNATION - 1) + 1);
        self.db
            .set_bridge_external_id(&self.bridge.name, INCARNATION_KEY, Some(&next.to_string()))
            .await?;
        Ok(next)
    }

    /// Records (or clears) a link as administratively down, so restarts keep it down.
    pub async fn set_admin_down(&self, link: &str, down: bool) -> Result<()> {
        let key = format!("{ADMIN_DOWN_PREFIX}{link}");
        let value = down.then_some("true");
        Ok(self
            .db
            .set_bridge_external_id(&self.bridge.name, &key, value)
            .await?)
    }
}

fn port_spec(p: &ovswire_core::plan::PortWant) -> PortSpec {
    let ofport = u16::try_from(p.ofport).expect("the allocator hands out ports up to 65279");
    let mut spec = PortSpec::new(&p.name).ofport_request(ofport);
    if let Some(kind) = &p.kind {
        spec = spec.kind(kind);
    }
    for (k, v) in &p.options {
        spec = spec.option(k, v);
    }
    for (k, v) in &p.bfd {
        spec = spec.bfd(k, v);
    }
    for (k, v) in &p.external_ids {
        spec = spec.iface_external_id(k, v).port_external_id(k, v);
    }
    spec
}

/// Whether a BFD session says its far end forwards; `None` without a session.
pub fn bfd_forwarding(status: &BTreeMap<String, String>) -> Option<bool> {
    status.get("forwarding").map(|f| f == "true")
}

/// The plain outputs and the tunnel outputs of a list of actions in the form [`flow_messages`]
/// writes; `None` for any other.
fn outputs(actions: &[Action]) -> Option<(Vec<u32>, Vec<TunnelOut>)> {
    let mut plain = Vec::new();
    let mut tunnels = Vec::new();
    let mut key = None;
    for a in actions {
        match (a, key.take()) {
            (Action::SetField(OxmField::TunnelId(id, None)), None) => {
                key = Some(u32::try_from(*id).ok()?);
            }
            (Action::Output { port, .. }, Some(key)) => {
                tunnels.push(TunnelOut { port: *port, key })
            }
            (Action::Output { port, .. }, None) if tunnels.is_empty() => plain.push(*port),
            _ => return None,
        }
    }
    key.is_none().then_some((plain, tunnels))
}

/// The plan's flow changes, deletions first, for one atomic bundle.
fn flow_messages(plan: &Plan) -> Vec<Message> {
    let with_match = |m: FlowMod, f: &Flow| {
        let m = m.match_field(OxmField::InPort(f.in_port));
        match f.tun_match {
            Some(key) => m.match_field(OxmField::TunnelId(u64::from(key), None)),
            None => m,
        }
    };
    let deletes = plan.del_flows.iter().map(|f| {
        with_match(
            FlowMod::delete_strict(0)
                .priority(FLOW_PRIORITY)
                .cookie_filter(f.cookie, u64::MAX),
            f,
        )
    });
    let adds = plan.add_flows.iter().map(|f| {
        let mut actions: Vec<Action> = f.out_ports.iter().map(|p| Action::output(*p)).collect();
        for t in &f.tunnels {
            actions.push(Action::SetField(OxmField::TunnelId(u64::from(t.key), None)));
            actions.push(Action::output(t.port));
        }
        with_match(FlowMod::add(0).priority(FLOW_PRIORITY).cookie(f.cookie), f)
            .apply_actions(actions)
    });
    deletes.chain(adds).map(Message::FlowMod).collect()
}

/// A port change [`Ovs::commit_ports`] committed.
#[derive(Debug, Clone, Copy)]
pub struct Committed {
    /// The configuration ovs-vswitchd will have reached once it applied the change.
    pub next_cfg: i64,
    /// How long the OVSDB transactions took.
    pub took: Duration,
}

/// A port as the planner takes it, from its `Interface` row.
fn observed_port(iface: ovswire_ovsdb::vswitch::InterfaceState) -> ObservedPort {
    let ofport = match iface.ofport {
        IfaceOfPort::Failed => OfportState::Failed(iface.error.unwrap_or_else(|| "unknown".into())),
        IfaceOfPort::Assigned(n) => OfportState::Assigned(n),
        IfaceOfPort::Pending => OfportState::Pending,
    };
    ObservedPort {
        name: iface.name,
        ofport_request: iface.ofport_request,
        ofport,
        external_ids: iface.external_ids,
        forwarding: bfd_forwarding(&iface.bfd_status),
        bfd: iface.bfd,
    }
}
