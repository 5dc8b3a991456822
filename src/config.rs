//! Node configuration: a TOML file whose every setting a command-line flag can override. Reads
//! paths only; loading what they point to is the node's job.

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config {path} is invalid: {message}")]
    Parse { path: String, message: String },
    #[error("no {0} given: set it in the config file or pass --{1}")]
    Missing(&'static str, &'static str),
    #[error("pseudonymiser_public_keys: {0}")]
    PublicKey(String),
}

/// The settings of one node, as read from `--config` and then overridden by flags.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Address to listen on, e.g. "0.0.0.0:7443".
    pub listen: Option<String>,
    /// Directory for the node's data (the sled store).
    pub data_dir: Option<PathBuf>,
    /// The node's certificate (PEM), naming its organisation and OIN.
    pub cert: Option<PathBuf>,
    /// The node's private key (PEM).
    pub key: Option<PathBuf>,
    /// The covenant CA (PEM) that every peer's certificate must chain to.
    pub ca: Option<PathBuf>,
    /// The covenant CA's certificate revocation list (PEM), re-read on SIGHUP.
    pub crl: Option<PathBuf>,
    /// The pseudonymisation service's address (host:port). The node holds no pseudonymisation
    /// secret: it has the service evaluate blinded ids.
    pub pseudonymiser: Option<String>,
    /// The OIN the pseudonymisation service's certificate must name.
    pub pseudonymiser_oin: Option<String>,
    /// The service's published public keys, "v<version>:<base64url>", one per key version (as
    /// `pactgate keygen` prints them); new pseudonyms use the newest version.
    #[serde(default)]
    pub pseudonymiser_public_keys: Vec<String>,
    /// The covenant policy file (TOML), e.g. policies/groningen.toml.
    pub policy: Option<PathBuf>,
    /// The counting rules file (TOML), e.g. policies/counting.toml.
    pub counting: Option<PathBuf>,
    /// The other partners' nodes this node may ask.
    #[serde(default, rename = "peer")]
    pub peers: Vec<crate::peers::PeerConfig>,
    /// The `[limits]` table: connections, requests, pushes, shutdown grace, store cache.
    #[serde(default)]
    pub limits: crate::limits::Limits,
    /// The witnesses this node submits its audit checkpoints to (c2sp.org/tlog-witness).
    #[serde(default, rename = "witness")]
    pub witnesses: Vec<WitnessConfig>,
    /// The logs this node witnesses: their signed-note verifier keys (`name+keyhash+base64`,
    /// the name being the log's origin), pinned here; no other log is cosigned.
    #[serde(default)]
    pub witnessed_logs: Vec<String>,
}

/// A witness this node submits its audit checkpoints to.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// Its submission prefix: `https://host:port` (the covenant's mutual TLS, e.g. a peer node)
    /// or `http://host:port/prefix` (in the clear, HTTP/2 prior knowledge).
    pub url: String,
    /// Its cosignature/v1 verifier key (`name+keyhash+base64`, type 0x04), pinned.
    pub key: String,
}

impl NodeConfig {
    /// Reads a TOML config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// This config with every setting that `flags` has replacing this one's.
    pub fn overridden_by(self, flags: NodeConfig) -> Self {
        Self {
            listen: flags.listen.or(self.listen),
            data_dir: flags.data_dir.or(self.data_dir),
            cert: flags.cert.or(self.cert),
            key: flags.key.or(self.key),
            ca: flags.ca.or(self.ca),
            crl: flags.crl.or(self.crl),
            pseudonymiser: flags.pseudonymiser.or(self.pseudonymiser),
            pseudonymiser_oin: flags.pseudonymiser_oin.or(self.pseudonymiser_oin),
            pseudonymiser_public_keys: if flags.pseudonymiser_public_keys.is_empty() {
                self.pseudonymiser_public_keys
            } else {
                flags.pseudonymiser_public_keys
            },
            policy: flags.policy.or(self.policy),
            counting: flags.counting.or(self.counting),
            peers: if flags.peers.is_empty() {
                self.peers
            } else {
                flags.peers
            },
            limits: self.limits,
            witnesses: if flags.witnesses.is_empty() {
                self.witnesses
            } else {
                flags.witnesses
            },
            witnessed_logs: if flags.witnessed_logs.is_empty() {
                self.witnessed_logs
            } else {
                flags.witnessed_logs
            },
        }
    }

