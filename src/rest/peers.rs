//! `/v1/peers`: whether each configured peer node is up, as the node sees it now: its gRPC health
//! service answers SERVING within a short timeout (`Peer::health`). For the node's own
//! organisation and its FG. Asks the peers nothing else and sends them nothing about anyone.

use super::problem::{Json, Problem};
use super::{Authenticated, RestState};
use crate::peers::Peer;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;

/// How long the node waits for a peer's health answer.
pub const HEALTH_TIMEOUT: Duration = Duration::from_millis(1500);

/// De andere knooppunten van het convenant, zoals dit knooppunt ze nu ziet.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerList {
    pub peers: Vec<PeerStatus>,
}

/// Eén ander knooppunt.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerStatus {
    /// De korte naam uit de configuratie.
    pub name: String,
    pub oin: String,
    /// host:poort.
    pub address: String,
    /// De gezondheidsdienst van het knooppunt antwoordde SERVING.
    pub up: bool,
    /// Wat het knooppunt antwoordde, of waarom er geen antwoord kwam.
    pub status: String,
    /// Hoe lang het antwoord duurde, in milliseconden.
    pub millis: u64,
}

/// One peer's health, within [`HEALTH_TIMEOUT`], as the API shows it.
async fn health(peer: &Peer) -> PeerStatus {
    let health = peer.health(HEALTH_TIMEOUT).await;
    PeerStatus {
        name: peer.config.name.clone(),
        oin: peer.config.oin.clone(),
        address: peer.config.address.clone(),
        up: health.up,
        status: health.status,
        millis: u64::try_from(health.elapsed.as_millis()).unwrap_or(u64::MAX),
    }
}

/// De andere knooppunten: bereikbaar of niet.
///
/// Vraagt de gezondheidsdienst van elk geconfigureerd knooppunt, tegelijk en elk binnen 1,5 s.
/// Alleen voor de eigen organisatie van het knooppunt en haar FG.
#[utoipa::path(
    get,
    path = "/peers",
    operation_id = "listPeers",
    tag = "knooppunt",
    responses(
        (status = 200, description = "Elk ander knooppunt.", body = PeerList),
        (status = 403, description = "Niet de eigen organisatie en niet haar FG.",
         body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<Arc<RestState>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<PeerList>, Problem> {
    state.service.status_access(&caller, "peers").await?;
    let peers = &state.service.node().peers;
    let peers = futures::future::join_all(peers.iter().map(health)).await;
    Ok(Json(PeerList { peers }))
}
