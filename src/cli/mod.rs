//! The `pactgate` subcommands: their arguments (clap) and the dispatch to one module per command
//! group. Partner commands talk to nodes only through gRPC; `serve`, `purge`, `store`, `backup`
//! and `restore` and offline `audit verify` work on a data dir. Tables and text come from the
//! leaf [`render`] and the shared [`crate::text`]. Returns errors and never exits the process:
//! a [`Failed`] error carries the exit code `main` gives. Uses anyhow, as a binary's edge may.

pub mod audit;
mod clock;
mod exchange;
mod keys;
mod node;
mod policy;
pub mod render;
pub mod store;

pub use crate::text::OutputFormat;

use crate::client;
use crate::pb;
use crate::pb::signal_intake_service_client::SignalIntakeServiceClient;
use crate::tls::TlsMaterial;
use anyhow::bail;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "pactgate",
    version,
    about = "Privacy-preserving data exchange gateway for a Thuiszitterspact"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node: serve gRPC over mutual TLS until Ctrl-C or SIGTERM.
    Serve(ServeArgs),
    /// Push a CSV or JSON-lines file of signals to your own node.
    Push(PushArgs),
    /// List the signals your own node holds (pupils by pseudonym only).
    List(ListArgs),
    /// Compute the pseudonyms of pupil ids you already hold (one id per line on stdin, never as
    /// arguments, which the process list and shell history would keep) through the
    /// pseudonymisation service, under your organisation's daily quota. Prints one pseudonym per
    /// line, in order.
    Pseudonym(PseudonymArgs),
    /// Run the pseudonymisation service (a party of its own, never a data-holding node).
    Pseudonymiser(PseudonymiserArgs),
    /// Make the pseudonymisation service's key file (mode 0600), or add a new key version to it;
    /// prints the public keys to publish in every node's configuration.
    Keygen(KeygenArgs),
    /// Development certificates.
    Certs(CertsArgs),
    /// The covenant policy: check a policy file and print its reviewable matrix.
    Policy(PolicyArgs),
    /// Ask every peer through your own node, under a routine flow or a case.
    Query(QueryArgs),
    /// Open, accept, decline, close and list cases of case meetings at your own node.
    Case(CaseArgs),
    /// The children passing 8, 10 and 12 weeks and three months without an offer.
    Due(DueArgs),
    /// The G4 result schema at reference dates under a counting rule (table, CSV, JSON, SVG).
    Report(ReportArgs),
    /// Purge signals closed longer than the retention period (node stopped; offline).
    Purge(PurgeArgs),
    /// The audit log: verify it, list, export, the access report for one pupil, proofs.
    Audit(AuditArgs),
    /// The store of a stopped node: check it holds what the node acknowledged.
    Store(store::StoreArgs),
    /// A consistent copy of a running node's data, through the node (its own organisation or
    /// its FG).
    Backup(store::BackupArgs),
    /// Put a backup into an empty data dir.
    Restore(store::RestoreArgs),
    /// Start a federation of nodes on loopback, push a synthetic population, show what each holds.
    Demo(crate::demo::DemoArgs),
    /// Print the REST API's OpenAPI document (as committed in docs/openapi.json).
    Openapi,
    /// The Dutch web console for the people of the pact, a client of your node's REST API:
    /// loopback with the person named in its config, or TLS with personal certificates.
    Console(ConsoleArgs),
}

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// The console's TOML config (listen, node, cert, key, ca, person or tls, [limits]).
    #[arg(long)]
    pub config: PathBuf,
    /// Address to listen on; overrides the config's `listen`.
    #[arg(long)]
    pub listen: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file; flags override its settings.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on, e.g. 0.0.0.0:7443.
    #[arg(long)]
    pub listen: Option<String>,
    /// Data directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The node's certificate (PEM).
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// The node's private key (PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The covenant CA certificate (PEM).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// The covenant CA's certificate revocation list (PEM); re-read on SIGHUP.
    #[arg(long)]
    pub crl: Option<PathBuf>,
    #[command(flatten)]
    pub pseudonymiser: PseudonymiserFlags,
    /// The covenant policy file (TOML).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// The counting rules file (TOML).
    #[arg(long)]
    pub counting: Option<PathBuf>,
    /// After SIGTERM or Ctrl-C, how long requests in flight may take before the node closes the
    /// rest and exits (seconds; default 10, config `[limits] shutdown_grace_secs`).
    #[arg(long)]
    pub shutdown_grace_secs: Option<u64>,
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file; print its version and the matrix meeting x role -> legal bases,
    /// purposes, data categories. Exits non-zero with file:line errors if it is invalid.
    Check {
        /// The policy file, e.g. policies/groningen.toml.
        file: PathBuf,
        /// `text` (the Dutch matrix an FG reads) or `json` (the same matrix for tools).
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
}

