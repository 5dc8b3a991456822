//! The console's pages: askama templates under `templates/console/`, Dutch text, rendered from
//! what the node's REST API answers. Pages show and ask; they decide nothing and never put a
//! BSN in a URL, a log line or a page after a form was sent.

use super::person::Person;
use super::Console;
use askama::Template;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// The one stylesheet, embedded.
const CSS: &str = include_str!("console.css");

/// The largest form the console takes.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// This browser's CSRF cookie (sent, or set with this answer), for the tokens of the page's
/// forms.
#[derive(Debug, Clone)]
pub struct FormKey {
    pub cookie: String,
}

impl FormKey {
    /// The token of the form that posts to `action`, for `person`.
    pub fn token(&self, console: &Console, person: &Person, action: &str) -> String {
        console.csrf.token(&self.cookie, &person.name, action)
    }
}

/// Checks a posted form's CSRF token against the cookie the browser sent with it (not one the
/// guard just made: a browser without the cookie has no valid token).
// The refusal is the page a handler returns as it is; boxing it would only add an allocation.
#[allow(clippy::result_large_err)]
pub fn check_form(
    console: &Console,
    headers: &axum::http::HeaderMap,
    person: &Person,
    action: &str,
    token: &str,
) -> Result<(), Box<Response>> {
    let cookie = headers
        .get(header::COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(|c| console.csrf.cookie_of(Some(c)));
    console
        .csrf
        .verify(cookie.as_deref(), &person.name, action, Some(token))
        .map_err(|e| {
            tracing::info!(console.form = action, reason = %e, "console: form refused (CSRF)");
            Box::new(refusal(
                StatusCode::FORBIDDEN,
                "Formulier niet aangenomen",
                "Dit formulier kwam niet (meer) van deze console. Open de pagina opnieuw en \
                 verstuur het formulier nog eens.",
            ))
        })
}

/// An item of the main menu.
#[derive(Debug)]
pub struct NavItem {
    pub key: &'static str,
    pub href: &'static str,
    pub label: &'static str,
}

/// The FG's menu: the Privacy pages.
pub const NAV_FG: &[NavItem] = &[
    NavItem {
        key: "start",
        href: "/",
        label: "Start",
    },
    NavItem {
        key: "auditlog",
        href: "/privacy/auditlog",
        label: "Auditlog",
    },
    NavItem {
        key: "controle",
        href: "/privacy/controle",
        label: "Controle van het log",
    },
    NavItem {
        key: "inzage",
        href: "/privacy/inzage",
        label: "Inzagerapport",
    },
    NavItem {
        key: "matrix",
        href: "/privacy/matrix",
        label: "Convenantmatrix",
    },
    NavItem {
        key: "exporteren",
        href: "/privacy/exporteren",
        label: "Exporteren",
    },
];

/// The organisation's menu: the pages of its own work.
pub const NAV: &[NavItem] = &[
    NavItem {
        key: "start",
        href: "/",
        label: "Start",
    },
    NavItem {
        key: "signaleringslijst",
        href: "/signaleringslijst",
        label: "Signaleringslijst",
    },
    NavItem {
        key: "rapportage",
        href: "/rapportage",
        label: "Rapportage",
    },
    NavItem {
        key: "signalen",
        href: "/signalen",
        label: "Signalen",
    },
    NavItem {
        key: "navragen",
        href: "/navragen",
        label: "Navragen bij partners",
    },
    NavItem {
        key: "casussen",
        href: "/casussen",
        label: "Casussen",
    },
];

/// What the layout of every page shows.
#[derive(Debug)]
pub struct Layout {
    pub title: String,
    pub active: &'static str,
    /// "person, organisation", or empty on a refusal without a person.
    pub who: String,
    pub nav: &'static [NavItem],
}

impl Layout {
    pub fn new(console: &Console, title: &str, active: &'static str, person: &Person) -> Self {
        Self {
            title: title.to_owned(),
            active,
            who: format!("{} ({})", person.name, person.organisation.name),
            nav: if console.fg { NAV_FG } else { NAV },
        }
    }
}

#[derive(Template)]
#[template(path = "console/refusal.html")]
struct RefusalPage<'a> {
    layout: Layout,
    message: &'a str,
}

/// Renders a template, or a plain refusal if it cannot be rendered.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console: a template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "De pagina kon niet worden opgebouwd.",
            )
                .into_response()
        }
    }
}

/// A page that says why a request is refused (no menu: the person may be unknown).
pub fn refusal(status: StatusCode, title: &str, message: &str) -> Response {
    let page = RefusalPage {
        layout: Layout {
            title: title.to_owned(),
            active: "",
            who: String::new(),
            nav: NAV,
        },
        message,
    };
    render(status, &page)
}

/// The console's routes, behind the guard.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(super::start::page))
        .route("/console.css", get(stylesheet))
        .route("/signalen", get(super::signals::page))
        .route("/rapportage", get(super::report::page))
        .route("/rapportage.csv", get(super::report::csv))
        .route("/privacy/auditlog", get(super::privacy::log))
        .route("/privacy/controle", get(super::privacy::verify))
        .route(
            super::privacy::INZAGE,
            get(super::privacy::access_form).post(super::privacy::access_report),
        )
        .route(
            super::due::ACTION,
            get(super::due::own).post(super::due::with_partners),
        )
        .route(
            super::query::ACTION,
            get(super::query::form).post(super::query::ask),
        )
        .route(super::cases::PAGE, get(super::cases::list))
        .route(
            super::cases::OFFER,
            axum::routing::post(super::cases::record_offer),
        )
        .route(
            super::child::LOOKUP,
            axum::routing::post(super::child::look_up),
        )
        .route(super::child::PAGE, get(super::child::page))
        .route(super::cases::OPEN, axum::routing::post(super::cases::open))
        .route(
            super::cases::DECIDE,
            axum::routing::post(super::cases::decide),
        )
        .route(
            super::cases::CLOSE,
            axum::routing::post(super::cases::close),
        )
        // The FG's pages of issue 13: the matrix, an entry's proof, the export.
        .route(super::matrix::PAGE, get(super::matrix::page))
        .route("/privacy/auditlog/{seq}", get(super::privacy::entry))
        .route(
            super::privacy::EXPORT,
            get(super::privacy::export_form).post(super::privacy::export),
        )
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            super::guard::guard,
        ))
        .with_state(console)
}

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

async fn not_found() -> Response {
    refusal(
        StatusCode::NOT_FOUND,
        "Pagina niet gevonden",
        "Deze pagina bestaat niet. Kies een pagina in het menu op Start.",
    )
}
