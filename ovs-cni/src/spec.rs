//! The CNI contract as the spec writes it: commands, versions, error codes and the error
//! object. The plugin, the agent and every caller that runs the plugin share these, so each
//! name, version and code is written down once.
//!
//! ```
//! use ovswire_cni::spec::{CniError, Code, Command, Version};
//!
//! assert_eq!(Command::parse("CHECK"), Some(Command::Check));
//! assert_eq!(Command::Check.since(), Version::V0_4_0);
//! let err = CniError::new(Code::TryAgainLater, "agent down", "start it");
//! assert_eq!(err.to_json(Version::V1_0_0)["code"], 11);
//! ```

use std::fmt;

use serde_json::{Value, json};

/// A `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Create the container's interface.
    Add,
    /// Remove it.
    Del,
    /// Verify it.
    Check,
    /// Report whether the plugin is ready for ADDs.
    Status,
    /// Remove attachments the runtime no longer knows.
    Gc,
    /// Report the spec versions the plugin speaks.
    Version,
}

impl Command {
    /// Every command, in the order the spec lists them.
    pub const ALL: [Self; 6] = [
        Self::Add,
        Self::Del,
        Self::Check,
        Self::Status,
        Self::Gc,
        Self::Version,
    ];

    /// The `CNI_COMMAND` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Status => "STATUS",
            Self::Gc => "GC",
            Self::Version => "VERSION",
        }
    }

    /// Parses a `CNI_COMMAND` value (exact, upper case as the spec writes it); `None` if it
    /// names no command.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The oldest supported spec version that has this command.
    pub fn since(self) -> Version {
        match self {
            Self::Add | Self::Del | Self::Version => Version::V0_3_0,
            Self::Check => Version::V0_4_0,
            Self::Status | Self::Gc => Version::V1_1_0,
        }
    }

    /// "ADD, DEL, CHECK, STATUS, GC or VERSION": for messages that say what to set.
    pub fn choices() -> String {
        let names = Self::ALL.map(Self::as_str);
        let (last, rest) = names.split_last().unwrap_or((&"", &[]));
        format!("{} or {last}", rest.join(", "))
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A CNI spec version ovswire speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// 0.3.0: the first rich result.
    V0_3_0,
    /// 0.3.1: typo fixes only.
    V0_3_1,
    /// 0.4.0: CHECK, and `prevResult` on DEL.
    V0_4_0,
    /// 1.0.0: `ips[].version` dropped.
    V1_0_0,
    /// 1.1.0: STATUS, GC, `interfaces[].mtu`.
    V1_1_0,
}

impl Version {
    /// Every supported version, oldest first: what VERSION reports as `supportedVersions`.
    pub const ALL: [Self; 5] = [
        Self::V0_3_0,
        Self::V0_3_1,
        Self::V0_4_0,
        Self::V1_0_0,
        Self::V1_1_0,
    ];

    /// The newest supported version: what answers and errors are written in when the
    /// configuration names no version ovswire speaks.
    pub const NEWEST: Self = Self::V1_1_0;

    /// The version string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V0_3_0 => "0.3.0",
            Self::V0_3_1 => "0.3.1",
            Self::V0_4_0 => "0.4.0",
            Self::V1_0_0 => "1.0.0",
            Self::V1_1_0 => "1.1.0",
        }
    }

    /// Parses a version string; `None` if ovswire does not speak it.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// "0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0": for messages that say what to set.
    pub fn choices() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A CNI error code: the spec's well-known ones (below 100), ovswire's own (100 and up), and
/// any other a plugin may print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// 1: the configuration asks for a CNI version ovswire does not speak, or for a command
    /// that version does not have.
    IncompatibleVersion,
    /// 2: the configuration asks for something ovswire does not do (`ipam`, a
    /// runtime-requested MAC or IP).
    UnsupportedField,
    /// 3: the container (its network namespace) does not exist.
    UnknownContainer,
    /// 4: a `CNI_*` variable is missing or invalid.
    InvalidEnv,
    /// 5: I/O failed, such as reading the configuration from stdin.
    Io,
    /// 6: the configuration is not a JSON object.
    Decode,
    /// 7: the configuration is JSON but not valid.
    InvalidConfig,
    /// 11: not ready yet (the agent is down or starting); the runtime should retry.
    TryAgainLater,
    /// 50: STATUS: the plugin cannot take ADDs.
    Unavailable,
    /// 100, ovswire: the node could not carry out the request (netlink or OVS failed).
    Internal,
    /// 101, ovswire: CHECK found the pod's interface missing or not as ADD left it.
    CheckFailed,
    /// 102, ovswire: the agent answered something the plugin cannot use (plugin and agent
    /// versions do not match).
    AgentProtocol,
    /// Any other number. [`Code::from`] never puts a number listed above here.
    Other(u32),
}

impl From<Code> for u32 {
    fn from(code: Code) -> Self {
        match code {
            Code::IncompatibleVersion => 1,
            Code::UnsupportedField => 2,
            Code::UnknownContainer => 3,
            Code::InvalidEnv => 4,
            Code::Io => 5,
            Code::Decode => 6,
            Code::InvalidConfig => 7,
            Code::TryAgainLater => 11,
            Code::Unavailable => 50,
            Code::Internal => 100,
            Code::CheckFailed => 101,
            Code::AgentProtocol => 102,
            Code::Other(n) => n,
        }
    }
}

