//! The crate's error type.

/// What went wrong; every message names the object and what to change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Topology objects that describe links ovswire cannot make.
    #[error("{object}: {}", problems.join("; "))]
    Invalid {
        /// The object or objects, e.g. `topology.ovswire.io/ring in namespace lab1`.
        object: String,
        /// One line per problem, each saying what is wrong and what to do.
        problems: Vec<String>,
    },
    /// A CustomResourceDefinition could not be written as YAML.
    #[error("cannot write the CustomResourceDefinition {crd} as YAML: {source}")]
    CrdYaml {
        /// The CRD's name.
        crd: String,
        /// Why.
        source: serde_yaml_ng::Error,
    },
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
