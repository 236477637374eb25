//! Typed request input whose rejections are RFC 9457 problems: [`Json`], [`Query`] and
//! [`Form`] read as axum's extractors of the same names do, but a body or query the
//! handler cannot take is answered with `application/problem+json`, with the status a
//! client can act on and, for serde errors, the field at fault as `invalid-params`
//! (`name` is its path, `items[2].quantity`):
//!
//! | What is wrong | Status |
//! |---|---|
//! | `Content-Type` is not JSON (`Json`) or a form (`Form` with a body) | 415 |
//! | the body is larger than the function's `maxBodyBytes` | 413 |
//! | the body is not JSON (syntax, truncated, trailing data) | 400 |
//! | the JSON or form body does not fit the type (missing field, wrong type, bad value) | 422 |
//! | the query string does not fit the type (`Query`, `Form` on GET/HEAD) | 400 |
//!
//! Reasons quote serde's message, never the offending value beyond what serde names.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::extract::Problem;

/// A JSON request body as `T` (requires `Content-Type: application/json` or
/// `application/*+json`), or a JSON answer (as `axum::Json`).
///
/// ```
/// use azfn_auth::extract::Json;
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct NewOrder { item: String, quantity: u32 }
///
/// async fn create(Json(order): Json<NewOrder>) -> String {
///     format!("{} x {}", order.quantity, order.item)
/// }
/// # let _: azfn_auth::functions::Functions = azfn_auth::functions::Functions::new().function("orders-create", create);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

/// A query string as `T`; a missing query is an empty one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

/// An HTML form as `T`: the query string for GET and HEAD, else an
/// `application/x-www-form-urlencoded` body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Form<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        if !is_json(request.headers()) {
            return Err(unsupported("application/json"));
        }
        let bytes = body(request, state).await?;
        json(&bytes).map(Json)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        urlencoded(parts.uri.query().unwrap_or_default().as_bytes(), StatusCode::BAD_REQUEST, "query string").map(Query)
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        if matches!(*request.method(), Method::GET | Method::HEAD) {
            let query = request.uri().query().unwrap_or_default();
            return urlencoded(query.as_bytes(), StatusCode::BAD_REQUEST, "query string").map(Form);
        }
        if !media_type(request.headers()).is_some_and(|m| m.eq_ignore_ascii_case("application/x-www-form-urlencoded")) {
            return Err(unsupported("application/x-www-form-urlencoded"));
        }
        let bytes = body(request, state).await?;
        urlencoded(&bytes, StatusCode::UNPROCESSABLE_ENTITY, "form").map(Form)
    }
}

/// The media type of `Content-Type`, without parameters.
fn media_type(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or_default().trim())
}

/// `application/json` or a `+json` structured syntax suffix (RFC 6839), as axum's `Json`.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(media) = media_type(headers) else { return false };
    let Some((kind, subtype)) = media.split_once('/') else { return false };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5 && subtype.get(subtype.len() - 5..).is_some_and(|s| s.eq_ignore_ascii_case("+json")))
}

fn unsupported(expected: &str) -> Problem {
    Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .detail(format!("Expected a request body with Content-Type: {expected}"))
}

/// The whole body. The function's `maxBodyBytes` bounds it (the library stops a longer
/// body as it streams), so axum's own default limit does not apply here.
async fn body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, Problem> {
    Bytes::from_request(request, state).await.map_err(|rejection| match rejection {
        BytesRejection::FailedToBufferBody(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE).detail("The request body is larger than this function accepts")
        }
        _ => Problem::new(StatusCode::BAD_REQUEST).detail("The request body could not be read"),
    })
}

/// `bytes` as one JSON value of type `T`, nothing after it but whitespace.
fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let error = error.into_inner();
        if error.is_data() {
            let reason = without_position(&error);
            field_problem(StatusCode::UNPROCESSABLE_ENTITY, "JSON body", &path, &reason)
        } else {
            not_json(&error)
        }
    })?;
    deserializer.end().map_err(|error| not_json(&error))?;
    Ok(value)
}

fn not_json(error: &serde_json::Error) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST).detail(format!("The request body is not valid JSON: {error}"))
}

