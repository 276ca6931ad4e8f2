//! Work inside a network namespace given by path.
//!
//! Each job gets a fresh thread that `setns`es into the namespace and ends with the job: a
//! thread's namespace is inherited by the sockets it opens and the processes it spawns, and a
//! pooled thread left in a namespace would carry it into unrelated work.

use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::thread;

use nix::sched::CloneFlags;

use crate::{Error, Result};

/// Moves the calling thread into the namespace at `path`. Only for a thread made for the
/// purpose: it stays there.
pub fn enter(path: &Path) -> Result<()> {
    let file = open_path(path)?;
    nix::sched::setns(file, CloneFlags::CLONE_NEWNET).map_err(|cause| Error::Sys {
        call: "setns",
        path: path.to_owned(),
        cause,
    })
}

/// Runs `f` on a new thread inside the namespace at `path` and waits for it.
pub fn run<F, R>(path: &Path, f: F) -> Result<R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    thread::scope(|s| {
        s.spawn(|| {
            enter(path)?;
            Ok(f())
        })
        .join()
        .map_err(|_| Error::Worker {
            path: path.to_owned(),
        })?
    })
}

/// Runs the future `f` makes from a netlink handle on a current-thread runtime, on a new thread
/// inside the namespace at `path`, and waits for it (blocking the caller).
pub fn block_on<F, Fut>(path: &Path, f: F) -> Result<Fut::Output>
where
    F: FnOnce(rtnetlink::Handle) -> Fut + Send,
    Fut: Future,
    Fut::Output: Send,
{
    run(path, || with_netlink(f))?
}

/// [`block_on`] for async callers: the work runs on its own thread inside the namespace at
/// `path` and the caller awaits it without blocking its runtime.
pub async fn spawn<F, Fut>(path: PathBuf, f: F) -> Result<Fut::Output>
where
    F: FnOnce(rtnetlink::Handle) -> Fut + Send + 'static,
    Fut: Future,
    Fut::Output: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let worker = path.clone();
    thread::Builder::new()
        .name("ovswire-netns".into())
        .spawn(move || {
            let out = enter(&worker).and_then(|()| with_netlink(f));
            let _ = tx.send(out);
        })
        .map_err(|e| Error::io(format!("start a thread for {}", path.display()), e))?;
    rx.await.map_err(|_| Error::Worker { path })?
}

/// Runs `f` with a netlink socket opened in the calling thread's namespace.
fn with_netlink<F, Fut>(f: F) -> Result<Fut::Output>
where
    F: FnOnce(rtnetlink::Handle) -> Fut,
    Fut: Future,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("start a runtime for netlink", e))?;
    rt.block_on(async move {
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|e| Error::io("open a netlink socket", e))?;
        let conn = tokio::spawn(conn);
        let out = f(handle).await;
        conn.abort();
        Ok(out)
    })
}

/// Opens a namespace file (`/run/netns/NAME`, `/proc/PID/ns/net`).
pub(crate) fn open_path(path: &Path) -> Result<File> {
    File::open(path).map_err(|cause| Error::Open {
        path: path.to_owned(),
        cause,
    })
}
