//! Command-line flags (each also an environment variable) and serving the agent's APIs.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use ovswire_ovsdb::vswitch::DatapathType;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tracing::info;

use super::ovs::BridgeConfig;
use super::{Agent, Config};
use ovswire_core::topology::Topology;

/// ovswire-agent: wires pods on this node through Open vSwitch (OVSDB + OpenFlow, no OVS tools).
#[derive(Debug, Parser)]
#[command(name = "ovswire-agent", version)]
pub struct Args {
    /// OVSDB server: `unix:PATH` or `tcp:HOST:PORT`.
    #[arg(
        long,
        env = "OVSWIRE_OVSDB",
        default_value = "unix:/var/run/openvswitch/db.sock"
    )]
    pub ovsdb: String,
    /// Directory where ovs-vswitchd puts `<bridge>.mgmt`, the bridge's OpenFlow socket.
    #[arg(
        long,
        env = "OVSWIRE_OVS_RUNDIR",
        default_value = "/var/run/openvswitch"
    )]
    pub ovs_rundir: PathBuf,
    /// The bridge the agent owns.
    #[arg(long, env = "OVSWIRE_BRIDGE", default_value = "ovsbr0")]
    pub bridge: String,
    /// `system` where the OVS kernel module is loaded, `netdev` for the userspace datapath.
    #[arg(long, env = "OVSWIRE_DATAPATH_TYPE", value_enum, default_value_t = Datapath::System)]
    pub datapath_type: Datapath,
    /// Datapath id to pin on the bridge (16 hex digits); derived from the node name if unset.
    #[arg(long, env = "OVSWIRE_DATAPATH_ID")]
    pub datapath_id: Option<String>,
    /// Static topology file (YAML, see docs/topology.md); repeat it (or separate paths with
    /// commas in the variable) for several labs.
    #[arg(long, env = "OVSWIRE_TOPOLOGY", value_delimiter = ',')]
    pub topology: Vec<PathBuf>,
    /// Unix socket of the CNI service (root only, mode 0600).
    #[arg(
        long,
        env = "OVSWIRE_CNI_SOCKET",
        default_value = "/run/ovswire/cni.sock"
    )]
    pub cni_socket: PathBuf,
    /// Unix socket of the Wires service (root only, mode 0600).
    #[arg(
        long,
        env = "OVSWIRE_WIRES_SOCKET",
        default_value = "/run/ovswire/wires.sock"
    )]
    pub wires_socket: PathBuf,
    /// Also serve the Wires service on this TCP address; loopback only unless
    /// --wires-listen-remote is given (the service has no authentication).
    #[arg(long, env = "OVSWIRE_WIRES_LISTEN")]
    pub wires_listen: Option<SocketAddr>,
    /// Allow --wires-listen on a non-loopback address.
    #[arg(long, env = "OVSWIRE_WIRES_LISTEN_REMOTE")]
    pub wires_listen_remote: bool,
    /// This node's name, reported in link status (defaults to the host name).
    #[arg(long, env = "OVSWIRE_NODE_NAME")]
    pub node_name: Option<String>,
    /// Take the topology from the Kubernetes API (ovswire and meshnet Topology objects, pods,
    /// nodes) instead of --topology files, and write link status back; peers are the cluster's
    /// nodes.
    #[arg(long, env = "OVSWIRE_KUBERNETES", conflicts_with = "topology")]
    pub kubernetes: bool,
    /// This node's underlay address: VXLAN tunnels to other nodes start here, and peers reach
    /// this agent on it. Without it, only same-node wires are built.
    #[arg(long, env = "OVSWIRE_UNDERLAY_IP")]
    pub underlay_ip: Option<std::net::IpAddr>,
    /// Where to serve the Peers API for other nodes' agents (default: the underlay address,
    /// port 7471).
    #[arg(long, env = "OVSWIRE_PEER_LISTEN")]
    pub peer_listen: Option<SocketAddr>,
    /// Another node's agent, `NAME=IP` (repeat, or comma-separated in the variable).
    #[arg(long = "peer", env = "OVSWIRE_PEERS", value_delimiter = ',', value_parser = parse_peer)]
    pub peers: Vec<(String, std::net::IpAddr)>,
    /// The port peers serve their Peers API on.
    #[arg(long, env = "OVSWIRE_PEER_PORT", default_value_t = crate::peers::DEFAULT_PORT)]
    pub peer_port: u16,
    /// File holding the token all agents of the cluster share to authenticate each other
    /// (mode 0600; at least 16 characters). Required with --underlay-ip.
    #[arg(long, env = "OVSWIRE_PEER_TOKEN_FILE")]
    pub peer_token_file: Option<PathBuf>,
    /// Log filter, e.g. `info` or `ovswire_agent=debug`.
    #[arg(long, env = "OVSWIRE_LOG", default_value = "info")]
    pub log: String,
}

