//! Exchange under the covenant: the policy decision (`Policy::evaluate`) beside a bare hash-map
//! lookup of a rule, and a federated query over three peer nodes beside a direct single-node
//! query, all from one run, with the ratios. Measures only; never changes what it measures.
//!
//! Run with `cargo bench --bench exchange`. `EXCHANGE_BENCH_QUERIES` overrides the number of
//! measured queries of each kind (default 300, after 50 of warm-up).

mod common;

use anyhow::ensure;
use common::{bench_key, claim, connect, env_count, loadavg, ms, ns, oin, target, Summary};
use pactgate::demo::DemoNode;
use pactgate::pb;
use pactgate::pb::exchange_service_client::ExchangeServiceClient;
use pactgate::pb::federation_service_client::FederationServiceClient;
use pactgate::peers::PeerConfig;
use pactgate::policy::{AccessRequest, Context, Policy};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Calls timed together as one sample of the decision figures.
const CALLS_PER_SAMPLE: usize = 1_000;
/// Samples of the decision figures (each figure gets this many).
const SAMPLES: usize = 2_000;
/// Samples of the per-kind breakdown (diagnostic).
const KIND_SAMPLES: usize = 300;
/// Queries of each kind before the clock runs.
const WARMUP: usize = 50;
/// The nodes that hold signals, and how many of their signals the leerplicht flow may see.
const HOLDERS: [(&str, usize); 3] = [("swv-vo", 34), ("swv-po", 33), ("mbo", 33)];
/// The asker.
const ASKER: &str = "leerplicht";
/// Per holder: signals of GM0014 residents in categories the flow does not cover (health).
const WITHHELD_IN_CITY: usize = 4;
/// Per holder: signals of pupils living elsewhere.
const ELSEWHERE: usize = 60;
/// What the federated answer must hold.
const EXPECTED: usize = 100;
/// Seed of the bench's pseudonym key.
const KEY_SEED: u64 = 0x6578_6368_616e_6765;

// ---------------------------------------------------------------------------------------------
// (1) The policy decision.

/// One request of the mix, and what the policy must answer.
struct Case {
    kind: &'static str,
    request: AccessRequest<'static>,
    permit: bool,
}

fn flow(
    caller: &str,
    holder: &str,
    role: &'static str,
    basis: &'static str,
) -> AccessRequest<'static> {
    AccessRequest {
        caller_oin: oin(caller),
        holder_oin: oin(holder),
        role,
        legal_basis: basis,
        purpose: "verzuimaanpak",
        context: Context::RoutineFlow {
            flow: "verzuimmelding",
        },
    }
}

fn seat(
    caller: &str,
    holder: &str,
    role: &'static str,
    basis: &'static str,
    purpose: &'static str,
) -> AccessRequest<'static> {
    AccessRequest {
        caller_oin: oin(caller),
        holder_oin: oin(holder),
        role,
        legal_basis: basis,
        purpose,
        context: Context::Case {
            meeting: "aoj-team-vo",
        },
    }
}

