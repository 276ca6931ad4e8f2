//! `ovswire-cni`: the CNI plugin that Multus (or any CNI runtime) invokes.
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

use std::error::Error as _;
use std::fmt;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use ovswire_proto::v1::cni_client::CniClient;
use ovswire_proto::v1::{CniRequest, CniResponse};
use serde_json::{Map, Value, json};
use tokio::net::UnixStream;
use tonic::transport::{Endpoint, Uri};

/// Where the agent listens unless the network configuration says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/ovswire/cni.sock";
/// The CNI spec versions ovswire speaks, oldest first.
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
/// How long one invocation may take, connecting included.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// How long connecting may take; a missing or dead socket fails at once anyway.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The version errors and VERSION are written in when the configuration names none we speak.
const NEWEST: &str = "1.1.0";

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

/// A CNI command: VERSION, answered here, or one the agent serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Version,
    Agent(Verb),
}

/// A command the agent serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Add,
    Del,
    Check,
    Status,
    Gc,
}

impl Command {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "VERSION" => Self::Version,
            "ADD" => Self::Agent(Verb::Add),
            "DEL" => Self::Agent(Verb::Del),
            "CHECK" => Self::Agent(Verb::Check),
            "STATUS" => Self::Agent(Verb::Status),
            "GC" => Self::Agent(Verb::Gc),
            _ => return None,
        })
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Status => "STATUS",
            Self::Gc => "GC",
        })
    }
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
    /// The agent's socket could not be connected.
    Unreachable { socket: PathBuf, why: String },
    /// The agent did not answer within the deadline.
    Timeout { socket: PathBuf, after: Duration },
    /// The agent answered with a gRPC error.
    Grpc(tonic::Status),
    /// The agent answered ADD with neither a result nor an error.
    EmptyResult,
    /// The agent answered with a CNI error.
    Agent(ovswire_proto::v1::CniError),
}

/// A CNI error as printed on stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CniError {
    code: u32,
    msg: String,
    details: String,
}

const INVALID_ENV: u32 = 4;
const IO_FAILURE: u32 = 5;
const DECODE: u32 = 6;
const INVALID_CONFIG: u32 = 7;
const TRY_AGAIN_LATER: u32 = 11;
const UNAVAILABLE: u32 = 50;
/// ovswire's own: the agent answered something the plugin cannot use.
const AGENT_PROTOCOL: u32 = 102;

impl Failure {
    /// The one place a failure becomes a CNI error code and message.
    fn to_error(&self, command: Option<Command>) -> CniError {
        let e = |code, msg: String, details: &str| CniError {
            code,
            msg,
            details: details.to_owned(),
        };
        let down_code = if command == Some(Command::Agent(Verb::Status)) {
            UNAVAILABLE
        } else {
            TRY_AGAIN_LATER
        };
        let down_details = "start ovswire-agent on this node (or wait for it to come back); \
                            the runtime retries";
        match self {
            Self::Command(None) => e(
                INVALID_ENV,
                "CNI_COMMAND is missing".into(),
                "set CNI_COMMAND to ADD, DEL, CHECK, STATUS, GC or VERSION",
            ),
            Self::Command(Some(c)) => e(
                INVALID_ENV,
                format!("CNI_COMMAND {c:?} is unknown"),
                "set CNI_COMMAND to ADD, DEL, CHECK, STATUS, GC or VERSION",
            ),
            Self::Stdin(err) => e(
                IO_FAILURE,
                format!("cannot read the network configuration from stdin: {err}"),
                "the runtime must write the network configuration to the plugin's stdin",
            ),
            Self::Runtime(err) => e(
                IO_FAILURE,
                format!("cannot start the plugin's async runtime: {err}"),
                "the node is out of resources (threads, file descriptors); retry",
            ),
            Self::Decode(why) => e(
                DECODE,
                format!("the network configuration on stdin is not a JSON object: {why}"),
                "fix the JSON of the network configuration (the NetworkAttachmentDefinition's \
                 spec.config)",
            ),
            Self::Socket(v) => e(
                INVALID_CONFIG,
                format!("socket must be a string, not {v}"),
                "set \"socket\" to the path of the agent's CNI socket, or leave it out for \
                 /run/ovswire/cni.sock",
            ),
            Self::Unreachable { socket, why } => e(
                down_code,
                format!("cannot reach ovswire-agent at {}: {why}", socket.display()),
                down_details,
            ),
            Self::Timeout { socket, after } => e(
                down_code,
                format!(
                    "ovswire-agent at {} did not answer within {:.1} s",
                    socket.display(),
                    after.as_secs_f64()
                ),
                "the agent is overloaded or stuck; see its log on this node; the runtime retries",
            ),
            Self::Grpc(status) if status.code() == tonic::Code::Unavailable => e(
                down_code,
                format!("ovswire-agent is unavailable: {}", status.message()),
                down_details,
            ),
            Self::Grpc(status) => e(
                AGENT_PROTOCOL,
                format!(
                    "ovswire-agent answered with gRPC error {:?}: {}",
                    status.code(),
                    status.message()
                ),
                "install the ovswire-cni that matches the running ovswire-agent",
            ),
            Self::EmptyResult => e(
                AGENT_PROTOCOL,
                "ovswire-agent answered ADD without a result".into(),
                "install the ovswire-cni that matches the running ovswire-agent",
            ),
            Self::Agent(err) if err.code == 0 => e(
                AGENT_PROTOCOL,
                format!("ovswire-agent failed without an error code: {}", err.msg),
                "install the ovswire-cni that matches the running ovswire-agent",
            ),
            Self::Agent(err) => e(err.code, err.msg.clone(), &err.details),
        }
    }
}

