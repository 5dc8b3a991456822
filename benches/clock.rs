//! The three-month clock's costs beside their bare limits, from one run, with the ratios: the G4
//! report over a city's worth of signals (`Store::list_for_clock`, which reads the signals' clock
//! copies, + `clock::report` at three reference dates under `g4`) beside a bare sled scan of the
//! same signals' entries; `ClockService/Due` over three peers on loopback
//! beside a direct single `ExchangeService/Query`. Measures only; never changes what it measures.
//!
//! Run with `cargo bench --bench clock`. `CLOCK_BENCH_SIGNALS` changes the number of signals
//! (default 100,000), `CLOCK_BENCH_CALLS` the measured Due calls (default 200, after 50 warm-up).

mod common;

use anyhow::{ensure, Context as _};
use chrono::{Days, NaiveDate};
use common::{bench_key, claim, connect, env_count, loadavg, ms, oin, per_sec, target, Summary};
use pactgate::clock::{self, Column, CountingRules, Row, REGION};
use pactgate::demo::dev_certs;
use pactgate::node::NodeSetup;
use pactgate::pb;
use pactgate::peers::PeerConfig;
use pactgate::pseudonym::{PseudonymKey, PupilId};
use pactgate::pseudonymiser::ServiceConfig;
use pactgate::signal::{Category, ExemptionTerm, OfferKind, Sector, Signal, Status};
use pactgate::store::{SignalFilter, Store};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Passes of the report figures (they alternate; the best and the median are shown).
const PASSES: usize = 5;
/// Calls of each kind before the clock runs.
const WARMUP: usize = 50;
/// The peers that hold signals, and the asker.
const HOLDERS: [&str; 3] = ["swv-vo", "swv-po", "mbo"];
const ASKER: &str = "leerplicht";
/// Of the signals, the share (in %) about a child another signal already names.
const SHARED_PERCENT: u32 = 15;
/// Seed of the bench's pseudonym key.
const KEY_SEED: u64 = 0x0063_6c6f_636b;

// ---------------------------------------------------------------------------------------------
// (1) The G4 report over a city's signals.

/// Category, sector, weight (per mille) and the schools (BRIN prefixes of counting.toml's SWVs)
/// after the demo's magnitudes (Groningen 2023 evaluation), scaled to a G4 city.
const MIX: [(Category, Sector, u32, &[&str]); 13] = [
    (
        Category::Lrv,
        Sector::Vo,
        270,
        &["20VA01", "20VB01", "20VC02", "20VD01"],
    ),
    (
        Category::Lrv,
        Sector::Po,
        90,
        &["10PA01", "10PB01", "10PC03"],
    ),
    (Category::Lrv, Sector::Mbo, 100, &["25MA01", "25MB02"]),
    (
        Category::Verzuim,
        Sector::Vo,
        140,
        &["20VA01", "20VB01", "20VC02", "20VD01"],
    ),
    (Category::Verzuim, Sector::Mbo, 70, &["25MA01", "25MB02"]),
    (
        Category::LangdurigZiek,
        Sector::Vo,
        26,
        &["20VA01", "20VB01"],
    ),
    (Category::LangdurigZiek, Sector::So, 10, &["10PC03"]),
    (Category::Schorsing, Sector::Vo, 14, &["20VA01", "20VC02"]),
    (Category::Verwijdering, Sector::Vso, 6, &["20VD01"]),
    (Category::Av, Sector::Vo, 100, &[]),
    (Category::Vrijstelling5a, Sector::So, 150, &[]),
    (Category::Vrijstelling5b, Sector::Po, 5, &[]),
    (Category::Vrijstelling5c, Sector::Vo, 19, &[]),
];

struct Child {
    pseudonym: String,
    municipality: &'static str,
    age: u32,
}

fn pick_mix(rng: &mut StdRng) -> (Category, Sector, &'static [&'static str]) {
    let total: u32 = MIX.iter().map(|m| m.2).sum();
    let mut roll = rng.random_range(0..total);
    for (c, s, w, schools) in MIX {
        if roll < w {
            return (c, s, schools);
        }
        roll -= w;
    }
    (MIX[0].0, MIX[0].1, MIX[0].3)
}

fn pick_municipality(rng: &mut StdRng) -> &'static str {
    let m = pactgate::demo::MUNICIPALITIES;
    let total: u32 = m.iter().map(|x| x.2).sum();
    let mut roll = rng.random_range(0..total);
    for (code, _, weight) in m {
        if roll < weight {
            return code;
        }
        roll -= weight;
    }
    m[0].0
}

