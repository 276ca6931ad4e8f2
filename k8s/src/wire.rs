//! From Topology objects to wires: the neutral list of links the agent makes, whichever kind of
//! object described them.
//!
//! Each conversion has a strict form ([`wires_from_ovswire`], [`wires_from_meshnet`]) that fails
//! on the first bad object with every problem listed, and a lenient form used by the
//! [`Source`](crate::Source): a bad link is left out and reported, and the rest of the lab keeps
//! its wires, so a typo in a live edit never tears down a running lab.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kube::ResourceExt;
use ovswire_core::{
    DEFAULT_MTU, EndpointKey, LinkKey, LinkSpec, NameError, check_ifname, check_mtu,
    check_object_name, link_name,
};

use crate::crd::{AdminState, MeshnetTopology, Topology};
use crate::error::{Error, Result};

/// One wire: a point-to-point link between two pod interfaces of a lab.
///
/// The ends are `(pod, ifname)`, with `a` sorting before `b`, so a link has one spelling
/// whichever order its endpoints were written in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Wire {
    /// The lab: the Kubernetes namespace of the pods.
    pub lab: String,
    /// The end that sorts first.
    pub a: (String, String),
    /// The end that sorts second.
    pub b: (String, String),
    /// The link's MTU; `None` when the objects set none, which gives the link ovswire's
    /// default, [`DEFAULT_MTU`] (9500).
    pub mtu: Option<u32>,
    /// Whether the link is to be down (no carrier on either end).
    pub down: bool,
    /// What each direction does to its frames (`a->b` from [`Self::a`]).
    pub impair: ovswire_core::impair::LinkImpairment,
    /// The LAN segment the link joins its other end to, when one end's pod is a segment.
    pub segment: Option<String>,
}

impl Wire {
    fn new(
        lab: &str,
        x: (String, String),
        y: (String, String),
        mtu: Option<u32>,
        down: bool,
    ) -> Self {
        let (a, b) = if x <= y { (x, y) } else { (y, x) };
        Self {
            lab: lab.to_owned(),
            a,
            b,
            mtu,
            down,
            impair: Default::default(),
            segment: None,
        }
    }

    /// The link's name, `r1:eth1--r2:eth1`: the name the agent and the status use.
    pub fn name(&self) -> String {
        link_name((&self.a.0, &self.a.1), (&self.b.0, &self.b.1))
    }
}

impl TryFrom<&Wire> for LinkSpec {
    type Error = NameError;

    /// The link the agent wires: the ends validated, [`DEFAULT_MTU`] when the wire has no MTU.
    fn try_from(w: &Wire) -> Result<Self, NameError> {
        let end = |(pod, ifname): &(String, String)| EndpointKey::new(&w.lab, pod, ifname);
        Ok(Self {
            key: LinkKey::new(end(&w.a)?, end(&w.b)?)?,
            mtu: w.mtu.unwrap_or(DEFAULT_MTU),
            impair: w.impair,
            admin: if w.down {
                ovswire_core::AdminState::Down
            } else {
                ovswire_core::AdminState::Up
            },
            segment: w.segment.clone(),
        })
    }
}

/// Reads an endpoint written `pod:ifname` as `(pod, ifname)`.
fn parse_endpoint(namespace: &str, written: &str) -> Result<(String, String), String> {
    EndpointKey::parse(namespace, written)
        .map(|e| (e.pod, e.ifname))
        .map_err(|e| e.to_string())
}

/// Which object a link came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    /// The kind of object.
    pub kind: OriginKind,
    /// The object's name (in the lab's namespace).
    pub name: String,
}

/// The two kinds of Topology objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OriginKind {
    /// `topologies.ovswire.io`.
    Ovswire,
    /// `topologies.networkop.co.uk` (meshnet, KNE).
    Meshnet,
}

impl Origin {
    fn ovswire(name: &str) -> Self {
        Self {
            kind: OriginKind::Ovswire,
            name: name.to_owned(),
        }
    }

    fn meshnet(name: &str) -> Self {
        Self {
            kind: OriginKind::Meshnet,
            name: name.to_owned(),
        }
    }
}

impl fmt::Display for Origin {
    /// As kubectl spells it: `topology.ovswire.io/ring`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            OriginKind::Ovswire => "topology.ovswire.io",
            OriginKind::Meshnet => "topology.networkop.co.uk",
        };
        write!(f, "{kind}/{}", self.name)
    }
}

