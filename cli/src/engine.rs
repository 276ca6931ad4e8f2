//! The container engine that runs a lab's container nodes, spoken to through the Docker Engine
//! API over its unix socket (Docker's own, or Podman's Docker-compatible service), never through
//! its command-line tool: images, the lab's management network, node containers, commands run
//! inside them, and the engine's events.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as ApiError;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, ExecConfig, HostConfig, Ipam,
    IpamConfig, NetworkCreateRequest, NetworkingConfig, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, EventsOptions, ListContainersOptions,
    ListNetworksOptions, LogsOptions, RemoveContainerOptions,
};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::spec::{Cidr, Ipv4Net};

/// The label every container and network of a lab carries: its lab's name.
pub const LAB_LABEL: &str = "dev.ovswire.lab";
/// The label naming a container's node.
pub const NODE_LABEL: &str = "dev.ovswire.node";

/// A container engine ovswire speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// Docker, at `/var/run/docker.sock`.
    Docker,
    /// Podman's Docker-compatible API service, at `/run/podman/podman.sock`.
    Podman,
}

impl Runtime {
    /// Where the engine listens by default.
    pub fn socket(self) -> &'static str {
        match self {
            Self::Docker => "/var/run/docker.sock",
            Self::Podman => "/run/podman/podman.sock",
        }
    }

    /// How to start the engine's API when it is not running.
    fn how_to_start(self) -> &'static str {
        match self {
            Self::Docker => "start Docker (`systemctl start docker`)",
            Self::Podman => {
                "start Podman's API service (`podman system service --time=0 \
                 unix:///run/podman/podman.sock &`, or `systemctl start podman.socket`; \
                 scripts/setup does it)"
            }
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Docker => "docker",
            Self::Podman => "podman",
        })
    }
}

/// How to reach the engine a lab uses, kept in the lab's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineSite {
    /// Which engine.
    pub runtime: Runtime,
    /// Its API socket.
    pub socket: PathBuf,
}

/// A connected engine.
#[derive(Debug, Clone)]
pub struct Engine {
    api: Docker,
    site: EngineSite,
}

/// How long one API request may take (image pulls stream, and are not bound by it).
const REQUEST_TIMEOUT_S: u64 = 120;

/// What an image runs by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    /// Its entrypoint.
    pub entrypoint: Vec<String>,
    /// Its command.
    pub cmd: Vec<String>,
}

/// A container as the engine shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The engine's word for its state: `running`, `exited`, `created`...
    pub status: String,
    /// Its main process, while it runs.
    pub pid: Option<i32>,
    /// Its network namespace, while it runs.
    pub netns: Option<PathBuf>,
    /// When it last started (RFC 3339), which changes with every restart.
    pub started_at: String,
    /// The exit code of its last run.
    pub exit_code: i64,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its image.
    pub image: String,
}

impl ContainerInfo {
    /// Whether it runs.
    pub fn running(&self) -> bool {
        self.status == "running" && self.pid.is_some()
    }
}

/// A container to create.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    /// Its name.
    pub name: String,
    /// Its hostname.
    pub hostname: String,
    /// The image.
    pub image: String,
    /// Entrypoint and command (empty: the image's).
    pub entrypoint: Vec<String>,
    /// The command.
    pub cmd: Vec<String>,
    /// `KEY=value` pairs.
    pub env: Vec<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// `HOST:CONTAINER[:OPTIONS]` mounts.
    pub binds: Vec<String>,
    /// The user it runs as.
    pub user: Option<String>,
    /// The engine's restart policy.
    pub restart_policy: Option<String>,
    /// The management network and the container's address on it.
    pub network: Option<(String, std::net::Ipv4Addr)>,
    /// `name:address` lines for its `/etc/hosts`.
    pub extra_hosts: Vec<String>,
}

/// An engine network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    /// Its name.
    pub name: String,
    /// Its IPv4 subnets.
    pub subnets: Vec<Ipv4Net>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// A container event of a lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// `start`, `die`, `restart`...
    pub action: String,
    /// The node (its label).
    pub node: String,
}

