//! Wires across nodes, end to end: several nodes on one machine (each a namespace with its own
//! Open vSwitch on the userspace datapath, a `br-phy` underlay and its own `ovswire-agent`),
//! pods as namespaces attached through the real `ovswire-cni`. Needs root.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ovswire_agent::api::tls::{Dial, PeerTls};
use ovswire_integration::cluster::{Cluster, Stop};
use ovswire_integration::measure::rss_mb;
use ovswire_integration::wait_until;
use ovswire_proto::v1::{
    AdminState, Endpoint, Link, LinkRef, ListLinksRequest, NodeState, OperState,
    SetLinkStateRequest,
};
use ovswire_testbed::Netns;

const L2_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../agent/tests/l2.py");

/// Clusters running at once: each is several OVS instances and agents, and a machine running
/// the whole suite has few cores; the waits below are for a wire, not for a CPU.
static SLOTS: std::sync::Mutex<usize> = std::sync::Mutex::new(0);
static FREED: std::sync::Condvar = std::sync::Condvar::new();
const MAX_CLUSTERS: usize = 2;

/// Holds one of the [`MAX_CLUSTERS`] slots until dropped.
struct Slot;

impl Slot {
    fn take() -> Self {
        let mut used = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        while *used >= MAX_CLUSTERS {
            used = FREED.wait(used).unwrap_or_else(|e| e.into_inner());
        }
        *used += 1;
        Self
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        *SLOTS.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        FREED.notify_one();
    }
}

fn carrier(ns: &Netns, ifname: &str) -> bool {
    ns.link_state(ifname).is_ok_and(|s| s.carrier)
}

fn ping(ns: &Netns, addr: &str, extra: &[&str]) -> bool {
    let mut args = vec!["-c", "1", "-W", "2"];
    args.extend_from_slice(extra);
    args.push(addr);
    ns.output("ping", &args).is_ok_and(|o| o.status.success())
}

/// LLDP, LACP, STP and IS-IS frames sent out of `from`'s eth1, and the IEEE 802.1 frames
/// `to`'s eth1 saw meanwhile, as hex lines each.
fn l2_control_frames(from: &Netns, to: &Netns) -> Result<(String, String)> {
    let mut recv = Command::new("python3");
    recv.args([L2_SCRIPT, "recv", "eth1", "3"])
        .stdout(Stdio::piped());
    let recv = to.spawn(recv)?;
    std::thread::sleep(Duration::from_millis(500));
    let sent = from.exec("python3", &[L2_SCRIPT, "send", "eth1"])?;
    let got = String::from_utf8(recv.wait_with_output()?.stdout)?;
    Ok((sent, got))
}

type PeersClient = ovswire_proto::v1::peers_client::PeersClient<tonic::transport::Channel>;

