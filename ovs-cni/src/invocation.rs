//! Running a CNI plugin the way a container runtime does.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};

use serde_json::Value;

use crate::spec::{CniError, Command, cni_args};

/// What can go wrong running a plugin with [`Invocation::run`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The plugin could not be started.
    #[error(
        "cannot run the CNI plugin {}: {error}; check the path and that the file is executable",
        plugin.display()
    )]
    Spawn {
        /// The plugin's path.
        plugin: PathBuf,
        /// Why it did not start.
        error: io::Error,
    },
    /// The configuration could not be written to the plugin, or its output not collected.
    #[error(
        "CNI {command} through {}: cannot {what}: {error}; the node may be out of processes or \
         file descriptors, retry",
        plugin.display()
    )]
    Io {
        /// The plugin's path.
        plugin: PathBuf,
        /// The command it ran.
        command: Command,
        /// What failed, such as "collect its output".
        what: &'static str,
        /// Why.
        error: io::Error,
    },
    /// The plugin exited with a failure status.
    #[error("{}", failed(plugin, *command, *status, error.as_ref(), stderr))]
    Failed {
        /// The plugin's path.
        plugin: PathBuf,
        /// The command it ran.
        command: Command,
        /// How it exited.
        status: ExitStatus,
        /// The CNI error it printed on stdout; `None` when stdout held none.
        error: Option<CniError>,
        /// What it logged on stderr.
        stderr: String,
    },
    /// The plugin succeeded but printed something that is not JSON.
    #[error(
        "CNI {command} through {} succeeded but printed something that is not JSON ({why}): \
         {stdout:?}; the plugin breaks the CNI contract (stdout holds the result only), install \
         a matching build",
        plugin.display()
    )]
    Output {
        /// The plugin's path.
        plugin: PathBuf,
        /// The command it ran.
        command: Command,
        /// Why it is not JSON.
        why: String,
        /// What it printed.
        stdout: String,
    },
}

fn failed(
    plugin: &Path,
    command: Command,
    status: ExitStatus,
    error: Option<&CniError>,
    stderr: &str,
) -> String {
    let head = format!("CNI {command} through {} failed", plugin.display());
    match error {
        Some(e) if e.details.is_empty() => format!("{head} with code {}: {}", e.code, e.msg),
        Some(e) => format!("{head} with code {}: {}; {}", e.code, e.msg, e.details),
        None => format!(
            "{head} ({status}) without printing a CNI error, so it breaks the CNI contract; \
             its stderr: {stderr:?}"
        ),
    }
}

/// The result of running a plugin.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One run of a CNI plugin as a runtime makes it: the `CNI_*` variables in an otherwise empty
/// environment, the network configuration on stdin, the result (or a CNI error) on stdout and
/// the outcome in the exit status.
///
/// ```no_run
/// use ovswire_cni::Invocation;
/// use ovswire_cni::spec::{Command, K8S_POD_NAME, K8S_POD_NAMESPACE};
///
/// let result = Invocation::new("/opt/cni/bin/ovswire-cni", Command::Add)
///     .container_id("lab1-r1")
///     .netns("/run/netns/lab1-r1")
///     .ifname("eth1")
///     .args(&[(K8S_POD_NAMESPACE, "lab1"), (K8S_POD_NAME, "r1")])
///     .config(r#"{"cniVersion":"1.0.0","name":"ovswire","type":"ovswire-cni"}"#)
///     .run()?;
/// println!("{}", result.unwrap_or_default());
/// # Ok::<(), ovswire_cni::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Invocation {
    plugin: PathBuf,
    command: Command,
    container_id: String,
    netns: PathBuf,
    ifname: String,
    args: String,
    config: Vec<u8>,
    state_dir: Option<PathBuf>,
}

impl Invocation {
    /// A run of the plugin at `plugin` for `command`; every other variable empty, stdin empty.
    /// `CNI_PATH` is the plugin's directory.
    pub fn new(plugin: impl Into<PathBuf>, command: Command) -> Self {
        Self {
            plugin: plugin.into(),
            command,
            container_id: String::new(),
            netns: PathBuf::new(),
            ifname: String::new(),
            args: String::new(),
            config: Vec::new(),
            state_dir: None,
        }
    }

