//! `pactgate.v1.SignalIntakeService` over gRPC: a partner's own systems push signals to, and
//! list signals from, their own node. Thin: converts the stream's records and hands them to a
//! [`crate::service::PushSession`] (which checks, pseudonymises, stores and audits in durable
//! batches); the stream's idle timeout is this transport's own.

use super::convert;
use crate::pb;
use crate::pb::signal_intake_service_server::SignalIntakeService;
use crate::service::{PushReport, Service, ServiceError};
use crate::store::SignalFilter;
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

pub use crate::service::intake::{MAX_RECORDS_PER_PUSH, MAX_REPORTED_REJECTS};
/// The largest encoded PushRequest (one SignalRecord) accepted.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

pub struct IntakeHandler {
    service: Service,
}

impl IntakeHandler {
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

/// A list request as the service layer takes it; unknown enum values are INVALID_ARGUMENT.
fn filter_from(req: pb::ListRequest) -> Result<SignalFilter, ServiceError> {
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    let category = match req.category {
        0 => None,
        v => Some(
            convert::category_from_pb(v)
                .map_err(|r| ServiceError::invalid("category", format!("category {r}")))?,
        ),
    };
    let status = match req.status {
        0 => None,
        v => Some(
            convert::status_from_pb(v)
                .map_err(|r| ServiceError::invalid("status", format!("status {r}")))?,
        ),
    };
    Ok(SignalFilter {
        residence_municipality: non_empty(req.residence_municipality)
            .map(|m| crate::signal::check_municipality(&m))
            .transpose()?,
        school: match non_empty(req.school) {
            Some(c) => crate::signal::check_school(&c, crate::signal::Category::Lrv)?,
            None => None,
        },
        pupil_pseudonym: Some(req.pupil_pseudonym),
        category,
        status,
        limit: (req.limit > 0).then_some(req.limit as usize),
    })
}

fn report(r: PushReport) -> pb::PushResponse {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    pb::PushResponse {
        accepted: count(r.accepted),
        rejected: r
            .rejected
            .into_iter()
            .map(|j| pb::RejectedRecord {
                index: count(j.index),
                field: j.field,
                reason: j.reason,
            })
            .collect(),
        rejected_count: count(r.rejected_count),
    }
}

type ViewStream = Pin<Box<dyn Stream<Item = Result<pb::ListResponse, Status>> + Send>>;

#[tonic::async_trait]
impl SignalIntakeService for IntakeHandler {
    async fn push(
        &self,
        request: Request<Streaming<pb::PushRequest>>,
    ) -> Result<Response<pb::PushResponse>, Status> {
        let caller = super::service_caller(&request)?;
        let mut push = self.service.start_push(caller)?;
        let idle = self.service.node().gate.limits().push_idle();
        let mut stream = request.into_inner();
        // A broken or idle stream returns its error here; the batches committed before it stay
        // stored.
        while let Some(message) = tokio::time::timeout(idle, stream.message())
            .await
            .map_err(|_| {
                Status::deadline_exceeded(format!(
                    "no record for {} s: the push is closed; the {} records stored before stay",
                    idle.as_secs(),
                    push.stored()
                ))
            })??
        {
            // A message without a record is checked as a record with every field empty, so it is
            // refused by index and field like any other.
            let record = message.record.unwrap_or_default();
            push.add(convert::raw_signal(record)).await?;
        }
        Ok(Response::new(report(push.finish().await?)))
    }

    type ListStream = ViewStream;

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<Self::ListStream>, Status> {
        let caller = super::service_caller(&request)?;
        self.service.node().check_own(&caller.org)?;
        let filter = filter_from(request.into_inner())?;
        let signals = self.service.list(&caller, filter).await?;
        let views: Vec<_> = signals
            .iter()
            .map(|s| {
                Ok(pb::ListResponse {
                    signal: Some(convert::signal_view(s)),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(views))))
    }
}
