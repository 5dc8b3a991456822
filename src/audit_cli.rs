//! The `pactgate audit` subcommands for the FG: offline verification of a stopped node's data
//! dir, and over gRPC (with an FG certificate) listing, export, the access report for one pupil,
//! verification and inclusion proofs, as readable tables.

use crate::audit::{self, AuditLog, Checkpoint, SigningKey, TrustedCheckpoint};
use crate::cli::{AuditArgs, AuditCommand, AuditFilterArgs, FgConnectArgs};
use crate::pb;
use crate::pb::audit_client::AuditClient;
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
            pupil_id,
            pupil,
        } => report(&connect, pupil_id, pupil).await,
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

/// The node OIN an audit tree belongs to: from its newest checkpoint's origin, or its first entry.
fn node_oin_of(db: &sled::Db) -> anyhow::Result<String> {
    let checkpoints = db.open_tree("audit.checkpoints")?;
    if let Some(kv) = checkpoints.iter().next_back() {
        let note = String::from_utf8(kv?.1.to_vec())?;
        if let Some(oin) = note
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("pactgate/"))
        {
            return Ok(oin.to_owned());
        }
    }
    let entries = db.open_tree("audit")?;
    let mut first = b"e".to_vec();
    first.extend_from_slice(&0u64.to_be_bytes());
    let bytes = entries.get(first)?.context("the audit log is empty")?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)?;
    value["node_oin"]
        .as_str()
        .map(str::to_owned)
        .context("the first audit entry names no node")
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

/// Verifies a stopped node's audit log from its data dir, read-only: sled cannot open a store
/// read-only (and opening one may write to it), so this verifies a copy in a temporary dir. Also
/// fails on a log shorter than the node acknowledged (its integrity record). Exits 2 on
/// tampering.
pub fn verify_offline(data_dir: &Path, peer_checkpoints: &[PathBuf]) -> anyhow::Result<()> {
    let copy = tempfile::tempdir().context("cannot make a temporary dir for the copy")?;
    copy_dir(&data_dir.join("store"), &copy.path().join("store"))?;
    let db = sled::open(copy.path().join("store"))?;
    let oin = node_oin_of(&db)?;
    let key_file = data_dir.join(crate::node::AUDIT_KEY_FILE);
    let pkcs8 =
        std::fs::read(&key_file).with_context(|| format!("cannot read {}", key_file.display()))?;
    let log = AuditLog::open(&db, &oin, SigningKey::from_pkcs8(&pkcs8)?)?;
    let keys: Vec<String> = db
        .open_tree("audit.witness_keys")?
        .iter()
        .values()
        .filter_map(|v| v.ok().and_then(|v| String::from_utf8(v.to_vec()).ok()))
        .collect();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut trusted = log.cosigned_checkpoints(&key_refs)?;
    for path in peer_checkpoints {
        trusted.push(read_peer_checkpoint(path)?);
    }
    let mut response = crate::rpc::convert::verify_response(audit::verify(&log, &trusted));
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
    report_verify(response, log.origin())
}

/// Copies a directory tree (sled's files) file by file.
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("cannot copy {}", entry.path().display()))?;
        }
    }
    Ok(())
}

fn report_verify(v: pb::VerifyResponse, origin: &str) -> anyhow::Result<()> {
    if v.ok {
        println!(
            "{origin}: verified {} entries; root {}; {} checkpoint signatures and {} cosigned checkpoints checked",
            v.entries,
            base64::engine::general_purpose::STANDARD.encode(&v.root_hash),
            v.checkpoints_checked,
            v.cosignatures_checked
        );
        return Ok(());
    }
    eprintln!("{origin}: AUDIT LOG FAILED VERIFICATION: {}", v.problem);
    eprintln!("first bad sequence number: {}", v.first_bad_seq);
    std::process::exit(2);
}

async fn client(connect: &FgConnectArgs) -> anyhow::Result<AuditClient<tonic::transport::Channel>> {
    Ok(AuditClient::new(connect.channel().await?))
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

/// Entries as a readable table.
pub fn render_entries(entries: &[pb::AuditEntry]) -> String {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header([
        "seq",
        "time",
        "who",
        "action",
        "context",
        "purpose / basis",
        "pupils",
        "decision",
        "reason",
    ]);
    for e in entries {
        let context = [
            e.routine_flow.as_str(),
            e.meeting_type.as_str(),
            e.case_id.as_str(),
        ]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
        table.add_row(vec![
            e.seq.to_string(),
            e.time.clone(),
            if e.actor.is_empty() {
                e.actor_name.clone()
            } else {
                format!("{} ({})", e.actor_name, e.actor)
            },
            e.action()
                .as_str_name()
                .trim_start_matches("AUDIT_ACTION_")
                .to_owned(),
            context,
            format!("{} {}", e.purpose, e.legal_basis).trim().to_owned(),
            e.pupil_pseudonyms.len().to_string(),
            e.decision()
                .as_str_name()
                .trim_start_matches("AUDIT_DECISION_")
                .to_owned(),
            e.reason.chars().take(80).collect(),
        ]);
    }
    format!("{table}\n{} entries\n", entries.len())
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
        entries.push(e);
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

/// The newest checkpoint and who cosigned it, in a line.
pub fn checkpoint_line(c: &pb::SignedCheckpoint) -> String {
    format!(
        "checkpoint {} size {} root {}, cosigned by {}",
        c.origin,
        c.size,
        base64::engine::general_purpose::STANDARD.encode(&c.root_hash),
        if c.witnesses.is_empty() {
            "no peer yet".to_owned()
        } else {
            c.witnesses.join(", ")
        }
    )
}

async fn report(
    connect: &FgConnectArgs,
    pupil_id: Option<String>,
    pupil: Option<String>,
) -> anyhow::Result<()> {
    if pupil_id.is_none() && pupil.is_none() {
        bail!("give --pupil-id (BSN or onderwijsnummer) or --pupil (pseudonym)");
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
