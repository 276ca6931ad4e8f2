//! Every conversion between the gRPC messages and the domain, and the validation of what a
//! request names. The services call these and nothing else touches `pb` shapes.

use ovswire_core::model::{AdminState, EndpointKey, LinkKey, LinkSpec};
use ovswire_core::naming::MAX_TUNNEL_KEY;
use ovswire_core::node::{LinkInfo, Report};
use ovswire_core::peers::{Here, PeerView};
use std::time::SystemTime;

use ovswire_core::plan::OperState;
use ovswire_core::stats::{Direction, LinkCounters};
use ovswire_proto::v1 as pb;

use crate::error::Error;
use crate::runtime::telemetry::Carrier;

fn endpoint(e: &EndpointKey) -> pb::Endpoint {
    pb::Endpoint {
        pod: e.pod.clone(),
        ifname: e.ifname.clone(),
    }
}

/// The reference to a link, as requests and reports carry it.
pub fn link_ref(key: &LinkKey) -> pb::LinkRef {
    pb::LinkRef {
        lab: key.lab().to_owned(),
        a: Some(endpoint(key.a())),
        b: Some(endpoint(key.b())),
    }
}

/// Validates a link reference from a request.
pub fn link_key(r: Option<&pb::LinkRef>) -> Result<LinkKey, Error> {
    let invalid = |m: String| Error::InvalidArgument(m);
    let r = r.ok_or_else(|| invalid("missing link reference".into()))?;
    let end = |e: Option<&pb::Endpoint>, which: &str| -> Result<EndpointKey, Error> {
        let e = e.ok_or_else(|| invalid(format!("missing endpoint {which}")))?;
        EndpointKey::new(&r.lab, &e.pod, &e.ifname).map_err(|e| invalid(e.to_string()))
    };
    LinkKey::new(end(r.a.as_ref(), "a")?, end(r.b.as_ref(), "b")?)
        .map_err(|e| invalid(e.to_string()))
}

/// The wire form of an admin state.
pub fn admin_to_proto(admin: AdminState) -> i32 {
    let admin = match admin {
        AdminState::Up => pb::AdminState::Up,
        AdminState::Down => pb::AdminState::Down,
    };
    admin as i32
}

/// Validates an admin state from a request.
pub fn admin_from_proto(admin: i32) -> Result<AdminState, Error> {
    match pb::AdminState::try_from(admin) {
        Ok(pb::AdminState::Up) => Ok(AdminState::Up),
        Ok(pb::AdminState::Down) => Ok(AdminState::Down),
        _ => Err(Error::InvalidArgument(
            "admin must be ADMIN_STATE_UP or ADMIN_STATE_DOWN".into(),
        )),
    }
}

/// A link with its status and where its ends are.
pub fn link(spec: &LinkSpec, status: &OperState, info: LinkInfo) -> pb::Link {
    let (oper, reason) = match status {
        OperState::Pending(r) => (pb::OperState::Pending, r.clone()),
        OperState::Up => (pb::OperState::Up, String::new()),
        OperState::Down => (pb::OperState::Down, "administratively down".to_owned()),
        OperState::Error(r) => (pb::OperState::Error, r.clone()),
    };
    pb::Link {
        r#ref: Some(link_ref(&spec.key)),
        admin: admin_to_proto(spec.admin),
        oper: oper as i32,
        reason: match (reason.is_empty(), &info.mtu_note) {
            (true, Some(note)) => note.clone(),
            (false, Some(note)) => format!("{reason}; {note}"),
            (_, None) => reason,
        },
        mtu: spec.mtu,
        node_a: info.node_a,
        node_b: info.node_b,
        effective_mtu: info.effective_mtu,
        tunnel_key: info.tunnel_key.unwrap_or(0),
        stats: None,
        impairment: Some((&spec.impair).into()),
    }
}

/// A link's impairments from the API, validated.
pub fn impairment(
    p: Option<&pb::LinkImpairment>,
) -> Result<ovswire_core::impair::LinkImpairment, tonic::Status> {
    p.map_or(
        Ok(Default::default()),
        ovswire_core::impair::LinkImpairment::try_from,
    )
    .map_err(|e| tonic::Status::invalid_argument(e.to_string()))
}

/// Unix milliseconds of `t` (0 before 1970).
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The time of Unix milliseconds `ms`.
pub fn from_unix_ms(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64)
}

