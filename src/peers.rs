//! The node's peers: the other partners' nodes it may ask, from configuration (name, address,
//! expected OIN), each with a lazily connected mTLS channel that only accepts a server whose
//! certificate names that OIN. Holds no permission: each peer decides for itself what it shares.

use crate::client::{self, ClientError};
use crate::tls::TlsMaterial;
use serde::Deserialize;
use tonic::transport::Channel;

/// A peer as configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// A short name, shown in answers and failures.
    pub name: String,
    /// host:port of its node.
    pub address: String,
    /// The OIN its certificate must name.
    pub oin: String,
}

/// A peer with its channel.
#[derive(Clone)]
pub struct Peer {
    pub config: PeerConfig,
    pub channel: Channel,
}

/// Whether a peer answered its gRPC health check, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerHealth {
    /// The health service answered SERVING.
    pub up: bool,
    /// What it answered, or why no answer came.
    pub status: String,
    /// How long the answer took.
    pub elapsed: std::time::Duration,
}

impl Peer {
    /// Asks the peer's gRPC health service (the whole node), waiting at most `timeout`. Sends
    /// the peer nothing about anyone.
    pub async fn health(&self, timeout: std::time::Duration) -> PeerHealth {
        use tonic_health::pb::health_check_response::ServingStatus;
        use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
        let started = std::time::Instant::now();
        let mut client = HealthClient::new(self.channel.clone());
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        request.set_timeout(timeout);
        let (up, status) = match tokio::time::timeout(timeout, client.check(request)).await {
            Err(_) => (false, "no answer in time".to_owned()),
            Ok(Err(status)) => (false, status.message().to_owned()),
            Ok(Ok(response)) => {
                let serving = response.into_inner().status();
                (
                    serving == ServingStatus::Serving,
                    serving.as_str_name().to_owned(),
                )
            }
        };
        PeerHealth {
            up,
            status,
            elapsed: started.elapsed(),
        }
    }
}

/// Channels to every configured peer. Connects on first use, so peers may be down at start.
pub fn connect_all(configs: &[PeerConfig], tls: &TlsMaterial) -> Result<Vec<Peer>, ClientError> {
    configs
        .iter()
        .map(|c| {
            Ok(Peer {
                config: c.clone(),
                channel: client::connect_lazy(&c.address, tls, Some(&c.oin))?,
            })
        })
        .collect()
}
