//! `pactgate demo`: starts one node per partner on free loopback ports with the development
//! certificates, lets each partner's own system push a synthetic, realistic population over
//! gRPC, shows what each node holds, and stops the nodes cleanly (nodes start through `harness`).
//! The pseudonymisation service runs beside them as a party of its own; the demo shows its quota
//! counting and a quota refusal.

use crate::certs::{dev_party, DevParty};
use crate::client::push_rows;
use crate::harness::{self, Server};
use crate::pb;
use crate::pb::signal_intake_service_client::SignalIntakeServiceClient;
use crate::peers::PeerConfig;
use crate::pseudonym::{PseudonymKey, PupilId, KEY_LEN};
use crate::pseudonymiser::{KeyRing, PseudonymiserClient, ServiceConfig};
use crate::tls::TlsMaterial;
use anyhow::Context as _;
use chrono::{Days, NaiveDate};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seed of the synthetic population (the same seed gives the same population).
    #[arg(long, default_value_t = 2023)]
    pub seed: u64,
    /// Keep the nodes' data here instead of in a temporary directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Keep the federation running afterwards and serve the web console for the Leerplicht
    /// node and for its FG on loopback, until Ctrl-C.
    #[arg(long)]
    pub console: bool,
}

/// The development certificates, compiled in so the demo runs from any directory.
pub mod dev_certs {
    pub const CA: &str = include_str!("../certs-dev/ca.pem");
    pub fn cert(file: &str) -> Option<(&'static str, &'static str)> {
        Some(match file {
            "swv-vo" => (
                include_str!("../certs-dev/swv-vo.pem"),
                include_str!("../certs-dev/swv-vo.key"),
            ),
            "swv-po" => (
                include_str!("../certs-dev/swv-po.pem"),
                include_str!("../certs-dev/swv-po.key"),
            ),
            "mbo" => (
                include_str!("../certs-dev/mbo.pem"),
                include_str!("../certs-dev/mbo.key"),
            ),
            "leerplicht" => (
                include_str!("../certs-dev/leerplicht.pem"),
                include_str!("../certs-dev/leerplicht.key"),
            ),
            "wij" => (
                include_str!("../certs-dev/wij.pem"),
                include_str!("../certs-dev/wij.key"),
            ),
            "ggd" => (
                include_str!("../certs-dev/ggd.pem"),
                include_str!("../certs-dev/ggd.key"),
            ),
            "fg" => (
                include_str!("../certs-dev/fg.pem"),
                include_str!("../certs-dev/fg.key"),
            ),
            "fg-swv-vo" => (
                include_str!("../certs-dev/fg-swv-vo.pem"),
                include_str!("../certs-dev/fg-swv-vo.key"),
            ),
            "fg-swv-po" => (
                include_str!("../certs-dev/fg-swv-po.pem"),
                include_str!("../certs-dev/fg-swv-po.key"),
            ),
            "fg-mbo" => (
                include_str!("../certs-dev/fg-mbo.pem"),
                include_str!("../certs-dev/fg-mbo.key"),
            ),
            "fg-wij" => (
                include_str!("../certs-dev/fg-wij.pem"),
                include_str!("../certs-dev/fg-wij.key"),
            ),
            "fg-ggd" => (
                include_str!("../certs-dev/fg-ggd.pem"),
                include_str!("../certs-dev/fg-ggd.key"),
            ),
            "pseudonymiser" => (
                include_str!("../certs-dev/pseudonymiser.pem"),
                include_str!("../certs-dev/pseudonymiser.key"),
            ),
            _ => return None,
        })
    }

    /// The TLS material of a development party.
    pub fn material(file: &str) -> Option<crate::tls::TlsMaterial> {
        let (cert, key) = cert(file)?;
        Some(crate::tls::TlsMaterial {
            cert_pem: cert.as_bytes().to_vec(),
            key_pem: key.as_bytes().to_vec(),
            ca_pem: CA.as_bytes().to_vec(),
        })
    }
}

/// The partners that run a node in the demo.
pub const DEMO_NODES: [&str; 6] = ["swv-vo", "swv-po", "mbo", "leerplicht", "wij", "ggd"];

/// Municipalities the synthetic pupils live in, with weights: about 60% in the city.
pub const MUNICIPALITIES: [(&str, &str, u32); 4] = [
    ("GM0014", "Groningen", 60),
    ("GM1966", "Het Hogeland", 14),
    ("GM1969", "Westerkwartier", 14),
    ("GM1952", "Midden-Groningen", 12),
];

/// A running in-process node of the demo (the library's harness).
pub struct DemoNode {
    pub party: DevParty,
    pub addr: SocketAddr,
    server: Server,
}