/// A realistic mix: mostly the routine flow (the daily traffic), the AOJ-team's participants,
/// and a few denials (wrong hat, wrong flow, no seat, unknown caller).
fn mix() -> Vec<Case> {
    let permit = |kind, request| Case {
        kind,
        request,
        permit: true,
    };
    let deny = |kind, request| Case {
        kind,
        request,
        permit: false,
    };
    let lp = "leerplichtambtenaar";
    let mut unknown = flow("leerplicht", "swv-vo", lp, "lpw-art21");
    unknown.caller_oin = "00000099000000000099";
    vec![
        permit("flow permit", flow("leerplicht", "swv-vo", lp, "lpw-art21")),
        permit("flow permit", flow("leerplicht", "swv-po", lp, "lpw-art21")),
        permit("flow permit", flow("leerplicht", "mbo", lp, "web-8-3")),
        permit("flow permit", flow("leerplicht", "swv-vo", lp, "lpw-art18")),
        permit("flow permit", flow("leerplicht", "swv-vo", lp, "lpw-art21")),
        permit("flow permit", flow("leerplicht", "swv-po", lp, "lpw-art21")),
        permit("flow permit", flow("leerplicht", "mbo", lp, "lpw-art21")),
        permit("flow permit", flow("leerplicht", "swv-vo", lp, "avg-6-1-c")),
        permit(
            "case permit",
            seat("ggd", "swv-vo", "jeugdarts", "wpg-5", "jgz-advies"),
        ),
        permit(
            "case permit",
            seat(
                "wij",
                "swv-vo",
                "wij-medewerker",
                "jw-7-4",
                "zorg-en-ondersteuning",
            ),
        ),
        permit(
            "case permit",
            seat("leerplicht", "swv-vo", lp, "lpw-art22", "verzuimaanpak"),
        ),
        permit(
            "case permit",
            seat(
                "swv-vo",
                "leerplicht",
                "zorgcoordinator",
                "wvo-17a",
                "passend-aanbod",
            ),
        ),
        permit(
            "case permit",
            seat("ggd", "wij", "jeugdarts", "avg-9-2-h", "jgz-advies"),
        ),
        permit(
            "case permit",
            seat("leerplicht", "ggd", lp, "avg-6-1-c", "passend-aanbod"),
        ),
        deny("denial", flow("leerplicht", "swv-vo", lp, "jw-7-4")),
        deny("denial", flow("wij", "swv-vo", "wij-medewerker", "jw-7-4")),
        deny(
            "denial",
            seat("wij", "swv-vo", "jeugdarts", "wpg-5", "jgz-advies"),
        ),
        deny("denial", unknown),
    ]
}

/// The same question as a bare hash-map lookup: one key per request made of the same parts,
/// a map holding the permitted ones.
fn key_of(r: &AccessRequest<'_>) -> String {
    let context = match r.context {
        Context::RoutineFlow { flow } => flow,
        Context::Case { meeting } => meeting,
    };
    format!(
        "{}/{}/{}/{}/{}/{}",
        r.caller_oin, r.holder_oin, r.role, r.legal_basis, r.purpose, context
    )
}

/// A batch of `CALLS_PER_SAMPLE` decisions over the requests, cycling; time per call.
fn evaluate_batch(policy: &Policy, requests: &[AccessRequest<'_>]) -> Duration {
    let started = Instant::now();
    for r in requests.iter().cycle().take(CALLS_PER_SAMPLE) {
        black_box(policy.evaluate(black_box(r)));
    }
    started.elapsed() / CALLS_PER_SAMPLE as u32
}

fn lookup_batch(map: &HashMap<String, &'static str>, keys: &[String]) -> Duration {
    let started = Instant::now();
    for k in keys.iter().cycle().take(CALLS_PER_SAMPLE) {
        black_box(map.get(black_box(k.as_str())));
    }
    started.elapsed() / CALLS_PER_SAMPLE as u32
}

struct DecisionFigures {
    evaluate: Summary,
    lookup: Summary,
    kinds: Vec<(&'static str, usize, Summary)>,
    permits: usize,
    denials: usize,
}

fn decisions(policy: &Policy) -> anyhow::Result<DecisionFigures> {
    let mix = mix();
    for c in &mix {
        let decision = policy.evaluate(&c.request);
        ensure!(
            decision.is_permit() == c.permit,
            "{} {:?}: expected permit = {}, got {decision:?}",
            c.kind,
            c.request,
            c.permit
        );
    }
    let requests: Vec<AccessRequest<'static>> = mix.iter().map(|c| c.request).collect();
    let keys: Vec<String> = requests.iter().map(key_of).collect();
    let map: HashMap<String, &'static str> = mix
        .iter()
        .filter(|c| c.permit)
        .map(|c| (key_of(&c.request), c.kind))
        .collect();

    // Warm-up, then the two figures interleaved sample by sample so that both see the same load.
    for _ in 0..100 {
        evaluate_batch(policy, &requests);
        lookup_batch(&map, &keys);
    }
    let mut evaluate = Vec::with_capacity(SAMPLES);
    let mut lookup = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        evaluate.push(evaluate_batch(policy, &requests));
        lookup.push(lookup_batch(&map, &keys));
    }

    let mut kinds = Vec::new();
    for kind in ["flow permit", "case permit", "denial"] {
        let of_kind: Vec<AccessRequest<'static>> = mix
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| c.request)
            .collect();
        let samples = (0..KIND_SAMPLES)
            .map(|_| evaluate_batch(policy, &of_kind))
            .collect();
        kinds.push((kind, of_kind.len(), Summary::of(samples)));
    }
    Ok(DecisionFigures {
        evaluate: Summary::of(evaluate),
        lookup: Summary::of(lookup),
        kinds,
        permits: mix.iter().filter(|c| c.permit).count(),
        denials: mix.iter().filter(|c| !c.permit).count(),
    })
}

