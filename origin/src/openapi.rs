//! The API's OpenAPI 3.1 description, generated from the code: each handler's
//! `#[utoipa::path]` (its route, parameters, bodies and own answers) and the
//! types it takes and returns, collected from the same list the router is built
//! from ([`crate::routes`]). What every operation shares is added here, in one
//! place, as the code applies it in one place:
//! - every `/api` read answers with `ETag` and `Cache-Control`, and 304 to a
//!   matching `If-None-Match` (`http_cache::cacheable_json`);
//! - every `/api` operation may be shed or time out: 503 with `Retry-After`
//!   (`startup::shed_load`), and reads the database: 503 when it is away or
//!   asks for a retry, 500 when it fails in a way a retry would meet again;
//! - every operation with a body may be refused before the handler: 400 (not
//!   JSON), 413 (too large), 415 (not `application/json`), 422 (wrong shape);
//! - every operation with a bearer requirement may answer 401 with `WWW-Authenticate`;
//! - every error answer carries the [`ErrorBody`] and `Cache-Control: no-store`
//!   (`error.rs`).
//!
//! Served at `GET /openapi.json`; `docs/openapi.json` is a copy that
//! `tests/openapi.rs` keeps equal.

use std::sync::OnceLock;

use serde_json::Value;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, LicenseBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Required,
    Response, ResponseBuilder,
};
use utoipa_axum::router::OpenApiRouter;

use crate::error::RETRY_AFTER_SECS;
use crate::routes;

/// The description as pretty-printed JSON, made once.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut value = serde_json::to_value(description()).expect("the description serialises");
        mark_headers_required(&mut value);
        let mut text = serde_json::to_string_pretty(&value).expect("a JSON value prints");
        text.push('\n');
        text
    })
}

/// The description: every route the router serves, with the shared rules applied.
pub fn description() -> OpenApi {
    let mut api = OpenApiRouter::with_openapi(base())
        .merge(routes::api_routes())
        .merge(routes::health_routes())
        .into_openapi();
    for (path, item) in &mut api.paths.paths {
        let api_route = path.starts_with("/api/");
        let operations = [
            (true, &mut item.get),
            (false, &mut item.post),
            (false, &mut item.patch),
            (false, &mut item.delete),
        ];
        for (is_get, operation) in operations {
            if let Some(operation) = operation {
                apply_shared_rules(operation, api_route, is_get);
            }
        }
    }
    api
}

fn base() -> OpenApi {
    let mut api = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Song comments")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Songs, and comments pinned to a position in them. Reads are public and \
                     cacheable (ETag, Cache-Control, 304); writes need a bearer token (an HS256 \
                     JWT whose `sub` is the user id) and act as that user. Every error answer is \
                     JSON: `{\"error\": \"what was wrong\", \"code\": \"...\"}`.",
                ))
                .license(Some(
                    LicenseBuilder::new()
                        .name("MIT OR Apache-2.0")
                        .identifier(Some("MIT OR Apache-2.0"))
                        .build(),
                ))
                .build(),
        )
        .tags(Some([
            tag(
                "songs",
                "Songs and their comment lists (public, cacheable).",
            ),
            tag("comments", "Single comments: read, post, edit and delete."),
            tag("operations", "Health, metrics and this description."),
        ]))
        .build();
    let scheme = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .bearer_format("JWT")
        .description(Some(
            "An HS256 JWT with `sub` (the user id, a positive integer as a string) and `exp`.",
        ))
        .build();
    api.components
        .get_or_insert_with(Default::default)
        .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    api
}

fn tag(name: &str, description: &str) -> utoipa::openapi::tag::Tag {
    TagBuilder::new()
        .name(name)
        .description(Some(description))
        .build()
}

