//! The management network of a lab's container nodes: an engine bridge network, `ovswire-<lab>`
//! unless the file names one, on the file's subnet or a free /24, with a stable address per
//! node (the file's `mgmt-ipv4`, else handed out in file order from the subnet's third address;
//! the first is the host's gateway).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::LabState;
use crate::engine::{Engine, LAB_LABEL};
use crate::spec::{Ipv4Net, LabSpec};

/// The management network a lab uses, kept in its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MgmtRecord {
    /// The engine network's name.
    pub network: String,
    /// Its subnet, `172.20.20.0/24`.
    pub subnet: String,
    /// Whether the lab created it (and so removes it with the lab).
    pub created: bool,
}

/// The network a lab will use.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MgmtPlan {
    /// Its name.
    network: String,
    /// Its subnet.
    subnet: Ipv4Net,
    /// Whether it must be created.
    create: bool,
}

/// Where free subnets are looked for: `172.20.20.0/24` (containerlab's default) onwards.
fn candidates() -> impl Iterator<Item = Ipv4Net> {
    (20..=31u8).flat_map(|b| {
        let first = if b == 20 { 20 } else { 0 };
        (first..=255u8).map(move |c| {
            Ipv4Net::of(crate::spec::Cidr {
                addr: Ipv4Addr::new(172, b, c, 0).into(),
                prefix: 24,
            })
        })
    })
}

/// Decides the lab's management network: the one it already has, the file's, or a new one on
/// a free /24. Fails, before anything is made, when the file's subnet collides with another
/// network or a network of that name has another subnet.
async fn plan(engine: &Engine, spec: &LabSpec) -> Result<MgmtPlan> {
    let name = spec
        .mgmt
        .network
        .clone()
        .unwrap_or_else(|| format!("ovswire-{}", spec.name));
    let networks = engine.networks().await?;
    let wanted = spec.mgmt.ipv4_subnet.map(Ipv4Net::of);
    if let Some(existing) = networks.iter().find(|n| n.name == name) {
        let Some(subnet) = existing.subnets.first().copied() else {
            bail!(
                "management network {name} exists but has no IPv4 subnet; remove it (or name \
                 another network under mgmt) and try again"
            );
        };
        if let Some(w) = wanted
            && w != subnet
        {
            bail!(
                "management network {name} exists with subnet {}, not the file's {}; remove the \
                 network, or change mgmt in the file",
                subnet.cidr(),
                w.cidr()
            );
        }
        return Ok(MgmtPlan {
            network: name,
            subnet,
            create: false,
        });
    }
    let taken: Vec<(String, Ipv4Net)> = networks
        .iter()
        .flat_map(|n| n.subnets.iter().map(|s| (n.name.clone(), *s)))
        .collect();
    let subnet = match wanted {
        Some(w) => {
            if let Some((other, s)) = taken.iter().find(|(_, s)| s.overlaps(w)) {
                bail!(
                    "the management subnet {} overlaps network {other} ({}); choose another \
                     mgmt ipv4-subnet",
                    w.cidr(),
                    s.cidr()
                );
            }
            w
        }
        None => candidates()
            .find(|c| !taken.iter().any(|(_, s)| s.overlaps(*c)))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no free /24 left in 172.20.20.0-172.31.255.0; set mgmt ipv4-subnet"
                )
            })?,
    };
    Ok(MgmtPlan {
        network: name,
        subnet,
        create: true,
    })
}

/// Management addresses for the container nodes of `spec`: the file's `mgmt-ipv4`, the one a
/// kept container already has (`keep`), else the next free address in file order.
fn addresses(
    spec: &LabSpec,
    subnet: Ipv4Net,
    keep: &BTreeMap<String, Ipv4Addr>,
) -> Result<BTreeMap<String, Ipv4Addr>> {
    let containers: Vec<_> = spec
        .nodes_in_file_order()
        .into_iter()
        .filter(|(_, n)| n.is_container())
        .collect();
    let mut out = BTreeMap::new();
    let mut used = BTreeSet::new();
    for (name, node) in &containers {
        let fixed = node.mgmt_ipv4.or_else(|| keep.get(*name).copied());
        if let Some(a) = fixed
            && subnet.contains(a)
            && used.insert(a)
        {
            out.insert((*name).clone(), a);
        }
    }
    let mut free = subnet.hosts().filter(|a| !used.contains(a));
    for (name, _) in &containers {
        if out.contains_key(*name) {
            continue;
        }
        let Some(a) = free.next() else {
            bail!(
                "the management subnet {} has no address left for node {name}; give mgmt a \
                 larger ipv4-subnet",
                subnet.cidr()
            );
        };
        out.insert((*name).clone(), a);
    }
    Ok(out)
}

