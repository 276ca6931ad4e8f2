//! What crosses a wire, counted where OVS counts it: every wire is its own flows, so the packets
//! and bytes of a link's direction are those of the flow that carries it on this node, read by
//! cookie in one flow-stats request; drops are the host ports' (OpenFlow port statistics).
//!
//! A node counts what enters and leaves its half: on a same-node link, both directions whole; on
//! a cross-node link, the frames its pod sends into the wire and those the wire delivers to it,
//! so frames lost on the underlay show as the difference between the two nodes' counts.
//!
//! Counters restart when OVS replaces a flow (the link re-wired after a pod restart, or
//! ovs-vswitchd restarted); [`Monotonic`] keeps what a link counted before, so a counter never
//! goes backwards while the agent runs.

use std::collections::BTreeMap;
use std::fmt;

use crate::model::LinkKey;
use crate::plan::FlowKey;

/// A direction of a link: from end `a` to end `b`, or back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Frames `a` sends, `b` receives.
    AtoB,
    /// Frames `b` sends, `a` receives.
    BtoA,
}

impl Direction {
    /// Both directions, `a->b` first.
    pub const BOTH: [Self; 2] = [Self::AtoB, Self::BtoA];

    /// The other direction.
    pub fn reverse(self) -> Self {
        match self {
            Self::AtoB => Self::BtoA,
            Self::BtoA => Self::AtoB,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AtoB => "a->b",
            Self::BtoA => "b->a",
        })
    }
}

/// How a host port sees a direction's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortSide {
    /// They enter OVS through it (from the pod): its receive drops count.
    Ingress,
    /// They leave OVS through it (to the pod): its transmit drops count.
    Egress,
}

/// Where this node counts one link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counting {
    /// The link's flows here and the direction each carries.
    pub flows: Vec<(FlowKey, Direction)>,
    /// The link's host ports here (OpenFlow numbers), the direction and how it crosses them.
    pub ports: Vec<(u32, Direction, PortSide)>,
}

/// Counters of one direction of a link on one node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectionCounters {
    /// Frames.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// Frames the host ports dropped or failed on.
    pub drops: u64,
}

impl DirectionCounters {
    fn add(&mut self, other: Self) {
        self.packets = self.packets.saturating_add(other.packets);
        self.bytes = self.bytes.saturating_add(other.bytes);
        self.drops = self.drops.saturating_add(other.drops);
    }
}

/// A link's counters on one node, both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// `a->b`.
    pub a_to_b: DirectionCounters,
    /// `b->a`.
    pub b_to_a: DirectionCounters,
}

impl LinkCounters {
    /// The counters of direction `d`.
    pub fn get(&self, d: Direction) -> DirectionCounters {
        match d {
            Direction::AtoB => self.a_to_b,
            Direction::BtoA => self.b_to_a,
        }
    }

    fn get_mut(&mut self, d: Direction) -> &mut DirectionCounters {
        match d {
            Direction::AtoB => &mut self.a_to_b,
            Direction::BtoA => &mut self.b_to_a,
        }
    }
}

/// One flow as a flow-stats reply gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowCount {
    /// Its match.
    pub key: FlowKey,
    /// Packets it matched.
    pub packets: u64,
    /// Bytes it matched.
    pub bytes: u64,
}

/// One port as a port-stats reply gives it: receive and transmit drops and errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortCount {
    /// `rx_dropped + rx_errors`.
    pub rx_lost: u64,
    /// `tx_dropped + tx_errors`.
    pub tx_lost: u64,
}

