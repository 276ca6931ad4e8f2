//! Named network namespaces, made, entered and removed without the `ip` tool.
//!
//! A namespace is created by a short-lived thread that unshares its network namespace and
//! bind-mounts `/proc/thread-self/ns/net` onto `/run/netns/<name>`: exactly what `ip netns add`
//! leaves behind, so `ip netns exec <name> ...` works on lab nodes. Work inside a namespace runs
//! on a fresh thread that has entered it; sockets it opens and processes it starts live there.

use std::fs::{self, File};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::thread;

use anyhow::{Context, Result, anyhow, bail};
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

/// Where named namespaces live.
pub const NETNS_DIR: &str = "/run/netns";

/// The path of the namespace `name`.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Whether `/run/netns/<name>` is a mounted network namespace.
pub fn exists(name: &str) -> bool {
    inode(&path(name)).is_some()
}

/// The namespace inode behind a path, when it is a mounted namespace.
fn inode(path: &Path) -> Option<u64> {
    let meta = fs::metadata(path).ok()?;
    // An unmounted placeholder is an empty regular file on the /run file system; a mounted
    // namespace shows the nsfs inode.
    let nsfs = fs::metadata("/proc/self/ns/net").ok()?.dev();
    (meta.dev() == nsfs).then_some(meta.ino())
}

/// Creates `/run/netns/<name>` with its loopback up. Fails if it exists.
pub fn create(name: &str) -> Result<PathBuf> {
    fs::create_dir_all(NETNS_DIR).with_context(|| format!("create {NETNS_DIR}"))?;
    let target = path(name);
    if target.exists() {
        bail!("network namespace {name} already exists");
    }
    File::create(&target).with_context(|| format!("create {}", target.display()))?;
    let bind = target.clone();
    let made = thread::spawn(move || -> Result<()> {
        nix::sched::unshare(CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            &bind,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .context("bind-mount the new network namespace")
    })
    .join()
    .map_err(|_| anyhow!("the thread creating namespace {name} panicked"))
    .and_then(|r| r);
    let made = made.and_then(|()| {
        run(name, |handle| async move {
            let lo = crate::netlink::index(&handle, "lo").await?;
            handle
                .link()
                .set(rtnetlink::LinkUnspec::new_with_index(lo).up().build())
                .execute()
                .await
                .context("bring lo up")
        })
    });
    if let Err(e) = made {
        let _ = delete(name);
        return Err(e.context(format!("create network namespace {name}")));
    }
    Ok(target)
}

/// Removes the namespace `name`: kills every process still in it, unmounts and deletes the
/// file. Removing a namespace that is not there is not an error.
pub fn delete(name: &str) -> Result<()> {
    let target = path(name);
    if let Some(ino) = inode(&target) {
        kill_processes(ino);
        nix::mount::umount2(&target, MntFlags::MNT_DETACH)
            .with_context(|| format!("unmount {}", target.display()))?;
    }
    match fs::remove_file(&target) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove {}", target.display()))
        }
        _ => Ok(()),
    }
}

/// SIGKILLs every process whose network namespace is the one with inode `ino` (the commands a
/// lab started in a node), so the namespace really goes away.
fn kill_processes(ino: u64) {
    let Ok(procs) = fs::read_dir("/proc") else {
        return;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() as i32 {
            continue;
        }
        if fs::metadata(entry.path().join("ns/net")).is_ok_and(|m| m.ino() == ino) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Runs `f` with a netlink handle on a new thread that has entered namespace `name`.
pub fn run<F, Fut, R>(name: &str, f: F) -> Result<R>
where
    F: FnOnce(rtnetlink::Handle) -> Fut + Send,
    Fut: std::future::Future<Output = Result<R>>,
    R: Send,
{
    let ns =
        File::open(path(name)).with_context(|| format!("network namespace {name} is missing"))?;
    thread::scope(|s| {
        s.spawn(move || -> Result<R> {
            nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("enter network namespace {name}"))?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("start a runtime inside the namespace")?;
            rt.block_on(async move {
                let (conn, handle, _) =
                    rtnetlink::new_connection().context("open a netlink socket")?;
                let conn = tokio::spawn(conn);
                let r = f(handle).await;
                conn.abort();
                r
            })
        })
        .join()
        .map_err(|_| anyhow!("a thread working in namespace {name} panicked"))?
    })
}

/// Starts `sh -c command` inside namespace `name`, with its output appended to `log`, and waits
/// for it; the command's exit status.
pub fn sh(name: &str, command: &str, log: &Path) -> Result<std::process::ExitStatus> {
    let ns =
        File::open(path(name)).with_context(|| format!("network namespace {name} is missing"))?;
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("open {}", log.display()))?;
    let err = out.try_clone()?;
    thread::scope(|s| {
        s.spawn(move || -> Result<std::process::ExitStatus> {
            nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("enter network namespace {name}"))?;
            std::process::Command::new("sh")
                .args(["-c", command])
                .stdin(std::process::Stdio::null())
                .stdout(out)
                .stderr(err)
                .status()
                .with_context(|| format!("run `{command}` in {name}"))
        })
        .join()
        .map_err(|_| anyhow!("a thread working in namespace {name} panicked"))?
    })
}
