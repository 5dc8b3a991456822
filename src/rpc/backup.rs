//! `pactgate.v1.Backup`: a consistent copy of the node's data, streamed, for the node's own
//! organisation or its FG only; every call is audited. Copies bytes; never decodes a signal.

use crate::audit::{Action, Decision as AuditDecision};
use crate::node::{entry, NodeContext};
use crate::pb;
use crate::trace::TraceContext;
use std::sync::Arc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// The size of the chunks a backup is sent in.
const CHUNK: usize = 256 * 1024;

pub struct BackupService {
    node: Arc<NodeContext>,
}

impl BackupService {
    pub fn new(node: Arc<NodeContext>) -> Self {
        Self { node }
    }
}

/// Sends what is written to it as chunks of a gRPC stream (from a blocking thread).
struct ChunkWriter {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Result<pb::BackupChunk, Status>>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(pb::BackupChunk { data }))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.send()
    }
}

#[tonic::async_trait]
impl pb::backup_server::Backup for BackupService {
    type BackupStream = ReceiverStream<Result<pb::BackupChunk, Status>>;

    async fn backup(
        &self,
        request: Request<pb::BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        let caller = super::caller(&request)?;
        let trace = TraceContext::from_metadata(request.metadata());
        let own = caller.oin == self.node.own.oin;
        let fg = self
            .node
            .policy
            .current()
            .is_some_and(|p| p.is_fg_of(&caller.oin, &self.node.own.oin));
        let mut e = entry(
            &trace,
            &caller,
            "",
            Action::Backup,
            &self.node.policy_version(),
        );
        e.reason = "backup of the node's data".into();
        if !own && !fg {
            e.decision = AuditDecision::Deny;
            e.reason = "backup refused: neither the node's organisation nor its FG".into();
        }
        self.node.record_async(e).await?;
        if !own && !fg {
            tracing::warn!(peer.oin = %caller.oin, "backup refused");
            return Err(Status::permission_denied(format!(
                "a backup of {} is only for that organisation or its FG; {caller} is neither",
                self.node.own
            )));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let node = self.node.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = ChunkWriter {
                buf: Vec::with_capacity(CHUNK),
                tx: tx.clone(),
            };
            match crate::backup::write(&node.store, &node.data_dir, &mut out) {
                Ok(summary) => tracing::info!(
                    backup.trees = summary.trees,
                    backup.pairs = summary.pairs,
                    "backup sent"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "backup failed");
                    let _ = tx.blocking_send(Err(Status::internal(
                        "the backup failed; the copy sent so far is incomplete",
                    )));
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
