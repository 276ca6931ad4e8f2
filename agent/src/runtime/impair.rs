//! The impairment stage: for each impaired direction of a link on this node, a veth pair
//! whose OVS end (`oi…`) is a bridge port and whose other end (`oj…`) the stage reads and
//! writes. The link's flows send the direction's frames out through the port; the stage takes
//! each frame, lets the [`Shaper`] decide its fate (lost, corrupted, duplicated, held), and
//! writes it back at its time, to come in through the same port and go on to the far end.
//! Directions without impairments never pass through here.
//!
//! Every stage runs on one thread of its own with its own event loop, so impaired traffic
//! never delays the agent's reconcile rounds or APIs, and an agent without impairments runs
//! no such thread.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ovswire_core::impair::{Impairment, QUEUE_LIMIT, Shaper};
use ovswire_core::plan::ImpairPort;
use ovswire_netns::packet::{HEADROOM, PacketSocket, Timer};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::netdev::{Netdev, NetdevError};

/// Kernel queue of each stage socket, each way.
const SOCKET_BUFFER: usize = 4 << 20;
/// Frames a stage takes in one go before it sends what is due.
const BATCH: usize = 256;

/// What one stage has done since it started.
#[derive(Debug, Default)]
pub struct StageCounters {
    /// Frames taken in.
    pub received: AtomicU64,
    /// Frames sent on (duplicates counted twice).
    pub sent: AtomicU64,
    /// Frames dropped by the loss setting.
    pub lost: AtomicU64,
    /// Frames dropped because the queue was full (the rate limit's backlog).
    pub overflow: AtomicU64,
}

#[derive(Debug)]
struct Running {
    settings: watch::Sender<Impairment>,
    task: tokio::task::AbortHandle,
    counters: Arc<StageCounters>,
}

/// The running stages, by the name of the OVS end of their pair.
#[derive(Debug, Default)]
pub struct Stages {
    runtime: OnceLock<Result<tokio::runtime::Handle, String>>,
    running: Mutex<BTreeMap<String, Running>>,
}

impl Stages {
    fn running(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stages' event loop, started on first use.
    fn handle(&self) -> Result<tokio::runtime::Handle, String> {
        self.runtime
            .get_or_init(|| {
                let (tx, rx) = std::sync::mpsc::channel();
                let spawned = std::thread::Builder::new()
                    .name("ovswire-impair".into())
                    .spawn(move || {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build();
                        match rt {
                            Ok(rt) => {
                                let _ = tx.send(Ok(rt.handle().clone()));
                                rt.block_on(std::future::pending::<()>());
                            }
                            Err(e) => {
                                let _ = tx.send(Err(format!("cannot start its event loop: {e}")));
                            }
                        }
                    });
                match spawned {
                    Ok(_) => rx
                        .recv()
                        .unwrap_or_else(|_| Err("its thread ended at start".into())),
                    Err(e) => Err(format!("cannot start its thread: {e}")),
                }
            })
            .clone()
    }

    /// Makes the pair of every wanted port that lacks one and starts its stage, and gives
    /// running stages their current impairment. Called before a plan is applied, so a stage
    /// reads its end before the flows send frames to it.
    pub async fn start(&self, netdev: &Netdev, wanted: &[(ImpairPort, Impairment)]) {
        for (port, imp) in wanted {
            if let Some(r) = self.running().get(&port.name) {
                r.settings.send_if_modified(|cur| {
                    let changed = cur != imp;
                    *cur = *imp;
                    changed
                });
                continue;
            }
            if let Err(e) = make_pair(netdev, port).await {
                warn!(port = %port.name, error = %e, "cannot make an impairment pair");
                continue;
            }
            match self.spawn(port, *imp) {
                Ok(running) => {
                    info!(port = %port.name, impairment = %imp, "impairment stage started");
                    self.running().insert(port.name.clone(), running);
                }
                Err(e) => warn!(port = %port.name, error = %e, "cannot start an impairment stage"),
            }
        }
    }

    fn spawn(&self, port: &ImpairPort, imp: Impairment) -> Result<Running, String> {
        let handle = self
            .handle()
            .map_err(|e| format!("the impairment stage {e}"))?;
        let socket =
            PacketSocket::bind(&port.stage_end, SOCKET_BUFFER).map_err(|e| e.to_string())?;
        let (settings, rx) = watch::channel(imp);
        let counters = Arc::new(StageCounters::default());
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(port.ofport).rotate_left(32);
        let name = port.name.clone();
        let c = counters.clone();
        let buf = port.mtu as usize + 64;
        let task = handle.spawn(async move {
            if let Err(e) = run(socket, rx, seed, c, buf).await {
                warn!(port = %name, error = %e, "impairment stage stopped");
            }
        });
        Ok(Running {
            settings,
            task: task.abort_handle(),
            counters,
        })
    }

    /// Stops the stages of ports no longer wanted and removes their pairs; called after a
    /// plan that took their flows away was applied.
    pub async fn stop_unwanted(&self, netdev: &Netdev, wanted: &[(ImpairPort, Impairment)]) {
        let gone: Vec<(String, Running)> = {
            let mut running = self.running();
            let names: Vec<String> = running
                .keys()
                .filter(|n| !wanted.iter().any(|(p, _)| &p.name == *n))
                .cloned()
                .collect();
            names
                .into_iter()
                .filter_map(|n| running.remove(&n).map(|r| (n, r)))
                .collect()
        };
        for (name, r) in gone {
            r.task.abort();
            info!(port = %name, "impairment stage stopped");
            if let Err(e) = netdev.delete(&name).await {
                warn!(port = %name, error = %e, "cannot remove an impairment pair");
            }
        }
    }

    /// The counters of the stage of port `name`, while it runs.
    pub fn counters(&self, name: &str) -> Option<Arc<StageCounters>> {
        self.running().get(name).map(|r| r.counters.clone())
    }
}

/// Creates the pair of `port` if it is not there yet, with no IPv6 (nothing of the host's
/// may leak into a wire), TX checksum offload off, and both ends up.
async fn make_pair(netdev: &Netdev, port: &ImpairPort) -> Result<(), NetdevError> {
    if !netdev.exists(&port.stage_end).await? {
        match netdev
            .create_host_pair(&port.name, &port.stage_end, port.mtu)
            .await
        {
            Err(NetdevError::Exists { .. }) => {
                // The OVS end without its peer: a pair half removed. Make it again.
                netdev.delete(&port.name).await?;
                netdev
                    .create_host_pair(&port.name, &port.stage_end, port.mtu)
                    .await?;
            }
            other => other?,
        }
    }
    netdev.set_up(&port.name, true).await?;
    netdev.set_up(&port.stage_end, true).await
}

/// A frame waiting for its time.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Held {
    at_ns: u64,
    seq: u64,
    frame: Vec<u8>,
}