// ---------------------------------------------------------------------------------------------
// (2) The federated query.

/// Schools, sector, ages and the categories the flow covers, per holder.
fn profile(
    holder: &str,
) -> (
    &'static [&'static str],
    pb::Sector,
    std::ops::RangeInclusive<u32>,
    &'static [pb::Category],
) {
    match holder {
        "swv-vo" => (
            &["20VA01", "20VB01", "20VC02", "20VD01"],
            pb::Sector::Vo,
            12..=17,
            &[
                pb::Category::Lrv,
                pb::Category::Verzuim,
                pb::Category::Schorsing,
            ],
        ),
        "swv-po" => (
            &["10PA01", "10PB01", "10PC03"],
            pb::Sector::Po,
            5..=12,
            &[pb::Category::Lrv],
        ),
        _ => (
            &["25MA01", "25MB02"],
            pb::Sector::Mbo,
            16..=18,
            &[pb::Category::Lrv, pb::Category::Verzuim],
        ),
    }
}

/// A holder's own records: `visible` signals of GM0014 residents the flow covers, a few
/// long-term sick GM0014 residents it does not cover, and pupils living elsewhere.
fn records(holder: &str, visible: usize, seed: u64) -> Vec<pb::SignalRecord> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (schools, sector, ages, categories) = profile(holder);
    let today = chrono::Utc::now().date_naive();
    let elsewhere = ["GM1966", "GM1969", "GM1952"];
    let mut out = Vec::new();
    let mut push = |rng: &mut StdRng, i: usize, category: pb::Category, municipality: &str| {
        out.push(pb::SignalRecord {
            source_record_id: format!("{holder}/bench/{i:04}"),
            pupil_id: pactgate::demo::synthetic_bsn(rng),
            category: category.into(),
            sector: sector.into(),
            residence_municipality: municipality.to_owned(),
            school: schools[rng.random_range(0..schools.len())].to_owned(),
            absent_since: (today - chrono::Days::new(rng.random_range(1..90))).to_string(),
            status: pb::Status::Open.into(),
            age: rng.random_range(ages.clone()),
            ..Default::default()
        });
    };
    let mut i = 0;
    for _ in 0..visible {
        let category = categories[rng.random_range(0..categories.len())];
        push(&mut rng, i, category, "GM0014");
        i += 1;
    }
    for _ in 0..WITHHELD_IN_CITY {
        push(&mut rng, i, pb::Category::LangdurigZiek, "GM0014");
        i += 1;
    }
    for _ in 0..ELSEWHERE {
        let category = categories[rng.random_range(0..categories.len())];
        let m = elsewhere[rng.random_range(0..elsewhere.len())];
        push(&mut rng, i, category, m);
        i += 1;
    }
    out
}

struct QueryFigures {
    direct: Summary,
    federated: Summary,
    direct_signals: usize,
    federated_signals: usize,
    per_peer: Vec<(String, usize)>,
    federated_bytes: usize,
    direct_bytes: usize,
    queries: usize,
}

/// Checks a federated answer: every holder answered, 100 signals, all GM0014 residents.
fn check_federated(r: &pb::QueryPeersResponse) -> anyhow::Result<usize> {
    ensure!(
        r.failures.is_empty(),
        "peers failed: {:?}",
        r.failures
            .iter()
            .map(|f| format!("{} {}: {}", f.peer, f.code, f.message))
            .collect::<Vec<_>>()
    );
    ensure!(
        r.answers.len() == HOLDERS.len(),
        "{} answers",
        r.answers.len()
    );
    let signals: Vec<&pb::SignalView> = r
        .answers
        .iter()
        .flat_map(|a| a.response.iter().flat_map(|q| q.signals.iter()))
        .collect();
    ensure!(
        signals.len() == EXPECTED,
        "{} signals instead of {EXPECTED}",
        signals.len()
    );
    ensure!(
        signals.iter().all(|s| s.residence_municipality == "GM0014"),
        "a signal of a pupil living outside GM0014 came back"
    );
    Ok(signals.len())
}

