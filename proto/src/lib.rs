//! The gRPC API of the ovswire agent (package `ovswire.v1`).
//!
//! - `Cni`: the `ovswire-cni` plugin hands each CNI request, as the runtime made it, to the
//!   agent on its node over a root-only unix socket, and prints the answer. One RPC per CNI
//!   command: the RPC is the command's only name on the wire.
//! - `Wires`: tests and the `ovswire` CLI list links, take them down and up, and watch them.
//! - `Peers`: agents on different nodes tell each other which pod interfaces they hold, so
//!   cross-node wires get both halves, over the underlay with a shared token.
//!
//! Enable the `client` feature for the generated clients and `server` for the servers; the
//! message types are always there. The `.proto` files are in `proto/ovswire/v1/` and are
//! compiled with protox, so building needs no `protoc`.

/// Package `ovswire.v1`.
#[allow(unreachable_pub, missing_debug_implementations, clippy::use_self)]
pub mod v1 {
    tonic::include_proto!("ovswire.v1");
}

mod impair {
    use super::v1 as pb;
    use ovswire_core::impair::{ImpairError, Impairment, LinkImpairment};

    impl From<&Impairment> for pb::Impairment {
        fn from(i: &Impairment) -> Self {
            Self {
                delay_us: i.delay_us,
                jitter_us: i.jitter_us,
                jitter_correlation_ppm: i.jitter_correlation,
                loss_ppm: i.loss,
                loss_correlation_ppm: i.loss_correlation,
                corrupt_ppm: i.corrupt,
                duplicate_ppm: i.duplicate,
                reorder_ppm: i.reorder,
                rate_bps: i.rate,
            }
        }
    }

    impl TryFrom<&pb::Impairment> for Impairment {
        type Error = ImpairError;

        /// The impairment, validated as any other.
        fn try_from(p: &pb::Impairment) -> Result<Self, ImpairError> {
            let i = Self {
                delay_us: p.delay_us,
                jitter_us: p.jitter_us,
                jitter_correlation: p.jitter_correlation_ppm,
                loss: p.loss_ppm,
                loss_correlation: p.loss_correlation_ppm,
                corrupt: p.corrupt_ppm,
                duplicate: p.duplicate_ppm,
                reorder: p.reorder_ppm,
                rate: p.rate_bps,
            };
            i.validate()?;
            Ok(i)
        }
    }

    impl From<&LinkImpairment> for pb::LinkImpairment {
        fn from(l: &LinkImpairment) -> Self {
            Self {
                a_to_b: Some((&l.a_to_b).into()),
                b_to_a: Some((&l.b_to_a).into()),
            }
        }
    }

    impl TryFrom<&pb::LinkImpairment> for LinkImpairment {
        type Error = ImpairError;

        /// The link's impairments, validated; an unset direction is no impairment.
        fn try_from(p: &pb::LinkImpairment) -> Result<Self, ImpairError> {
            let dir = |d: Option<&pb::Impairment>| {
                d.map_or(Ok(Impairment::default()), Impairment::try_from)
            };
            Ok(Self {
                a_to_b: dir(p.a_to_b.as_ref())?,
                b_to_a: dir(p.b_to_a.as_ref())?,
            })
        }
    }
}

/// Connects a gRPC channel to an agent's unix socket (the agent serves both services on unix
/// sockets). Fails at once if nothing listens there.
#[cfg(feature = "client")]
pub async fn unix_channel(
    path: impl AsRef<std::path::Path>,
    connect_timeout: std::time::Duration,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let path = path.as_ref().to_owned();
    // The URI is a placeholder: the connector always dials the unix socket.
    tonic::transport::Endpoint::from_static("http://[::]:50051")
        .connect_timeout(connect_timeout)
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
}
