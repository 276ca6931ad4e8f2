//! `ovswire`: local labs, link control and watch, graphs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ovswire_cli::engine::Runtime;
use ovswire_cli::graph::{self, DrawnState};
use ovswire_cli::names::Names;
use ovswire_cli::spec::LabSpec;
use ovswire_cli::wires::{self, Target, Wires};
use ovswire_cli::{file, lab, ovs};
use ovswire_proto::v1::OperState;

/// Emulated networks wired by Open vSwitch: bring a lab up on this machine, flap and watch its
/// links, draw it.
#[derive(Debug, Parser)]
#[command(name = "ovswire", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Local labs: container nodes (a node with an image) and bare network namespaces (a node
    /// without one), wired through Open vSwitch (run as root).
    #[command(subcommand)]
    Lab(LabCommand),
    /// List links and their state.
    Links {
        #[command(flatten)]
        agent: AgentArgs,
        /// One JSON object per link, one per line.
        #[arg(long)]
        json: bool,
        /// Also what crossed each link (packets and bytes each way), drops and flaps, as the
        /// agent counts them.
        #[arg(long)]
        stats: bool,
    },
    /// Take a link down, bring it up, or flap it.
    #[command(subcommand)]
    Link(LinkCommand),
    /// Print link events as they happen (Ctrl-C stops).
    Watch {
        #[command(flatten)]
        agent: AgentArgs,
        /// One JSON object per event, one per line.
        #[arg(long)]
        json: bool,
        /// Start with the events the agent remembers from this long ago (`30s`, `10m`, `2h`),
        /// instead of the current state.
        #[arg(long, conflicts_with = "stats")]
        since: Option<String>,
        /// Print every link's counters and rates every --interval-ms instead of events.
        #[arg(long)]
        stats: bool,
        /// With --stats: milliseconds between updates (100 or more).
        #[arg(long, default_value_t = 1000, requires = "stats")]
        interval_ms: u64,
    },
    /// Turn a topology file into Kubernetes objects: the lab's namespace, a
    /// NetworkAttachmentDefinition, one pod per node with Multus annotations, and a Topology.
    #[command(subcommand)]
    Topo(TopoCommand),
    /// Draw a topology as Mermaid, Graphviz DOT or a self-contained HTML page, with live link
    /// states when its lab is up.
    Graph {
        /// The topology file; without it, the lab that is up (see --lab).
        file: Option<PathBuf>,
        /// Picture format.
        #[arg(long, short, value_enum, default_value_t = Format::Mermaid)]
        format: Format,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// The lab to draw when no file is given, when several are up.
        #[arg(long)]
        lab: Option<String>,
        /// Serve a page that draws the lab and keeps it live (link states, rates, a click
        /// shows a link's counters and history) on this address, instead of printing a
        /// picture; 127.0.0.1:8470 when no address is given. The lab must be up.
        #[arg(long, num_args = 0..=1, default_missing_value = "127.0.0.1:8470", conflicts_with_all = ["format", "output"])]
        serve: Option<std::net::SocketAddr>,
    },
}