    /// `CNI_CONTAINERID`.
    pub fn container_id(mut self, id: impl Into<String>) -> Self {
        self.container_id = id.into();
        self
    }

    /// `CNI_NETNS`: the path of the container's network namespace.
    pub fn netns(mut self, path: impl Into<PathBuf>) -> Self {
        self.netns = path.into();
        self
    }

    /// `CNI_IFNAME`.
    pub fn ifname(mut self, name: impl Into<String>) -> Self {
        self.ifname = name.into();
        self
    }

    /// `CNI_ARGS`: `IgnoreUnknown=1` and then `pairs`, the way kubelet writes it, so plugins
    /// that do not know a key still run.
    pub fn args(mut self, pairs: &[(&str, &str)]) -> Self {
        self.args = cni_args(&[&[("IgnoreUnknown", "1")], pairs].concat());
        self
    }

    /// ovswire's state directory ([`crate::STATE_DIR_VAR`]), when it is not `/run/ovswire`: the
    /// plugin dials an agent's socket only under it (or `/run/ovswire`).
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// The network configuration JSON, written to the plugin's stdin byte for byte.
    pub fn config(mut self, json: impl Into<Vec<u8>>) -> Self {
        self.config = json.into();
        self
    }

    /// Runs the plugin and waits for it: the result JSON it printed, `None` when it printed
    /// nothing (DEL, CHECK, STATUS and GC print nothing on success).
    pub fn run(self) -> Result<Option<Value>> {
        let process = std::process::Command::new(&self.plugin);
        self.run_as(process)
    }