/// The claim a query makes: role, legal basis, purpose, and a routine flow or a case.
#[derive(Debug, Args)]
pub struct ClaimArgs {
    /// The role you act in, e.g. leerplichtambtenaar.
    #[arg(long)]
    pub role: String,
    /// The legal basis (policy id) you act under.
    #[arg(long)]
    pub basis: String,
    /// The purpose (policy id).
    #[arg(long)]
    pub purpose: String,
    /// The routine flow (policy id), e.g. verzuimmelding.
    #[arg(long, conflicts_with_all = ["meeting", "case"])]
    pub flow: Option<String>,
    /// The case meeting type (policy id), with --case.
    #[arg(long, requires = "case")]
    pub meeting: Option<String>,
    /// The case id, with --meeting.
    #[arg(long, requires = "meeting")]
    pub case: Option<String>,
    /// Who is acting (a name or employee number of your own organisation), for the audit log.
    #[arg(long, default_value = "")]
    pub actor: String,
}

impl ClaimArgs {
    pub fn to_pb(&self) -> anyhow::Result<pb::AccessClaim> {
        let context = match (&self.flow, &self.meeting, &self.case) {
            (Some(flow), _, _) => pb::access_claim::Context::RoutineFlow(flow.clone()),
            (None, Some(meeting), Some(case)) => pb::access_claim::Context::CaseRef(pb::CaseRef {
                meeting_type: meeting.clone(),
                case_id: case.clone(),
            }),
            _ => bail!("name a routine flow (--flow) or a case (--meeting and --case)"),
        };
        Ok(pb::AccessClaim {
            role: self.role.clone(),
            legal_basis: self.basis.clone(),
            purpose: self.purpose.clone(),
            actor: self.actor.clone(),
            context: Some(context),
        })
    }
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    pub claim: ClaimArgs,
    /// Only pupils living in this municipality (CBS code).
    #[arg(long)]
    pub municipality: Option<String>,
    /// Only this school (BRIN + vestiging).
    #[arg(long)]
    pub school: Option<String>,
    /// Only these categories (repeatable), e.g. --category LRV --category AV.
    #[arg(long)]
    pub category: Vec<String>,
    /// Only this status.
    #[arg(long)]
    pub status: Option<String>,
    /// Only OPEN signals absent longer than this many days.
    #[arg(long, default_value_t = 0)]
    pub open_longer_than: u32,
    /// How long to wait for each peer (ms).
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u32,
    /// Output as JSON lines.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Output as CSV.
    #[arg(long)]
    pub csv: bool,
}

/// An optional claim, for commands that may ask the peers too.
#[derive(Debug, Args)]
pub struct OptionalClaimArgs {
    /// The role you act in; with --basis, --purpose and --flow, the peers are asked too.
    #[arg(long, requires_all = ["basis", "purpose", "flow"])]
    pub role: Option<String>,
    /// The legal basis (policy id).
    #[arg(long)]
    pub basis: Option<String>,
    /// The purpose (policy id).
    #[arg(long)]
    pub purpose: Option<String>,
    /// The routine flow (policy id).
    #[arg(long)]
    pub flow: Option<String>,
    /// Who is acting, for the audit log.
    #[arg(long, default_value = "")]
    pub actor: String,
}

impl OptionalClaimArgs {
    fn to_pb(&self) -> Option<pb::AccessClaim> {
        let (role, basis, purpose, flow) = (
            self.role.as_ref()?,
            self.basis.as_ref()?,
            self.purpose.as_ref()?,
            self.flow.as_ref()?,
        );
        Some(pb::AccessClaim {
            role: role.clone(),
            legal_basis: basis.clone(),
            purpose: purpose.clone(),
            actor: self.actor.clone(),
            context: Some(pb::access_claim::Context::RoutineFlow(flow.clone())),
        })
    }
}

#[derive(Debug, Args)]
pub struct DueArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    pub claim: OptionalClaimArgs,
    /// Count at this day (YYYY-MM-DD); default today.
    #[arg(long)]
    pub at: Option<String>,
    /// Output as JSON lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    pub claim: OptionalClaimArgs,
    /// Reference dates, comma separated (YYYY-MM-DD,YYYY-MM-DD,...).
    #[arg(long, value_delimiter = ',', required = true)]
    pub at: Vec<String>,
    /// The counting rule (e.g. g4, groningen, duo).
    #[arg(long)]
    pub rule: String,
    /// Output: table, csv, json or svg.
    #[arg(long, default_value = "table")]
    pub format: ReportFormat,
    /// Also write the SVG chart to this file.
    #[arg(long)]
    pub chart: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Csv,
    Json,
    Svg,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// How the FG reaches the node (all four, or none for offline commands).
