//! ovswire's `Topology` (`topologies.ovswire.io`, version `v1alpha1`).
//!
//! A lab is a Kubernetes namespace: the pods of the lab run there, and the `Topology` objects
//! there list its links. One object per lab is the usual shape; a large lab may be split over
//! several objects in the same namespace, whose links together form the lab.
//!
//! ```yaml
//! apiVersion: ovswire.io/v1alpha1
//! kind: Topology
//! metadata: {name: ring, namespace: lab1}
//! spec:
//!   mtu: 9000                          # optional default for every link (9500 when absent)
//!   links:
//!     - endpoints: ["r1:eth1", "r2:eth1"]
//!     - endpoints: ["r2:eth2", "r3:eth1"]
//!       mtu: 1500                      # optional, this link only
//!       state: down                    # optional: up (default) or down
//!       impair: {delay: 20ms, loss: 1%}  # optional, both directions; or per direction,
//!                                        # {aToB: {...}, bToA: {...}} (a: the first endpoint)
//! ```
//!
//! The agents write `status`: one entry per link (a list keyed by `name`, so that the agents of
//! several nodes merge their entries with server-side apply) and the lab's counts.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Pattern of an endpoint: a pod name (DNS-1123 subdomain), `:`, an interface name (1 to 15
/// characters, no `/`, `:` or whitespace).
const SEGMENT_PATTERN: &str = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$";
const ENDPOINT_PATTERN: &str = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?:[^/:\s]{1,15}$";

/// The links of a lab (or of part of one) and their defaults.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "ovswire.io",
    version = "v1alpha1",
    kind = "Topology",
    namespaced,
    status = "TopologyStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "owtopo",
    category = "ovswire",
    doc = "The links of an ovswire lab: the lab is the namespace, its routers are the pods there.",
    printcolumn = r#"{"name":"Links","type":"integer","jsonPath":".status.total","description":"Links in this object"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.ready","description":"Links carrying frames"}"#,
    printcolumn = r#"{"name":"Pending","type":"integer","jsonPath":".status.pending","description":"Links waiting for a pod or an agent"}"#,
    printcolumn = r#"{"name":"Down","type":"integer","jsonPath":".status.down","description":"Links taken down on purpose","priority":1}"#,
    printcolumn = r#"{"name":"Errors","type":"integer","jsonPath":".status.errors","description":"Links that cannot be made; see status.links"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TopologySpec {
    /// Default MTU of every link in this object (68 to 65535). Without it a link gets the MTU of
    /// the NetworkAttachmentDefinition's `mtu`, else 9500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 68, max = 65535))]
    pub mtu: Option<u32>,
    /// The links: each joins two pod interfaces, and each interface is in one link only.
    #[serde(default)]
    pub links: Vec<Link>,
    /// LAN segments, named like pods: a link with one end on a segment (`lan1:e1`) is a member's
    /// wire, and every frame a member sends reaches every other member of the segment, on any
    /// node. The segment's interface names only tell its wires apart; no pod has the name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = SEGMENT_PATTERN), length(max = 253)))]
    pub segments: Vec<String>,
}

/// One link: a cable between two pod interfaces.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    /// The two ends, each `pod:ifname` (for example `r1:eth1`): the pod's name in this namespace
    /// and the interface name inside the pod, as Multus passes it.
    #[schemars(
        length(min = 2, max = 2),
        inner(regex(pattern = ENDPOINT_PATTERN), length(max = 269)),
        extend("x-kubernetes-validations" = [{
            "rule": "size(self) != 2 || self[0] != self[1]",
            "message": "a link needs two different endpoints"
        }])
    )]
    pub endpoints: Vec<String>,
    /// This link's MTU (68 to 65535); overrides `spec.mtu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 68, max = 65535))]
    pub mtu: Option<u32>,
    /// `up` (the default) or `down`: a down link gives both pods `NO-CARRIER`, like an unplugged
    /// cable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "admin_state_schema")]
    pub state: Option<AdminState>,
    /// What the link does to its frames: delay, jitter, loss, corruption, duplication,
    /// reordering, rate, for both directions, or per direction under `aToB` (frames the first
    /// endpoint sends) and `bToA`. Changing it never flaps the link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impair: Option<Impair>,
}

/// A link's impairments: the parameters for both directions, or `aToB` and `bToA`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Impair {
    /// Both directions.
    #[serde(flatten)]
    pub both: ImpairParams,
    /// Frames the first endpoint sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a_to_b: Option<ImpairParams>,
    /// Frames the second endpoint sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b_to_a: Option<ImpairParams>,
}

