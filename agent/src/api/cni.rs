//! The `ovswire.v1.Cni` gRPC service: each RPC is one CNI command, answered by
//! [`CniServer::answer`] on a task of its own.

use ovswire_cni::spec::{CniError, Code, Command};
use ovswire_core::attach::Attacher;
use ovswire_proto::v1 as proto;
use ovswire_proto::v1::cni_server::Cni;
use tracing::{info, warn};

use crate::cni::{CniServer, Sandbox};

impl<A: Attacher, S: Sandbox> CniServer<A, S> {
    /// Serves one RPC for `command`; a CNI error is an answer, not a gRPC error.
    async fn serve(
        &self,
        command: Command,
        request: tonic::Request<proto::CniRequest>,
    ) -> Result<tonic::Response<proto::CniResponse>, tonic::Status> {
        let req = request.into_inner();
        let (container, ifname) = (req.container_id.clone(), req.ifname.clone());
        let server = self.clone();
        // Its own task, so the request completes even when the caller goes away (the plugin
        // timed out): an ADD cut short could leave a half-made interface behind.
        let outcome = tokio::spawn(async move { server.answer(command, &req).await })
            .await
            .unwrap_or_else(|e| {
                Err(CniError::new(
                    Code::Internal,
                    format!("the agent's {command} handler failed: {e}"),
                    "this is a bug in ovswire-agent; please report it with the agent's log",
                ))
            });
        let response = match outcome {
            Ok(result) => {
                info!(%command, %container, %ifname, "CNI request served");
                proto::CniResponse {
                    result,
                    error: None,
                }
            }
            Err(e) => {
                warn!(
                    %command,
                    %container,
                    %ifname,
                    code = u32::from(e.code),
                    msg = %e.msg,
                    "CNI request failed"
                );
                proto::CniResponse {
                    result: Vec::new(),
                    error: Some(e.into()),
                }
            }
        };
        Ok(tonic::Response::new(response))
    }
}

#[tonic::async_trait]
impl<A: Attacher, S: Sandbox> Cni for CniServer<A, S> {
    async fn add(
        &self,
        request: tonic::Request<proto::CniRequest>,
    ) -> Result<tonic::Response<proto::CniResponse>, tonic::Status> {
        self.serve(Command::Add, request).await
    }

    async fn del(
        &self,
        request: tonic::Request<proto::CniRequest>,
    ) -> Result<tonic::Response<proto::CniResponse>, tonic::Status> {
        self.serve(Command::Del, request).await
    }

    async fn check(
        &self,
        request: tonic::Request<proto::CniRequest>,
    ) -> Result<tonic::Response<proto::CniResponse>, tonic::Status> {
        self.serve(Command::Check, request).await
    }

    async fn status(
        &self,
        request: tonic::Request<proto::CniRequest>,
    ) -> Result<tonic::Response<proto::CniResponse>, tonic::Status> {
        self.serve(Command::Status, request).await
    }

    async fn gc(
        &self,
        request: tonic::Request<proto::CniRequest>,
    ) -> Result<tonic::Response<proto::CniResponse>, tonic::Status> {
        self.serve(Command::Gc, request).await
    }
}