impl DemoNode {
    /// Starts a node for a development party on a listener the caller bound, with the given
    /// policy and counting rules files and peers.
    pub async fn start(
        file: &str,
        listener: tokio::net::TcpListener,
        data_dir: &Path,
        pseudonymiser: &ServiceConfig,
        (policy, counting): (Option<PathBuf>, Option<PathBuf>),
        peers: Vec<PeerConfig>,
    ) -> anyhow::Result<Self> {
        let party = dev_party(file).with_context(|| format!("no development party {file}"))?;
        let tls =
            dev_certs::material(file).with_context(|| format!("no certificate for {file}"))?;
        // The demo's nodes witness each other, each peer's keys pinned from its data dir (its own
        // keys made first, before its peers read them).
        crate::node::audit_verifier_keys(&data_dir.join(file), party.oin)?;
        let keyed = peers
            .iter()
            .map(|p| {
                let keys = crate::node::audit_verifier_keys(&data_dir.join(&p.name), &p.oin)?;
                Ok((p.clone(), keys))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut setup =
            harness::node_setup(tls, pseudonymiser.clone(), data_dir.join(file), &keyed);
        setup.policy = policy;
        setup.counting = counting;
        setup.checkpoint_interval = std::time::Duration::from_millis(500);
        let server = Server::spawn(setup, listener)?;
        Ok(Self {
            party,
            addr: server.addr,
            server,
        })
    }

    /// Stops the node and waits until it has flushed and closed.
    pub async fn stop(self) -> anyhow::Result<()> {
        Ok(self.server.stop().await?)
    }
}

/// The pseudonymisation service of the demo, in-process on a loopback port.
pub struct DemoPseudonymiser {
    pub config: ServiceConfig,
    server: Server,
}

impl DemoPseudonymiser {
    /// Starts the service with the development certificate "pseudonymiser", the key of `seed`
    /// (version 1) and the policy file, its data in `data_dir`/pseudonymiser. Returns once it
    /// serves.
    pub async fn start(
        data_dir: &Path,
        seed: &[u8; KEY_LEN],
        policy: &Path,
    ) -> anyhow::Result<Self> {
        let file = "pseudonymiser";
        let party = dev_party(file).context("no development pseudonymiser")?;
        let tls = dev_certs::material(file).context("no certificate for the pseudonymiser")?;
        let key = PseudonymKey::from_bytes(1, seed);
        let public_keys = vec![key.public_key()];
        let keys = KeyRing::from_keys(vec![key]).context("an empty key ring")?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let setup = crate::pseudonymiser::ServiceSetup {
            tls,
            keys,
            policy: policy.to_owned(),
            data_dir: data_dir.join(file),
            ready: None,
        };
        let server = Server::spawn_ready(setup, listener).await?;
        let config = ServiceConfig {
            address: server.addr.to_string(),
            oin: party.oin.to_owned(),
            public_keys,
        };
        Ok(Self { config, server })
    }

    /// Stops the service and waits until it has flushed and closed.
    pub async fn stop(self) -> anyhow::Result<()> {
        Ok(self.server.stop().await?)
    }
}

/// A client of a node as the party with the given development certificate.
pub async fn intake_client(
    addr: SocketAddr,
    as_party: &str,
) -> anyhow::Result<SignalIntakeServiceClient<tonic::transport::Channel>> {
    let tls: TlsMaterial = dev_certs::material(as_party).context("unknown party")?;
    let channel = crate::client::connect(&addr.to_string(), &tls).await?;
    Ok(SignalIntakeServiceClient::new(channel))
}

/// A synthetic pupil: a valid BSN, where it lives, its age and sector.
#[derive(Clone)]
struct Pupil {
    bsn: String,
    municipality: &'static str,
    age: u32,
}

/// A valid BSN (passing the 11-proef) from the random source.
pub fn synthetic_bsn(rng: &mut StdRng) -> String {
    loop {
        let mut digits: Vec<u32> = (0..8).map(|_| rng.random_range(0..10)).collect();
        digits[0] = rng.random_range(1..10);
        let sum: u32 = digits.iter().zip((2..=9).rev()).map(|(d, w)| d * w).sum();
        let check = sum % 11;
        if check < 10 {
            digits.push(check);
            return digits.iter().map(|d| char::from(b'0' + *d as u8)).collect();
        }
    }
}

fn pick_municipality(rng: &mut StdRng) -> &'static str {
    let total: u32 = MUNICIPALITIES.iter().map(|m| m.2).sum();
    let mut roll = rng.random_range(0..total);
    for (code, _, weight) in MUNICIPALITIES {
        if roll < weight {
            return code;
        }
        roll -= weight;
    }
    MUNICIPALITIES[0].0
}

/// How many signals of which kind each partner's system pushes, shaped by the Groningen 2023
/// evaluation (seed `002`) where it gives a figure, and marked ASSUMPTION where it does not.
/// `SECTOR_UNSPECIFIED`: a child without any school history (no school, no sector).
const PLAN: [(&str, pb::Category, pb::Sector, usize); 19] = [
    // ASSUMPTION: the seeds give no LRV, verzuim, schorsing or verwijdering counts ([002:1370-1377]
    // refers to a table that is not in the text).
    ("swv-vo", pb::Category::Lrv, pb::Sector::Vo, 170),
    ("swv-vo", pb::Category::Verzuim, pb::Sector::Vo, 120),
    // "Het aantal ziekgemelde leerlingen is gedaald van 88 (december 2021) naar 30 (december
    // 2023)" [002:233] (SWV VO).
    ("swv-vo", pb::Category::LangdurigZiek, pb::Sector::Vo, 30),
    ("swv-vo", pb::Category::Schorsing, pb::Sector::Vo, 12),
    ("swv-vo", pb::Category::Verwijdering, pb::Sector::Vso, 5),
    ("swv-po", pb::Category::Lrv, pb::Sector::Po, 55),
    // ASSUMPTION: no PO figure for long-term sick in the seeds.
    ("swv-po", pb::Category::LangdurigZiek, pb::Sector::So, 8),
    // ASSUMPTION: no MBO LRV or verzuim figure in the seeds.
    ("mbo", pb::Category::Lrv, pb::Sector::Mbo, 90),
    ("mbo", pb::Category::Verzuim, pb::Sector::Mbo, 60),
    // "87 absoluut verzuimdossiers ... 44 in de VO/MBO leeftijd en 43 in de PO leeftijd"
    // [002:1407-1409]: never enrolled, split by age in `age_of`.
    ("leerplicht", pb::Category::Av, pb::Sector::Unspecified, 87),
    // "Van de 135 vrijstellingen 5 onder a in 2022-2023 zijn er 10 leerlingen van het (S)BO, 12
    // van het (V)SO, 7 van het VO en 3 van het MBO. De resterende 103 hebben geen
    // schoolgeschiedenis." [002:225-227]
    (
        "leerplicht",
        pb::Category::Vrijstelling5a,
        pb::Sector::Unspecified,
        103,
    ),
    (
        "leerplicht",
        pb::Category::Vrijstelling5a,
        pb::Sector::Sbo,
        10,
    ),
    (
        "leerplicht",
        pb::Category::Vrijstelling5a,
        pb::Sector::Vso,
        12,
    ),
    (
        "leerplicht",
        pb::Category::Vrijstelling5a,
        pb::Sector::Vo,
        7,
    ),
    (
        "leerplicht",
        pb::Category::Vrijstelling5a,
        pb::Sector::Mbo,
        3,
    ),
    // ASSUMPTION: no 5b or 5c figures in the seeds.
    (
        "leerplicht",
        pb::Category::Vrijstelling5b,
        pb::Sector::Po,
        4,
    ),
    (
        "leerplicht",
        pb::Category::Vrijstelling5c,
        pb::Sector::Vo,
        18,
    ),
    // ASSUMPTION: Leerplicht's own LRV dossiers, part of them the SWV VO's pupils.
    ("leerplicht", pb::Category::Lrv, pb::Sector::Vo, 60),
    ("leerplicht", pb::Category::Lrv, pb::Sector::Po, 20),
];

/// The schools a signal of this sector names, by BRIN of the region's SWVs and MBO.
fn schools_of(sector: pb::Sector) -> &'static [&'static str] {
    match sector {
        pb::Sector::Po | pb::Sector::Sbo | pb::Sector::So => &["10PA01", "10PB01", "10PC03"],
        pb::Sector::Mbo => &["25MA01", "25MB02"],
        pb::Sector::Unspecified => &[],
        _ => &["20VA01", "20VB01", "20VC02", "20VD01"],
    }
}

fn age_for(sector: pb::Sector, rng: &mut StdRng) -> u32 {
    match sector {
        pb::Sector::Po | pb::Sector::Sbo | pb::Sector::So => rng.random_range(5..=11),
        pb::Sector::Mbo => rng.random_range(16..=18),
        pb::Sector::Unspecified => rng.random_range(5..=17),
        _ => rng.random_range(12..=17),
    }
}

/// The age of the `i`-th child of a plan line: AV 43 of 87 in the PO age [002:1409].
fn age_of(category: pb::Category, sector: pb::Sector, i: usize, rng: &mut StdRng) -> u32 {
    match category {
        pb::Category::Av if i < 43 => rng.random_range(5..=11),
        pb::Category::Av => rng.random_range(12..=17),
        _ => age_for(sector, rng),
    }
}

/// The start of the last complete school year before `today` (25 August), so the demo's
/// population covers a whole school year and its three reference dates.
pub fn last_school_year_start(today: NaiveDate) -> NaiveDate {
    let year = today.year() - 1 - i32::from(today.month() < 8);
    NaiveDate::from_ymd_opt(year, 8, 25).unwrap_or(today)
}

/// The reference dates (1 November, 1 February, 1 June) of the school year starting then.
pub fn reference_dates(school_year_start: NaiveDate) -> Vec<NaiveDate> {
    let y = school_year_start.year();
    [(y, 11, 1), (y + 1, 2, 1), (y + 1, 6, 1)]
        .iter()
        .filter_map(|(y, m, d)| NaiveDate::from_ymd_opt(*y, *m, *d))
        .collect()
}

