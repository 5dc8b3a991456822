//! pactgate: the data exchange gateway of a regional Thuiszitterspact. Each partner runs a node;
//! its own systems push pupil signals to it, the node has them pseudonymised at the edge by an
//! oblivious pseudonymisation service (it holds no key itself) and keeps them durably, and nodes
//! speak gRPC to each other over mutual TLS.
//!
//! # Layout
//! - [`pb`]: the generated protobuf and gRPC types of `proto/pactgate/v1`.
//! - [`pseudonym`]: pupil ids (BSN, onderwijsnummer), the OPRF pseudonymisation key and pseudonyms.
//! - [`pseudonymiser`]: the oblivious pseudonymisation service (its key, quotas, audit log) and
//!   the node's client of it.
//! - [`signal`]: the stored signal and the checks a raw record must pass.
//! - [`store`]: the sled store, its indexes and durable batches.
//! - [`integrity`]: the record of what the node acknowledged, beside sled's files.
//! - [`backup`]: the backup format: a consistent copy of a node's data, and restoring it.
//! - [`identity`]: the organisation (OIN, name) a certificate names.
//! - [`ids`]: the domain's identifiers as types (OIN, CBS code, BRIN/school, pseudonym), each rule once.
//! - [`tls`]: rustls configs (TLS 1.3, client certificates required) and the TLS listener.
//! - [`limits`]: limits on everything a caller controls, for every listener.
//! - [`certs`]: development certificates (rcgen).
//! - [`config`]: the node's TOML configuration.
//! - [`policy`]: the covenant's Bijlage 3 as data: load, check, the FG's matrix, `evaluate`.
//! - [`clock`]: counting rules as data, the three-month clock, the G4 report, suppression.
//! - [`retention`]: purging closed signals after the retention period.
//! - [`audit`]: the append-only audit log: RFC 9162 Merkle tree, signed checkpoints, witness, verify, LDV.
//! - [`cases`]: cases of case meetings and their sled tree.
//! - [`exchange`]: which signals a permit lets a request see.
//! - [`peers`]: the configured peer nodes and their channels.
//! - [`rpc`]: gRPC handlers, proto/domain conversion, error-to-status mapping.
//! - [`node`]: a running node: all gRPC services and the C2SP witness (HTTP) on one mTLS listener.
//! - [`client`]: connecting to a node as a partner's system.
//! - [`import`]: reading CSV / JSON-lines signal files (fuzzable).
//! - [`cli`]: the `pactgate` subcommands: clap definitions and dispatch in `cli/mod.rs`, one file
//!   per command group (`audit`, `store`, `node`, ...), the leaf `cli::render`.
//! - [`text`]: tables, CSV and JSON of answers for people (the CLI and the demo).
//! - [`toml_check`]: the checked-TOML framework (file, line, column, fix) of the policy and the counting rules.
//! - [`trace`]: W3C traceparent ids carried across nodes for the audit.
//! - [`harness`]: starting real nodes and pseudonymisation services in-process, for the tests,
//!   benches and the demo.
//! - [`demo`]: `pactgate demo`, a federation on loopback with a synthetic population.
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
pub mod retention;
pub mod rpc;
pub mod signal;
pub mod store;
pub mod text;
pub mod tls;
pub mod toml_check;
pub mod trace;
