//! `pactgate.v1.Backup`: a consistent copy of the node's data, streamed, for the node's own
//! organisation or its FG only; every call is audited. Copies bytes; never decodes a signal.
//! Invariant: writes wait only while the copy is taken to a private temporary file, never while a
//! caller reads (or stops reading) the stream; one backup runs at a time.

use crate::audit::NewEntry;
use crate::audit::{Action, Decision as AuditDecision};
use crate::pb;
use crate::service::NodeContext;
use crate::trace::TraceContext;
use std::sync::Arc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// The size of the chunks a backup is sent in.
const CHUNK: usize = 256 * 1024;
/// How long a caller may leave a chunk unread before the backup is abandoned.
const STALL: std::time::Duration = std::time::Duration::from_secs(60);

pub struct BackupService {
    node: Arc<NodeContext>,
    /// One backup at a time: a second is refused, not queued on a blocking thread.
    running: Arc<tokio::sync::Semaphore>,
}

impl BackupService {
    pub fn new(node: Arc<NodeContext>) -> Self {
        Self {
            node,
            running: Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }
}

/// Sends what is written to it as chunks of a gRPC stream (from a blocking thread).
struct ChunkWriter {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Result<pb::BackupChunk, Status>>,
}

impl ChunkWriter {
    /// Sends the buffered chunk; a caller that leaves it unread for [`STALL`] loses the stream.
    fn send(&mut self) -> std::io::Result<()> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let sent = tokio::runtime::Handle::current().block_on(tokio::time::timeout(
            STALL,
            self.tx.send(Ok(pb::BackupChunk { data })),
        ));
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "client went away",
            )),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client stopped reading",
            )),
        }
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
        let mut e = NewEntry::new(
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
        let place = self.running.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted("a backup of this node is already running; try again later")
        })?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let node = self.node.clone();
        tokio::task::spawn_blocking(move || {
            let _place = place;
            let mut out = ChunkWriter {
                buf: Vec::with_capacity(CHUNK),
                tx: tx.clone(),
            };
            match copy_then_send(&node, &mut out) {
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

/// Takes the consistent copy into a private temporary file in the data dir (writes wait only for
/// that), then streams the file to `out` with writes running again.
fn copy_then_send(
    node: &NodeContext,
    out: &mut ChunkWriter,
) -> Result<crate::backup::Summary, crate::backup::BackupError> {
    use std::io::{Seek as _, Write as _};
    let mut copy = tempfile::tempfile_in(&node.data_dir)?;
    let summary = crate::backup::write(&node.store, &node.data_dir, &mut copy)?;
    copy.flush()?;
    copy.rewind()?;
    std::io::copy(&mut copy, out)?;
    out.flush()?;
    Ok(summary)
}