/// What one direction does to its frames; each value with its unit (`20ms`, `1%`,
/// `100mbit`), as in `ovswire link impair`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImpairParams {
    /// One-way delay, like `20ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
    /// Standard deviation of the delay, like `2ms` (needs `delay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    /// How much each jitter sample follows the last, like `25%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_correlation: Option<String>,
    /// Frames dropped, like `1%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<String>,
    /// How much each loss decision repeats the last, like `25%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_correlation: Option<String>,
    /// Frames with one bit flipped, like `0.1%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt: Option<String>,
    /// Frames sent twice, like `1%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<String>,
    /// Frames sent at once, ahead of delayed ones, like `25%` (needs `delay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder: Option<String>,
    /// Bits per second at most, like `100mbit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
}

impl ImpairParams {
    /// Whether no parameter is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The validated impairment; errors name the field under `at`.
    pub fn to_core(&self, at: &str) -> Result<ovswire_core::impair::Impairment, String> {
        use ovswire_core::impair::{BareUnits, Impairment};
        let mut imp = Impairment::default();
        let fields = [
            ("delay", &self.delay),
            ("jitter", &self.jitter),
            ("jitter-correlation", &self.jitter_correlation),
            ("loss", &self.loss),
            ("loss-correlation", &self.loss_correlation),
            ("corrupt", &self.corrupt),
            ("duplicate", &self.duplicate),
            ("reorder", &self.reorder),
            ("rate", &self.rate),
        ];
        let named = |mut e: ovswire_core::impair::ImpairError| {
            e.field = format!("{at}.{}", e.field);
            e.to_string()
        };
        for (field, value) in fields {
            if let Some(v) = value {
                imp.set(field, v, BareUnits::Required).map_err(named)?;
            }
        }
        imp.validate().map_err(named)?;
        Ok(imp)
    }
}

impl Impair {
    /// The link's impairments with `a` the first endpoint as written.
    pub fn to_core(&self) -> Result<ovswire_core::impair::LinkImpairment, String> {
        use ovswire_core::impair::LinkImpairment;
        if !self.both.is_empty() {
            if self.a_to_b.is_some() || self.b_to_a.is_some() {
                return Err(
                    "impair: give parameters for both directions or aToB/bToA, not \
                            both forms"
                        .into(),
                );
            }
            return Ok(LinkImpairment::both(self.both.to_core("impair")?));
        }
        let dir = |p: &Option<ImpairParams>, at: &str| {
            p.as_ref().map_or(Ok(Default::default()), |p| p.to_core(at))
        };
        Ok(LinkImpairment {
            a_to_b: dir(&self.a_to_b, "impair.aToB")?,
            b_to_a: dir(&self.b_to_a, "impair.bToA")?,
        })
    }
}

/// `state` as a plain optional string enum: the schema schemars derives for an optional enum
/// (`anyOf` with a null branch) is not a structural schema, which the API server requires.
fn admin_state_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "enum": ["up", "down"]})
}

/// Whether a link should carry frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AdminState {
    /// Carries frames once both ends exist.
    #[default]
    Up,
    /// No carrier on either end.
    Down,
}

impl From<AdminState> for ovswire_core::AdminState {
    fn from(s: AdminState) -> Self {
        match s {
            AdminState::Up => Self::Up,
            AdminState::Down => Self::Down,
        }
    }
}

impl From<ovswire_core::AdminState> for AdminState {
    fn from(s: ovswire_core::AdminState) -> Self {
        match s {
            ovswire_core::AdminState::Up => Self::Up,
            ovswire_core::AdminState::Down => Self::Down,
        }
    }
}

/// What the agents report about the links of a `Topology` object.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopologyStatus {
    /// The `metadata.generation` the counts were computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Links in this object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u32>,
    /// Links carrying frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<u32>,
    /// Links waiting for a pod, an interface or an agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<u32>,
    /// Links taken down on purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<u32>,
    /// Links that cannot be made (see their `reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<u32>,
    /// One entry per link, keyed by `name`; each agent writes the entries of the links it
    /// reports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["name"]
    ))]
    pub links: Vec<LinkStatus>,
}

/// The state of one link.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkStatus {
    /// The link's name: its endpoints in sorted order, `r1:eth1--r2:eth1`.
    pub name: String,
    /// `ready`, `pending`, `down` or `error`.
    pub state: LinkState,
    /// Why the link is not ready, and what to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The node running the pod of the first endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_a: Option<String>,
    /// The node running the pod of the second endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_b: Option<String>,
    /// The tunnel key (VXLAN VNI) carrying the link between two nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_key: Option<u32>,
    /// The MTU both ends got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_mtu: Option<u32>,
    /// The impairments applied, `a->b: delay=20ms; b->a: none` (a: the end that sorts first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impairment: Option<String>,
}

/// Where a link stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// Both ends are wired and have carrier.
    Ready,
    /// Waiting for a pod, an interface or an agent.
    #[default]
    Pending,
    /// Taken down on purpose (`state: down` or the Wires API).
    Down,
    /// Cannot be made; `reason` says why.
    Error,
}

impl std::fmt::Display for LinkState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ready => "ready",
            Self::Pending => "pending",
            Self::Down => "down",
            Self::Error => "error",
        })
    }
}
