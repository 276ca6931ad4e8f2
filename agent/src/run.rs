//! The composition root: from flags to a running agent. It reads the topology files, connects
//! to OVS, starts the reconcile loop (or the Kubernetes source that starts it), the peer
//! exchange, and the gRPC servers, and runs until SIGTERM or SIGINT. Wires stay as they are
//! when the agent stops.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use ovswire_core::topology::Topology;
use ovswire_ovsdb::vswitch::DatapathType;
use ovswire_proto::v1::{cni_server, peers_server, wires_server};
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tracing::{info, warn};

use crate::api;
use crate::api::peers::{PeerClients, load_token};
use crate::error::{Error, Result};
use crate::netdev::Netdev;
use crate::runtime::args::{Args, Datapath};
use crate::runtime::ovs::BridgeConfig;
use crate::runtime::peers::exchange_loop;
use crate::runtime::{Agent, Config, kube};

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
        Some(hex) => u64::from_str_radix(hex.trim_start_matches("0x"), 16).map_err(|_| {
            Error::Config(format!(
                "--datapath-id {hex:?} is not a hexadecimal number; give 16 hex digits or leave \
                 it out to derive one from the node name"
            ))
        }),
        None => Ok(ovswire_core::naming::datapath_id(node)),
    }
}

/// The links of every `--topology` file; a lab may be in one file only.
fn load_topologies(args: &Args) -> Result<BTreeMap<ovswire_core::LinkKey, ovswire_core::LinkSpec>> {
    let mut links = BTreeMap::new();
    let mut labs = BTreeMap::new();
    for path in &args.topology {
        let text = std::fs::read_to_string(path).map_err(Error::io(format!(
            "cannot read topology file {}",
            path.display()
        )))?;
        let t = Topology::parse(&text, &path.display().to_string())
            .map_err(|e| Error::Config(e.to_string()))?;
        if let Some(other) = labs.insert(t.lab.clone(), path) {
            return Err(Error::Config(format!(
                "lab {} is in two topology files, {} and {}; give each lab one file",
                t.lab,
                other.display(),
                path.display()
            )));
        }
        links.extend(t.links);
    }
    Ok(links)
}

/// Connections at once to the Wires API over TCP (operators' tools, a few at a time).
const WIRES_TCP_CONNECTIONS: usize = 64;