/// A link an object asks for that ovswire leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rejected {
    /// The lab (namespace).
    pub lab: String,
    /// The object that described the link.
    pub origin: Origin,
    /// The link's name when its endpoints could be read (`r1:eth1--r2:eth1`, with `#i` added
    /// when `spec.links[i]` repeats a name), else where it is (`spec.links[2]`, `uid 7`).
    pub link: String,
    /// What is wrong and what to do.
    pub reason: String,
}

impl Rejected {
    /// `link r1:eth1--r2:eth1: why`, or `spec.links[2]: why` when the link has no name.
    fn describe(&self) -> String {
        if self.link.contains("--") {
            format!("link {}: {}", self.link, self.reason)
        } else {
            format!("{}: {}", self.link, self.reason)
        }
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} in namespace {}: {}",
            self.origin,
            self.lab,
            self.describe()
        )
    }
}

/// The lenient result of reading objects: the wires, and the links left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub(crate) wires: Vec<(Wire, Origin)>,
    pub(crate) rejected: Vec<Rejected>,
}

/// The wires one ovswire `Topology` object asks for, in namespace `namespace`.
///
/// Fails when any link is unusable (a bad endpoint or MTU, an interface used twice), listing
/// every problem.
pub fn wires_from_ovswire(namespace: &str, topology: &Topology) -> Result<Vec<Wire>> {
    let parsed = parse_ovswire(namespace, topology);
    strict(
        parsed,
        format!(
            "{} in namespace {namespace}",
            Origin::ovswire(&topology.name_any())
        ),
    )
}

/// The wires meshnet `Topology` objects ask for; `topologies` are the objects of namespace
/// `namespace` (one per pod).
///
/// Both pods describe a link, with the same `uid`; the two descriptions become one wire. A
/// description whose peer has no object yet still yields its wire (the peer pod is simply not
/// there yet). Fails when descriptions disagree, a `uid` is used by more than one link, an
/// interface is used twice, or a name is invalid, listing every problem.
pub fn wires_from_meshnet(namespace: &str, topologies: &[MeshnetTopology]) -> Result<Vec<Wire>> {
    let refs: Vec<&MeshnetTopology> = topologies.iter().collect();
    strict(
        parse_meshnet(namespace, &refs),
        format!("meshnet Topology objects in namespace {namespace}"),
    )
}

fn strict(parsed: Parsed, object: String) -> Result<Vec<Wire>> {
    if parsed.rejected.is_empty() {
        Ok(parsed.wires.into_iter().map(|(w, _)| w).collect())
    } else {
        Err(Error::Invalid {
            object,
            problems: parsed.rejected.iter().map(Rejected::describe).collect(),
        })
    }
}