async fn queries(dir: &Path, policy: PathBuf, queries: usize) -> anyhow::Result<QueryFigures> {
    let (service, pseudonymiser) =
        common::start_pseudonymiser(&dir.join("pseudonymiser"), &bench_key(KEY_SEED)).await?;
    let mut holders = Vec::new();
    let mut peers = Vec::new();
    for (file, _) in HOLDERS {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        peers.push(PeerConfig {
            name: file.to_owned(),
            address: listener.local_addr()?.to_string(),
            oin: oin(file).to_owned(),
        });
        holders.push(
            DemoNode::start(
                file,
                listener,
                dir,
                &pseudonymiser,
                (Some(policy.clone()), None),
                Vec::new(),
            )
            .await?,
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let asker = DemoNode::start(
        ASKER,
        listener,
        dir,
        &pseudonymiser,
        (Some(policy), None),
        peers,
    )
    .await?;

    // Each holder's own system pushes its signals to its own node.
    for (seed, (node, (file, visible))) in holders.iter().zip(HOLDERS).enumerate() {
        let mut intake = pb::signal_intake_service_client::SignalIntakeServiceClient::new(
            connect(node.addr, file, None).await?,
        );
        let records = records(file, visible, seed as u64 + 1);
        let expected = records.len();
        let report = intake
            .push(tokio_stream::iter(
                records.into_iter().map(pb::PushRequest::from),
            ))
            .await?
            .into_inner();
        ensure!(
            report.accepted as usize == expected && report.rejected.is_empty(),
            "{file}: pushed {expected}, accepted {}, refused {:?}",
            report.accepted,
            report
                .rejected
                .iter()
                .map(|r| &r.reason)
                .collect::<Vec<_>>()
        );
    }

    // The leerplicht system asks its own node, which asks the three holders.
    let mut federation =
        FederationServiceClient::new(connect(asker.addr, ASKER, Some(ASKER)).await?);
    // The bare limit: one hop from the leerplicht node's certificate to one holder.
    let mut direct =
        ExchangeServiceClient::new(connect(holders[0].addr, ASKER, Some(HOLDERS[0].0)).await?);
    let federated_request = pb::QueryPeersRequest {
        claim: Some(claim()),
        filter: Some(pb::QueryFilter::default()),
        timeout_ms: 3000,
    };
    let direct_request = pb::QueryRequest {
        claim: Some(claim()),
        filter: Some(pb::QueryFilter::default()),
    };

    for _ in 0..WARMUP {
        direct.query(direct_request.clone()).await?;
        check_federated(
            &federation
                .query_peers(federated_request.clone())
                .await?
                .into_inner(),
        )?;
    }
    // Interleaved one by one, so that both figures see the same load from outside.
    let mut d_times = Vec::with_capacity(queries);
    let mut f_times = Vec::with_capacity(queries);
    let mut last_direct = pb::QueryResponse::default();
    let mut last_federated = pb::QueryPeersResponse::default();
    for _ in 0..queries {
        let request = direct_request.clone();
        let started = Instant::now();
        let response = direct.query(request).await?.into_inner();
        d_times.push(started.elapsed());
        ensure!(
            response.signals.len() == HOLDERS[0].1,
            "direct: {} signals",
            response.signals.len()
        );
        last_direct = response;

        let request = federated_request.clone();
        let started = Instant::now();
        let response = federation.query_peers(request).await?.into_inner();
        f_times.push(started.elapsed());
        check_federated(&response)?;
        last_federated = response;
    }
    use prost::Message as _;
    let figures = QueryFigures {
        direct: Summary::of(d_times),
        federated: Summary::of(f_times),
        direct_signals: last_direct.signals.len(),
        federated_signals: check_federated(&last_federated)?,
        per_peer: last_federated
            .answers
            .iter()
            .map(|a| {
                (
                    a.peer.clone(),
                    a.response.as_ref().map_or(0, |r| r.signals.len()),
                )
            })
            .collect(),
        federated_bytes: last_federated.encoded_len(),
        direct_bytes: last_direct.encoded_len(),
        queries,
    };
    drop(federation);
    drop(direct);
    asker.stop().await?;
    for node in holders {
        node.stop().await?;
    }
    service.stop().await?;
    Ok(figures)
}

// ---------------------------------------------------------------------------------------------

fn main() -> anyhow::Result<()> {
    let n = env_count("EXCHANGE_BENCH_QUERIES", 300)?;
    common::print_header("exchange", true);

    let policy_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/groningen.toml");
    let policy = Policy::load(&policy_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("policy: {} ({})", policy_path.display(), policy.version());

    // (1) on a quiet process, before any node runs.
    let d = decisions(&policy)?;

    let tmp = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let q = runtime.block_on(queries(tmp.path(), policy_path.clone(), n))?;

    println!();
    println!(
        "(1) policy decision: {} requests ({} permits, {} denials), {CALLS_PER_SAMPLE} calls per \
         sample, {SAMPLES} samples per figure, interleaved; per call:",
        d.permits + d.denials,
        d.permits,
        d.denials
    );
    println!(
        "{:<58} {:>9} {:>9} {:>9} {:>9}",
        "figure", "p50 ns", "p99 ns", "mean ns", "max ns"
    );
    let row = |name: &str, s: &Summary| {
        println!(
            "{name:<58} {:>9.0} {:>9.0} {:>9.0} {:>9.0}",
            ns(s.p50),
            ns(s.p99),
            ns(s.mean),
            ns(s.max)
        )
    };
    row(
        "(a) bare HashMap<String, _>::get of the rule (SipHash)",
        &d.lookup,
    );
    row("(b) Policy::evaluate, the mix", &d.evaluate);
    for (kind, count, s) in &d.kinds {
        row(
            &format!("    diagnostic: evaluate, {kind} only ({count} requests)"),
            s,
        );
    }
    println!(
        "ratio evaluate / bare lookup: p50 {:.1}, p99 {:.1}",
        ns(d.evaluate.p50) / ns(d.lookup.p50),
        ns(d.evaluate.p99) / ns(d.lookup.p99)
    );
    println!(
        "target evaluate p50 < 2 us: {} ({:.0} ns)",
        target(d.evaluate.p50 < Duration::from_micros(2)),
        ns(d.evaluate.p50)
    );

    println!();
    println!(
        "(2) query over mTLS on loopback, routine flow verzuimmelding as leerplichtambtenaar \
         (lpw-art21, verzuimaanpak); {} queries each after {WARMUP} warm-up, interleaved:",
        q.queries
    );
    println!(
        "{:<58} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "figure", "p50 ms", "p99 ms", "mean ms", "min ms", "max ms"
    );
    let row = |name: &str, s: &Summary| {
        println!(
            "{name:<58} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            ms(s.p50),
            ms(s.p99),
            ms(s.mean),
            ms(s.min),
            ms(s.max)
        )
    };
    row(
        &format!(
            "(a) direct ExchangeService/Query leerplicht -> swv-vo, {} signals",
            q.direct_signals
        ),
        &q.direct,
    );
    row(
        &format!(
            "(b) FederationService/QueryPeers via leerplicht node, {} signals",
            q.federated_signals
        ),
        &q.federated,
    );
    println!(
        "    per peer: {}; response {} B federated, {} B direct",
        q.per_peer
            .iter()
            .map(|(p, n)| format!("{p} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        q.federated_bytes,
        q.direct_bytes
    );
    println!(
        "ratio federated / direct: p50 {:.2}, p99 {:.2} (two hops in series: about 2 is the floor)",
        ms(q.federated.p50) / ms(q.direct.p50),
        ms(q.federated.p99) / ms(q.direct.p99)
    );
    println!(
        "target federated p99 < 10 ms: {} ({:.2} ms)",
        target(q.federated.p99 < Duration::from_millis(10)),
        ms(q.federated.p99)
    );
    println!("load average after: {}", loadavg());
    Ok(())
}
