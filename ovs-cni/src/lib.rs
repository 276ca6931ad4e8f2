//! `ovswire-cni`: the CNI plugin that Multus (or any CNI runtime) invokes, and the CNI
//! contract it shares with the agent and with whoever runs it.
//!
//! It stays thin on purpose: it forwards each CNI request to the ovswire agent on the same node
//! over a root-only unix socket and prints the spec-correct result. The agent does the wiring,
//! so the CNI call never waits for it, and the agent makes every CNI decision; the plugin only
//! answers VERSION itself and reports, with a CNI error, when it cannot reach the agent.
//!
//! ```no_run
//! // What `main` does: environment and stdin in, stdout and an exit code out.
//! let outcome = ovswire_cni::run(
//!     &ovswire_cni::ProcessEnv,
//!     &mut std::io::stdin().lock(),
//!     ovswire_cni::DEADLINE,
//! );
//! print!("{}", String::from_utf8_lossy(&outcome.stdout));
//! std::process::exit(outcome.exit_code.into());
//! ```
//!
//! The agent's socket is the network configuration's `"socket"` field, [`DEFAULT_SOCKET`]
//! when absent. When the agent cannot be reached (not running, socket missing, no answer
//! within [`DEADLINE`]) ADD, CHECK, DEL and GC fail with code 11, "try again later", and STATUS
//! with code 50. DEL fails too rather than claiming success: with the agent down, nobody can
//! tell whether the interface and its OVS port are gone, and a DEL reported as done is never
//! retried, which would leak the port. The runtime retries the DEL once the agent is back.
//!
//! The library also holds what the other side of the contract needs:
//!
//! - [`spec`]: the CNI commands, spec versions, error codes and error object, used by the
//!   plugin and by the agent (`ovswire-agent`'s `cni` module), so each is written once. Over
//!   gRPC the RPC (`Add`, `Del`, ...) names the command; the request carries the rest.
//! - [`Invocation`]: runs a CNI plugin the way a runtime does, for the `ovswire` CLI's local
//!   labs and the end-to-end tests and benchmarks.

use std::error::Error as _;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ovswire_proto::v1 as proto;
use ovswire_proto::v1::cni_client::CniClient;
use ovswire_proto::v1::{CniRequest, CniResponse};
use serde_json::{Map, Value, json};

mod invocation;
pub mod spec;

pub use invocation::{Error, Invocation, Result};

use spec::{CniError, Code, Command, Version};

/// Where the agent listens unless the network configuration says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/ovswire/cni.sock";
/// How long one invocation may take, connecting included.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// How long connecting may take; a missing or dead socket fails at once anyway.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the plugin reads its `CNI_*` variables from.
pub trait Environment {
    /// The variable `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
    }
}

/// What one invocation produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The result or error JSON, for stdout.
    pub stdout: Vec<u8>,
    /// A log line for stderr (empty on success).
    pub stderr: String,
    /// 0 on success, else the CNI error code.
    pub exit_code: u8,
}

/// Everything that can go wrong in the plugin itself; [`Failure::to_error`] maps each to a
/// CNI error.
#[derive(Debug)]
enum Failure {
    /// `CNI_COMMAND` is missing or unknown.
    Command(Option<String>),
    /// stdin could not be read.
    Stdin(io::Error),
    /// The async runtime could not be started.
    Runtime(io::Error),
    /// stdin is not a JSON object.
    Decode(String),
    /// The `socket` field is not a string.
    Socket(Value),
    /// The `socket` field names a path outside ovswire's directories.
    SocketOutside {
        socket: PathBuf,
        allowed: Vec<PathBuf>,
    },
    /// The agent's socket could not be connected.
    Unreachable { socket: PathBuf, why: String },
    /// The agent did not answer within the deadline.
    Timeout { socket: PathBuf, after: Duration },
    /// The agent answered with a gRPC error.
    Grpc(tonic::Status),
    /// The agent answered ADD with neither a result nor an error.
    EmptyResult,
    /// The agent answered with a CNI error.
    Agent(proto::CniError),
}