/// serde_json's message without its ` at line L column C` (the path says where).
fn without_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    message.strip_suffix(&suffix).map(str::to_owned).unwrap_or(message)
}

/// `input` (`a=1&b=x`) as `T`; `status` for a value that does not fit.
fn urlencoded<T: DeserializeOwned>(input: &[u8], status: StatusCode, what: &str) -> Result<T, Problem> {
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(input));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        field_problem(status, what, &path, &error.into_inner().to_string())
    })
}

/// A problem naming the field at `path` (serde_path_to_error's `.` is the whole input). A
/// missing field is named itself, not its parent: serde reports it on the parent.
fn field_problem(status: StatusCode, what: &str, path: &str, reason: &str) -> Problem {
    let parent = if path == "." { "" } else { path };
    let missing = reason.strip_prefix("missing field `").and_then(|rest| rest.strip_suffix('`'));
    let name = match missing {
        Some(field) if parent.is_empty() => field.to_owned(),
        Some(field) => format!("{parent}.{field}"),
        None => parent.to_owned(),
    };
    let detail = format!("The {what} does not have the expected shape");
    if name.is_empty() {
        Problem::new(status).detail(format!("{detail}: {reason}"))
    } else {
        Problem::new(status).detail(detail).invalid_param(name, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Item {
        sku: String,
        quantity: u32,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Order {
        items: Vec<Item>,
        note: Option<String>,
    }

    fn param(problem: &Problem) -> (&str, &str) {
        let (name, reason) = problem.invalid_params().first().expect("one invalid param");
        (name.as_str(), reason.as_str())
    }

    #[test]
    fn data_errors_name_the_field_by_its_path() {
        let wrong =
            json::<Order>(br#"{"items": [{"sku": "a", "quantity": 1}, {"sku": "b", "quantity": -1}]}"#).unwrap_err();
        assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(param(&wrong).0, "items[1].quantity");
        assert!(param(&wrong).1.starts_with("invalid value: integer `-1`"), "{:?}", param(&wrong));
        let missing = json::<Order>(br#"{"items": [{"sku": "a"}]}"#).unwrap_err();
        assert_eq!(param(&missing), ("items[0].quantity", "missing field `quantity`"));
        let top = json::<Order>(br#"{"note": "x"}"#).unwrap_err();
        assert_eq!(param(&top), ("items", "missing field `items`"));
        let shape = json::<Order>(b"true").unwrap_err();
        assert_eq!(shape.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(shape.invalid_params().is_empty(), "the whole body is at fault");
    }

    #[test]
    fn syntax_errors_and_trailing_data_are_400() {
        for body in [&br#"{"items": ["#[..], b"", b"{} {}", b"nope"] {
            let problem = json::<serde_json::Value>(body).unwrap_err();
            assert_eq!(problem.status(), StatusCode::BAD_REQUEST, "{:?}", String::from_utf8_lossy(body));
        }
        assert!(json::<serde_json::Value>(b" {} \n").is_ok());
    }

    #[test]
    fn query_errors_name_the_parameter() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Page {
            limit: u32,
            q: Option<String>,
        }
        let bad = urlencoded::<Page>(b"limit=ten&q=x", StatusCode::BAD_REQUEST, "query string").unwrap_err();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        assert_eq!(param(&bad).0, "limit");
        let missing = urlencoded::<Page>(b"q=x", StatusCode::BAD_REQUEST, "query string").unwrap_err();
        assert_eq!(param(&missing), ("limit", "missing field `limit`"));
        assert_eq!(urlencoded::<Page>(b"limit=5", StatusCode::BAD_REQUEST, "q").unwrap().limit, 5);
    }

    #[test]
    fn json_media_types_as_axum_reads_them() {
        let headers = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            headers
        };
        for yes in
            ["application/json", "application/json; charset=utf-8", "Application/JSON", "application/problem+json"]
        {
            assert!(is_json(&headers(yes)), "{yes}");
        }
        for no in ["text/json", "application/jsonx", "application/+json", "text/plain", "json"] {
            assert!(!is_json(&headers(no)), "{no}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }
}