fn age_for(sector: Sector, rng: &mut StdRng) -> u32 {
    match sector {
        Sector::Po | Sector::Sbo | Sector::So => rng.random_range(5..=12),
        Sector::Mbo => rng.random_range(16..=18),
        _ => rng.random_range(12..=17),
    }
}

/// `n` signals as a city's partners hold them: spread from the start of the last complete school
/// year until today, with offers, returns and closings as in `demo::population`, and about
/// `SHARED_PERCENT`% about a child another signal already names (one pseudonym, several signals).
fn city_signals(n: usize, today: NaiveDate) -> anyhow::Result<Vec<Signal>> {
    let key = PseudonymKey::from_bytes(1, &bench_key(KEY_SEED));
    let mut rng = StdRng::seed_from_u64(0x6734);
    let start = pactgate::demo::last_school_year_start(today);
    let span = (today - start).num_days().max(1) as u64;
    let now = chrono::Utc::now();
    let mut children: Vec<Child> = Vec::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (category, sector, schools) = pick_mix(&mut rng);
        let shared = !children.is_empty() && rng.random_range(0..100) < SHARED_PERCENT;
        let child = if shared {
            rng.random_range(0..children.len())
        } else {
            let id = PupilId::parse(&pactgate::demo::synthetic_bsn(&mut rng))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            children.push(Child {
                pseudonym: key.pseudonym(&id),
                municipality: pick_municipality(&mut rng),
                age: age_for(sector, &mut rng),
            });
            children.len() - 1
        };
        let c = &children[child];
        let absent_since = today - Days::new(rng.random_range(0..span));
        let days_absent = (today - absent_since).num_days() as u64;
        let some_day =
            |rng: &mut StdRng| absent_since + Days::new(rng.random_range(0..=days_absent));
        let (status, offer_date, closed_on) = match rng.random_range(0..100) {
            0..=54 => (Status::Open, None, None),
            55..=74 => (Status::Aanbod, Some(some_day(&mut rng)), None),
            75..=89 => {
                let offer = some_day(&mut rng);
                let back =
                    offer + Days::new(rng.random_range(0..=(today - offer).num_days() as u64));
                (Status::Teruggeleid, Some(offer), Some(back))
            }
            _ => (Status::Gesloten, None, Some(some_day(&mut rng))),
        };
        let is_av = category == Category::Av;
        let is_exemption = matches!(
            category,
            Category::Vrijstelling5a | Category::Vrijstelling5b | Category::Vrijstelling5c
        );
        let temporary = is_exemption && rng.random_range(0..100) < 60;
        let school = if schools.is_empty() {
            None
        } else {
            Some(
                schools[rng.random_range(0..schools.len())]
                    .parse()
                    .expect("a school code"),
            )
        };
        out.push(Signal {
            source_record_id: format!(
                "{}-{}-{i:06}",
                sector.code().to_lowercase(),
                category.code().to_lowercase()
            ),
            pupil_pseudonym: c.pseudonym.parse().expect("a pseudonym"),
            category,
            sector: Some(sector),
            residence_municipality: c.municipality.parse().expect("a CBS code"),
            school,
            absent_since,
            status,
            offer_date,
            age: c.age,
            updated_at: now,
            address_under_investigation: is_av && rng.random_range(0..100) < 8,
            exemption_5c_requested: is_av && rng.random_range(0..100) < 6,
            awaiting_mbo_intake: is_av && c.age >= 16 && rng.random_range(0..100) < 40,
            exemption_term: match (is_exemption, temporary) {
                (false, _) => None,
                (true, true) => Some(ExemptionTerm::Temporary),
                (true, false) => Some(ExemptionTerm::Permanent),
            },
            exemption_end: temporary.then(|| absent_since + Days::new(rng.random_range(60..400))),
            closed_on,
            age_on: None,
            offer_kind: offer_date.map(|_| OfferKind::Onderwijs),
            offer_place_from: offer_date,
            offer_parents_agreed: offer_date.is_some(),
        });
    }
    Ok(out)
}

struct ReportFigures {
    full: Vec<Duration>,
    list: Vec<Duration>,
    report: Vec<Duration>,
    scan: Vec<Duration>,
    scan_bytes: usize,
    copy_bytes: usize,
    children: usize,
    totals: Vec<(NaiveDate, u64, u64)>,
    cells: usize,
}

