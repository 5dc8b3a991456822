//! The `pactgate audit` subcommands for the FG: offline verification of a stopped node's data
//! dir, and over gRPC (with an FG certificate) listing, export, the access report for one pupil,
//! verification and inclusion proofs, as readable tables.

use super::Failed;
use super::{AuditArgs, AuditCommand, AuditFilterArgs, FgConnectArgs};
use crate::audit::{self, Checkpoint, SigningKey, TrustedCheckpoint};
use crate::pb;
use crate::pb::audit_service_client::AuditServiceClient;
use crate::text::{checkpoint_line, render_entries};
use anyhow::{bail, Context as _};
use base64::Engine as _;
use std::path::{Path, PathBuf};

/// Runs an audit subcommand.
pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    match args.command {
        AuditCommand::Verify {
            data_dir: Some(dir),
            peer_checkpoints,
            ..
        } => verify_offline(&dir, &peer_checkpoints),
        AuditCommand::Verify { connect, .. } => verify_remote(&connect).await,
        AuditCommand::List { connect, filter } => list(&connect, &filter).await,
        AuditCommand::Export {
            connect,
            filter,
            format,
        } => export(&connect, &filter, &format).await,
        AuditCommand::Report {
            connect,
            pupil_id_stdin,
            pupil,
        } => {
            let pupil_id = if pupil_id_stdin {
                let mut line = zeroize::Zeroizing::new(String::new());
                std::io::stdin().read_line(&mut line)?;
                Some(line.trim().to_owned())
            } else {
                None
            };
            report(&connect, pupil_id, pupil).await
        }
        AuditCommand::Prove { connect, seq } => prove(&connect, seq).await,
        AuditCommand::Vkey {
            data_dir,
            cert,
            witness,
        } => vkey(&data_dir, &cert, witness),
        AuditCommand::Consistency {
            connect,
            old_size,
            new_size,
        } => consistency(&connect, old_size, new_size).await,
    }
}

fn read_peer_checkpoint(path: &Path) -> anyhow::Result<TrustedCheckpoint> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    // A signed note, or just its body (origin, size, base64 root) as a witness reports it.
    let checkpoint: Checkpoint = audit::body_of(&text)
        .or_else(|_| Checkpoint::parse_body(&text))
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(TrustedCheckpoint::new(
        checkpoint,
        format!("given in {}", path.display()),
    ))
}

