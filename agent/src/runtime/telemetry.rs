//! What the agent counts and remembers about its links: counters made monotonic, carrier
//! changes, a bounded history of link events, and its own health. Counters themselves are read
//! from OVS on demand (see [`super::Agent::link_stats`]): nothing is polled unless someone asks.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use ovswire_core::model::LinkKey;
use ovswire_core::node::LinkEvent;
use ovswire_core::plan::OperState;
use ovswire_core::stats::{LinkCounters, Monotonic};

/// How many link events the history keeps, by default.
pub const DEFAULT_HISTORY: usize = 10_000;

/// How a link's carrier changed since the agent started. Its first coming up (the wiring
/// completing) is not a change: changes count from the first time it was up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carrier {
    /// Whether it is up now.
    pub up: bool,
    /// Whether it has been up since the agent started.
    pub was_up: bool,
    /// Changes between up and not up.
    pub changes: u64,
    /// Changes from up to not up.
    pub flaps: u64,
    /// When it last changed state, and why.
    pub last_change: Option<SystemTime>,
    /// The reason given with that change (empty for up).
    pub last_reason: String,
}

/// A link event with when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEvent {
    /// When.
    pub time: SystemTime,
    /// What.
    pub event: LinkEvent,
    /// A note on the event: `agent started` for the state a starting agent found.
    pub note: Option<String>,
}

/// The agent's counters, carrier changes, history and health.
#[derive(Debug)]
pub struct Telemetry {
    monotonic: Mutex<BTreeMap<LinkKey, Monotonic>>,
    carrier: Mutex<BTreeMap<LinkKey, Carrier>>,
    history: Mutex<VecDeque<HistoryEvent>>,
    capacity: usize,
    peers: Mutex<BTreeMap<String, bool>>,
    /// When the agent started.
    pub started: SystemTime,
    /// Reconcile rounds run.
    pub rounds: AtomicU64,
    /// Total time spent in reconcile rounds, in microseconds.
    pub round_micros: AtomicU64,
    /// Reconnections of the OpenFlow connection to the bridge.
    pub openflow_reconnects: AtomicU64,
    /// Time spent in each [`Step`] (microseconds) and how many times, by step.
    steps: [(AtomicU64, AtomicU64); Step::ALL.len()],
}

/// A step of the agent's work whose time is counted, for a breakdown of where a run goes.
/// Steps of concurrent ADDs overlap: their sums can exceed the time that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// An ADD making its veth pair (rtnetlink, in the pod's namespace).
    Veth,
    /// An ADD waiting for its port to be committed to OVSDB.
    Durable,
    /// Committing a round's port changes to OVSDB.
    OvsdbCommit,
    /// Installing a round's flows (one bundle).
    Bundle,
    /// Taking host ends up or down (rtnetlink).
    HostEnds,
    /// Reading everything the agent owns back from OVS.
    ObserveAll,
    /// Reading back the ports just committed.
    ObserveCommitted,
    /// ovs-vswitchd applying committed port changes (waited for aside, not in rounds).
    VswitchdApply,
}

impl Step {
    /// Every step, in the order they are shown.
    pub const ALL: [Self; 8] = [
        Self::Veth,
        Self::Durable,
        Self::OvsdbCommit,
        Self::Bundle,
        Self::HostEnds,
        Self::ObserveAll,
        Self::ObserveCommitted,
        Self::VswitchdApply,
    ];