impl Failure {
    /// The one place a failure becomes a CNI error code and message.
    fn to_error(&self, command: Option<Command>) -> CniError {
        let down_code = if command == Some(Command::Status) {
            Code::Unavailable
        } else {
            Code::TryAgainLater
        };
        let down_details = "start ovswire-agent on this node (or wait for it to come back); \
                            the runtime retries";
        let mismatch = "install the ovswire-cni that matches the running ovswire-agent";
        let set_command = format!("set CNI_COMMAND to {}", Command::choices());
        match self {
            Self::Command(None) => {
                CniError::new(Code::InvalidEnv, "CNI_COMMAND is missing", set_command)
            }
            Self::Command(Some(c)) => CniError::new(
                Code::InvalidEnv,
                format!("CNI_COMMAND {c:?} is unknown"),
                set_command,
            ),
            Self::Stdin(err) => CniError::new(
                Code::Io,
                format!("cannot read the network configuration from stdin: {err}"),
                "the runtime must write the network configuration to the plugin's stdin",
            ),
            Self::Runtime(err) => CniError::new(
                Code::Io,
                format!("cannot start the plugin's async runtime: {err}"),
                "the node is out of resources (threads, file descriptors); retry",
            ),
            Self::Decode(why) => CniError::new(
                Code::Decode,
                format!("the network configuration on stdin is not a JSON object: {why}"),
                "fix the JSON of the network configuration (the NetworkAttachmentDefinition's \
                 spec.config)",
            ),
            Self::Socket(v) => CniError::new(
                Code::InvalidConfig,
                format!("socket must be a string, not {v}"),
                format!(
                    "set \"socket\" to the path of the agent's CNI socket, or leave it out for \
                     {DEFAULT_SOCKET}"
                ),
            ),
            Self::SocketOutside { socket, allowed } => CniError::new(
                Code::InvalidConfig,
                format!(
                    "socket {} is not an ovswire agent's: only sockets under {} are dialled",
                    socket.display(),
                    allowed
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
                format!(
                    "leave \"socket\" out for {DEFAULT_SOCKET}, or name the socket of an agent \
                     under those directories ({STATE_DIR_VAR} in the runtime's environment adds \
                     one)"
                ),
            ),
            Self::Unreachable { socket, why } => CniError::new(
                down_code,
                format!("cannot reach ovswire-agent at {}: {why}", socket.display()),
                down_details,
            ),
            Self::Timeout { socket, after } => CniError::new(
                down_code,
                format!(
                    "ovswire-agent at {} did not answer within {:.1} s",
                    socket.display(),
                    after.as_secs_f64()
                ),
                "the agent is overloaded or stuck; see its log on this node; the runtime retries",
            ),
            Self::Grpc(status) if status.code() == tonic::Code::Unavailable => CniError::new(
                down_code,
                format!("ovswire-agent is unavailable: {}", status.message()),
                down_details,
            ),
            Self::Grpc(status) => CniError::new(
                Code::AgentProtocol,
                format!(
                    "ovswire-agent answered with gRPC error {:?}: {}",
                    status.code(),
                    status.message()
                ),
                mismatch,
            ),
            Self::EmptyResult => CniError::new(
                Code::AgentProtocol,
                "ovswire-agent answered ADD without a result",
                mismatch,
            ),
            Self::Agent(err) if err.code == 0 => CniError::new(
                Code::AgentProtocol,
                format!("ovswire-agent failed without an error code: {}", err.msg),
                mismatch,
            ),
            Self::Agent(err) => CniError::from(err.clone()),
        }
    }
}

/// The agent's CNI errors travel in the gRPC answer as the spec's three fields.
impl From<CniError> for proto::CniError {
    fn from(e: CniError) -> Self {
        Self {
            code: e.code.into(),
            msg: e.msg,
            details: e.details,
        }
    }
}

impl From<proto::CniError> for CniError {
    fn from(e: proto::CniError) -> Self {
        Self::new(e.code.into(), e.msg, e.details)
    }
}

/// The few fields the plugin reads from the network configuration.
#[derive(Debug, Default)]
struct Peek {
    /// `cniVersion`, if it is one ovswire speaks.
    version: Option<Version>,
    /// The parsed object, if stdin was one.
    conf: Option<Map<String, Value>>,
    /// Why stdin is not a JSON object.
    error: Option<String>,
}

impl Peek {
    fn new(input: &[u8]) -> Self {
        match serde_json::from_slice::<Value>(input) {
            Ok(Value::Object(conf)) => Self {
                version: conf
                    .get("cniVersion")
                    .and_then(Value::as_str)
                    .and_then(Version::parse),
                conf: Some(conf),
                error: None,
            },
            Ok(other) => Self {
                error: Some(format!("it is {other}")),
                ..Self::default()
            },
            Err(e) => Self {
                error: Some(e.to_string()),
                ..Self::default()
            },
        }
    }

