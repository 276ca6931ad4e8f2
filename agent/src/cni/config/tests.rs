use super::*;

fn conf(json: &str, command: Command) -> Result<NetConf> {
    NetConf::parse(json.as_bytes(), command)
}

fn code<T: std::fmt::Debug>(r: Result<T>) -> u32 {
    r.unwrap_err().code.into()
}

#[test]
fn versions_are_negotiated() {
    for v in Version::ALL {
        let c = conf(
            &format!(r#"{{"cniVersion":"{v}","name":"n"}}"#),
            Command::Add,
        )
        .unwrap();
        assert_eq!(c.version, v);
    }
    let err = conf(r#"{"cniVersion":"0.2.0","name":"n"}"#, Command::Add).unwrap_err();
    assert_eq!(err.code, Code::IncompatibleVersion);
    assert!(err.details.contains("1.1.0"), "{err}");
    assert_eq!(
        code(conf(r#"{"cniVersion":"9.9.9","name":"n"}"#, Command::Add)),
        1
    );
    assert_eq!(
        code(conf(r#"{"cniVersion":"0.3.1","name":"n"}"#, Command::Check)),
        1
    );
    assert_eq!(
        code(conf(
            r#"{"cniVersion":"1.0.0","name":"n"}"#,
            Command::Status
        )),
        1
    );
    assert_eq!(
        code(conf(r#"{"cniVersion":"1.0.0","name":"n"}"#, Command::Gc)),
        1
    );
    assert!(conf(r#"{"cniVersion":"1.1.0","name":"n"}"#, Command::Gc).is_ok());
    assert_eq!(code(conf(r#"{"name":"n"}"#, Command::Add)), 7);
    assert_eq!(
        code(conf(r#"{"cniVersion":1,"name":"n"}"#, Command::Add)),
        7
    );
}

#[test]
fn bad_json_is_a_decode_error() {
    for bad in ["", "{", "[]", "\"x\"", "{\"cniVersion\": }", "\u{0}"] {
        assert_eq!(code(conf(bad, Command::Add)), 6, "{bad:?}");
    }
}

#[test]
fn fields_are_checked_and_unknown_ones_ignored() {
    let c = conf(
        r#"{"cniVersion":"1.0.0","name":"n","type":"ovswire-cni","mtu":9000,"x":{"y":1},
            "socket":"/s","args":{"cni":{"a":"b"}}}"#,
        Command::Add,
    )
    .unwrap();
    assert_eq!(c.mtu, Some(9000));
    assert_eq!(c.cni_args.get("a"), Some(&Value::from("b")));
    for bad in [
        r#""mtu":"9000""#,
        r#""mtu":67"#,
        r#""mtu":70000"#,
        r#""mtu":-1"#,
        r#""mtu":1.5"#,
    ] {
        let json = format!(r#"{{"cniVersion":"1.0.0","name":"n",{bad}}}"#);
        assert_eq!(code(conf(&json, Command::Add)), 7, "{bad}");
    }
    for bad in [
        r#""name":"""#,
        r#""name":3"#,
        r#""args":[]"#,
        r#""args":{"cni":1}"#,
    ] {
        let json = format!(r#"{{"cniVersion":"1.0.0","x":0,{bad}}}"#);
        assert_eq!(code(conf(&json, Command::Add)), 7, "{bad}");
    }
    let prev = r#"{"cniVersion":"1.0.0","name":"n","prevResult":{"interfaces":3}}"#;
    assert_eq!(code(conf(prev, Command::Add)), 7);
    let prev = r#"{"cniVersion":"1.0.0","name":"n","prevResult":[]}"#;
    assert_eq!(code(conf(prev, Command::Add)), 7);
}

#[test]
fn addresses_are_unsupported() {
    let ok = [
        r#""ipam":{}"#,
        r#""runtimeConfig":{"mac":"","ips":[]}"#,
        r#""x":1"#,
    ];
    for f in ok {
        let c = conf(
            &format!(r#"{{"cniVersion":"1.0.0","name":"n",{f}}}"#),
            Command::Add,
        );
        assert!(c.unwrap().check_supported().is_ok(), "{f}");
    }
    for f in [
        r#""ipam":{"type":"host-local"}"#,
        r#""runtimeConfig":{"mac":"02:00:00:00:00:01"}"#,
    ] {
        let c = conf(
            &format!(r#"{{"cniVersion":"1.0.0","name":"n",{f}}}"#),
            Command::Add,
        );
        let err = c.unwrap().check_supported().unwrap_err();
        assert_eq!(err.code, Code::UnsupportedField, "{f}");
        assert!(err.msg.contains('='), "names key and value: {err}");
    }
}

#[test]
fn valid_attachments_are_read() {
    let c = conf(
        r#"{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":
           [{"containerID":"c1","ifname":"eth1"}]}"#,
        Command::Gc,
    )
    .unwrap();
    let keep = c.valid_attachments().unwrap();
    assert!(keep.contains(&("c1".to_owned(), "eth1".to_owned())));
    let c = conf(
        r#"{"cniVersion":"1.1.0","name":"n","cni.dev/attachments":[]}"#,
        Command::Gc,
    );
    assert!(c.unwrap().valid_attachments().unwrap().is_empty());
    let c = conf(r#"{"cniVersion":"1.1.0","name":"n"}"#, Command::Gc).unwrap();
    assert_eq!(code(c.valid_attachments()), 7);
    let c = conf(
        r#"{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":[{"containerID":1}]}"#,
        Command::Gc,
    );
    assert_eq!(code(c.unwrap().valid_attachments()), 7);
}

#[test]
fn env_is_checked() {
    assert!(check_container_id("abc-1_2.3").is_ok());
    for bad in ["", "-abc", "a b", "a/b"] {
        assert_eq!(code(check_container_id(bad)), 4, "{bad:?}");
    }
    assert!(check_cni_ifname("eth1").is_ok());
    for bad in ["", "eth1234567890123", "a/b", "."] {
        assert_eq!(code(check_cni_ifname(bad)), 4, "{bad:?}");
    }
    assert!(check_netns("/var/run/netns/x").is_ok());
    assert_eq!(code(check_netns("")), 4);
    assert_eq!(code(check_netns("netns/x")), 4);
}

#[test]
fn pod_identity_comes_from_cni_args_only() {
    let none = Map::new();
    let args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=lab;K8S_POD_NAME=r1;K8S_POD_UID=u;FOO=bar";
    let id = PodIdentity::resolve(args, &none).unwrap();
    assert_eq!((id.namespace.as_str(), id.name.as_str()), ("lab", "r1"));

    // A pod's annotation (args.cni) cannot fill in, or change, its lab or name.
    let mut conf_args = Map::new();
    conf_args.insert(K8S_POD_NAMESPACE.into(), "lab2".into());
    let err = PodIdentity::resolve("K8S_POD_NAME=r1", &conf_args).unwrap_err();
    assert_eq!(err.code, Code::InvalidConfig, "{err:?}");
    assert!(
        err.msg.contains("args.cni.K8S_POD_NAMESPACE is \"lab2\""),
        "{err:?}"
    );
    let err = PodIdentity::resolve(args, &conf_args).unwrap_err();
    assert!(
        err.msg.contains("but the pod is lab by CNI_ARGS"),
        "{err:?}"
    );
    // The same names as the runtime's are harmless.
    conf_args.insert(K8S_POD_NAMESPACE.into(), "lab".into());
    conf_args.insert(K8S_POD_NAME.into(), "r1".into());
    assert!(PodIdentity::resolve(args, &conf_args).is_ok());
    conf_args.insert(K8S_POD_NAME.into(), 5.into());
    assert_eq!(code(PodIdentity::resolve(args, &conf_args)), 7);

    assert_eq!(
        code(PodIdentity::resolve("K8S_POD_NAMESPACE=lab", &none)),
        4
    );
    assert_eq!(
        code(PodIdentity::resolve(
            "K8S_POD_NAMESPACE=lab;K8S_POD_NAME=R_1",
            &none
        )),
        4
    );
    assert_eq!(code(PodIdentity::resolve("K8S_POD_NAME", &none)), 4);
    assert_eq!(code(PodIdentity::resolve("IgnoreUnknown=maybe", &none)), 4);
}
