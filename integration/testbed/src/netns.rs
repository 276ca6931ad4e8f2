//! Named network namespaces made and entered without the `ip` tool.
//!
//! A namespace is created by a short-lived thread that unshares its network namespace and
//! bind-mounts `/proc/thread-self/ns/net` onto `/run/netns/<name>`, which is exactly what
//! `ip netns add` leaves behind, so `ip netns exec` (used by tests as an oracle) sees it too.
//! Work inside a namespace runs on a fresh thread that `setns`es into it: a thread's namespace
//! is inherited by the sockets it opens and by the processes it spawns.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use crate::{Error, Result};

const NETNS_DIR: &str = "/run/netns";

/// A named network namespace, removed on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    path: PathBuf,
}

impl Netns {
    /// Creates the namespace `/run/netns/<name>` with its loopback up.
    pub fn create(name: &str) -> Result<Self> {
        share_run_dir()?;
        let path = Path::new(NETNS_DIR).join(name);
        if path.exists() {
            return Err(Error::Setup(format!(
                "network namespace {name} already exists; remove it with `ip netns del {name}`"
            )));
        }
        File::create(&path).map_err(|e| Error::io(format!("create {}", path.display()), e))?;
        let target = path.clone();
        let made = thread::spawn(move || -> Result<()> {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::sys("unshare(CLONE_NEWNET)", e))?;
            nix::mount::mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| Error::sys("bind-mount the new network namespace", e))
        })
        .join()
        .map_err(|_| Error::Setup("namespace thread panicked".into()))?;
        let ns = Self {
            name: name.to_owned(),
            path,
        };
        if let Err(e) = made {
            drop(ns);
            return Err(e);
        }
        ns.block_on(|handle| async move { crate::link::set_up(&handle, "lo").await })?;
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a new thread that has entered this namespace.
    pub fn run<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        run_at(&self.path, f)
    }

    /// Runs an rtnetlink job inside this namespace on a private current-thread runtime.
    pub fn block_on<F, Fut, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce(rtnetlink::Handle) -> Fut + Send,
        Fut: std::future::Future<Output = Result<R>>,
        R: Send,
    {
        block_on_at(&self.path, f)
    }

    /// Runs a program inside this namespace and waits for it.
    pub fn output(&self, program: &str, args: &[&str]) -> Result<Output> {
        let mut cmd = Command::new(program);
        cmd.args(args);
        let out = self
            .run(move || cmd.output())?
            .map_err(|e| Error::io(format!("run {program}"), e))?;
        Ok(out)
    }

    /// Runs a program inside this namespace; its stdout, or an error carrying its stderr.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String> {
        let out = self.output(program, args)?;
        checked(program, args, out)
    }

    /// Starts a program inside this namespace, its output discarded.
    pub fn spawn(&self, cmd: Command) -> Result<Child> {
        let mut cmd = cmd;
        cmd.stdin(Stdio::null());
        let program = cmd.get_program().to_string_lossy().into_owned();
        self.run(move || cmd.spawn())?
            .map_err(|e| Error::io(format!("start {program}"), e))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove(&self.path);
    }
}

/// Makes `/run/netns` a shared mount point, once per process, exactly as `ip netns add` does.
///
/// `ip netns add` bind-mounts `/run/netns` onto itself the first time it finds it is not a mount
/// point. Namespace files mounted before that end up hidden under the new mount: they can no
/// longer be unmounted by path, and leak. Doing it first, before mounting anything, means a later
/// `ip netns add` (a test's oracle, a person at the shell) finds nothing left to do.
fn share_run_dir() -> Result<()> {
    static SHARED: OnceLock<Result<(), String>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let share = || {
                nix::mount::mount(
                    None::<&str>,
                    NETNS_DIR,
                    None::<&str>,
                    MsFlags::MS_SHARED | MsFlags::MS_REC,
                    None::<&str>,
                )
            };
            let failed = |what: &str, e: nix::Error| {
                format!("{what} {NETNS_DIR}: {e} (tests that use the testbed must run as root)")
            };
            fs::create_dir_all(NETNS_DIR).map_err(|e| format!("create {NETNS_DIR}: {e}"))?;
            match share() {
                Ok(()) => Ok(()),
                // Not a mount point yet.
                Err(nix::Error::EINVAL) => {
                    nix::mount::mount(
                        Some(NETNS_DIR),
                        NETNS_DIR,
                        None::<&str>,
                        MsFlags::MS_BIND | MsFlags::MS_REC,
                        None::<&str>,
                    )
                    .map_err(|e| failed("bind-mount", e))?;
                    share().map_err(|e| failed("make shared", e))
                }
                Err(e) => Err(failed("make shared", e)),
            }
        })
        .clone()
        .map_err(Error::Setup)
}

/// Unmounts and removes a namespace file; the namespace itself dies with its last user.
pub(crate) fn remove(path: &Path) {
    let _ = nix::mount::umount2(path, MntFlags::MNT_DETACH);
    let _ = fs::remove_file(path);
}

/// Runs `f` on a new thread that has entered the namespace at `path`.
pub(crate) fn run_at<F, R>(path: &Path, f: F) -> Result<R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    thread::scope(|s| {
        s.spawn(move || {
            enter(path)?;
            Ok(f())
        })
        .join()
        .map_err(|_| Error::Setup(format!("thread inside netns {} panicked", path.display())))?
    })
}

/// Runs an rtnetlink job inside the namespace at `path` on a private current-thread runtime.
pub(crate) fn block_on_at<F, Fut, R>(path: &Path, f: F) -> Result<R>
where
    F: FnOnce(rtnetlink::Handle) -> Fut + Send,
    Fut: std::future::Future<Output = Result<R>>,
    R: Send,
{
    run_at(path, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| Error::io("build a runtime for netlink", e))?;
        rt.block_on(async move {
            let (conn, handle, _) =
                rtnetlink::new_connection().map_err(|e| Error::io("open a netlink socket", e))?;
            let task = tokio::spawn(conn);
            let out = f(handle).await;
            task.abort();
            out
        })
    })?
}

/// Moves the calling thread into the namespace at `path`.
pub(crate) fn enter(path: &Path) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    nix::sched::setns(file, CloneFlags::CLONE_NEWNET)
        .map_err(|e| Error::sys("setns into the node's network namespace", e))
}

pub(crate) fn checked(program: &str, args: &[&str], out: Output) -> Result<String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            command: format!("{program} {}", args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}