    /// Runs `process` (the plugin, or in tests a stand-in) with this invocation's environment
    /// and stdin.
    fn run_as(self, mut process: std::process::Command) -> Result<Option<Value>> {
        let cni_path = self.plugin.parent().unwrap_or(Path::new("/"));
        process
            .env_clear()
            .env("CNI_COMMAND", self.command.as_str())
            .env("CNI_CONTAINERID", &self.container_id)
            .env("CNI_NETNS", &self.netns)
            .env("CNI_IFNAME", &self.ifname)
            .env("CNI_ARGS", &self.args)
            .env("CNI_PATH", cni_path)
            .envs(self.state_dir.iter().map(|d| (crate::STATE_DIR_VAR, d)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = process.spawn().map_err(|error| Error::Spawn {
            plugin: self.plugin.clone(),
            error,
        })?;
        let io = |what, error| Error::Io {
            plugin: self.plugin.clone(),
            command: self.command,
            what,
            error,
        };
        if let Some(mut stdin) = child.stdin.take()
            && let Err(e) = stdin.write_all(&self.config)
            // A plugin that fails early may exit before reading stdin; its output says why.
            && e.kind() != io::ErrorKind::BrokenPipe
        {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io("write the network configuration to its stdin", e));
        }
        let output = child
            .wait_with_output()
            .map_err(|e| io("collect its output", e))?;
        self.outcome(output)
    }

    fn outcome(self, output: Output) -> Result<Option<Value>> {
        let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let json = (!stdout.is_empty()).then(|| serde_json::from_str::<Value>(&stdout));
        if !output.status.success() {
            return Err(Error::Failed {
                error: json
                    .and_then(|j| j.ok())
                    .as_ref()
                    .and_then(CniError::from_json),
                plugin: self.plugin,
                command: self.command,
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        json.transpose().map_err(|e| Error::Output {
            plugin: self.plugin,
            command: self.command,
            why: e.to_string(),
            stdout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Code, K8S_POD_NAME, K8S_POD_NAMESPACE};

    /// `/bin/sh -c script` run as if it were the plugin at `/opt/cni/bin/fake`.
    fn run_sh(inv: Invocation, script: &str) -> Result<Option<Value>> {
        let mut sh = std::process::Command::new("/bin/sh");
        sh.args(["-c", script]);
        inv.run_as(sh)
    }

    fn add() -> Invocation {
        Invocation::new("/opt/cni/bin/fake", Command::Add)
            .container_id("lab-r1")
            .netns("/run/netns/lab-r1")
            .ifname("eth1")
            .args(&[(K8S_POD_NAMESPACE, "lab"), (K8S_POD_NAME, "r1")])
            .config(r#"{"cniVersion":"1.0.0","name":"ovswire"}"#)
    }

    #[test]
    fn the_environment_is_exactly_the_cni_variables() {
        let printed = run_sh(
            add(),
            r#"printf '{"env":"%s","stdin":%s}' "$(env | sort | tr '\n' '|')" "$(cat)""#,
        )
        .unwrap()
        .unwrap();
        let mut env: Vec<&str> = printed["env"].as_str().unwrap().split('|').collect();
        // The shell itself sets a few variables of its own.
        env.retain(|v| {
            !v.is_empty()
                && !["PWD=", "OLDPWD=", "SHLVL=", "_="]
                    .iter()
                    .any(|s| v.starts_with(s))
        });
        assert_eq!(
            env,
            [
                "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=lab;K8S_POD_NAME=r1",
                "CNI_COMMAND=ADD",
                "CNI_CONTAINERID=lab-r1",
                "CNI_IFNAME=eth1",
                "CNI_NETNS=/run/netns/lab-r1",
                "CNI_PATH=/opt/cni/bin",
            ]
        );
        assert_eq!(
            printed["stdin"],
            serde_json::json!({"cniVersion": "1.0.0", "name": "ovswire"})
        );
    }

    #[test]
    fn silence_on_success_is_no_result() {
        let del = Invocation::new("/opt/cni/bin/fake", Command::Del);
        assert_eq!(run_sh(del, "cat >/dev/null").unwrap(), None);
    }

    #[test]
    fn a_failure_carries_the_spec_error_and_stderr() {
        let err = run_sh(
            add(),
            r#"echo '{"cniVersion":"1.0.0","code":11,"msg":"agent down","details":"start it"}'
               echo 'ovswire-cni: ADD failed' >&2; exit 11"#,
        )
        .unwrap_err();
        let Error::Failed {
            error: Some(e),
            status,
            stderr,
            command,
            ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(
            (e.code, e.msg.as_str(), e.details.as_str()),
            (Code::TryAgainLater, "agent down", "start it")
        );
        assert_eq!((status.code(), *command), (Some(11), Command::Add));
        assert_eq!(stderr, "ovswire-cni: ADD failed");
        assert_eq!(
            err.to_string(),
            "CNI ADD through /opt/cni/bin/fake failed with code 11: agent down; start it"
        );
    }

    #[test]
    fn a_failure_without_an_error_object_shows_stderr() {
        let err = run_sh(add(), "echo garbage; echo 'it broke' >&2; exit 3").unwrap_err();
        assert!(
            matches!(&err, Error::Failed { error: None, stderr, .. } if stderr == "it broke"),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("without printing a CNI error") && msg.contains("it broke"),
            "{msg}"
        );
    }

    #[test]
    fn success_that_is_not_json_breaks_the_contract() {
        let err = run_sh(add(), "cat >/dev/null; echo done").unwrap_err();
        assert!(
            matches!(&err, Error::Output { stdout, .. } if stdout == "done"),
            "{err:?}"
        );
    }

    #[test]
    fn a_plugin_that_does_not_read_stdin_is_still_heard() {
        let big = add().config(vec![b' '; 1 << 20]);
        let err = run_sh(big, r#"echo '{"code":4,"msg":"no"}'; exit 4"#).unwrap_err();
        assert!(
            matches!(&err, Error::Failed { error: Some(e), .. } if e.code == Code::InvalidEnv),
            "{err:?}"
        );
    }

    #[test]
    fn a_missing_plugin_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("ovswire-cni");
        let err = Invocation::new(&missing, Command::Version)
            .run()
            .unwrap_err();
        assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );
    }
}
