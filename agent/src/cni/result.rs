//! The ADD result, shaped for the requested spec version.
//!
//! ovswire makes two interfaces and assigns no addresses, so its own result is only
//! `interfaces`: the host end (no `sandbox`) and the pod end (`sandbox` = the netns path, and
//! `mac`, which Multus copies into the pod's `network-status`). Versions differ here only in
//! `interfaces[].mtu`, which 1.1.0 introduced. When chained after other plugins, their
//! `prevResult` is passed on with our interfaces appended, so its `ips[].interface` indexes
//! stay valid; its `ips` keep the shape of the configuration's version (with `version` before
//! 1.0.0), which the runtime already converted.

use ovswire_cni::spec::Version;
use serde_json::{Map, Value, json};

use ovswire_core::attach::Attachment;

/// Formats a MAC the way CNI results write it: lower-case, colon-separated.
pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

fn interface(
    version: Version,
    name: &str,
    mac: &[u8; 6],
    mtu: u32,
    sandbox: Option<&str>,
) -> Value {
    let mut i = Map::new();
    i.insert("name".into(), name.into());
    i.insert("mac".into(), mac_string(mac).into());
    if version >= Version::V1_1_0 {
        i.insert("mtu".into(), mtu.into());
    }
    if let Some(s) = sandbox {
        i.insert("sandbox".into(), s.into());
    }
    Value::Object(i)
}

/// The ADD result for `attachment`, merged into `prev` when chained.
pub fn add_result(version: Version, a: &Attachment, prev: Option<&Map<String, Value>>) -> Value {
    let netns = a.netns.display().to_string();
    let ours = [
        interface(version, &a.host_ifname, &a.host_mac, a.mtu, None),
        interface(version, &a.key.ifname, &a.pod_mac, a.mtu, Some(&netns)),
    ];
    let mut result = prev.cloned().unwrap_or_default();
    result.insert("cniVersion".into(), version.as_str().into());
    match result.get_mut("interfaces") {
        Some(Value::Array(list)) => list.extend(ours),
        _ => {
            result.insert("interfaces".into(), json!(ours));
        }
    }
    Value::Object(result)
}

/// The entry for interface `ifname` with a `sandbox` in a result's `interfaces`.
pub(super) fn find_sandbox_interface<'a>(
    result: &'a Map<String, Value>,
    ifname: &str,
) -> Option<&'a Map<String, Value>> {
    result
        .get("interfaces")?
        .as_array()?
        .iter()
        .filter_map(Value::as_object)
        .find(|i| {
            i.get("name").and_then(Value::as_str) == Some(ifname)
                && i.get("sandbox")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
        })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use ovswire_core::model::EndpointKey;

    fn attachment() -> Attachment {
        Attachment {
            key: EndpointKey::new("lab", "r1", "eth1").unwrap(),
            container_id: "c1".into(),
            netns: PathBuf::from("/run/netns/r1"),
            host_ifname: "ow-r1-eth1".into(),
            host_mac: [0x02, 0, 0, 0, 0, 0x0a],
            pod_mac: [0x02, 0xAB, 0, 0, 0, 0x0b],
            mtu: 9500,
            network: "ovswire".into(),
        }
    }

    #[test]
    fn result_lists_host_then_pod_interface() {
        for v in [
            Version::V0_3_0,
            Version::V0_3_1,
            Version::V0_4_0,
            Version::V1_0_0,
        ] {
            let r = add_result(v, &attachment(), None);
            assert_eq!(
                r,
                json!({
                    "cniVersion": v.as_str(),
                    "interfaces": [
                        {"name": "ow-r1-eth1", "mac": "02:00:00:00:00:0a"},
                        {"name": "eth1", "mac": "02:ab:00:00:00:0b", "sandbox": "/run/netns/r1"},
                    ]
                }),
                "{v}"
            );
        }
    }

    #[test]
    fn v1_1_adds_mtu() {
        let r = add_result(Version::V1_1_0, &attachment(), None);
        assert_eq!(
            r,
            json!({
                "cniVersion": "1.1.0",
                "interfaces": [
                    {"name": "ow-r1-eth1", "mac": "02:00:00:00:00:0a", "mtu": 9500},
                    {"name": "eth1", "mac": "02:ab:00:00:00:0b", "mtu": 9500,
                     "sandbox": "/run/netns/r1"},
                ]
            })
        );
    }

    #[test]
    fn prev_result_is_passed_through_with_our_interfaces_appended() {
        let prev = json!({
            "cniVersion": "0.4.0",
            "interfaces": [{"name": "lo", "sandbox": "/run/netns/r1"}],
            "ips": [{"version": "4", "address": "10.0.0.1/30", "interface": 0}],
            "dns": {"nameservers": ["10.0.0.2"]},
            "x-extra": true,
        });
        let r = add_result(Version::V0_4_0, &attachment(), prev.as_object());
        let r = r.as_object().unwrap();
        assert_eq!(r["ips"], prev["ips"]);
        assert_eq!(r["dns"], prev["dns"]);
        assert_eq!(r["x-extra"], true);
        let names: Vec<_> = r["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| &i["name"])
            .collect();
        assert_eq!(names, ["lo", "ow-r1-eth1", "eth1"]);
        let pod = find_sandbox_interface(r, "eth1").unwrap();
        assert_eq!(pod["mac"], "02:ab:00:00:00:0b");
        assert!(
            find_sandbox_interface(r, "ow-r1-eth1").is_none(),
            "host end has no sandbox"
        );

        let no_interfaces = json!({"cniVersion": "1.0.0", "ips": []});
        let r = add_result(Version::V1_0_0, &attachment(), no_interfaces.as_object());
        assert_eq!(r["interfaces"].as_array().unwrap().len(), 2);
    }
}
