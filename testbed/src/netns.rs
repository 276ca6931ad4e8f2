//! A named network namespace owned by a test, made with `ovswire-netns` (so `ip netns exec`,
//! used by tests as an oracle, sees it too) and removed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::{Error, Result};

/// A named network namespace, removed on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    path: PathBuf,
}

impl Netns {
    /// Creates the namespace `/run/netns/<name>` with its loopback up.
    pub fn create(name: &str) -> Result<Self> {
        let path = ovswire_netns::create(name)?;
        Ok(Self {
            name: name.to_owned(),
            path,
        })
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
        Ok(ovswire_netns::run(&self.path, f)?)
    }

    /// Runs an rtnetlink job inside this namespace on a private current-thread runtime.
    pub fn block_on<F, Fut, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce(rtnetlink::Handle) -> Fut + Send,
        Fut: std::future::Future<Output = Result<R>>,
        R: Send,
    {
        ovswire_netns::block_on(&self.path, f)?
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

    /// Sends `count` raw broadcast frames of `len` bytes (EtherType 0x88b5, local experimental)
    /// out of interface `ifname`, at most `per_ms` a millisecond: the userspace datapath reads a
    /// veth through a packet socket, and a burst faster than it reads is lost there, before OVS
    /// or its counters see it. Uses Python's packet sockets.
    pub fn send_raw_frames(
        &self,
        ifname: &str,
        count: usize,
        len: usize,
        per_ms: usize,
    ) -> Result<()> {
        let per_ms = per_ms.max(1);
        let script = format!(
            "import socket, time\n\
             s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
             s.bind(('{ifname}', 0))\n\
             f = bytes.fromhex('ffffffffffff020000000001' '88b5') + bytes({len} - 14)\n\
             for i in range({count}):\n\
             \x20   s.send(f)\n\
             \x20   if i % {per_ms} == {per_ms} - 1: time.sleep(0.001)\n"
        );
        self.exec("python3", &["-c", &script])?;
        Ok(())
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
        // The namespace itself dies with its last user.
        let _ = ovswire_netns::delete(&self.name);
    }
}

pub(crate) fn checked(program: &str, args: &[&str], out: Output) -> Result<String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            command: abbreviated(&format!("{program} {}", args.join(" "))),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// A command line as shown in an error: long ones (thousands of ports in one `ovs-vsctl`) cut
/// to their first 200 characters, saying how much was left out.
fn abbreviated(line: &str) -> String {
    const SHOWN: usize = 200;
    match line.char_indices().nth(SHOWN) {
        Some((cut, _)) if line.len() > cut + 40 => {
            format!("{} … ({} more characters)", &line[..cut], line.len() - cut)
        }
        _ => line.to_owned(),
    }
}

#[cfg(test)]
mod abbreviation_tests {
    use super::abbreviated;

    #[test]
    fn long_command_lines_are_cut_in_errors() {
        assert_eq!(abbreviated("ovs-vsctl show"), "ovs-vsctl show");
        let long = format!("ovs-vsctl {}", "-- add-port ovsbr0 a0 ".repeat(500));
        let shown = abbreviated(&long);
        assert!(shown.len() < 260, "{shown}");
        assert!(
            shown.ends_with(&format!("({} more characters)", long.len() - 200)),
            "{shown}"
        );
        // Cut on a character boundary.
        assert!(abbreviated(&"é".repeat(300)).starts_with(&"é".repeat(200)));
    }
}
