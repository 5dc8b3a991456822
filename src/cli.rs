//! The `pactgate` subcommands: their arguments (clap) and what each does. Talks to nodes only
//! through gRPC, like any partner system; prints tables, JSON or CSV. Uses anyhow, as a binary's
//! edge may.

use crate::client;
use crate::config::NodeConfig;
use crate::pb;
use crate::pb::signal_intake_client::SignalIntakeClient;
use crate::pseudonym::PupilId;
use crate::pseudonymiser::{KeyRing, PseudonymiserClient};
use crate::tls::TlsMaterial;
use anyhow::{bail, Context as _};
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
    /// Compute the pseudonyms of pupil ids you already hold (one id per line on stdin, or as
    /// arguments) through the pseudonymisation service, under your organisation's daily quota.
    /// Prints one pseudonym per line, in order.
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
    Store(crate::store_cli::StoreArgs),
    /// A consistent copy of a running node's data, through the node (its own organisation or
    /// its FG).
    Backup(crate::store_cli::BackupArgs),
    /// Put a backup into an empty data dir.
    Restore(crate::store_cli::RestoreArgs),
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
        /// The pupil's BSN or onderwijsnummer.
        #[arg(long, conflicts_with = "pupil")]
        pupil_id: Option<String>,
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
    /// List the cases your node holds.
    List {
        /// Only open cases.
        #[arg(long)]
        open: bool,
    },
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

    async fn intake(&self) -> anyhow::Result<SignalIntakeClient<tonic::transport::Channel>> {
        Ok(SignalIntakeClient::new(self.channel().await?))
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Csv,
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
    /// Ids to pseudonymise; none: read one per line from stdin.
    pub ids: Vec<String>,
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
        Command::Serve(args) => serve(args).await,
        Command::Push(args) => push(args).await,
        Command::List(args) => list(args).await,
        Command::Pseudonym(args) => pseudonym(args).await,
        Command::Pseudonymiser(args) => pseudonymiser(args).await,
        Command::Keygen(args) => keygen(args),
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
        }) => policy_check(&file, format == "json"),
        Command::Query(args) => query(args).await,
        Command::Case(args) => case(args).await,
        Command::Due(args) => due(args).await,
        Command::Report(args) => report(args).await,
        Command::Purge(args) => purge(args),
        Command::Audit(args) => crate::audit_cli::run(args).await,
        Command::Store(args) => crate::store_cli::store(args),
        Command::Backup(args) => crate::store_cli::backup(args).await,
        Command::Restore(args) => crate::store_cli::restore(args),
        Command::Demo(args) => crate::demo::run(args).await,
        Command::Openapi => {
            print!("{}", crate::rest::doc::document_json());
            Ok(())
        }
        Command::Console(args) => console(args).await,
    }
}

async fn console(args: ConsoleArgs) -> anyhow::Result<()> {
    let config = crate::console::ConsoleConfig::load(&args.config)?;
    let listen = args.listen.unwrap_or_else(|| config.listen.clone());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let scheme = if config.tls { "https" } else { "http" };
    println!("console: {scheme}://{}/", listener.local_addr()?);
    crate::console::serve(config.setup()?, listener, shutdown_signal()).await?;
    Ok(())
}

/// True if a TOML file is a counting rules file (it has a `[counting]` table).
fn is_counting_file(file: &std::path::Path) -> bool {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .is_some_and(|t| t.contains_key("counting"))
}

fn counting_check(file: &std::path::Path) -> anyhow::Result<()> {
    match crate::clock::CountingRules::load(file) {
        Ok(rules) => {
            println!(
                "{}: valid counting rules: {}",
                file.display(),
                rules.rule_names().join(", ")
            );
            println!(
                "suppression threshold {}, retention {} days after closing",
                rules.suppression_threshold(),
                rules.retention_days()
            );
            Ok(())
        }
        Err(errors) => {
            eprintln!("{errors}");
            bail!("{}: the counting rules are not valid", file.display())
        }
    }
}

