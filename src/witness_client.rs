//! c2sp.org/tlog-witness over HTTP, the submitting half: has every configured witness cosign
//! this node's checkpoints and stores the cosignatures that verify. A client edge, like
//! [`crate::peers`]: sees sizes and hashes only, never an entry; a witness is believed only under
//! a verifier key from configuration.

use crate::audit::{AddCheckpoint, AuditLog, Cosignature, SignedCheckpoint, VerifierKey};
use crate::config::WitnessConfig;
use crate::peers::Peer;
use crate::tls::TlsMaterial;
use axum::http::header;
use std::time::Duration;
use tonic::transport::Channel;

/// The path of the submission API under a witness's prefix.
pub const ADD_CHECKPOINT: &str = "/add-checkpoint";
/// The content type of a 409 answer: the held size in decimal and a newline.
pub const TLOG_SIZE: &str = "text/x.tlog.size";
/// The largest answer read from a witness.
const MAX_BODY: usize = 80 * 1024;
/// How long a witness may take to answer.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a witness could not be configured or did not cosign.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("witness {url}: {reason}")]
    Config { url: String, reason: String },
    #[error("the audit log: {0}")]
    Audit(#[from] crate::audit::AuditError),
    #[error("no answer: {0}")]
    Transport(String),
    #[error("answered {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("holds size {held}, beyond this checkpoint of size {size}")]
    AheadOfLog { held: u64, size: u64 },
    #[error("returned no cosignature by {0}")]
    NoCosignature(String),
}

/// A witness this node submits its checkpoints to: where, and the key its cosignatures must
/// verify under.
#[derive(Clone)]
pub struct WitnessTarget {
    pub url: String,
    /// Its cosignature/v1 verifier key, as configured.
    pub key: String,
    name: String,
    path: String,
    channel: Channel,
}

impl std::fmt::Debug for WitnessTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WitnessTarget")
            .field("url", &self.url)
            .field("name", &self.name)
            .finish()
    }
}