/// The synthetic population: per node, the records its own system pushes, spread from the start
/// of the last complete school year until today, with offers, returns and closings along the
/// way. Deterministic for a seed and a day. About a fifth of the pupils Leerplicht knows of (LRV
/// by residence) are the same children the SWV VO reports by school, so the nodes share
/// pseudonyms.
pub fn population(seed: u64, today: NaiveDate) -> BTreeMap<&'static str, Vec<pb::SignalRecord>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let school_year_start = last_school_year_start(today);
    let span = (today - school_year_start).num_days().max(1) as u64;
    let mut out: BTreeMap<&'static str, Vec<pb::SignalRecord>> = BTreeMap::new();
    let mut swv_vo_pupils: Vec<Pupil> = Vec::new();
    for (node, category, sector, count) in PLAN {
        for i in 0..count {
            // Leerplicht Groningen holds Groningen residents only; the school-based nodes hold
            // pupils from the whole catchment (about 40% of VO pupils in the city live
            // elsewhere, [003:18]).
            let resident = node == "leerplicht";
            let shared = resident
                && category == pb::Category::Lrv
                && sector == pb::Sector::Vo
                && !swv_vo_pupils.is_empty();
            let pupil = if shared {
                swv_vo_pupils[rng.random_range(0..swv_vo_pupils.len())].clone()
            } else {
                Pupil {
                    bsn: synthetic_bsn(&mut rng),
                    municipality: if resident {
                        "GM0014"
                    } else {
                        pick_municipality(&mut rng)
                    },
                    age: age_of(category, sector, i, &mut rng),
                }
            };
            if node == "swv-vo" && category == pb::Category::Lrv && pupil.municipality == "GM0014" {
                swv_vo_pupils.push(pupil.clone());
            }
            let absent_since = today - Days::new(rng.random_range(0..span));
            let days_absent = (today - absent_since).num_days() as u64;
            let roll = rng.random_range(0..100);
            let some_day_since =
                |rng: &mut StdRng| absent_since + Days::new(rng.random_range(0..=days_absent));
            // Offers: most with a place and the parents' agreement; some on a waiting list (no
            // place yet, e.g. the ISK: "10 ... op de wachtlijst voor ISK" [002:1428]), which do
            // not stop the clock. ASSUMPTION: the shares.
            let waiting = (70..=74).contains(&roll);
            let (status, offer_date, closed_on) = match roll {
                0..=54 => (pb::Status::Open, None, None),
                55..=74 => (pb::Status::Aanbod, Some(some_day_since(&mut rng)), None),
                75..=89 => {
                    let offer = some_day_since(&mut rng);
                    let back =
                        offer + Days::new(rng.random_range(0..=(today - offer).num_days() as u64));
                    (pb::Status::Teruggeleid, Some(offer), Some(back))
                }
                _ => (pb::Status::Gesloten, None, Some(some_day_since(&mut rng))),
            };
            let is_av = category == pb::Category::Av;
            let is_exemption = matches!(
                category,
                pb::Category::Vrijstelling5a
                    | pb::Category::Vrijstelling5b
                    | pb::Category::Vrijstelling5c
            );
            let temporary = is_exemption && rng.random_range(0..100) < 60;
            let exemption_term = match (is_exemption, temporary) {
                (false, _) => pb::ExemptionTerm::Unspecified,
                (true, true) => pb::ExemptionTerm::Temporary,
                (true, false) => pb::ExemptionTerm::Permanent,
            };
            let exemption_end =
                temporary.then(|| absent_since + Days::new(rng.random_range(60..400)));
            let schools = schools_of(sector);
            let school = if category == pb::Category::Av || schools.is_empty() {
                String::new()
            } else {
                schools[rng.random_range(0..schools.len())].to_owned()
            };
            out.entry(node).or_default().push(pb::SignalRecord {
                source_record_id: format!(
                    "{node}-{}-{i:04}",
                    category
                        .as_str_name()
                        .trim_start_matches("CATEGORY_")
                        .to_lowercase()
                ),
                pupil_id: pupil.bsn.clone(),
                category: category.into(),
                sector: sector.into(),
                residence_municipality: pupil.municipality.to_owned(),
                school,
                absent_since: absent_since.to_string(),
                status: status.into(),
                offer_date: offer_date.map(|d| d.to_string()).unwrap_or_default(),
                age: pupil.age,
                address_under_investigation: is_av && rng.random_range(0..100) < 8,
                exemption_5c_requested: is_av && rng.random_range(0..100) < 6,
                awaiting_mbo_intake: is_av && pupil.age >= 16 && rng.random_range(0..100) < 40,
                exemption_term: exemption_term.into(),
                exemption_end: exemption_end.map(|d| d.to_string()).unwrap_or_default(),
                closed_on: closed_on.map(|d| d.to_string()).unwrap_or_default(),
                age_on: String::new(),
                offer_kind: offer_date.map_or(0, |_| {
                    match category {
                        pb::Category::LangdurigZiek => pb::OfferKind::OnderwijsEnZorg,
                        _ => pb::OfferKind::Onderwijs,
                    }
                    .into()
                }),
                offer_place_from: offer_date
                    .filter(|_| !waiting)
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                offer_parents_agreed: offer_date.is_some(),
            });
        }
    }
    out
}

use chrono::Datelike as _;

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    // Without --data-dir the nodes' data, the audit logs and the charts go to a new directory
    // under the system's temp dir that is kept after the demo, so they can be looked at.
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => tempfile::Builder::new()
            .prefix("pactgate-demo-")
            .tempdir()?
            .keep(),
    };
    let key = demo_key(args.seed);
    println!(
        "pactgate demo: one node per partner on loopback, development certificates, seed {}",
        args.seed
    );
    println!("data directory: {}\n", data_dir.display());

    std::fs::create_dir_all(&data_dir)?;
    let policy = data_dir.join("policy.toml");
    std::fs::write(&policy, DEMO_POLICY)?;
    let service = DemoPseudonymiser::start(&data_dir, &key, &policy).await?;
    println!(
        "  started the pseudonymisation service (a trusted third party, OIN {}) on {}; it alone \
         holds the pseudonymisation key, the nodes only its public key {}",
        service.config.oin, service.config.address, service.config.public_keys[0]
    );
    let nodes = start_federation(&data_dir, &service.config).await?;

    let today = chrono::Utc::now().date_naive();
    let population = population(args.seed, today);
    println!("\nEach partner's own system pushes its signals to its own node (BSNs are pseudonymised on arrival, through the pseudonymisation service):");
    for node in &nodes {
        let records = population.get(node.party.file).cloned().unwrap_or_default();
        if records.is_empty() {
            println!(
                "  {:<11} holds no signals of its own (joins case meetings only)",
                node.party.file
            );
            continue;
        }
        let mut intake = intake_client(node.addr, node.party.file).await?;
        let rows = records
            .into_iter()
            .enumerate()
            .map(|(i, r)| (i + 1, Ok(r)))
            .collect::<Vec<_>>();
        let total = rows.len();
        let started = std::time::Instant::now();
        let summary =
            push_rows(&mut intake, rows, 10_000, &indicatif::ProgressBar::hidden()).await?;
        println!(
            "  {:<11} pushed {total:>4} signals: {} stored, {} refused, acknowledged durable in {:.0?}",
            node.party.file,
            summary.accepted,
            summary.rejected.len(),
            started.elapsed()
        );
    }

    println!("\nWhat each node holds:");
    let mut all = Vec::new();
    for node in &nodes {
        let views = list_all(node.addr, node.party.file).await?;
        print_summary(node.party.file, &views);
        all.push((node.party.file, views));
    }
    print_shared_pupils(&all);
    print_refusal_example(&nodes).await?;
    pseudonymiser_story(&service.config, args.seed).await?;

    if let Some((file, views)) = all.iter().find(|(f, _)| *f == "swv-vo") {
        println!("\nA few signals as node {file} shows them (no BSN anywhere, only pseudonyms):");
        print!(
            "{}",
            crate::text::render_views(
                &views[..views.len().min(3)],
                crate::text::OutputFormat::Table
            )?
        );
    }

    let swv_vo_views = all
        .iter()
        .find(|(f, _)| *f == "swv-vo")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    exchange_story(&nodes, &swv_vo_views).await?;
    clock_story(&nodes, &data_dir, today).await?;
    let demo_pupil = population
        .get("swv-vo")
        .and_then(|records| {
            records.iter().find(|r| {
                r.category == i32::from(pb::Category::Lrv) && r.residence_municipality == "GM0014"
            })
        })
        .map(|r| r.pupil_id.clone());
    audit_story(&nodes, demo_pupil).await?;
    if args.console {
        serve_consoles(&nodes).await?;
    }

    for node in nodes {
        node.stop().await?;
    }
    service.stop().await?;
    println!(
        "\nAll nodes stopped cleanly. Each node's audit log, verified offline from its data dir:"
    );
    for file in DEMO_NODES {
        let dir = data_dir.join(file);
        print!("  {file:<11} ");
        verify_stopped(&dir)?;
    }
    print!("  {:<11} ", "pseudonymiser");
    verify_stopped(&data_dir.join("pseudonymiser"))?;
    println!(
        "\nThe nodes' data, audit logs and the report charts (report-g4.svg, report-groningen.svg) are in {}",
        data_dir.display()
    );
    Ok(())
}

