//! `pactgate.v1.BackupService` over gRPC: streams the consistent copy the service layer writes
//! ([`Service::backup_access`], [`Service::write_backup`]: own organisation or its FG only,
//! audited, one at a time) in chunks; a caller that stops reading loses the stream.

use crate::pb;
use crate::service::Service;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// The size of the chunks a backup is sent in.
const CHUNK: usize = 256 * 1024;
/// How long a caller may leave a chunk unread before the backup is abandoned.
const STALL: std::time::Duration = std::time::Duration::from_secs(60);

pub struct BackupHandler {
    service: Service,
}

impl BackupHandler {
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

/// Sends what is written to it as chunks of a gRPC stream (from a blocking thread).
struct ChunkWriter {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Result<pb::BackupResponse, Status>>,
}

impl ChunkWriter {
    /// Sends the buffered chunk; a caller that leaves it unread for [`STALL`] loses the stream.
    fn send(&mut self) -> std::io::Result<()> {
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let sent = tokio::runtime::Handle::current().block_on(tokio::time::timeout(
            STALL,
            self.tx.send(Ok(pb::BackupResponse { data })),
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
impl pb::backup_service_server::BackupService for BackupHandler {
    type BackupStream = ReceiverStream<Result<pb::BackupResponse, Status>>;

    async fn backup(
        &self,
        request: Request<pb::BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        let caller = super::service_caller(&request)?;
        let grant = self.service.backup_access(&caller).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let service = self.service.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = ChunkWriter {
                buf: Vec::with_capacity(CHUNK),
                tx: tx.clone(),
            };
            match service.write_backup(grant, &mut out) {
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