impl WitnessTarget {
    /// The witness's name (from its key).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The configured witnesses, connected lazily. An `https://` URL is reached over the covenant's
/// mutual TLS (a configured peer at that address must present its OIN); `http://` in the clear
/// over HTTP/2 (prior knowledge), which a witness's self-authenticating answer permits.
pub fn targets(
    configs: &[WitnessConfig],
    peers: &[Peer],
    tls: &TlsMaterial,
) -> Result<Vec<WitnessTarget>, SubmitError> {
    configs.iter().map(|c| target(c, peers, tls)).collect()
}

fn target(
    config: &WitnessConfig,
    peers: &[Peer],
    tls: &TlsMaterial,
) -> Result<WitnessTarget, SubmitError> {
    let fail = |reason: String| SubmitError::Config {
        url: config.url.clone(),
        reason,
    };
    let key = VerifierKey::parse(&config.key).map_err(|e| fail(format!("key: {e}")))?;
    if !key.is_cosigner() {
        return Err(fail(
            "key: not a cosignature/v1 (type 0x04) witness key".into(),
        ));
    }
    let (secure, rest) = match config.url.split_once("://") {
        Some(("https", rest)) => (true, rest),
        Some(("http", rest)) => (false, rest),
        _ => return Err(fail("url: must start https:// or http://".into())),
    };
    let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = prefix.trim_end_matches('/');
    let path = match prefix {
        "" => ADD_CHECKPOINT.to_owned(),
        p => format!("/{p}{ADD_CHECKPOINT}"),
    };
    let channel = if secure {
        match peers.iter().find(|p| p.config.address == authority) {
            Some(peer) => peer.channel.clone(),
            None => crate::client::connect_lazy(authority, tls, None)
                .map_err(|e| fail(e.to_string()))?,
        }
    } else {
        tonic::transport::Endpoint::from_shared(format!("http://{authority}"))
            .map_err(|e| fail(e.to_string()))?
            .connect_timeout(SUBMIT_TIMEOUT)
            .connect_lazy()
    };
    Ok(WitnessTarget {
        url: config.url.clone(),
        key: config.key.clone(),
        name: key.name,
        path,
        channel,
    })
}

/// POSTs `body` to the witness; its status, content type and body.
async fn post(target: &WitnessTarget, body: String) -> Result<(u16, String, String), SubmitError> {
    let transport = |e: String| SubmitError::Transport(e);
    let request = axum::http::Request::builder()
        .method("POST")
        .uri(target.path.as_str())
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(tonic::body::Body::new(axum::body::Body::from(body)))
        .map_err(|e| transport(e.to_string()))?;
    let call = tower::ServiceExt::oneshot(target.channel.clone(), request);
    let response = tokio::time::timeout(SUBMIT_TIMEOUT, call)
        .await
        .map_err(|_| transport("no answer in time".into()))?
        .map_err(|e| transport(e.to_string()))?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // The body's deadline too: a witness that sends headers and then withholds the body must not
    // hold up the checkpoint task (it submits to each witness in turn).
    let body = tokio::time::timeout(
        SUBMIT_TIMEOUT,
        axum::body::to_bytes(axum::body::Body::new(response.into_body()), MAX_BODY),
    )
    .await
    .map_err(|_| transport("the answer's body did not arrive in time".into()))?
    .map_err(|e| transport(e.to_string()))?;
    Ok((
        status,
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

/// Has `target` cosign `checkpoint` by c2sp.org/tlog-witness, from the size it last cosigned
/// (as stored here, or as its 409 says), and stores the cosignature that verifies under its
/// configured key. Other cosignature lines in the answer are ignored, as the spec says.
pub async fn submit(
    audit: &AuditLog,
    target: &WitnessTarget,
    checkpoint: &SignedCheckpoint,
) -> Result<(), SubmitError> {
    let size = checkpoint.checkpoint.size;
    let mut old = audit.last_cosigned(&target.name)?;
    if old >= size {
        return Ok(());
    }
    for attempt in 0..2 {
        let proof = match old {
            0 => Vec::new(),
            old => audit.consistency_proof(old, size)?,
        };
        let body = AddCheckpoint {
            old_size: old,
            proof,
            note: checkpoint.note.clone(),
        }
        .body();
        let (status, content_type, answer) = post(target, body).await?;
        match status {
            200 => return store_cosignature(audit, target, checkpoint, &answer),
            409 if attempt == 0 && content_type.starts_with(TLOG_SIZE) => {
                let held =
                    answer
                        .trim_end_matches('\n')
                        .parse()
                        .map_err(|_| SubmitError::Refused {
                            status,
                            body: shown_answer(&answer),
                        })?;
                if held > size {
                    return Err(SubmitError::AheadOfLog { held, size });
                }
                old = held;
            }
            status => {
                return Err(SubmitError::Refused {
                    status,
                    body: shown_answer(&answer),
                })
            }
        }
    }
    Err(SubmitError::Refused {
        status: 409,
        body: "conflict after retrying from the held size".into(),
    })
}

fn store_cosignature(
    audit: &AuditLog,
    target: &WitnessTarget,
    checkpoint: &SignedCheckpoint,
    answer: &str,
) -> Result<(), SubmitError> {
    let mut stored = false;
    for line in answer.lines().filter(|l| !l.is_empty()) {
        let Ok(cosignature) = Cosignature::parse_line(line) else {
            continue;
        };
        if cosignature.name != target.name {
            continue;
        }
        if audit
            .add_cosignature(&target.key, checkpoint, &cosignature)
            .is_ok()
        {
            stored = true;
        }
    }
    match stored {
        true => Ok(()),
        false => Err(SubmitError::NoCosignature(target.name.clone())),
    }
}

/// A witness's answer as our logs show it: the peer's free text, id-like numbers withheld, at most
/// 200 characters.
fn shown_answer(answer: &str) -> String {
    crate::pseudonym::withhold_ids(answer)
        .chars()
        .take(200)
        .collect()
}
