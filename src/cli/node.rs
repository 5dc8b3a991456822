//! `pactgate serve` and `pactgate purge`: the commands that run a node or change its data dir
//! directly (the node must be stopped for a purge).

use super::{PurgeArgs, ServeArgs};
use crate::config::NodeConfig;
use crate::tls::TlsMaterial;
use anyhow::Context as _;

pub(super) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => NodeConfig::load(path)?,
        None => NodeConfig::default(),
    };
    let config = file.overridden_by(NodeConfig {
        listen: args.listen,
        data_dir: args.data_dir,
        cert: args.cert,
        key: args.key,
        ca: args.ca,
        crl: args.crl,
        pseudonymiser: args.pseudonymiser.pseudonymiser,
        pseudonymiser_oin: args.pseudonymiser.pseudonymiser_oin,
        pseudonymiser_public_keys: args.pseudonymiser.pseudonymiser_public_keys,
        policy: args.policy,
        counting: args.counting,
        peers: Vec::new(),
        limits: Default::default(),
        witnesses: Vec::new(),
        witnessed_logs: Vec::new(),
    });
    let listen = NodeConfig::require(&config.listen, "listen address", "listen")?;
    let data_dir = NodeConfig::require(&config.data_dir, "data directory", "data-dir")?;
    let tls = TlsMaterial::load_for_node(
        NodeConfig::require(&config.cert, "certificate", "cert")?,
        NodeConfig::require(&config.key, "private key", "key")?,
        NodeConfig::require(&config.ca, "CA certificate", "ca")?,
    )?;
    let pseudonymiser = config.pseudonymiser()?;
    let checked = data_dir.clone();
    tokio::task::spawn_blocking(move || super::store::check_before_serving(&checked)).await??;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let (ready, is_ready) = tokio::sync::oneshot::channel();
    if config.policy.is_none() {
        tracing::warn!("no --policy given: this node will deny every exchange (intake only)");
    }
    let setup = crate::node::NodeSetup {
        tls,
        pseudonymiser,
        data_dir: data_dir.clone(),
        policy: config.policy.clone(),
        peers: config.peers.clone(),
        counting: config.counting.clone(),
        crl: config.crl.clone(),
        checkpoint_interval: crate::rpc::audit::CHECKPOINT_INTERVAL,
        witnesses: config.witnesses.clone(),
        witnessed_logs: config.witnessed_logs.clone(),
        ready: Some(ready),
        limits: crate::limits::Limits {
            shutdown_grace_secs: args
                .shutdown_grace_secs
                .unwrap_or(config.limits.shutdown_grace_secs),
            ..config.limits.clone()
        },
    };
    let node = tokio::spawn(crate::node::serve(setup, listener, shutdown_signal()));
    // The bound address on stdout once the node is fully set up, so a supervisor (or a test)
    // that asked for port 0 learns it, and never for a node that refused to start.
    if is_ready.await.is_ok() {
        println!("listening on {addr}");
    }
    node.await??;
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
pub(super) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

pub(super) fn purge(args: PurgeArgs) -> anyhow::Result<()> {
    let rules =
        crate::clock::CountingRules::load(&args.counting).map_err(|e| anyhow::anyhow!("{e}"))?;
    let cert = std::fs::read(&args.cert)
        .with_context(|| format!("cannot read {}", args.cert.display()))?;
    let own = crate::tls::organisation_of_pem(&cert)?;
    let store = crate::store::Store::open(&args.data_dir)?;
    let key =
        crate::audit::SigningKey::load_or_create(&args.data_dir.join(crate::node::AUDIT_KEY_FILE))?;
    let audit = crate::audit::AuditLog::open(store.db(), &own.oin, key)?;
    let purged = crate::retention::purge(
        &store,
        &audit,
        &own,
        &rules,
        chrono::Utc::now().date_naive(),
    )?;
    println!(
        "purged {} signals closed more than {} days ago",
        purged,
        rules.retention_days()
    );
    Ok(())
}

/// `pactgate console`: serves the web console until Ctrl-C or SIGTERM.
pub(super) async fn console(args: super::ConsoleArgs) -> anyhow::Result<()> {
    let config = crate::console::ConsoleConfig::load(&args.config)?;
    let listen = args.listen.unwrap_or_else(|| config.listen.clone());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let scheme = if config.tls { "https" } else { "http" };
    println!("console: {scheme}://{}/", listener.local_addr()?);
    crate::console::serve(config.setup()?, listener, shutdown_signal()).await?;
    Ok(())
}
