//! Link notifications of one namespace, timestamped the moment they arrive.
//!
//! A watcher subscribes to the kernel's `RTNLGRP_LINK` multicast group from a thread inside the
//! namespace, which is what `ip monitor link` does: every carrier or admin change of every link
//! arrives as an `RTM_NEWLINK` without polling, so a test or benchmark learns *when* a pod saw
//! `NO-CARRIER`, not just that it did.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::channel::oneshot;
use futures::future::{Either, select};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::MulticastGroup;
use rtnetlink::packet_core::NetlinkPayload;

use ovswire_netns::link::{self, IfaceState};

use crate::netns::Netns;
use crate::{Error, Result};

/// One change the kernel announced for a link.
#[derive(Debug, Clone)]
pub struct IfaceEvent {
    /// When the notification reached the watcher.
    pub at: Instant,
    /// The link's name.
    pub ifname: String,
    /// The link's state after the change.
    pub state: IfaceState,
    /// The link was deleted (`RTM_DELLINK`).
    pub removed: bool,
}

/// The link notifications of one namespace, queued in arrival order. Stops when dropped.
#[derive(Debug)]
pub struct LinkWatch {
    netns: String,
    events: mpsc::Receiver<IfaceEvent>,
    // Dropping the sender ends the watcher thread.
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Netns {
    /// Starts watching this namespace's links; returns once the subscription is in place, so
    /// every change made afterwards is seen.
    pub fn watch_links(&self) -> Result<LinkWatch> {
        let path = self.path().to_owned();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<()>>(1);
        let (events_tx, events) = mpsc::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("watch-{}", self.name()))
            .spawn(move || {
                if let Err(e) = ovswire_netns::enter(&path) {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(Error::io("build a runtime for netlink", e)));
                        return;
                    }
                };
                rt.block_on(watch(ready_tx, events_tx, stop_rx));
            })
            .map_err(|e| Error::io("start a link watcher thread", e))?;
        let ready = ready_rx.recv().unwrap_or_else(|_| {
            Err(Error::Setup(format!(
                "the link watcher of {} stopped before subscribing",
                self.name()
            )))
        });
        let watch = LinkWatch {
            netns: self.name().to_owned(),
            events,
            stop: Some(stop),
            thread: Some(thread),
        };
        ready.map(|()| watch)
    }
}

async fn watch(
    ready: mpsc::SyncSender<Result<()>>,
    events: mpsc::Sender<IfaceEvent>,
    mut stop: oneshot::Receiver<()>,
) {
    let (conn, _handle, mut messages) =
        match rtnetlink::new_multicast_connection(&[MulticastGroup::Link]) {
            Ok(c) => c,
            Err(e) => {
                let _ = ready.send(Err(Error::io("subscribe to link notifications", e)));
                return;
            }
        };
    let conn = tokio::spawn(conn);
    let _ = ready.send(Ok(()));
    while let Either::Right((Some((msg, _)), _)) = select(&mut stop, messages.next()).await {
        let at = Instant::now();
        let (msg, removed) = match msg.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => (m, false),
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(m)) => (m, true),
            _ => continue,
        };
        let Some(ifname) = link::name_of(&msg).map(str::to_owned) else {
            continue;
        };
        let event = IfaceEvent {
            at,
            ifname,
            state: IfaceState::of(&msg),
            removed,
        };
        if events.send(event).is_err() {
            break;
        }
    }
    conn.abort();
}

impl LinkWatch {
    /// The next event, waiting up to `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<IfaceEvent> {
        self.events.recv_timeout(timeout).ok()
    }

    /// Discards every event received so far.
    pub fn drain(&self) {
        while self.events.try_recv().is_ok() {}
    }

    /// Waits up to `timeout` for an event on `ifname` whose state satisfies `cond`; events on
    /// other links and other states are consumed and skipped.
    pub fn wait_for(
        &self,
        ifname: &str,
        timeout: Duration,
        mut cond: impl FnMut(&IfaceState) -> bool,
    ) -> Result<IfaceEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(event) = self.next(left) else {
                return Err(Error::Setup(format!(
                    "no awaited change of {ifname} in namespace {} within {timeout:?}",
                    self.netns
                )));
            };
            if event.ifname == ifname && !event.removed && cond(&event.state) {
                return Ok(event);
            }
        }
    }

    /// Waits up to `timeout` until `ifname` reports carrier `on` (`IFF_LOWER_UP`; its absence
    /// is `NO-CARRIER`); when it happened.
    pub fn wait_carrier(&self, ifname: &str, on: bool, timeout: Duration) -> Result<Instant> {
        self.wait_for(ifname, timeout, |s| s.carrier == on)
            .map(|e| e.at)
    }
}

impl Drop for LinkWatch {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
