//! pactgate: the data exchange gateway of a regional Thuiszitterspact. Each partner runs a node;
//! its own systems push pupil signals to it, the node has them pseudonymised at the edge by an
//! oblivious pseudonymisation service (it holds no key itself) and keeps them durably, and nodes
//! speak gRPC to each other over mutual TLS.
//!
//! # Layout
//! Three layers (ARCHITECTURE.md; `tests/layers.rs` checks that none imports from above):
//! transports call the service layer, which calls the domain.
//!
//! Transports (the only code that speaks tonic, HTTP or the generated types):
//! - [`rpc`]: gRPC handlers (convert, call the service, convert back), proto/domain conversion,
//!   the one ServiceError-to-Status mapping, and the C2SP witness (HTTP) endpoint.
//! - [`rest`]: the partner-facing HTTP/JSON API under `/v1` (OpenAPI 3, problem details) on the
//!   same listener: convert, call the service, convert back; the one ServiceError-to-problem map.
//! - [`node`]: a running node's wiring: the listener, routes, health, reflection, SIGHUP reload,
//!   background tasks and shutdown.
//! - [`cli`]: the `pactgate` subcommands: clap definitions and dispatch in `cli/mod.rs`, one file
//!   per command group (`audit`, `store`, `node`, ...), the leaf `cli::render`.
//! - [`demo`]: `pactgate demo`, a federation on loopback with a synthetic population.
//! - [`harness`]: starting real nodes and pseudonymisation services in-process, for the tests,
//!   benches and the demo.
//! - [`console`]: `pactgate console`, the Dutch web console: a client of the node's REST API.
//!
//! Service:
//! - [`service`]: every domain operation once, for every transport: the authenticated
//!   `Caller`, one `ServiceError`, the shared `NodeContext`, push, list, queries (own, peer's,
//!   federated), cases, due list, G4 report, counts, FG access, backup, the checkpoint task.
//!
//! Domain (knows no transport):
//! - [`policy`]: the covenant's Bijlage 3 as data: load, check, the FG's matrix, `evaluate` (the
//!   only maker of a `Permit`).
//! - [`exchange`]: which signals a permit lets a request see.
//! - [`signal`]: the stored signal and the checks a raw record must pass.
//! - [`pseudonym`]: pupil ids (BSN, onderwijsnummer), the OPRF pseudonymisation key and pseudonyms.
//! - [`store`]: the sled store, its indexes and durable batches.
//! - [`integrity`]: the record of what the node acknowledged, beside sled's files.
//! - [`backup`]: the backup format: a consistent copy of a node's data, and restoring it.
//! - [`audit`]: the append-only audit log: RFC 9162 Merkle tree, signed checkpoints, witness,
//!   witness key pinning, verify, LDV.
//! - [`cases`]: cases of case meetings and their sled tree.
//! - [`clock`]: counting rules as data, the three-month clock, the G4 report, suppression.
//! - [`retention`]: purging closed signals after the retention period.
//! - [`config`]: the node's TOML configuration.
//! - [`certs`]: development certificates (rcgen).
//!
//! Edges of the domain that speak gRPC/TLS themselves (never a transport's code):
//! - [`pb`]: the generated protobuf and gRPC types of `proto/pactgate/v1`.
//! - [`client`]: connecting to a node as a partner's system; [`peers`]: the configured peer
//!   nodes and their channels; [`witness_client`]: submitting checkpoints to witnesses.
//! - [`pseudonymiser`]: the oblivious pseudonymisation service (its key, quotas, audit log, its
//!   own gRPC server) and the node's client of it.
//! - [`identity`]: the organisation (OIN, name) a certificate names.
//! - [`ids`]: the domain's identifiers as types (OIN, CBS code, BRIN/school, pseudonym), each rule once.
//! - [`tls`]: rustls configs (TLS 1.3, client certificates required) and the TLS listener.
//! - [`limits`]: limits on everything a caller controls, for every listener.
//! - [`trace`]: W3C traceparent ids carried across nodes for the audit.
//! - [`import`]: reading CSV / JSON-lines signal files (fuzzable).
//! - [`text`]: tables, CSV and JSON of answers for people (the CLI and the demo).
//! - [`toml_check`]: the checked-TOML framework (file, line, column, fix) of the policy and the
//!   counting rules.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod audit;
pub mod backup;
pub mod cases;
pub mod certs;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod console;
pub mod demo;
pub mod exchange;
pub mod harness;
pub mod identity;
pub mod ids;
pub mod import;
pub mod integrity;
pub mod limits;
pub mod node;
pub mod pb;
pub mod peers;
pub mod policy;
pub mod pseudonym;
pub mod pseudonymiser;
pub mod rest;
pub mod retention;
pub mod rpc;
pub mod service;
pub mod signal;
pub mod store;
pub mod text;
pub mod tls;
pub mod toml_check;
pub mod trace;
pub mod witness_client;