fn policy_check(file: &std::path::Path, json: bool) -> anyhow::Result<()> {
    if is_counting_file(file) {
        return counting_check(file);
    }
    match crate::policy::Policy::load(file) {
        Ok(policy) if json => {
            println!("{}", serde_json::to_string_pretty(&policy.matrix_json())?);
            Ok(())
        }
        Ok(policy) => {
            println!("{}: valid, version {}", file.display(), policy.version());
            for warning in policy.warnings() {
                println!("warning: {warning}");
            }
            println!();
            print!("{}", policy.matrix());
            Ok(())
        }
        Err(errors) => {
            eprintln!("{errors}");
            bail!(
                "{}: {} error(s); the policy is not valid",
                file.display(),
                errors.0.len()
            )
        }
    }
}

fn query_filter(args: &QueryArgs) -> anyhow::Result<pb::QueryFilter> {
    let categories = args
        .category
        .iter()
        .map(|c| {
            enum_filter(&Some(c.clone()), "CATEGORY_", |s| {
                pb::Category::from_str_name(s).map(Into::into)
            })
        })
        .collect::<anyhow::Result<Vec<i32>>>()?;
    Ok(pb::QueryFilter {
        residence_municipality: args.municipality.clone().unwrap_or_default(),
        school: args.school.clone().unwrap_or_default(),
        categories,
        status: enum_filter(&args.status, "STATUS_", |s| {
            pb::Status::from_str_name(s).map(Into::into)
        })?,
        open_longer_than_days: args.open_longer_than,
    })
}

async fn query(args: QueryArgs) -> anyhow::Result<()> {
    let request = pb::FederationQueryRequest {
        claim: Some(args.claim.to_pb()?),
        filter: Some(query_filter(&args)?),
        timeout_ms: args.timeout_ms,
    };
    let channel = args.connect.channel().await?;
    let response = pb::federation_client::FederationClient::new(channel)
        .query(request)
        .await
        .map_err(|s| anyhow::anyhow!("your node refused: {}", s.message()))?
        .into_inner();
    let format = output_format(args.json, args.csv);
    print!("{}", render_federation(&response, format)?);
    for failure in &response.failures {
        eprintln!(
            "peer {}: {} {}",
            failure.peer, failure.code, failure.message
        );
    }
    Ok(())
}

fn output_format(json: bool, csv: bool) -> OutputFormat {
    if json {
        OutputFormat::Json
    } else if csv {
        OutputFormat::Csv
    } else {
        OutputFormat::Table
    }
}

/// Renders a federated answer: every signal with the peer that holds it.
pub fn render_federation(
    response: &pb::FederationQueryResponse,
    format: OutputFormat,
) -> anyhow::Result<String> {
    let mut header = vec!["holder"];
    header.extend(VIEW_COLUMNS);
    let rows: Vec<Vec<String>> = response
        .answers
        .iter()
        .flat_map(|a| {
            a.response.iter().flat_map(|r| r.signals.iter()).map(|v| {
                let mut row = vec![a.peer.clone()];
                row.extend(view_cells(v));
                row
            })
        })
        .collect();
    let mut footer = format!(
        "{} signals from {} peers",
        rows.len(),
        response.answers.len()
    );
    if !response.failures.is_empty() {
        footer.push_str(&format!(
            ", {} peers did not answer",
            response.failures.len()
        ));
    }
    render_rows(&header, &rows, &footer, format)
}