/// A link's counters and carrier record as `node` counts them; `rates` are per second over the
/// interval since `previous`, when there is one.
pub fn link_stats(
    node: &str,
    counters: LinkCounters,
    carrier: &Carrier,
    previous: Option<(LinkCounters, f64)>,
) -> pb::LinkStats {
    let direction = |d: Direction| {
        let now = counters.get(d);
        let (pps, bps) = match previous {
            Some((before, secs)) if secs > 0.0 => {
                let before = before.get(d);
                (
                    now.packets.saturating_sub(before.packets) as f64 / secs,
                    now.bytes.saturating_sub(before.bytes) as f64 * 8.0 / secs,
                )
            }
            _ => (0.0, 0.0),
        };
        pb::DirectionStats {
            packets: now.packets,
            bytes: now.bytes,
            drops: now.drops,
            packets_per_second: pps,
            bits_per_second: bps,
        }
    };
    pb::LinkStats {
        node: node.to_owned(),
        a_to_b: Some(direction(Direction::AtoB)),
        b_to_a: Some(direction(Direction::BtoA)),
        carrier_changes: carrier.changes,
        flaps: carrier.flaps,
        last_change_unix_ms: carrier.last_change.map_or(0, unix_ms),
        last_reason: carrier.last_reason.clone(),
    }
}

/// A peer's report; endpoints and keys with invalid names, and keys out of range, are
/// dropped.
pub fn peer_view(state: &pb::NodeState) -> PeerView {
    let mut view = PeerView {
        underlay_ip: (!state.underlay_ip.is_empty()).then(|| state.underlay_ip.clone()),
        underlay_mtu: state.underlay_mtu,
        generation: state.generation,
        ..PeerView::default()
    };
    for e in &state.endpoints {
        if let Ok(key) = EndpointKey::new(&e.lab, &e.pod, &e.ifname) {
            view.endpoints.insert(key, e.ready);
        }
    }
    for k in &state.keys {
        if let Ok(link) = link_key(k.link.as_ref())
            && (1..=MAX_TUNNEL_KEY).contains(&k.key)
        {
            view.keys.insert(link, k.key);
        }
    }
    view
}

/// This node's report as peer `to` gets it: every endpoint, and the keys chosen for links
/// to `to` only.
pub fn node_state(here: Here, report: &Report, to: &str) -> pb::NodeState {
    pb::NodeState {
        node: here.node,
        underlay_ip: here.underlay_ip.unwrap_or_default(),
        underlay_mtu: here.underlay_mtu,
        generation: report.generation,
        endpoints: report
            .endpoints
            .iter()
            .map(|(k, ready)| pb::PeerEndpoint {
                lab: k.lab.clone(),
                pod: k.pod.clone(),
                ifname: k.ifname.clone(),
                ready: *ready,
            })
            .collect(),
        keys: report
            .keys
            .iter()
            .filter(|(_, (node, _))| node == to)
            .map(|(link, (_, key))| pb::TunnelKey {
                link: Some(link_ref(link)),
                key: *key,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn key(a: &str, b: &str) -> LinkKey {
        LinkKey::new(
            EndpointKey::parse("lab", a).unwrap(),
            EndpointKey::parse("lab", b).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn link_refs_round_trip_and_bad_ones_say_why() {
        let k = key("r2:eth1", "r1:eth1");
        assert_eq!(link_key(Some(&link_ref(&k))).unwrap(), k);
        assert!(matches!(link_key(None), Err(Error::InvalidArgument(_))));
        let mut r = link_ref(&k);
        r.b.as_mut().unwrap().ifname = "eth/1".into();
        let e = link_key(Some(&r)).unwrap_err().to_string();
        assert!(e.contains("interface name"), "{e}");
        r.b = None;
        assert_eq!(
            link_key(Some(&r)).unwrap_err().to_string(),
            "missing endpoint b"
        );
    }

    #[test]
    fn admin_states_and_unknown_values() {
        for a in [AdminState::Up, AdminState::Down] {
            assert_eq!(admin_from_proto(admin_to_proto(a)).unwrap(), a);
        }
        assert!(admin_from_proto(0).is_err());
        assert!(admin_from_proto(77).is_err());
    }

    #[test]
    fn reports_carry_only_the_keys_for_the_peer_and_drop_bad_entries() {
        let (k1, k2) = (key("r1:eth1", "r2:eth1"), key("r1:eth2", "r3:eth1"));
        let report = Report {
            endpoints: [(k1.a().clone(), true)].into(),
            keys: [(k1.clone(), ("n2".into(), 7)), (k2, ("n3".into(), 9))].into(),
            generation: 42,
        };
        let here = Here {
            node: "n1".into(),
            underlay_ip: Some("192.0.2.1".into()),
            underlay_mtu: 1500,
        };
        let mut wire = node_state(here, &report, "n2");
        assert_eq!(wire.keys.len(), 1);
        wire.endpoints.push(pb::PeerEndpoint {
            lab: "lab".into(),
            pod: "Bad".into(),
            ifname: "eth1".into(),
            ready: true,
        });
        wire.keys.push(pb::TunnelKey {
            link: Some(link_ref(&k1)),
            key: MAX_TUNNEL_KEY + 1,
        });
        let view = peer_view(&wire);
        assert_eq!(view.keys, BTreeMap::from([(k1.clone(), 7)]));
        assert_eq!(view.endpoints, report.endpoints);
        assert_eq!(
            (
                view.underlay_ip.as_deref(),
                view.underlay_mtu,
                view.generation
            ),
            (Some("192.0.2.1"), 1500, 42)
        );
    }
}
