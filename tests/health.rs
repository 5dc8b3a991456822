//! gRPC health: a running node reports SERVING for every one of its services (and for the node
//! as a whole), and NOT_FOUND for a service it does not serve (the control).

mod common;

use common::*;
use pactgate::pb;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

#[tokio::test(flavor = "multi_thread")]
async fn every_service_reports_serving() {
    let node = TestNode::start("swv-vo").await;
    let channel = channel_with(node.addr(), &material("swv-vo"))
        .await
        .expect("connect");
    let mut health = HealthClient::new(channel);
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    for service in [
        "",
        pb::signal_intake_service_server::SERVICE_NAME,
        pb::exchange_service_server::SERVICE_NAME,
        pb::federation_service_server::SERVICE_NAME,
        pb::cases_service_server::SERVICE_NAME,
        pb::audit_service_server::SERVICE_NAME,
        pb::witness_service_server::SERVICE_NAME,
        pb::clock_service_server::SERVICE_NAME,
        pb::counts_service_server::SERVICE_NAME,
        pb::backup_service_server::SERVICE_NAME,
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|s| panic!("health of {service:?}: {s:?}"))
            .into_inner()
            .status;
        assert_eq!(status, serving, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "pactgate.v1.NoSuchService".into(),
        })
        .await
        .expect_err("a service the node does not serve");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}
