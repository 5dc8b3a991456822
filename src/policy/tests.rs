//! Tests of the policy module against the shipped `policies/groningen.toml`: parsing, errors
//! with lines, evaluation, and property tests against an independent brute-force matcher.

use super::*;
use crate::signal::Category;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::sync::LazyLock;

const SHIPPED: &str = include_str!("../../policies/groningen.toml");
const FILE: &str = "groningen.toml";

const SWV_VO: &str = "00000099000000000001";
const SWV_PO: &str = "00000099000000000002";
const MBO: &str = "00000099000000000003";
const LEERPLICHT: &str = "00000099000000000004";
const WIJ: &str = "00000099000000000005";
const GGD: &str = "00000099000000000006";
const FG: &str = "00000099000000000007";

static POLICY: LazyLock<Policy> =
    LazyLock::new(|| Policy::parse(SHIPPED, FILE).unwrap_or_else(|e| panic!("{e}")));

fn request<'a>(
    caller: &'a str,
    holder: &'a str,
    role: &'a str,
    basis: &'a str,
    purpose: &'a str,
    context: Context<'a>,
) -> AccessRequest<'a> {
    AccessRequest {
        caller_oin: caller,
        holder_oin: holder,
        role,
        legal_basis: basis,
        purpose,
        context,
    }
}

fn flow(id: &str) -> Context<'_> {
    Context::RoutineFlow { flow: id }
}

fn case(id: &str) -> Context<'_> {
    Context::Case { meeting: id }
}

fn permit(r: &AccessRequest<'_>) -> Permit {
    match POLICY.evaluate(r) {
        Decision::Permit(p) => p,
        Decision::Deny(d) => panic!("denied: {}", d.reason),
    }
}

fn denial(r: &AccessRequest<'_>) -> String {
    match POLICY.evaluate(r) {
        Decision::Deny(d) => d.reason,
        Decision::Permit(p) => panic!("permitted by {}", p.rule),
    }
}

// ---- the shipped file ----

#[test]
fn shipped_policy_parses_with_only_the_expected_warnings() {
    // Unverified articles, the MBO still to be connected, seats of org types no party runs.
    for w in POLICY.warnings() {
        assert!(
            w.contains("is not verified")
                || w.contains("still to be connected")
                || w.contains("but no party is a"),
            "unexpected warning: {w}"
        );
    }
    let unverified = POLICY
        .warnings()
        .iter()
        .filter(|w| w.contains("is not verified"))
        .count();
    assert_eq!(unverified, POLICY.legal_bases().len());
    assert!(POLICY
        .warnings()
        .iter()
        .any(|w| w.contains("routine flow 'verzuimmelding' depends on org type mbo")));
    assert!(!POLICY.party("mbo").expect("mbo").connected);
    assert_eq!(POLICY.parties().len(), 6);
    assert_eq!(
        POLICY.party("leerplicht").map(|p| p.oin.as_str()),
        Some(LEERPLICHT)
    );
    assert_eq!(
        POLICY.party_by_oin(GGD).map(|p| p.org_type),
        Some(OrgType::Ggd)
    );
    assert!(POLICY.party_by_oin(FG).is_none());
}

#[test]
fn shipped_policy_has_the_required_meetings_and_flows() {
    for id in [
        "aoj-team-vo",
        "ect-vo",
        "ect-mbo",
        "mpl-vo",
        "expertteam-po",
    ] {
        assert!(POLICY.meeting(id).is_some(), "{id}");
    }
    for id in ["verzuimmelding", "monitoring"] {
        assert!(POLICY.routine_flow(id).is_some(), "{id}");
    }
    // The 5a advice is a case about one child, not a routine flow to health data.
    assert!(POLICY.routine_flow("advies-vrijstelling-5a").is_none());
    let advice = POLICY.meeting("advies-5a").expect("advies-5a");
    assert!(advice
        .participant(OrgType::Gemeente, "leerplichtambtenaar")
        .is_some());
    assert!(advice.participant(OrgType::Swv, "ect-lid").is_some());
    assert!(POLICY.routine_flows().iter().all(|f| !f
        .signal_categories()
        .contains(&Category::LangdurigZiek)
        && !f.signal_categories().contains(&Category::Vrijstelling5a)));
    // Every party has its own FG.
    for p in POLICY.parties() {
        assert_eq!(
            POLICY.fgs().iter().filter(|f| f.of.contains(&p.id)).count(),
            1,
            "{}",
            p.id
        );
    }
}

