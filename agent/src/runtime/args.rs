//! Command-line flags, each also an environment variable. The composition root (`run.rs`)
//! turns them into a running agent.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// ovswire-agent: wires pods on this node through Open vSwitch (OVSDB + OpenFlow, no OVS tools).
#[derive(Debug, Parser)]
#[command(name = "ovswire-agent", version)]
pub struct Args {
    /// A tool to run instead of the agent.
    #[command(subcommand)]
    pub command: Option<Command>,
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
    /// Take over a bridge named --bridge that ovswire did not make (its fail mode, protocols
    /// and datapath id are rewritten); without it the agent refuses to start on one.
    #[arg(long, env = "OVSWIRE_ADOPT_BRIDGE")]
    pub adopt_bridge: bool,
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
    /// Wire the interfaces of pod `host` into the agent's own network namespace (a local lab's
    /// host endpoints, containerlab's `host:IFNAME`). Off on cluster nodes, where no pod may be
    /// wired into the host; `ovswire lab up` turns it on for its labs' agents.
    #[arg(long, env = "OVSWIRE_HOST_ENDPOINTS")]
    pub host_endpoints: bool,
    /// Also serve the Wires service on this TCP address, to clients presenting the token of
    /// --wires-token-file; loopback only unless --wires-listen-remote is given.
    #[arg(long, env = "OVSWIRE_WIRES_LISTEN", requires = "wires_token_file")]
    pub wires_listen: Option<SocketAddr>,
    /// At most this many connections to the Peers API at once (one per other node is the
    /// norm); further ones are closed at once.
    #[arg(long, env = "OVSWIRE_PEER_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub peer_max_connections: u32,
    /// The token clients of --wires-listen must present (`authorization: Bearer <token>`): a
    /// file of the agent's user that nobody else may read (mode 600 or 400).
    #[arg(long, env = "OVSWIRE_WIRES_TOKEN_FILE")]
    pub wires_token_file: Option<PathBuf>,
    /// Allow --wires-listen on a non-loopback address.
    #[arg(long, env = "OVSWIRE_WIRES_LISTEN_REMOTE")]
    pub wires_listen_remote: bool,
    /// Serve Prometheus metrics (`/metrics`: per-link counters and states, the agent's health)
    /// on this TCP address, e.g. 127.0.0.1:9470. Off unless given; they are read-only.
    #[arg(long, env = "OVSWIRE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// How many link events the agent remembers for `WatchLinks` since a time (`ovswire watch
    /// --since`).
    #[arg(long, env = "OVSWIRE_HISTORY", default_value_t = crate::runtime::telemetry::DEFAULT_HISTORY)]
    pub history: usize,
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
    #[arg(long, env = "OVSWIRE_PEER_PORT", default_value_t = super::peers::DEFAULT_PORT)]
    pub peer_port: u16,
    /// Directory of this node's Peers identity: `ca.crt` (the cluster's peer CA), `tls.crt`
    /// (this node's certificate, named for the node) and `tls.key` (mode 0600), as `ovswire-agent
    /// pki issue` makes them. Required with --underlay-ip; files replaced while the agent runs
    /// are used from the next connection on.
    #[arg(long, env = "OVSWIRE_PEER_TLS_DIR")]
    pub peer_tls_dir: Option<PathBuf>,
    /// Log filter, e.g. `info` or `ovswire_agent=debug`.
    #[arg(long, env = "OVSWIRE_LOG", default_value = "info")]
    pub log: String,
}

/// The tools `ovswire-agent` also is.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Certificates for the Peers API (mutual TLS between agents).
    #[command(subcommand)]
    Pki(Pki),
}

/// `ovswire-agent pki`: make a cluster's peer CA, and issue each node its certificate.
#[derive(Debug, Subcommand)]
pub enum Pki {
    /// Make the cluster's peer CA in DIR: `ca.crt`, and `ca.key`, which stays off the nodes.
    Init {
        /// Where to write the CA (created mode 0700); an existing CA is never replaced.
        #[arg(long)]
        dir: PathBuf,
        /// How many days the CA is valid.
        #[arg(long, default_value_t = crate::pki::CA_DAYS)]
        days: u32,
    },
    /// Issue node NAME's certificate into OUT (`ca.crt`, `tls.crt`, `tls.key`), the directory
    /// its agent reads with --peer-tls-dir; issuing again rotates it.
    Issue {
        /// The CA's directory (from `pki init`).
        #[arg(long)]
        ca: PathBuf,
        /// The node's name: the agent's --node-name (on Kubernetes, the Node's name).
        #[arg(long)]
        node: String,
        /// The node's underlay address, written in the certificate for people reading it
        /// (repeat for more).
        #[arg(long = "ip")]
        ips: Vec<std::net::IpAddr>,
        /// The node's directory (created mode 0700).
        #[arg(long)]
        out: PathBuf,
        /// How many days the certificate is valid.
        #[arg(long, default_value_t = crate::pki::NODE_DAYS)]
        days: u32,
    },
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
