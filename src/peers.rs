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
