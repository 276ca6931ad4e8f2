//! Processes a lab starts and stops: the agent, and ovswire's own OVS daemons.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Whether process `pid` exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    // EPERM: it exists, and belongs to someone else.
    if let Err(e) = kill(Pid::from_raw(pid), None)
        && e != nix::errno::Errno::EPERM
    {
        return false;
    }
    // A zombie still answers signal 0; its state letter says it is gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        != Some(true)
}

/// Stops process `pid` with SIGTERM, then SIGKILL after `grace`, and waits until it is gone.
pub fn terminate(pid: i32, name: &str, grace: Duration) -> Result<()> {
    if !alive(pid) {
        return Ok(());
    }
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while alive(pid) {
        if Instant::now() > deadline {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            std::thread::sleep(Duration::from_millis(100));
            if alive(pid) {
                bail!("{name} (pid {pid}) did not stop, even with SIGKILL");
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