    /// The pseudonymisation service as configured: address, OIN and at least one public key.
    pub fn pseudonymiser(&self) -> Result<crate::pseudonymiser::ServiceConfig, ConfigError> {
        let public_keys = self
            .pseudonymiser_public_keys
            .iter()
            .map(|k| k.parse().map_err(ConfigError::PublicKey))
            .collect::<Result<Vec<_>, _>>()?;
        if public_keys.is_empty() {
            return Err(ConfigError::Missing(
                "pseudonymisation service public key",
                "pseudonymiser-public-key",
            ));
        }
        Ok(crate::pseudonymiser::ServiceConfig {
            address: Self::require(
                &self.pseudonymiser,
                "pseudonymisation service address",
                "pseudonymiser",
            )?
            .clone(),
            oin: Self::require(
                &self.pseudonymiser_oin,
                "pseudonymisation service OIN",
                "pseudonymiser-oin",
            )?
            .clone(),
            public_keys,
        })
    }

    pub fn require<'a, T>(
        value: &'a Option<T>,
        what: &'static str,
        flag: &'static str,
    ) -> Result<&'a T, ConfigError> {
        value.as_ref().ok_or(ConfigError::Missing(what, flag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file() {
        let file: NodeConfig = toml::from_str("listen = \"0.0.0.0:1\"\ndata_dir = \"/a\"").unwrap();
        let flags = NodeConfig {
            listen: Some("127.0.0.1:2".into()),
            ..Default::default()
        };
        let merged = file.overridden_by(flags);
        assert_eq!(merged.listen.as_deref(), Some("127.0.0.1:2"));
        assert_eq!(merged.data_dir.as_deref(), Some(Path::new("/a")));
    }

    #[test]
    fn peers_from_file() {
        let file: NodeConfig = toml::from_str(
            "policy = \"policies/groningen.toml\"\n[[peer]]\nname = \"ggd\"\naddress = \"127.0.0.1:7443\"\noin = \"00000099000000000006\"\n",
        )
        .unwrap();
        assert_eq!(file.peers.len(), 1);
        assert_eq!(file.peers[0].name, "ggd");
    }

    #[test]
    fn limits_from_file() {
        let file: NodeConfig =
            toml::from_str("[limits]\nshutdown_grace_secs = 3\nstore_cache_mib = 32\n").unwrap();
        assert_eq!(file.limits.shutdown_grace_secs, 3);
        assert_eq!(file.limits.store_cache_mib, 32);
        let merged = file.overridden_by(NodeConfig::default());
        assert_eq!(merged.limits.shutdown_grace_secs, 3);
    }

    #[test]
    fn pseudonymiser_settings() {
        let public = crate::pseudonym::PseudonymKey::from_bytes(1, &[3; 32]).public_key();
        let file: NodeConfig = toml::from_str(&format!(
            "pseudonymiser = \"ttp:7450\"\npseudonymiser_oin = \"00000099000000000013\"\n\
             pseudonymiser_public_keys = [\"{public}\"]\n"
        ))
        .unwrap();
        let service = file.pseudonymiser().unwrap();
        assert_eq!(service.address, "ttp:7450");
        assert_eq!(service.public_keys, vec![public]);
        let bad = NodeConfig {
            pseudonymiser_public_keys: vec!["v1:nope".into()],
            ..file.clone()
        };
        assert!(bad
            .pseudonymiser()
            .unwrap_err()
            .to_string()
            .contains("pseudonymiser_public_keys"));
        let none = NodeConfig {
            pseudonymiser_public_keys: Vec::new(),
            ..file
        };
        assert!(none
            .pseudonymiser()
            .unwrap_err()
            .to_string()
            .contains("--pseudonymiser-public-key"));
        // A node configured with a key of its own is refused: it may hold none.
        assert!(toml::from_str::<NodeConfig>("pseudonym_key = \"/k\"").is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<NodeConfig>("lissen = \"x\"").is_err());
    }
}
