//! Named network namespaces the way iproute2 keeps them: a file under `/run/netns` with the
//! namespace bind-mounted onto it, so `ip netns exec <name> ...` works on ours and we on its.

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::thread;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use crate::enter::open_path;
use crate::{Error, Result};

/// Where named namespaces live.
pub const NETNS_DIR: &str = "/run/netns";

/// The longest file name Linux allows (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// Checks that `name` can be a file directly under [`NETNS_DIR`].
pub fn check_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name == "." || name == ".." {
        "it names a directory"
    } else if name.contains('/') {
        "it contains '/'"
    } else if name.contains('\0') {
        "it contains a NUL byte"
    } else if name.len() > NAME_MAX {
        "it is longer than 255 bytes"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// The path of the namespace `name`: `/run/netns/<name>`.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Whether `/run/netns/<name>` is a mounted network namespace (an unmounted leftover file is
/// not).
pub fn exists(name: &str) -> bool {
    check_name(name).is_ok() && inode(&path(name)).is_some()
}

/// The namespace inode behind a path, when a namespace is mounted there.
fn inode(path: &Path) -> Option<u64> {
    let meta = fs::metadata(path).ok()?;
    // An unmounted placeholder is an empty regular file on the /run file system; a mounted
    // namespace shows the nsfs device.
    let nsfs = fs::metadata("/proc/self/ns/net").ok()?.dev();
    (meta.dev() == nsfs).then_some(meta.ino())
}

/// Checks that `path` can be a pod's network namespace, as a container runtime gives it in
/// `CNI_NETNS`: a network namespace (the nsfs file of one, bound under `/run/netns` or a
/// process's `/proc/PID/ns/net`), and not the caller's own (for an agent on the host network,
/// the host's). Never blocks: a FIFO or a device is opened without waiting and refused.
pub fn check_pod_netns(path: &Path) -> Result<()> {
    if net_namespace(path)? {
        return Err(Error::NotPodNamespace {
            path: path.to_owned(),
            reason: "it is this agent's own network namespace (the host's, for an agent on the \
                     host network)",
        });
    }
    Ok(())
}

/// Checks that `path` is the caller's own network namespace: where a lab's host endpoints (a
/// veth end in the host, containerlab's `host:IFNAME`) go. Never blocks.
pub fn check_own_netns(path: &Path) -> Result<()> {
    if !net_namespace(path)? {
        return Err(Error::NotPodNamespace {
            path: path.to_owned(),
            reason: "a host endpoint goes into this agent's own network namespace, and this is \
                     another",
        });
    }
    Ok(())
}

/// Whether the network namespace at `path` is the caller's own; an error when `path` is not a
/// network namespace.
fn net_namespace(path: &Path) -> Result<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    let not = |reason| Error::NotPodNamespace {
        path: path.to_owned(),
        reason,
    };
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|cause| Error::Open {
            path: path.to_owned(),
            cause,
        })?;
    let on_nsfs = nix::sys::statfs::fstatfs(&file)
        .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::NSFS_MAGIC);
    if !on_nsfs {
        return Err(not("it is not a namespace file"));
    }
    // The kernel refuses to enter a namespace of another kind as a network namespace; a
    // thread of its own tries, and ends.
    let is_net = thread::scope(|s| {
        s.spawn(|| nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).is_ok())
            .join()
            .unwrap_or(false)
    });
    if !is_net {
        return Err(not("it is a namespace of another kind than network"));
    }
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
    let own = fs::metadata("/proc/thread-self/ns/net")
        .map_err(|e| Error::io("stat /proc/thread-self/ns/net", e))?;
    Ok((meta.dev(), meta.ino()) == (own.dev(), own.ino()))
}

/// Opens the namespace `name`, for `setns` or for creating an interface inside it.
pub fn open(name: &str) -> Result<File> {
    check_name(name)?;
    open_path(&path(name))
}

/// Creates the namespace `/run/netns/<name>` with its loopback up; its path. Fails if it
/// exists. Nothing is left behind on failure.
pub fn create(name: &str) -> Result<PathBuf> {
    check_name(name)?;
    share_run_dir()?;
    let target = path(name);
    // Atomic, so that of two creators of one name exactly one wins.
    File::create_new(&target).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Error::NamespaceExists {
            name: name.to_owned(),
        },
        _ => Error::io(format!("create {}", target.display()), e),
    })?;
    let made = bind_new_namespace(&target).and_then(|()| {
        crate::block_on(
            &target,
            |h| async move { crate::link::set_up(&h, "lo").await },
        )?
    });
    if let Err(e) = made {
        let _ = delete(name);
        return Err(e);
    }
    Ok(target)
}