/// The datapath type flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Datapath {
    /// The kernel datapath.
    System,
    /// The userspace datapath.
    Netdev,
}

fn parse_peer(s: &str) -> Result<(String, std::net::IpAddr), String> {
    let (name, ip) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=IP, e.g. node2=10.0.0.2"))?;
    ovswire_core::model::check_object_name("peer node name", name).map_err(|e| e.to_string())?;
    let ip = ip
        .parse()
        .map_err(|_| format!("{ip:?} in {s:?} is not an IP address"))?;
    Ok((name.to_owned(), ip))
}

fn node_name(args: &Args) -> String {
    args.node_name.clone().unwrap_or_else(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "node".into())
    })
}

fn datapath_id(args: &Args, node: &str) -> Result<u64> {
    match &args.datapath_id {
        Some(hex) => u64::from_str_radix(hex.trim_start_matches("0x"), 16)
            .with_context(|| format!("--datapath-id {hex:?} is not a hexadecimal number")),
        None => Ok(ovswire_core::naming::datapath_id(node)),
    }
}

/// Binds a root-only unix socket, replacing a stale one but never a live agent's.
async fn bind_private(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            bail!(
                "{} is in use: another ovswire-agent is running; stop it first",
                path.display()
            );
        }
        std::fs::remove_file(path).with_context(|| format!("remove stale {}", path.display()))?;
    }
    let listener = UnixListener::bind(path).with_context(|| format!("bind {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(args: Args) -> Result<()> {
    if let Some(addr) = args.wires_listen
        && !addr.ip().is_loopback()
        && !args.wires_listen_remote
    {
        bail!(
            "--wires-listen {addr} is not a loopback address and the Wires API has no \
             authentication; use 127.0.0.1 or pass --wires-listen-remote"
        );
    }
    let node = node_name(&args);
    let mut links = std::collections::BTreeMap::new();
    let mut labs = std::collections::BTreeMap::new();
    for path in &args.topology {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read topology file {}", path.display()))?;
        let t = Topology::parse(&text, &path.display().to_string())?;
        if let Some(other) = labs.insert(t.lab.clone(), path) {
            bail!(
                "lab {} is in two topology files, {} and {}; give each lab one file",
                t.lab,
                other.display(),
                path.display()
            );
        }
        links.extend(t.links);
    }
    let bridge = BridgeConfig {
        name: args.bridge.clone(),
        datapath_type: match args.datapath_type {
            Datapath::System => DatapathType::System,
            Datapath::Netdev => DatapathType::Netdev,
        },
        datapath_id: datapath_id(&args, &node)?,
        rundir: args.ovs_rundir.clone(),
    };
    let db = ovswire_ovsdb::Client::connect(&args.ovsdb)
        .await
        .with_context(|| {
            format!(
                "connect to OVSDB at {} (is ovsdb-server running?)",
                args.ovsdb
            )
        })?;
    let token = match (&args.underlay_ip, &args.peer_token_file) {
        (None, _) => None,
        (Some(_), None) => bail!(
            "--underlay-ip needs --peer-token-file: agents authenticate each other with a \
             shared token"
        ),
        (Some(_), Some(path)) => Some(crate::peers::load_token(path).map_err(anyhow::Error::msg)?),
    };
    if args.underlay_ip.is_none() && !args.peers.is_empty() {
        bail!("--peer needs --underlay-ip: tunnels to peers start at this node's underlay address");
    }
    let underlay_mtu = match args.underlay_ip {
        Some(ip) => crate::netdev::Netdev::new()?
            .mtu_of_address(ip)
            .await?
            .unwrap_or_else(|| {
                tracing::warn!(%ip, "no interface holds the underlay address; MTU checks are off");
                0
            }),
        None => 0,
    };
    let here = super::Here {
        node: node.clone(),
        underlay_ip: args.underlay_ip.map(|ip| ip.to_string()),
        underlay_mtu,
    };
    let peers = args
        .peers
        .iter()
        .filter(|(name, _)| *name != node)
        .map(|(name, ip)| (name.clone(), ip.to_string()))
        .collect();
    let (agent, events) = Agent::start(
        db,
        Config {
            bridge,
            here,
            peers,
        },
        links,
    )
    .await
    .context("set up the bridge")?;
    if args.kubernetes {
        let (agent, node) = (agent.clone(), node.clone());
        tokio::spawn(async move {
            if let Err(e) = super::kube::run(agent, node, events).await {
                tracing::error!(
                    error = format!("{e:#}"),
                    "Kubernetes topology source failed"
                );
                std::process::exit(1);
            }
        });
    } else {
        tokio::spawn(agent.clone().run(events));
    }
    let peer_clients = match &token {
        Some(token) => {
            let clients = std::sync::Arc::new(
                crate::peers::PeerClients::new(agent.clone(), token, args.peer_port)
                    .map_err(anyhow::Error::msg)?,
            );
            tokio::spawn(clients.clone().run());
            Some(clients)
        }
        None => None,
    };

    let cni = bind_private(&args.cni_socket).await?;
    let wires = bind_private(&args.wires_socket).await?;
    let wires_svc = ovswire_proto::v1::wires_server::WiresServer::new(
        crate::grpc::WiresService::new(agent.clone(), peer_clients.clone()),
    );
    let cni_svc =
        ovswire_proto::v1::cni_server::CniServer::new(crate::cni::CniServer::new(agent.clone()));
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut servers = tokio::task::JoinSet::new();
    servers.spawn(
        tonic::transport::Server::builder()
            .add_service(cni_svc)
            .serve_with_incoming_shutdown(UnixListenerStream::new(cni), stopped(stop_rx.clone())),
    );
    servers.spawn(
        tonic::transport::Server::builder()
            .add_service(wires_svc.clone())
            .serve_with_incoming_shutdown(UnixListenerStream::new(wires), stopped(stop_rx.clone())),
    );
    if let Some(addr) = args.wires_listen {
        servers.spawn(
            tonic::transport::Server::builder()
                .add_service(wires_svc)
                .serve_with_shutdown(addr, stopped(stop_rx.clone())),
        );
    }
    if let (Some(token), Some(ip)) = (&token, args.underlay_ip) {
        let addr = args
            .peer_listen
            .unwrap_or_else(|| SocketAddr::new(ip, args.peer_port));
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("cannot serve the Peers API on {addr}; is another agent running?")
        })?;
        let svc = ovswire_proto::v1::peers_server::PeersServer::with_interceptor(
            crate::peers::PeersService::new(agent.clone()),
            crate::peers::authenticate(token),
        );
        info!(%addr, "serving peers");
        servers.spawn(
            tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .add_service(svc)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    stopped(stop_rx.clone()),
                ),
        );
    }
    info!(node, cni = %args.cni_socket.display(), wires = %args.wires_socket.display(), "ovswire-agent ready");
    tokio::select! {
        () = &mut stop => info!("shutting down; wires stay as they are"),
        Some(done) = servers.join_next() => {
            done.context("server task")?.context("gRPC server")?;
        }
    }
    let _ = stop_tx.send(true);
    while servers.join_next().await.is_some() {}
    for path in [&args.cni_socket, &args.wires_socket] {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