/// Sums raw flow and port counts into each link's counters, as `counting` says where each link
/// is counted.
pub fn tally(
    counting: &BTreeMap<LinkKey, Counting>,
    flows: &[FlowCount],
    ports: &BTreeMap<u32, PortCount>,
) -> BTreeMap<LinkKey, LinkCounters> {
    let by_flow: BTreeMap<FlowKey, &FlowCount> = flows.iter().map(|f| (f.key, f)).collect();
    let mut out = BTreeMap::new();
    for (link, c) in counting {
        let mut counters = LinkCounters::default();
        for (key, d) in &c.flows {
            if let Some(f) = by_flow.get(key) {
                counters.get_mut(*d).add(DirectionCounters {
                    packets: f.packets,
                    bytes: f.bytes,
                    drops: 0,
                });
            }
        }
        for (port, d, side) in &c.ports {
            if let Some(p) = ports.get(port) {
                let drops = &mut counters.get_mut(*d).drops;
                *drops = drops.saturating_add(match side {
                    PortSide::Ingress => p.rx_lost,
                    PortSide::Egress => p.tx_lost,
                });
            }
        }
        out.insert(link.clone(), counters);
    }
    out
}

/// A link's counters made monotonic across the flows and ports OVS replaces: a raw count below
/// the last one means OVS started counting again, and what was counted before is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Monotonic {
    /// What earlier flows and ports counted.
    base: LinkCounters,
    /// The last raw counts.
    last: LinkCounters,
}

impl Monotonic {
    /// Takes in the raw counts of a reading; the counters since the agent started counting.
    pub fn update(&mut self, raw: LinkCounters) -> LinkCounters {
        for d in Direction::BOTH {
            let (base, last, now) = (self.base.get_mut(d), self.last.get_mut(d), raw.get(d));
            for (b, l, n) in [
                (&mut base.packets, &mut last.packets, now.packets),
                (&mut base.bytes, &mut last.bytes, now.bytes),
                (&mut base.drops, &mut last.drops, now.drops),
            ] {
                if n < *l {
                    *b = b.saturating_add(*l);
                }
                *l = n;
            }
        }
        let mut total = self.base;
        for d in Direction::BOTH {
            total.get_mut(d).add(raw.get(d));
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EndpointKey, LinkKey};

    fn key() -> LinkKey {
        LinkKey::new(
            EndpointKey::new("lab", "r1", "eth1").unwrap(),
            EndpointKey::new("lab", "r2", "eth1").unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn flows_and_ports_add_up_per_direction() {
        let counting = BTreeMap::from([(
            key(),
            Counting {
                flows: vec![((1, None), Direction::AtoB), ((2, None), Direction::BtoA)],
                ports: vec![
                    (1, Direction::AtoB, PortSide::Ingress),
                    (2, Direction::AtoB, PortSide::Egress),
                    (2, Direction::BtoA, PortSide::Ingress),
                    (1, Direction::BtoA, PortSide::Egress),
                ],
            },
        )]);
        let flows = [
            FlowCount {
                key: (1, None),
                packets: 10,
                bytes: 1000,
            },
            FlowCount {
                key: (2, None),
                packets: 3,
                bytes: 300,
            },
            FlowCount {
                key: (9, None),
                packets: 99,
                bytes: 9,
            },
        ];
        let ports = BTreeMap::from([
            (
                1,
                PortCount {
                    rx_lost: 1,
                    tx_lost: 0,
                },
            ),
            (
                2,
                PortCount {
                    rx_lost: 0,
                    tx_lost: 4,
                },
            ),
        ]);
        let c = tally(&counting, &flows, &ports)[&key()];
        assert_eq!(
            c.a_to_b,
            DirectionCounters {
                packets: 10,
                bytes: 1000,
                drops: 5
            }
        );
        assert_eq!(
            c.b_to_a,
            DirectionCounters {
                packets: 3,
                bytes: 300,
                drops: 0
            }
        );
    }

    #[test]
    fn a_replaced_flow_never_makes_a_counter_go_backwards() {
        let mut m = Monotonic::default();
        let raw = |packets| LinkCounters {
            a_to_b: DirectionCounters {
                packets,
                bytes: packets * 100,
                drops: 0,
            },
            b_to_a: DirectionCounters::default(),
        };
        assert_eq!(m.update(raw(10)).a_to_b.packets, 10);
        assert_eq!(m.update(raw(15)).a_to_b.packets, 15);
        // The flow was replaced: OVS counts from 0 again.
        assert_eq!(m.update(raw(2)).a_to_b.packets, 17);
        assert_eq!(m.update(raw(5)).a_to_b.bytes, 2000);
    }
}