/// Reads one ovswire object, leaving out (and reporting) the links it cannot use.
pub(crate) fn parse_ovswire(namespace: &str, topology: &Topology) -> Parsed {
    let origin = Origin::ovswire(&topology.name_any());
    let mut out = Parsed::default();
    let reject = |link: String, reason: String| Rejected {
        lab: namespace.to_owned(),
        origin: origin.clone(),
        link,
        reason,
    };
    if let Err(e) = check_object_name("namespace", namespace) {
        out.rejected
            .push(reject("metadata.namespace".into(), e.to_string()));
        return out;
    }
    let default_mtu = match topology.spec.mtu.map(check_mtu).transpose() {
        Ok(_) => topology.spec.mtu,
        Err(e) => {
            out.rejected
                .push(reject("spec.mtu".into(), format!("{e}; fix spec.mtu")));
            return out;
        }
    };
    let mut segments = BTreeSet::new();
    for (i, seg) in topology.spec.segments.iter().enumerate() {
        if let Err(e) = check_object_name("segment name", seg) {
            out.rejected.push(reject(
                format!("spec.segments[{i}]"),
                format!("{e}; rename it"),
            ));
            return out;
        }
        segments.insert(seg.as_str());
    }
    // Endpoint -> (index in spec.links, name) of the link using it.
    let mut used: BTreeMap<(String, String), (usize, String)> = BTreeMap::new();
    let mut pending_rejects = Vec::new();
    for (n, link) in topology.spec.links.iter().enumerate() {
        let written = link.endpoints.join(" -- ");
        let fail = |why: String| (n, None::<String>, format!("({written}): {why}"));
        let [x, y] = link.endpoints.as_slice() else {
            pending_rejects.push(fail(format!(
                "needs exactly 2 endpoints, has {}",
                link.endpoints.len()
            )));
            continue;
        };
        let (x, y) = match (parse_endpoint(namespace, x), parse_endpoint(namespace, y)) {
            (Ok(x), Ok(y)) => (x, y),
            (Err(e), _) | (_, Err(e)) => {
                pending_rejects.push(fail(e));
                continue;
            }
        };
        let wire = Wire::new(
            namespace,
            x,
            y,
            link.mtu.or(default_mtu),
            link.state == Some(AdminState::Down),
        );
        let name = wire.name();
        if wire.a == wire.b {
            pending_rejects.push((n, Some(name), "a link needs two different endpoints".into()));
            continue;
        }
        let mut wire = wire;
        match (
            segments.contains(wire.a.0.as_str()),
            segments.contains(wire.b.0.as_str()),
        ) {
            (true, true) => {
                pending_rejects.push((
                    n,
                    Some(name),
                    "joins two segments; join each to an interface of a pod instead".into(),
                ));
                continue;
            }
            (true, false) => wire.segment = Some(wire.a.0.clone()),
            (false, true) => wire.segment = Some(wire.b.0.clone()),
            (false, false) => {}
        }
        if let Some(imp) = &link.impair {
            match imp.to_core() {
                // `a->b` as written is from the first endpoint; the wire's `a` sorts first.
                Ok(i)
                    if parse_endpoint(namespace, &link.endpoints[0]).ok()
                        == Some(wire.a.clone()) =>
                {
                    wire.impair = i;
                }
                Ok(i) => wire.impair = i.swapped(),
                Err(why) => {
                    pending_rejects.push((n, Some(name), why));
                    continue;
                }
            }
        }
        if let Some(Err(e)) = link.mtu.map(check_mtu) {
            pending_rejects.push((n, Some(name), format!("{e}; fix the link's mtu")));
            continue;
        }
        let taken = [&wire.a, &wire.b].into_iter().find_map(|end| {
            used.get(end).map(|(m, other)| {
                format!(
                    "{}:{} is already used by spec.links[{m}] ({other}); an interface joins one link only",
                    end.0, end.1
                )
            })
        });
        if let Some(why) = taken {
            pending_rejects.push((n, Some(name), why));
            continue;
        }
        used.insert(wire.a.clone(), (n, name.clone()));
        used.insert(wire.b.clone(), (n, name));
        out.wires.push((wire, origin.clone()));
    }
    let accepted: BTreeSet<String> = out.wires.iter().map(|(w, _)| w.name()).collect();
    let mut seen = BTreeSet::new();
    for (n, name, reason) in pending_rejects {
        let link = match name {
            Some(name) if !accepted.contains(&name) && seen.insert(name.clone()) => name,
            Some(name) => format!("{name}#{n}"),
            None => format!("spec.links[{n}]"),
        };
        out.rejected.push(reject(link, reason));
    }
    out
}

/// One pod's description of a meshnet link.
struct Half<'a> {
    object: &'a str,
    local: (String, String),
    peer: (String, String),
}