/// The demo's consoles: the certificate's party file, the node it talks to, and the person
/// using it: the leerplichtambtenaar at the Leerplicht node, the gemeente's FG inspecting that
/// node, and a WIJ-medewerker at the WIJ node (a participant of the cases Leerplicht opens, who
/// accepts them and records the care offer).
pub const DEMO_CONSOLES: [(&str, &str, &str); 3] = [
    ("leerplicht", "leerplicht", "A. Bakker, leerplichtambtenaar"),
    (
        "fg",
        "leerplicht",
        "J. de Vries, functionaris gegevensbescherming",
    ),
    ("wij", "wij", "S. Visser, WIJ-medewerker"),
];

/// Serves a console on loopback for each of [`DEMO_CONSOLES`], each talking to its node, until
/// Ctrl-C; then stops them.
async fn serve_consoles(nodes: &[DemoNode]) -> anyhow::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut consoles = Vec::new();
    println!("\nThe web console, for the Leerplicht node, its FG and the WIJ node:");
    for (file, node_file, person) in DEMO_CONSOLES {
        let node = nodes
            .iter()
            .find(|n| n.party.file == node_file)
            .with_context(|| format!("no {node_file} node"))?;
        let setup = crate::console::ConsoleSetup {
            tls: dev_certs::material(file).context("no certificate")?,
            node: node.addr.to_string(),
            person: Some(person.to_owned()),
            network: false,
            fg: file == "fg",
            limits: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!(
            "  console {file:<11} {person:<46} http://{}/",
            listener.local_addr()?
        );
        let mut stopped = stopped.clone();
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        consoles.push(tokio::spawn(crate::console::serve(
            setup, listener, shutdown,
        )));
    }
    println!("Ctrl-C stops the consoles and the nodes.");
    let _ = tokio::signal::ctrl_c().await;
    println!("\nStopping the consoles and the nodes.");
    let _ = stop.send(true);
    for console in consoles {
        console.await??;
    }
    Ok(())
}

/// The covenant policy the demo's nodes run under, compiled in.
pub const DEMO_POLICY: &str = include_str!("../policies/groningen.toml");

/// The counting rules the demo's nodes use, compiled in.
pub const DEMO_COUNTING: &str = include_str!("../policies/counting.toml");

/// Starts every demo node on its own loopback port, each with all others as peers.
pub async fn start_federation(
    data_dir: &Path,
    pseudonymiser: &ServiceConfig,
) -> anyhow::Result<Vec<DemoNode>> {
    std::fs::create_dir_all(data_dir)?;
    let policy = data_dir.join("policy.toml");
    std::fs::write(&policy, DEMO_POLICY)?;
    let counting = data_dir.join("counting.toml");
    std::fs::write(&counting, DEMO_COUNTING)?;
    let mut bound = Vec::new();
    for file in DEMO_NODES {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let party = dev_party(file).with_context(|| format!("no development party {file}"))?;
        bound.push((party, listener));
    }
    let configs: Vec<PeerConfig> = bound
        .iter()
        .map(|(party, listener)| {
            Ok(PeerConfig {
                name: party.file.to_owned(),
                address: listener.local_addr()?.to_string(),
                oin: party.oin.to_owned(),
            })
        })
        .collect::<std::io::Result<_>>()?;
    let mut nodes = Vec::new();
    for (party, listener) in bound {
        let peers = configs
            .iter()
            .filter(|c| c.name != party.file)
            .cloned()
            .collect();
        let node = DemoNode::start(
            party.file,
            listener,
            data_dir,
            pseudonymiser,
            (Some(policy.clone()), Some(counting.clone())),
            peers,
        )
        .await?;
        println!(
            "  started node {:<11} {:<36} on {}",
            party.file, party.name, node.addr
        );
        nodes.push(node);
    }
    Ok(nodes)
}

/// The seed of the demo's pseudonymisation key, derived from the demo's seed (a real key comes
/// from `pactgate keygen` and stays at the pseudonymisation service; nodes get its public key).
fn demo_key(seed: u64) -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    StdRng::seed_from_u64(seed ^ 0x7061_6374_6761_7465).fill(&mut key);
    key
}

async fn list_all(addr: SocketAddr, as_party: &str) -> anyhow::Result<Vec<pb::SignalView>> {
    let mut intake = intake_client(addr, as_party).await?;
    let mut stream = intake.list(pb::ListRequest::default()).await?.into_inner();
    let mut views = Vec::new();
    while let Some(v) = stream.message().await? {
        views.extend(v.signal);
    }
    Ok(views)
}

fn print_summary(file: &str, views: &[pb::SignalView]) {
    if views.is_empty() {
        return;
    }
    let mut by_category: BTreeMap<String, [usize; 4]> = BTreeMap::new();
    for v in views {
        let row = by_category
            .entry(
                v.category()
                    .as_str_name()
                    .trim_start_matches("CATEGORY_")
                    .to_owned(),
            )
            .or_default();
        let col = (v.status - 1).clamp(0, 3) as usize;
        row[col] += 1;
    }
    let in_city = views
        .iter()
        .filter(|v| v.residence_municipality == "GM0014")
        .count();
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header([
        "category",
        "open",
        "aanbod",
        "teruggeleid",
        "gesloten",
        "total",
    ]);
    for (category, counts) in &by_category {
        let mut cells = vec![category.clone()];
        cells.extend(counts.iter().map(usize::to_string));
        cells.push(counts.iter().sum::<usize>().to_string());
        table.add_row(cells);
    }
    println!(
        "\n  node {file}: {} signals, {} pupils living in Groningen (GM0014), {} elsewhere",
        views.len(),
        in_city,
        views.len() - in_city
    );
    for line in table.to_string().lines() {
        println!("  {line}");
    }
}

