//! Start: who is using the console for which organisation, each peer node up or down
//! (`GET /v1/peers`), the node's newest checkpoint with the witnesses that cosigned it (checked
//! here, `GET /v1/audit/checkpoints/latest`) and, for the organisation, how many children are on
//! the clock (the due list's length, `POST /v1/due-list`). Shows; decides nothing.

use super::evidence::{check_witnesses, Check};
use super::pages::{render, Layout};
use super::person::Person;
use super::{Console, Mode};
use crate::rest::audit::CheckpointStatus;
use crate::rest::clock::{DueList, DueRequest};
use crate::rest::peers::PeerList;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use std::sync::Arc;

/// A peer as the Start page lists it.
pub struct PeerRow {
    pub name: String,
    pub address: String,
    pub up: bool,
    pub status: String,
}

/// The newest checkpoint as the Start page shows it.
pub struct CheckpointView {
    pub size: u64,
    pub root_hash: String,
    /// The log's signature, checked here.
    pub signed: Check,
    /// The peers (or witnesses) whose cosignature of it checks, by name.
    pub cosigners: Vec<String>,
    /// The newest time one of them cosigned.
    pub time: String,
}

#[derive(Template)]
#[template(path = "console/start.html")]
struct StartPage<'a> {
    layout: Layout,
    person: &'a str,
    organisation: &'a str,
    oin: &'a str,
    node: &'a str,
    mode: &'static str,
    peers: Result<Vec<PeerRow>, String>,
    checkpoint: Result<CheckpointView, String>,
    /// `None` on an FG's console (the FG sees no pupils).
    on_clock: Option<Result<usize, String>>,
}

/// The name of a witness: the peer whose OIN its name carries (`pactgate-witness/<OIN>`).
pub fn witness_label(witness: &str, peers: &PeerList) -> String {
    let oin = witness.rsplit('/').next().unwrap_or_default();
    peers
        .peers
        .iter()
        .find(|p| p.oin == oin)
        .map_or_else(|| witness.to_owned(), |p| p.name.clone())
}

fn checkpoint_view(status: &CheckpointStatus, peers: Option<&PeerList>) -> CheckpointView {
    let (signed, witnesses) = check_witnesses(status);
    let newest = status.checkpoint.size;
    let label = |w: &str| peers.map_or_else(|| w.to_owned(), |p| witness_label(w, p));
    let cosigners: Vec<_> = witnesses
        .iter()
        .filter(|w| w.size == newest && w.cosignature.ok)
        .collect();
    CheckpointView {
        size: newest,
        root_hash: status.checkpoint.root_hash.clone(),
        signed,
        time: cosigners
            .iter()
            .map(|w| w.time.clone())
            .max()
            .unwrap_or_default(),
        cosigners: cosigners.iter().map(|w| label(&w.witness)).collect(),
    }
}

/// `GET /`.
pub async fn page(
    State(console): State<Arc<Console>>,
    Extension(person): Extension<Person>,
) -> Response {
    let node = &console.node;
    let due = DueRequest {
        claim: None,
        at: None,
        timeout_ms: 0,
    };
    let (peers, checkpoint, due) = tokio::join!(
        node.get::<PeerList>("/v1/peers", &person.name),
        node.get::<CheckpointStatus>("/v1/audit/checkpoints/latest", &person.name),
        async {
            if console.fg {
                return None;
            }
            Some(
                node.post::<_, DueList>("/v1/due-list", &person.name, &due)
                    .await,
            )
        },
    );
    let mode = match console.mode {
        Mode::Workstation(_) => "op deze werkplek (alleen via dit apparaat bereikbaar)",
        Mode::Network => "via het netwerk, met uw persoonlijke certificaat",
    };
    let page = StartPage {
        layout: Layout::new(&console, "Start", "start", &person),
        person: &person.name,
        organisation: &console.own.name,
        oin: &console.own.oin,
        node: &console.node_addr,
        mode,
        checkpoint: checkpoint
            .map(|c| checkpoint_view(&c, peers.as_ref().ok()))
            .map_err(|e| e.to_string()),
        peers: peers
            .map(|list| {
                list.peers
                    .into_iter()
                    .map(|p| PeerRow {
                        name: p.name,
                        address: p.address,
                        up: p.up,
                        status: if p.up {
                            format!("antwoordde in {} ms", p.millis)
                        } else {
                            p.status
                        },
                    })
                    .collect()
            })
            .map_err(|e| e.to_string()),
        on_clock: due.map(|d| d.map(|list| list.lines.len()).map_err(|e| e.to_string())),
    };
    render(StatusCode::OK, &page)
}