fn report_figures(
    dir: &Path,
    n: usize,
    dates: &[NaiveDate],
    rules: &CountingRules,
    today: NaiveDate,
) -> anyhow::Result<ReportFigures> {
    let signals = city_signals(n, today)?;
    let children = signals
        .iter()
        .map(|s| s.pupil_pseudonym.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len();
    let store = Store::open(&dir.join("city"))?;
    for chunk in signals.chunks(1_000) {
        store.upsert_batch(chunk)?;
    }
    drop(signals);
    ensure!(store.count() == n, "{} signals stored", store.count());
    let rule = rules.rule("g4").context("no rule g4 in counting.toml")?;
    // The bare limit reads the same tree, the signal entries only (`s\0<record>`, see store.rs).
    let tree = store.db().open_tree("signals")?;

    let mut f = ReportFigures {
        full: Vec::new(),
        list: Vec::new(),
        report: Vec::new(),
        scan: Vec::new(),
        scan_bytes: 0,
        copy_bytes: 0,
        children,
        totals: Vec::new(),
        cells: 0,
    };
    // One warm-up of each, then the two alternate pass by pass.
    for pass in 0..=PASSES {
        let t0 = Instant::now();
        let own = store.list_for_clock()?;
        let listed = t0.elapsed();
        let held: Vec<(String, Signal)> = own.into_iter().map(|s| ("self".to_owned(), s)).collect();
        let counted = Instant::now();
        let report = clock::report(&held, dates, rule, rules);
        let done = Instant::now();
        ensure!(held.len() == n, "listed {}", held.len());

        let started = Instant::now();
        let mut bytes = 0usize;
        for kv in tree.scan_prefix([b's', 0]) {
            let (k, v) = kv?;
            bytes += k.len() + v.len();
        }
        let scanned = started.elapsed();
        if pass == 0 {
            f.totals = dates
                .iter()
                .map(|&d| {
                    let get = |c| {
                        report
                            .count(d, REGION, Row::TotalNotAttending, c)
                            .unwrap_or(0)
                    };
                    (d, get(Column::Total), get(Column::Longer))
                })
                .collect();
            f.cells = report.cells().len();
            f.scan_bytes = bytes;
            f.copy_bytes = tree
                .scan_prefix([b'k', 0])
                .map(|kv| kv.map(|(k, v)| k.len() + v.len()))
                .sum::<Result<usize, _>>()?;
            // The clock copies hold exactly what the JSON holds.
            let mut json = store.list(&SignalFilter::default())?;
            let mut copies = store.list_for_clock()?;
            json.sort_by(|a, b| a.source_record_id.cmp(&b.source_record_id));
            copies.sort_by(|a, b| a.source_record_id.cmp(&b.source_record_id));
            ensure!(json == copies, "the clock copies differ from the JSON");
            continue;
        }
        black_box(report);
        f.full.push(done - t0);
        f.list.push(listed);
        f.report.push(done - counted);
        f.scan.push(scanned);
    }
    Ok(f)
}

fn best(v: &[Duration]) -> Duration {
    v.iter().copied().min().unwrap_or_default()
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// (2) ClockService/Due over three peers.

/// Starts a node with the policy, the counting rules and the production checkpoint interval.
fn start(
    file: &str,
    listener: tokio::net::TcpListener,
    dir: &Path,
    files: &(PathBuf, PathBuf),
    peers: Vec<PeerConfig>,
    pseudonymiser: &ServiceConfig,
) -> anyhow::Result<common::Running> {
    let tls = dev_certs::material(file).context("no dev certificate")?;
    let mut setup = NodeSetup::new(tls, pseudonymiser.clone(), dir.join(file));
    setup.policy = Some(files.0.clone());
    setup.counting = Some(files.1.clone());
    setup.peers = peers;
    common::serve_node(setup, listener)
}

struct DueFigures {
    due: Summary,
    federated: Summary,
    fdatasync: Summary,
    direct: Summary,
    lines: usize,
    pushed: Vec<(String, usize)>,
    shared: Vec<(String, usize)>,
    direct_signals: usize,
    calls: usize,
}

async fn due_figures(dir: &Path, calls: usize, today: NaiveDate) -> anyhow::Result<DueFigures> {
    let files = (dir.join("policy.toml"), dir.join("counting.toml"));
    std::fs::write(&files.0, pactgate::demo::DEMO_POLICY)?;
    std::fs::write(&files.1, pactgate::demo::DEMO_COUNTING)?;
    let population = pactgate::demo::population(11, today);

    let (service, pseudonymiser) =
        common::start_pseudonymiser(&dir.join("pseudonymiser"), &bench_key(KEY_SEED)).await?;
    let mut nodes = Vec::new();
    let mut peers = Vec::new();
    let mut addrs = Vec::new();
    for file in HOLDERS {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        peers.push(PeerConfig {
            name: file.to_owned(),
            address: listener.local_addr()?.to_string(),
            oin: oin(file).to_owned(),
        });
        let node = start(file, listener, dir, &files, Vec::new(), &pseudonymiser)?;
        addrs.push(node.addr);
        nodes.push(node);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let node = start(ASKER, listener, dir, &files, peers, &pseudonymiser)?.with_service(service);
    let asker = node.addr;
    nodes.push(node);

    // Each partner's own system pushes its part of the demo population to its own node.
    let mut pushed = Vec::new();
    for (file, addr) in HOLDERS.iter().zip(&addrs).chain([(&ASKER, &asker)]) {
        let records = population.get(file).cloned().unwrap_or_default();
        let expected = records.len();
        let mut intake = pb::signal_intake_service_client::SignalIntakeServiceClient::new(
            connect(*addr, file, None).await?,
        );
        let report = intake
            .push(tokio_stream::iter(
                records.into_iter().map(pb::PushRequest::from),
            ))
            .await?
            .into_inner();
        ensure!(
            report.accepted as usize == expected && report.rejected.is_empty(),
            "{file}: pushed {expected}, accepted {}",
            report.accepted
        );
        pushed.push((file.to_string(), expected));
    }

    let mut due = pb::clock_service_client::ClockServiceClient::new(
        connect(asker, ASKER, Some(ASKER)).await?,
    );
    let mut federation = pb::federation_service_client::FederationServiceClient::new(
        connect(asker, ASKER, Some(ASKER)).await?,
    );
    let mut direct = pb::exchange_service_client::ExchangeServiceClient::new(
        connect(addrs[0], ASKER, Some(HOLDERS[0])).await?,
    );
    let due_request = pb::DueRequest {
        claim: Some(claim()),
        at: String::new(),
        timeout_ms: 3000,
    };
    let federated_request = pb::QueryPeersRequest {
        claim: Some(claim()),
        filter: Some(pb::QueryFilter::default()),
        timeout_ms: 3000,
    };
    let direct_request = pb::QueryRequest {
        claim: Some(claim()),
        filter: Some(pb::QueryFilter::default()),
    };

    let mut d_times = Vec::with_capacity(calls);
    let mut f_times = Vec::with_capacity(calls);
    let mut x_times = Vec::with_capacity(calls);
    let mut s_times = Vec::with_capacity(calls);
    let sync_file = dir.join("fdatasync-probe");
    let page = vec![7u8; 4096];
    let mut lines = 0;
    let mut shared = Vec::new();
    let mut direct_signals = 0;
    // Interleaved call by call, so that the figures see the same load from outside.
    for i in 0..WARMUP + calls {
        let started = Instant::now();
        let answer = due.due(due_request.clone()).await?.into_inner();
        let d = started.elapsed();
        ensure!(
            answer.failures.is_empty(),
            "due: peers failed: {:?}",
            answer
                .failures
                .iter()
                .map(|f| &f.message)
                .collect::<Vec<_>>()
        );
        ensure!(!answer.lines.is_empty(), "due: no lines");
        lines = answer.lines.len();

        let started = Instant::now();
        let answer = federation
            .query_peers(federated_request.clone())
            .await?
            .into_inner();
        let f = started.elapsed();
        ensure!(
            answer.failures.is_empty() && answer.answers.len() == HOLDERS.len(),
            "federated query failed"
        );
        shared = answer
            .answers
            .iter()
            .map(|a| {
                (
                    a.peer.clone(),
                    a.response.as_ref().map_or(0, |r| r.signals.len()),
                )
            })
            .collect();

        let started = Instant::now();
        let answer = direct.query(direct_request.clone()).await?.into_inner();
        let x = started.elapsed();
        direct_signals = answer.signals.len();
        ensure!(direct_signals > 0, "direct: no signals");

        // The floor of every audited request: one fdatasync (`NodeContext::record` -> `Store::sync`).
        let started = Instant::now();
        {
            use std::io::Write as _;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&sync_file)?;
            file.write_all(&page)?;
            file.sync_data()?;
        }
        let s = started.elapsed();
        if i >= WARMUP {
            d_times.push(d);
            f_times.push(f);
            x_times.push(x);
            s_times.push(s);
        }
    }
    drop((due, federation, direct));
    for node in nodes.into_iter().rev() {
        node.stop().await?;
    }
    Ok(DueFigures {
        due: Summary::of(d_times),
        federated: Summary::of(f_times),
        fdatasync: Summary::of(s_times),
        direct: Summary::of(x_times),
        lines,
        pushed,
        shared,
        direct_signals,
        calls,
    })
}

// ---------------------------------------------------------------------------------------------

fn main() -> anyhow::Result<()> {
    let n = env_count("CLOCK_BENCH_SIGNALS", 100_000)?;
    let calls = env_count("CLOCK_BENCH_CALLS", 200)?;
    let today = chrono::Utc::now().date_naive();
    common::print_header("clock", true);
    let rules_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/counting.toml");
    let rules = CountingRules::load(&rules_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let dates = pactgate::demo::reference_dates(pactgate::demo::last_school_year_start(today));
    let tmp = tempfile::tempdir()?;
    println!("temp dir: {}", tmp.path().display());

    let r = report_figures(tmp.path(), n, &dates, &rules, today)?;
    println!();
    println!(
        "(1) G4 report under g4 at {} over {n} signals ({} children), a sled Store in the temp \
         dir; {PASSES} passes after 1 warm-up, alternating; best / median:",
        dates
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        r.children
    );
    let row = |name: &str, v: &[Duration]| {
        println!(
            "    {name:<60} {:>8.1} / {:>8.1} ms  {:>10.0} / {:>10.0} signals/s",
            ms(best(v)),
            ms(median(v)),
            per_sec(n, best(v)),
            per_sec(n, median(v))
        )
    };
    row(
        &format!(
            "bare sled scan of the signal entries ({:.1} MB)",
            r.scan_bytes as f64 / 1e6
        ),
        &r.scan,
    );
    row("Store::list_for_clock + clock::report (full)", &r.full);
    row(
        &format!(
            "    of which Store::list_for_clock (scan + decode, {:.1} MB)",
            r.copy_bytes as f64 / 1e6
        ),
        &r.list,
    );
    row("    of which clock::report", &r.report);
    let ratio = per_sec(n, best(&r.full)) / per_sec(n, best(&r.scan));
    let ratio_median = per_sec(n, median(&r.full)) / per_sec(n, median(&r.scan));
    println!(
        "    ratio full / bare scan: best {ratio:.2}, median {ratio_median:.2}   target >= 0.5: {}",
        target(ratio >= 0.5)
    );
    println!(
        "    report: {} cells; region total not attending (total / longer than 3 months): {}",
        r.cells,
        r.totals
            .iter()
            .map(|(d, t, l)| format!("{d} {t} / {l}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let d = runtime.block_on(due_figures(tmp.path(), calls, today))?;
    println!();
    println!(
        "(2) ClockService/Due at {today} on loopback: leerplicht node with three peers ({}), claim \
         verzuimmelding; {} calls each after {WARMUP} warm-up, interleaved:",
        HOLDERS.join(", "),
        d.calls
    );
    println!(
        "    pushed: {}; shared under the claim: {}",
        d.pushed
            .iter()
            .map(|(f, n)| format!("{f} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        d.shared
            .iter()
            .map(|(f, n)| format!("{f} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "    {:<60} {:>8} {:>8} {:>8} {:>8}",
        "figure", "p50 ms", "p99 ms", "mean ms", "max ms"
    );
    let row = |name: &str, s: &Summary| {
        println!(
            "    {name:<60} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            ms(s.p50),
            ms(s.p99),
            ms(s.mean),
            ms(s.max)
        )
    };
    row(
        "diagnostic: bare 4 KiB append + fdatasync (same disk)",
        &d.fdatasync,
    );
    row(
        &format!(
            "(a) direct ExchangeService/Query leerplicht -> swv-vo, {} signals",
            d.direct_signals
        ),
        &d.direct,
    );
    row(
        "diagnostic: FederationService/QueryPeers via the leerplicht node",
        &d.federated,
    );
    row(&format!("(b) ClockService/Due, {} lines", d.lines), &d.due);
    println!(
        "    ratio due / direct: p50 {:.2}, p99 {:.2}; due / federated query: p50 {:.2}",
        ms(d.due.p50) / ms(d.direct.p50),
        ms(d.due.p99) / ms(d.direct.p99),
        ms(d.due.p50) / ms(d.federated.p50)
    );
    println!("load average after: {}", loadavg());
    Ok(())
}