fn print_shared_pupils(all: &[(&str, Vec<pb::SignalView>)]) {
    let mut holders: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (file, views) in all {
        for v in views {
            let entry = holders.entry(v.pupil_pseudonym.as_str()).or_default();
            if !entry.contains(file) {
                entry.push(file);
            }
        }
    }
    let shared = holders.values().filter(|h| h.len() > 1).count();
    println!(
        "\n  {} distinct pupils across all nodes; {shared} of them are known to more than one partner \
         (the same pseudonym at each node, so they can be joined without a BSN)",
        holders.len()
    );
}

/// Shows that another organisation cannot use a node's intake, and that a bad record is refused
/// with its index, field and reason while the rest is stored.
/// The pseudonymisation service's side: what it counted per node (as an FG inspects it), and a
/// partner refused once it asks for more pseudonyms than its daily quota.
async fn pseudonymiser_story(service: &ServiceConfig, seed: u64) -> anyhow::Result<()> {
    println!("\n== The pseudonymisation service ==");
    let fg = dev_certs::material("fg").context("no FG certificate")?;
    let channel =
        crate::client::connect_expecting(&service.address, &fg, Some(&service.oin)).await?;
    let mut inspect = pb::pseudonymiser_service_client::PseudonymiserServiceClient::new(channel);
    let log = inspect
        .inspect(pb::InspectRequest {
            first_page: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    println!("The FG inspects the service's own audit log: every batch with the asking node, its size and trace id (never an id or a pseudonym):");
    for e in log
        .entries
        .iter()
        .filter(|e| e.action == i32::from(pb::AuditAction::Pseudonymise))
    {
        println!(
            "  #{:<3} {:<36} {:>4} ids  trace {}  {}",
            e.seq,
            e.actor_name,
            e.count,
            &e.trace_id[..8.min(e.trace_id.len())],
            e.reason
        );
    }
    if let Some(c) = &log.checkpoint {
        println!("  {}", crate::text::checkpoint_line(c));
    }
    // WIJ holds no signals; its quota covers the few lookups it needs. A system that tries the
    // BSN space is refused early, and seen.
    let wij = dev_certs::material("wij").context("no WIJ certificate")?;
    let client = PseudonymiserClient::connect_lazy(service, &wij)?;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0057_494a);
    let ids: Vec<PupilId> = (0..2_500)
        .filter_map(|_| PupilId::parse(&synthetic_bsn(&mut rng)).ok())
        .collect();
    let trace = crate::trace::TraceContext::from_metadata(&tonic::metadata::MetadataMap::new());
    let first = client.pseudonymise_batch(&ids[..500], &trace).await?;
    println!(
        "\nWIJ's system looks up {} children: counted against its daily quota, answered",
        first.len()
    );
    match client.pseudonymise_batch(&ids, &trace).await {
        Err(e) => println!("WIJ's system then asks for {} more at once: {e}", ids.len()),
        Ok(more) => println!(
            "WIJ's system asked for {} more and was NOT refused",
            more.len()
        ),
    }
    Ok(())
}

async fn print_refusal_example(nodes: &[DemoNode]) -> anyhow::Result<()> {
    let Some(swv) = nodes.iter().find(|n| n.party.file == "swv-vo") else {
        return Ok(());
    };
    let mut as_wij = intake_client(swv.addr, "wij").await?;
    let refused = as_wij.list(pb::ListRequest::default()).await;
    if let Err(status) = refused {
        println!(
            "\n  WIJ asks the SWV VO node's intake directly: {:?}: {}",
            status.code(),
            status.message()
        );
    }
    let mut own = intake_client(swv.addr, "swv-vo").await?;
    let bad = pb::SignalRecord {
        source_record_id: "demo-bad-1".into(),
        pupil_id: "123456789".into(),
        category: pb::Category::Lrv.into(),
        sector: pb::Sector::Vo.into(),
        residence_municipality: "GM0014".into(),
        school: "20VA01".into(),
        absent_since: "2031-02-30".into(),
        status: pb::Status::Open.into(),
        age: 14,
        ..Default::default()
    };
    let report = own
        .push(tokio_stream::iter([pb::PushRequest::from(bad)]))
        .await?
        .into_inner();
    for r in report.rejected {
        println!("  a record with a mistyped BSN is refused: {}", r.reason);
    }
    Ok(())
}

fn node<'a>(nodes: &'a [DemoNode], file: &str) -> anyhow::Result<&'a DemoNode> {
    nodes
        .iter()
        .find(|n| n.party.file == file)
        .with_context(|| format!("no demo node {file}"))
}

/// A claim under a routine flow.
fn flow_claim(role: &str, basis: &str, purpose: &str, flow: &str, actor: &str) -> pb::AccessClaim {
    pb::AccessClaim {
        role: role.into(),
        legal_basis: basis.into(),
        purpose: purpose.into(),
        actor: actor.into(),
        context: Some(pb::access_claim::Context::RoutineFlow(flow.into())),
    }
}

/// A claim in a case.
fn case_claim(
    role: &str,
    basis: &str,
    purpose: &str,
    case: &pb::Case,
    actor: &str,
) -> pb::AccessClaim {
    pb::AccessClaim {
        role: role.into(),
        legal_basis: basis.into(),
        purpose: purpose.into(),
        actor: actor.into(),
        context: Some(pb::access_claim::Context::CaseRef(pb::CaseRef {
            meeting_type: case.meeting_type.clone(),
            case_id: case.case_id.clone(),
        })),
    }
}

/// The GGD school doctor's claim in a case.
fn doctor_claim(case: &pb::Case) -> pb::AccessClaim {
    case_claim(
        "jeugdarts",
        "jw-jgz-verzuim",
        "jgz-advies",
        case,
        "jeugdarts dr. P. Visser",
    )
}

/// Asks every peer through the node of `file`, as that node's own organisation.
pub async fn federated(
    nodes: &[DemoNode],
    file: &str,
    claim: pb::AccessClaim,
    filter: pb::QueryFilter,
) -> anyhow::Result<pb::QueryPeersResponse> {
    let n = node(nodes, file)?;
    let tls = dev_certs::material(file).context("unknown party")?;
    let channel = crate::client::connect(&n.addr.to_string(), &tls).await?;
    let response = pb::federation_service_client::FederationServiceClient::new(channel)
        .query_peers(pb::QueryPeersRequest {
            claim: Some(claim),
            filter: Some(filter),
            timeout_ms: 3000,
        })
        .await?
        .into_inner();
    Ok(response)
}

