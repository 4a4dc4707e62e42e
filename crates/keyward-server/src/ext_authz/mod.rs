//! Envoy's external authorization over gRPC (`envoy.service.auth.v3.Authorization/Check`),
//! served on a listener of its own (`serve --ext-authz-listen`): the service (here) and the
//! translation between Envoy's messages and forward-auth's decision (`check`).
//!
//! A check is judged by the same function as `GET /v1/auth` (`verify::forward`): the
//! credential from the request's headers, the requirements from the route's
//! `context_extensions`, the answer's identity headers added to the request Envoy lets
//! through and its refusals passed to the client as they are.

use std::net::SocketAddr;

use envoy_types::pb::envoy::service::auth::v3::authorization_server::{Authorization, AuthorizationServer};
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::state::SharedState;

mod check;

/// The gRPC service Envoy calls.
struct ExtAuthz {
    state: SharedState,
}

#[tonic::async_trait]
impl Authorization for ExtAuthz {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let remote = request.remote_addr();
        let (metadata, _, message) = request.into_parts();
        let answer = check::check(&self.state, metadata.into_headers(), remote, message).await;
        Ok(tonic::Response::new(answer))
    }
}

/// The largest Check message accepted: room for the request's headers besides a body of up to
/// the server's body limit (Envoy's `with_request_body`), and never less than gRPC's usual 4 MiB.
fn max_message(state: &SharedState) -> usize {
    state.config.body_limit.saturating_add(1 << 20).max(4 << 20)
}

/// Serves the Check service on `listener` until `stopped`.
pub(crate) async fn serve(state: SharedState, listener: TcpListener, mut stopped: watch::Receiver<bool>) {
    let service =
        AuthorizationServer::new(ExtAuthz { state: state.clone() }).max_decoding_message_size(max_message(&state));
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let stop = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let served =
        tonic::transport::Server::builder().add_service(service).serve_with_incoming_shutdown(incoming, stop).await;
    if let Err(e) = served {
        tracing::error!(error = %e, "the ext_authz listener stopped");
    }
}

/// Binds the ext_authz listener (a failure stops the server's start, like the API's own).
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = crate::app::bind_named(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
