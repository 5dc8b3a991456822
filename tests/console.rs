//! The web console over real HTTP: its two modes (loopback with the configured person; TLS with
//! personal certificates), what it refuses, its security headers, and its pages against a real
//! node.

mod common;

use common::material;
use pactgate::console::{serve, ConsoleError, ConsoleSetup};
use pactgate::tls::TlsMaterial;
use reqwest::StatusCode;
use std::net::SocketAddr;

const PERSON: &str = "A. Bakker, leerplichtambtenaar";

/// A console in this test's runtime; stopped (and awaited) by [`TestConsole::stop`].
struct TestConsole {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ConsoleError>>,
}

impl TestConsole {
    async fn start(setup: ConsoleSetup) -> TestConsole {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(setup, listener, async move {
            let _ = stopped.await;
        }));
        TestConsole { addr, stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().expect("the console stops cleanly");
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn https(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }
}

fn workstation(party: &str, node: &str, person: Option<&str>) -> ConsoleSetup {
    ConsoleSetup {
        tls: material(party),
        node: node.to_owned(),
        person: person.map(str::to_owned),
        network: false,
        fg: false,
        limits: Default::default(),
    }
}

fn network(party: &str, node: &str) -> ConsoleSetup {
    ConsoleSetup {
        network: true,
        person: None,
        ..workstation(party, node, None)
    }
}

fn plain_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A browser with the TLS client certificate of `tls` (a person's or an organisation's).
fn tls_client(tls: &TlsMaterial) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls.client_config_tls13().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workstation_console_serves_the_configured_person_with_strict_headers() {
    let console = TestConsole::start(workstation("leerplicht", "127.0.0.1:9", Some(PERSON))).await;
    let answer = plain_client().get(console.url("/")).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let headers = answer.headers().clone();
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let html = answer.text().await.unwrap();
    assert!(html.contains(r#"<html lang="nl">"#));
    assert!(html.contains(r##"<a class="skip" href="#inhoud">Naar de inhoud</a>"##));
    assert!(
        html.contains(r#"<main id="inhoud""#) && html.contains("<nav aria-label=\"Hoofdmenu\">")
    );
    assert!(html.contains(PERSON), "the person from the configuration");
    assert!(html.contains("Gemeente Groningen Leerplicht RMC"));
    assert!(!html.contains("<script"), "no script");

    let css = plain_client()
        .get(console.url("/console.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert!(css.text().await.unwrap().contains(":focus-visible"));

    let missing = plain_client()
        .get(console.url("/nergens"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.headers().contains_key("content-security-policy"));
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workstation_console_answers_only_its_own_host_name() {
    let console = TestConsole::start(workstation("leerplicht", "127.0.0.1:9", Some(PERSON))).await;
    let rebound = plain_client()
        .get(console.url("/"))
        .header("host", "evil.example:80")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), StatusCode::MISDIRECTED_REQUEST);
    assert!(!rebound.text().await.unwrap().contains(PERSON));
    let localhost = plain_client()
        .get(format!("http://localhost:{}/", console.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(localhost.status(), StatusCode::OK);
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_without_tls_refuses_a_non_loopback_address_and_needs_a_person() {
    let open = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let refused = serve(
        workstation("leerplicht", "127.0.0.1:9", Some(PERSON)),
        open,
        async {},
    )
    .await;
    assert!(
        matches!(refused, Err(ConsoleError::NotLoopback(_))),
        "{refused:?}"
    );
    let loopback = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nobody = serve(
        workstation("leerplicht", "127.0.0.1:9", None),
        loopback,
        async {},
    )
    .await;
    assert!(matches!(nobody, Err(ConsoleError::NoPerson)), "{nobody:?}");
    let loopback = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let id_like = serve(
        workstation("leerplicht", "127.0.0.1:9", Some("A. Bakker 123456782")),
        loopback,
        async {},
    )
    .await;
    assert!(
        matches!(id_like, Err(ConsoleError::BadPerson(_))),
        "{id_like:?}"
    );
    let loopback = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut both = network("leerplicht", "127.0.0.1:9");
    both.person = Some(PERSON.into());
    let both = serve(both, loopback, async {}).await;
    assert!(matches!(both, Err(ConsoleError::PersonWithTls)), "{both:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_network_console_takes_the_person_from_the_personal_certificate() {
    let console = TestConsole::start(network("leerplicht", "127.0.0.1:9")).await;
    let bakker = tls_client(&material("persoon-leerplicht-bakker"));
    let answer = bakker.get(console.https("/")).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(answer.headers().contains_key("strict-transport-security"));
    let html = answer.text().await.unwrap();
    assert!(html.contains(PERSON), "the person from the certificate");

    // The organisation's own certificate names no person.
    let org = tls_client(&material("leerplicht"))
        .get(console.https("/"))
        .send()
        .await
        .unwrap();
    assert_eq!(org.status(), StatusCode::FORBIDDEN);
    let refused = org.text().await.unwrap();
    assert!(refused.contains("Geen toegang") && !refused.contains(PERSON));

    // A person of another organisation.
    let fg = tls_client(&material("persoon-fg-devries"))
        .get(console.https("/"))
        .send()
        .await
        .unwrap();
    assert_eq!(fg.status(), StatusCode::FORBIDDEN);

    // No client certificate: the handshake fails.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let anonymous = reqwest::Client::builder()
        .tls_certs_only(
            reqwest::Certificate::from_pem_bundle(&material("leerplicht").ca_pem).unwrap(),
        )
        .build()
        .unwrap()
        .get(console.https("/"))
        .send()
        .await;
    assert!(anonymous.is_err(), "{anonymous:?}");

    // Plain HTTP to a TLS console gets nothing.
    let plain = plain_client().get(console.url("/")).send().await;
    assert!(plain.is_err() || plain.unwrap().status() != StatusCode::OK);
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_personal_certificate_is_refused_at_the_node() {
    let node = common::TestNode::start("leerplicht").await;
    let refused = pactgate::client::connect(
        &node.addr().to_string(),
        &material("persoon-leerplicht-bakker"),
    )
    .await;
    match refused {
        Err(_) => {}
        Ok(channel) => {
            let mut intake =
                pactgate::pb::signal_intake_service_client::SignalIntakeServiceClient::new(channel);
            let listed = intake.list(pactgate::pb::ListRequest::default()).await;
            assert!(
                listed.is_err(),
                "a person's certificate acts as the organisation"
            );
        }
    }
}

/// The audit entries of `node` whose stated actor is `actor`, as its FG lists them.
async fn entries_naming(node: &common::TestNode, actor: &str) -> Vec<pactgate::pb::AuditEntry> {
    let fg = if node.party == "leerplicht" {
        "fg".to_owned()
    } else {
        format!("fg-{}", node.party)
    };
    let mut audit = node.audit_as(&fg).await;
    let page = audit
        .list_entries(pactgate::pb::ListEntriesRequest {
            first_page: true,
            ..Default::default()
        })
        .await
        .expect("the FG lists the audit log")
        .into_inner();
    page.entries
        .into_iter()
        .filter(|e| e.actor == actor)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_signals_page_shows_the_nodes_signals_by_pseudonym_and_is_audited_naming_the_person() {
    let node = common::TestNode::start("leerplicht").await;
    let bsns = common::Bsns::new(1301).take(3);
    let records = bsns
        .iter()
        .enumerate()
        .map(|(i, bsn)| common::good_record(&format!("LP-{i}"), bsn))
        .collect();
    let mut intake = node.intake_as("leerplicht").await;
    let report = common::push(&mut intake, records).await.unwrap();
    assert_eq!(report.accepted, 3);

    let console = TestConsole::start(workstation(
        "leerplicht",
        &node.addr().to_string(),
        Some(PERSON),
    ))
    .await;
    let answer = plain_client()
        .get(console.url("/signalen?categorie=LRV&gemeente=GM0014"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let html = answer.text().await.unwrap();
    for i in 0..3 {
        assert!(html.contains(&format!("LP-{i}")), "record LP-{i} listed");
    }
    assert!(
        html.contains(&common::pseudonym_of(&bsns[0])),
        "by pseudonym"
    );
    for bsn in &bsns {
        assert!(!html.contains(bsn.as_str()), "no BSN on the page");
    }
    assert!(html.contains("Langdurig relatief verzuim"));

    let none = plain_client()
        .get(console.url("/signalen?categorie=AV"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!none.contains("LP-0"), "the filter reaches the node");
    // A value that is no code is dropped, not sent on.
    let odd = plain_client()
        .get(console.url("/signalen?gemeente=123456782"))
        .send()
        .await
        .unwrap();
    assert_eq!(odd.status(), StatusCode::OK);

    let audited = entries_naming(&node, PERSON).await;
    assert!(
        !audited.is_empty(),
        "the node's audit names the person who looked"
    );
    assert!(audited
        .iter()
        .all(|e| e.actor_oin == "00000099000000000004"));
    console.stop().await;
}

/// The CSRF cookie an answer sets ("name=value") and the token of the page's form.
fn cookie_and_token(set_cookie: &str, html: &str) -> (String, String) {
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let start = html.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
    let token = html[start..].split('"').next().unwrap().to_owned();
    (cookie, token)
}

/// The Navragen form: the leerplichtambtenaar's routine flow for pupils living in Groningen.
fn fields(token: &str) -> [(&str, &str); 6] {
    [
        ("csrf", token),
        ("rol", "leerplichtambtenaar"),
        ("grondslag", "lpw-art21"),
        ("doel", "verzuimaanpak"),
        ("stroom", "verzuimmelding"),
        ("gemeente", "GM0014"),
    ]
}

/// Opens a page with a form: the browser's cookie and the form's token.
async fn open_form(console: &TestConsole, path: &str) -> (String, String) {
    let answer = plain_client().get(console.url(path)).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let set = answer.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let html = answer.text().await.unwrap();
    cookie_and_token(&set, &html)
}

async fn post_form(
    console: &TestConsole,
    path: &str,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
) -> (StatusCode, String) {
    let body = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace(' ', "+")))
        .collect::<Vec<_>>()
        .join("&");
    let mut request = plain_client()
        .post(console.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let answer = request.send().await.unwrap();
    (answer.status(), answer.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_query_form_needs_its_csrf_token_and_asks_the_partners_as_the_person() {
    let fed = common::Federation::start(&["leerplicht", "swv-vo"]).await;
    let bsns = common::Bsns::new(1302).take(2);
    let records = bsns
        .iter()
        .enumerate()
        .map(|(i, bsn)| common::good_record(&format!("VO-{i}"), bsn))
        .collect();
    let mut intake = fed.node("swv-vo").intake_as("swv-vo").await;
    assert_eq!(
        common::push(&mut intake, records).await.unwrap().accepted,
        2
    );

    let node = fed.node("leerplicht");
    let console = TestConsole::start(workstation(
        "leerplicht",
        &node.addr().to_string(),
        Some(PERSON),
    ))
    .await;
    let (cookie, token) = open_form(&console, "/navragen").await;
    let before = entries_naming(node, PERSON).await.len();

    // Refused: no cookie, no token, a token of another browser, a token of another form.
    let token = token.as_str();
    let (status, html) = post_form(&console, "/navragen", None, &fields(token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("Formulier niet aangenomen"));
    let (status, _) = post_form(&console, "/navragen", Some(&cookie), &fields("")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (other_cookie, _) = open_form(&console, "/navragen").await;
    let (status, _) = post_form(&console, "/navragen", Some(&other_cookie), &fields(token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        entries_naming(node, PERSON).await.len(),
        before,
        "a refused form reaches no node"
    );

    // Accepted: the partners' signals, by pseudonym, and the node's audit names the person.
    let (status, html) = post_form(&console, "/navragen", Some(&cookie), &fields(token)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Samenwerkingsverband VO Groningen"), "{html}");
    assert!(html.contains(&common::pseudonym_of(&bsns[0])));
    for bsn in &bsns {
        assert!(!html.contains(bsn.as_str()));
    }
    assert!(entries_naming(node, PERSON).await.len() > before);
    assert!(
        !entries_naming(fed.node("swv-vo"), PERSON).await.is_empty(),
        "the peer's audit names the person too"
    );
    console.stop().await;
}

/// Leerplicht and the SWV VO with counting rules, the SWV holding two signals (VO-0, VO-1) of
/// the pupils with these BSNs (from `seed`).
async fn leerplicht_and_swv_vo_with_signals(seed: u64) -> (common::Federation, Vec<String>) {
    let fed = common::Federation::start_tuned(
        &["leerplicht", "swv-vo"],
        Some(common::policy_path()),
        Vec::new(),
        common::NodeTuning::fast_audit_with_counting(),
    )
    .await;
    let bsns = common::Bsns::new(seed).take(2);
    let records = bsns
        .iter()
        .enumerate()
        .map(|(i, bsn)| common::good_record(&format!("VO-{i}"), bsn))
        .collect();
    let mut intake = fed.node("swv-vo").intake_as("swv-vo").await;
    assert_eq!(
        common::push(&mut intake, records).await.unwrap().accepted,
        2
    );
    (fed, bsns)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_due_list_counts_the_partners_signals_only_through_its_csrf_form() {
    let (fed, bsns) = leerplicht_and_swv_vo_with_signals(1303).await;
    let node = fed.node("leerplicht");
    let console = TestConsole::start(workstation(
        "leerplicht",
        &node.addr().to_string(),
        Some(PERSON),
    ))
    .await;

    let own = plain_client()
        .get(console.url("/signaleringslijst"))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::OK);
    assert!(!own
        .text()
        .await
        .unwrap()
        .contains(&common::pseudonym_of(&bsns[0])));

    let (cookie, token) = open_form(&console, "/signaleringslijst").await;
    let claim = &fields(&token)[..5];
    let (status, _) = post_form(&console, "/signaleringslijst", None, claim).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no cookie");
    let (_, navragen_token) = open_form(&console, "/navragen").await;
    let other_form = &fields(&navragen_token)[..5];
    let (status, _) = post_form(&console, "/signaleringslijst", Some(&cookie), other_form).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another form's token");

    let (status, html) = post_form(&console, "/signaleringslijst", Some(&cookie), claim).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains(&common::pseudonym_of(&bsns[0])), "{html}");
    assert!(html.contains("8 weken of langer"), "{html}");
    assert!(
        html.contains("swv-vo (VO-0)") || html.contains("swv-vo"),
        "{html}"
    );
    for bsn in &bsns {
        assert!(!html.contains(bsn.as_str()));
    }
    assert!(!entries_naming(node, PERSON).await.is_empty());
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fgs_privacy_pages_browse_verify_and_report_without_echoing_the_bsn() {
    let node = common::TestNode::start("leerplicht").await;
    let bsn = common::Bsns::new(1304).next_bsn();
    let mut intake = node.intake_as("leerplicht").await;
    let records = vec![common::good_record("LP-AV-1", &bsn)];
    assert_eq!(
        common::push(&mut intake, records).await.unwrap().accepted,
        1
    );
    const FG: &str = "J. de Vries, functionaris gegevensbescherming";
    let mut setup = workstation("fg", &node.addr().to_string(), Some(FG));
    setup.fg = true;
    let console = TestConsole::start(setup).await;

    let start = plain_client().get(console.url("/")).send().await.unwrap();
    let start = start.text().await.unwrap();
    assert!(
        start.contains("/privacy/auditlog") && !start.contains("/signalen"),
        "the FG's menu"
    );

    let log = plain_client()
        .get(console.url("/privacy/auditlog"))
        .send()
        .await
        .unwrap();
    assert_eq!(log.status(), StatusCode::OK);
    let log = log.text().await.unwrap();
    assert!(log.contains("Gemeente Groningen Leerplicht RMC"), "{log}");
    let denied = plain_client()
        .get(console.url("/privacy/auditlog?besluit=DENY"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !denied.contains("toegestaan</td>"),
        "the filter reaches the node"
    );

    let verified = plain_client()
        .get(console.url("/privacy/controle"))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), StatusCode::OK);
    assert!(verified
        .text()
        .await
        .unwrap()
        .contains("Het auditlog is compleet en ongewijzigd."));

    let (cookie, token) = open_form(&console, "/privacy/inzage").await;
    let (status, html) =
        post_form(&console, "/privacy/inzage", Some(&cookie), &[("bsn", &bsn)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no token");
    assert!(!html.contains(bsn.as_str()));
    let (status, html) = post_form(
        &console,
        "/privacy/inzage",
        Some(&cookie),
        &[("csrf", &token), ("bsn", &bsn)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains(&common::pseudonym_of(&bsn)), "{html}");
    assert!(
        html.contains("LP-AV-1") || html.contains("regels"),
        "{html}"
    );
    assert!(
        !html.contains(bsn.as_str()),
        "the BSN is not on the page afterwards"
    );

    let entries = entries_naming(&node, FG).await;
    assert!(!entries.is_empty(), "the node's audit names the FG");
    let everything = format!("{:?}", entries_naming(&node, "").await) + &format!("{entries:?}");
    assert!(!everything.contains(bsn.as_str()), "no BSN in the audit");
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_page_shows_the_g4_schema_targets_and_chart_and_downloads_its_csv() {
    let node = common::TestNode::start_tuned(
        "leerplicht",
        common::NodeOptions::default(),
        common::NodeTuning::fast_audit_with_counting(),
    )
    .await;
    let console = TestConsole::start(workstation(
        "leerplicht",
        &node.addr().to_string(),
        Some(PERSON),
    ))
    .await;
    let page = plain_client()
        .get(console.url("/rapportage"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = page.text().await.unwrap();
    // The pact's indicators under g4, with baseline and target, per reference date.
    assert!(
        html.contains("Thuiszitters langer dan drie maanden zonder aanbod: ijkpunt"),
        "{html}"
    );
    assert!(html.contains("Langdurig relatief verzuim"), "{html}");
    assert!(
        !html.contains("Absoluut verzuim (leerplichtig"),
        "an indicator of another rule"
    );
    assert!(html.contains("Verandering t.o.v. ijkpunt"), "{html}");
    // The node's own organisation sees every cell: nothing shows as suppressed.
    assert!(!html.contains(">onderdrukt<"), "{html}");
    // The node's chart, inline, with a title and description, and no script.
    let svg_at = html.find("<svg").expect("an inline chart");
    let svg = &html[svg_at..html.find("</svg>").expect("the chart's end")];
    assert!(
        svg.contains(r#"role="img" aria-labelledby="grafiek-titel grafiek-uitleg""#),
        "{svg}"
    );
    assert!(
        svg.contains("<title id=\"grafiek-titel\">")
            && svg.contains("<desc id=\"grafiek-uitleg\">")
    );
    assert!(
        svg.contains("Totaal niet-schoolgaand"),
        "the node's renderer: {svg}"
    );
    assert!(!html.contains("<script") && !svg.contains("style="));
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(
        html.contains("G4-resultatenschema") && html.contains("<th scope=\"row\">"),
        "{html}"
    );
    let csv = plain_client()
        .get(console.url("/rapportage.csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(csv.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let text = csv.text().await.unwrap();
    assert!(text.lines().count() > 1 && text.contains(','), "{text}");
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_case_page_records_a_care_offer_only_through_its_csrf_form_as_the_person() {
    use pactgate::pb;
    const WIJ_PERSON: &str = "B. de Vries, WIJ-medewerker";
    let fed = common::Federation::start(&["swv-vo", "wij"]).await;
    let bsns = common::Bsns::new(1311).take(2);
    let pupils: Vec<String> = bsns.iter().map(|b| common::pseudonym_of(b)).collect();
    let case = fed
        .node("swv-vo")
        .cases_as("swv-vo")
        .await
        .open_case(pb::OpenCaseRequest {
            meeting_type: "aoj-team-vo".into(),
            purpose: "zorg-en-ondersteuning".into(),
            pupil_pseudonyms: pupils.clone(),
            participant_oins: vec![common::oin("wij")],
            actor: "zorgcoordinator".into(),
        })
        .await
        .expect("OpenCase")
        .into_inner()
        .case
        .expect("the case");
    let node = fed.node("wij");
    node.cases_as("wij")
        .await
        .accept_case(pb::AcceptCaseRequest {
            case_id: case.case_id.clone(),
            actor: "voorzitter".into(),
        })
        .await
        .expect("AcceptCase at WIJ");
    let console = TestConsole::start(workstation(
        "wij",
        &node.addr().to_string(),
        Some(WIJ_PERSON),
    ))
    .await;

    // The page: the case, its pupils by pseudonym, the form.
    let answer = plain_client()
        .get(console.url("/casussen"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let set = answer.headers()["set-cookie"].to_str().unwrap().to_owned();
    let html = answer.text().await.unwrap();
    assert!(html.contains(&case.case_id), "{html}");
    assert!(html.contains("Zorgaanbod vastleggen"), "{html}");
    for (pupil, bsn) in pupils.iter().zip(&bsns) {
        assert!(html.contains(pupil.as_str()));
        assert!(!html.contains(bsn.as_str()));
    }
    let (cookie, token) = cookie_and_token(&set, &html);
    let yesterday = common::date_from_today(-1);
    let offer = |token: &str| -> Vec<(&'static str, String)> {
        vec![
            ("csrf", token.to_owned()),
            ("casus", case.case_id.clone()),
            ("leerling", pupils[0].clone()),
            ("soort", "zorg".into()),
            ("gedaan_op", yesterday.clone()),
            ("plek_vanaf", yesterday.clone()),
            ("ouders", "ja".into()),
        ]
    };
    let send = |fields: Vec<(&'static str, String)>, cookie: Option<String>| {
        let console = &console;
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_form(console, "/casussen/zorgaanbod", cookie.as_deref(), &fields).await
        }
    };
    let offers_at = |node: &'static str| {
        let fed = &fed;
        async move {
            let fg = format!("fg-{node}");
            fed.node(node)
                .audit_entries(&fg)
                .await
                .into_iter()
                .filter(|e| e.action() == pb::AuditAction::CaseOffer)
                .map(|e| (e.actor.clone(), e.decision()))
                .collect::<Vec<_>>()
        }
    };

    // Refused before the node: no cookie, no token, another form's token.
    let (status, html) = send(offer(&token), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("Formulier niet aangenomen"));
    let (status, _) = send(offer(""), Some(cookie.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, navragen_token) = open_form(&console, "/navragen").await;
    let (status, _) = send(offer(&navragen_token), Some(cookie.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        offers_at("wij").await.is_empty(),
        "a refused form reaches no node"
    );

    // Accepted: recorded at WIJ as the person, told to the SWV.
    let (status, html) = send(offer(&token), Some(cookie.clone())).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Zorgaanbod vastgelegd"), "{html}");
    assert!(html.contains("stopt de klok vanaf"), "{html}");
    assert_eq!(
        offers_at("wij").await,
        [(WIJ_PERSON.to_owned(), pb::AuditDecision::Allow)]
    );
    assert_eq!(
        offers_at("swv-vo").await,
        [(String::new(), pb::AuditDecision::Allow)]
    );

    // The node's refusal is shown, naming the field: a date that is none.
    let mut bad = offer(&token);
    bad[4].1 = "gisteren".into();
    let (status, html) = send(bad, Some(cookie.clone())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("offer.offered_on"), "{html}");
    console.stop().await;
}

// ---- The leerplicht side (issue 13): a child's page, the look-up by BSN, cases. ----

/// Everything the process logs, from the first test that asks (debug level, every crate).
#[derive(Clone, Default)]
struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn captured_logs() -> &'static CapturedLogs {
    static LOGS: std::sync::OnceLock<CapturedLogs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = CapturedLogs::default();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(logs.clone())
            .with_ansi(false)
            .try_init();
        logs
    })
}

/// The CSRF token of the form with this id on a page.
fn token_of(html: &str, form_id: &str) -> String {
    let form = html
        .find(&format!(r#"id="{form_id}""#))
        .unwrap_or_else(|| panic!("no form {form_id}: {html}"));
    let start = html[form..]
        .find(r#"name="csrf" value=""#)
        .expect("a CSRF field")
        + form
        + 19;
    html[start..].split('"').next().unwrap().to_owned()
}

/// A page and the browser's CSRF cookie.
async fn page_with_cookie(console: &TestConsole, path: &str) -> (String, String) {
    let answer = plain_client().get(console.url(path)).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK, "{path}");
    let set = answer.headers()["set-cookie"].to_str().unwrap().to_owned();
    let cookie = set.split(';').next().unwrap().to_owned();
    (cookie, answer.text().await.unwrap())
}

/// Every audit entry of `node`, as its FG lists them.
async fn all_entries(node: &common::TestNode) -> Vec<pactgate::pb::AuditEntry> {
    let fg = if node.party == "leerplicht" {
        "fg".to_owned()
    } else {
        format!("fg-{}", node.party)
    };
    node.audit_entries(&fg)
        .await
        .into_iter()
        // Leave out the FG's own reading of the log.
        .filter(|e| e.action() != pactgate::pb::AuditAction::AuditAccess)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bsn_look_up_leads_to_the_childs_page_by_pseudonym_and_the_bsn_goes_nowhere() {
    let logs = captured_logs();
    let (fed, bsns) = leerplicht_and_swv_vo_with_signals(1321).await;
    let node = fed.node("leerplicht");
    let console = TestConsole::start(workstation(
        "leerplicht",
        &node.addr().to_string(),
        Some(PERSON),
    ))
    .await;
    let bsn = bsns[0].as_str();
    let pseudonym = common::pseudonym_of(bsn);

    let (cookie, html) = page_with_cookie(&console, "/signaleringslijst").await;
    let token = token_of(&html, "leerling-zoeken");
    let lookup = |token: String| vec![("csrf", token), ("bsn", bsn.to_owned())];
    let send = |fields: Vec<(&'static str, String)>, cookie: Option<String>| {
        let console = &console;
        async move {
            let body = fields
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&");
            let mut request = plain_client()
                .post(console.url("/leerling"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
            if let Some(cookie) = cookie {
                request = request.header("cookie", cookie);
            }
            request.send().await.unwrap()
        }
    };

    // Refused before the node: no cookie, no token, another form's token.
    let before = all_entries(node).await.len();
    let refused = send(lookup(token.clone()), None).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(!refused.text().await.unwrap().contains(bsn));
    let refused = send(lookup(String::new()), Some(cookie.clone())).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let other = token_of(&html, "klok-partners");
    let refused = send(lookup(other), Some(cookie.clone())).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        all_entries(node).await.len(),
        before,
        "a refused form reaches no node"
    );

    // Accepted: a redirect to the child's page by pseudonym.
    let found = send(lookup(token.clone()), Some(cookie.clone())).await;
    assert_eq!(found.status(), StatusCode::SEE_OTHER);
    let location = found.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, format!("/leerling/{pseudonym}"));
    assert!(!found.text().await.unwrap().contains(bsn));

    // The child's page: on the clock, what the SWV shares, no cases yet.
    let answer = plain_client()
        .get(console.url(&location))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let page = answer.text().await.unwrap();
    assert!(page.contains(&pseudonym), "{page}");
    assert!(page.contains("8 weken of langer"), "{page}");
    assert!(page.contains("Samenwerkingsverband VO Groningen"), "{page}");
    assert!(page.contains("Dit kind staat in geen casus"), "{page}");
    assert!(
        !page.contains(&common::pseudonym_of(&bsns[1])),
        "only this child"
    );
    assert!(!page.contains(bsn));

    // A number that is no BSN is refused by the node, and not echoed.
    let bad = send(
        vec![("csrf", token.clone()), ("bsn", "123456789".into())],
        Some(cookie.clone()),
    )
    .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!bad.text().await.unwrap().contains("123456789"));

    // Every page of a child leaves an entry naming the person; no entry, answer or log line
    // holds the BSN.
    let named = entries_naming(node, PERSON).await;
    assert!(
        named
            .iter()
            .any(|e| e.pupil_pseudonyms == [pseudonym.clone()] && e.reason.contains("looked up")),
        "{named:?}"
    );
    assert!(named
        .iter()
        .any(|e| e.pupil_pseudonyms == [pseudonym.clone()] && e.reason.contains("cases")));
    for e in all_entries(node).await {
        assert!(!format!("{e:?}").contains(bsn), "{e:?}");
    }
    let unknown = plain_client()
        .get(console.url("/leerling/123456782"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert!(!unknown.text().await.unwrap().contains("123456782"));
    console.stop().await;
    let logged = logs.text();
    assert!(!logged.is_empty(), "the logs are captured");
    assert!(!logged.contains(bsn), "a log line holds the BSN");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_case_is_opened_at_leerplicht_accepted_and_given_an_offer_at_wij_and_closed() {
    const WIJ_PERSON: &str = "S. Visser, WIJ-medewerker";
    let logs = captured_logs();
    let fed = common::Federation::start(&["leerplicht", "wij"]).await;
    let bsns = common::Bsns::new(1322).take(2);
    let pupil = common::pseudonym_of(&bsns[0]);
    let leerplicht = TestConsole::start(workstation(
        "leerplicht",
        &fed.node("leerplicht").addr().to_string(),
        Some(PERSON),
    ))
    .await;
    let wij = TestConsole::start(workstation(
        "wij",
        &fed.node("wij").addr().to_string(),
        Some(WIJ_PERSON),
    ))
    .await;
    let send = |console: &'static str,
                path: &'static str,
                fields: Vec<(&'static str, String)>,
                cookie: Option<String>| {
        let console = if console == "wij" { &wij } else { &leerplicht };
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_form(console, path, cookie.as_deref(), &fields).await
        }
    };
    let actions_at = |party: &'static str, action: pactgate::pb::AuditAction| {
        let fed = &fed;
        async move {
            all_entries(fed.node(party))
                .await
                .into_iter()
                .filter(|e| e.action() == action)
                .map(|e| (e.actor.clone(), e.decision()))
                .collect::<Vec<_>>()
        }
    };
    use pactgate::pb::{AuditAction as A, AuditDecision as D};

    // The form: the meetings Leerplicht may lead, WIJ as a participant, what each seat sees.
    let (cookie, html) = page_with_cookie(&leerplicht, "/casussen?leerling=123456782").await;
    assert!(html.contains("Casus openen"), "{html}");
    assert!(
        html.contains("werkgroep-verdiepend-verzuim:verzuimaanpak"),
        "{html}"
    );
    assert!(html.contains(&common::oin("wij")), "{html}");
    assert!(html.contains("Verzuim en thuiszitten"), "{html}");
    assert!(
        !html.contains("123456782"),
        "a BSN in the query is not taken"
    );
    let token = token_of(&html, "casus-openen-form");
    let opening = |token: &str, bsn: &str| {
        vec![
            ("csrf", token.to_owned()),
            (
                "overleg_doel",
                "werkgroep-verdiepend-verzuim:verzuimaanpak".to_owned(),
            ),
            ("deelnemer", common::oin("wij")),
            ("bsn", bsn.to_owned()),
        ]
    };
    let (status, _) = send(
        "leerplicht",
        "/casussen/openen",
        opening(&token, &bsns[0]),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no cookie");
    let (_, navragen_token) = open_form(&leerplicht, "/navragen").await;
    let (status, _) = send(
        "leerplicht",
        "/casussen/openen",
        opening(&navragen_token, &bsns[0]),
        Some(cookie.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another form's token");
    assert!(actions_at("leerplicht", A::CaseOpen).await.is_empty());

    let (status, html) = send(
        "leerplicht",
        "/casussen/openen",
        opening(&token, &bsns[0]),
        Some(cookie.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("geopend"), "{html}");
    assert!(html.contains(&pupil), "{html}");
    assert!(!html.contains(bsns[0].as_str()));
    let at = html.find("Casus case-").expect("the case id") + 6;
    let case_id = html[at..at + 21].to_owned();
    assert!(pactgate::cases::is_case_id(&case_id), "{case_id}");
    assert_eq!(
        actions_at("leerplicht", A::CaseOpen).await,
        [(PERSON.to_owned(), D::Allow)]
    );

    // At WIJ: shared, pending; accepted there as the person.
    let (wij_cookie, html) = page_with_cookie(&wij, "/casussen").await;
    assert!(html.contains(&case_id), "{html}");
    assert!(html.contains("Casus accepteren"), "{html}");
    assert!(
        html.contains("Verzuim en thuiszitten"),
        "what WIJ's seat sees: {html}"
    );
    let decide = token_of(&html, "zorgaanbod-0-besluit");
    let deciding = |token: &str| {
        vec![
            ("csrf", token.to_owned()),
            ("casus", case_id.clone()),
            ("besluit", "accepteren".to_owned()),
        ]
    };
    let (status, _) = send("wij", "/casussen/beslissen", deciding(&decide), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, html) = send(
        "wij",
        "/casussen/beslissen",
        deciding(&decide),
        Some(wij_cookie.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("geaccepteerd"), "{html}");
    assert_eq!(
        actions_at("wij", A::CaseAccept).await,
        [(WIJ_PERSON.to_owned(), D::Allow)]
    );

    // The care offer, recorded at WIJ, told to Leerplicht: on the child's page there.
    let offer_token = token_of(&html, "zorgaanbod-0");
    let yesterday = common::date_from_today(-1);
    let (status, html) = send(
        "wij",
        "/casussen/zorgaanbod",
        vec![
            ("csrf", offer_token),
            ("casus", case_id.clone()),
            ("leerling", pupil.clone()),
            ("soort", "zorg".into()),
            ("gedaan_op", yesterday.clone()),
            ("plek_vanaf", yesterday.clone()),
            ("ouders", "ja".into()),
        ],
        Some(wij_cookie.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Zorgaanbod vastgelegd"), "{html}");
    let child = plain_client()
        .get(leerplicht.url(&format!("/leerling/{pupil}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(child.contains(&case_id), "{child}");
    assert!(child.contains("WIJ Groningen"), "{child}");

    // Closed at Leerplicht, the lead.
    let (cookie, html) = page_with_cookie(&leerplicht, "/casussen").await;
    let close = token_of(&html, "zorgaanbod-0-sluiten");
    let token = token_of(&html, "casus-openen-form");
    let closing = vec![("csrf", close), ("casus", case_id.clone())];
    let (status, _) = send("leerplicht", "/casussen/sluiten", closing.clone(), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, html) = send(
        "leerplicht",
        "/casussen/sluiten",
        closing,
        Some(cookie.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("gesloten"), "{html}");
    assert_eq!(
        actions_at("leerplicht", A::CaseClose).await,
        [(PERSON.to_owned(), D::Allow)]
    );

    // A second case, declined at WIJ.
    let (status, html) = send(
        "leerplicht",
        "/casussen/openen",
        opening(&token, &bsns[1]),
        Some(cookie.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let (wij_cookie, html) = page_with_cookie(&wij, "/casussen").await;
    let mut declining = deciding(&token_of(&html, "zorgaanbod-0-besluit"));
    let at = html.find("Casus <code>case-").expect("the second case") + 12;
    declining[1].1 = html[at..at + 21].to_owned();
    declining[2].1 = "weigeren".into();
    let (status, html) = send("wij", "/casussen/beslissen", declining, Some(wij_cookie)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("geweigerd"), "{html}");

    for party in ["leerplicht", "wij"] {
        for e in all_entries(fed.node(party)).await {
            for bsn in &bsns {
                assert!(!format!("{e:?}").contains(bsn.as_str()), "{e:?}");
            }
        }
    }
    leerplicht.stop().await;
    wij.stop().await;
    for bsn in &bsns {
        assert!(
            !logs.text().contains(bsn.as_str()),
            "a log line holds a BSN"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_childs_page_and_the_case_forms_refuse_who_is_not_a_person_of_the_organisation() {
    let logs = captured_logs();
    let node = common::TestNode::start("leerplicht").await;
    let console = TestConsole::start(network("leerplicht", &node.addr().to_string())).await;
    let pupil = common::pseudonym_of(&common::Bsns::new(1323).take(1)[0]);
    let bsn = common::Bsns::new(1324).take(1).remove(0);
    let gets = [format!("/leerling/{pupil}"), "/casussen".to_owned()];
    let posts = [
        ("/leerling", format!("csrf=x&bsn={bsn}")),
        (
            "/casussen/openen",
            format!("csrf=x&overleg_doel=advies-5a:advies-vrijstelling-5a&bsn={bsn}"),
        ),
        (
            "/casussen/beslissen",
            "csrf=x&casus=case-0123456789abcdef&besluit=accepteren".into(),
        ),
        (
            "/casussen/sluiten",
            "csrf=x&casus=case-0123456789abcdef".into(),
        ),
    ];
    // The organisation's own certificate, and a person of another organisation.
    for who in ["leerplicht", "persoon-fg-devries"] {
        let client = tls_client(&material(who));
        for path in &gets {
            let answer = client.get(console.https(path)).send().await.unwrap();
            assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{who} {path}");
            assert!(!answer.text().await.unwrap().contains(&pupil));
        }
        for (path, body) in &posts {
            let answer = client
                .post(console.https(path))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{who} {path}");
            assert!(!answer.text().await.unwrap().contains(bsn.as_str()));
        }
    }
    // The person of the organisation gets the page; a form without its token is still refused.
    let bakker = tls_client(&material("persoon-leerplicht-bakker"));
    let refused = bakker
        .post(console.https("/leerling"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf=x&bsn={bsn}"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(
        entries_naming(&node, PERSON).await.is_empty(),
        "nothing refused reached the node"
    );
    console.stop().await;
    assert!(
        !logs.text().contains(bsn.as_str()),
        "a log line holds the BSN"
    );
}

// ---------------------------------------------------------------------------------------------
// The FG's pages of issue 13 and the Start page: matrix, an entry's proof, the witnesses,
// export, peers and checkpoint.
// ---------------------------------------------------------------------------------------------

const FG_PERSON: &str = "J. de Vries, functionaris gegevensbescherming";

/// The gemeente FG's console at `node`.
async fn fg_console(node: &common::TestNode) -> TestConsole {
    let mut setup = workstation("fg", &node.addr().to_string(), Some(FG_PERSON));
    setup.fg = true;
    TestConsole::start(setup).await
}

/// The leerplichtambtenaar's console at `node`.
async fn own_console(node: &common::TestNode) -> TestConsole {
    TestConsole::start(workstation(
        "leerplicht",
        &node.addr().to_string(),
        Some(PERSON),
    ))
    .await
}

async fn page(console: &TestConsole, path: &str) -> (StatusCode, String) {
    let answer = plain_client().get(console.url(path)).send().await.unwrap();
    (answer.status(), answer.text().await.unwrap())
}

/// The reasons of the audit entries naming `actor` at `node`.
async fn reasons_naming(node: &common::TestNode, actor: &str) -> Vec<String> {
    entries_naming(node, actor)
        .await
        .into_iter()
        .map(|e| e.reason)
        .collect()
}

/// Leerplicht and the SWV VO witnessing each other, checkpoints every 200 ms; one pushed signal.
async fn witnessed_pair(seed: u64) -> (common::Federation, String) {
    let fed = common::Federation::start_tuned(
        &["leerplicht", "swv-vo"],
        Some(common::policy_path()),
        Vec::new(),
        common::NodeTuning::fast_audit_with_counting(),
    )
    .await;
    let bsn = common::Bsns::new(seed).next_bsn();
    let mut intake = fed.node("leerplicht").intake_as("leerplicht").await;
    let records = vec![common::good_record("LP-FG-1", &bsn)];
    assert_eq!(
        common::push(&mut intake, records).await.unwrap().accepted,
        1
    );
    (fed, bsn)
}

/// GETs `path` until its page holds `expected` (checkpoints and cosignatures come every 200 ms).
async fn page_once_it_holds(console: &TestConsole, path: &str, expected: &str) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        let (status, html) = page(console, path).await;
        if status == StatusCode::OK && html.contains(expected) {
            return html;
        }
        last = html;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{path} never showed {expected:?}:\n{last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_matrix_page_shows_bijlage_3_in_dutch_printably_and_only_to_the_covenant() {
    let node = common::TestNode::start("leerplicht").await;
    let console = fg_console(&node).await;
    let (status, html) = page(&console, "/privacy/matrix").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains(r#"href="/privacy/matrix" aria-current="page""#));
    assert!(html.contains("Privacyconvenant Thuiszitterspact provincie Groningen"));
    assert!(html.contains("AOJ-team VO (aansluiting onderwijs-jeugdhulp)"));
    // A seat of the meeting: who, on which basis, which data.
    assert!(html.contains("gemeente (leerplichtambtenaar)"), "{html}");
    assert!(html.contains("Leerplichtwet 1969"), "{html}");
    assert!(html.contains("Verzuim en thuiszitten"), "{html}");
    assert!(html.contains("Gegevens die de deelnemer ziet"));
    let (_, css) = page(&console, "/console.css").await;
    assert!(
        css.contains(".niet-afdrukken { display: none; }"),
        "print CSS"
    );

    // The REST operation behind it: a stranger to the covenant is refused.
    let stranger = TestConsole::start(ConsoleSetup {
        tls: common::stranger_cert(),
        ..workstation("leerplicht", &node.addr().to_string(), Some(PERSON))
    })
    .await;
    let (status, html) = page(&stranger, "/privacy/matrix").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(html.contains("is not a party of the covenant"), "{html}");
    assert!(!html.contains("AOJ-team VO"));
    stranger.stop().await;
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_network_console_refuses_the_fg_pages_without_the_persons_certificate() {
    let node = common::TestNode::start("leerplicht").await;
    let mut setup = network("fg", &node.addr().to_string());
    setup.fg = true;
    let console = TestConsole::start(setup).await;
    for path in [
        "/privacy/matrix",
        "/privacy/exporteren",
        "/privacy/auditlog/0",
    ] {
        let org = tls_client(&material("fg"))
            .get(console.https(path))
            .send()
            .await
            .unwrap();
        assert_eq!(org.status(), StatusCode::FORBIDDEN, "{path}");
        let other = tls_client(&material("persoon-leerplicht-bakker"))
            .get(console.https(path))
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let fg = tls_client(&material("persoon-fg-devries"))
        .get(console.https("/privacy/matrix"))
        .send()
        .await
        .unwrap();
    assert_eq!(fg.status(), StatusCode::OK);
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_entrys_page_checks_its_inclusion_proof_against_the_cosigned_checkpoint() {
    let (fed, bsn) = witnessed_pair(1321).await;
    let node = fed.node("leerplicht");
    let console = fg_console(node).await;
    let (status, log) = page(&console, "/privacy/auditlog").await;
    assert_eq!(status, StatusCode::OK);
    assert!(log.contains(r#"<a href="/privacy/auditlog/1""#), "{log}");

    let html = page_once_it_holds(
        &console,
        "/privacy/auditlog/1",
        "en swv-vo medeondertekenden",
    )
    .await;
    assert!(
        html.contains("Regel 1 staat ongewijzigd in het auditlog"),
        "{html}"
    );
    assert!(!html.contains("KLOPT NIET"), "{html}");
    assert!(html.contains("Inclusiebewijs") && html.contains("Getuige swv-vo</th><td>klopt"));
    assert!(
        html.contains("\u{2014} pactgate-witness/"),
        "the cosignature in the note"
    );
    assert!(html.contains("ondertekend met de sleutel van het log"));
    assert!(!html.contains(bsn.as_str()));
    let reasons = reasons_naming(node, FG_PERSON).await;
    assert!(reasons.iter().any(|r| r == "prove"), "{reasons:?}");

    // The console's check is real: a proof changed on the way fails it.
    let fg = material("fg");
    let rest = reqwest::Client::builder()
        .tls_backend_preconfigured(fg.client_config_tls13().unwrap())
        .build()
        .unwrap();
    let base = format!("https://localhost:{}/v1", node.addr().port());
    let get = |path: &str| {
        let request = rest
            .get(format!("{base}{path}"))
            .header("pactgate-actor", FG_PERSON);
        async move {
            request
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    // The node may sign a newer checkpoint between two requests (the FG's looks are entries
    // too) that its witnesses have not cosigned yet: ask again until they have.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (proof, keys) = loop {
        let proof = get("/audit/entries/1/proof").await;
        let keys = get("/audit/checkpoints/latest").await;
        let proof: pactgate::rest::audit::EntryProof = serde_json::from_value(proof).unwrap();
        let keys: pactgate::rest::audit::CheckpointStatus = serde_json::from_value(keys).unwrap();
        let (checks, _) = pactgate::console::evidence::check_proof(&proof, Some(&keys));
        if checks.iter().all(|c| c.ok) {
            break (proof, keys);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the proof never checked: {checks:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let mut changed = proof;
    changed.entry_bytes = changed.entry_bytes.replace('A', "B");
    let (checks, _) = pactgate::console::evidence::check_proof(&changed, Some(&keys));
    assert!(checks.iter().any(|c| !c.ok), "a changed entry fails");
    let mut other_root = serde_json::from_value::<pactgate::rest::audit::EntryProof>(
        get("/audit/entries/1/proof").await,
    )
    .unwrap();
    other_root.checkpoint.root_hash = "00".repeat(32);
    let (checks, _) = pactgate::console::evidence::check_proof(&other_root, Some(&keys));
    let inclusion = checks.iter().find(|c| c.what == "Inclusiebewijs").unwrap();
    assert!(!inclusion.ok, "{inclusion:?}");

    // Only a sequence number reaches the node, and nothing else is echoed.
    for odd in ["abc", "123456782"] {
        let (status, html) = page(&console, &format!("/privacy/auditlog/{odd}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{odd}");
        assert!(!html.contains(odd), "{html}");
    }

    // Not an FG: the node refuses the proof, the page says so.
    let own = own_console(node).await;
    let (status, html) = page(&own, "/privacy/auditlog/1").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(
        html.contains("De node gaf het bewijs van regel 1 niet"),
        "{html}"
    );
    own.stop().await;
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_controle_page_shows_each_witnesss_checkpoint_and_that_the_log_extends_it() {
    let (fed, _) = witnessed_pair(1322).await;
    let node = fed.node("leerplicht");
    let console = fg_console(node).await;
    let html = page_once_it_holds(
        &console,
        "/privacy/controle",
        "<th scope=\"row\">swv-vo</th>",
    )
    .await;
    assert!(
        html.contains("Het auditlog is compleet en ongewijzigd."),
        "{html}"
    );
    let row = html
        .split("<th scope=\"row\">swv-vo</th>")
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap();
    assert!(row.contains("klopt met haar sleutel"), "{row}");
    assert!(row.contains("ja: het log van"), "{row}");
    assert!(
        !html.contains("KLOPT NIET") && !html.contains("NEE:"),
        "{html}"
    );
    let reasons = reasons_naming(node, FG_PERSON).await;
    assert!(
        reasons.iter().any(|r| r == "verify") && reasons.iter().any(|r| r == "checkpoints"),
        "{reasons:?}"
    );
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_export_form_needs_its_csrf_token_and_downloads_the_filtered_log() {
    let node = common::TestNode::start("leerplicht").await;
    // A refused request: a DENY entry in the log (the organisation itself is not its FG).
    let own = own_console(&node).await;
    let (status, _) = page(&own, "/privacy/auditlog").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    own.stop().await;

    let console = fg_console(&node).await;
    let (cookie, token) = open_form(&console, "/privacy/exporteren").await;
    let form = |token: &str| {
        vec![
            ("csrf", token.to_owned()),
            ("formaat", "CSV".to_owned()),
            ("besluit", "DENY".to_owned()),
            ("organisatie", String::new()),
            ("doel", String::new()),
            ("van", common::date_from_today(-1)),
            ("tot", common::date_from_today(0)),
        ]
    };
    let send = |fields: Vec<(&'static str, String)>, cookie: Option<String>| {
        let console = &console;
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_form(console, "/privacy/exporteren", cookie.as_deref(), &fields).await
        }
    };
    let before = reasons_naming(&node, FG_PERSON).await;
    let (status, _) = send(form(&token), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no cookie");
    let (status, _) = send(form(""), Some(cookie.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no token");
    let (_, inzage_token) = open_form(&console, "/privacy/inzage").await;
    let (status, _) = send(form(&inzage_token), Some(cookie.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another form's token");
    assert_eq!(
        reasons_naming(&node, FG_PERSON).await,
        before,
        "a refused form reaches no node"
    );

    // A field that is wrong is named, and nothing is asked of the node.
    let mut bad = form(&token);
    bad[5].1 = "gisteren".into();
    let (status, html) = send(bad, Some(cookie.clone())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("van: geen datum"), "{html}");
    assert!(
        !html.contains("gisteren"),
        "the wrong value is not shown again"
    );
    let bsn = common::Bsns::new(1324).next_bsn();
    let mut bad = form(&token);
    bad[4].1 = bsn.clone();
    let (status, html) = send(bad, Some(cookie.clone())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("doel: bevat een nummer"), "{html}");
    assert!(
        !html.contains(bsn.as_str()),
        "no BSN on the page afterwards"
    );

    // Accepted: a CSV file of the DENY entries only.
    let body = form(&token)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let answer = plain_client()
        .post(console.url("/privacy/exporteren"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &cookie)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()["content-type"], "text/csv; charset=utf-8");
    let disposition = answer.headers()["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"auditlog-")
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    let csv = answer.text().await.unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("seq,"), "{csv}");
    let rows: Vec<&str> = lines.collect();
    assert!(!rows.is_empty(), "{csv}");
    assert!(rows.iter().all(|r| r.contains("DENY")), "{csv}");
    assert!(rows.iter().any(|r| r.contains(PERSON)), "{csv}");
    let reasons = reasons_naming(&node, FG_PERSON).await;
    assert!(reasons.iter().any(|r| r == "export"), "{reasons:?}");
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_start_page_shows_each_peer_up_or_down_the_newest_checkpoint_and_the_clock() {
    let down = pactgate::peers::PeerConfig {
        name: "wij".into(),
        address: common::closed_port().to_string(),
        oin: common::oin("wij"),
    };
    let fed = common::Federation::start_tuned(
        &["leerplicht", "swv-vo"],
        Some(common::policy_path()),
        vec![down],
        common::NodeTuning::fast_audit_with_counting(),
    )
    .await;
    let node = fed.node("leerplicht");
    let bsns = common::Bsns::new(1323).take(2);
    let records = bsns
        .iter()
        .enumerate()
        .map(|(i, bsn)| common::good_record(&format!("LP-{i}"), bsn))
        .collect();
    let mut intake = node.intake_as("leerplicht").await;
    assert_eq!(
        common::push(&mut intake, records).await.unwrap().accepted,
        2
    );
    let console = own_console(node).await;
    let html = page_once_it_holds(&console, "/", "Medeondertekend door</dt><dd>swv-vo").await;
    let row = |name: &str| {
        html.split(&format!("<th scope=\"row\">{name}</th>"))
            .nth(1)
            .and_then(|r| r.split("</tr>").next())
            .unwrap_or_else(|| panic!("no row {name}: {html}"))
            .to_owned()
    };
    assert!(row("swv-vo").contains(">Bereikbaar<"), "{html}");
    assert!(row("wij").contains(">Niet bereikbaar<"), "{html}");
    assert!(html.contains("<strong>2</strong> kinderen"), "{html}");
    assert!(
        html.contains("klopt: ondertekend met de sleutel van het log"),
        "{html}"
    );
    for bsn in &bsns {
        assert!(!html.contains(bsn.as_str()));
    }

    // The FG's Start: the same peers and checkpoint, no pupils on the clock.
    let fg = fg_console(node).await;
    let (status, html) = page(&fg, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("De andere knooppunten") && !html.contains("Kinderen op de klok"));
    let reasons = reasons_naming(node, FG_PERSON).await;
    assert!(reasons.iter().any(|r| r == "peers"), "{reasons:?}");
    fg.stop().await;
    console.stop().await;
}