/// One line per peer: how many signals, of which categories, living where, which fields.
fn print_answers(response: &pb::QueryPeersResponse, show_failures: bool) {
    for answer in &response.answers {
        let Some(r) = &answer.response else { continue };
        let mut categories: BTreeMap<String, usize> = BTreeMap::new();
        let mut places: BTreeMap<String, usize> = BTreeMap::new();
        for s in &r.signals {
            *categories
                .entry(
                    s.category()
                        .as_str_name()
                        .trim_start_matches("CATEGORY_")
                        .to_owned(),
                )
                .or_default() += 1;
            *places.entry(s.residence_municipality.clone()).or_default() += 1;
        }
        let fmt = |m: &BTreeMap<String, usize>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "    {:<11} {:>4} signals  [{}]",
            answer.peer,
            r.signals.len(),
            fmt(&categories)
        );
        if !r.signals.is_empty() {
            println!(
                "                living in: {}",
                if places.keys().all(String::is_empty) {
                    "(withheld)".to_owned()
                } else {
                    fmt(&places)
                }
            );
            println!(
                "                fields shared: {}",
                r.disclosed_fields.join(", ")
            );
            println!(
                "                rule: {}; processing activity {}",
                r.rule, r.processing_activity
            );
        }
    }
    if show_failures {
        for f in &response.failures {
            println!("    {:<11} {}: {}", f.peer, f.code, f.message);
        }
    }
}

/// The exchanges of the covenant: a routine flow across the federation, a case meeting where
/// each role sees only its own data categories, and refused requests with their reasons.
async fn exchange_story(nodes: &[DemoNode], swv_vo_views: &[pb::SignalView]) -> anyhow::Result<()> {
    println!("\n== Exchange under the covenant (policies/groningen.toml) ==");
    println!("\n1. Leerplicht Groningen asks every partner for the absence of pupils living in Groningen");
    println!("   (routine flow verzuimmelding, as leerplichtambtenaar, Leerplichtwet art. 21, purpose verzuimaanpak):");
    let response = federated(
        nodes,
        "leerplicht",
        flow_claim(
            "leerplichtambtenaar",
            "lpw-art21",
            "verzuimaanpak",
            "verzuimmelding",
            "leerplichtambtenaar A. Bakker",
        ),
        pb::QueryFilter::default(),
    )
    .await?;
    print_answers(&response, false);
    let outside = response
        .answers
        .iter()
        .flat_map(|a| a.response.iter().flat_map(|r| r.signals.iter()))
        .filter(|s| s.residence_municipality != "GM0014")
        .count();
    println!("    => {outside} signals of pupils living outside Groningen came back (the flow is scoped to the caller's residents)");
    for f in &response.failures {
        println!("    {:<11} refused: {}", f.peer, f.message);
    }

    println!("\n2. The SWV VO opens an AOJ-team case for three pupils, for the school doctor's advice (purpose jgz-advies),");
    println!("   with Leerplicht, WIJ and the GGD at the table; each accepts it at its own node before it counts there:");
    let mut pupils: Vec<String> = Vec::new();
    for wanted in [
        pb::Category::LangdurigZiek,
        pb::Category::LangdurigZiek,
        pb::Category::Lrv,
    ] {
        if let Some(v) = swv_vo_views
            .iter()
            .find(|v| v.category() == wanted && !pupils.contains(&v.pupil_pseudonym))
        {
            pupils.push(v.pupil_pseudonym.clone());
        }
    }
    let swv = node(nodes, "swv-vo")?;
    let tls = dev_certs::material("swv-vo").context("unknown party")?;
    let mut cases = pb::cases_service_client::CasesServiceClient::new(
        crate::client::connect(&swv.addr.to_string(), &tls).await?,
    );
    let participants: Vec<String> = ["leerplicht", "wij", "ggd"]
        .iter()
        .filter_map(|f| dev_party(f).map(|p| p.oin.to_owned()))
        .collect();
    let opened = cases
        .open_case(pb::OpenCaseRequest {
            meeting_type: "aoj-team-vo".into(),
            purpose: "jgz-advies".into(),
            pupil_pseudonyms: pupils,
            participant_oins: participants,
            actor: "zorgcoordinator M. Smit".into(),
        })
        .await?
        .into_inner();
    let case = opened.case.context("no case returned")?;
    println!(
        "    case {} opened, lead {}, shared with {} participants' nodes",
        case.case_id,
        case.lead.as_ref().map(|l| l.name.as_str()).unwrap_or("?"),
        case.participants.len() - opened.not_notified.len()
    );
    for participant in ["leerplicht", "wij", "ggd"] {
        accept_case(nodes, participant, &case).await?;
    }
    println!("    accepted at the nodes of leerplicht, wij and ggd");

    println!("\n   The GGD school doctor asks (jeugdarts, a Jeugdwet task on absence with the parents' consent, purpose jgz-advies;\n   not the Wpg: \"Vanuit de reguliere basistaken (vanuit de wet Wpg) heeft de JGZ geen rol in verzuim\"):");
    let ggd = federated(
        nodes,
        "ggd",
        doctor_claim(&case),
        pb::QueryFilter::default(),
    )
    .await?;
    print_answers(&only_with_signals(ggd), false);
    print_refusal(
        nodes,
        "wij",
        case_claim(
            "wij-medewerker",
            "jw-7-4",
            "zorg-en-ondersteuning",
            &case,
            "WIJ-medewerker K. de Boer",
        ),
        "\n   The WIJ worker asks for its own purpose zorg-en-ondersteuning, which is not the case's",
    )
    .await?;
    println!("    => the GGD doctor sees the long-term sickness signals (special category, AVG art. 9); the WIJ worker sees nothing of this case.");
    care_offer_story(nodes, &case).await?;

    advice_story(nodes, &case).await?;

    println!("\n3. Refused requests, each with the part that did not match:");
    let wij_claims_leerplicht = flow_claim(
        "wij-medewerker",
        "jw-7-4",
        "verzuimaanpak",
        "verzuimmelding",
        "WIJ-medewerker K. de Boer",
    );
    print_refusal(
        nodes,
        "wij",
        wij_claims_leerplicht,
        "WIJ claims the Leerplicht routine flow at swv-vo",
    )
    .await?;
    let wrong_basis = flow_claim(
        "leerplichtambtenaar",
        "jw-7-4",
        "verzuimaanpak",
        "verzuimmelding",
        "leerplichtambtenaar A. Bakker",
    );
    print_refusal(
        nodes,
        "leerplicht",
        wrong_basis,
        "Leerplicht under the Jeugdwet instead of the Leerplichtwet",
    )
    .await?;
    cases
        .close_case(pb::CloseCaseRequest {
            case_id: case.case_id.clone(),
            actor: "zorgcoordinator M. Smit".into(),
        })
        .await?;
    print_refusal(
        nodes,
        "ggd",
        doctor_claim(&case),
        "the GGD doctor after the SWV closed the case",
    )
    .await?;
    Ok(())
}

/// WIJ records a care offer for the case's last pupil (the policy lets WIJ in an AOJ case):
/// agreed with the parents and with a place, it stops the pupil's clock at the SWV.
async fn care_offer_story(nodes: &[DemoNode], case: &pb::Case) -> anyhow::Result<()> {
    let Some(pupil) = case.pupil_pseudonyms.last() else {
        return Ok(());
    };
    let wij = node(nodes, "wij")?;
    let tls = dev_certs::material("wij").context("unknown party")?;
    let mut cases = pb::cases_service_client::CasesServiceClient::new(
        crate::client::connect(&wij.addr.to_string(), &tls).await?,
    );
    let today = chrono::Utc::now().date_naive();
    let answer = cases
        .record_offer(pb::RecordOfferRequest {
            offer: Some(pb::CaseOffer {
                case_id: case.case_id.clone(),
                pupil_pseudonym: pupil.clone(),
                kind: pb::OfferKind::Zorg.into(),
                offered_on: (today - chrono::Days::new(7)).to_string(),
                place_from: (today - chrono::Days::new(2)).to_string(),
                parents_agreed: true,
                ..Default::default()
            }),
            actor: "WIJ-medewerker K. de Boer".into(),
        })
        .await?
        .into_inner();
    println!(
        "\n   WIJ records a care offer (zorgaanbod) for {pupil} in the case: a place from {}, agreed with the parents;\n   audited at WIJ and told to {} other participants' nodes, where it stops the child's clock (pactgate case offer)",
        today - chrono::Days::new(2),
        case.participants.len().saturating_sub(answer.not_notified.len())
    );
    for f in &answer.not_notified {
        println!("    {:<11} not told: {}", f.peer, f.message);
    }
    Ok(())
}