/// Unshares a fresh namespace on a short-lived thread and bind-mounts it onto `target`, which
/// keeps it alive after the thread ends.
fn bind_new_namespace(target: &Path) -> Result<()> {
    let sys = |call| {
        move |cause| Error::Sys {
            call,
            path: target.to_owned(),
            cause,
        }
    };
    thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(sys("unshare(CLONE_NEWNET)"))?;
            nix::mount::mount(
                Some("/proc/thread-self/ns/net"),
                target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(sys("bind mount"))
        })
        .join()
        .map_err(|_| Error::Worker {
            path: target.to_owned(),
        })?
    })
}

/// Removes the namespace `name`: unmounts and deletes its file. The namespace itself dies with
/// its last process or socket (see [`kill_processes`]). Removing one that is not there is not an
/// error.
pub fn delete(name: &str) -> Result<()> {
    check_name(name)?;
    let target = path(name);
    if inode(&target).is_some() {
        nix::mount::umount2(&target, MntFlags::MNT_DETACH).map_err(|cause| Error::Sys {
            call: "umount",
            path: target.clone(),
            cause,
        })?;
    }
    match fs::remove_file(&target) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("remove {}", target.display()), e))
        }
        _ => Ok(()),
    }
}

/// SIGKILLs every process (but this one) living in the namespace `name`, so that the namespace
/// really goes away once deleted; how many were signalled.
pub fn kill_processes(name: &str) -> Result<usize> {
    check_name(name)?;
    let Some(ino) = inode(&path(name)) else {
        return Ok(0);
    };
    let procs = fs::read_dir("/proc").map_err(|e| Error::io("list /proc", e))?;
    let mut killed = 0;
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if u32::try_from(pid).is_ok_and(|p| p == std::process::id()) {
            continue;
        }
        if fs::metadata(entry.path().join("ns/net")).is_ok_and(|m| m.ino() == ino) {
            let killed_one = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            killed += usize::from(killed_one.is_ok());
        }
    }
    Ok(killed)
}

/// Makes `/run/netns` a shared mount point, once per process, exactly as `ip netns add` does.
///
/// `ip netns add` bind-mounts `/run/netns` onto itself the first time it finds it is not a mount
/// point. Namespace files mounted before that end up hidden under the new mount: they can no
/// longer be reached or unmounted by path, and leak. Doing it first, before mounting anything,
/// means a later `ip netns add` (a test's oracle, a person at the shell) finds nothing to do.
fn share_run_dir() -> Result<()> {
    static SHARED: OnceLock<Result<(), (&'static str, nix::Error)>> = OnceLock::new();
    let dir = Path::new(NETNS_DIR);
    let done = SHARED.get_or_init(|| {
        fs::create_dir_all(dir).map_err(|e| {
            let errno = e.raw_os_error().unwrap_or(libc::EIO);
            ("mkdir", nix::Error::from_raw(errno))
        })?;
        let share = || {
            nix::mount::mount(
                None::<&str>,
                dir,
                None::<&str>,
                MsFlags::MS_SHARED | MsFlags::MS_REC,
                None::<&str>,
            )
        };
        match share() {
            Ok(()) => Ok(()),
            // Not a mount point yet.
            Err(nix::Error::EINVAL) => {
                nix::mount::mount(
                    Some(dir),
                    dir,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(|e| ("bind mount", e))?;
                share().map_err(|e| ("make shared", e))
            }
            Err(e) => Err(("make shared", e)),
        }
    });
    done.map_err(|(call, cause)| Error::Sys {
        call,
        path: dir.to_owned(),
        cause,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_files_in_run_netns_pass() {
        for ok in ["lab-r1", "owt123-0-node", "a", &"x".repeat(255)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn names_that_escape_or_cannot_be_files_fail() {
        for bad in ["", ".", "..", "a/b", "../etc", "a\0b", &"x".repeat(256)] {
            let err = check_name(bad).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidName { name, .. } if name == bad),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn the_path_of_a_name_is_under_run_netns() {
        assert_eq!(path("lab-r1"), Path::new("/run/netns/lab-r1"));
    }

    #[test]
    fn what_cannot_be_a_pod_s_network_namespace_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, "").unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let not_ns = [
            file.as_path(),
            dir.path(),
            fifo.as_path(),
            Path::new("/dev/null"),
        ];
        for path in not_ns {
            let e = check_pod_netns(path).unwrap_err();
            assert!(
                e.to_string().contains("not a namespace file"),
                "{}: {e}",
                path.display()
            );
        }
        let mnt = check_pod_netns(Path::new("/proc/self/ns/mnt")).unwrap_err();
        assert!(mnt.to_string().contains("another kind"), "{mnt}");
        let own = check_pod_netns(Path::new("/proc/self/ns/net")).unwrap_err();
        assert!(check_own_netns(Path::new("/proc/self/ns/net")).is_ok());
        assert!(check_own_netns(Path::new("/proc/self/ns/mnt")).is_err());
        assert!(own.to_string().contains("own network namespace"), "{own}");
        let missing = check_pod_netns(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(missing, Error::Open { .. }), "{missing}");
    }

    #[test]
    fn an_invalid_name_never_exists() {
        assert!(!exists("../../proc/self/ns/net"));
    }
}
