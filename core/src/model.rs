//! Names and specs of the things ovswire wires: labs, pods' interfaces (endpoints) and links.

use std::fmt;
use std::str::FromStr;

/// A name a user gave us was not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {why}")]
pub struct NameError {
    /// What kind of name: lab, pod, interface, endpoint.
    pub what: &'static str,
    /// The rejected value.
    pub value: String,
    /// Why, and what would be accepted.
    pub why: &'static str,
}

/// Longest Linux interface name (`IFNAMSIZ` - 1).
pub const MAX_IFNAME: usize = 15;

/// Checks a lab or pod name: a DNS-1123 label or subdomain as Kubernetes accepts for
/// namespaces and pods (lower-case letters, digits, `-` and `.`, at most 253 characters,
/// starting and ending with a letter or digit).
pub fn check_object_name(what: &'static str, value: &str) -> Result<(), NameError> {
    let err = |why| NameError {
        what,
        value: value.to_owned(),
        why,
    };
    if value.is_empty() || value.len() > 253 {
        return Err(err("must be 1 to 253 characters long"));
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    if !value.chars().all(ok_char) {
        return Err(err(
            "only lower-case letters, digits, '-' and '.' are allowed",
        ));
    }
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !edge(value.chars().next()) || !edge(value.chars().last()) {
        return Err(err("must start and end with a letter or digit"));
    }
    Ok(())
}

/// Checks a Linux interface name as the kernel accepts it (`dev_valid_name`).
pub fn check_ifname(value: &str) -> Result<(), NameError> {
    let err = |why| NameError {
        what: "interface name",
        value: value.to_owned(),
        why,
    };
    if value.is_empty() || value.len() > MAX_IFNAME {
        return Err(err("must be 1 to 15 characters long"));
    }
    if value == "." || value == ".." {
        return Err(err("'.' and '..' are not interface names"));
    }
    if value
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(err(
            "must not contain '/', ':', whitespace or control characters",
        ));
    }
    // The kernel would make `eth%d` a template and give the interface another name.
    if value.contains('%') {
        return Err(err(
            "must not contain '%' (the kernel reads it as a numbering template)",
        ));
    }
    Ok(())
}

/// One end of a link: interface `ifname` of pod `pod` in lab `lab`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointKey {
    /// The lab (a Kubernetes namespace, or the name of a local lab).
    pub lab: String,
    /// The pod (router) name.
    pub pod: String,
    /// The interface name inside the pod.
    pub ifname: String,
}

impl EndpointKey {
    /// A validated endpoint key.
    pub fn new(lab: &str, pod: &str, ifname: &str) -> Result<Self, NameError> {
        check_object_name("lab name", lab)?;
        check_object_name("pod name", pod)?;
        check_ifname(ifname)?;
        Ok(Self {
            lab: lab.to_owned(),
            pod: pod.to_owned(),
            ifname: ifname.to_owned(),
        })
    }

    /// Parses `pod:ifname` within `lab`.
    pub fn parse(lab: &str, endpoint: &str) -> Result<Self, NameError> {
        let (pod, ifname) = endpoint.split_once(':').ok_or_else(|| NameError {
            what: "endpoint",
            value: endpoint.to_owned(),
            why: "must be written pod:ifname, like r1:eth1",
        })?;
        Self::new(lab, pod, ifname)
    }
}

impl fmt::Display for EndpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.pod, self.ifname)
    }
}

/// A link between two endpoints of one lab; `a` sorts before `b`, so either order of
/// writing the endpoints names the same link.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkKey {
    a: EndpointKey,
    b: EndpointKey,
}

impl LinkKey {
    /// The link between `x` and `y`, which must be distinct endpoints of the same lab.
    pub fn new(x: EndpointKey, y: EndpointKey) -> Result<Self, NameError> {
        if x.lab != y.lab {
            return Err(NameError {
                what: "link",
                value: format!("{}/{} -- {}/{}", x.lab, x, y.lab, y),
                why: "both endpoints must be in the same lab",
            });
        }
        if x == y {
            return Err(NameError {
                what: "link",
                value: format!("{x} -- {y}"),
                why: "a link needs two different endpoints",
            });
        }
        let (a, b) = if x < y { (x, y) } else { (y, x) };
        Ok(Self { a, b })
    }

    /// The endpoint that sorts first.
    pub fn a(&self) -> &EndpointKey {
        &self.a
    }

    /// The endpoint that sorts second.
    pub fn b(&self) -> &EndpointKey {
        &self.b
    }

    /// The lab both endpoints belong to.
    pub fn lab(&self) -> &str {
        &self.a.lab
    }

    /// The other end of the link, if `end` is one of its ends.
    pub fn peer_of(&self, end: &EndpointKey) -> Option<&EndpointKey> {
        if *end == self.a {
            Some(&self.b)
        } else if *end == self.b {
            Some(&self.a)
        } else {
            None
        }
    }
}

impl LinkKey {
    /// The link's name within its lab, `r1:eth1--r2:eth1`: what users, the APIs and the
    /// Topology status call it.
    pub fn name(&self) -> String {
        link_name((&self.a.pod, &self.a.ifname), (&self.b.pod, &self.b.ifname))
    }
}

/// The name of the link between the ends `a` and `b`, each `(pod, ifname)` and `a` sorting
/// first: `r1:eth1--r2:eth1`. [`LinkKey::name`] for ends that are not validated yet.
pub fn link_name(a: (&str, &str), b: (&str, &str)) -> String {
    format!("{}:{}--{}:{}", a.0, a.1, b.0, b.1)
}