#[derive(Debug, Args)]
pub struct FgConnectArgs {
    /// The node's address, host:port.
    #[arg(long, env = "PACTGATE_NODE")]
    pub node: Option<String>,
    /// The FG's certificate (PEM).
    #[arg(long, env = "PACTGATE_CERT")]
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, env = "PACTGATE_KEY")]
    pub key: Option<PathBuf>,
    /// The covenant CA certificate (PEM).
    #[arg(long, env = "PACTGATE_CA")]
    pub ca: Option<PathBuf>,
}

impl FgConnectArgs {
    pub async fn channel(&self) -> anyhow::Result<tonic::transport::Channel> {
        let (Some(node), Some(cert), Some(key), Some(ca)) =
            (&self.node, &self.cert, &self.key, &self.ca)
        else {
            bail!("give --node, --cert, --key and --ca (or PACTGATE_NODE, _CERT, _KEY, _CA)");
        };
        let tls = TlsMaterial::load(cert, key, ca)?;
        Ok(client::connect(node, &tls).await?)
    }
}

/// Which audit entries (all set filters must match).
#[derive(Debug, Args)]
pub struct AuditFilterArgs {
    /// Only entries about this pupil (pseudonym).
    #[arg(long)]
    pub pupil: Option<String>,
    /// Only entries of this acting organisation (OIN).
    #[arg(long)]
    pub org: Option<String>,
    /// Only entries of this case.
    #[arg(long)]
    pub case: Option<String>,
    /// Only entries for this purpose.
    #[arg(long)]
    pub purpose: Option<String>,
    /// Only allowed or only denied entries.
    #[arg(long, value_parser = ["allow", "deny"])]
    pub decision: Option<String>,
    /// From this day or time (YYYY-MM-DD or RFC 3339).
    #[arg(long)]
    pub from: Option<String>,
    /// Until this day or time (exclusive).
    #[arg(long)]
    pub until: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the tree and check every checkpoint and cosignature. Offline with --data-dir
    /// (the node must be stopped), otherwise over gRPC as FG. Exits 2 on tampering, naming the
    /// first bad sequence number.
    Verify {
        /// The node's data directory (offline).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// A checkpoint a peer holds (a file with the note body: origin, size, base64 root).
        #[arg(long = "peer-checkpoint")]
        peer_checkpoints: Vec<PathBuf>,
        #[command(flatten)]
        connect: FgConnectArgs,
    },
    /// List entries as a table.
    List {
        #[command(flatten)]
        connect: FgConnectArgs,
        #[command(flatten)]
        filter: AuditFilterArgs,
    },
    /// Export entries as JSON lines, CSV, or Logboek Dataverwerkingen 1.0 records (ldv: one
    /// record per entry plus one per pupil it names).
    Export {
        #[command(flatten)]
        connect: FgConnectArgs,
        #[command(flatten)]
        filter: AuditFilterArgs,
        /// jsonl, csv or ldv.
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv", "ldv"])]
        format: String,
    },
    /// Print the node's verifier key in the C2SP signed-note format (`name+keyhash+base64`), for
    /// peers and witnesses to pin; makes the key in the data dir if there is none yet.
    Vkey {
        /// The node's data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// The node's certificate (PEM), for its OIN.
        #[arg(long, env = "PACTGATE_CERT")]
        cert: PathBuf,
        /// Print the witness's cosignature key (type 0x04) instead of the log's.
        #[arg(long)]
        witness: bool,
    },
    /// A consistency proof between two sizes of the log (JSON), to check a newer checkpoint
    /// against an older one you hold.
    Consistency {
        #[command(flatten)]
        connect: FgConnectArgs,
        /// The older size.
        #[arg(long)]
        old_size: u64,
        /// The newer size; 0 or absent: the newest checkpoint's.
        #[arg(long, default_value_t = 0)]
        new_size: u64,
    },
    /// Everything disclosed about one pupil (AVG art. 15). The BSN is pseudonymised by the node
    /// on the spot and never stored or logged.
    Report {
        #[command(flatten)]
        connect: FgConnectArgs,
        /// Read the pupil's BSN or onderwijsnummer from stdin (one line), never from the command
        /// line, which the process list and shell history would keep.
        #[arg(long, conflicts_with = "pupil")]
        pupil_id_stdin: bool,
        /// Or the pupil's pseudonym.
        #[arg(long)]
        pupil: Option<String>,
    },
    /// An inclusion proof of one entry against the newest checkpoint (JSON).
    Prove {
        #[command(flatten)]
        connect: FgConnectArgs,
        /// The entry's sequence number.
        #[arg(long)]
        seq: u64,
    },
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// The node's data directory (the node must be stopped).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The counting rules file, which holds the retention period.
    #[arg(long)]
    pub counting: PathBuf,
    /// The node's certificate (names the node's organisation for the audit entry).
    #[arg(long)]
    pub cert: PathBuf,
}