    /// Its name in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Veth => "veth",
            Self::Durable => "wait_durable",
            Self::OvsdbCommit => "ovsdb_commit",
            Self::Bundle => "bundle",
            Self::HostEnds => "host_ends",
            Self::ObserveAll => "observe_all",
            Self::ObserveCommitted => "observe_committed",
            Self::VswitchdApply => "vswitchd_apply",
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Telemetry {
    /// Empty telemetry keeping `capacity` history events.
    pub fn new(capacity: usize) -> Self {
        Self {
            monotonic: Mutex::default(),
            carrier: Mutex::default(),
            history: Mutex::default(),
            capacity: capacity.max(1),
            peers: Mutex::default(),
            started: SystemTime::now(),
            rounds: AtomicU64::new(0),
            steps: Default::default(),
            round_micros: AtomicU64::new(0),
            openflow_reconnects: AtomicU64::new(0),
        }
    }

    /// Takes in link events as they are published: carrier changes are counted and every event
    /// joins the history. A link's first event after the agent started sets its state without
    /// counting a change (and is noted as the state the agent found). `then` runs while the
    /// history is held, so a watcher that reads the history and subscribes at once (see
    /// [`Self::history_since`]) sees every event exactly once.
    pub fn record(&self, events: &[LinkEvent], now: SystemTime, then: impl FnOnce()) {
        let mut carrier = lock(&self.carrier);
        let mut history = lock(&self.history);
        for ev in events {
            let up = ev.status == OperState::Up && !ev.removed;
            let reason = match &ev.status {
                OperState::Pending(r) | OperState::Error(r) => r.clone(),
                OperState::Down => "taken down".to_owned(),
                OperState::Up => String::new(),
            };
            let note = match carrier.get_mut(&ev.link.key) {
                None => {
                    carrier.insert(
                        ev.link.key.clone(),
                        Carrier {
                            up,
                            was_up: up,
                            last_reason: reason,
                            ..Carrier::default()
                        },
                    );
                    Some("agent started".to_owned())
                }
                Some(c) => {
                    if c.up != up {
                        if c.was_up {
                            c.changes += 1;
                            c.flaps += u64::from(c.up);
                        }
                        c.was_up |= up;
                        c.up = up;
                        c.last_change = Some(now);
                        c.last_reason = reason;
                    }
                    ev.note.clone()
                }
            };
            if ev.removed {
                carrier.remove(&ev.link.key);
                lock(&self.monotonic).remove(&ev.link.key);
            }
            if history.len() == self.capacity {
                history.pop_front();
            }
            history.push_back(HistoryEvent {
                time: now,
                event: ev.clone(),
                note,
            });
        }
        then();
    }

    /// The carrier record of `key`.
    pub fn carrier(&self, key: &LinkKey) -> Carrier {
        lock(&self.carrier).get(key).cloned().unwrap_or_default()
    }

    /// The events remembered since `since` (all that are kept, if it is older), of lab `lab`
    /// (every lab when empty), oldest first; and what `then` returns, run while the history is
    /// held (a subscription to new events: none is missed or seen twice).
    pub fn history_since<R>(
        &self,
        since: SystemTime,
        lab: &str,
        then: impl FnOnce() -> R,
    ) -> (Vec<HistoryEvent>, R) {
        let history = lock(&self.history);
        let events = history
            .iter()
            .filter(|h| h.time >= since)
            .filter(|h| lab.is_empty() || h.event.link.key.lab() == lab)
            .cloned()
            .collect();
        (events, then())
    }

    /// Raw counts of a reading made monotonic per link.
    pub fn monotonic(
        &self,
        raw: BTreeMap<LinkKey, LinkCounters>,
    ) -> BTreeMap<LinkKey, LinkCounters> {
        let mut m = lock(&self.monotonic);
        raw.into_iter()
            .map(|(k, c)| {
                let total = m.entry(k.clone()).or_default().update(c);
                (k, total)
            })
            .collect()
    }

    /// A peer answered (`true`) or was given up on (`false`).
    pub fn peer(&self, node: &str, reporting: bool) {
        lock(&self.peers).insert(node.to_owned(), reporting);
    }

    /// Every peer heard of, and whether it is reporting.
    pub fn peers(&self) -> BTreeMap<String, bool> {
        lock(&self.peers).clone()
    }

    /// Counts one `step` that took `took`.
    pub fn step(&self, step: Step, took: Duration) {
        let (micros, count) = &self.steps[step as usize];
        micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        count.fetch_add(1, Ordering::Relaxed);
    }

    /// Every step with its total time and count.
    pub fn steps(&self) -> Vec<(Step, Duration, u64)> {
        Step::ALL
            .iter()
            .map(|&s| {
                let (micros, count) = &self.steps[s as usize];
                (
                    s,
                    Duration::from_micros(micros.load(Ordering::Relaxed)),
                    count.load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// Counts one reconcile round that took `took`.
    pub fn round(&self, took: Duration) {
        self.rounds.fetch_add(1, Ordering::Relaxed);
        self.round_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ovswire_core::model::{EndpointKey, LinkSpec};

    fn event(status: OperState) -> LinkEvent {
        let key = LinkKey::new(
            EndpointKey::new("lab", "r1", "eth1").unwrap(),
            EndpointKey::new("lab", "r2", "eth1").unwrap(),
        )
        .unwrap();
        LinkEvent {
            link: LinkSpec {
                key,
                mtu: 1500,
                admin: ovswire_core::model::AdminState::Up,
                impair: Default::default(),
                segment: None,
            },
            status,
            removed: false,
            note: None,
        }
    }

    #[test]
    fn a_flap_counts_one_flap_and_two_changes_and_the_history_keeps_its_bound() {
        let t = Telemetry::new(3);
        let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        t.record(&[event(OperState::Pending("wiring".into()))], at(0), || {});
        t.record(&[event(OperState::Up)], at(1), || {});
        t.record(&[event(OperState::Down)], at(2), || {});
        t.record(&[event(OperState::Up)], at(3), || {});
        let c = t.carrier(&event(OperState::Up).link.key);
        assert_eq!((c.changes, c.flaps, c.up), (2, 1, true));
        assert_eq!(c.last_change, Some(at(3)));
        t.record(
            &[event(OperState::Pending("waiting for r2:eth1".into()))],
            at(4),
            || {},
        );
        let c = t.carrier(&event(OperState::Up).link.key);
        assert_eq!(
            (c.flaps, c.last_reason.as_str()),
            (2, "waiting for r2:eth1")
        );
        let (h, ()) = t.history_since(at(0), "", || {});
        assert_eq!(h.len(), 3, "the oldest went");
        assert_eq!(h[0].time, at(2));
        assert!(
            h.iter().all(|e| e.note.is_none()),
            "only the first was the agent's start"
        );
        assert_eq!(t.history_since(at(4), "lab", || {}).0.len(), 1);
        assert!(t.history_since(at(0), "other", || {}).0.is_empty());
    }
}