/// Accepts a case at `file`'s node, as that node's own organisation.
async fn accept_case(nodes: &[DemoNode], file: &str, case: &pb::Case) -> anyhow::Result<()> {
    let n = node(nodes, file)?;
    let tls = dev_certs::material(file).context("unknown party")?;
    let channel = crate::client::connect(&n.addr.to_string(), &tls).await?;
    pb::cases_service_client::CasesServiceClient::new(channel)
        .accept_case(pb::AcceptCaseRequest {
            case_id: case.case_id.clone(),
            actor: format!("voorzitter AOJ-team namens {file}"),
        })
        .await
        .with_context(|| format!("{file} could not accept the case"))?;
    Ok(())
}

/// The 5a advice as the seed describes it: Leerplicht asks the SWV about one child (a case of
/// meeting advies-5a, opened by the gemeente), the SWV's node answers within that case only.
async fn advice_story(nodes: &[DemoNode], aoj: &pb::Case) -> anyhow::Result<()> {
    let Some(child) = aoj.pupil_pseudonyms.first().cloned() else {
        return Ok(());
    };
    println!("\n   Leerplicht asks the SWV VO for advice on a vrijstelling 5 onder a for ONE child (meeting advies-5a;");
    println!("   a local and G4 agreement, not a legal duty: \"deze verplichting komt er niet\"):");
    let lp = node(nodes, "leerplicht")?;
    let tls = dev_certs::material("leerplicht").context("unknown party")?;
    let mut cases = pb::cases_service_client::CasesServiceClient::new(
        crate::client::connect(&lp.addr.to_string(), &tls).await?,
    );
    let opened = cases
        .open_case(pb::OpenCaseRequest {
            meeting_type: "advies-5a".into(),
            purpose: "advies-vrijstelling-5a".into(),
            pupil_pseudonyms: vec![child],
            participant_oins: dev_party("swv-vo")
                .map(|p| p.oin.to_owned())
                .into_iter()
                .collect(),
            actor: "leerplichtambtenaar A. Bakker".into(),
        })
        .await?
        .into_inner();
    let case = opened.case.context("no case returned")?;
    accept_case(nodes, "swv-vo", &case).await?;
    println!(
        "    request {} opened by {} about 1 pupil (audited as the request), accepted by the SWV VO",
        case.case_id,
        case.lead.as_ref().map(|l| l.name.as_str()).unwrap_or("?")
    );
    let answer = federated(
        nodes,
        "leerplicht",
        case_claim(
            "leerplichtambtenaar",
            "lpw-art5-onder-a",
            "advies-vrijstelling-5a",
            &case,
            "leerplichtambtenaar A. Bakker",
        ),
        pb::QueryFilter::default(),
    )
    .await?;
    print_answers(&only_with_signals(answer), false);
    println!("    => the SWV answers about that one child only (audited as a disclosure); no routine flow gives");
    println!("       Leerplicht standing access to health data.");
    cases
        .close_case(pb::CloseCaseRequest {
            case_id: case.case_id.clone(),
            actor: "leerplichtambtenaar A. Bakker".into(),
        })
        .await?;
    Ok(())
}

/// Asks through `asker`'s node and prints why swv-vo refused.
async fn print_refusal(
    nodes: &[DemoNode],
    asker: &str,
    claim: pb::AccessClaim,
    label: &str,
) -> anyhow::Result<()> {
    let response = federated(nodes, asker, claim, pb::QueryFilter::default()).await?;
    if let Some(f) = response.failures.iter().find(|f| f.peer == "swv-vo") {
        println!("    {label}: {}: {}", f.code, f.message);
    }
    Ok(())
}

/// Only the peers that returned signals (the others hold nothing of the case's pupils).
fn only_with_signals(mut response: pb::QueryPeersResponse) -> pb::QueryPeersResponse {
    response
        .answers
        .retain(|a| a.response.as_ref().is_some_and(|r| !r.signals.is_empty()));
    response
}

/// The monitoring claim Leerplicht uses to ask for suppressed counts.
fn monitoring_claim() -> pb::AccessClaim {
    flow_claim(
        "monitor",
        "lpw-art25",
        "monitoring",
        "monitoring",
        "beleidsmedewerker monitor",
    )
}

fn leerplicht_claim() -> pb::AccessClaim {
    flow_claim(
        "leerplichtambtenaar",
        "lpw-art21",
        "verzuimaanpak",
        "verzuimmelding",
        "leerplichtambtenaar A. Bakker",
    )
}

async fn clock_client(
    nodes: &[DemoNode],
    file: &str,
) -> anyhow::Result<pb::clock_service_client::ClockServiceClient<tonic::transport::Channel>> {
    let n = node(nodes, file)?;
    let tls = dev_certs::material(file).context("unknown party")?;
    Ok(pb::clock_service_client::ClockServiceClient::new(
        crate::client::connect(&n.addr.to_string(), &tls).await?,
    ))
}

/// The region's total of a row at a date under a report (TOTAL column).
fn region_total(report: &pb::ReportResponse, date: &str, row: &str) -> String {
    if report.unavailable_rows.iter().any(|r| r == row) {
        return "niet beschikbaar".into();
    }
    report
        .cells
        .iter()
        .find(|c| c.date == date && c.scope == "region" && c.row == row && c.column == "TOTAL")
        .and_then(|c| c.count)
        .map(|n| n.to_string())
        .unwrap_or_else(|| "-".into())
}