async fn case(args: CaseArgs) -> anyhow::Result<()> {
    let mut cases = pb::cases_client::CasesClient::new(args.connect.channel().await?);
    let refused = |s: tonic::Status| anyhow::anyhow!("your node refused: {}", s.message());
    let response = match args.command {
        CaseCommand::Open {
            meeting,
            purpose,
            pupils,
            participants,
            actor,
        } => cases
            .open_case(pb::OpenCaseRequest {
                meeting_type: meeting,
                purpose,
                pupil_pseudonyms: pupils,
                participant_oins: participants,
                actor,
            })
            .await
            .map_err(refused)?
            .into_inner(),
        CaseCommand::Accept { id, actor } => cases
            .accept_case(pb::AcceptCaseRequest { case_id: id, actor })
            .await
            .map_err(refused)?
            .into_inner(),
        CaseCommand::Decline { id, actor } => cases
            .decline_case(pb::DeclineCaseRequest { case_id: id, actor })
            .await
            .map_err(refused)?
            .into_inner(),
        CaseCommand::Close { id, actor } => cases
            .close_case(pb::CloseCaseRequest { case_id: id, actor })
            .await
            .map_err(refused)?
            .into_inner(),
        CaseCommand::List { open } => {
            let list = cases
                .list_cases(pb::ListCasesRequest { open_only: open })
                .await
                .map_err(refused)?
                .into_inner();
            for c in &list.cases {
                println!("{}", case_line(c));
            }
            return Ok(());
        }
    };
    if let Some(c) = &response.case {
        println!("{}", case_line(c));
    }
    for f in &response.not_notified {
        eprintln!("participant {} not told: {} {}", f.peer, f.code, f.message);
    }
    Ok(())
}

fn case_line(c: &pb::Case) -> String {
    let names: Vec<&str> = c.participants.iter().map(|p| p.name.as_str()).collect();
    let acceptance = match c.acceptance() {
        pb::CaseAcceptance::Accepted => "accepted",
        pb::CaseAcceptance::Declined => "declined",
        _ => "not yet accepted",
    };
    format!(
        "{} {} ({}) lead {} with {}; {} pupils; {}; {acceptance}",
        c.case_id,
        c.meeting_type,
        c.purpose,
        c.lead.as_ref().map(|l| l.name.as_str()).unwrap_or("?"),
        names.join(", "),
        c.pupil_pseudonyms.len(),
        if c.open {
            "open".to_owned()
        } else {
            format!("closed {}", c.closed_at)
        }
    )
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => NodeConfig::load(path)?,
        None => NodeConfig::default(),
    };
    let config = file.overridden_by(NodeConfig {
        listen: args.listen,
        data_dir: args.data_dir,
        cert: args.cert,
        key: args.key,
        ca: args.ca,
        crl: args.crl,
        pseudonymiser: args.pseudonymiser.pseudonymiser,
        pseudonymiser_oin: args.pseudonymiser.pseudonymiser_oin,
        pseudonymiser_public_keys: args.pseudonymiser.pseudonymiser_public_keys,
        policy: args.policy,
        counting: args.counting,
        peers: Vec::new(),
        limits: Default::default(),
        witnesses: Vec::new(),
        witnessed_logs: Vec::new(),
    });
    let listen = NodeConfig::require(&config.listen, "listen address", "listen")?;
    let data_dir = NodeConfig::require(&config.data_dir, "data directory", "data-dir")?;
    let tls = TlsMaterial::load_for_node(
        NodeConfig::require(&config.cert, "certificate", "cert")?,
        NodeConfig::require(&config.key, "private key", "key")?,
        NodeConfig::require(&config.ca, "CA certificate", "ca")?,
    )?;
    let pseudonymiser = config.pseudonymiser()?;
    let checked = data_dir.clone();
    tokio::task::spawn_blocking(move || crate::store_cli::check_before_serving(&checked)).await??;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let (ready, is_ready) = tokio::sync::oneshot::channel();
    if config.policy.is_none() {
        tracing::warn!("no --policy given: this node will deny every exchange (intake only)");
    }
    let setup = crate::node::NodeSetup {
        tls,
        pseudonymiser,
        data_dir: data_dir.clone(),
        policy: config.policy.clone(),
        peers: config.peers.clone(),
        counting: config.counting.clone(),
        crl: config.crl.clone(),
        checkpoint_interval: crate::rpc::audit::CHECKPOINT_INTERVAL,
        witnesses: config.witnesses.clone(),
        witnessed_logs: config.witnessed_logs.clone(),
        ready: Some(ready),
        limits: crate::limits::Limits {
            shutdown_grace_secs: args
                .shutdown_grace_secs
                .unwrap_or(config.limits.shutdown_grace_secs),
            ..config.limits.clone()
        },
    };
    let node = tokio::spawn(crate::node::serve(setup, listener, shutdown_signal()));
    // The bound address on stdout once the node is fully set up, so a supervisor (or a test)
    // that asked for port 0 learns it, and never for a node that refused to start.
    if is_ready.await.is_ok() {
        println!("listening on {addr}");
    }
    node.await??;
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

