//! One RPC attempt with a timeout, its transport failure folded into [`GfsError::Network`].
//!
//! Retrying is the caller's business (bounded there): a failed attempt may or may not have reached
//! the other side, which is exactly the ambiguity GFS clients live with.

use crate::types::GfsError;
use madsim::net::{rpc::Request, Endpoint};
use std::net::SocketAddr;
use std::time::Duration;

/// Sends `req` and waits up to `timeout_ms` for the reply.
pub async fn call<R: Request>(
    ep: &Endpoint,
    dst: SocketAddr,
    req: R,
    timeout_ms: u64,
) -> Result<R::Response, GfsError> {
    ep.call_timeout(dst, req, Duration::from_millis(timeout_ms))
        .await
        .map_err(|e| GfsError::Network(format!("{dst}: {e}")))
}

/// [`call`] for requests whose response is itself a `Result`.
pub async fn call_result<R, T>(
    ep: &Endpoint,
    dst: SocketAddr,
    req: R,
    timeout_ms: u64,
) -> Result<T, GfsError>
where
    R: Request<Response = Result<T, GfsError>>,
{
    call(ep, dst, req, timeout_ms).await?
}