impl From<u32> for Code {
    fn from(n: u32) -> Self {
        const KNOWN: [Code; 12] = [
            Code::IncompatibleVersion,
            Code::UnsupportedField,
            Code::UnknownContainer,
            Code::InvalidEnv,
            Code::Io,
            Code::Decode,
            Code::InvalidConfig,
            Code::TryAgainLater,
            Code::Unavailable,
            Code::Internal,
            Code::CheckFailed,
            Code::AgentProtocol,
        ];
        KNOWN
            .into_iter()
            .find(|c| u32::from(*c) == n)
            .unwrap_or(Self::Other(n))
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", u32::from(*self))
    }
}

/// A CNI error: a code, a message that says what went wrong, and details that say what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    /// The code; the plugin also exits with it.
    pub code: Code,
    /// What went wrong.
    pub msg: String,
    /// What to do about it; empty when there is nothing to add.
    pub details: String,
}

impl CniError {
    /// An error with `code`, message `msg` and advice `details`.
    pub fn new(code: Code, msg: impl Into<String>, details: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// The error object the plugin prints on stdout, written in `version`:
    /// `{"cniVersion", "code", "msg", "details"}`, without `details` when it is empty (the
    /// spec makes it optional).
    pub fn to_json(&self, version: Version) -> Value {
        let mut out = json!({
            "cniVersion": version.as_str(),
            "code": u32::from(self.code),
            "msg": self.msg,
        });
        if !self.details.is_empty() {
            out["details"] = self.details.clone().into();
        }
        out
    }

    /// Reads an error object a plugin printed; `None` unless it is an object whose `code` is a
    /// whole number that fits 32 bits. A missing or non-string `msg` or `details` reads as
    /// empty.
    pub fn from_json(value: &Value) -> Option<Self> {
        let code = u32::try_from(value.get("code")?.as_u64()?).ok()?;
        let text = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Some(Self {
            code: Code::from(code),
            msg: text("msg"),
            details: text("details"),
        })
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CNI error {}: {}", self.code, self.msg)?;
        if !self.details.is_empty() {
            write!(f, " ({})", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

/// The `CNI_ARGS` key of the pod's Kubernetes namespace, which ovswire reads as the lab.
pub const K8S_POD_NAMESPACE: &str = "K8S_POD_NAMESPACE";
/// The `CNI_ARGS` key of the pod's name, which ovswire reads as the router.
pub const K8S_POD_NAME: &str = "K8S_POD_NAME";

/// Writes `CNI_ARGS` as the spec defines it: `KEY=VALUE` pairs separated by `;`.
pub fn cni_args(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_through_their_names() {
        for c in Command::ALL {
            assert_eq!(Command::parse(c.as_str()), Some(c));
            assert_eq!(c.to_string(), c.as_str());
        }
        for bad in ["", "add", "Add", " ADD", "ADD ", "BOGUS"] {
            assert_eq!(Command::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Command::choices(), "ADD, DEL, CHECK, STATUS, GC or VERSION");
    }

    #[test]
    fn commands_know_their_first_version() {
        assert_eq!(Command::Add.since(), Version::V0_3_0);
        assert_eq!(Command::Check.since(), Version::V0_4_0);
        assert_eq!(Command::Status.since(), Version::V1_1_0);
        assert_eq!(Command::Gc.since(), Version::V1_1_0);
    }

    #[test]
    fn versions_round_trip_and_are_ordered() {
        for v in Version::ALL {
            assert_eq!(Version::parse(v.as_str()), Some(v));
            assert_eq!(v.to_string(), v.as_str());
        }
        assert!(Version::ALL.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(Version::ALL.last(), Some(&Version::NEWEST));
        for bad in ["", "0.2.0", "1.0", "v1.0.0", "9.9.9"] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Version::choices(), "0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0");
    }

    #[test]
    fn codes_round_trip_through_their_numbers() {
        for n in 0..=1000 {
            assert_eq!(u32::from(Code::from(n)), n);
        }
        assert_eq!(Code::from(11), Code::TryAgainLater);
        assert_eq!(Code::from(102), Code::AgentProtocol);
        assert_eq!(Code::from(51), Code::Other(51));
    }

    #[test]
    fn errors_are_written_as_the_spec_writes_them() {
        let err = CniError::new(Code::InvalidConfig, "no name", "add \"name\"");
        let json = err.to_json(Version::V0_4_0);
        assert_eq!(
            json,
            json!({"cniVersion": "0.4.0", "code": 7, "msg": "no name", "details": "add \"name\""})
        );
        assert_eq!(CniError::from_json(&json), Some(err));

        let bare = CniError::new(Code::Other(200), "failed", "");
        let json = bare.to_json(Version::V1_1_0);
        assert_eq!(
            json,
            json!({"cniVersion": "1.1.0", "code": 200, "msg": "failed"})
        );
        assert_eq!(CniError::from_json(&json), Some(bare));
    }

    #[test]
    fn only_objects_with_a_code_read_as_errors() {
        for bad in [
            json!(null),
            json!([]),
            json!({"msg": "x"}),
            json!({"code": "7"}),
            json!({"code": -1}),
            json!({"code": u64::MAX}),
        ] {
            assert_eq!(CniError::from_json(&bad), None, "{bad}");
        }
        let odd = CniError::from_json(&json!({"code": 7, "msg": 1})).unwrap();
        assert_eq!((odd.code, odd.msg.as_str()), (Code::InvalidConfig, ""));
    }

    #[test]
    fn cni_args_are_semicolon_separated_pairs() {
        assert_eq!(
            cni_args(&[(K8S_POD_NAMESPACE, "lab"), (K8S_POD_NAME, "r1")]),
            "K8S_POD_NAMESPACE=lab;K8S_POD_NAME=r1"
        );
        assert_eq!(cni_args(&[]), "");
    }
}