/// Decides the lab's management network and its nodes' addresses, and creates the network when
/// it is new. Labs coming up at once on one machine take turns here (a lock in `/run/lock`), so
/// two never pick the same free subnet. The record to keep in the lab's state, and the addresses.
pub(super) async fn establish(
    engine: &Engine,
    spec: &LabSpec,
    st: &LabState,
) -> Result<(MgmtRecord, BTreeMap<String, Ipv4Addr>)> {
    // Engine networks are the machine's, whoever keeps the labs' state.
    let _turn = tokio::task::block_in_place(|| {
        super::lock_file(Path::new("/run/lock/ovswire-mgmt-networks.lock"))
    })?;
    let plan = plan(engine, spec).await?;
    let keep: BTreeMap<String, Ipv4Addr> = st
        .nodes
        .iter()
        .filter_map(|(n, r)| Some((n.clone(), r.container()?.mgmt_ipv4)))
        .filter(|(_, a)| plan.subnet.contains(*a))
        .collect();
    let addresses = addresses(spec, plan.subnet, &keep)?;
    let labelled_ours = engine
        .networks()
        .await?
        .iter()
        .any(|n| n.name == plan.network && n.labels.get(LAB_LABEL) == Some(&st.name));
    if plan.create {
        let labels = BTreeMap::from([(LAB_LABEL.to_owned(), st.name.clone())]);
        engine
            .create_network(&plan.network, plan.subnet, &labels)
            .await?;
    }
    // A network this lab made before (or made and lost track of, in an interrupted `up`) is
    // still its own to remove.
    let created = plan.create
        || labelled_ours
        || st
            .mgmt
            .as_ref()
            .is_some_and(|m| m.network == plan.network && m.created);
    let record = MgmtRecord {
        network: plan.network,
        subnet: plan.subnet.cidr().to_string(),
        created,
    };
    Ok((record, addresses))
}

/// Joins the host ends of the lab's links to the management network (`mgmt-net:IFNAME`) to
/// the network's bridge: the host's interface that holds the network's gateway address, as the
/// engine made it (`br-…` for Docker, `podman…` for Podman). Already joined is fine.
pub(super) async fn join_bridge(st: &LabState, spec: &LabSpec) -> Result<()> {
    if spec.mgmt.bridged.is_empty() {
        return Ok(());
    }
    let Some(record) = &st.mgmt else {
        bail!(
            "lab {} has no management network for its mgmt-net links",
            st.name
        );
    };
    let subnet: crate::spec::Cidr = record.subnet.parse().map_err(|e| {
        anyhow::anyhow!(
            "management subnet {} of the lab's state: {e}",
            record.subnet
        )
    })?;
    let gateway = Ipv4Net::of(subnet).gateway();
    let h = ovswire_netns::link::connect()?;
    let Some(bridge) = ovswire_netns::link::name_with_address(&h, gateway.into()).await? else {
        bail!(
            "no interface of the host has {gateway}, the gateway of management network {}; \
             the container engine makes its bridge while containers use it: check that the \
             lab's containers run (`ovswire lab inspect {}`)",
            record.network,
            st.name
        );
    };
    for ifname in &spec.mgmt.bridged {
        ovswire_netns::link::set_master(&h, ifname, &bridge)
            .await
            .map_err(|e| anyhow::anyhow!("join {ifname} to the management network: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{MgmtSpec, NodeSpec};

    fn net(s: &str) -> Ipv4Net {
        Ipv4Net::of(s.parse().unwrap())
    }

    #[test]
    fn addresses_are_the_files_the_kept_ones_then_the_next_free_in_file_order() {
        let node = |position, image: bool, fixed: Option<&str>| NodeSpec {
            image: image.then(|| "img".to_owned()),
            mgmt_ipv4: fixed.map(|a| a.parse().unwrap()),
            position,
            ..NodeSpec::default()
        };
        let spec = LabSpec {
            name: "l".into(),
            mtu: None,
            mgmt: MgmtSpec::default(),
            nodes: BTreeMap::from([
                ("z".to_owned(), node(0, true, None)),
                ("a".to_owned(), node(1, true, Some("172.20.20.2"))),
                ("ns".to_owned(), node(2, false, None)),
                ("m".to_owned(), node(3, true, None)),
                ("k".to_owned(), node(4, true, None)),
            ]),
            links: Vec::new(),
            names: Default::default(),
        };
        let keep = BTreeMap::from([("k".to_owned(), "172.20.20.9".parse().unwrap())]);
        let got = addresses(&spec, net("172.20.20.0/24"), &keep).unwrap();
        let got: Vec<(&str, String)> = got
            .iter()
            .map(|(n, a)| (n.as_str(), a.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("a", "172.20.20.2".to_owned()),
                ("k", "172.20.20.9".to_owned()),
                ("m", "172.20.20.4".to_owned()),
                ("z", "172.20.20.3".to_owned()),
            ]
        );
        assert!(addresses(&spec, net("172.20.20.0/30"), &BTreeMap::new()).is_err());
    }

    #[test]
    fn free_subnets_start_at_containerlabs_default() {
        let mut c = candidates();
        assert_eq!(c.next(), Some(net("172.20.20.0/24")));
        assert_eq!(c.next(), Some(net("172.20.21.0/24")));
        assert!(candidates().any(|s| s == net("172.31.255.0/24")));
    }
}