/// The totals of a push of a whole file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushSummary {
    pub accepted: usize,
    /// Refusals with the file line they came from.
    pub rejected: Vec<String>,
    /// Refusals the node counted but did not list (a report lists the first of each push).
    pub unlisted: usize,
}

impl PushSummary {
    /// Every refused record, listed or not.
    pub fn refused(&self) -> usize {
        self.rejected.len() + self.unlisted
    }
}

/// Pushes rows in batches; each refusal is reported with the file line it came from.
pub async fn push_rows(
    intake: &mut SignalIntakeClient<tonic::transport::Channel>,
    rows: Vec<crate::import::Row>,
    batch: usize,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<PushSummary> {
    let mut summary = PushSummary::default();
    let mut pending: Vec<(usize, pb::SignalRecord)> = Vec::new();
    for (line, row) in rows {
        match row {
            Ok(record) => pending.push((line, record)),
            Err(e) => {
                summary.rejected.push(e.to_string());
                progress.inc(1);
            }
        }
    }
    for chunk in pending.chunks(batch.max(1)) {
        let lines: Vec<usize> = chunk.iter().map(|(l, _)| *l).collect();
        let records: Vec<pb::SignalRecord> = chunk.iter().map(|(_, r)| r.clone()).collect();
        let report = intake
            .push(tokio_stream::iter(records))
            .await
            .map_err(|s| anyhow::anyhow!("the node refused the push: {}", s.message()))?
            .into_inner();
        summary.accepted += report.accepted as usize;
        summary.unlisted += (report.rejected_count as usize).saturating_sub(report.rejected.len());
        for r in report.rejected {
            let line = lines.get(r.index as usize).copied().unwrap_or(0);
            summary.rejected.push(format!("line {line} ({})", r.reason));
        }
        progress.inc(chunk.len() as u64);
    }
    Ok(summary)
}

async fn push(args: PushArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let rows =
        crate::import::read(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let mut intake = args.connect.intake().await?;
    let progress = indicatif::ProgressBar::new(rows.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} records {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let total = rows.len();
    let summary = push_rows(&mut intake, rows, args.batch, &progress).await?;
    progress.finish_and_clear();
    println!(
        "{total} records read, {} stored, {} refused",
        summary.accepted,
        summary.refused()
    );
    for line in &summary.rejected {
        println!("  refused: {line}");
    }
    if summary.unlisted > 0 {
        println!(
            "  ... and {} more refused (the node lists the first {} of each batch)",
            summary.unlisted,
            crate::rpc::intake::MAX_REPORTED_REJECTS
        );
    }
    if summary.refused() > 0 {
        std::process::exit(3);
    }
    Ok(())
}

fn enum_filter(
    text: &Option<String>,
    prefix: &str,
    from: fn(&str) -> Option<i32>,
) -> anyhow::Result<i32> {
    let Some(text) = text else { return Ok(0) };
    crate::import::enum_value(text, prefix, from).map_err(|reason| anyhow::anyhow!("{reason}"))
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let request = pb::ListRequest {
        residence_municipality: args.municipality.clone().unwrap_or_default(),
        school: args.school.clone().unwrap_or_default(),
        pupil_pseudonym: args.pupil.clone().unwrap_or_default(),
        category: enum_filter(&args.category, "CATEGORY_", |s| {
            pb::Category::from_str_name(s).map(Into::into)
        })?,
        status: enum_filter(&args.status, "STATUS_", |s| {
            pb::Status::from_str_name(s).map(Into::into)
        })?,
        limit: args.limit,
    };
    let mut intake = args.connect.intake().await?;
    let mut stream = intake
        .list(request)
        .await
        .map_err(|s| anyhow::anyhow!("the node refused: {}", s.message()))?
        .into_inner();
    let mut views = Vec::new();
    while let Some(v) = stream
        .message()
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
    {
        views.push(v);
    }
    print!(
        "{}",
        render_views(&views, output_format(args.json, args.csv))?
    );
    Ok(())
}

const VIEW_COLUMNS: [&str; 11] = [
    "source_record_id",
    "pupil_pseudonym",
    "category",
    "sector",
    "residence_municipality",
    "school",
    "absent_since",
    "status",
    "offer_date",
    "age",
    "updated_at",
];

fn view_cells(v: &pb::SignalView) -> Vec<String> {
    let short = |name: &str, prefix: &str| name.strip_prefix(prefix).unwrap_or(name).to_owned();
    vec![
        v.source_record_id.clone(),
        v.pupil_pseudonym.clone(),
        short(v.category().as_str_name(), "CATEGORY_"),
        short(v.sector().as_str_name(), "SECTOR_"),
        v.residence_municipality.clone(),
        v.school.clone(),
        v.absent_since.clone(),
        short(v.status().as_str_name(), "STATUS_"),
        v.offer_date.clone(),
        v.age.to_string(),
        v.updated_at.clone(),
    ]
}

/// Renders signal views as a table, JSON lines or CSV.
pub fn render_views(views: &[pb::SignalView], format: OutputFormat) -> anyhow::Result<String> {
    let rows: Vec<Vec<String>> = views.iter().map(view_cells).collect();
    render_rows(
        &VIEW_COLUMNS,
        &rows,
        &format!("{} signals", views.len()),
        format,
    )
}

/// Rows of text cells as a table (with a footer line), JSON lines (one object per row, keyed by
/// the header) or CSV (with the header row).
pub fn render_rows(
    header: &[&str],
    rows: &[Vec<String>],
    footer: &str,
    format: OutputFormat,
) -> anyhow::Result<String> {
    match format {
        OutputFormat::Table => {
            let mut table = comfy_table::Table::new();
            table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
            table.set_header(header);
            for row in rows {
                table.add_row(row);
            }
            Ok(format!("{table}\n{footer}\n"))
        }
        OutputFormat::Json => {
            let mut out = String::new();
            for row in rows {
                let object: serde_json::Map<String, serde_json::Value> = header
                    .iter()
                    .zip(row)
                    .map(|(k, c)| ((*k).to_owned(), serde_json::Value::String(c.clone())))
                    .collect();
                out.push_str(&serde_json::to_string(&object)?);
                out.push('\n');
            }
            Ok(out)
        }
        OutputFormat::Csv => {
            let mut writer = csv::Writer::from_writer(Vec::new());
            writer.write_record(header)?;
            for row in rows {
                writer.write_record(row)?;
            }
            Ok(String::from_utf8(writer.into_inner()?)?)
        }
    }
}

async fn pseudonym(args: PseudonymArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => NodeConfig::load(path)?,
        None => NodeConfig::default(),
    };
    let config = file.overridden_by(NodeConfig {
        cert: args.cert,
        key: args.key,
        ca: args.ca,
        pseudonymiser: args.pseudonymiser.pseudonymiser,
        pseudonymiser_oin: args.pseudonymiser.pseudonymiser_oin,
        pseudonymiser_public_keys: args.pseudonymiser.pseudonymiser_public_keys,
        ..NodeConfig::default()
    });
    let tls = TlsMaterial::load(
        NodeConfig::require(&config.cert, "certificate", "cert")?,
        NodeConfig::require(&config.key, "private key", "key")?,
        NodeConfig::require(&config.ca, "CA certificate", "ca")?,
    )?;
    let client = PseudonymiserClient::connect_lazy(&config.pseudonymiser()?, &tls)?;
    let lines: Vec<String> = if args.ids.is_empty() {
        std::io::stdin().lines().collect::<Result<_, _>>()?
    } else {
        args.ids
    };
    let parsed: Vec<(usize, Result<PupilId, _>)> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i, PupilId::parse(l)))
        .collect();
    let trace = crate::trace::TraceContext::from_metadata(&tonic::metadata::MetadataMap::new());
    let valid = parsed.iter().filter_map(|(_, p)| p.as_ref().ok());
    let mut pseudonyms = client
        .pseudonymise_batch(valid, &trace)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .into_iter();
    let mut failed = 0;
    for (i, pupil) in &parsed {
        match pupil {
            Ok(_) => println!("{}", pseudonyms.next().unwrap_or_default()),
            Err(e) => {
                failed += 1;
                println!();
                eprintln!("line {}: pupil id {e}", i + 1);
            }
        }
    }
    if failed > 0 {
        bail!("{failed} ids could not be pseudonymised");
    }
    Ok(())
}