#[derive(Debug, Subcommand)]
enum LabCommand {
    /// Bring a lab up from a topology file (ovswire's, containerlab's .clab.yml or k8s-topo's),
    /// or converge a lab that is up to the file.
    Up {
        /// The topology file.
        file: PathBuf,
        /// Use the OVS whose database is at this address (`unix:PATH`) instead of the
        /// machine's or ovswire's own.
        #[arg(long, requires = "ovs_rundir", conflicts_with = "own_ovs")]
        ovsdb: Option<String>,
        /// With --ovsdb: the directory holding that OVS's bridge `.mgmt` sockets.
        #[arg(long, requires = "ovsdb")]
        ovs_rundir: Option<PathBuf>,
        /// Run on ovswire's own OVS (started under /run/ovswire/ovs when needed) even when the
        /// machine runs one.
        #[arg(long)]
        own_ovs: bool,
        /// The container engine for container nodes (default: the lab's, else the first whose
        /// socket answers: /var/run/docker.sock, /run/podman/podman.sock).
        #[arg(long, value_enum)]
        runtime: Option<Runtime>,
    },
    /// Remove a lab: its containers, namespaces, management network, wires, agent and bridge.
    Down {
        /// The lab's name or its topology file.
        lab: String,
    },
    /// Show the labs that are up and their links.
    Status {
        /// Only this lab.
        lab: Option<String>,
        /// One JSON object per link, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Show a lab's nodes: kind, image, container or namespace, state, management address,
    /// interfaces.
    Inspect {
        /// The lab (default: the only lab that is up).
        lab: Option<String>,
        /// One JSON object per node, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Run a command in a node (a container, or a namespace node), e.g.
    /// `ovswire lab exec r1 -- vtysh -c 'show isis neighbor'`.
    Exec {
        /// The node.
        node: String,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
        /// The lab (default: the only lab that is up).
        #[arg(long)]
        lab: Option<String>,
    },
    /// Save the running configuration of the lab's routers (FRR nodes: `vtysh -c write`
    /// inside, and a copy per node in a directory).
    Save {
        /// The lab (default: the only lab that is up).
        lab: Option<String>,
        /// Where the copies go (default: `<lab>-configs` next to the topology file).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Follow the container engine's events for a lab and rewire restarted containers (`lab
    /// up` starts it; it ends with the lab).
    #[command(hide = true)]
    Supervise {
        /// The lab.
        lab: String,
    },
}

#[derive(Debug, Subcommand)]
enum TopoCommand {
    /// Print the objects as YAML (for `kubectl apply -f -` or a review).
    Render {
        /// The topology file.
        file: PathBuf,
        #[command(flatten)]
        pod: PodArgs,
    },
    /// Apply the objects to the cluster of the current kubeconfig (server-side apply).
    Create {
        /// The topology file.
        file: PathBuf,
        #[command(flatten)]
        pod: PodArgs,
    },
    /// Delete the objects `create` made for the file's lab.
    Delete {
        /// The topology file.
        file: PathBuf,
    },
}

/// How the lab's pods look.
#[derive(Debug, Args)]
struct PodArgs {
    /// The routers' container image.
    #[arg(long, default_value = "alpine:3")]
    image: String,
    /// The routers' command (default `sleep infinity`; `--command ''` keeps the image's own).
    #[arg(long)]
    command: Option<String>,
}

impl PodArgs {
    fn template(&self) -> ovswire_cli::topo::PodTemplate {
        let mut t = ovswire_cli::topo::PodTemplate {
            image: self.image.clone(),
            ..Default::default()
        };
        if let Some(cmd) = &self.command {
            t.command = (!cmd.trim().is_empty())
                .then(|| cmd.split_whitespace().map(str::to_owned).collect());
        }
        t
    }
}

#[derive(Debug, Subcommand)]
enum LinkCommand {
    /// Take the link with this endpoint down: both ends lose carrier.
    Down {
        /// An endpoint of the link, NODE:IFNAME.
        endpoint: String,
        #[command(flatten)]
        agent: AgentArgs,
    },
    /// Bring the link with this endpoint back up.
    Up {
        /// An endpoint of the link, NODE:IFNAME.
        endpoint: String,
        #[command(flatten)]
        agent: AgentArgs,
    },
    /// Impair the link with this endpoint: delay, jitter, loss, corruption, duplication,
    /// reordering, rate. The parameters given replace the direction's impairment; the link
    /// keeps carrier.
    #[command(
        after_help = "Examples:\n  ovswire link impair r1:eth1 --delay 20ms --jitter 2ms --loss 1%\n  \
        ovswire link impair r1:eth1 --rate 10mbit --direction out\n  ovswire link impair r1:eth1 --clear"
    )]
    Impair(Box<ImpairArgs>),
    /// Take the link down and up again, COUNT times.
    Flap {
        /// An endpoint of the link, NODE:IFNAME.
        endpoint: String,
        /// How many down/up cycles.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Milliseconds the link stays down, and up between cycles.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        #[command(flatten)]
        agent: AgentArgs,
    },
}

/// `ovswire link impair`.
#[derive(Debug, Args)]
struct ImpairArgs {
    /// An endpoint of the link, NODE:IFNAME.
    endpoint: String,
    /// Which direction: out (what the endpoint sends), in (what it receives), both, or
    /// the link's own a->b / b->a.
    #[arg(long, default_value = "both")]
    direction: String,
    /// One-way delay, like 20ms.
    #[arg(long, allow_hyphen_values = true)]
    delay: Option<String>,
    /// Standard deviation of the delay, like 2ms (needs --delay).
    #[arg(long, allow_hyphen_values = true)]
    jitter: Option<String>,
    /// How much each jitter sample follows the last, like 25%.
    #[arg(long, allow_hyphen_values = true)]
    jitter_correlation: Option<String>,
    /// Frames dropped, like 1%.
    #[arg(long, allow_hyphen_values = true)]
    loss: Option<String>,
    /// How much each loss decision repeats the last (losses in bursts), like 25%.
    #[arg(long, allow_hyphen_values = true)]
    loss_correlation: Option<String>,
    /// Frames with one bit flipped, like 0.1%.
    #[arg(long, allow_hyphen_values = true)]
    corrupt: Option<String>,
    /// Frames sent twice, like 1%.
    #[arg(long, allow_hyphen_values = true)]
    duplicate: Option<String>,
    /// Frames sent at once, ahead of delayed ones, like 25% (needs --delay).
    #[arg(long, allow_hyphen_values = true)]
    reorder: Option<String>,
    /// Bits per second at most, like 100mbit.
    #[arg(long, allow_hyphen_values = true)]
    rate: Option<String>,
    /// Remove the direction's impairments.
    #[arg(long, conflicts_with_all = ["delay", "jitter", "jitter_correlation", "loss", "loss_correlation", "corrupt", "duplicate", "reorder", "rate"])]
    clear: bool,
    /// Print the link as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    agent: AgentArgs,
}

/// Which agent to talk to.
#[derive(Debug, Args)]
struct AgentArgs {
    /// A local lab (default: the only lab that is up).
    #[arg(long)]
    lab: Option<String>,
    /// An agent's Wires unix socket (a cluster node's is /run/ovswire/wires.sock).
    #[arg(long, conflicts_with_all = ["lab", "server"])]
    socket: Option<PathBuf>,
    /// An agent's Wires TCP address (its --wires-listen), e.g. http://127.0.0.1:7070.
    #[arg(long, conflicts_with = "lab")]
    server: Option<String>,
    /// The token the agent at --server wants (a copy of its --wires-token-file).
    #[arg(long, env = "OVSWIRE_WIRES_TOKEN_FILE")]
    token_file: Option<PathBuf>,
}

impl AgentArgs {
    fn target(&self) -> Result<Target> {
        if let Some(s) = &self.socket {
            return Ok(Target::Socket(s.clone()));
        }
        if let Some(s) = &self.server {
            return Ok(Target::Server {
                url: s.clone(),
                token_file: self.token_file.clone(),
            });
        }
        lab::target(self.lab.as_deref())
    }

