//! Deterministic names and numbers the agent derives, so that a restarted agent arrives at the
//! same ones and recognises what it made before.

use crate::model::LinkKey;

/// Marks a flow cookie as ovswire's: the top 16 bits. The agent never touches flows without it.
pub const COOKIE_TAG: u64 = 0x0f57_0000_0000_0000;
/// The bits of a cookie that carry [`COOKIE_TAG`].
pub const COOKIE_TAG_MASK: u64 = 0xffff_0000_0000_0000;

/// First OpenFlow port number the agent requests: OVS never assigns 32768 and above on its own,
/// so the agent knows a port's number before OVS has created the port.
pub const FIRST_OFPORT: u32 = 32768;
/// Last OpenFlow port number a port may request (`OFPP_MAX` is 0xff00; OVS stops at 65279).
pub const LAST_OFPORT: u32 = 65279;

/// Prefix of every host-side interface the agent creates.
pub const HOST_IF_PREFIX: &str = "ow";

/// `external_ids` key marking a Port or Interface as the agent's; its value is the format
/// version.
pub const OWNER_KEY: &str = "ovswire";
/// Value of [`OWNER_KEY`] this agent writes.
pub const OWNER_VALUE: &str = "1";

/// FNV-1a, 64 bits: tiny, stable across Rust versions and platforms (unlike `DefaultHasher`).
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            // A separator that cannot occur in names keeps ("ab","c") apart from ("a","bc").
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for b in part.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The cookie of a link's flows: [`COOKIE_TAG`] and 48 bits derived from the link's name.
pub fn link_cookie(link: &LinkKey) -> u64 {
    let (a, b) = (link.a(), link.b());
    let h = fnv1a(&[&a.lab, &a.pod, &a.ifname, &b.pod, &b.ifname]);
    COOKIE_TAG | (h & !COOKIE_TAG_MASK)
}

/// Whether a cookie is one of ovswire's.
pub fn is_ours(cookie: u64) -> bool {
    cookie & COOKIE_TAG_MASK == COOKIE_TAG
}

/// A node's pinned datapath id: stable for a node name, distinct between nodes, and tagged so
/// it is recognisable as ovswire's.
pub fn datapath_id(node: &str) -> u64 {
    COOKIE_TAG | (fnv1a(&[node]) & !COOKIE_TAG_MASK)
}

/// The host-side interface name for a pod interface: `ow` and 13 hex digits (15 characters,
/// the kernel's limit) derived from the container and the interface name. A restarted pod gets
/// a new container id and so a new name, which cannot clash with the old veth while the kernel
/// is still tearing that one down.
pub fn host_ifname(container_id: &str, ifname: &str) -> String {
    let h = fnv1a(&[container_id, ifname]) >> 12;
    format!("{HOST_IF_PREFIX}{h:013x}")
}

/// The tunnel port to a node: `vx` and 13 hex digits derived from the node's name.
pub fn tunnel_name(node: &str) -> String {
    let h = fnv1a(&["tunnel", node]) >> 12;
    format!("vx{h:013x}")
}

/// The two ends of the veth pair one direction of a link is impaired through: `oi` and 13
/// hex digits (the port on the bridge), `oj` and the same digits (the end the agent's
/// impairment stage reads and writes), derived from the link and the direction.
pub fn impair_ifnames(link: &LinkKey, dir: crate::stats::Direction) -> (String, String) {
    let (a, b) = (link.a(), link.b());
    let d = match dir {
        crate::stats::Direction::AtoB => "a->b",
        crate::stats::Direction::BtoA => "b->a",
    };
    let h = fnv1a(&["impair", &a.lab, &a.pod, &a.ifname, &b.pod, &b.ifname, d]) >> 12;
    (format!("oi{h:013x}"), format!("oj{h:013x}"))
}

/// The cookie of the flows that bring a LAN segment's frames in from other nodes.
pub fn segment_cookie(lab: &str, segment: &str) -> u64 {
    COOKIE_TAG | (fnv1a(&["segment", lab, segment]) & !COOKIE_TAG_MASK)
}

/// The name two nodes give a LAN segment's frames between them when they agree on its tunnel
/// key: a link of the segment with itself, whose ends are named after the nodes (`t` and 13 hex
/// digits each). Both nodes derive the same, whichever asks.
pub fn segment_trunk(lab: &str, segment: &str, node: &str, other: &str) -> Option<LinkKey> {
    let end = |n: &str| {
        let h = fnv1a(&["trunk", n]) >> 12;
        crate::model::EndpointKey::new(lab, segment, &format!("t{h:013x}"))
    };
    LinkKey::new(end(node).ok()?, end(other).ok()?).ok()
}

/// Largest VXLAN network identifier (24 bits).
pub const MAX_TUNNEL_KEY: u32 = 0x00ff_ffff;

/// The tunnel key a link prefers: 1 to [`MAX_TUNNEL_KEY`], derived from its lab and
/// endpoints. The node that chooses keys for a pair of nodes takes the next free one when two
/// links between the same nodes prefer the same key.
pub fn preferred_tunnel_key(link: &LinkKey) -> u32 {
    let (a, b) = (link.a(), link.b());
    let h = fnv1a(&["key", &a.lab, &a.pod, &a.ifname, &b.pod, &b.ifname]);
    (h % u64::from(MAX_TUNNEL_KEY)) as u32 + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EndpointKey;

    fn link(lab: &str, a: &str, b: &str) -> LinkKey {
        LinkKey::new(
            EndpointKey::parse(lab, a).unwrap(),
            EndpointKey::parse(lab, b).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn cookies_are_stable_tagged_and_distinct() {
        let c = link_cookie(&link("lab", "r1:eth1", "r2:eth1"));
        assert!(is_ours(c));
        assert_eq!(c, link_cookie(&link("lab", "r2:eth1", "r1:eth1")));
        // Fixed value: a changed derivation would orphan every running lab's flows.
        assert_eq!(c, 0x0f57_9ccf_6a1f_bce3, "{c:#x}");
        assert_ne!(c, link_cookie(&link("other", "r1:eth1", "r2:eth1")));
        assert!(!is_ours(0x1234));
    }

    #[test]
    fn host_names_fit_the_kernel_limit() {
        let n = host_ifname("0123456789abcdef0123456789abcdef", "eth1");
        assert_eq!(n.len(), 15);
        assert!(n.starts_with(HOST_IF_PREFIX));
        assert_ne!(n, host_ifname("0123456789abcdef0123456789abcdef", "eth2"));
        assert_ne!(host_ifname("ab", "c"), host_ifname("a", "bc"));
    }
}