fn keygen(args: KeygenArgs) -> anyhow::Result<()> {
    let (ring, path, done) = match (&args.out, &args.rotate) {
        (_, Some(path)) => (KeyRing::rotate(path)?, path, "added a new key version to"),
        (Some(path), None) => (KeyRing::generate(path)?, path, "wrote a new key file"),
        (None, None) => bail!("give --out FILE for a new key file or --rotate FILE"),
    };
    eprintln!(
        "{done} {} (mode 0600; only the pseudonymisation service may hold it). Publish these \
         public keys in every node's pseudonymiser_public_keys; new pseudonyms use v{}:",
        path.display(),
        ring.current().version()
    );
    for key in ring.public_keys() {
        println!("{key}");
    }
    Ok(())
}

async fn pseudonymiser(args: PseudonymiserArgs) -> anyhow::Result<()> {
    let tls = TlsMaterial::load(&args.cert, &args.key, &args.ca)?;
    let keys = KeyRing::load(&args.pseudonym_key)?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let (ready, is_ready) = tokio::sync::oneshot::channel();
    let setup = crate::pseudonymiser::ServiceSetup {
        tls,
        keys,
        policy: args.policy,
        data_dir: args.data_dir,
        ready: Some(ready),
    };
    let service = tokio::spawn(crate::pseudonymiser::serve(
        setup,
        listener,
        shutdown_signal(),
    ));
    if is_ready.await.is_ok() {
        println!("listening on {addr}");
    }
    service.await??;
    Ok(())
}