/// The few fields the plugin reads from the network configuration.
#[derive(Debug, Default)]
struct Peek {
    /// `cniVersion`, if it is one ovswire speaks.
    version: Option<&'static str>,
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
                    .and_then(|v| SUPPORTED_VERSIONS.into_iter().find(|s| *s == v)),
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

    fn socket(&self) -> Result<PathBuf, Failure> {
        let conf = self
            .conf
            .as_ref()
            .ok_or_else(|| Failure::Decode(self.error.clone().unwrap_or_default()))?;
        match conf.get("socket") {
            None | Some(Value::Null) => Ok(PathBuf::from(DEFAULT_SOCKET)),
            Some(Value::String(s)) if !s.is_empty() => Ok(PathBuf::from(s)),
            Some(other) => Err(Failure::Socket(other.clone())),
        }
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
    let version = peek.version.unwrap_or(NEWEST);
    let answer = match command {
        None => Err(Failure::Command(raw_command.clone())),
        Some(Command::Version) => Ok(version_info(version)),
        Some(Command::Agent(verb)) => match read {
            Err(e) => Err(Failure::Stdin(e)),
            Ok(_) => forward(env, verb, input, &peek, deadline),
        },
    };
    match answer {
        Ok(stdout) => Outcome {
            stdout,
            stderr: String::new(),
            exit_code: 0,
        },
        Err(failure) => {
            let err = failure.to_error(command);
            let mut out = json!({"cniVersion": version, "code": err.code, "msg": err.msg});
            if !err.details.is_empty() {
                out["details"] = err.details.clone().into();
            }
            let name = raw_command.as_deref().unwrap_or("(no CNI_COMMAND)");
            Outcome {
                stdout: format!("{out}\n").into_bytes(),
                stderr: format!(
                    "ovswire-cni: {name} failed with code {}: {}",
                    err.code, err.msg
                ),
                exit_code: u8::try_from(err.code).ok().filter(|c| *c != 0).unwrap_or(1),
            }
        }
    }
}

fn version_info(version: &str) -> Vec<u8> {
    let info = json!({"cniVersion": version, "supportedVersions": SUPPORTED_VERSIONS});
    format!("{info}\n").into_bytes()
}

fn forward(
    env: &impl Environment,
    verb: Verb,
    network_config: Vec<u8>,
    peek: &Peek,
    deadline: Duration,
) -> Result<Vec<u8>, Failure> {
    let socket = peek.socket()?;
    let var = |name: &str| env.var(name).unwrap_or_default();
    let request = CniRequest {
        command: verb.to_string(),
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
    let call = call(socket.clone(), verb, request);
    let response = runtime
        .block_on(async { tokio::time::timeout(deadline, call).await })
        .map_err(|_| Failure::Timeout {
            socket,
            after: deadline,
        })??;
    match response.error {
        Some(err) => Err(Failure::Agent(err)),
        None if verb == Verb::Add && response.result.is_empty() => Err(Failure::EmptyResult),
        None => Ok(response.result),
    }
}

async fn call(socket: PathBuf, verb: Verb, request: CniRequest) -> Result<CniResponse, Failure> {
    let path = socket.clone();
    // The URI is a placeholder: the connector below always dials the unix socket.
    let channel = Endpoint::from_static("http://[::]:50051")
        .connect_timeout(CONNECT_TIMEOUT)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .map_err(|e| Failure::Unreachable {
            socket,
            why: chain(&e),
        })?;
    let mut client = CniClient::new(channel);
    let response = match verb {
        Verb::Add => client.add(request).await,
        Verb::Del => client.del(request).await,
        Verb::Check => client.check(request).await,
        Verb::Status => client.status(request).await,
        Verb::Gc => client.gc(request).await,
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