/// Reads the meshnet objects of one namespace, leaving out (and reporting) what it cannot use.
pub(crate) fn parse_meshnet(namespace: &str, topologies: &[&MeshnetTopology]) -> Parsed {
    let mut out = Parsed::default();
    let reject = |object: &str, link: String, reason: String| Rejected {
        lab: namespace.to_owned(),
        origin: Origin::meshnet(object),
        link,
        reason,
    };
    if let Err(e) = check_object_name("namespace", namespace) {
        for t in topologies {
            out.rejected.push(reject(
                &t.name_any(),
                "metadata.namespace".into(),
                e.to_string(),
            ));
        }
        return out;
    }
    let objects: BTreeSet<String> = topologies.iter().map(|t| t.name_any()).collect();
    let names: Vec<String> = topologies.iter().map(|t| t.name_any()).collect();
    let mut by_uid: BTreeMap<i64, Vec<Half<'_>>> = BTreeMap::new();
    // uid -> the object whose description of it is invalid.
    let mut invalid: BTreeMap<i64, &str> = BTreeMap::new();
    for (t, object) in topologies.iter().zip(&names) {
        for link in &t.spec.links {
            let uid = format!("uid {}", link.uid);
            let problem = if link.peer_pod == "localhost" {
                Some(format!(
                    "peer_pod localhost (a macvlan to a host interface {:?}) is not supported; \
                     wire {}:{} to another pod",
                    link.peer_intf, object, link.local_intf
                ))
            } else {
                check_object_name("pod name", object)
                    .and_then(|()| check_object_name("peer_pod", &link.peer_pod))
                    .and_then(|()| check_ifname(&link.local_intf))
                    .and_then(|()| check_ifname(&link.peer_intf))
                    .err()
                    .map(|e| e.to_string())
            };
            if let Some(why) = problem {
                out.rejected.push(reject(object, uid, why));
                invalid.insert(link.uid, object);
                continue;
            }
            by_uid.entry(link.uid).or_default().push(Half {
                object,
                local: (object.clone(), link.local_intf.clone()),
                peer: (link.peer_pod.clone(), link.peer_intf.clone()),
            });
        }
    }
    let mut used: BTreeMap<(String, String), (i64, String)> = BTreeMap::new();
    let show = |e: &(String, String)| format!("{}:{}", e.0, e.1);
    for (uid, halves) in by_uid {
        let first = &halves[0];
        let wire = Wire::new(
            namespace,
            first.local.clone(),
            first.peer.clone(),
            None,
            false,
        );
        let name = wire.name();
        let says = |h: &Half<'_>| {
            format!(
                "{} says {} -- {}",
                Origin::meshnet(h.object),
                show(&h.local),
                show(&h.peer)
            )
        };
        let problem = match halves.as_slice() {
            _ if invalid.contains_key(&uid) => Some(format!(
                "uid {uid}: the description in {} is invalid (see its error); fix that one",
                Origin::meshnet(invalid[&uid])
            )),
            [h] if h.peer.0 != h.local.0 && objects.contains(&h.peer.0) => Some(format!(
                "uid {uid}: {} but {} has no link with uid {uid}; give both pods' objects \
                 the same link",
                says(h),
                Origin::meshnet(&h.peer.0)
            )),
            [_] => None,
            [h1, h2] if h1.local == h2.peer && h1.peer == h2.local => None,
            [h1, h2] => Some(format!(
                "uid {uid}: {} but {}; make the two descriptions mirror each other",
                says(h1),
                says(h2)
            )),
            more => Some(format!(
                "uid {uid} is used by {} descriptions ({}); a uid names one link, described \
                 once by each of its two pods",
                more.len(),
                more.iter()
                    .map(|h| show(&h.local))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
        let problem = problem.or_else(|| {
            if wire.a == wire.b {
                return Some(format!(
                    "uid {uid}: {} is wired to itself; a link needs two different endpoints",
                    show(&wire.a)
                ));
            }
            [&wire.a, &wire.b].into_iter().find_map(|end| {
                used.get(end).map(|(other_uid, other)| {
                    format!(
                        "uid {uid}: {} is already used by uid {other_uid} ({other}); an \
                         interface joins one link only",
                        show(end)
                    )
                })
            })
        });
        match problem {
            Some(why) => {
                for h in &halves {
                    out.rejected
                        .push(reject(h.object, name.clone(), why.clone()));
                }
            }
            None => {
                used.insert(wire.a.clone(), (uid, name.clone()));
                used.insert(wire.b.clone(), (uid, name));
                out.wires.push((wire, Origin::meshnet(first.object)));
            }
        }
    }
    out
}

/// Reads every Topology object of one namespace (a lab): ovswire's in the order they were
/// created, then meshnet's. An interface claimed by a link of an earlier object stays there;
/// the later link is left out and reported.
pub(crate) fn plan_lab(
    namespace: &str,
    ovswire: &[&Topology],
    meshnet: &[&MeshnetTopology],
) -> Parsed {
    let mut ordered = ovswire.to_vec();
    ordered.sort_by(|x, y| {
        let created = |t: &Topology| t.metadata.creation_timestamp.clone().map(|t| t.0);
        created(x)
            .cmp(&created(y))
            .then_with(|| x.name_any().cmp(&y.name_any()))
    });
    let mut parts: Vec<Parsed> = ordered
        .iter()
        .map(|t| parse_ovswire(namespace, t))
        .collect();
    if !meshnet.is_empty() {
        parts.push(parse_meshnet(namespace, meshnet));
    }
    let mut out = Parsed::default();
    let mut used: BTreeMap<(String, String), (String, Origin)> = BTreeMap::new();
    for part in parts {
        out.rejected.extend(part.rejected);
        for (wire, origin) in part.wires {
            let name = wire.name();
            let taken = [&wire.a, &wire.b].into_iter().find_map(|end| {
                used.get(end).map(|(other, by)| {
                    format!(
                        "{}:{} is already used by link {other} of {by}; an interface joins one \
                         link only: remove the link from one of the objects",
                        end.0, end.1
                    )
                })
            });
            match taken {
                Some(reason) => out.rejected.push(Rejected {
                    lab: namespace.to_owned(),
                    origin,
                    link: name,
                    reason,
                }),
                None => {
                    used.insert(wire.a.clone(), (name.clone(), origin.clone()));
                    used.insert(wire.b.clone(), (name, origin.clone()));
                    out.wires.push((wire, origin));
                }
            }
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests;
