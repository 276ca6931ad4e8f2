//! Checks for the names a topology uses, the same rules the agent applies: Kubernetes object
//! names for labs and pods, the kernel's rules for interface names.

/// Longest Linux interface name (`IFNAMSIZ` - 1).
pub const MAX_IFNAME: usize = 15;
/// Smallest MTU a link may have (the IPv4 minimum).
pub const MIN_MTU: u32 = 68;
/// Largest MTU a veth accepts.
pub const MAX_MTU: u32 = 65535;

/// Checks a lab (namespace) or pod name: a DNS-1123 subdomain as Kubernetes accepts for pods
/// (lower-case letters, digits, `-` and `.`, at most 253 characters, starting and ending with a
/// letter or digit).
pub(crate) fn check_object_name(what: &str, value: &str) -> Result<(), String> {
    let err = |why: &str| Err(format!("invalid {what} {value:?}: {why}"));
    if value.is_empty() || value.len() > 253 {
        return err("must be 1 to 253 characters long");
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    if !value.chars().all(ok_char) {
        return err("only lower-case letters, digits, '-' and '.' are allowed");
    }
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !edge(value.chars().next()) || !edge(value.chars().last()) {
        return err("must start and end with a letter or digit");
    }
    Ok(())
}

/// Checks a Linux interface name as the kernel accepts it (`dev_valid_name`).
pub(crate) fn check_ifname(value: &str) -> Result<(), String> {
    let err = |why: &str| Err(format!("invalid interface name {value:?}: {why}"));
    if value.is_empty() || value.len() > MAX_IFNAME {
        return err("must be 1 to 15 characters long");
    }
    if value == "." || value == ".." {
        return err("'.' and '..' are not interface names");
    }
    if value
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return err("must not contain '/', ':', whitespace or control characters");
    }
    Ok(())
}

/// Parses and checks an endpoint written `pod:ifname`.
pub(crate) fn parse_endpoint(endpoint: &str) -> Result<(String, String), String> {
    let Some((pod, ifname)) = endpoint.split_once(':') else {
        return Err(format!(
            "invalid endpoint {endpoint:?}: write it pod:ifname, like r1:eth1"
        ));
    };
    check_object_name("pod name", pod)?;
    check_ifname(ifname)?;
    Ok((pod.to_owned(), ifname.to_owned()))
}

/// Checks an MTU against the range both veth ends accept.
pub(crate) fn check_mtu(mtu: u32) -> Result<(), String> {
    if (MIN_MTU..=MAX_MTU).contains(&mtu) {
        Ok(())
    } else {
        Err(format!(
            "mtu {mtu} is out of range, use {MIN_MTU} to {MAX_MTU}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_follow_kubernetes() {
        assert!(check_object_name("pod name", "r1").is_ok());
        assert!(check_object_name("pod name", "spine-1.dc").is_ok());
        for bad in ["", "R1", "-r1", "r1-", "r_1", "r 1", &"x".repeat(254)] {
            assert!(check_object_name("pod name", bad).is_err(), "{bad:?}");
        }
        let e = check_object_name("pod name", "R1").unwrap_err();
        assert!(e.contains("\"R1\"") && e.contains("lower-case"), "{e}");
    }

    #[test]
    fn interface_names_follow_the_kernel() {
        assert!(check_ifname("eth1").is_ok());
        assert!(check_ifname("e1-1").is_ok());
        for bad in [
            "",
            ".",
            "..",
            "e th",
            "e:1",
            "Ethernet1/1",
            "a-very-long-ifname",
        ] {
            assert!(check_ifname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn endpoints_and_mtus() {
        assert_eq!(
            parse_endpoint("r1:eth1").unwrap(),
            ("r1".to_owned(), "eth1".to_owned())
        );
        assert!(parse_endpoint("r1eth1").unwrap_err().contains("pod:ifname"));
        assert!(parse_endpoint("r1:").is_err());
        assert!(check_mtu(68).is_ok() && check_mtu(65535).is_ok());
        assert!(check_mtu(67).unwrap_err().contains("68 to 65535"));
    }
}