/// One stage: reads frames from `socket`, shapes them, writes them back.
async fn run(
    socket: PacketSocket,
    mut settings: watch::Receiver<Impairment>,
    seed: u64,
    counters: Arc<StageCounters>,
    largest: usize,
) -> std::io::Result<()> {
    let socket = socket.into_async()?;
    // Frames leave on a timerfd: the runtime's own timer rounds every wait up to the next
    // millisecond, which would add ~1 ms to every delay.
    let timer = Timer::new()?.into_async()?;
    let epoch = Instant::now();
    let now_ns = || epoch.elapsed().as_nanos() as u64;
    let mut shaper = Shaper::new(*settings.borrow_and_update(), seed);
    let mut queue: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut buf = vec![0u8; largest.max(1600) + HEADROOM];
    loop {
        let next = queue.peek().map(|Reverse(h)| h.at_ns);
        if let Some(at) = next {
            timer
                .get_ref()
                .arm(Duration::from_nanos(at.saturating_sub(now_ns())))?;
        }
        tokio::select! {
            ready = socket.readable() => {
                let mut guard = ready?;
                for _ in 0..BATCH {
                    let got = match guard.try_io(|s| s.get_ref().recv(&mut buf)) {
                        Err(_) => break,
                        Ok(r) => r?,
                    };
                    let Some(range) = got else { continue };
                    counters.received.fetch_add(1, Ordering::Relaxed);
                    if queue.len() >= QUEUE_LIMIT {
                        counters.overflow.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let fate = shaper.admit(now_ns(), range.len());
                    if fate.copies == 0 {
                        counters.lost.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let mut frame = buf[range].to_vec();
                    if let Some((offset, mask)) = fate.corrupt {
                        frame[offset] ^= mask;
                    }
                    for copy in 0..fate.copies {
                        seq += 1;
                        let frame = if copy + 1 < fate.copies { frame.clone() } else { std::mem::take(&mut frame) };
                        queue.push(Reverse(Held { at_ns: fate.at_ns, seq, frame }));
                    }
                }
            }
            ready = timer.readable(), if next.is_some() => {
                let mut guard = ready?;
                guard.get_inner().clear();
                guard.clear_ready();
            }
            changed = settings.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                shaper.set(*settings.borrow_and_update());
            }
        }
        let now = now_ns();
        while queue.peek().is_some_and(|Reverse(h)| h.at_ns <= now) {
            let Some(Reverse(held)) = queue.pop() else {
                break;
            };
            match socket.get_ref().send(&held.frame) {
                Ok(()) => {
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                }
                // A full socket queue drops the frame, as a full interface queue would.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    counters.overflow.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENOBUFS as i32) => {
                    counters.overflow.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
    }
}