/// The clock: Leerplicht's due list across the federation, the G4 report at the three
/// reference dates under two definitions side by side, the charts, and suppressed counts.
async fn clock_story(nodes: &[DemoNode], data_dir: &Path, today: NaiveDate) -> anyhow::Result<()> {
    println!("\n== The three-month clock ==");
    let mut clock = clock_client(nodes, "leerplicht").await?;
    let due = clock
        .due(pb::DueRequest {
            claim: Some(leerplicht_claim()),
            at: String::new(),
            timeout_ms: 3000,
        })
        .await?
        .into_inner();
    let mut bands: BTreeMap<&str, usize> = BTreeMap::new();
    for line in &due.lines {
        *bands
            .entry(match pb::DueBand::try_from(line.band) {
                Ok(pb::DueBand::OverThreeMonths) => "over three months",
                Ok(pb::DueBand::Weeks12) => "past 12 weeks",
                Ok(pb::DueBand::Weeks10) => "past 10 weeks",
                Ok(pb::DueBand::Weeks8) => "past 8 weeks",
                _ => "past 4 weeks",
            })
            .or_default() += 1;
    }
    println!(
        "\n4. Leerplicht Groningen's due list at {} (its own signals and what the SWVs and the MBO share under verzuimmelding,\n   one line per child, joined on the pseudonym): {}",
        due.at,
        bands.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ")
    );
    let shown = pb::DueResponse {
        at: due.at.clone(),
        lines: due
            .lines
            .iter()
            .filter(|l| l.band != i32::from(pb::DueBand::OverThreeMonths))
            .take(8)
            .cloned()
            .collect(),
        failures: Vec::new(),
    };
    println!("   The children nearest the deadline (not yet over three months), each with the region's next step:");
    for line in crate::text::render_due(&shown).lines().take(14) {
        println!("   {line}");
    }

    let dates: Vec<String> = reference_dates(last_school_year_start(today))
        .iter()
        .map(|d| d.to_string())
        .collect();
    println!("\n5. The G4 result schema at the reference dates {} (region, all partners' signals as Leerplicht may see them):", dates.join(", "));
    let mut reports = Vec::new();
    for rule in ["g4", "groningen"] {
        let report = clock
            .report(pb::ReportRequest {
                at: dates.clone(),
                rule: rule.into(),
                claim: Some(leerplicht_claim()),
                timeout_ms: 3000,
            })
            .await?
            .into_inner();
        let chart = data_dir.join(format!("report-{rule}.svg"));
        std::fs::write(&chart, &report.svg)?;
        reports.push((rule, report));
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    let mut header = vec!["row".to_owned()];
    for (rule, _) in &reports {
        for d in &dates {
            header.push(format!("{rule} {d}"));
        }
    }
    table.set_header(header);
    for row in [
        "AV_PO",
        "AV_VO",
        "LRV_PO",
        "LRV_VO",
        "TOTAL_NOT_ATTENDING",
        "WITHOUT_OFFER",
        "VRIJSTELLING_5A_TEMPORARY",
        "VRIJSTELLING_5A_PERMANENT",
        "VRIJSTELLING_5C",
        "LANGDURIG_ZIEK",
    ] {
        let mut cells = vec![row.to_owned()];
        for (_, report) in &reports {
            for d in &dates {
                cells.push(region_total(report, d, row));
            }
        }
        table.add_row(cells);
    }
    for line in table.to_string().lines() {
        println!("   {line}");
    }
    if let Some((_, g4)) = reports.first() {
        println!(
            "   Per 1.000 leerlingen over de woonachtige leerplichtigen van: {} (alleen de gemeenten die de gegevens dekken).",
            g4.denominator_municipalities.join(", ")
        );
        println!("   Rows not shared under verzuimmelding are 'niet beschikbaar', never 0.");
        if let Some(at) = g4.table.find("== Pact-indicatoren") {
            for line in g4.table[at..].lines() {
                println!("   {line}");
            }
        }
    }
    println!("   => the same signals, two definitions: g4 counts AV after four weeks, Groningen only after three months.");
    println!("   Charts written: report-g4.svg and report-groningen.svg in the data directory.");

    println!("\n6. The monitor of Gemeente Groningen asks each partner for counts only (routine flow monitoring, rule g4):");
    let tls = dev_certs::material("leerplicht").context("unknown party")?;
    for holder in ["swv-vo", "swv-po", "mbo"] {
        let n = node(nodes, holder)?;
        let mut counts = pb::counts_service_client::CountsServiceClient::new(
            crate::client::connect(&n.addr.to_string(), &tls).await?,
        );
        let answer = counts
            .counts(pb::CountsRequest {
                claim: Some(monitoring_claim()),
                at: dates.clone(),
                rule: "g4".into(),
            })
            .await?
            .into_inner();
        let hidden = answer.cells.iter().filter(|c| c.count.is_none()).count();
        let small = answer
            .cells
            .iter()
            .filter_map(|c| c.count)
            .filter(|n| *n > 0 && *n < answer.threshold)
            .count();
        println!(
            "   {holder:<7} {} cells, {hidden} suppressed (below {} or recomputable from a total), {small} visible cells below the threshold",
            answer.cells.len(),
            answer.threshold
        );
    }
    println!(
        "   => only counts left the partners' nodes, no pupil-level data. Each partner counts the"
    );
    println!(
        "      children it knows: a child known to two partners is in both, so these are never"
    );
    println!("      added up into a regional total (per partner, not a sum).");
    Ok(())
}

/// The audit: the FG of Leerplicht verifies the node's log against its peers and asks the access
/// report of one demo pupil.
async fn audit_story(nodes: &[DemoNode], pupil_bsn: Option<String>) -> anyhow::Result<()> {
    println!("\n== The audit log ==");
    // Let the nodes sign a checkpoint of everything so far and their peers cosign it.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let leerplicht = node(nodes, "leerplicht")?;
    let tls = dev_certs::material("fg").context("no FG certificate")?;
    let mut audit = pb::audit_service_client::AuditServiceClient::new(
        crate::client::connect(&leerplicht.addr.to_string(), &tls).await?,
    );
    let verified = audit.verify(pb::VerifyRequest {}).await?.into_inner();
    println!(
        "\n7. The FG of Gemeente Groningen verifies Leerplicht's audit log over mTLS: {} ({} entries, {} checkpoint signatures, {} cosigned checkpoints incl. what the peers hold)",
        if verified.ok { "verified".to_owned() } else { format!("FAILED at seq {}: {}", verified.first_bad_seq, verified.problem) },
        verified.entries,
        verified.checkpoints_checked,
        verified.cosignatures_checked
    );
    if let Some(bsn) = pupil_bsn {
        let report = audit
            .access_report(pb::AccessReportRequest {
                pupil_id: bsn,
                pupil_pseudonym: String::new(),
            })
            .await?
            .into_inner();
        println!("\n8. A parent asks what was shared about their child (AVG art. 15); the FG enters the BSN, the node has the pseudonymisation service pseudonymise it:");
        println!(
            "   pupil {}: {} audit entries at Leerplicht's node",
            report.pupil_pseudonym,
            report.entries.len()
        );
        for line in crate::text::render_entries(&report.entries).lines() {
            println!("   {line}");
        }
        if let Some(c) = &report.checkpoint {
            println!("   {}", crate::text::checkpoint_line(c));
        }
    }
    let mut as_wij = pb::audit_service_client::AuditServiceClient::new(
        crate::client::connect(
            &leerplicht.addr.to_string(),
            &dev_certs::material("wij").context("no wij certificate")?,
        )
        .await?,
    );
    if let Err(status) = as_wij.verify(pb::VerifyRequest {}).await {
        println!(
            "\n   WIJ tries to read Leerplicht's audit log: {:?}: {}",
            status.code(),
            status.message()
        );
    }
    Ok(())
}

/// Verifies a stopped node's (or the service's) audit log from its data dir, through the audit
/// module's offline verifier, and prints the outcome.
fn verify_stopped(data_dir: &Path) -> anyhow::Result<()> {
    let key_file = data_dir.join(crate::node::AUDIT_KEY_FILE);
    let pkcs8 = std::fs::read(&key_file)?;
    let key = crate::audit::SigningKey::from_pkcs8(&pkcs8)?;
    let verified = crate::audit::verify_stopped(&data_dir.join("store"), key, Vec::new())?;
    let response = crate::rpc::convert::verify_response(verified.result);
    match crate::text::verify_text(&verified.origin, &response) {
        Ok(line) => println!("{line}"),
        Err(problem) => anyhow::bail!("{problem}"),
    }
    Ok(())
}