/// Whether an API error is the engine's "no such object".
pub fn not_found(e: &ApiError) -> bool {
    matches!(
        e,
        ApiError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// The engine's own message of an API error, without bollard's wrapping.
fn said(e: &ApiError) -> String {
    match e {
        ApiError::DockerResponseServerError { message, .. } => message.trim().to_owned(),
        ApiError::DockerStreamError { error } => error.trim().to_owned(),
        other => other.to_string(),
    }
}

impl Engine {
    /// Connects to `choice`, or to the first engine that answers (`$DOCKER_HOST` when it names a
    /// unix socket, then Docker's socket, then Podman's).
    pub async fn connect(choice: Option<Runtime>) -> Result<Self> {
        let candidates: Vec<EngineSite> = match choice {
            Some(r) => vec![site_for(r)],
            None => {
                let mut c = Vec::new();
                if let Some(host) = std::env::var("DOCKER_HOST")
                    .ok()
                    .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
                {
                    c.push(EngineSite {
                        runtime: if host.to_string_lossy().contains("podman") {
                            Runtime::Podman
                        } else {
                            Runtime::Docker
                        },
                        socket: host,
                    });
                }
                c.extend([Runtime::Docker, Runtime::Podman].map(site_for));
                c.retain(|s| s.socket.exists());
                c
            }
        };
        if candidates.is_empty() {
            bail!(
                "no container engine is running: neither {} nor {} exists; {}, or {}; or give \
                 the nodes no image to run them as bare network namespaces",
                Runtime::Docker.socket(),
                Runtime::Podman.socket(),
                Runtime::Podman.how_to_start(),
                Runtime::Docker.how_to_start()
            );
        }
        let mut failures = Vec::new();
        for site in candidates {
            match Self::attach(&site).await {
                Ok(engine) => return Ok(engine),
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        bail!("{}", failures.join("; "))
    }

    /// Connects to the engine at `site`.
    pub async fn attach(site: &EngineSite) -> Result<Self> {
        let socket = site.socket.to_string_lossy();
        let hint = || {
            if nix::unistd::geteuid().is_root() {
                site.runtime.how_to_start().to_owned()
            } else {
                "its socket is root's: run ovswire as root".to_owned()
            }
        };
        let api =
            Docker::connect_with_unix(&socket, REQUEST_TIMEOUT_S, bollard::API_DEFAULT_VERSION)
                .map_err(|e| {
                    anyhow!(
                        "cannot reach {} at {socket}: {}; {}",
                        site.runtime,
                        said(&e),
                        hint()
                    )
                })?
                .negotiate_version()
                .await
                .map_err(|e| {
                    anyhow!(
                        "{} at {socket} does not answer: {}; {}",
                        site.runtime,
                        said(&e),
                        hint()
                    )
                })?;
        Ok(Self {
            api,
            site: site.clone(),
        })
    }

    /// Where this engine is.
    pub fn site(&self) -> &EngineSite {
        &self.site
    }

    /// What image `name` runs by default, or `None` when the engine does not have it.
    pub async fn image(&self, name: &str) -> Result<Option<ImageDefaults>> {
        match self.api.inspect_image(name).await {
            Ok(image) => {
                let config = image.config.unwrap_or_default();
                Ok(Some(ImageDefaults {
                    entrypoint: config.entrypoint.unwrap_or_default(),
                    cmd: config.cmd.unwrap_or_default(),
                }))
            }
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(anyhow!("cannot inspect image {name}: {}", said(&e))),
        }
    }

    /// Pulls `image` from its registry.
    pub async fn pull(&self, image: &str) -> Result<()> {
        let options = CreateImageOptions {
            from_image: Some(image.to_owned()),
            ..Default::default()
        };
        let mut progress = self.api.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            step.map_err(|e| anyhow!("{}", said(&e)))?;
        }
        Ok(())
    }

    /// The engine's networks.
    pub async fn networks(&self) -> Result<Vec<NetworkInfo>> {
        let networks = self
            .api
            .list_networks(None::<ListNetworksOptions>)
            .await
            .map_err(|e| anyhow!("cannot list the engine's networks: {}", said(&e)))?;
        Ok(networks
            .into_iter()
            .map(|n| NetworkInfo {
                name: n.name.unwrap_or_default(),
                subnets: n
                    .ipam
                    .and_then(|i| i.config)
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.subnet?.parse::<Cidr>().ok())
                    .filter(|c| c.addr.is_ipv4())
                    .map(Ipv4Net::of)
                    .collect(),
                labels: n.labels.unwrap_or_default().into_iter().collect(),
            })
            .collect())
    }

    /// Creates bridge network `name` on `subnet` (gateway: its first address), labelled.
    pub async fn create_network(
        &self,
        name: &str,
        subnet: Ipv4Net,
        labels: &BTreeMap<String, String>,
    ) -> Result<()> {
        let request = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".to_owned()),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet.cidr().to_string()),
                    gateway: Some(subnet.gateway().to_string()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        self.api.create_network(request).await.map_err(|e| {
            anyhow!(
                "cannot create network {name} ({}): {}",
                subnet.cidr(),
                said(&e)
            )
        })?;
        Ok(())
    }

    /// Removes network `name`; one already gone is fine.
    pub async fn remove_network(&self, name: &str) -> Result<()> {
        match self.api.remove_network(name).await {
            Err(e) if !not_found(&e) => Err(anyhow!("cannot remove network {name}: {}", said(&e))),
            _ => Ok(()),
        }
    }

    /// Container `name_or_id`, or `None` when there is none.
    pub async fn container(&self, name_or_id: &str) -> Result<Option<ContainerInfo>> {
        let c = match self.api.inspect_container(name_or_id, None).await {
            Ok(c) => c,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => bail!("cannot inspect container {name_or_id}: {}", said(&e)),
        };
        let state = c.state.unwrap_or_default();
        let status = state.status.map(|s| s.to_string()).unwrap_or_default();
        let pid = state
            .pid
            .filter(|p| *p > 0)
            .and_then(|p| i32::try_from(p).ok());
        let netns = pid.map(|_| {
            c.network_settings
                .as_ref()
                .and_then(|n| n.sandbox_key.clone())
                .filter(|k| !k.is_empty() && Path::new(k).exists())
                .map_or_else(
                    || PathBuf::from(format!("/proc/{}/ns/net", pid.unwrap_or_default())),
                    PathBuf::from,
                )
        });
        let config = c.config.unwrap_or_default();
        Ok(Some(ContainerInfo {
            id: c.id.unwrap_or_default(),
            name: c
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned(),
            status,
            pid,
            netns,
            started_at: state.started_at.unwrap_or_default(),
            exit_code: state.exit_code.unwrap_or_default(),
            labels: config.labels.unwrap_or_default().into_iter().collect(),
            image: config.image.unwrap_or_default(),
        }))
    }

    /// The ids of every container, running or not, labelled as lab `lab`'s.
    pub async fn containers_of(&self, lab: &str) -> Result<Vec<String>> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_owned(),
                vec![format!("{LAB_LABEL}={lab}")],
            )])),
            ..Default::default()
        };
        let list = self
            .api
            .list_containers(Some(options))
            .await
            .map_err(|e| anyhow!("cannot list the containers of lab {lab}: {}", said(&e)))?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }

    /// Creates a container; its id.
    pub async fn create(&self, spec: &ContainerSpec) -> Result<String> {
        let restart_policy = spec.restart_policy.as_deref().map(|p| RestartPolicy {
            name: Some(match p {
                "always" => RestartPolicyNameEnum::ALWAYS,
                "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
                "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
                _ => RestartPolicyNameEnum::NO,
            }),
            maximum_retry_count: None,
        });
        let (network_mode, networking_config) = match &spec.network {
            Some((net, ip)) => (
                net.clone(),
                Some(NetworkingConfig {
                    endpoints_config: Some(HashMap::from([(
                        net.clone(),
                        EndpointSettings {
                            ipam_config: Some(EndpointIpamConfig {
                                ipv4_address: Some(ip.to_string()),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    )])),
                }),
            ),
            None => ("none".to_owned(), None),
        };
        let body = ContainerCreateBody {
            hostname: Some(spec.hostname.clone()),
            image: Some(spec.image.clone()),
            entrypoint: (!spec.entrypoint.is_empty()).then(|| spec.entrypoint.clone()),
            cmd: (!spec.cmd.is_empty()).then(|| spec.cmd.clone()),
            env: Some(spec.env.clone()),
            labels: Some(spec.labels.clone().into_iter().collect()),
            user: spec.user.clone(),
            // As containerlab does: a shell as the command keeps running.
            tty: Some(true),
            open_stdin: Some(true),
            host_config: Some(HostConfig {
                binds: Some(spec.binds.clone()),
                // Routers change sysctls, load programs, create interfaces: containerlab runs
                // every node privileged too.
                privileged: Some(true),
                network_mode: Some(network_mode),
                restart_policy,
                extra_hosts: Some(spec.extra_hosts.clone()),
                ..Default::default()
            }),
            networking_config,
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        let created = self
            .api
            .create_container(Some(options), body)
            .await
            .map_err(|e| anyhow!("cannot create container {}: {}", spec.name, said(&e)))?;
        Ok(created.id)
    }

    /// Starts container `id`.
    pub async fn start(&self, id: &str) -> Result<()> {
        self.api
            .start_container(id, None)
            .await
            .map_err(|e| anyhow!("cannot start container {id}: {}", said(&e)))
    }

    /// Removes container `id` with its anonymous volumes, stopping it first; one already gone
    /// is fine.
    pub async fn remove(&self, id: &str) -> Result<()> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self.api.remove_container(id, Some(options)).await {
            Err(e) if !not_found(&e) => Err(anyhow!("cannot remove container {id}: {}", said(&e))),
            _ => Ok(()),
        }
    }

    /// The last `lines` lines the container printed.
    pub async fn logs(&self, id: &str, lines: usize) -> String {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: lines.to_string(),
            ..Default::default()
        };
        let mut out = String::new();
        let mut logs = self.api.logs(id, Some(options));
        while let Some(Ok(chunk)) = logs.next().await {
            out.push_str(&String::from_utf8_lossy(&output_bytes(&chunk)));
        }
        out
    }

    /// Starts `cmd` inside container `id`, attached (with a terminal when `tty`); the exec's id
    /// and its output and input.
    async fn start_exec(&self, id: &str, cmd: &[String], tty: bool) -> Result<(String, Attached)> {
        let failed = |e: ApiError| anyhow!("cannot run {cmd:?} in container {id}: {}", said(&e));
        let exec = self
            .api
            .create_exec(
                id,
                ExecConfig {
                    attach_stdin: Some(tty),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(tty),
                    cmd: Some(cmd.to_vec()),
                    ..Default::default()
                },
            )
            .await
            .map_err(failed)?;
        let options = StartExecOptions {
            detach: false,
            tty,
            output_capacity: None,
        };
        match self
            .api
            .start_exec(&exec.id, Some(options))
            .await
            .map_err(failed)?
        {
            StartExecResults::Attached { output, input } => {
                Ok((exec.id, Attached { output, input }))
            }
            StartExecResults::Detached => {
                bail!("the engine did not attach to {cmd:?} in container {id}")
            }
        }
    }

    /// Runs `cmd` inside container `id`, passing its output to `sink` as it comes; its exit
    /// code.
    pub async fn exec(
        &self,
        id: &str,
        cmd: &[String],
        mut sink: impl FnMut(Output<'_>),
    ) -> Result<i64> {
        let (exec, mut attached) = self.start_exec(id, cmd, false).await?;
        while let Some(chunk) = attached.output.next().await {
            match chunk.map_err(|e| anyhow!("reading the output of {cmd:?}: {}", said(&e)))? {
                LogOutput::StdErr { message } => sink(Output::Stderr(&message)),
                other => sink(Output::Stdout(&output_bytes(&other))),
            }
        }
        self.exit_code(&exec, cmd, id).await
    }

    /// Runs `cmd` inside container `id` on a terminal of `size` (columns, rows), with this
    /// process's standard input fed to it and its output written to standard output, as
    /// `docker exec -it` does; its exit code. The caller puts its own terminal in raw mode.
    pub async fn exec_tty(&self, id: &str, cmd: &[String], size: (u16, u16)) -> Result<i64> {
        use std::io::{Read, Write};
        use tokio::io::AsyncWriteExt;
        let (
            exec,
            Attached {
                mut output,
                mut input,
            },
        ) = self.start_exec(id, cmd, true).await?;
        let _ = self
            .api
            .resize_exec(
                &exec,
                bollard::exec::ResizeExecOptions {
                    width: size.0,
                    height: size.1,
                },
            )
            .await;
        // Standard input is read on a thread of its own: a blocking read cannot be cancelled.
        let (keys, mut typed) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            let mut stdin = std::io::stdin();
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 || keys.blocking_send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut stdout = std::io::stdout();
        loop {
            tokio::select! {
                Some(bytes) = typed.recv() => {
                    if input.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                chunk = output.next() => match chunk {
                    Some(Ok(o)) => {
                        let _ = stdout.write_all(&output_bytes(&o));
                        let _ = stdout.flush();
                    }
                    Some(Err(e)) => bail!("the session with {cmd:?} broke: {}", said(&e)),
                    None => break,
                },
            }
        }
        self.exit_code(&exec, cmd, id).await
    }

    /// The exit code of exec `exec`, once it has ended.
    async fn exit_code(&self, exec: &str, cmd: &[String], id: &str) -> Result<i64> {
        // The exit code is set once the process is reaped, a moment after its output ends.
        for _ in 0..100 {
            let inspect = self
                .api
                .inspect_exec(exec)
                .await
                .map_err(|e| anyhow!("cannot inspect the run of {cmd:?}: {}", said(&e)))?;
            if inspect.running != Some(true)
                && let Some(code) = inspect.exit_code
            {
                return Ok(code);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        bail!("{cmd:?} in container {id} finished its output but never exited")
    }

    /// Runs `cmd` inside container `id`; its exit code and everything it printed.
    pub async fn exec_output(&self, id: &str, cmd: &[String]) -> Result<(i64, String)> {
        let mut text = Vec::new();
        let code = self
            .exec(id, cmd, |o| match o {
                Output::Stdout(b) | Output::Stderr(b) => text.extend_from_slice(b),
            })
            .await?;
        Ok((code, String::from_utf8_lossy(&text).into_owned()))
    }

    /// The container events of lab `lab` since `since` (the engine replays older ones: the
    /// stream is only requested when first polled), until the connection ends.
    pub fn events(
        &self,
        lab: &str,
        since: std::time::SystemTime,
    ) -> impl Stream<Item = Result<ContainerEvent>> + use<> {
        let filters = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            ("label".to_owned(), vec![format!("{LAB_LABEL}={lab}")]),
        ]);
        let since = since
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let options = EventsOptions {
            filters: Some(filters),
            since: Some(since.to_string()),
            ..Default::default()
        };
        self.api.events(Some(options)).map(|e| {
            let e = e.map_err(|e| anyhow!("the engine's event stream failed: {}", said(&e)))?;
            let attributes = e.actor.and_then(|a| a.attributes).unwrap_or_default();
            Ok(ContainerEvent {
                action: e.action.unwrap_or_default(),
                node: attributes.get(NODE_LABEL).cloned().unwrap_or_default(),
            })
        })
    }
}

/// The streams of a command started in a container.
struct Attached {
    output: std::pin::Pin<Box<dyn Stream<Item = Result<LogOutput, ApiError>> + Send>>,
    input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

/// Output of a command run in a container.
#[derive(Debug, Clone, Copy)]
pub enum Output<'a> {
    /// On its standard output.
    Stdout(&'a [u8]),
    /// On its standard error.
    Stderr(&'a [u8]),
}

fn output_bytes(o: &LogOutput) -> bytes::Bytes {
    match o {
        LogOutput::StdErr { message }
        | LogOutput::StdOut { message }
        | LogOutput::StdIn { message }
        | LogOutput::Console { message } => message.clone(),
    }
}

fn site_for(runtime: Runtime) -> EngineSite {
    EngineSite {
        runtime,
        socket: PathBuf::from(runtime.socket()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtimes_have_their_sockets() {
        assert_eq!(Runtime::Podman.socket(), "/run/podman/podman.sock");
        assert_eq!(Runtime::Docker.to_string(), "docker");
    }
}
