//! Node kinds: the names containerlab gives the network operating systems it knows, which of
//! them ovswire can run as containers, and where a node's startup configuration goes.
//!
//! ovswire runs kind `linux` containers from any image, and any node without an image as a bare
//! network namespace. A `linux` node whose image is FRR's (`quay.io/frrouting/frr`,
//! `frrouting/frr`, or any image whose name ends in `/frr`) is an FRR router: its
//! `startup-config` is mounted as `/etc/frr/frr.conf` and `ovswire lab save` saves its running
//! configuration. Other `linux` images get their `startup-config` at [`GENERIC_STARTUP_CONFIG`].

/// Where a `linux` container that is not FRR finds its `startup-config`.
pub const GENERIC_STARTUP_CONFIG: &str = "/etc/ovswire/startup-config";

/// Where FRR reads its integrated configuration.
pub const FRR_STARTUP_CONFIG: &str = "/etc/frr/frr.conf";

/// The kinds ovswire runs as containers.
const BOOTABLE: [&str; 1] = ["linux"];

/// Kinds that are not router nodes at all (refused by the file readers with their own advice).
pub const NOT_NODES: [(&str, &str); 2] = [
    ("ext-container", "a container outside the lab"),
    ("host", "the container host"),
];

/// Kinds that are LAN segments: containerlab makes a bridge on the host for them, ovswire
/// copies each frame one member sends to every other member with flows.
pub const SEGMENTS: [&str; 2] = ["bridge", "ovs-bridge"];

/// containerlab's node kinds (short and long names), as of its 2026 releases.
const CONTAINERLAB: &[&str] = &[
    "linux",
    "bridge",
    "ovs-bridge",
    "host",
    "ext-container",
    "k8s-kind",
    "generic_vm",
    "srl",
    "nokia_srlinux",
    "vr-sros",
    "nokia_sros",
    "nokia_srsim",
    "ceos",
    "arista_ceos",
    "vr-veos",
    "arista_veos",
    "crpd",
    "juniper_crpd",
    "vr-vmx",
    "juniper_vmx",
    "vr-vqfx",
    "juniper_vqfx",
    "vr-vsrx",
    "juniper_vsrx",
    "juniper_vjunosrouter",
    "juniper_vjunosswitch",
    "juniper_vjunosevolved",
    "juniper_cjunosevolved",
    "xrd",
    "cisco_xrd",
    "vr-xrv",
    "cisco_xrv",
    "vr-xrv9k",
    "cisco_xrv9k",
    "vr-csr",
    "cisco_csr1000v",
    "vr-n9kv",
    "cisco_n9kv",
    "cisco_c8000",
    "cisco_c8000v",
    "cisco_cat9kv",
    "cisco_iol",
    "cisco_ftdv",
    "cisco_asav",
    "vr-ftosv",
    "dell_ftosv",
    "dell_sonic",
    "sonic-vs",
    "sonic-vm",
    "vr-pan",
    "paloalto_panos",
    "vr-ros",
    "mikrotik_ros",
    "ipinfusion_ocnos",
    "checkpoint_cloudguard",
    "fortinet_fortigate",
    "aruba_aoscx",
    "keysight_ixia-c-one",
    "cvx",
    "cumulus_cvx",
    "vyosnetworks_vyos",
    "huawei_vrp",
    "6wind_vsr",
    "openbsd",
    "freebsd",
    "rare",
    "fdio_vpp",
];

/// Whether `kind` is a kind ovswire knows (containerlab's); an error says what is known.
pub fn check_known(kind: &str) -> Result<(), String> {
    if CONTAINERLAB.contains(&kind) {
        return Ok(());
    }
    Err(format!(
        "unknown kind {kind:?}; ovswire runs kind linux (a container from any image, or a bare \
         network namespace without one) and reads containerlab's kinds (srl, ceos, crpd, ...); \
         correct the kind or use linux"
    ))
}

/// Whether ovswire can run a node of `kind` that has an image; if not, what to do instead.
pub fn check_bootable(kind: &str) -> Result<(), String> {
    if BOOTABLE.contains(&kind) {
        return Ok(());
    }
    Err(format!(
        "kind {kind} has its own way to boot, which ovswire does not know yet: it runs kind \
         linux containers; use kind linux with an image that starts on its own, or remove the \
         image to run the node as a bare network namespace"
    ))
}

/// Whether `image` is an FRR image (`quay.io/frrouting/frr:10.2.1`, `localhost/ovswire/frr`).
pub fn is_frr(image: &str) -> bool {
    let without_tag = image.split('@').next().unwrap_or(image);
    let repository = match without_tag.rsplit_once(':') {
        // A `:` after the last `/` starts the tag; one before it is a registry's port.
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => without_tag,
    };
    repository.rsplit('/').next() == Some("frr")
}

/// Where a `linux` container running `image` finds its startup configuration.
pub fn startup_config_target(image: &str) -> &'static str {
    if is_frr(image) {
        FRR_STARTUP_CONFIG
    } else {
        GENERIC_STARTUP_CONFIG
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frr_images_are_told_by_their_name() {
        for frr in [
            "quay.io/frrouting/frr:10.2.1",
            "frrouting/frr",
            "localhost/ovswire/frr:latest",
            "registry:5000/frr",
            "frr@sha256:abcd",
        ] {
            assert!(is_frr(frr), "{frr}");
        }
        for other in [
            "alpine:3",
            "ghcr.io/nokia/srlinux",
            "frrouting/frr-exporter",
            "registry:5000/x",
        ] {
            assert!(!is_frr(other), "{other}");
        }
        assert_eq!(startup_config_target("frrouting/frr"), FRR_STARTUP_CONFIG);
        assert_eq!(startup_config_target("alpine"), GENERIC_STARTUP_CONFIG);
    }

    #[test]
    fn kinds_are_known_bootable_or_neither() {
        assert!(check_known("nokia_srlinux").is_ok());
        assert!(check_known("linux").is_ok());
        assert!(check_known("linuxx").unwrap_err().contains("unknown kind"));
        assert!(check_bootable("linux").is_ok());
        assert!(
            check_bootable("ceos")
                .unwrap_err()
                .contains("bare network namespace")
        );
    }
}
