//! The OpenAPI 3 document of the REST API, generated from the handlers' and DTOs' annotations
//! (utoipa), never written by hand: served at `/v1/openapi.json` and committed as
//! `docs/openapi.json` (the public copy; the node's port needs a covenant certificate). Owns the
//! document's metadata: contact, semver version, Dutch descriptions.

use super::version::API_VERSION;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::SecurityScheme;
use utoipa::openapi::{ObjectBuilder, OpenApi as Document, Type};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "pactgate REST API",
        description = "De REST API van een pactgate-knooppunt voor de eigen systemen van een \
                       partner van een Thuiszitterspact (bijvoorbeeld de verzuimmodule van een \
                       samenwerkingsverband of het leerplichtsysteem van een gemeente) en voor \
                       zijn functionaris gegevensbescherming. Volgt de REST API Design Rules \
                       (Logius). Elke aanroep gaat over wederzijds TLS met het certificaat van \
                       de eigen organisatie; het OIN in dat certificaat bepaalt wie er vraagt. \
                       Een BSN of pseudoniem staat nooit in een URL of query: alleen in de body \
                       van een POST. De uitwisseling tussen knooppunten blijft gRPC.",
        contact(
            name = "Beheer pactgate",
            url = "https://pactgate.example/api",
            email = "beheer@pactgate.example"
        ),
        license(name = "EUPL-1.2", identifier = "EUPL-1.2"),
    ),
    servers((url = "/v1", description = "Het eigen knooppunt (wederzijds TLS, HTTP/1.1 en HTTP/2)")),
    paths(openapi_json, super::signals::push, super::signals::list, super::signals::search,
        super::federation::federated_query, super::cases::open, super::cases::list,
        super::cases::close, super::cases::accept, super::cases::decline, super::cases::record_offer,
        super::clock::due_list, super::clock::report, super::clock::counts,
        super::audit::search, super::audit::export, super::audit::access_report,
        super::audit::verify, super::audit::prove,
        super::clock::look_up_pupil, super::cases::search, super::cases::meetings,
        super::covenant::covenant_matrix, super::audit::latest_checkpoint, super::peers::list),
    components(schemas(super::problem::Problem)),
    modifiers(&Versioned),
    security(("covenantCertificate" = [])),
    tags(
        (name = "api", description = "Over deze API zelf."),
        (name = "uitwisseling", description = "Gefedereerde vragen aan de andere knooppunten van het convenant."),
        (name = "casussen", description = "Casussen van casusoverleggen: openen, opvragen, sluiten, accepteren, weigeren, zorgaanbod vastleggen."),
        (name = "audit", description = "Inzage in het auditlog voor de functionaris gegevensbescherming (FG)."),
        (name = "klok", description = "De verzuimklok, de G4-rapportage en tellingen."),
        (name = "signalen", description = "Signalen aanleveren en opvragen (alleen de eigen organisatie van het knooppunt)."),
        (name = "convenant", description = "Het convenant zelf: de matrix van Bijlage 3."),
        (name = "knooppunt", description = "Het knooppunt zelf: de andere knooppunten, bereikbaar of niet."),
    )
)]
struct ApiDoc;

/// Sets `info.version` to [`API_VERSION`], names the mutual-TLS security scheme, and documents
/// the `API-Version` header on every response.
struct Versioned;

impl Modify for Versioned {
    fn modify(&self, doc: &mut Document) {
        doc.info.version = API_VERSION.into();
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "covenantCertificate",
            SecurityScheme::MutualTls {
                description: Some(
                    "Het PKIoverheid-certificaat (in ontwikkeling: certs-dev) van de eigen \
                     organisatie, uitgegeven onder de CA van het convenant."
                        .into(),
                ),
                extensions: None,
            },
        );
        let version_header = utoipa::openapi::HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::String))
            .description(Some(
                "De volledige versie van de API (semver), bijvoorbeeld 1.0.0.",
            ))
            .build();
        for item in doc.paths.paths.values_mut() {
            for operation in operations_mut(item) {
                for response in operation.responses.responses.values_mut() {
                    if let utoipa::openapi::RefOr::T(response) = response {
                        response
                            .headers
                            .insert(api_version_name(), version_header.clone());
                    }
                }
            }
        }
    }
}

fn api_version_name() -> String {
    "API-Version".into()
}

/// Every operation of a path item.
pub fn operations_mut(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// The method and path (under the server's `/v1`) of every operation in the document.
pub fn documented(doc: &Document) -> Vec<(axum::http::Method, String)> {
    use axum::http::Method;
    let mut out = Vec::new();
    for (path, item) in &doc.paths.paths {
        let methods = [
            (Method::GET, item.get.is_some()),
            (Method::PUT, item.put.is_some()),
            (Method::POST, item.post.is_some()),
            (Method::DELETE, item.delete.is_some()),
            (Method::PATCH, item.patch.is_some()),
        ];
        for (method, present) in methods {
            if present {
                out.push((method, format!("{}{path}", super::BASE)));
            }
        }
    }
    out
}

/// The OpenAPI document.
pub fn document() -> Document {
    ApiDoc::openapi()
}

/// The document as it is served and committed: pretty JSON with a final newline.
pub fn document_json() -> String {
    let mut json = document()
        .to_pretty_json()
        .expect("an OpenAPI document always serialises");
    json.push('\n');
    json
}

/// Het OpenAPI-document van deze API.
///
/// Dezelfde inhoud als `docs/openapi.json` in de broncode van pactgate: dat is de openbare kopie,
/// leesbaar zonder certificaat.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "getOpenApiDocument",
    tag = "api",
    responses(
        (status = 200, description = "Het OpenAPI 3-document.", content_type = "application/json",
         body = Object),
        (status = 401, description = "Het certificaat noemt geen organisatie.",
         content_type = "application/problem+json", body = super::problem::Problem),
        (status = 403, description = "De organisatie is geen partij van het convenant.",
         content_type = "application/problem+json", body = super::problem::Problem),
    )
)]
pub async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
        .into_response()
}

/// The handler of `GET /v1/openapi.json`.
pub use openapi_json as serve;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_says_its_version_and_contact() {
        let doc = document();
        assert_eq!(doc.info.version, API_VERSION);
        let contact = doc.info.contact.expect("a contact");
        assert!(contact.name.is_some() && contact.url.is_some() && contact.email.is_some());
        assert_eq!(
            super::super::version::API_VERSION_HEADER,
            api_version_name().to_lowercase()
        );
    }

    #[test]
    fn every_response_documents_the_version_header() {
        let mut doc = document();
        for item in doc.paths.paths.values_mut() {
            for op in operations_mut(item) {
                for response in op.responses.responses.values() {
                    let utoipa::openapi::RefOr::T(response) = response else {
                        continue;
                    };
                    assert!(response.headers.contains_key("API-Version"));
                }
            }
        }
    }
}
