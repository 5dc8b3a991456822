//! The oblivious pseudonymisation service and the node's client of it. The covenant's
//! pseudonymisation key is an RFC 9497 VOPRF key (ristretto255-SHA512) held only by this service,
//! run by a party the covenant names for it (never a node that holds pupil data). A node blinds
//! each pupil id, has the service evaluate a batch, checks the batch's proof against the public
//! key the covenant published, and unblinds: the service never sees an id or a pseudonym, the
//! node never holds the key. Every batch counts against the node's daily quota from the policy
//! and is recorded in the service's own audit log, which every party's FG may inspect.
//!
//! - [`keys`]: the service's key file, one seed per version (made and rotated by `keygen`).
//! - [`service`]: the gRPC service, its quotas and its audit log.
//! - [`client`]: the node side: blind, batch request, verify, unblind, derive the pseudonym.

pub mod client;
pub mod keys;
pub mod service;

pub use client::{PseudonymiseError, PseudonymiserClient, Refusal, ServiceConfig};
pub use keys::KeyRing;
pub use service::{serve, ServiceError, ServiceSetup};

/// The most blinded elements one Evaluate request may carry; a client splits larger batches.
pub const MAX_BATCH: usize = 10_000;
