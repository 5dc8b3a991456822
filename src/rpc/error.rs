//! The one place a [`ServiceError`] becomes a `tonic::Status`: each kind to its gRPC code, the
//! message kept as the service layer wrote it (for a person, no internals, no pupil ids).

use crate::service::ServiceError;
use tonic::{Code, Status};

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        let code = match &e {
            ServiceError::Unauthenticated(_) => Code::Unauthenticated,
            ServiceError::PermissionDenied { .. } => Code::PermissionDenied,
            ServiceError::InvalidArgument { .. } => Code::InvalidArgument,
            ServiceError::NotFound(_) => Code::NotFound,
            ServiceError::ResourceExhausted(_) => Code::ResourceExhausted,
            ServiceError::FailedPrecondition(_) => Code::FailedPrecondition,
            ServiceError::OutOfRange(_) => Code::OutOfRange,
            ServiceError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            ServiceError::Unavailable(_) => Code::Unavailable,
            ServiceError::Internal(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}