impl fmt::Display for LinkKey {
    /// The name qualified by the lab, `demo/r1:eth1--r2:eth1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.a.lab, self.name())
    }
}

/// Whether a link should carry traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum AdminState {
    /// Carries traffic once both ends are present.
    #[default]
    Up,
    /// Both ends have no carrier, like a pulled cable.
    Down,
}

impl FromStr for AdminState {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "up" => Ok(Self::Up),
            "down" => Ok(Self::Down),
            _ => Err(NameError {
                what: "link state",
                value: s.to_owned(),
                why: "must be up or down",
            }),
        }
    }
}

impl fmt::Display for AdminState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Up => "up",
            Self::Down => "down",
        })
    }
}

/// Default link MTU: containerlab's default, large enough for jumbo frames between routers.
pub const DEFAULT_MTU: u32 = 9500;
/// Smallest MTU a link may have (the IPv4 minimum).
pub const MIN_MTU: u32 = 68;
/// Largest MTU a veth accepts.
pub const MAX_MTU: u32 = 65535;

/// An MTU outside the range both veth ends accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("mtu {0} is out of range, use {MIN_MTU} to {MAX_MTU}")]
pub struct MtuError(pub u32);

/// Checks an MTU against the range both veth ends accept ([`MIN_MTU`] to [`MAX_MTU`]).
pub fn check_mtu(mtu: u32) -> Result<(), MtuError> {
    if (MIN_MTU..=MAX_MTU).contains(&mtu) {
        Ok(())
    } else {
        Err(MtuError(mtu))
    }
}

/// A wanted link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpec {
    /// Which endpoints it joins.
    pub key: LinkKey,
    /// The MTU both ends get.
    pub mtu: u32,
    /// Up or down.
    pub admin: AdminState,
    /// What each direction does to its frames (nothing by default).
    pub impair: crate::impair::LinkImpairment,
    /// The LAN segment this link joins its other end to, when it is a segment's member wire:
    /// the segment is the pod of one end (a hub that no pod registers), and every frame one
    /// member sends reaches every other member of the segment.
    pub segment: Option<String>,
}

impl LinkSpec {
    /// The member end of a segment's member wire (the end that is not the segment).
    pub fn member(&self) -> Option<&EndpointKey> {
        let seg = self.segment.as_deref()?;
        [self.key.a(), self.key.b()]
            .into_iter()
            .find(|e| e.pod != seg)
    }

    /// Whether `end` is the segment end of a member wire (never registered by any pod).
    pub fn is_segment_end(&self, end: &EndpointKey) -> bool {
        self.segment.as_deref() == Some(end.pod.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(check_object_name("pod name", "r1").is_ok());
        assert!(check_object_name("pod name", "spine-1.dc").is_ok());
        for bad in ["", "R1", "-r1", "r1-", "r_1", "r 1", &"x".repeat(254)] {
            assert!(check_object_name("pod name", bad).is_err(), "{bad:?}");
        }
        assert!(check_ifname("eth1").is_ok());
        assert!(check_ifname("Ethernet1/1").is_err());
        assert!(check_ifname("a-very-long-ifname").is_err());
        for bad in [
            "",
            ".",
            "..",
            "e th",
            "e:1",
            "eth%d",
            "%",
            "e\u{2003}1",
            "ééééééé-x",
        ] {
            assert!(check_ifname(bad).is_err(), "{bad:?}");
        }
        // 15 bytes, whatever the characters.
        assert!(check_ifname("ééééééé-").is_ok());
        let e = check_ifname("eth%d").unwrap_err().to_string();
        assert!(e.contains("'%'"), "{e}");
    }

    #[test]
    fn mtus_are_checked() {
        assert!(check_mtu(MIN_MTU).is_ok() && check_mtu(MAX_MTU).is_ok());
        let e = check_mtu(67).unwrap_err().to_string();
        assert_eq!(e, "mtu 67 is out of range, use 68 to 65535");
        assert!(check_mtu(65536).is_err());
    }

    #[test]
    fn endpoint_parse_says_what_is_wrong() {
        let e = EndpointKey::parse("lab", "r1:eth1").unwrap();
        assert_eq!(e.to_string(), "r1:eth1");
        let err = EndpointKey::parse("lab", "r1eth1").unwrap_err();
        assert!(err.to_string().contains("pod:ifname"), "{err}");
    }

    #[test]
    fn link_key_is_order_independent() {
        let x = EndpointKey::parse("lab", "r2:eth1").unwrap();
        let y = EndpointKey::parse("lab", "r1:eth1").unwrap();
        let k1 = LinkKey::new(x.clone(), y.clone()).unwrap();
        let k2 = LinkKey::new(y.clone(), x.clone()).unwrap();
        assert_eq!(k1, k2);
        assert_eq!(k1.a(), &y);
        assert_eq!(k1.name(), "r1:eth1--r2:eth1");
        assert_eq!(k1.to_string(), "lab/r1:eth1--r2:eth1");
        assert_eq!(k1.peer_of(&y), Some(&x));
        assert!(LinkKey::new(x.clone(), x.clone()).is_err());
        let other_lab = EndpointKey::parse("other", "r1:eth1").unwrap();
        assert!(LinkKey::new(x, other_lab).is_err());
    }
}