#[test]
fn matrix_mentions_every_meeting_flow_and_the_special_note() {
    let matrix = POLICY.matrix();
    for m in POLICY.meetings() {
        assert!(
            matrix.contains(&format!("[{}] {}", m.id, m.name)),
            "{}",
            m.id
        );
        for p in &m.participants {
            assert!(matrix.contains(&format!("{} : {}", p.org_type.label(), p.role)));
        }
    }
    for f in POLICY.routine_flows() {
        assert!(
            matrix.contains(&format!("[{}] {}", f.id, f.name)),
            "{}",
            f.id
        );
    }
    assert!(
        matrix.contains("gezondheid*")
            && matrix.contains("* bijzonder persoonsgegeven (AVG art. 9)")
    );
    assert!(matrix.contains(POLICY.version()));
}

#[test]
fn version_is_the_sha256_of_the_bytes() {
    let digest = ring::digest::digest(&ring::digest::SHA256, SHIPPED.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(POLICY.version(), format!("sha256:{hex}"));
}

#[test]
fn fg_is_fg_of_its_party_only() {
    assert!(POLICY.is_fg_of(FG, LEERPLICHT));
    assert!(!POLICY.is_fg_of(FG, SWV_VO));
    assert!(!POLICY.is_fg_of(LEERPLICHT, LEERPLICHT));
    assert!(!POLICY.is_fg_of(FG, "junk"));
}

#[test]
fn policy_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Policy>();
}