    /// The lab links are named in (as the agent knows it): the one given, else none (every lab
    /// the agent has).
    fn lab(&self) -> String {
        self.lab
            .as_deref()
            .map(lab::system_name)
            .unwrap_or_else(|| {
                if self.socket.is_none() && self.server.is_none() {
                    lab::names().into_iter().next().unwrap_or_default()
                } else {
                    String::new()
                }
            })
    }
}

impl AgentArgs {
    /// The names the lab's file writes, to show links by and to read endpoints in (a local
    /// lab's; an agent reached by socket or server shows its own).
    fn names(&self) -> Names {
        if self.socket.is_some() || self.server.is_some() {
            return Names::default();
        }
        lab::LabState::load(&self.lab())
            .ok()
            .flatten()
            .map(|st| st.names)
            .unwrap_or_default()
    }
}

/// `links` with their names as the file writes them.
fn shown(names: &Names, mut links: Vec<ovswire_proto::v1::Link>) -> Vec<ovswire_proto::v1::Link> {
    for l in &mut links {
        names.show(l);
    }
    links
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Mermaid,
    Dot,
    Html,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Lab(LabCommand::Supervise { lab }) = &cli.command {
        // The supervisor is a long-lived background process: one worker thread is plenty.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build();
        return match rt
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(lab::supervise::run(lab)))
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ovswire: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ovswire: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ovswire: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn need_root() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "local labs need root (network namespaces, Open vSwitch, the container engine): run \
             it as root, e.g. with sudo"
        );
    }
    Ok(())
}