#[derive(Debug, Args)]
pub struct CaseArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(subcommand)]
    pub command: CaseCommand,
}

#[derive(Debug, Subcommand)]
pub enum CaseCommand {
    /// Open a case; your organisation becomes its lead.
    Open {
        /// The case meeting type (policy id).
        #[arg(long)]
        meeting: String,
        /// The purpose (policy id).
        #[arg(long)]
        purpose: String,
        /// A pupil's pseudonym (repeatable).
        #[arg(long = "pupil", required = true)]
        pupils: Vec<String>,
        /// A participating organisation's OIN (repeatable).
        #[arg(long = "participant")]
        participants: Vec<String>,
        /// Who opens it.
        #[arg(long, default_value = "")]
        actor: String,
    },
    /// Accept a case shared with your node: until you do, it grants nothing at your node.
    Accept {
        /// The case id.
        #[arg(long)]
        id: String,
        /// Who accepts it (e.g. the chair who screened the case).
        #[arg(long, default_value = "")]
        actor: String,
    },
    /// Decline a case shared with your node: it grants nothing there, for good.
    Decline {
        /// The case id.
        #[arg(long)]
        id: String,
        /// Who declines it.
        #[arg(long, default_value = "")]
        actor: String,
    },
    /// Close a case you lead.
    Close {
        /// The case id.
        #[arg(long)]
        id: String,
        /// Who closes it.
        #[arg(long, default_value = "")]
        actor: String,
    },
    /// Record a care offer (zorgaanbod) your organisation makes to a pupil of a case it takes
    /// part in, where the meeting lets your org type (may_record_offer); told to the other
    /// participants' nodes. It stops the pupil's clock only with a place and the parents'
    /// agreement; without --place-from it is a waiting list and does not.
    Offer {
        /// The case id.
        #[arg(long)]
        id: String,
        /// The pupil's pseudonym (one of the case's pupils).
        #[arg(long)]
        pupil: String,
        /// What is offered.
        #[arg(long, value_enum, default_value = "zorg")]
        kind: CareOfferKind,
        /// The day the offer was made (YYYY-MM-DD).
        #[arg(long)]
        offered_on: String,
        /// The first day the place is actually available (YYYY-MM-DD); leave out for a
        /// waiting list.
        #[arg(long, default_value = "")]
        place_from: String,
        /// The offer was agreed with the parents (and the child).
        #[arg(long)]
        parents_agreed: bool,
        /// Who records it.
        #[arg(long, default_value = "")]
        actor: String,
    },
    /// List the cases your node holds.
    List {
        /// Only open cases.
        #[arg(long)]
        open: bool,
    },
}

/// What a care offer holds out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CareOfferKind {
    Zorg,
    OnderwijsEnZorg,
}

/// How to reach your own node.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The node's address, host:port.
    #[arg(long, env = "PACTGATE_NODE")]
    pub node: String,
    /// Your organisation's client certificate (PEM).
    #[arg(long, env = "PACTGATE_CERT")]
    pub cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long, env = "PACTGATE_KEY")]
    pub key: PathBuf,
    /// The covenant CA certificate (PEM).
    #[arg(long, env = "PACTGATE_CA")]
    pub ca: PathBuf,
}

impl ConnectArgs {
    async fn channel(&self) -> anyhow::Result<tonic::transport::Channel> {
        let tls = TlsMaterial::load(&self.cert, &self.key, &self.ca)?;
        Ok(client::connect(&self.node, &tls).await?)
    }

    async fn intake(&self) -> anyhow::Result<SignalIntakeServiceClient<tonic::transport::Channel>> {
        Ok(SignalIntakeServiceClient::new(self.channel().await?))
    }
}

