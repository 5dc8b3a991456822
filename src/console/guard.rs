//! What every request to the console passes before a page sees it: who the person is (from the
//! configuration or the connection's personal certificate), the node's limits (requests in
//! flight, the request deadline), the Host check against DNS rebinding on a workstation, and the
//! security headers on every answer (a strict CSP, no caching of pupil data). Refuses; never
//! reads a form.

use super::person::{person_for, Person};
use super::Console;
use crate::identity::Organisation;
use crate::limits::{Admits, Conn, GateLayer};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt as _;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected as _;

/// The Content-Security-Policy of every answer: nothing but the console's own stylesheet and
/// images, no script at all, forms only to itself, never framed.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Who is at the other end of a connection: the person, or why the connection names none.
#[derive(Debug, Clone)]
pub struct Peer {
    pub person: Result<Person, String>,
}

/// The workstation listener: loopback, the configured person on every connection.
pub struct Workstation {
    pub listener: TcpListener,
    pub person: Person,
}

impl axum::serve::Listener for Workstation {
    type Io = TcpStream;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, _) = axum::serve::Listener::accept(&mut self.listener).await;
        let _ = io.set_nodelay(true);
        (
            io,
            Peer {
                person: Ok(self.person.clone()),
            },
        )
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Peer {
            person: Ok(self.person.clone()),
        })
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Workstation>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Workstation>) -> Self {
        stream.remote_addr().clone()
    }
}

/// The network listener: TLS connections under the node's limits (handshakes, connections),
/// each with the person its personal certificate names.
pub struct Network {
    incoming: ReceiverStream<Result<Conn, std::io::Error>>,
    own: Organisation,
    addr: SocketAddr,
}

impl Network {
    pub fn new(
        incoming: ReceiverStream<Result<Conn, std::io::Error>>,
        own: Organisation,
        addr: SocketAddr,
    ) -> Self {
        Self {
            incoming,
            own,
            addr,
        }
    }
}

impl axum::serve::Listener for Network {
    type Io = Conn;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.incoming.next().await {
                Some(Ok(conn)) => {
                    let person = conn
                        .connect_info()
                        .peer_certs()
                        .and_then(|certs| certs.first().map(|c| c.to_vec()))
                        .ok_or_else(|| "no client certificate".to_owned())
                        .and_then(|der| person_for(&der, &self.own).map_err(|e| e.to_string()));
                    if let Err(reason) = &person {
                        tracing::info!(reason = %reason, "console: certificate names no person of this organisation");
                    }
                    return (conn, Peer { person });
                }
                Some(Err(e)) => tracing::warn!(error = %e, "console: accept failed"),
                // The accept loop has ended: nothing more will come.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Peer {
            person: Err(format!("the listener at {}", self.addr)),
        })
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Network>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Network>) -> Self {
        stream.remote_addr().clone()
    }
}

/// The headers every answer carries.
fn secure_headers(response: &mut Response, tls: bool) {
    let headers = response.headers_mut();
    let set = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
        (
            header::HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=(), interest-cohort=()",
        ),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
}

/// The middleware over every route: person, admission, Host, deadline, headers.
pub async fn guard(
    State(console): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    request: Request,
    next: Next,
) -> Response {
    let tls = console.secure();
    let mut response = admit(&console, peer, request, next).await;
    secure_headers(&mut response, tls);
    response
}

async fn admit(console: &Console, peer: Peer, mut request: Request, next: Next) -> Response {
    let person = match peer.person {
        Ok(person) => person,
        Err(reason) => {
            return super::pages::refusal(
                StatusCode::FORBIDDEN,
                "Geen toegang",
                &format!(
                    "Uw certificaat geeft geen toegang tot deze console van {}: {reason}.",
                    console.own.name
                ),
            )
        }
    };
    if !console.secure() && !host_allowed(console, &request) {
        return super::pages::refusal(
            StatusCode::MISDIRECTED_REQUEST,
            "Onbekend adres",
            "Deze console antwoordt alleen op het adres waarop hij luistert.",
        );
    }
    let own = console.own.oin.clone();
    let admits: Admits = Arc::new(move |oin: &str| oin == own);
    let layer = GateLayer::new(console.gate.clone(), admits, console.own.to_string());
    request.extensions_mut().insert(person.organisation.clone());
    let permit = match layer.admit_request(request.extensions()) {
        Ok(permit) => permit,
        Err(status) => {
            return super::pages::refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "Even geduld",
                &format!(
                    "De console kan dit verzoek nu niet aannemen ({}).",
                    status.message()
                ),
            )
        }
    };
    let sent = request
        .headers()
        .get(header::COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(|c| console.csrf.cookie_of(Some(c)));
    let fresh = match sent {
        Some(_) => None,
        None => match console.csrf.new_cookie() {
            Ok(cookie) => Some(cookie),
            Err(e) => {
                return super::pages::refusal(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Storing",
                    &format!("De console kan geen formulieren beveiligen: {e}."),
                )
            }
        },
    };
    let cookie = sent.or_else(|| fresh.clone()).unwrap_or_default();
    request
        .extensions_mut()
        .insert(super::pages::FormKey { cookie });
    request.extensions_mut().insert(person);
    let deadline = console.gate.limits().request_timeout();
    let response = match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => super::pages::refusal(
            StatusCode::GATEWAY_TIMEOUT,
            "Te laat",
            &format!(
                "Het antwoord duurde langer dan {} seconden. Probeer het opnieuw.",
                deadline.as_secs()
            ),
        ),
    };
    drop(permit);
    let mut response = response;
    if let Some(cookie) = fresh {
        if let Ok(value) =
            HeaderValue::from_str(&console.csrf.set_cookie(&cookie, console.secure()))
        {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

fn host_allowed(console: &Console, request: &Request) -> bool {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    host.is_some_and(|h| console.hosts.iter().any(|allowed| allowed == h))
}