/// Verifies a stopped node's audit log from its data dir through the audit module's offline
/// verifier (which works on a copy). Also fails on a log shorter than the node acknowledged (its
/// integrity record). A log that fails is a [`Failed`] error with exit code 2.
pub fn verify_offline(data_dir: &Path, peer_checkpoints: &[PathBuf]) -> anyhow::Result<()> {
    let peer = peer_checkpoints
        .iter()
        .map(|p| read_peer_checkpoint(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let verified = audit::verify_stopped(&data_dir.join("store"), audit_key(data_dir)?, peer)?;
    let mut response = crate::rpc::convert::verify_response(verified.result);
    let acknowledged = crate::integrity::Files::new(data_dir)
        .read_record()?
        .map_or(0, |r| r.audit_entries);
    if response.ok && response.entries < acknowledged {
        response.ok = false;
        response.problem = format!(
            "the log holds {} entries but the node acknowledged {acknowledged} (its integrity \
             record): its tail was lost",
            response.entries
        );
        response.first_bad_seq = response.entries;
    }
    report_verify(response, &verified.origin)
}

/// The audit log's signing key in a node's data dir.
fn audit_key(data_dir: &Path) -> anyhow::Result<SigningKey> {
    let key_file = data_dir.join(crate::node::AUDIT_KEY_FILE);
    let pkcs8 =
        std::fs::read(&key_file).with_context(|| format!("cannot read {}", key_file.display()))?;
    Ok(SigningKey::from_pkcs8(&pkcs8)?)
}

fn report_verify(v: pb::VerifyResponse, origin: &str) -> anyhow::Result<()> {
    match crate::text::verify_text(origin, &v) {
        Ok(line) => {
            println!("{line}");
            Ok(())
        }
        Err(problem) => Err(Failed {
            code: 2,
            message: problem,
        }
        .into()),
    }
}

async fn client(
    connect: &FgConnectArgs,
) -> anyhow::Result<AuditServiceClient<tonic::transport::Channel>> {
    Ok(AuditServiceClient::new(connect.channel().await?))
}

fn refused(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("the node refused: {}", s.message())
}

async fn verify_remote(connect: &FgConnectArgs) -> anyhow::Result<()> {
    let v = client(connect)
        .await?
        .verify(pb::VerifyRequest {})
        .await
        .map_err(refused)?
        .into_inner();
    report_verify(v, connect.node.as_deref().unwrap_or("node"))
}

fn filter(f: &AuditFilterArgs) -> pb::AuditFilter {
    pb::AuditFilter {
        pupil_pseudonym: f.pupil.clone().unwrap_or_default(),
        actor_oin: f.org.clone().unwrap_or_default(),
        case_id: f.case.clone().unwrap_or_default(),
        purpose: f.purpose.clone().unwrap_or_default(),
        decision: match f.decision.as_deref() {
            Some("allow") => pb::AuditDecision::Allow.into(),
            Some("deny") => pb::AuditDecision::Deny.into(),
            _ => 0,
        },
        from: f.from.clone().unwrap_or_default(),
        until: f.until.clone().unwrap_or_default(),
    }
}

async fn list(connect: &FgConnectArgs, f: &AuditFilterArgs) -> anyhow::Result<()> {
    let mut stream = client(connect)
        .await?
        .stream_entries(pb::StreamEntriesRequest {
            filter: Some(filter(f)),
        })
        .await
        .map_err(refused)?
        .into_inner();
    let mut entries = Vec::new();
    while let Some(e) = stream.message().await.map_err(refused)? {
        entries.extend(e.entry);
    }
    print!("{}", render_entries(&entries));
    Ok(())
}

async fn export(connect: &FgConnectArgs, f: &AuditFilterArgs, format: &str) -> anyhow::Result<()> {
    let format = match format {
        "csv" => pb::ExportFormat::Csv,
        "ldv" => pb::ExportFormat::Ldv,
        _ => pb::ExportFormat::JsonLines,
    };
    let mut stream = client(connect)
        .await?
        .export(pb::ExportRequest {
            filter: Some(filter(f)),
            format: format.into(),
        })
        .await
        .map_err(refused)?
        .into_inner();
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = stream.message().await.map_err(refused)? {
        out.write_all(&chunk.data)?;
    }
    Ok(())
}

async fn report(
    connect: &FgConnectArgs,
    pupil_id: Option<String>,
    pupil: Option<String>,
) -> anyhow::Result<()> {
    if pupil_id.is_none() && pupil.is_none() {
        bail!("give --pupil-id-stdin (the BSN or onderwijsnummer on stdin) or --pupil (pseudonym)");
    }
    let r = client(connect)
        .await?
        .access_report(pb::AccessReportRequest {
            pupil_id: pupil_id.unwrap_or_default(),
            pupil_pseudonym: pupil.unwrap_or_default(),
        })
        .await
        .map_err(refused)?
        .into_inner();
    println!("Access report for pupil {}", r.pupil_pseudonym);
    print!("{}", render_entries(&r.entries));
    if let Some(c) = &r.checkpoint {
        println!("{}", checkpoint_line(c));
    }
    Ok(())
}

async fn prove(connect: &FgConnectArgs, seq: u64) -> anyhow::Result<()> {
    let p = client(connect)
        .await?
        .prove(pb::ProveRequest { seq })
        .await
        .map_err(refused)?
        .into_inner();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let checkpoint = p.checkpoint.unwrap_or_default();
    let out = serde_json::json!({
        "seq": seq,
        "entry_bytes_base64": b64(&p.entry_bytes),
        "leaf_hash": b64(&p.leaf_hash),
        "path": p.path.iter().map(|h| b64(h)).collect::<Vec<_>>(),
        "tree_size": checkpoint.size,
        "root_hash": b64(&checkpoint.root_hash),
        "checkpoint_note": checkpoint.note,
        "cosignatures": checkpoint.cosignatures,
        "how_to_check": "leaf_hash = SHA-256(0x00 || base64-decoded entry_bytes_base64) (RFC 9162 section 2.1.1); RFC 9162 section 2.1.3.2: hash the path into the leaf hash at index seq of a tree of tree_size and compare with root_hash; check the note's signature with the log's verifier key (pactgate audit vkey) and the cosignatures with the witness keys you trust",
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Prints the log's (or the witness's) verifier key of the node with this data dir and
/// certificate.
fn vkey(data_dir: &Path, cert: &Path, witness: bool) -> anyhow::Result<()> {
    let pem = std::fs::read(cert).with_context(|| format!("cannot read {}", cert.display()))?;
    let org = crate::tls::organisation_of_pem(&pem)?;
    let keys = crate::node::audit_verifier_keys(data_dir, &org.oin)?;
    println!("{}", if witness { keys.witness } else { keys.log });
    Ok(())
}

async fn consistency(connect: &FgConnectArgs, old_size: u64, new_size: u64) -> anyhow::Result<()> {
    let p = client(connect)
        .await?
        .consistency_proof(pb::ConsistencyProofRequest { old_size, new_size })
        .await
        .map_err(refused)?
        .into_inner();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let checkpoint = p.checkpoint.unwrap_or_default();
    let out = serde_json::json!({
        "old_size": p.old_size,
        "new_size": p.new_size,
        "old_root_hash": b64(&p.old_root_hash),
        "new_root_hash": b64(&p.new_root_hash),
        "path": p.path.iter().map(|h| b64(h)).collect::<Vec<_>>(),
        "checkpoint_note": checkpoint.note,
        "cosignatures": checkpoint.cosignatures,
        "how_to_check": "RFC 9162 section 2.1.4.2: the path proves the tree of old_size entries with root old_root_hash is a prefix of the tree of new_size entries with root new_root_hash; compare old_root_hash with the checkpoint you hold",
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