/// A Peers client of node0's agent (at `ip`, port 7471) from the caller's namespace, showing the
/// certificate named `name` in directory `identity`.
async fn peers_client(
    identity: std::path::PathBuf,
    name: String,
    ip: std::net::Ipv4Addr,
) -> std::result::Result<PeersClient, String> {
    let tls = PeerTls::load(&identity, &name).map_err(|e| e.to_string())?;
    let to = std::net::SocketAddr::from((ip, 7471));
    let dial =
        Dial::new(tls, "node0", to, None, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    let channel = tonic::transport::Endpoint::from_static("http://node0:7471")
        .connect_with_connector(dial)
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(PeersClient::new(channel))
}

/// The certificate node0's Peers API shows a client calling from the caller's namespace with
/// the identity `name` in `identity` (DER).
async fn served_certificate(
    identity: std::path::PathBuf,
    name: &str,
    ip: std::net::Ipv4Addr,
) -> Vec<u8> {
    let tls = PeerTls::load(&identity, name).expect("a test identity");
    let tcp = tokio::net::TcpStream::connect((ip, 7471))
        .await
        .expect("node0's Peers port");
    let node0 = rustls_pki_types::ServerName::try_from("node0").expect("a name");
    let stream = tokio_rustls::TlsConnector::from(tls.client())
        .connect(node0, tcp)
        .await
        .expect("a TLS handshake with node0");
    stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("node0 shows a certificate")[0]
        .to_vec()
}

/// Starts `count` pings from `ns` to `addr`, one every 10 ms.
fn ping_every_10ms(ns: &Netns, addr: &str, count: u32) -> Result<std::process::Child> {
    let mut pinger = Command::new("ping");
    pinger
        .args(["-i", "0.01", "-c", &count.to_string(), "-W", "1", addr])
        .stdout(Stdio::piped());
    Ok(ns.spawn(pinger)?)
}

/// Waits for `pinger` to end and checks that every ping was answered; `what` says what
/// happened meanwhile.
fn no_ping_lost(pinger: std::process::Child, what: &str) -> Result<()> {
    let out = String::from_utf8(pinger.wait_with_output()?.stdout)?;
    ensure!(out.contains(" 0% packet loss"), "{what}:\n{out}");
    Ok(())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

fn links(cluster: &Cluster, node: usize, lab: &str) -> Result<Vec<Link>> {
    rt().block_on(async {
        Ok(cluster
            .wires(node)
            .await?
            .list_links(ListLinksRequest {
                lab: lab.into(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .links)
    })
}

fn link_ref(lab: &str, a: (&str, &str), b: (&str, &str)) -> LinkRef {
    let end = |(pod, ifname): (&str, &str)| {
        Some(Endpoint {
            pod: pod.into(),
            ifname: ifname.into(),
        })
    };
    LinkRef {
        lab: lab.into(),
        a: end(a),
        b: end(b),
    }
}

fn set_state(cluster: &Cluster, node: usize, r: LinkRef, up: bool) -> Result<Link> {
    rt().block_on(async {
        let admin = if up { AdminState::Up } else { AdminState::Down };
        Ok(cluster
            .wires(node)
            .await?
            .set_link_state(SetLinkStateRequest {
                r#ref: Some(r),
                admin: admin as i32,
            })
            .await?
            .into_inner())
    })
}

/// Two pods on two nodes, `r1:eth1` on node0 and `r2:eth1` on node1, wired and addressed.
struct Pair {
    cluster: Cluster,
    r1: Netns,
    r2: Netns,
}

fn pair(lab: &str, mtu: u32, link_mtu: u32) -> Result<Pair> {
    let topology =
        format!("lab: {lab}\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n    mtu: {link_mtu}\n");
    let cluster = Cluster::with_topology(2, mtu, Some(&topology))?;
    let r1 = cluster.pod(0, "r1")?;
    let r2 = cluster.pod(1, "r2")?;
    cluster.cni_add(0, lab, "r1", &r1, "eth1")?;
    cluster.cni_add(1, lab, "r2", &r2, "eth1")?;
    r1.add_address("eth1", "10.0.0.1/24")?;
    r2.add_address("eth1", "10.0.0.2/24")?;
    Ok(Pair { cluster, r1, r2 })
}

impl Pair {
    fn wait_carrier(&self, up: bool) -> Result<()> {
        wait_until(
            if up {
                "carrier on both pods"
            } else {
                "NO-CARRIER on both pods"
            },
            30,
            || carrier(&self.r1, "eth1") == up && carrier(&self.r2, "eth1") == up,
        )
    }
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_cross_node_wire_carries_ping_tcp_jumbo_frames_and_l2_control_frames() -> Result<()> {
    let _slot = Slot::take();
    let p = pair("xa", 9000, 9000)?;
    p.wait_carrier(true)?;
    wait_until("ping across nodes", 15, || ping(&p.r1, "10.0.0.2", &[]))?;
    ensure!(
        ping(&p.r1, "10.0.0.2", &["-s", "8972", "-M", "do"]),
        "a 9000-byte packet crosses unfragmented"
    );

    // TCP, which fails on the userspace datapath unless the veths are set up right.
    let mut server = Command::new("iperf3");
    server.args(["-s", "-1"]).stdout(Stdio::null());
    let mut server = p.r2.spawn(server)?;
    std::thread::sleep(Duration::from_millis(300));
    let out = p.r1.exec("iperf3", &["-c", "10.0.0.2", "-t", "1", "-J"])?;
    let _ = server.wait();
    let json: serde_json::Value = serde_json::from_str(&out)?;
    let bps = json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    ensure!(bps > 0.0, "TCP must cross the wire: {out}");
    eprintln!("TCP across nodes: {:.2} Gbit/s", bps / 1e9);

    // LLDP, LACP, STP and IS-IS frames arrive intact on the far node.
    let (sent, got) = l2_control_frames(&p.r1, &p.r2)?;
    ensure!(sent.lines().count() == 4, "four control frames sent");
    for frame in sent.lines() {
        ensure!(
            got.lines().any(|l| l == frame),
            "frame {frame} did not arrive intact; got:\n{got}"
        );
    }

    // Both agents show where each end lives and the key they agreed on.
    let a = &links(&p.cluster, 0, "xa")?[0];
    let b = &links(&p.cluster, 1, "xa")?[0];
    ensure!(a.oper == OperState::Up as i32 && b.oper == OperState::Up as i32);
    ensure!(
        (a.node_a.as_str(), a.node_b.as_str()) == ("node0", "node1"),
        "{a:?}"
    );
    ensure!(
        a.tunnel_key != 0 && a.tunnel_key == b.tunnel_key,
        "{a:?} {b:?}"
    );
    ensure!(a.effective_mtu == 9000, "{a:?}");
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn flapping_from_either_node_takes_both_ends_down_and_up() -> Result<()> {
    let _slot = Slot::take();
    let p = pair("xf", 1500, 1500)?;
    p.wait_carrier(true)?;
    let r = link_ref("xf", ("r1", "eth1"), ("r2", "eth1"));
    for node in [0, 1] {
        let l = set_state(&p.cluster, node, r.clone(), false)?;
        ensure!(l.oper == OperState::Down as i32, "{l:?}");
        p.wait_carrier(false)?;
        ensure!(!ping(&p.r1, "10.0.0.2", &[]));
        set_state(&p.cluster, node, r.clone(), true)?;
        p.wait_carrier(true)?;
        // The neighbour entries went with the carrier: the first packets resolve them again.
        wait_until("traffic back after up", 15, || ping(&p.r1, "10.0.0.2", &[]))?;
    }
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn restarts_of_an_agent_a_vswitchd_and_a_pod_keep_or_restore_the_wire() -> Result<()> {
    let _slot = Slot::take();
    let mut p = pair("xr", 1500, 1500)?;
    p.wait_carrier(true)?;
    // Resolve neighbours first: what is measured is the restart, not the first ARP.
    wait_until("a first ping", 15, || ping(&p.r1, "10.0.0.2", &[]))?;

    // kill -9 of node1's agent under traffic: not one packet lost.
    let pinger = ping_every_10ms(&p.r1, "10.0.0.2", 400)?;
    std::thread::sleep(Duration::from_millis(500));
    p.cluster.restart_agent(1, Stop::Kill)?;
    p.cluster.restart_agent(0, Stop::Kill)?;
    no_ping_lost(pinger, "pings were lost while agents restarted")?;
    ensure!(carrier(&p.r1, "eth1") && carrier(&p.r2, "eth1"));

    // node1's ovs-vswitchd restarts: the wire comes back by itself.
    p.cluster.restart_vswitchd(1)?;
    wait_until("ping after node1's vswitchd restart", 20, || {
        ping(&p.r1, "10.0.0.2", &[])
    })?;

    // r2 restarts: a new sandbox (namespace) with a new veth; the wire is rebuilt.
    p.cluster.cni_del(1, "xr", "r2", &p.r2, "eth1")?;
    wait_until("r1 to lose carrier when r2 goes", 15, || {
        !carrier(&p.r1, "eth1")
    })?;
    drop(std::mem::replace(&mut p.r2, p.cluster.pod(1, "r2-new")?));
    p.cluster.cni_add(1, "xr", "r2", &p.r2, "eth1")?;
    p.r2.add_address("eth1", "10.0.0.2/24")?;
    p.wait_carrier(true)?;
    wait_until("ping to the restarted pod", 10, || {
        ping(&p.r1, "10.0.0.2", &[])
    })?;
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_silent_peer_agent_keeps_its_wires_and_a_stopped_datapath_takes_carrier_away() -> Result<()> {
    let _slot = Slot::take();
    let mut p = pair("xl", 1500, 1500)?;
    p.wait_carrier(true)?;
    wait_until("a first ping", 15, || ping(&p.r1, "10.0.0.2", &[]))?;

    // node1's agent is gone for 60 s under a ping every 10 ms: not one frame is lost, and the
    // wire stays up on node0 (its tunnel's BFD session still answers).
    let pinger = ping_every_10ms(&p.r1, "10.0.0.2", 6300)?;
    std::thread::sleep(Duration::from_millis(500));
    p.cluster.stop_agent(1, Stop::Kill)?;
    std::thread::sleep(Duration::from_secs(60));
    let l = &links(&p.cluster, 0, "xl")?[0];
    ensure!(l.oper == OperState::Up as i32, "{l:?}");
    p.cluster.start_agent(1)?;
    no_ping_lost(pinger, "pings were lost while node1's agent was away")?;

    // node1's ovs-vswitchd dies: r1 loses carrier within 3 s, and the wire stays wired.
    p.cluster.kill_vswitchd(1)?;
    wait_until(
        "r1 to lose carrier after node1's datapath stopped",
        3,
        || !carrier(&p.r1, "eth1"),
    )?;
    let l = &links(&p.cluster, 0, "xl")?[0];
    ensure!(
        l.oper == OperState::Pending as i32 && l.reason.contains("BFD"),
        "{l:?}"
    );
    p.cluster.restart_vswitchd(1)?;
    p.wait_carrier(true)?;
    wait_until("ping after node1's datapath is back", 15, || {
        ping(&p.r1, "10.0.0.2", &[])
    })?;
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn two_labs_with_identical_link_names_stay_isolated() -> Result<()> {
    let _slot = Slot::take();
    let topo = |lab: &str| format!("lab: {lab}\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n");
    let (ta, tb) = (topo("labx"), topo("laby"));
    let cluster = Cluster::with_topologies(2, 1500, &[&ta, &tb])?;
    let mut pods = Vec::new();
    for lab in ["labx", "laby"] {
        let r1 = cluster.pod(0, &format!("{lab}-r1"))?;
        let r2 = cluster.pod(1, &format!("{lab}-r2"))?;
        cluster.cni_add(0, lab, "r1", &r1, "eth1")?;
        cluster.cni_add(1, lab, "r2", &r2, "eth1")?;
        pods.push((r1, r2));
    }
    for (r1, r2) in &pods {
        wait_until("carrier on all four pods", 30, || {
            carrier(r1, "eth1") && carrier(r2, "eth1")
        })
        .map_err(|e| e.context(cluster.logs(60)))?;
    }
    let keys: Vec<u32> = ["labx", "laby"]
        .iter()
        .map(|lab| Ok(links(&cluster, 0, lab)?[0].tunnel_key))
        .collect::<Result<_>>()?;
    ensure!(
        keys[0] != keys[1],
        "the two labs share tunnel key {}",
        keys[0]
    );

    // Frames sent in one lab arrive in its own far pod and never in the other lab's.
    for (from, to, other) in [(0, 0, 1), (1, 1, 0)] {
        let listen = |ns: &Netns| {
            let mut c = Command::new("python3");
            c.args([L2_SCRIPT, "recv", "eth1", "3"])
                .stdout(Stdio::piped());
            ns.spawn(c)
        };
        let mine = listen(&pods[to].1)?;
        let theirs = listen(&pods[other].1)?;
        std::thread::sleep(Duration::from_millis(500));
        let sent = pods[from].0.exec("python3", &[L2_SCRIPT, "send", "eth1"])?;
        let got = String::from_utf8(mine.wait_with_output()?.stdout)?;
        let leaked = String::from_utf8(theirs.wait_with_output()?.stdout)?;
        for frame in sent.lines() {
            ensure!(got.contains(frame), "lab {to}'s pod missed {frame}");
            ensure!(
                !leaked.contains(frame),
                "frame {frame} leaked into the other lab"
            );
        }
    }
    Ok(())
}

/// The addresses of the two ends of link `n` (below 256): 10.100.n.1 and .2, a /30.
fn subnet(n: usize) -> (String, String) {
    (format!("10.100.{n}.1"), format!("10.100.{n}.2"))
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_random_100_link_topology_over_3_nodes_converges_and_every_wire_passes_traffic() -> Result<()> {
    let _slot = Slot::take();
    const PODS: usize = 30;
    const LINKS: usize = 100;
    // A small deterministic generator: the same "random" lab on every run.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut ifaces = vec![0usize; PODS];
    let mut wires = Vec::new();
    while wires.len() < LINKS {
        let (a, b) = (next(PODS), next(PODS));
        if a == b {
            continue;
        }
        ifaces[a] += 1;
        ifaces[b] += 1;
        wires.push(((a, ifaces[a]), (b, ifaces[b])));
    }
    let mut topology = String::from("lab: rnd\nmtu: 1500\nlinks:\n");
    for ((a, i), (b, j)) in &wires {
        topology.push_str(&format!("  - endpoints: [p{a}:eth{i}, p{b}:eth{j}]\n"));
    }
    let cluster = Cluster::with_topology(3, 1500, Some(&topology))?;
    let placement: Vec<usize> = (0..PODS).map(|_| next(3)).collect();
    let pods: Vec<Netns> = (0..PODS)
        .map(|p| cluster.pod(placement[p], &format!("p{p}")))
        .collect::<Result<_>>()?;
    for (p, ns) in pods.iter().enumerate() {
        for i in 1..=ifaces[p] {
            cluster
                .cni_add(
                    placement[p],
                    "rnd",
                    &format!("p{p}"),
                    ns,
                    &format!("eth{i}"),
                )
                .with_context(|| format!("ADD p{p}:eth{i}"))?;
        }
    }
    for (n, ((a, i), (b, j))) in wires.iter().enumerate() {
        let (x, y) = subnet(n);
        pods[*a].add_address(&format!("eth{i}"), &format!("{x}/30"))?;
        pods[*b].add_address(&format!("eth{j}"), &format!("{y}/30"))?;
    }
    wait_until("every link up on every node", 60, || {
        (0..3).all(|node| {
            links(&cluster, node, "rnd").is_ok_and(|ls| {
                ls.iter().all(|l| {
                    l.oper == OperState::Up as i32
                        || (l.node_a != format!("node{node}") && l.node_b != format!("node{node}"))
                })
            })
        })
    })?;
    let failed: Vec<String> = std::thread::scope(|s| {
        let checks: Vec<_> = wires
            .iter()
            .enumerate()
            .map(|(n, ((a, i), (b, j)))| {
                let pods = &pods;
                s.spawn(move || {
                    let (_, to) = subnet(n);
                    let ok = (0..3).any(|_| ping(&pods[*a], &to, &[]));
                    (!ok).then(|| format!("p{a}:eth{i} -> p{b}:eth{j} ({to})"))
                })
            })
            .collect();
        checks
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect()
    });
    ensure!(failed.is_empty(), "wires without traffic: {failed:?}");
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_small_underlay_is_reported_as_the_effective_mtu() -> Result<()> {
    let _slot = Slot::take();
    // Underlay MTU 1600 (the harness adds 100): a 9000-byte link can carry 1550.
    let p = pair("xm", 1500, 9000)?;
    p.wait_carrier(true)?;
    let l = &links(&p.cluster, 0, "xm")?[0];
    ensure!(l.mtu == 9000 && l.effective_mtu == 1550, "{l:?}");
    ensure!(l.reason.contains("underlay MTU"), "{l:?}");
    ensure!(
        ping(&p.r1, "10.0.0.2", &["-s", "1500"]),
        "what fits still crosses"
    );
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn peers_need_the_cluster_s_certificate_a_peer_s_address_and_take_a_rotated_certificate()
-> Result<()> {
    let _slot = Slot::take();
    let cluster = Cluster::new(2, 1500)?;
    let ip0 = cluster.underlay().ip(0);
    let node1 = cluster.node(1)?;
    // A certificate for node1 from another CA.
    let foreign_ca = node1.dir().join("foreign-ca");
    let foreign = node1.dir().join("foreign");
    ovswire_agent::pki::init(&foreign_ca, 30)?;
    ovswire_agent::pki::issue_into(&foreign_ca, "node1", &[], 30, &foreign)?;
    let (plain, other_ca) = node1.netns().block_on(|_| async move {
        let state = NodeState {
            node: "node1".into(),
            ..NodeState::default()
        };
        // Plaintext HTTP/2, as agents spoke with a bearer token before.
        let plain = async {
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{ip0}:7471"))
                .expect("a URL")
                .connect()
                .await
                .map_err(|e| format!("{e:?}"))?;
            PeersClient::new(channel)
                .exchange(state.clone())
                .await
                .map(drop)
                .map_err(|e| format!("{e:?}"))
        }
        .await;
        let other_ca = async {
            peers_client(foreign, "node1".into(), ip0)
                .await?
                .exchange(state.clone())
                .await
                .map(drop)
                .map_err(|e| format!("{e:?}"))
        }
        .await;
        Ok((plain, other_ca))
    })?;
    ensure!(plain.is_err(), "a plaintext exchange was taken");
    ensure!(other_ca.is_err(), "a certificate of another CA was taken");
    ensure!(
        cluster.agent(0)?.log().contains("TLS handshake failed"),
        "{}",
        cluster.logs(20)
    );

    // From an address that is no peer's, on node1's underlay: closed at once, unread.
    node1
        .netns()
        .exec("ip", &["addr", "add", "172.31.0.200/24", "dev", "br-phy"])?;
    let closed_at_once = node1.netns().block_on(|_| async move {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .bind("172.31.0.200:0".parse().expect("an address"))
            .expect("the stranger's address");
        let mut stream = socket
            .connect((ip0, 7471).into())
            .await
            .expect("the kernel accepts before the agent decides");
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::io::AsyncReadExt::read(&mut stream, &mut buf),
        )
        .await;
        Ok(matches!(read, Ok(Ok(0)) | Ok(Err(_))))
    })?;
    ensure!(closed_at_once, "a stranger's connection was kept open");
    ensure!(
        cluster
            .agent(0)?
            .log()
            .contains("from an address that is no peer's"),
        "{}",
        cluster.logs(20)
    );

    // node0's certificate, issued again while its agent runs, is the one served from the next
    // connection on.
    let (me, ip) = (cluster.identity_dir(1)?, ip0);
    let served = || -> Result<Vec<u8>> {
        let me = me.clone();
        Ok(node1
            .netns()
            .block_on(|_| async move { Ok(served_certificate(me, "node1", ip).await) })?)
    };
    let before = served()?;
    cluster.issue_identity("node0", &cluster.identity_dir(0)?)?;
    wait_until("node0 serves its new certificate", 20, || {
        served().is_ok_and(|now| now != before)
    })?;
    ensure!(
        cluster
            .agent(0)?
            .log()
            .contains("peer certificate files changed"),
        "{}",
        cluster.logs(20)
    );
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn the_peers_server_caps_connections_and_closes_silent_ones() -> Result<()> {
    use std::io::Read;
    let _slot = Slot::take();
    let mut cluster = Cluster::new(2, 1500)?;
    let max = 4;
    cluster.set_extra_args(0, &[&format!("--peer-max-connections={max}")]);
    cluster.restart_agent(0, Stop::Graceful)?;
    let addr = std::net::SocketAddr::from((cluster.underlay().ip(0), 7471));
    // The restarted agent serves its peers a moment after it answers locally.
    wait_until("the peers port to listen", 15, || {
        cluster
            .node(1)
            .and_then(|n| Ok(n.netns().run(move || std::net::TcpStream::connect(addr))?))
            .is_ok_and(|c| c.is_ok())
    })?;
    // The probe's slot is freed once the server reads its end.
    std::thread::sleep(Duration::from_millis(300));
    // Connections that never say anything, more than the cap.
    let conns = cluster.node(1)?.netns().run(move || {
        (0..max + 3)
            .map(|_| std::net::TcpStream::connect(addr))
            .collect::<std::io::Result<Vec<_>>>()
    })??;
    let closed = |c: &std::net::TcpStream, wait: Duration| -> bool {
        c.set_read_timeout(Some(wait)).expect("a read timeout");
        // The server says nothing before the client's TLS hello: read until the end or the wait.
        let mut buf = [0u8; 1024];
        let mut c = c;
        loop {
            match c.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                // Still open when the wait ran out.
                Err(e) => {
                    return !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    );
                }
            }
        }
    };
    let (refused, admitted): (Vec<_>, Vec<_>) = conns
        .iter()
        .partition(|c| closed(c, Duration::from_millis(500)));
    let refused = refused.len();
    // Node1's own agent may hold one slot for its exchanges.
    ensure!(
        (3..=4).contains(&refused),
        "{refused} of {} connections closed at once with a cap of {max}",
        max + 3
    );
    // The ones let in are closed for saying nothing.
    let start = Instant::now();
    for c in admitted {
        ensure!(
            closed(c, Duration::from_secs(20)),
            "a silent connection stayed open"
        );
    }
    let took = start.elapsed();
    ensure!(
        took < Duration::from_secs(15),
        "silent connections lived {took:?}"
    );
    ensure!(
        cluster
            .agent(0)?
            .log()
            .contains("too many connections; closed a new one"),
        "{}",
        cluster.logs(20)
    );
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_flood_of_idle_connections_to_the_peers_port_leaves_wires_cni_and_peers_serving() -> Result<()>
{
    use std::io::Read;
    use std::net::IpAddr;
    let _slot = Slot::take();
    let topology =
        "lab: xf\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n  - endpoints: [r1:eth2, r3:eth1]\n";
    let cluster = Cluster::with_topology(2, 1500, Some(topology))?;
    let (r1, r2, r3) = (
        cluster.pod(0, "r1")?,
        cluster.pod(1, "r2")?,
        cluster.pod(0, "r3")?,
    );
    cluster.cni_add(0, "xf", "r1", &r1, "eth1")?;
    cluster.cni_add(1, "xf", "r2", &r2, "eth1")?;
    r1.add_address("eth1", "10.0.0.1/24")?;
    r2.add_address("eth1", "10.0.0.2/24")?;
    wait_until("r1 pings r2", 30, || ping(&r1, "10.0.0.2", &[]))?;
    let pid = cluster.agent(0)?.pid();
    let rss_before = rss_mb(pid).context("the agent's RSS")?;

    // 10,000 connections from an address on the underlay that is no peer's, and 500 from
    // node1's own, all saying nothing and kept open by this process.
    let files = 12_000;
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, files, files)?;
    let node1 = cluster.node(1)?;
    node1
        .netns()
        .exec("ip", &["addr", "add", "172.31.0.201/24", "dev", "br-phy"])?;
    let (ip0, ip1) = (cluster.underlay().ip(0), cluster.underlay().ip(1));
    let stranger = IpAddr::from([172, 31, 0, 201]);
    let pinger = ping_every_10ms(&r1, "10.0.0.2", 1000)?;
    let flood = node1.netns().block_on(|_| async move {
        let mut held: Vec<(IpAddr, std::net::TcpStream)> = Vec::new();
        for (from, count) in [(stranger, 10_000), (IpAddr::from(ip1), 500)] {
            for _ in 0..count {
                let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
                socket.bind((from, 0).into()).expect("a source address");
                let stream = socket
                    .connect((ip0, 7471).into())
                    .await
                    .expect("the kernel accepts before the agent decides");
                held.push((from, stream.into_std().expect("a std stream")));
            }
        }
        Ok(held)
    })?;
    ensure!(flood.len() == 10_500);

    // While they are held: a same-node wire is made through CNI, the cross-node wire lost no
    // frame, and node1 flaps it through node0's Peers API.
    cluster.cni_add(0, "xf", "r1", &r1, "eth2")?;
    cluster.cni_add(0, "xf", "r3", &r3, "eth1")?;
    r1.add_address("eth2", "10.0.1.1/24")?;
    r3.add_address("eth1", "10.0.1.3/24")?;
    wait_until("r1 pings r3", 15, || ping(&r1, "10.0.1.3", &[]))?;
    // The flood crosses the same userspace underlay switch as the wire's frames, which may
    // drop one under it; the wire itself must stay: at most 1 % lost, every other answered.
    let out = String::from_utf8(pinger.wait_with_output()?.stdout)?;
    let received: u32 = out
        .split(" received")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .context("ping's summary")?;
    ensure!(
        received >= 990,
        "10,000 idle connections to node0's Peers port:\n{out}"
    );
    let r1r2 = link_ref("xf", ("r1", "eth1"), ("r2", "eth1"));
    set_state(&cluster, 1, r1r2.clone(), false)?;
    wait_until("node1's flap to reach r1", 10, || !carrier(&r1, "eth1"))?;
    set_state(&cluster, 1, r1r2, true)?;
    wait_until("r1 pings r2 again", 30, || ping(&r1, "10.0.0.2", &[]))?;
    let rss_during = rss_mb(pid).context("the agent's RSS")?;
    ensure!(
        rss_during < rss_before + 20.0,
        "the agent grew from {rss_before:.1} to {rss_during:.1} MiB under the flood"
    );

    // Every stranger's connection was closed unread, and all but a few of node1's.
    let mut open = [0usize; 2];
    for (from, stream) in &flood {
        stream.set_read_timeout(Some(Duration::from_millis(20)))?;
        let mut buf = [0u8; 64];
        let mut stream = stream;
        if matches!(stream.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut)
        {
            open[usize::from(*from != stranger)] += 1;
        }
    }
    ensure!(
        open[0] == 0,
        "{} connections from a stranger stayed open",
        open[0]
    );
    ensure!(
        open[1] <= 16,
        "{} connections from node1 stayed open (16 at most)",
        open[1]
    );
    let log = cluster.agent(0)?.log();
    ensure!(
        log.contains("from an address that is no peer's")
            && log.contains("too many connections from one address"),
        "{}",
        cluster.logs(20)
    );
    drop(flood);
    let l = links(&cluster, 0, "xf")?;
    ensure!(l.iter().all(|l| l.oper == OperState::Up as i32), "{l:?}");
    Ok(())
}

/// The smallest round-trip time in ms of ten pings.
fn min_rtt(ns: &Netns, addr: &str) -> Result<f64> {
    let out = ns.output("ping", &["-q", "-c", "10", "-i", "0.05", "-W", "2", addr])?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with("rtt"))
        .with_context(|| format!("no replies: {text}"))?;
    let min = line
        .split('=')
        .nth(1)
        .and_then(|v| v.trim().split('/').next())
        .context("rtt line")?;
    Ok(min.parse()?)
}

fn set_impairment(cluster: &Cluster, node: usize, r: LinkRef, text: &str) -> Result<Link> {
    let imp: ovswire_core::impair::LinkImpairment = text.parse()?;
    rt().block_on(async {
        Ok(cluster
            .wires(node)
            .await?
            .set_link_impairment(ovswire_proto::v1::SetLinkImpairmentRequest {
                r#ref: Some(r),
                impairment: Some((&imp).into()),
            })
            .await?
            .into_inner())
    })
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_cross_node_wire_is_impaired_on_both_nodes_from_either_and_keeps_it_across_restarts()
-> Result<()> {
    let _slot = Slot::take();
    let mut p = pair("xi", 1500, 1500)?;
    p.wait_carrier(true)?;
    wait_until("a first ping", 15, || ping(&p.r1, "10.0.0.2", &[]))?;
    let direct = min_rtt(&p.r1, "10.0.0.2")?;

    // Set from node0: node0 delays what r1 sends, node1 what r2 sends.
    let r = link_ref("xi", ("r1", "eth1"), ("r2", "eth1"));
    let link = set_impairment(
        &p.cluster,
        0,
        r.clone(),
        "a->b: delay=10ms; b->a: delay=5ms",
    )?;
    let imp = link.impairment.context("impairment in the reply")?;
    ensure!(imp.a_to_b.map(|i| i.delay_us) == Some(10_000), "{imp:?}");
    let far = links(&p.cluster, 1, "xi")?;
    let far_imp = far[0].impairment.context("far impairment")?;
    ensure!(
        far_imp.b_to_a.map(|i| i.delay_us) == Some(5_000),
        "{far_imp:?}"
    );
    ensure!(
        carrier(&p.r1, "eth1") && carrier(&p.r2, "eth1"),
        "carrier kept"
    );
    // The change is in both nodes' history, noted; the state never left up.
    for node in 0..2 {
        let events = rt().block_on(async {
            anyhow::Ok(
                p.cluster
                    .wires(node)
                    .await?
                    .link_history(ovswire_proto::v1::LinkHistoryRequest {
                        lab: "xi".into(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner()
                    .events,
            )
        })?;
        ensure!(
            events
                .iter()
                .any(|e| e.note == "impairment: a->b: delay=10ms; b->a: delay=5ms"),
            "node{node}: {events:?}"
        );
        let last = events
            .last()
            .and_then(|e| e.link.as_ref())
            .context("an event")?;
        ensure!(last.oper == OperState::Up as i32, "node{node}: {last:?}");
    }
    let rtt = min_rtt(&p.r1, "10.0.0.2")?;
    ensure!(
        (15.0..25.0).contains(&rtt),
        "10 ms + 5 ms asked, {rtt:.2} ms measured (direct {direct:.2} ms)"
    );

    // node1's vswitchd and node0's agent restart: the delays stay.
    p.cluster.restart_vswitchd(1)?;
    p.cluster.restart_agent(0, Stop::Kill)?;
    wait_until("the delays back after the restarts", 30, || {
        min_rtt(&p.r1, "10.0.0.2").is_ok_and(|t| t >= 15.0)
    })?;

    // Cleared from node1: both halves go back to the direct path.
    set_impairment(&p.cluster, 1, r, "none")?;
    wait_until("the direct path again", 20, || {
        min_rtt(&p.r1, "10.0.0.2").is_ok_and(|t| t < 10.0)
    })?;
    ensure!(
        carrier(&p.r1, "eth1") && carrier(&p.r2, "eth1"),
        "carrier kept"
    );
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_lan_segment_across_three_nodes_copies_each_frame_once_to_every_member() -> Result<()> {
    use ovswire_testbed::frames::{Send, send_and_count};
    let _slot = Slot::take();
    // r1 and r2 on node0, r3 on node1, r4 on node2, all on segment lan.
    let topology = "lab: xs\nsegments: [lan]\nlinks:\n  - endpoints: [r1:eth1, lan:e1]\n  - endpoints: [r2:eth1, lan:e2]\n  - endpoints: [r3:eth1, lan:e3]\n  - endpoints: [r4:eth1, lan:e4]\n";
    let mut cluster = Cluster::with_topology(3, 1500, Some(topology))?;
    let place = [(0, "r1"), (0, "r2"), (1, "r3"), (2, "r4")];
    let mut pods = Vec::new();
    for (i, (node, name)) in place.iter().enumerate() {
        let pod = cluster.pod(*node, name)?;
        cluster.cni_add(*node, "xs", name, &pod, "eth1")?;
        pod.add_address("eth1", &format!("10.0.9.{}/24", i + 1))?;
        pods.push(pod);
    }
    wait_until("carrier on every member", 30, || {
        pods.iter().all(|p| carrier(p, "eth1"))
    })?;
    // ARP is broadcast: every member reaches every other, on its node and across.
    for (i, from) in pods.iter().enumerate() {
        for j in (0..pods.len()).filter(|j| *j != i) {
            let to = format!("10.0.9.{}", j + 1);
            wait_until(&format!("r{} pings {to}", i + 1), 15, || {
                ping(from, &to, &[])
            })?;
        }
    }
    // Each frame arrives once and unchanged: on the same node, from node0 to a member alone on
    // its node, and between two nodes neither of which is node0.
    for (from, to) in [(0, 1), (0, 2), (2, 3), (3, 0)] {
        let arrived = send_and_count(
            pods[from].name(),
            "eth1",
            pods[to].name(),
            "eth1",
            Send::frames(50),
        )?;
        ensure!(
            (arrived.count, arrived.altered) == (50, 0),
            "r{} to r{}: {arrived:?}",
            from + 1,
            to + 1
        );
    }
    // LLDP, LACP, STP and IS-IS frames from node0 reach the member on node2 intact.
    let (sent, got) = l2_control_frames(&pods[0], &pods[3])?;
    for frame in sent.lines() {
        ensure!(
            got.lines().filter(|l| *l == frame).count() == 1,
            "{frame} once; got:\n{got}"
        );
    }

    // kill -9 of node0's agent under a 10 ms ping across: not one packet lost.
    let pinger = ping_every_10ms(&pods[0], "10.0.9.3", 300)?;
    std::thread::sleep(Duration::from_millis(500));
    cluster.restart_agent(0, Stop::Kill)?;
    no_ping_lost(pinger, "pings were lost while the agent restarted")?;

    // r3's cable out, on its node: r3 alone leaves the LAN.
    set_state(
        &cluster,
        1,
        link_ref("xs", ("lan", "e3"), ("r3", "eth1")),
        false,
    )?;
    wait_until("r3 loses carrier", 15, || !carrier(&pods[2], "eth1"))?;
    ensure!(carrier(&pods[0], "eth1") && carrier(&pods[3], "eth1"));
    ensure!(ping(&pods[0], "10.0.9.4", &[]) && !ping(&pods[0], "10.0.9.3", &[]));
    set_state(
        &cluster,
        1,
        link_ref("xs", ("lan", "e3"), ("r3", "eth1")),
        true,
    )?;
    wait_until("r3 back on the LAN", 15, || ping(&pods[0], "10.0.9.3", &[]))?;
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_certified_node_speaks_only_for_itself() -> Result<()> {
    let _slot = Slot::take();
    // r1 on node0 wired to r2 on node1; node2 is a peer too.
    let topology =
        "lab: xi\nlinks:\n  - endpoints: [r1:eth1, r2:eth1]\n  - endpoints: [r1:eth2, r9:eth1]\n";
    let cluster = Cluster::with_topology(3, 1500, Some(topology))?;
    let (r1, r2) = (cluster.pod(0, "r1")?, cluster.pod(1, "r2")?);
    cluster.cni_add(0, "xi", "r1", &r1, "eth1")?;
    cluster.cni_add(1, "xi", "r2", &r2, "eth1")?;
    cluster.cni_add(0, "xi", "r1", &r1, "eth2")?;
    let r9 = cluster.pod(2, "r9")?;
    cluster.cni_add(2, "xi", "r9", &r9, "eth1")?;
    r1.add_address("eth1", "10.0.0.1/24")?;
    r2.add_address("eth1", "10.0.0.2/24")?;
    wait_until("r1 pings r2", 30, || ping(&r1, "10.0.0.2", &[]))?;

    let ip0 = cluster.underlay().ip(0);
    let node2_ip = cluster.underlay().ip(2).to_string();
    let report = |node: &str, underlay: &str, generation: u64| NodeState {
        node: node.into(),
        underlay_ip: underlay.into(),
        generation,
        endpoints: vec![ovswire_proto::v1::PeerEndpoint {
            lab: "xi".into(),
            pod: "r9".into(),
            ifname: "eth1".into(),
            ready: true,
        }],
        ..NodeState::default()
    };
    // Identities on node2: its own, and valid certificates of the cluster's CA named for node1
    // and for a node the cluster does not have.
    let node2_dir = cluster.node(2)?.dir().to_owned();
    let own = cluster.identity_dir(2)?;
    let (as_node1, as_intruder) = (node2_dir.join("as-node1"), node2_dir.join("as-intruder"));
    cluster.issue_identity("node1", &as_node1)?;
    cluster.issue_identity("intruder", &as_intruder)?;
    // Newer than node2's own reports (its agent started a few times): taken, tunnel address
    // aside.
    let newer = ((1u64 << 29) + 1000) << 32;
    let reports = vec![
        // node2's certificate, claiming to be node1 (to take r2's frames or move node1's
        // tunnel).
        (own.clone(), "node2", report("node1", &node2_ip, u64::MAX)),
        // A certificate for node1, from node2's address.
        (as_node1, "node1", report("node1", &node2_ip, u64::MAX)),
        // A node the cluster does not know.
        (as_intruder, "intruder", report("intruder", &node2_ip, 1)),
        // As itself, with another tunnel address.
        (own.clone(), "node2", report("node2", "flow", newer)),
        // As itself, with a generation no restart count reaches: every later report would
        // look old.
        (own.clone(), "node2", report("node2", &node2_ip, u64::MAX)),
    ];
    let flap = |from: &str| ovswire_proto::v1::PeerLinkState {
        link: Some(link_ref("xi", ("r1", "eth1"), ("r2", "eth1"))),
        admin: AdminState::Down as i32,
        from_node: from.into(),
    };
    // node2 taking down the far end of a link it has no end of, as itself and as node1.
    let flaps = vec![flap("node2"), flap("node1")];
    let (outcome, flapped) = cluster.node(2)?.netns().block_on(|_| async move {
        let mut out = Vec::new();
        for (dir, name, state) in reports {
            let mut client = peers_client(dir, name.into(), ip0)
                .await
                .expect("a TLS client");
            out.push(client.exchange(state).await.map(drop));
        }
        let mut client = peers_client(own, "node2".into(), ip0)
            .await
            .expect("a TLS client");
        let mut flapped = Vec::new();
        for req in flaps {
            flapped.push(client.set_link_state(req).await.map(drop));
        }
        Ok((out, flapped))
    })?;
    // node2's certificate, claiming node1 from node1's own address: the certificate alone
    // refuses it.
    let (own2, ip1) = (
        cluster.identity_dir(2)?,
        cluster.underlay().ip(1).to_string(),
    );
    let borrowed = cluster.node(1)?.netns().block_on(|_| async move {
        let mut client = peers_client(own2, "node2".into(), ip0)
            .await
            .expect("a TLS client");
        Ok(client.exchange(report("node1", &ip1, 7)).await.map(drop))
    })?;
    for r in outcome[..3].iter().chain(&flapped).chain([&borrowed]) {
        let status = r
            .as_ref()
            .expect_err("a call for another node must be refused");
        ensure!(status.code() == tonic::Code::PermissionDenied, "{status:?}");
    }
    ensure!(
        outcome[3].is_ok(),
        "node2 speaks for itself: {:?}",
        outcome[3]
    );
    let absurd = outcome[4]
        .as_ref()
        .expect_err("an absurd generation must be refused");
    ensure!(absurd.code() == tonic::Code::InvalidArgument, "{absurd:?}");
    ensure!(carrier(&r1, "eth1"), "r1 kept its carrier");
    // The wire is intact, and the tunnel to node2 (for r9, which it holds) goes to node2's
    // configured address, not to the one its report gave.
    ensure!(ping(&r1, "10.0.0.2", &[]), "the wire r1-r2 still carries");
    let remote = |node: &str| -> Result<String> {
        let name = ovswire_core::naming::tunnel_name(node);
        Ok(cluster
            .node(0)?
            .vsctl(&["get", "Interface", &name, "options:remote_ip"])?)
    };
    wait_until("a tunnel from node0 to node2", 15, || {
        remote("node2").is_ok()
    })?;
    ensure!(
        remote("node2")?.trim().trim_matches('"') == node2_ip,
        "{}",
        remote("node2")?
    );
    ensure!(
        remote("node1")?.trim().trim_matches('"') == cluster.underlay().ip(1).to_string(),
        "{}",
        remote("node1")?
    );
    Ok(())
}