fn apply_shared_rules(operation: &mut Operation, api_route: bool, is_get: bool) {
    let responses = &mut operation.responses.responses;
    if api_route && is_get {
        if let Some(RefOr::T(ok)) = responses.get_mut("200") {
            add_caching_headers(ok);
        }
        let mut not_modified = ResponseBuilder::new()
            .description("The client's copy (`If-None-Match`) is current; no body.")
            .build();
        add_caching_headers(&mut not_modified);
        responses.insert("304".into(), not_modified.into());
        let if_none_match = ParameterBuilder::new()
            .name("If-None-Match")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some("ETags the client holds: a match answers 304."))
            .schema(Some(string()))
            .build();
        operation
            .parameters
            .get_or_insert_with(Vec::new)
            .push(if_none_match.into());
    }
    let responses = &mut operation.responses.responses;
    if api_route {
        responses.insert(
            "500".into(),
            error(
                "An error the server did not expect (the database refused a statement for \
                 a reason a retry would meet again): the cause is logged, not sent.",
            )
            .into(),
        );
        responses.insert(
            "503".into(),
            error(
                "Overloaded (shed at once, not queued), too slow, or the database is away: \
                 retry after `Retry-After` seconds.",
            )
            .into(),
        );
    }
    if operation.request_body.is_some() {
        for (status, description) in [
            (
                "400",
                "The body is not JSON, or a value in it is not allowed.",
            ),
            ("413", "The body is larger than the server accepts."),
            ("415", "The body is not `application/json`."),
            (
                "422",
                "The JSON does not have the request's shape (a field missing or of the wrong type).",
            ),
        ] {
            responses
                .entry(status.into())
                .or_insert_with(|| error(description).into());
        }
    }
    if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
        responses.insert(
            "401".into(),
            error("No bearer token, or one that is expired, forged, malformed or for an unknown user.")
                .into(),
        );
    }
    for (status, response) in responses.iter_mut() {
        if let RefOr::T(response) = response {
            decorate_error(status, response);
        }
    }
}

/// An error answer: the [`ErrorBody`], never stored by caches.
fn error(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// The headers `error.rs` puts on every 4xx and 5xx, by status.
fn decorate_error(status: &str, response: &mut Response) {
    if !(status.starts_with('4') || status.starts_with('5')) {
        return;
    }
    response.headers.insert(
        "Cache-Control".into(),
        header(string_const("no-store"), "Error answers are never stored."),
    );
    if status == "503" {
        response.headers.insert(
            "Retry-After".into(),
            header(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .examples([RETRY_AFTER_SECS])
                    .into(),
                "Seconds to wait before retrying.",
            ),
        );
    }
    if status == "401" {
        response.headers.insert(
            "WWW-Authenticate".into(),
            header(string_const("Bearer"), "The scheme to authenticate with."),
        );
    }
}

fn add_caching_headers(response: &mut Response) {
    response.headers.insert(
        "ETag".into(),
        header(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^\"[0-9a-f]{32}\"$"))
                .into(),
            "A strong validator of the body (the same on every instance).",
        ),
    );
    response.headers.insert(
        "Cache-Control".into(),
        header(
            string(),
            "`public, max-age=…, s-maxage=…, stale-while-revalidate=…, stale-if-error=…` as configured.",
        ),
    );
}

fn header(
    schema: RefOr<utoipa::openapi::schema::Schema>,
    description: &str,
) -> RefOr<utoipa::openapi::header::Header> {
    HeaderBuilder::new()
        .schema(Some(schema))
        .description(Some(description))
        .build()
        .into()
}

fn string() -> RefOr<utoipa::openapi::schema::Schema> {
    ObjectBuilder::new().schema_type(Type::String).into()
}

fn string_const(value: &str) -> RefOr<utoipa::openapi::schema::Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some([value]))
        .into()
}

/// Every response header this service documents is sent on every such
/// response; utoipa's header object has no `required`, so it is set here.
fn mark_headers_required(value: &mut Value) {
    let Some(paths) = value.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for operation in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
    {
        let Some(responses) = operation
            .get_mut("responses")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        for response in responses.values_mut() {
            if let Some(headers) = response.get_mut("headers").and_then(Value::as_object_mut) {
                for header in headers.values_mut().filter_map(Value::as_object_mut) {
                    header.insert("required".into(), Value::Bool(true));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_error_body_schema_is_the_one_error_rs_sends() {
        let schema =
            serde_json::to_value(<crate::error::ErrorBody as utoipa::PartialSchema>::schema())
                .unwrap();
        assert_eq!(schema["required"], serde_json::json!(["error", "code"]));
    }
}