#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The file: CSV with a header row, or JSON lines; columns/keys are the proto field names.
    #[arg(long)]
    pub file: PathBuf,
    /// Records per Push call.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Only pupils living in this municipality (CBS code).
    #[arg(long)]
    pub municipality: Option<String>,
    /// Only this school (BRIN + vestiging).
    #[arg(long)]
    pub school: Option<String>,
    /// Only this pupil (pseudonym).
    #[arg(long)]
    pub pupil: Option<String>,
    /// Only this category (e.g. LRV).
    #[arg(long)]
    pub category: Option<String>,
    /// Only this status (e.g. OPEN).
    #[arg(long)]
    pub status: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 0)]
    pub limit: u32,
    /// Output as JSON (one object per line).
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Output as CSV.
    #[arg(long)]
    pub csv: bool,
}

/// Where the pseudonymisation service is and the public keys the covenant published for it.
#[derive(Debug, Args)]
pub struct PseudonymiserFlags {
    /// The pseudonymisation service's address (host:port).
    #[arg(long)]
    pub pseudonymiser: Option<String>,
    /// The OIN the service's certificate must name.
    #[arg(long)]
    pub pseudonymiser_oin: Option<String>,
    /// A published public key of the service, "v<version>:<base64url>"; repeat per version.
    #[arg(long = "pseudonymiser-public-key")]
    pub pseudonymiser_public_keys: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PseudonymArgs {
    /// A node config file to take the pseudonymisation service and your certificate from;
    /// flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub pseudonymiser: PseudonymiserFlags,
    /// Your organisation's client certificate (PEM).
    #[arg(long, env = "PACTGATE_CERT")]
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, env = "PACTGATE_KEY")]
    pub key: Option<PathBuf>,
    /// The covenant CA certificate (PEM).
    #[arg(long, env = "PACTGATE_CA")]
    pub ca: Option<PathBuf>,
    /// Ids given as arguments: refused unread (the process list and shell history keep them),
    /// and without the echo clap's own "unexpected argument" error would give.
    #[arg(hide = true)]
    pub refused_ids: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PseudonymiserArgs {
    /// Address to listen on, e.g. 0.0.0.0:7450.
    #[arg(long)]
    pub listen: String,
    /// The service's own data directory (its audit log and quota counters).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The service's certificate (PEM): its own organisation, not a data-holding party.
    #[arg(long)]
    pub cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// The covenant CA certificate (PEM).
    #[arg(long)]
    pub ca: PathBuf,
    /// The OPRF key file (mode 0600), made by `pactgate keygen`.
    #[arg(long)]
    pub pseudonym_key: PathBuf,
    /// The covenant policy: the parties with their pseudonyms_per_day, and the FGs.
    #[arg(long)]
    pub policy: PathBuf,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write a new key file with version 1 (must not exist).
    #[arg(long, conflicts_with = "rotate", required_unless_present = "rotate")]
    pub out: Option<PathBuf>,
    /// Add a new key version to this existing key file (key rotation); old versions stay.
    #[arg(long)]
    pub rotate: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CertsArgs {
    #[command(subcommand)]
    pub command: CertsCommand,
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Write a development CA and a certificate per partner to a directory.
    Dev {
        /// The directory.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => node::serve(args).await,
        Command::Push(args) => exchange::push(args).await,
        Command::List(args) => exchange::list(args).await,
        Command::Pseudonym(args) => keys::pseudonym(args).await,
        Command::Pseudonymiser(args) => keys::pseudonymiser(args).await,
        Command::Keygen(args) => keys::keygen(args),
        Command::Certs(CertsArgs {
            command: CertsCommand::Dev { out },
        }) => {
            crate::certs::write_dev_set(&out)?;
            eprintln!(
                "wrote a development CA and partner certificates to {}",
                out.display()
            );
            Ok(())
        }
        Command::Policy(PolicyArgs {
            command: PolicyCommand::Check { file, format },
        }) => policy::policy_check(&file, format == "json"),
        Command::Query(args) => exchange::query(args).await,
        Command::Case(args) => exchange::case(args).await,
        Command::Due(args) => clock::due(args).await,
        Command::Report(args) => clock::report(args).await,
        Command::Purge(args) => node::purge(args),
        Command::Audit(args) => audit::run(args).await,
        Command::Store(args) => store::store(args),
        Command::Backup(args) => store::backup(args).await,
        Command::Restore(args) => store::restore(args),
        Command::Demo(args) => crate::demo::run(args).await,
        Command::Openapi => {
            print!("{}", crate::rest::doc::document_json());
            Ok(())
        }
        Command::Console(args) => node::console(args).await,
    }
}

/// A command that ran but failed in a way its exit code tells (2: the audit log failed
/// verification; 3: a push had refused records). `main` exits with `code`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failed {
    pub code: u8,
    pub message: String,
}
