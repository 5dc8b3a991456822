//! The node's side of the pseudonymisation service: blinds pupil ids, asks for a batch
//! evaluation over mTLS (the server's certificate must name the configured OIN), checks the
//! batch's proof against the configured public key, unblinds and derives the pseudonyms. Holds no
//! secret: only the service's address, OIN and public keys. Never sends or logs a pupil id.

use super::MAX_BATCH;
use crate::pb;
use crate::pb::pseudonymiser_service_client::PseudonymiserServiceClient as GrpcClient;
use crate::pseudonym::{pseudonym_from_output, PublicKey, PupilId, Suite};
use crate::tls::TlsMaterial;
use crate::trace::TraceContext;
use std::sync::Arc;
use tonic::transport::Channel;
use voprf::{EvaluationElement, Proof, VoprfClient};
use zeroize::Zeroizing;

/// Where the pseudonymisation service is and which public keys the covenant published for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// host:port of the service.
    pub address: String,
    /// The OIN its certificate must name.
    pub oin: String,
    /// The published public keys, one per key version; new pseudonyms use the newest.
    pub public_keys: Vec<PublicKey>,
}

/// Why ids could not be pseudonymised. Never contains an id.
#[derive(Debug, thiserror::Error)]
pub enum PseudonymiseError {
    #[error("no public key of the pseudonymisation service is configured")]
    NoPublicKey,
    #[error("no public key v{0} of the pseudonymisation service is configured")]
    UnknownVersion(u16),
    #[error(transparent)]
    Connect(#[from] crate::client::ClientError),
    #[error("the pseudonymisation service refused: {}", .0.message())]
    Refused(tonic::Status),
    #[error(
        "the pseudonymisation service's answer does not verify against the published public key \
         v{0}: it may be using another key"
    )]
    Proof(u16),
    #[error("the pseudonymisation service's answer is malformed: {0}")]
    Malformed(&'static str),
    #[error("pseudonymisation failed inside the node")]
    Task,
}

/// How the pseudonymisation service refused a request it understood (its own reason follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Quota,
    NotAParty,
    Invalid,
    NotFound,
}

impl PseudonymiseError {
    /// The service's refusal and its reason, if it refused (rather than failed or was away).
    pub fn refusal(&self) -> Option<(Refusal, &str)> {
        let PseudonymiseError::Refused(s) = self else {
            return None;
        };
        let kind = match s.code() {
            tonic::Code::ResourceExhausted => Refusal::Quota,
            tonic::Code::PermissionDenied => Refusal::NotAParty,
            tonic::Code::InvalidArgument => Refusal::Invalid,
            tonic::Code::NotFound => Refusal::NotFound,
            _ => return None,
        };
        Some((kind, s.message()))
    }

    /// Whether the service could not be reached (or answered with a failure of its own).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            PseudonymiseError::Refused(_) | PseudonymiseError::Connect(_)
        ) && self.refusal().is_none()
    }
}

/// A client of the pseudonymisation service; cheap to clone.
#[derive(Clone)]
pub struct PseudonymiserClient {
    grpc: GrpcClient<Channel>,
    /// Oldest version first; never empty.
    keys: Arc<Vec<PublicKey>>,
}

impl std::fmt::Debug for PseudonymiserClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PseudonymiserClient(versions {:?})", self.versions())
    }
}

/// What a batch's blinding leaves for its finalisation: the inputs and the blinds. Wiped on drop
/// (voprf zeroizes its clients).
struct Blinded {
    inputs: Vec<Zeroizing<Vec<u8>>>,
    clients: Vec<VoprfClient<Suite>>,
    messages: Vec<Vec<u8>>,
}

fn blind_all(inputs: Vec<Zeroizing<Vec<u8>>>) -> Result<Blinded, PseudonymiseError> {
    let mut clients = Vec::with_capacity(inputs.len());
    let mut messages = Vec::with_capacity(inputs.len());
    for input in &inputs {
        let blind = VoprfClient::<Suite>::blind(input, &mut rand_core::OsRng)
            .map_err(|_| PseudonymiseError::Task)?;
        messages.push(blind.message.serialize().to_vec());
        clients.push(blind.state);
    }
    Ok(Blinded {
        inputs,
        clients,
        messages,
    })
}