/// Binds a root-only unix socket, replacing a stale one but never a live agent's.
async fn bind_private(path: &Path) -> Result<UnixListener> {
    let shown = path.display();
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
            .map_err(Error::io(format!("create {}", dir.display())))?;
    }
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(Error::Config(format!(
                "{shown} is in use: another ovswire-agent is running; stop it first"
            )));
        }
        std::fs::remove_file(path).map_err(Error::io(format!("remove stale {shown}")))?;
    }
    // Bound in a private directory, made root-only there, then moved into place: at no time
    // can another user connect, whatever the umask or the directory's mode.
    let dir = path.parent().unwrap_or(Path::new("."));
    let staging = dir.join(format!(".bind-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(Error::io(format!("create {}", staging.display())))?;
    let bound = staging.join("sock");
    let made = UnixListener::bind(&bound)
        .map_err(Error::io(format!("bind {shown}")))
        .and_then(|listener| {
            std::fs::set_permissions(&bound, std::fs::Permissions::from_mode(0o600))
                .map_err(Error::io(format!("make {shown} root-only")))?;
            std::fs::rename(&bound, path)
                .map_err(Error::io(format!("move the socket to {shown}")))?;
            Ok(listener)
        });
    let _ = std::fs::remove_dir_all(&staging);
    made
}

/// The connections of `listener` from processes of this agent's user (root) only; others are
/// closed unanswered. The socket's mode already keeps them out: this holds if it is changed.
fn own_user_only(
    listener: UnixListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::UnixStream>> {
    use futures::StreamExt;
    let me = nix::unistd::geteuid().as_raw();
    UnixListenerStream::new(listener).filter(move |accepted| {
        let allowed = match accepted {
            Ok(stream) => match stream.peer_cred() {
                Ok(cred) if cred.uid() == me => true,
                Ok(cred) => {
                    warn!(uid = cred.uid(), "refused a connection from another user");
                    false
                }
                Err(e) => {
                    warn!(error = %e, "refused a connection whose user cannot be read");
                    false
                }
            },
            Err(_) => true,
        };
        std::future::ready(allowed)
    })
}

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(args: Args) -> Result<()> {
    if let Some(addr) = args.wires_listen
        && !addr.ip().is_loopback()
        && !args.wires_listen_remote
    {
        return Err(Error::Config(format!(
            "--wires-listen {addr} is not a loopback address; use 127.0.0.1, or pass \
             --wires-listen-remote to serve the network (its clients still need the token)"
        )));
    }
    let wires_token = match (&args.wires_listen, &args.wires_token_file) {
        (Some(_), Some(path)) => Some(load_token(path)?),
        (Some(addr), None) => {
            return Err(Error::Config(format!(
                "--wires-listen {addr} needs --wires-token-file: a token its clients present \
                 (`head -c 32 /dev/urandom | base64 > FILE; chmod 600 FILE`)"
            )));
        }
        (None, _) => None,
    };
    let node = node_name(&args);
    let links = load_topologies(&args)?;
    let bridge = BridgeConfig {
        name: args.bridge.clone(),
        datapath_type: match args.datapath_type {
            Datapath::System => DatapathType::System,
            Datapath::Netdev => DatapathType::Netdev,
        },
        datapath_id: datapath_id(&args, &node)?,
        rundir: args.ovs_rundir.clone(),
        adopt: args.adopt_bridge,
    };
    let tls = match (&args.underlay_ip, &args.peer_tls_dir) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(Error::Config(
                "--underlay-ip needs --peer-tls-dir: agents call each other over mutual TLS, \
                 each with its node's certificate (`ovswire-agent pki issue`, docs/security.md)"
                    .into(),
            ));
        }
        (Some(_), Some(dir)) => Some(api::tls::PeerTls::load(dir, &node)?),
    };
    if args.underlay_ip.is_none() && !args.peers.is_empty() {
        return Err(Error::Config(
            "--peer needs --underlay-ip: tunnels to peers start at this node's underlay address"
                .into(),
        ));
    }
    let db = ovswire_ovsdb::Client::connect(&args.ovsdb)
        .await
        .map_err(|e| {
            Error::Config(format!(
                "cannot connect to OVSDB at {} (is ovsdb-server running?): {e}",
                args.ovsdb
            ))
        })?;
    let underlay_mtu = match args.underlay_ip {
        Some(ip) => Netdev::new()?.mtu_of_address(ip).await?.unwrap_or_else(|| {
            tracing::warn!(%ip, "no interface holds the underlay address; MTU checks are off");
            0
        }),
        None => 0,
    };
    let here = ovswire_core::peers::Here {
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
    let config = Config {
        bridge,
        here,
        peers,
        history: args.history,
    };
    let (agent, events) = Agent::start(db, config, links).await?;
    tokio::spawn(agent.clone().watch_tunnels());
    if args.kubernetes {
        let (agent, node) = (agent.clone(), node.clone());
        tokio::spawn(async move {
            if let Err(e) = kube::run(agent, node, events).await {
                tracing::error!(error = %e, "Kubernetes topology source failed");
                std::process::exit(1);
            }
        });
    } else {
        tokio::spawn(agent.clone().run(events));
    }
    let peer_clients = match &tls {
        Some(tls) => {
            tokio::spawn(tls.clone().watch());
            let clients = Arc::new(PeerClients::new(
                tls.clone(),
                args.peer_port,
                args.underlay_ip,
            ));
            tokio::spawn(exchange_loop(agent.clone(), clients.clone()));
            Some(clients)
        }
        None => None,
    };

    let cni = bind_private(&args.cni_socket).await?;
    let wires = bind_private(&args.wires_socket).await?;
    let wires_api = api::wires::WiresService::new(agent.clone(), peer_clients.clone());
    let wires_svc = wires_server::WiresServer::new(wires_api.clone());
    let cni_svc = cni_server::CniServer::new(crate::cni::CniServer::new(
        agent.clone(),
        args.host_endpoints,
    ));
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut servers = tokio::task::JoinSet::new();
    servers.spawn(
        tonic::transport::Server::builder()
            .add_service(cni_svc)
            .serve_with_incoming_shutdown(own_user_only(cni), stopped(stop_rx.clone())),
    );
    servers.spawn(
        tonic::transport::Server::builder()
            .add_service(wires_svc)
            .serve_with_incoming_shutdown(own_user_only(wires), stopped(stop_rx.clone())),
    );
    if let Some(addr) = args.metrics_listen {
        api::metrics::serve(addr, agent.clone()).await?;
    }
    if let (Some(addr), Some(token)) = (args.wires_listen, &wires_token) {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(Error::io(format!("cannot serve the Wires API on {addr}")))?;
        let svc = wires_server::WiresServer::with_interceptor(
            wires_api,
            api::peers::authenticate(
                token,
                "missing or wrong token; pass the agent's --wires-token-file with `ovswire \
                 --server ADDR --token-file FILE`",
            ),
        );
        info!(%addr, "serving the Wires API over TCP (token required)");
        servers.spawn(
            api::limits::server()
                .add_service(svc)
                .serve_with_incoming_shutdown(
                    api::limits::incoming(listener, WIRES_TCP_CONNECTIONS, "wires"),
                    stopped(stop_rx.clone()),
                ),
        );
    }
    if let (Some(tls), Some(ip)) = (&tls, args.underlay_ip) {
        let addr = args
            .peer_listen
            .unwrap_or_else(|| SocketAddr::new(ip, args.peer_port));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(Error::io(format!(
                "cannot serve the Peers API on {addr}; is another agent running?"
            )))?;
        let svc = peers_server::PeersServer::new(api::peers::PeersService::new(agent.clone()))
            .max_decoding_message_size(api::peers::MESSAGE_LIMIT)
            .max_encoding_message_size(api::peers::MESSAGE_LIMIT);
        info!(%addr, "serving peers (mutual TLS)");
        let max = args.peer_max_connections as usize;
        servers.spawn(
            api::limits::server()
                .add_service(svc)
                .serve_with_incoming_shutdown(
                    api::tls::incoming(
                        listener,
                        tls.clone(),
                        api::peers::admit(agent.clone()),
                        max,
                    ),
                    stopped(stop_rx.clone()),
                ),
        );
    }
    info!(node, cni = %args.cni_socket.display(), wires = %args.wires_socket.display(), "ovswire-agent ready");
    let outcome = tokio::select! {
        () = &mut stop => {
            info!("shutting down; wires stay as they are");
            Ok(())
        }
        Some(done) = servers.join_next() => match done {
            Ok(served) => served.map_err(Error::from),
            Err(e) => Err(Error::Stopped(format!("a gRPC server task ({e})"))),
        },
    };
    let _ = stop_tx.send(true);
    while servers.join_next().await.is_some() {}
    for path in [&args.cni_socket, &args.wires_socket] {
        let _ = std::fs::remove_file(path);
    }
    outcome
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
