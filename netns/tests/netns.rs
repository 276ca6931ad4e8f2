//! Namespaces, links, ethtool and a private ovsdb-server on the real kernel. Needs root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ovswire_netns::link::{self, VethEnd};
use ovswire_netns::ovs::{Daemon, Files};
use ovswire_netns::{Error, ethtool};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A namespace with a name unique to this test and process, deleted on drop (also when the
/// test fails). Named like the testbed's (`owt<pid>-...`), so that its leak check at the end of
/// a test run reports, and its reaper removes, what a killed run left.
struct Ns {
    name: String,
    path: PathBuf,
}

impl Ns {
    fn new(tag: &str) -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("owt{}-netns{n}-{tag}", std::process::id());
        let path = ovswire_netns::create(&name).expect("create a namespace (run as root)");
        Self { name, path }
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = ovswire_netns::delete(&self.name);
    }
}

fn ip_netns(args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .arg("netns")
        .args(args)
        .output()
        .expect("run ip")
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_namespace_is_one_ip_netns_sees_with_loopback_up() {
    let ns = Ns::new("ip");
    assert!(ovswire_netns::exists(&ns.name));
    assert_eq!(ns.path, ovswire_netns::path(&ns.name));
    let out = ip_netns(&["exec", &ns.name, "ip", "-br", "link", "show", "lo"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("UP"),
        "{out:?}"
    );
    let again = ovswire_netns::create(&ns.name).unwrap_err();
    assert!(matches!(again, Error::NamespaceExists { .. }), "{again}");
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn only_another_network_namespace_can_be_a_pod_s() {
    let ns = Ns::new("pod");
    ovswire_netns::check_pod_netns(&ns.path).expect("a named namespace is a pod's");
    // A process's namespace, as docker and podman give it.
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name, "sleep", "30"])
        .spawn()
        .unwrap();
    let proc_path = PathBuf::from(format!("/proc/{}/ns/net", child.id()));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while ovswire_netns::check_pod_netns(&proc_path).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "sleep never entered {}",
            ns.name
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    // Another process's, when it shares ours (a host process, for an agent on the host).
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let shared = PathBuf::from(format!("/proc/{}/ns/net", child.id()));
    let own = ovswire_netns::check_pod_netns(&shared).unwrap_err();
    let _ = child.kill();
    let _ = child.wait();
    assert!(own.to_string().contains("own network namespace"), "{own}");
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_later_ip_netns_add_does_not_hide_our_namespaces() {
    let ns = Ns::new("hide");
    let other = format!("owt{}-netns-ipadd", std::process::id());
    let added = ip_netns(&["add", &other]);
    let _ = ip_netns(&["del", &other]);
    assert!(added.status.success(), "{added:?}");
    assert!(ovswire_netns::exists(&ns.name));
    let inside = ovswire_netns::run(&ns.path, || std::fs::read_link("/proc/thread-self/ns/net"));
    assert!(inside.unwrap().is_ok());
    let out = ip_netns(&["exec", &ns.name, "true"]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn deleting_removes_the_namespace_and_twice_is_fine() {
    let ns = Ns::new("del");
    ovswire_netns::delete(&ns.name).unwrap();
    assert!(!ovswire_netns::exists(&ns.name));
    assert!(!Path::new(&ns.path).exists());
    ovswire_netns::delete(&ns.name).unwrap();
    let missing = ovswire_netns::run(&ns.path, || ()).unwrap_err();
    assert!(
        matches!(&missing, Error::Open { path, .. } if *path == ns.path),
        "{missing}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_veth_pair_across_namespaces_has_its_mtu_macs_and_addresses() {
    let (a, b) = (Ns::new("va"), Ns::new("vb"));
    let mac = [0x02, 0, 0, 0, 0, 0x0b];
    let peer = VethEnd::new("eth1").netns(&b.path).mac(mac);
    ovswire_netns::block_on(&a.path, |h| async move {
        link::add_veth(&h, VethEnd::new("veth-a"), peer, Some(1400)).await?;
        link::set_up(&h, "veth-a").await
    })
    .unwrap()
    .unwrap();
    let (state, addrs, twice) = ovswire_netns::block_on(&b.path, |h| async move {
        link::set_up(&h, "eth1").await?;
        let addr = "fd00::1".parse().unwrap();
        link::add_address(&h, "eth1", "10.9.0.1".parse().unwrap(), 30).await?;
        link::add_address(&h, "eth1", addr, 64).await?;
        let twice = link::add_address(&h, "eth1", addr, 64).await;
        Ok::<_, Error>((
            link::state(&h, "eth1").await?,
            link::addresses(&h, "eth1").await?,
            twice,
        ))
    })
    .unwrap()
    .unwrap();
    assert_eq!(state.mtu, 1400);
    assert_eq!(state.mac, mac);
    assert!(state.admin_up && state.carrier, "{state:?}");
    assert!(addrs.contains(&"10.9.0.1".parse().unwrap()), "{addrs:?}");
    assert!(addrs.contains(&"fd00::1".parse().unwrap()), "{addrs:?}");
    assert_eq!(twice.unwrap_err().errno(), Some(libc_eexist()));
    let names = ovswire_netns::block_on(&a.path, |h| async move {
        let gone = link::delete(&h, "veth-a").await?;
        let again = link::delete(&h, "veth-a").await?;
        assert!(gone && !again);
        link::names(&h).await
    })
    .unwrap()
    .unwrap();
    assert_eq!(names, ["lo"]);
}

fn libc_eexist() -> i32 {
    nix::errno::Errno::EEXIST as i32
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_missing_link_is_named_in_the_error() {
    let ns = Ns::new("miss");
    let err = ovswire_netns::block_on(&ns.path, |h| async move { link::set_up(&h, "nope0").await })
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, Error::NoSuchLink { name } if name == "nope0"),
        "{err}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn tx_checksum_offload_turns_off() {
    let ns = Ns::new("csum");
    let done = ovswire_netns::block_on(&ns.path, |h| async move {
        link::add_veth(&h, VethEnd::new("c0"), VethEnd::new("c1"), None).await?;
        assert!(ethtool::tx_checksum("c0")?);
        ethtool::disable_tx_checksum("c0")?;
        assert!(!ethtool::tx_checksum("c0")?);
        let missing = ethtool::tx_checksum("nope0").unwrap_err();
        assert!(
            matches!(&missing, Error::Ethtool { ifname, .. } if ifname == "nope0"),
            "{missing}"
        );
        Ok::<_, Error>(())
    });
    done.unwrap().unwrap();
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn async_callers_run_inside_without_blocking_their_runtime() {
    let ns = Ns::new("async");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let path = ns.path.clone();
    let names = rt.block_on(async move {
        let job = ovswire_netns::spawn(path, |h| async move { link::names(&h).await });
        let tick = tokio::time::sleep(Duration::from_millis(1));
        let (names, ()) = tokio::join!(job, tick);
        names
    });
    assert_eq!(names.unwrap().unwrap(), ["lo"]);
}

/// Stops a child on drop.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root and Open vSwitch; scripts/test runs it"
)]
fn a_private_ovsdb_server_serves_the_database_we_write() {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::new(dir.path());
    files.ensure_db().expect("Open vSwitch installed");
    let check = Command::new("ovsdb-tool")
        .arg("db-name")
        .arg(files.db())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "Open_vSwitch"
    );
    let _server = Running(files.command(Daemon::OvsdbServer).spawn().unwrap());
    files
        .wait(Daemon::OvsdbServer, Duration::from_secs(20))
        .unwrap();
    assert!(files.log(Daemon::OvsdbServer).exists());
    let nobody = files
        .wait(Daemon::OvsVswitchd, Duration::from_millis(50))
        .unwrap_err();
    assert!(
        matches!(
            &nobody,
            Error::NotReady {
                daemon: "ovs-vswitchd",
                ..
            }
        ),
        "{nobody}"
    );
}