#[test]
fn load_reads_the_file_and_reports_a_missing_one() {
    let dir = std::env::temp_dir().join(format!("policy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("p.toml");
    std::fs::write(&path, SHIPPED).unwrap();
    assert_eq!(Policy::load(&path).unwrap().version(), POLICY.version());
    let missing = Policy::load(&dir.join("absent.toml")).unwrap_err();
    assert_eq!(missing.0[0].line, 0);
    assert!(missing.to_string().contains("cannot read"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn data_categories_of_a_field() {
    let ids: Vec<&str> = POLICY
        .data_categories_of_field(Field::SourceRecordId)
        .iter()
        .map(|d| d.id.as_str())
        .collect();
    assert_eq!(ids, ["bronverwijzing"]);
}

// ---- broken variants: each error on the right line ----

/// Replaces `from` (which must occur) by `to`; returns the errors and the 1-based line where the
/// replacement starts.
fn broken(from: &str, to: &str) -> (Vec<PolicyError>, usize) {
    let at = SHIPPED
        .find(from)
        .unwrap_or_else(|| panic!("not in the file: {from}"));
    let text = SHIPPED.replacen(from, to, 1);
    let line = text[..at].matches('\n').count() + 1;
    let Err(errors) = Policy::parse(&text, FILE) else {
        panic!("should not parse")
    };
    let errors = errors.0;
    (errors, line)
}

fn assert_error(from: &str, to: &str, line_delta: usize, needle: &str) {
    let (errors, line) = broken(from, to);
    let hit = errors.iter().find(|e| e.message.contains(needle));
    let hit = hit.unwrap_or_else(|| panic!("no error containing {needle:?} in {errors:#?}"));
    assert_eq!(hit.line, line + line_delta, "{hit}");
    assert_eq!(hit.file, FILE);
    assert!(!hit.fix.is_empty());
    assert!(hit.column >= 1, "{hit}");
    let place = format!("{FILE}:{}:{}: ", line + line_delta, hit.column);
    assert!(hit.to_string().starts_with(&place), "{hit}");
}

#[test]
fn unknown_purpose_reference() {
    assert_error(
        "purposes = [\"jgz-advies\"]",
        "purposes = [\"jgz-adviez\"]",
        0,
        "unknown purpose 'jgz-adviez'",
    );
}

#[test]
fn participant_without_legal_basis() {
    let seat = "[[meeting.participant]]\norg_type = \"wij\"\nrole = \"wij-medewerker\"\nlegal_bases = [\"jw-7-4\", \"wmo-5-1-1\", \"avg-6-1-e\"]\n";
    let without = "[[meeting.participant]]\norg_type = \"wij\"\nrole = \"wij-medewerker\"\n";
    assert_error(seat, without, 0, "names no legal basis");
}

#[test]
fn bad_oin() {
    assert_error(
        "oin = \"00000099000000000003\"",
        "oin = \"0000009900000000003\"",
        0,
        "is not 20 digits",
    );
    assert_error(
        "oin = \"00000099000000000003\"",
        "oin = \"00000099000000000001\"",
        0,
        "used by two parties",
    );
}

#[test]
fn unknown_field() {
    assert_error(
        "fields = [\"source_record_id\"]",
        "fields = [\"source_record_id\",\n  \"bsn\"]",
        1,
        "unknown field 'bsn'",
    );
}

#[test]
fn toml_syntax_error() {
    assert_error("id = \"ggd\"", "id = = \"ggd\"", 0, "");
}

#[test]
fn unknown_key_is_refused() {
    let key = "aan tafel. Door geen enkele zetel gebruikt.\"\nart9_exception = true";
    assert_error(
        key,
        "aan tafel. Door geen enkele zetel gebruikt.\"\nart9_exeption = true",
        1,
        "unknown field `art9_exeption`",
    );
}

#[test]
fn health_data_must_be_special() {
    let (errors, _) = broken("special = true\n", "");
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("is not marked special")),
        "{errors:#?}"
    );
}

#[test]
fn special_data_needs_an_art9_exception() {
    let (errors, line) = broken(
        "legal_bases = [\"jw-jgz-verzuim\", \"avg-6-1-e\", \"avg-9-2-a\"]",
        "legal_bases = [\"jw-jgz-verzuim\", \"avg-6-1-e\"]",
    );
    let e = errors
        .iter()
        .find(|e| e.message.contains("AVG art. 9(2) exception"))
        .unwrap();
    assert_eq!(e.line, line - 3, "the line of [[meeting.participant]]");
}

#[test]
fn participant_purpose_outside_the_meeting() {
    assert_error(
        "purposes = [\"jgz-advies\"]",
        "purposes = [\"plaatsing\"]",
        0,
        "is not a purpose of meeting 'aoj-team-vo'",
    );
}

#[test]
fn meeting_purpose_without_processing_activity() {
    let (errors, _) = broken("jgz-advies = \"GRN-GGD-010\"\n", "");
    let e = errors
        .iter()
        .find(|e| e.message.contains("has no processing activity"))
        .unwrap();
    let line = SHIPPED.lines().position(|l| l.starts_with("purposes = [\"passend-aanbod\", \"verzuimaanpak\", \"zorg-en-ondersteuning\", \"jgz-advies\"]")).unwrap() + 1;
    assert_eq!(e.line, line);
}

#[test]
fn formats_and_references_of_parties_and_fgs() {
    assert_error(
        "municipalities = [\"GM0014\"]",
        "municipalities = [\"GM14\"]",
        0,
        "not a CBS municipality code",
    );
    assert_error(
        "schools = [\"25MA\", \"25MB\"]",
        "schools = [\"25MA\", \"25mb\"]",
        0,
        "not a BRIN code",
    );
    assert_error(
        "of = [\"leerplicht\"]",
        "of = [\"leerplight\"]",
        0,
        "unknown party 'leerplight'",
    );
    assert_error(
        "type = \"ggd\"",
        "type = \"jgz\"",
        0,
        "unknown organisation type 'jgz'",
    );
}

#[test]
fn unknown_signal_category_and_scope() {
    assert_error(
        "signal_categories = [\"VRIJSTELLING_5B\", \"VRIJSTELLING_5C\"]",
        "signal_categories = [\"VRIJSTELLING_5D\"]",
        0,
        "unknown signal category",
    );
    assert_error(
        "scope = \"residents\"",
        "scope = \"everyone\"",
        0,
        "unknown scope 'everyone'",
    );
}

#[test]
fn flow_without_processing_activity_and_scope_none_warns() {
    let (errors, _) = broken("processing_activity = \"GRN-LP-001\"\n", "");
    let header = SHIPPED
        .find("[[routine_flow]]\nid = \"verzuimmelding\"")
        .unwrap();
    let e = errors
        .iter()
        .find(|e| e.message.contains("names no processing activity"))
        .unwrap();
    assert_eq!(e.line, SHIPPED[..header].lines().count() + 1);
    let text = SHIPPED.replacen("scope = \"own\"", "scope = \"none\"", 1);
    let p = Policy::parse(&text, FILE).unwrap();
    let none: Vec<&String> = p
        .warnings()
        .iter()
        .filter(|w| w.contains("scope none"))
        .collect();
    assert_eq!(none.len(), 1, "{:?}", p.warnings());
}

#[test]
fn all_errors_are_collected() {
    let text = SHIPPED
        .replacen("oin = \"00000099000000000003\"", "oin = \"3\"", 1)
        .replacen("purposes = [\"jgz-advies\"]", "purposes = [\"x\"]", 1)
        .replacen("fields = [\"source_record_id\"]", "fields = [\"bsn\"]", 1);
    let errors = Policy::parse(&text, FILE).unwrap_err();
    assert_eq!(errors.0.len(), 3, "{errors}");
    assert_eq!(errors.to_string().lines().count(), 3);
}

// ---- evaluate: every rule as written is permitted ----

fn parties_of(types: &[OrgType]) -> Vec<&'static Party> {
    POLICY
        .parties()
        .iter()
        .filter(|p| types.contains(&p.org_type))
        .collect()
}

#[test]
fn every_routine_flow_is_permitted_as_written() {
    for f in POLICY.routine_flows() {
        for caller in parties_of(&f.to) {
            for holder in parties_of(&f.from) {
                for basis in &f.legal_bases {
                    let p = permit(&request(
                        &caller.oin,
                        &holder.oin,
                        &f.role,
                        basis,
                        &f.purpose,
                        flow(&f.id),
                    ));
                    assert_eq!(p.rule, format!("routine_flow {}", f.id));
                    assert_eq!(p.processing_activity, f.processing_activity);
                    assert_eq!(p.data_categories, f.data_categories);
                    assert_eq!(
                        (p.legal_basis.as_str(), p.purpose.as_str()),
                        (basis.as_str(), f.purpose.as_str())
                    );
                }
            }
        }
    }
}

#[test]
fn every_meeting_participant_is_permitted_as_written() {
    for m in POLICY.meetings() {
        for seat in &m.participants {
            let holders = parties_of(
                &m.participants
                    .iter()
                    .map(|s| s.org_type)
                    .collect::<Vec<_>>(),
            );
            for (caller, holder) in parties_of(&[seat.org_type])
                .into_iter()
                .zip(holders.iter().cycle())
            {
                for basis in &seat.legal_bases {
                    for purpose in &seat.purposes {
                        let p = permit(&request(
                            &caller.oin,
                            &holder.oin,
                            &seat.role,
                            basis,
                            purpose,
                            case(&m.id),
                        ));
                        assert_eq!(
                            p.rule,
                            format!(
                                "meeting {} / participant {}:{}",
                                m.id, seat.org_type, seat.role
                            )
                        );
                        assert_eq!(
                            Some(&p.processing_activity),
                            m.processing_activities.get(purpose)
                        );
                        assert_eq!(
                            Some(p.scope),
                            Some(Scope::of_party(caller).unwrap_or(Scope::Unrestricted)),
                            "a case read stays within the caller's own scope"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn routine_flow_scope_comes_from_the_caller() {
    let p = permit(&request(
        LEERPLICHT,
        SWV_VO,
        "leerplichtambtenaar",
        "lpw-art21",
        "verzuimaanpak",
        flow("verzuimmelding"),
    ));
    assert_eq!(
        p.scope,
        Scope::Municipalities(vec!["GM0014".parse().unwrap()])
    );
    assert_eq!(p.rule, "routine_flow verzuimmelding");
    let p = permit(&request(
        SWV_PO,
        MBO,
        "monitor",
        "wpo-18a",
        "monitoring",
        flow("monitoring"),
    ));
    assert_eq!(
        p.scope,
        Scope::Schools(
            ["10PA", "10PB", "10PC"]
                .map(|b| b.parse().unwrap())
                .to_vec()
        )
    );
    assert!(!p.fields.contains(Field::PupilPseudonym));
    let p = permit(&request(
        LEERPLICHT,
        LEERPLICHT,
        "monitor",
        "lpw-art25",
        "monitoring",
        flow("monitoring"),
    ));
    assert_eq!(
        p.scope,
        Scope::Municipalities(vec!["GM0014".parse().unwrap()])
    );
}

#[test]
fn jeugdarts_sees_sickness_and_wij_worker_does_not() {
    let doctor = permit(&request(
        GGD,
        SWV_VO,
        "jeugdarts",
        "avg-9-2-a",
        "jgz-advies",
        case("aoj-team-vo"),
    ));
    assert!(doctor.signal_categories.contains(&Category::LangdurigZiek));
    assert!(doctor.signal_categories.contains(&Category::Vrijstelling5a));
    let wij = permit(&request(
        WIJ,
        SWV_VO,
        "wij-medewerker",
        "jw-7-4",
        "zorg-en-ondersteuning",
        case("aoj-team-vo"),
    ));
    assert!(!wij.signal_categories.contains(&Category::LangdurigZiek));
    assert!(!wij.signal_categories.contains(&Category::Vrijstelling5a));
    assert!(wij.fields.contains(Field::PupilPseudonym));
}

// ---- evaluate: denials name the part ----

#[test]
fn denials_name_the_part_that_did_not_match() {
    let vm = flow("verzuimmelding");
    let cases = [
        (request(LEERPLICHT, SWV_VO, "wij-medewerker", "lpw-art21", "verzuimaanpak", vm), "role 'wij-medewerker'"),
        (request(LEERPLICHT, SWV_VO, "leerplichtambtenaar", "wpg-5", "verzuimaanpak", vm), "legal basis 'wpg-5'"),
        (request(LEERPLICHT, SWV_VO, "leerplichtambtenaar", "lpw-art21", "x", vm), "purpose 'x' is not a purpose of routine flow 'verzuimmelding' (allowed: verzuimaanpak)"),
        (request(GGD, SWV_VO, "leerplichtambtenaar", "lpw-art21", "verzuimaanpak", vm), "caller 'ggd' is a ggd"),
        (request(LEERPLICHT, WIJ, "leerplichtambtenaar", "lpw-art21", "verzuimaanpak", vm), "holder 'wij' is a wij"),
        (request(LEERPLICHT, SWV_VO, "leerplichtambtenaar", "lpw-art21", "verzuimaanpak", flow("nope")), "routine flow 'nope' does not exist"),
        (request(LEERPLICHT, SWV_VO, "leerplichtambtenaar", "lpw-art22", "verzuimaanpak", case("nope")), "meeting 'nope' does not exist"),
        (request(FG, SWV_VO, "leerplichtambtenaar", "lpw-art21", "verzuimaanpak", vm), "caller OIN"),
        (request(LEERPLICHT, "junk", "leerplichtambtenaar", "lpw-art21", "verzuimaanpak", vm), "holder OIN 'junk'"),
        (request(WIJ, SWV_VO, "jeugdarts", "wpg-5", "jgz-advies", case("aoj-team-vo")), "role 'jeugdarts' is not a role of wij"),
        (request(GGD, SWV_VO, "jeugdarts", "wpg-5", "jgz-advies", case("mpl-vo")), "caller 'ggd' is a ggd, which has no seat"),
        (request(GGD, SWV_VO, "jeugdarts", "jw-7-4", "jgz-advies", case("aoj-team-vo")), "legal basis 'jw-7-4'"),
        (request(GGD, SWV_VO, "jeugdarts", "jw-jgz-verzuim", "passend-aanbod", case("aoj-team-vo")), "purpose 'passend-aanbod'"),
        (request(GGD, SWV_VO, "jeugdarts", "wpg-5", "jgz-advies", case("aoj-team-vo")), "legal basis 'wpg-5'"),
        (request(LEERPLICHT, GGD, "leerplichtambtenaar", "lpw-art22", "verzuimaanpak", case("mpl-vo")), "holder 'ggd'"),
    ];
    for (r, needle) in cases {
        let reason = denial(&r);
        assert!(
            reason.contains(needle),
            "{reason:?} should contain {needle:?}"
        );
    }
}

#[test]
fn denial_quotes_at_most_64_characters() {
    let long = "r".repeat(500);
    let reason = denial(&request(
        LEERPLICHT,
        SWV_VO,
        &long,
        "lpw-art21",
        "verzuimaanpak",
        flow("verzuimmelding"),
    ));
    assert!(reason.len() < 200);
}

// ---- property tests ----

/// An independent, literal matcher over the parsed rules: (rule name, data category ids).
fn brute_force(p: &Policy, r: &AccessRequest<'_>) -> Option<(String, Vec<String>)> {
    let caller = p.parties().iter().find(|x| x.oin == r.caller_oin)?;
    let holder = p.parties().iter().find(|x| x.oin == r.holder_oin)?;
    match r.context {
        Context::RoutineFlow { flow } => p
            .routine_flows()
            .iter()
            .find(|f| {
                f.id == flow
                    && f.to.contains(&caller.org_type)
                    && f.from.contains(&holder.org_type)
                    && f.role == r.role
                    && f.legal_bases.iter().any(|b| b == r.legal_basis)
                    && f.purpose == r.purpose
            })
            .map(|f| (format!("routine_flow {}", f.id), f.data_categories.clone())),
        Context::Case { meeting } => {
            let m = p.meetings().iter().find(|m| m.id == meeting)?;
            if !m.participants.iter().any(|s| s.org_type == holder.org_type) {
                return None;
            }
            m.participants
                .iter()
                .find(|s| {
                    s.org_type == caller.org_type
                        && s.role == r.role
                        && s.legal_bases.iter().any(|b| b == r.legal_basis)
                        && s.purposes.iter().any(|x| x == r.purpose)
                })
                .map(|s| {
                    (
                        format!("meeting {} / participant {}:{}", m.id, s.org_type, s.role),
                        s.data_categories.clone(),
                    )
                })
        }
    }
}

#[derive(Debug, Clone)]
struct Req {
    caller: String,
    holder: String,
    role: String,
    basis: String,
    purpose: String,
    flow: bool,
    context: String,
}

impl Req {
    fn as_request(&self) -> AccessRequest<'_> {
        let context = match self.flow {
            true => Context::RoutineFlow {
                flow: &self.context,
            },
            false => Context::Case {
                meeting: &self.context,
            },
        };
        request(
            &self.caller,
            &self.holder,
            &self.role,
            &self.basis,
            &self.purpose,
            context,
        )
    }
}

fn pick(known: Vec<String>) -> BoxedStrategy<String> {
    prop_oneof![4 => proptest::sample::select(known), 1 => "[a-z0-9-]{0,12}"].boxed()
}

fn all_roles() -> Vec<String> {
    let flows = POLICY.routine_flows().iter().map(|f| f.role.clone());
    let seats = POLICY
        .meetings()
        .iter()
        .flat_map(|m| m.participants.iter().map(|s| s.role.clone()));
    flows
        .chain(seats)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Requests drawn from the policy's own ids plus junk, in any combination.
fn any_request() -> impl Strategy<Value = Req> {
    let oins: Vec<String> = POLICY
        .parties()
        .iter()
        .map(|p| p.oin.to_string())
        .chain([FG.to_string()])
        .collect();
    let bases: Vec<String> = POLICY.legal_bases().iter().map(|b| b.id.clone()).collect();
    let purposes: Vec<String> = POLICY.purposes().iter().map(|p| p.id.clone()).collect();
    let flows: Vec<String> = POLICY
        .routine_flows()
        .iter()
        .map(|f| f.id.clone())
        .collect();
    let meetings: Vec<String> = POLICY.meetings().iter().map(|m| m.id.clone()).collect();
    let context = prop_oneof![
        pick(flows).prop_map(|c| (true, c)),
        pick(meetings).prop_map(|c| (false, c))
    ];
    (
        pick(oins.clone()),
        pick(oins),
        pick(all_roles()),
        pick(bases),
        pick(purposes),
        context,
    )
        .prop_map(
            |(caller, holder, role, basis, purpose, (flow, context))| Req {
                caller,
                holder,
                role,
                basis,
                purpose,
                flow,
                context,
            },
        )
}

/// Requests built from one rule, so that they are (nearly always) permitted.
fn rule_request() -> impl Strategy<Value = Req> {
    let mut rules: Vec<Req> = Vec::new();
    for f in POLICY.routine_flows() {
        for caller in parties_of(&f.to) {
            for holder in parties_of(&f.from) {
                for basis in &f.legal_bases {
                    rules.push(Req {
                        caller: caller.oin.to_string(),
                        holder: holder.oin.to_string(),
                        role: f.role.clone(),
                        basis: basis.clone(),
                        purpose: f.purpose.clone(),
                        flow: true,
                        context: f.id.clone(),
                    });
                }
            }
        }
    }
    for m in POLICY.meetings() {
        for s in &m.participants {
            for caller in parties_of(&[s.org_type]) {
                for holder in POLICY.parties() {
                    for basis in &s.legal_bases {
                        for purpose in &s.purposes {
                            rules.push(Req {
                                caller: caller.oin.to_string(),
                                holder: holder.oin.to_string(),
                                role: s.role.clone(),
                                basis: basis.clone(),
                                purpose: purpose.clone(),
                                flow: false,
                                context: m.id.clone(),
                            });
                        }
                    }
                }
            }
        }
    }
    proptest::sample::select(rules)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Permit if and only if one rule literally matches every part; and the permit names it.
    #[test]
    fn permits_exactly_what_a_rule_matches(req in prop_oneof![any_request(), rule_request()]) {
        let r = req.as_request();
        let expected = brute_force(&POLICY, &r);
        match (POLICY.evaluate(&r), expected) {
            (Decision::Permit(p), Some((rule, categories))) => {
                prop_assert_eq!(p.rule, rule);
                prop_assert_eq!(p.data_categories, categories);
            }
            (Decision::Deny(_), None) => {}
            (decision, expected) => prop_assert!(false, "evaluate {:?} but brute force {:?}", decision, expected),
        }
    }

    /// A permit's fields and rows are exactly the union over its data categories.
    #[test]
    fn permit_fields_and_rows_are_the_union_of_its_categories(req in prop_oneof![1 => any_request(), 3 => rule_request()]) {
        if let Decision::Permit(p) = POLICY.evaluate(&req.as_request()) {
            let categories: Vec<&DataCategory> = p.data_categories.iter().filter_map(|id| POLICY.data_category(id)).collect();
            prop_assert_eq!(categories.len(), p.data_categories.len());
            let fields = categories.iter().fold(FieldSet::EMPTY, |acc, d| acc.union(d.fields));
            let rows: BTreeSet<Category> = categories.iter().flat_map(|d| d.signal_categories.iter().copied()).collect();
            prop_assert_eq!(p.fields, fields);
            prop_assert_eq!(p.signal_categories, rows.into_iter().collect::<Vec<_>>());
        }
    }

    /// Deleting any line never panics, and every error points at a line of the file.
    #[test]
    fn broken_files_give_errors_within_the_file(line in 0..SHIPPED.lines().count()) {
        let text: String = SHIPPED.lines().enumerate().filter(|(i, _)| *i != line).map(|(_, l)| format!("{l}\n")).collect();
        let lines = text.lines().count();
        if let Err(errors) = Policy::parse(&text, FILE) {
            prop_assert!(!errors.0.is_empty());
            for e in errors.0 {
                prop_assert!(e.line >= 1 && e.line <= lines + 1, "{}", e);
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = Policy::parse(&text, FILE);
    }
}

// ---- case rules per meeting: lead, size, acceptance ----

#[test]
fn shipped_meetings_name_their_lead_size_and_acceptance() {
    let aoj = POLICY.meeting("aoj-team-vo").unwrap();
    assert_eq!(aoj.lead, vec![OrgType::Swv]);
    assert_eq!(aoj.max_pupils, 10);
    assert!(aoj.needs_acceptance);
    assert!(POLICY
        .meeting("werkgroep-verdiepend-verzuim")
        .unwrap()
        .may_lead(OrgType::Gemeente));
    assert!(POLICY.meetings().iter().all(|m| !m.lead.is_empty()));
}

#[test]
fn a_meeting_must_name_a_lead_with_a_seat_and_a_scope() {
    let (errors, _) = broken("lead = [\"gemeente\"]\n", "");
    assert!(
        errors.iter().any(|e| e.message.contains("names no lead")),
        "{errors:#?}"
    );
    assert_error(
        "lead = [\"mbo\"]",
        "lead = [\"mbo\", \"swv\"]",
        0,
        "lets a swv lead, but a swv has no seat",
    );
    assert_error("lead = [\"swv\"]", "lead = [\"wij\"]", 0, "has no scope");
}

#[test]
fn max_pupils_is_bounded() {
    for bad in ["0", "-1", "1000"] {
        assert_error(
            "max_pupils = 10",
            &format!("max_pupils = {bad}"),
            0,
            &format!("max_pupils = {bad}"),
        );
    }
    let text = SHIPPED.replacen("max_pupils = 10", "max_pupils = 3", 1);
    let policy = Policy::parse(&text, FILE).unwrap();
    assert_eq!(policy.meeting("aoj-team-vo").unwrap().max_pupils, 3);
    let text = SHIPPED.replacen("max_pupils = 10\n", "", 1);
    let policy = Policy::parse(&text, FILE).unwrap();
    assert_eq!(
        policy.meeting("aoj-team-vo").unwrap().max_pupils,
        DEFAULT_MAX_PUPILS
    );
}

#[test]
fn a_meeting_without_acceptance_is_warned_about_and_shown() {
    let text = SHIPPED.replacen(
        "max_pupils = 10",
        "max_pupils = 10\nneeds_acceptance = false",
        1,
    );
    let policy = Policy::parse(&text, FILE).unwrap();
    assert!(!policy.meeting("aoj-team-vo").unwrap().needs_acceptance);
    assert!(
        policy
            .warnings()
            .iter()
            .any(|w| w.contains("aoj-team-vo") && w.contains("needs no acceptance")),
        "{:?}",
        policy.warnings()
    );
    assert!(policy.matrix().contains("GEEN acceptatie nodig"));
    let shipped = POLICY.matrix();
    assert!(shipped.contains("regie: alleen een swv mag een casus openen en delen"));
    assert!(shipped.contains("hoogstens 10 leerlingen per casus"));
    assert!(!shipped.contains("GEEN acceptatie nodig"));
}

#[test]
fn only_a_lead_org_type_may_lead_a_case() {
    assert!(POLICY.check_case_lead("aoj-team-vo", SWV_VO).is_ok());
    let reason = POLICY
        .check_case_lead("aoj-team-vo", LEERPLICHT)
        .unwrap_err();
    assert!(reason.contains("may not lead"), "{reason}");
    assert!(POLICY
        .check_case_lead("werkgroep-verdiepend-verzuim", LEERPLICHT)
        .is_ok());
    assert!(POLICY.check_case_lead("ect-vo", LEERPLICHT).is_err());
    assert!(POLICY.check_case_lead("ect-vo", FG).is_err());
    let reason = POLICY
        .check_case_parties("ect-vo", "verzuimaanpak", LEERPLICHT, SWV_VO)
        .unwrap_err();
    assert!(reason.contains("may not lead"), "{reason}");
}

#[test]
fn a_case_narrows_a_read_to_the_leads_scope_and_never_widens_the_callers() {
    let lp = permit(&request(
        LEERPLICHT,
        SWV_VO,
        "leerplichtambtenaar",
        "lpw-art22",
        "passend-aanbod",
        case("aoj-team-vo"),
    ));
    assert_eq!(
        lp.scope,
        Scope::Municipalities(vec!["GM0014".parse().unwrap()])
    );
    let lp = POLICY.narrow_to_case(lp, SWV_VO).unwrap();
    let swv_schools = Scope::Schools(POLICY.party_by_oin(SWV_VO).unwrap().schools.clone());
    assert_eq!(
        lp.scope,
        Scope::Both(
            Box::new(Scope::Municipalities(vec!["GM0014".parse().unwrap()])),
            Box::new(swv_schools.clone())
        )
    );
    let doctor = permit(&request(
        GGD,
        SWV_VO,
        "jeugdarts",
        "jw-jgz-verzuim",
        "jgz-advies",
        case("aoj-team-vo"),
    ));
    assert_eq!(doctor.scope, Scope::Unrestricted);
    let doctor = POLICY.narrow_to_case(doctor, SWV_VO).unwrap();
    assert_eq!(doctor.scope, swv_schools);
    assert!(
        POLICY.narrow_to_case(doctor, WIJ).is_err(),
        "a wij has no scope to lead with"
    );
}

// ---- who may record a care offer in a case ----

#[test]
fn care_offers_are_recorded_by_the_org_types_the_meeting_names_with_a_seat() {
    let aoj = POLICY.meeting("aoj-team-vo").unwrap();
    assert!(aoj.may_record_offer(OrgType::Wij));
    assert!(!aoj.may_record_offer(OrgType::Gemeente) && !aoj.may_record_offer(OrgType::Ggd));
    assert!(POLICY
        .meeting("expertteam-po")
        .unwrap()
        .may_record_offer(OrgType::Jeugdhulp));
    assert!(POLICY
        .meeting("advies-5a")
        .unwrap()
        .may_record_offer
        .is_empty());
    assert_error(
        "may_record_offer = [\"wij\"]",
        "may_record_offer = [\"wij\", \"mbo\"]",
        0,
        "lets a mbo record a care offer, but a mbo has no seat",
    );
    let matrix = POLICY.matrix();
    assert!(
        matrix.contains("aanbod vastleggen: een wij in de casus mag een zorgaanbod"),
        "{matrix}"
    );
    assert!(matrix.contains("aanbod vastleggen: niemand in de casus"));
    let json = POLICY.matrix_json();
    let aoj_json = json["casusoverleggen"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "aoj-team-vo")
        .unwrap();
    assert_eq!(aoj_json["aanbod_vastleggen"], serde_json::json!(["wij"]));
}