fn finalize(
    key: PublicKey,
    blinded: Blinded,
    response: pb::EvaluateResponse,
) -> Result<Vec<String>, PseudonymiseError> {
    if response.key_version != u32::from(key.version) {
        return Err(PseudonymiseError::Malformed("it names another key version"));
    }
    if response.evaluated_elements.len() != blinded.clients.len() {
        return Err(PseudonymiseError::Malformed(
            "it has another number of elements than the request",
        ));
    }
    let messages = response
        .evaluated_elements
        .iter()
        .map(|bytes| EvaluationElement::<Suite>::deserialize(bytes))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| PseudonymiseError::Malformed("an element is not a ristretto255 point"))?;
    let proof = Proof::<Suite>::deserialize(&response.proof)
        .map_err(|_| PseudonymiseError::Malformed("the proof is not 64 bytes of two scalars"))?;
    let inputs: Vec<&[u8]> = blinded.inputs.iter().map(|i| i.as_slice()).collect();
    let outputs =
        VoprfClient::batch_finalize(&inputs, &blinded.clients, &messages, &proof, key.element)
            .map_err(|_| PseudonymiseError::Proof(key.version))?;
    outputs
        .map(|output| {
            output
                .map(|o| pseudonym_from_output(key.version, &o))
                .map_err(|_| PseudonymiseError::Proof(key.version))
        })
        .collect()
}

impl PseudonymiserClient {
    /// A client that connects on first use, accepting only a server whose certificate names the
    /// configured OIN.
    pub fn connect_lazy(
        config: &ServiceConfig,
        tls: &TlsMaterial,
    ) -> Result<Self, PseudonymiseError> {
        let mut keys = config.public_keys.clone();
        keys.sort_by_key(|k| k.version);
        keys.dedup_by_key(|k| k.version);
        if keys.is_empty() {
            return Err(PseudonymiseError::NoPublicKey);
        }
        let channel = crate::client::connect_lazy(&config.address, tls, Some(&config.oin))?;
        Ok(Self {
            grpc: GrpcClient::new(channel),
            keys: Arc::new(keys),
        })
    }

    /// The version new pseudonyms use: the newest configured.
    pub fn current_version(&self) -> u16 {
        self.keys.last().map_or(0, |k| k.version)
    }

    /// Every configured version, oldest first.
    pub fn versions(&self) -> Vec<u16> {
        self.keys.iter().map(|k| k.version).collect()
    }

    /// The pseudonyms of `ids` under the current key version, in order, with one round trip per
    /// [`MAX_BATCH`] ids.
    pub async fn pseudonymise_batch<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a PupilId>,
        trace: &TraceContext,
    ) -> Result<Vec<String>, PseudonymiseError> {
        self.pseudonymise_under(self.current_version(), ids, trace)
            .await
    }

    /// The pseudonyms of `ids` under one key version (to look up pseudonyms made before a
    /// rotation).
    pub async fn pseudonymise_under<'a>(
        &self,
        version: u16,
        ids: impl IntoIterator<Item = &'a PupilId>,
        trace: &TraceContext,
    ) -> Result<Vec<String>, PseudonymiseError> {
        let key = *self
            .keys
            .iter()
            .find(|k| k.version == version)
            .ok_or(PseudonymiseError::UnknownVersion(version))?;
        let inputs: Vec<Zeroizing<Vec<u8>>> = ids.into_iter().map(PupilId::oprf_input).collect();
        let mut out = Vec::with_capacity(inputs.len());
        let mut inputs = inputs.into_iter();
        loop {
            let chunk: Vec<_> = inputs.by_ref().take(MAX_BATCH).collect();
            if chunk.is_empty() {
                return Ok(out);
            }
            out.extend(self.round_trip(key, chunk, trace).await?);
        }
    }

    async fn round_trip(
        &self,
        key: PublicKey,
        inputs: Vec<Zeroizing<Vec<u8>>>,
        trace: &TraceContext,
    ) -> Result<Vec<String>, PseudonymiseError> {
        let mut blinded = tokio::task::spawn_blocking(move || blind_all(inputs))
            .await
            .map_err(|_| PseudonymiseError::Task)??;
        let mut request = tonic::Request::new(pb::EvaluateRequest {
            key_version: u32::from(key.version),
            blinded_elements: std::mem::take(&mut blinded.messages),
        });
        trace.inject(&mut request);
        let response = self
            .grpc
            .clone()
            .evaluate(request)
            .await
            .map_err(PseudonymiseError::Refused)?
            .into_inner();
        tokio::task::spawn_blocking(move || finalize(key, blinded, response))
            .await
            .map_err(|_| PseudonymiseError::Task)?
    }
}
