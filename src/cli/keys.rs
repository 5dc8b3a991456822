//! `pactgate pseudonym`, `keygen` and `pseudonymiser`: pseudonyms through the service, key
//! generation and running the pseudonymisation service.

use super::{KeygenArgs, PseudonymArgs, PseudonymiserArgs};
use crate::config::NodeConfig;
use crate::pseudonym::PupilId;
use crate::pseudonymiser::{KeyRing, PseudonymiserClient};
use crate::tls::TlsMaterial;
use anyhow::{bail, Context as _};

pub(super) async fn pseudonym(args: PseudonymArgs) -> anyhow::Result<()> {
    if !args.refused_ids.is_empty() {
        bail!(
            "{} argument(s) refused unread: give pupil ids on stdin, one per line (an argument stays \
             in the process list and the shell history)",
            args.refused_ids.len()
        );
    }
    let file = match &args.config {
        Some(path) => NodeConfig::load(path)?,
        None => NodeConfig::default(),
    };
    let config = file.overridden_by(NodeConfig {
        cert: args.cert,
        key: args.key,
        ca: args.ca,
        pseudonymiser: args.pseudonymiser.pseudonymiser,
        pseudonymiser_oin: args.pseudonymiser.pseudonymiser_oin,
        pseudonymiser_public_keys: args.pseudonymiser.pseudonymiser_public_keys,
        ..NodeConfig::default()
    });
    let tls = TlsMaterial::load(
        NodeConfig::require(&config.cert, "certificate", "cert")?,
        NodeConfig::require(&config.key, "private key", "key")?,
        NodeConfig::require(&config.ca, "CA certificate", "ca")?,
    )?;
    let client = PseudonymiserClient::connect_lazy(&config.pseudonymiser()?, &tls)?;
    let lines: Vec<String> = std::io::stdin().lines().collect::<Result<_, _>>()?;
    let parsed: Vec<(usize, Result<PupilId, _>)> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i, PupilId::parse(l)))
        .collect();
    let trace = crate::trace::TraceContext::from_metadata(&tonic::metadata::MetadataMap::new());
    let valid = parsed.iter().filter_map(|(_, p)| p.as_ref().ok());
    let mut pseudonyms = client
        .pseudonymise_batch(valid, &trace)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .into_iter();
    let mut failed = 0;
    for (i, pupil) in &parsed {
        match pupil {
            Ok(_) => println!("{}", pseudonyms.next().unwrap_or_default()),
            Err(e) => {
                failed += 1;
                println!();
                eprintln!("line {}: pupil id {e}", i + 1);
            }
        }
    }
    if failed > 0 {
        bail!("{failed} ids could not be pseudonymised");
    }
    Ok(())
}

pub(super) fn keygen(args: KeygenArgs) -> anyhow::Result<()> {
    let (ring, path, done) = match (&args.out, &args.rotate) {
        (_, Some(path)) => (KeyRing::rotate(path)?, path, "added a new key version to"),
        (Some(path), None) => (KeyRing::generate(path)?, path, "wrote a new key file"),
        (None, None) => bail!("give --out FILE for a new key file or --rotate FILE"),
    };
    eprintln!(
        "{done} {} (mode 0600; only the pseudonymisation service may hold it). Publish these \
         public keys in every node's pseudonymiser_public_keys; new pseudonyms use v{}:",
        path.display(),
        ring.current().version()
    );
    for key in ring.public_keys() {
        println!("{key}");
    }
    Ok(())
}

pub(super) async fn pseudonymiser(args: PseudonymiserArgs) -> anyhow::Result<()> {
    let tls = TlsMaterial::load(&args.cert, &args.key, &args.ca)?;
    let keys = KeyRing::load(&args.pseudonym_key)?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let (ready, is_ready) = tokio::sync::oneshot::channel();
    let setup = crate::pseudonymiser::ServiceSetup {
        tls,
        keys,
        policy: args.policy,
        data_dir: args.data_dir,
        ready: Some(ready),
    };
    let service = tokio::spawn(crate::pseudonymiser::serve(
        setup,
        listener,
        super::node::shutdown_signal(),
    ));
    if is_ready.await.is_ok() {
        println!("listening on {addr}");
    }
    service.await??;
    Ok(())
}