async fn due(args: DueArgs) -> anyhow::Result<()> {
    let channel = args.connect.channel().await?;
    let response = pb::clock_client::ClockClient::new(channel)
        .due(pb::DueRequest {
            claim: args.claim.to_pb(),
            at: args.at.clone().unwrap_or_default(),
            timeout_ms: 0,
        })
        .await
        .map_err(|s| anyhow::anyhow!("your node refused: {}", s.message()))?
        .into_inner();
    if args.json {
        for line in &response.lines {
            println!("{}", serde_json::to_string(&due_json(line))?);
        }
    } else {
        print!("{}", render_due(&response));
    }
    for f in &response.failures {
        eprintln!("peer {}: {} {}", f.peer, f.code, f.message);
    }
    Ok(())
}

fn band_label(band: i32) -> &'static str {
    match pb::DueBand::try_from(band) {
        Ok(pb::DueBand::Weeks4) => "4+ weeks",
        Ok(pb::DueBand::Weeks8) => "8+ weeks",
        Ok(pb::DueBand::Weeks10) => "10+ weeks",
        Ok(pb::DueBand::Weeks12) => "12+ weeks",
        Ok(pb::DueBand::OverThreeMonths) => "OVER 3 MONTHS",
        _ => "?",
    }
}

fn category_names(categories: &[i32]) -> String {
    categories
        .iter()
        .map(|c| {
            pb::Category::try_from(*c)
                .map(|c| c.as_str_name().trim_start_matches("CATEGORY_").to_owned())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("+")
}

fn sector_names(sectors: &[i32]) -> String {
    sectors
        .iter()
        .map(|s| {
            pb::Sector::try_from(*s)
                .map(|s| s.as_str_name().trim_start_matches("SECTOR_").to_owned())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("+")
}

fn due_json(l: &pb::DueLine) -> serde_json::Value {
    serde_json::json!({
        "pupil_pseudonym": l.pupil_pseudonym,
        "band": band_label(l.band),
        "weeks": l.weeks,
        "days": l.days,
        "categories": category_names(&l.categories),
        "sectors": sector_names(&l.sectors),
        "schools": l.schools,
        "residence_municipalities": l.residence_municipalities,
        "holders": l.holders.iter().map(|h| format!("{}:{}", h.partner, h.source_record_id)).collect::<Vec<_>>(),
    })
}

/// Renders a due list as a table, one line per child.
pub fn render_due(response: &pb::DueResponse) -> String {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header([
        "band",
        "weeks",
        "pupil",
        "categories",
        "sector",
        "school",
        "lives in",
        "held by",
        "next step",
    ]);
    for l in &response.lines {
        let holders: Vec<String> = l
            .holders
            .iter()
            .map(|h| {
                if h.source_record_id.is_empty() {
                    h.partner.clone()
                } else {
                    format!("{} ({})", h.partner, h.source_record_id)
                }
            })
            .collect();
        table.add_row(vec![
            band_label(l.band).to_owned(),
            l.weeks.to_string(),
            l.pupil_pseudonym.clone(),
            category_names(&l.categories),
            sector_names(&l.sectors),
            l.schools.join(", "),
            l.residence_municipalities.join(", "),
            holders.join("; "),
            l.escalation_step.clone(),
        ]);
    }
    format!(
        "{table}\n{} children on the clock at {}\n",
        response.lines.len(),
        response.at
    )
}

async fn report(args: ReportArgs) -> anyhow::Result<()> {
    let channel = args.connect.channel().await?;
    let response = pb::clock_client::ClockClient::new(channel)
        .report(pb::ReportRequest {
            at: args.at.clone(),
            rule: args.rule.clone(),
            claim: args.claim.to_pb(),
            timeout_ms: 0,
        })
        .await
        .map_err(|s| anyhow::anyhow!("your node refused: {}", s.message()))?
        .into_inner();
    match args.format {
        ReportFormat::Table => print!("{}", response.table),
        ReportFormat::Csv => print!("{}", response.csv),
        ReportFormat::Json => println!("{}", response.json),
        ReportFormat::Svg => println!("{}", response.svg),
    }
    if let Some(path) = &args.chart {
        std::fs::write(path, &response.svg)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("chart written to {}", path.display());
    }
    for f in &response.failures {
        eprintln!("peer {}: {} {}", f.peer, f.code, f.message);
    }
    Ok(())
}

fn purge(args: PurgeArgs) -> anyhow::Result<()> {
    let rules =
        crate::clock::CountingRules::load(&args.counting).map_err(|e| anyhow::anyhow!("{e}"))?;
    let cert = std::fs::read(&args.cert)
        .with_context(|| format!("cannot read {}", args.cert.display()))?;
    let own = crate::tls::organisation_of_pem(&cert)?;
    let store = crate::store::Store::open(&args.data_dir)?;
    let key =
        crate::audit::SigningKey::load_or_create(&args.data_dir.join(crate::node::AUDIT_KEY_FILE))?;
    let audit = crate::audit::AuditLog::open(store.db(), &own.oin, key)?;
    let purged = crate::retention::purge(
        &store,
        &audit,
        &own,
        &rules,
        chrono::Utc::now().date_naive(),
    )?;
    println!(
        "purged {} signals closed more than {} days ago",
        purged,
        rules.retention_days()
    );
    Ok(())
}