    fn socket(&self, env: &impl Environment) -> Result<PathBuf, Failure> {
        let conf = self
            .conf
            .as_ref()
            .ok_or_else(|| Failure::Decode(self.error.clone().unwrap_or_default()))?;
        let socket = match conf.get("socket") {
            None | Some(Value::Null) => PathBuf::from(DEFAULT_SOCKET),
            Some(Value::String(s)) if !s.is_empty() => PathBuf::from(s),
            Some(other) => return Err(Failure::Socket(other.clone())),
        };
        check_socket(&socket, env)?;
        Ok(socket)
    }
}

/// The variable naming ovswire's state directory (a local lab's sockets are under it), where
/// the runtime sets it; `/run/ovswire` otherwise.
pub const STATE_DIR_VAR: &str = "OVSWIRE_STATE_DIR";

/// The plugin runs as root and dials whatever `socket` says, and a network configuration can
/// come from anyone allowed to write a NetworkAttachmentDefinition: so it only dials a socket
/// under ovswire's own directories, symbolic links resolved.
fn check_socket(socket: &Path, env: &impl Environment) -> Result<(), Failure> {
    let mut allowed = vec![
        PathBuf::from("/run/ovswire"),
        PathBuf::from("/var/run/ovswire"),
    ];
    if let Some(dir) = env
        .var(STATE_DIR_VAR)
        .filter(|d| Path::new(d).is_absolute())
    {
        allowed.push(PathBuf::from(dir));
    }
    // Links resolved as far as the path exists; a socket (or directory) that is not there is
    // reported as unreachable when dialled, so then the path as written is checked.
    let resolve = |p: &Path| -> Option<PathBuf> {
        p.canonicalize()
            .ok()
            .or_else(|| {
                let dir = p.parent()?.canonicalize().ok()?;
                Some(dir.join(p.file_name()?))
            })
            .or_else(|| {
                let plain = p.is_absolute()
                    && p.components()
                        .all(|c| !matches!(c, std::path::Component::ParentDir));
                plain.then(|| p.to_owned())
            })
    };
    let inside = resolve(socket).is_some_and(|real| {
        allowed
            .iter()
            .filter_map(|dir| resolve(dir))
            .any(|dir| real.starts_with(dir))
    });
    if inside {
        Ok(())
    } else {
        Err(Failure::SocketOutside {
            socket: socket.to_owned(),
            allowed,
        })
    }
}

/// Runs one CNI invocation: reads `CNI_*` from `env` and the configuration from `stdin`,
/// asks the agent (giving up after `deadline`) and returns what to print and the exit code.
pub fn run(env: &impl Environment, stdin: &mut impl Read, deadline: Duration) -> Outcome {
    let raw_command = env.var("CNI_COMMAND").filter(|c| !c.is_empty());
    let command = raw_command.as_deref().and_then(Command::parse);
    let mut input = Vec::new();
    let read = stdin.read_to_end(&mut input);
    let peek = Peek::new(&input);
    let version = peek.version.unwrap_or(Version::NEWEST);
    let answer = match (command, read) {
        (None, _) => Err(Failure::Command(raw_command.clone())),
        (Some(Command::Version), _) => Ok(version_info(version)),
        (Some(_), Err(e)) => Err(Failure::Stdin(e)),
        (Some(command), Ok(_)) => forward(env, command, input, &peek, deadline),
    };
    match answer {
        Ok(stdout) => Outcome {
            stdout,
            stderr: String::new(),
            exit_code: 0,
        },
        Err(failure) => {
            let err = failure.to_error(command);
            let name = raw_command.as_deref().unwrap_or("(no CNI_COMMAND)");
            Outcome {
                stdout: format!("{}\n", err.to_json(version)).into_bytes(),
                stderr: format!(
                    "ovswire-cni: {name} failed with code {}: {}",
                    err.code, err.msg
                ),
                exit_code: u8::try_from(u32::from(err.code))
                    .ok()
                    .filter(|c| *c != 0)
                    .unwrap_or(1),
            }
        }
    }
}

fn version_info(version: Version) -> Vec<u8> {
    let info = json!({
        "cniVersion": version.as_str(),
        "supportedVersions": Version::ALL.map(Version::as_str),
    });
    format!("{info}\n").into_bytes()
}

fn forward(
    env: &impl Environment,
    command: Command,
    network_config: Vec<u8>,
    peek: &Peek,
    deadline: Duration,
) -> Result<Vec<u8>, Failure> {
    let socket = peek.socket(env)?;
    let var = |name: &str| env.var(name).unwrap_or_default();
    let request = CniRequest {
        container_id: var("CNI_CONTAINERID"),
        netns: var("CNI_NETNS"),
        ifname: var("CNI_IFNAME"),
        args: var("CNI_ARGS"),
        path: var("CNI_PATH"),
        network_config,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::Runtime)?;
    let call = call(socket.clone(), command, request);
    let response = runtime
        .block_on(async { tokio::time::timeout(deadline, call).await })
        .map_err(|_| Failure::Timeout {
            socket,
            after: deadline,
        })??;
    match response.error {
        Some(err) => Err(Failure::Agent(err)),
        None if command == Command::Add && response.result.is_empty() => Err(Failure::EmptyResult),
        None => Ok(response.result),
    }
}

/// Sends `request` to the agent's RPC for `command`: the RPC names the command, the request
/// carries the runtime's variables and configuration.
async fn call(
    socket: PathBuf,
    command: Command,
    request: CniRequest,
) -> Result<CniResponse, Failure> {
    let channel = ovswire_proto::unix_channel(&socket, CONNECT_TIMEOUT)
        .await
        .map_err(|e| Failure::Unreachable {
            socket,
            why: chain(&e),
        })?;
    let mut client = CniClient::new(channel);
    let response = match command {
        Command::Add => client.add(request).await,
        Command::Del => client.del(request).await,
        Command::Check => client.check(request).await,
        Command::Status => client.status(request).await,
        Command::Gc => client.gc(request).await,
        // `run` answers VERSION itself; the agent has no RPC for it.
        Command::Version => Err(tonic::Status::unimplemented(
            "the agent has no VERSION RPC; the plugin answers VERSION",
        )),
    };
    response
        .map(tonic::Response::into_inner)
        .map_err(Failure::Grpc)
}

/// An error and its causes, innermost last.
fn chain(e: &tonic::transport::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_msg = s.to_string();
        if !msg.contains(&s_msg) {
            msg = format!("{msg}: {s_msg}");
        }
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests;