async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Lab(LabCommand::Up {
            file,
            ovsdb,
            ovs_rundir,
            own_ovs,
            runtime,
        }) => {
            need_root()?;
            let spec = file::load(&file)?;
            let choice = match (ovsdb, ovs_rundir) {
                (Some(db), Some(rundir)) => ovs::OvsChoice::At { db, rundir },
                _ if own_ovs => ovs::OvsChoice::Own,
                _ => ovs::OvsChoice::Auto,
            };
            let opts = lab::UpOptions {
                ovs: choice,
                runtime,
            };
            let summary = lab::up(&spec, &file, &opts).await?;
            print!("{}", wires::table(&shown(&spec.names, summary.links)));
            if !summary.settled {
                eprintln!(
                    "ovswire: lab {} is up, but not every link is as the file asks (see above); \
                     `ovswire lab up {}` again repairs what it can",
                    spec.names.lab(&spec.name),
                    file.display()
                );
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Lab(LabCommand::Inspect { lab: which, json }) => {
            let name = lab::the_lab(which.as_deref())?;
            let views = lab::inspect::inspect(&name).await?;
            if json {
                for v in &views {
                    println!("{}", serde_json::to_string(v)?);
                }
            } else {
                print!("{}", lab::inspect::table(&views));
            }
        }
        Command::Lab(LabCommand::Exec {
            node,
            command,
            lab: which,
        }) => {
            need_root()?;
            let name = lab::the_lab(which.as_deref())?;
            let node = lab::state(&name)?.names.node_system(&node);
            let code = lab::inspect::exec(&name, &node, &command).await?;
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
        }
        Command::Lab(LabCommand::Save { lab: which, output }) => {
            need_root()?;
            let name = lab::the_lab(which.as_deref())?;
            let st = lab::state(&name)?;
            let out = output.unwrap_or_else(|| {
                st.file
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join(format!("{name}-configs"))
            });
            let saved = lab::inspect::save(&name, &out).await?;
            let mut any = false;
            for (node, s) in &saved {
                match s {
                    lab::inspect::Saved::To(p) => {
                        any = true;
                        println!("{node}: saved to {}", p.display());
                    }
                    lab::inspect::Saved::Nothing(why) => {
                        println!("{node}: nothing to save ({why})")
                    }
                }
            }
            if !any {
                eprintln!("lab {name}: nothing to save: no node runs FRR");
            }
        }
        Command::Lab(LabCommand::Supervise { lab }) => lab::supervise::run(&lab).await?,
        Command::Lab(LabCommand::Down { lab: which }) => {
            need_root()?;
            let name = if Path::new(&which).is_file() {
                file::load(Path::new(&which))?.name
            } else {
                lab::system_name(&which)
            };
            lab::down(&name).await?;
        }
        Command::Lab(LabCommand::Status { lab: which, json }) => {
            let names = match which {
                Some(n) => vec![lab::system_name(&n)],
                None => lab::names(),
            };
            if names.is_empty() {
                eprintln!("no lab is up; `ovswire lab up FILE` brings one up");
            }
            for name in names {
                let state = lab::state(&name)?;
                let links = Wires::connect(&state.agent_target()?)
                    .await?
                    .links(&name)
                    .await?;
                let links = shown(&state.names, links);
                if json {
                    for l in &links {
                        println!("{}", wires::json(l));
                    }
                } else {
                    println!(
                        "lab {}: {} nodes, {} links, from {}",
                        state.names.lab(&name),
                        state.nodes.len(),
                        links.len(),
                        state.file.display()
                    );
                    print!("{}", wires::table(&links));
                }
            }
        }
        Command::Links { agent, json, stats } => {
            let wires = Wires::connect(&agent.target()?).await?;
            let links = if stats {
                wires.links_with_stats(&agent.lab()).await?
            } else {
                wires.links(&agent.lab()).await?
            };
            let links = shown(&agent.names(), links);
            if json {
                for l in &links {
                    println!("{}", wires::json(l));
                }
            } else if stats {
                print!("{}", wires::stats_table(&links));
            } else {
                print!("{}", wires::table(&links));
            }
        }
        Command::Link(cmd) => link(cmd).await?,
        Command::Topo(cmd) => topo(cmd).await?,
        Command::Watch {
            agent,
            json,
            since,
            stats,
            interval_ms,
        } => {
            let wires = Wires::connect(&agent.target()?).await?;
            let names = agent.names();
            if stats {
                let mut updates = wires
                    .watch_stats(&agent.lab(), Duration::from_millis(interval_ms))
                    .await?;
                while let Some(update) = updates.message().await? {
                    let time = wires::time_of_day(update.time_unix_ms);
                    for l in &shown(&names, update.links) {
                        if json {
                            let mut v = wires::json(l);
                            v["time"] = time.clone().into();
                            println!("{v}");
                        } else {
                            let s = l.stats.clone().unwrap_or_default();
                            let (ab, ba) =
                                (s.a_to_b.unwrap_or_default(), s.b_to_a.unwrap_or_default());
                            println!(
                                "{time}  {}  {}  {}  a->b {:.0} pkt/s {}  b->a {:.0} pkt/s {}  \
                                 drops {}  flaps {}",
                                wires::lab_of(l),
                                wires::link_name(l),
                                wires::state_word(l),
                                ab.packets_per_second,
                                wires::bits_per_second(ab.bits_per_second),
                                ba.packets_per_second,
                                wires::bits_per_second(ba.bits_per_second),
                                ab.drops + ba.drops,
                                s.flaps
                            );
                        }
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
            let since = match since {
                Some(ago) => Some(
                    std::time::SystemTime::now()
                        .checked_sub(parse_duration(&ago)?)
                        .unwrap_or(std::time::SystemTime::UNIX_EPOCH),
                ),
                None => None,
            };
            let mut events = wires.watch(&agent.lab(), since).await?;
            while let Some(ev) = events.message().await? {
                let Some(mut l) = ev.link else { continue };
                names.show(&mut l);
                let time = wires::time_of_day(ev.time_unix_ms);
                if json {
                    let mut v = wires::json(&l);
                    v["time"] = time.into();
                    v["time_unix_ms"] = ev.time_unix_ms.into();
                    v["initial"] = ev.initial.into();
                    v["removed"] = ev.removed.into();
                    v["history"] = ev.history.into();
                    v["node"] = ev.node.into();
                    if !ev.note.is_empty() {
                        v["note"] = ev.note.into();
                    }
                    println!("{v}");
                } else {
                    let what = if ev.removed {
                        "removed"
                    } else {
                        wires::state_word(&l)
                    };
                    let why = match (l.reason.is_empty(), ev.note.is_empty()) {
                        (true, true) => String::new(),
                        (false, true) => format!("  ({})", l.reason),
                        (true, false) => format!("  [{}]", ev.note),
                        (false, false) => format!("  ({}) [{}]", l.reason, ev.note),
                    };
                    println!(
                        "{time}  {}  {}  {what}  on {}{why}",
                        wires::lab_of(&l),
                        wires::link_name(&l),
                        ev.node
                    );
                }
            }
        }
        Command::Graph {
            file: path,
            format,
            output,
            lab: which,
            serve,
        } => {
            let spec = match &path {
                Some(p) => file::load(p)?,
                None => {
                    let name = match which {
                        Some(n) => n,
                        None => match lab::names().as_slice() {
                            [one] => one.clone(),
                            [] => bail!("no lab is up; give a topology file"),
                            _ => bail!("several labs are up; name one with --lab or give a file"),
                        },
                    };
                    let st = lab::LabState::load(&name)?
                        .with_context(|| format!("no lab named {name} is up"))?;
                    file::load(&st.file)?
                }
            };
            if let Some(addr) = serve {
                let st = lab::state(&spec.name).with_context(|| {
                    format!(
                        "graph --serve draws a lab that is up: bring lab {} up first",
                        spec.name
                    )
                })?;
                let target = st.agent_target()?;
                let lab = spec.name.clone();
                ovswire_cli::live::serve(spec, lab, target, addr, |at| {
                    eprintln!("graph: serving the live lab at http://{at}/ (Ctrl-C stops)");
                })
                .await?;
                return Ok(ExitCode::SUCCESS);
            }
            let states = live_states(&spec).await;
            let state = |l: &ovswire_cli::spec::LabLink| {
                states
                    .get(&l.agent_name())
                    .copied()
                    .unwrap_or(DrawnState::Unknown)
            };
            let text = match format {
                Format::Mermaid => graph::mermaid(&spec, &state),
                Format::Dot => graph::dot(&spec, &state),
                Format::Html => graph::html(&spec, &state),
            };
            match output {
                Some(p) => {
                    std::fs::write(&p, text).with_context(|| format!("write {}", p.display()))?
                }
                None => print!("{text}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Link states of the lab when it is up here, by link name.
async fn live_states(spec: &LabSpec) -> std::collections::BTreeMap<String, DrawnState> {
    let mut map = std::collections::BTreeMap::new();
    let Ok(Some(st)) = lab::LabState::load(&spec.name) else {
        return map;
    };
    let Ok(w) = Wires::connect(&Target::Socket(st.wires_socket())).await else {
        return map;
    };
    for l in w.links(&spec.name).await.unwrap_or_default() {
        let s = match OperState::try_from(l.oper) {
            Ok(OperState::Up) => DrawnState::Up,
            Ok(OperState::Down) => DrawnState::Down,
            Ok(OperState::Pending) => DrawnState::Pending,
            _ => DrawnState::Unknown,
        };
        map.insert(wires::link_name(&l), s);
    }
    map
}

async fn topo(cmd: TopoCommand) -> Result<()> {
    use ovswire_cli::topo;
    let say = |m: &str| eprintln!("topo: {m}");
    match cmd {
        TopoCommand::Render { file: path, pod } => {
            let spec = file::load(&path)?;
            topo::check(&spec)?;
            print!("{}", topo::to_yaml(&topo::render(&spec, &pod.template()))?);
        }
        TopoCommand::Create { file: path, pod } => {
            let spec = file::load(&path)?;
            topo::check(&spec)?;
            let client = kube_client().await?;
            topo::create(&client, &topo::render(&spec, &pod.template()), &say).await?;
            say(&format!(
                "lab {} created; `kubectl get owtopo -n {}` shows its links",
                spec.name, spec.name
            ));
        }
        TopoCommand::Delete { file: path } => {
            let spec = file::load(&path)?;
            let client = kube_client().await?;
            let objects = topo::render(&spec, &topo::PodTemplate::default());
            topo::delete(&client, &objects, &say).await?;
        }
    }
    Ok(())
}

/// The directions `--direction` names for the link with endpoint `endpoint`.
fn link_directions(
    link: &ovswire_proto::v1::Link,
    endpoint: &str,
    direction: &str,
) -> Result<Vec<ovswire_core::stats::Direction>> {
    use ovswire_core::stats::Direction;
    let is_a = link
        .r#ref
        .as_ref()
        .and_then(|r| r.a.as_ref())
        .is_some_and(|a| format!("{}:{}", a.pod, a.ifname) == endpoint);
    let out = if is_a {
        Direction::AtoB
    } else {
        Direction::BtoA
    };
    Ok(match direction {
        "both" => Direction::BOTH.to_vec(),
        "out" => vec![out],
        "in" => vec![out.reverse()],
        "a->b" => vec![Direction::AtoB],
        "b->a" => vec![Direction::BtoA],
        other => bail!(
            "--direction {other:?} is not a direction; use out (what {endpoint} sends), in (what \
             it receives), both, a->b or b->a"
        ),
    })
}

async fn kube_client() -> Result<kube::Client> {
    kube::Client::try_default().await.context(
        "cannot reach a Kubernetes cluster: set KUBECONFIG or run inside a pod with a service \
         account",
    )
}

async fn link(cmd: LinkCommand) -> Result<()> {
    match cmd {
        LinkCommand::Down { endpoint, agent } => set(&agent, &endpoint, false).await,
        LinkCommand::Up { endpoint, agent } => set(&agent, &endpoint, true).await,
        LinkCommand::Impair(args) => {
            let ImpairArgs {
                endpoint,
                direction,
                delay,
                jitter,
                jitter_correlation,
                loss,
                loss_correlation,
                corrupt,
                duplicate,
                reorder,
                rate,
                clear,
                json,
                agent,
            } = *args;
            let given = [
                ("delay", delay),
                ("jitter", jitter),
                ("jitter-correlation", jitter_correlation),
                ("loss", loss),
                ("loss-correlation", loss_correlation),
                ("corrupt", corrupt),
                ("duplicate", duplicate),
                ("reorder", reorder),
                ("rate", rate),
            ];
            let mut imp = ovswire_core::impair::Impairment::default();
            let mut any = false;
            for (field, value) in given {
                if let Some(v) = value {
                    any = true;
                    imp.set(field, &v, ovswire_core::impair::BareUnits::Required)
                        .map_err(|e| anyhow::anyhow!("{e} (--{})", e.field))?;
                }
            }
            if !any && !clear {
                bail!(
                    "say what to do to the link: one or more of --delay, --jitter, --loss, \
                     --corrupt, --duplicate, --reorder, --rate, or --clear"
                );
            }
            imp.validate()
                .map_err(|e| anyhow::anyhow!("{e} (--{})", e.field))?;
            let wires = Wires::connect(&agent.target()?).await?;
            let lab = agent.lab();
            let names = agent.names();
            let endpoint = names.to_system(&endpoint);
            let link = wires.find(&lab, &endpoint).await?;
            let directions = link_directions(&link, &endpoint, &direction)?;
            let mut l = wires.impair(&lab, &endpoint, &directions, imp).await?;
            names.show(&mut l);
            if json {
                println!("{}", serde_json::to_string_pretty(&wires::json(&l))?);
            } else {
                println!("{}  {}", wires::link_name(&l), wires::impairment_word(&l));
            }
            Ok(())
        }
        LinkCommand::Flap {
            endpoint,
            count,
            interval_ms,
            agent,
        } => {
            if count == 0 {
                bail!("--count must be at least 1");
            }
            let wires = Wires::connect(&agent.target()?).await?;
            let lab = agent.lab();
            let names = agent.names();
            let endpoint = names.to_system(&endpoint);
            let pause = Duration::from_millis(interval_ms);
            for i in 1..=count {
                let mut l = wires.set(&lab, &endpoint, false).await?;
                names.show(&mut l);
                println!(
                    "{}  {}  down ({i}/{count})",
                    wires::time_of_day(0),
                    wires::link_name(&l)
                );
                tokio::time::sleep(pause).await;
                let mut l = wires.set(&lab, &endpoint, true).await?;
                names.show(&mut l);
                println!(
                    "{}  {}  up ({i}/{count})",
                    wires::time_of_day(0),
                    wires::link_name(&l)
                );
                if i < count {
                    tokio::time::sleep(pause).await;
                }
            }
            Ok(())
        }
    }
}

async fn set(agent: &AgentArgs, endpoint: &str, up: bool) -> Result<()> {
    let names = agent.names();
    let mut l = Wires::connect(&agent.target()?)
        .await?
        .set(&agent.lab(), &names.to_system(endpoint), up)
        .await?;
    names.show(&mut l);
    println!("{}  {}", wires::link_name(&l), wires::state_word(&l));
    Ok(())
}

/// A duration written `500ms`, `30s`, `10m`, `2h` or `1d`.
fn parse_duration(text: &str) -> Result<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        anyhow::anyhow!("{text:?} is not a duration; write it like 30s, 10m, 2h or 1d")
    })?;
    let scale = match unit {
        "ms" => Duration::from_millis(1),
        "s" | "" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        "d" => Duration::from_secs(86_400),
        other => bail!("unknown unit {other:?} in {text:?}; use ms, s, m, h or d"),
    };
    Ok(scale * u32::try_from(n).unwrap_or(u32::MAX))
}
