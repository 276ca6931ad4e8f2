//! Finding and reaping what testbeds leave behind.
//!
//! Namespaces (nodes, pods, underlay switches), OVS daemons and node directories all carry the
//! test process id in their names. Veths always live inside those namespaces (underlay veths
//! are created with both ends in place) and vanish with them.
//!
//! The CLI tests' labs (names like `t12345c0`) leave node namespaces, containers and management
//! networks if they leak; [`leftovers`] lists those too, without reaping them.
//!
//! Drop cleans up after a passing or panicking test; a test process killed outright cannot, so
//! the next testbed reaps whatever belongs to a process id that is no longer alive.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Once;

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::{DIR_PREFIX, PREFIX, underlay};

/// Everything testbeds made that still exists: namespaces, daemons and directories.
pub fn leftovers() -> Vec<String> {
    let mut found: Vec<String> = namespaces(false)
        .into_iter()
        .map(|p| {
            if underlay::is_switch(&p) {
                format!("underlay switch namespace {} (with its veths)", p.display())
            } else {
                format!("network namespace {}", p.display())
            }
        })
        .collect();
    found.extend(
        dirs(false)
            .into_iter()
            .map(|p| format!("directory {}", p.display())),
    );
    found.extend(
        daemons(false)
            .into_iter()
            .map(|(pid, cmd)| format!("process {pid}: {cmd}")),
    );
    found.extend(lab_leftovers());
    found
}

/// Whether `name` is a lab name the CLI tests make: `t`, digits (the test process id), a
/// lower-case tag and a counter, like `t12345c0`.
fn is_test_lab(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('t') else {
        return false;
    };
    let after_pid = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    let after_tag = after_pid.trim_start_matches(|c: char| c.is_ascii_lowercase());
    after_pid.len() < rest.len()
        && after_tag.len() < after_pid.len()
        && !after_tag.is_empty()
        && after_tag.chars().all(|c| c.is_ascii_digit())
}

/// What the CLI tests' labs left: node namespaces (`<lab>-<node>`), and the containers and
/// management networks the container engine holds for them (asked through its command-line
/// tool, when one is installed).
fn lab_leftovers() -> Vec<String> {
    let mut found: Vec<String> = entries(Path::new(ovswire_netns::NETNS_DIR))
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .filter(|n| n.split_once('-').is_some_and(|(lab, _)| is_test_lab(lab)))
        .map(|n| format!("lab node namespace {n}"))
        .collect();
    let engine = ["podman", "docker"].into_iter().find(|cli| {
        std::process::Command::new(cli)
            .arg("--version")
            .output()
            .is_ok()
    });
    let Some(engine) = engine else {
        return found;
    };
    let list = |args: &[&str]| -> Vec<String> {
        std::process::Command::new(engine)
            .args(args)
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let labelled = "{{.Names}} {{index .Labels \"dev.ovswire.lab\"}}";
    for line in list(&[
        "ps",
        "-a",
        "--filter",
        "label=dev.ovswire.lab",
        "--format",
        labelled,
    ]) {
        if let Some((name, lab)) = line.split_once(' ')
            && is_test_lab(lab.trim())
        {
            found.push(format!("container {name} of test lab {}", lab.trim()));
        }
    }
    for name in list(&["network", "ls", "--format", "{{.Name}}"]) {
        if name
            .strip_prefix("ovswire-")
            .is_some_and(|lab| is_test_lab(lab.trim()))
        {
            found.push(format!("network {name}"));
        }
    }
    found
}

/// Removes what testbeds of dead test processes left behind; returns how many items it removed.
pub fn reap_stale() -> usize {
    let mut n = 0;
    for (pid, _) in daemons(true) {
        let _ = signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        n += 1;
    }
    for path in namespaces(true) {
        if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            let _ = ovswire_netns::delete(name);
        }
        n += 1;
    }
    for dir in dirs(true) {
        let _ = fs::remove_dir_all(&dir);
        n += 1;
    }
    n
}

pub(crate) fn reap_stale_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        reap_stale();
    });
}

/// The owning test process of a name like `owt1234-...` or `ovswire-testbed-1234-...`.
fn owner(name: &str, prefix: &str) -> Option<i32> {
    name.strip_prefix(prefix)?.split('-').next()?.parse().ok()
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn keep(owner: Option<i32>, only_dead: bool) -> bool {
    match owner {
        None => false,
        Some(pid) => !only_dead || !alive(pid),
    }
}

fn namespaces(only_dead: bool) -> Vec<PathBuf> {
    entries(Path::new(ovswire_netns::NETNS_DIR))
        .filter(|p| keep(file_owner(p, PREFIX), only_dead))
        .collect()
}

fn dirs(only_dead: bool) -> Vec<PathBuf> {
    entries(&std::env::temp_dir())
        .filter(|p| keep(file_owner(p, DIR_PREFIX), only_dead))
        .collect()
}

/// OVS daemons whose command line points into a testbed directory.
fn daemons(only_dead: bool) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for entry in entries(Path::new("/proc")) {
        let Some(pid) = entry
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        let Ok(raw) = fs::read(entry.join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        if !cmd.starts_with("ovs") {
            continue;
        }
        let Some(at) = cmd.find(DIR_PREFIX) else {
            continue;
        };
        if keep(owner(&cmd[at..], DIR_PREFIX), only_dead) {
            out.push((pid, cmd.trim().to_owned()));
        }
    }
    out
}

fn file_owner(path: &Path, prefix: &str) -> Option<i32> {
    owner(path.file_name()?.to_str()?, prefix)
}

fn entries(dir: &Path) -> impl Iterator<Item = PathBuf> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
}

#[cfg(test)]
mod tests {
    use super::is_test_lab;

    #[test]
    fn test_lab_names_are_recognised() {
        for yes in ["t12345c0", "t1a1", "t99999frr12"] {
            assert!(is_test_lab(yes), "{yes}");
        }
        for no in ["frr-clos", "t12345", "tc0", "t123c", "clos", "t12c0x"] {
            assert!(!is_test_lab(no), "{no}");
        }
    }
}
