//! Connecting to a node over mutual TLS, as a partner's own system or a peer node does.

use crate::tls::TlsMaterial;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid node address {0:?}: expected host:port or https://host:port")]
    Address(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: tonic::transport::Error,
    },
}

/// The endpoint for a node address ("host:port" or "https://host:port"), with mTLS.
pub fn endpoint(addr: &str, tls: &TlsMaterial) -> Result<Endpoint, ClientError> {
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("https://{addr}")
    };
    Endpoint::from_shared(uri)
        .map_err(|_| ClientError::Address(addr.to_owned()))?
        .tls_config(tls.client_config())
        .map_err(|_| ClientError::Address(addr.to_owned()))
        .map(|e| {
            e.connect_timeout(Duration::from_secs(5))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30))
        })
}

/// Connects to a node now (fails fast if it is unreachable or refuses the handshake).
pub async fn connect(addr: &str, tls: &TlsMaterial) -> Result<Channel, ClientError> {
    endpoint(addr, tls)?
        .connect()
        .await
        .map_err(|source| ClientError::Connect {
            addr: addr.to_owned(),
            source,
        })
}
