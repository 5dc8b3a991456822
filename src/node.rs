//! A running pactgate node: opens the store, loads keys and certificates, and serves every gRPC
//! service over mutual TLS on a listener it is given, until a shutdown future completes. Owns no
//! port of its own, so tests and the demo choose ports and decide when to stop.

use crate::identity::Organisation;
use crate::pb;
use crate::pseudonym::PseudonymKey;
use crate::rpc::intake::{IntakeService, MAX_MESSAGE_BYTES};
use crate::store::Store;
use crate::tls::TlsMaterial;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("gRPC reflection could not be set up: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Everything a node needs to start.
pub struct NodeSetup {
    pub tls: TlsMaterial,
    pub key: PseudonymKey,
    pub data_dir: PathBuf,
}

/// Serves the node on `listener` until `shutdown` completes.
pub async fn serve(
    setup: NodeSetup,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), NodeError> {
    let own: Organisation = setup.tls.organisation()?;
    let server_tls = setup.tls.server_config()?;
    let store = Store::open(&setup.data_dir)?;
    let key = Arc::new(setup.key);
    let addr = listener.local_addr().ok();
    tracing::info!(node.org = %own.name, node.oin = %own.oin, node.addr = ?addr, "node serving");

    let intake = pb::signal_intake_server::SignalIntakeServer::new(IntakeService::new(
        own.clone(),
        key,
        store.clone(),
    ))
    .max_decoding_message_size(MAX_MESSAGE_BYTES);

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::signal_intake_server::SignalIntakeServer<IntakeService>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let incoming = crate::tls::incoming(listener, server_tls);
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(intake)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    store.sync()?;
    tracing::info!(node.org = %own.name, "node stopped");
    Ok(())
}
