//! The app author's kit: handlers written with `Json<T>`, `Query<T>`, `Form<T>` and
//! `Path<T>` answer every rejection with RFC 9457 problem+json, and `azfn_auth::testing`
//! calls them as the host would in each mode: raw requests where the host forwards or
//! proxies, the invocation envelope with input bindings where it does not, non-HTTP
//! triggers with their payload and metadata. The app root is `tests/fixtures/notes-app`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, unreachable_pub)]

use std::time::Duration;

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use azfn_auth::auth::Claims;
use azfn_auth::extract::{Bindings, Form, Json, Logger, Metadata, Outputs, Path, Problem, Query, Trigger};
use azfn_auth::functions::Functions;
use azfn_auth::layout::HostMode;
use azfn_auth::testing::{Delivery, TestApp, TestIssuer, TestResponse};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/notes-app");
const ID: &str = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
const MODES: [HostMode; 3] = [HostMode::Forwarding, HostMode::Proxy, HostMode::Invocation];

#[derive(Debug, Deserialize, Serialize)]
struct Note {
    title: String,
    tags: Vec<Tag>,
}

#[derive(Debug, Deserialize, Serialize)]
struct Tag {
    name: String,
    weight: u8,
}

#[derive(Debug, Deserialize)]
struct Search {
    q: String,
    limit: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct Feedback {
    stars: u8,
    text: String,
}

#[derive(Debug, Deserialize, Serialize)]
struct Change {
    id: String,
    title: String,
}

async fn get(Path(id): Path<String>, claims: Claims) -> Json<Value> {
    Json(json!({"id": id, "reader": claims.subject()}))
}

async fn put(Path(id): Path<String>, log: Logger, Json(note): Json<Note>) -> Response {
    log.log(format!("note {id} saved with {} tags", note.tags.len()));
    let change = Change { id: id.clone(), title: note.title.clone() };
    (StatusCode::OK, Outputs::new().set("changes", &change), Json(note)).into_response()
}

async fn search(Query(search): Query<Search>) -> String {
    format!("{} (up to {})", search.q, search.limit.unwrap_or(10))
}

async fn feedback(Form(form): Form<Feedback>) -> String {
    format!("{} stars: {}", form.stars, form.text)
}

async fn upload(body: Bytes) -> String {
    body.len().to_string()
}

async fn archive(Path(name): Path<String>, bindings: Bindings) -> Response {
    match bindings.get::<String>("archived") {
        Ok(text) => format!("{name}: {text}").into_response(),
        Err(_) => Problem::new(StatusCode::NOT_FOUND).detail(format!("no archive {name}")).into_response(),
    }
}

async fn worker(Trigger(change): Trigger<Change>, metadata: Metadata, log: Logger) -> Outputs {
    let dequeued: u32 = metadata.get("DequeueCount").unwrap_or(0);
    log.log(format!("archiving {} (delivery {dequeued})", change.id));
    Outputs::new().set("archive", json!({"id": change.id, "title": change.title}))
}

fn functions() -> Functions {
    Functions::new()
        .function("notes-get", get)
        .function("notes-put", put)
        .function("notes-search", search)
        .function("notes-form", feedback)
        .function("upload", upload)
        .function("notes-archive", archive)
        .function("notes-worker", worker)
}

fn app(issuer: &TestIssuer, mode: HostMode) -> TestApp {
    TestApp::builder(ROOT).issuer(issuer).mode(mode).build(functions()).unwrap()
}

fn problem(answer: &TestResponse) -> Value {
    assert!(
        answer.header("content-type").is_some_and(|t| t.starts_with("application/problem+json")),
        "{:?}: {}",
        answer.header("content-type"),
        answer.text()
    );
    let problem: Value = answer.json().unwrap();
    assert_eq!(problem["status"], answer.status.as_u16(), "{problem}");
    problem
}

/// The delivery the host uses for a function with only HTTP bindings in `mode`.
fn raw_delivery(mode: HostMode) -> Delivery {
    match mode {
        HostMode::Forwarding => Delivery::Forwarded,
        HostMode::Proxy => Delivery::Proxied,
        HostMode::Invocation => Delivery::Invocation,
    }
}

#[tokio::test]
async fn tokens_from_the_test_issuer_pass_the_policy_as_real_ones() {
    let issuer = TestIssuer::new();
    for mode in MODES {
        let app = app(&issuer, mode);
        let path = format!("/api/notes/{ID}");
        let reader = issuer.token().subject("user-7").scope("read:notes").sign();
        let ok = app.get(&path).bearer(&reader).send().await;
        assert_eq!((ok.status, ok.delivery), (StatusCode::OK, raw_delivery(mode)), "{mode:?}: {}", ok.text());
        assert_eq!(ok.json::<Value>().unwrap(), json!({"id": ID, "reader": "user-7"}));

        let none = app.get(&path).send().await;
        assert_eq!(none.status, StatusCode::UNAUTHORIZED, "{mode:?}");
        assert_eq!(none.header("www-authenticate"), Some(r#"Bearer realm="api""#), "{mode:?}");
        let writer_only = app.get(&path).bearer(&issuer.token().scope("write:notes").sign()).send().await;
        assert_eq!(writer_only.status, StatusCode::FORBIDDEN, "{mode:?}");
        assert!(writer_only.header("www-authenticate").unwrap().contains(r#"scope="read:notes""#));
        let expired = issuer.token().scope("read:notes").expired(Duration::from_secs(120)).sign();
        let late = app.get(&path).bearer(&expired).send().await;
        assert_eq!(late.status, StatusCode::UNAUTHORIZED);
        assert!(late.header("www-authenticate").unwrap().contains(r#"error="invalid_token""#), "{mode:?}");
        let foreign = issuer.token().scope("read:notes").claim("aud", "https://other.example").sign();
        assert_eq!(app.get(&path).bearer(&foreign).send().await.status, StatusCode::UNAUTHORIZED);
        let other = TestIssuer::new().token().scope("read:notes").sign();
        assert_eq!(app.get(&path).bearer(&other).send().await.status, StatusCode::UNAUTHORIZED, "another key");

        // The host routes: a path its `{id:guid}` does not match, or a method the function
        // does not list, never reaches the app.
        let unrouted = app.get("/api/notes/42").bearer(&reader).send().await;
        assert_eq!((unrouted.status, unrouted.delivery), (StatusCode::NOT_FOUND, Delivery::NotRouted));
        assert_eq!(app.delete(&path).bearer(&reader).send().await.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn json_rejections_are_problems_naming_the_field_and_outputs_come_back() {
    let issuer = TestIssuer::new();
    let writer = issuer.token().scope("write:notes").sign();
    for mode in MODES {
        let app = app(&issuer, mode);
        let path = format!("/api/notes/{ID}");
        let put = |body: &'static str, content_type: &'static str| {
            app.put(&path).bearer(&writer).header("Content-Type", content_type).body(body).send()
        };

        let nested = put(
            r#"{"title": "t", "tags": [{"name": "a", "weight": 1}, {"name": "b", "weight": 300}]}"#,
            "application/json",
        )
        .await;
        assert_eq!(nested.status, StatusCode::UNPROCESSABLE_ENTITY, "{mode:?}: {}", nested.text());
        let reason = "invalid value: integer `300`, expected u8";
        assert_eq!(problem(&nested)["invalid-params"], json!([{"name": "tags[1].weight", "reason": reason}]));
        let missing = put(r#"{"tags": []}"#, "application/json").await;
        assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem(&missing)["invalid-params"][0]["name"], "title");
        let broken = put(r#"{"title": "#, "application/json").await;
        assert_eq!(broken.status, StatusCode::BAD_REQUEST);
        assert!(problem(&broken)["detail"].as_str().unwrap().starts_with("The request body is not valid JSON"));
        let text = put(r#"{"title": "t", "tags": []}"#, "text/plain").await;
        assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{mode:?}");
        assert_eq!(problem(&text)["detail"], "Expected a request body with Content-Type: application/json");
        for refused in [&nested, &missing, &broken, &text] {
            assert!(refused.outputs.is_empty(), "nothing is queued for a rejected body");
        }

        // Accepted: the queue output comes back with the answer (the host always calls a
        // function with a queue output with the envelope), with the handler's log line.
        let note = json!({"title": "groceries", "tags": [{"name": "home", "weight": 2}]});
        let saved = app.put(&path).bearer(&writer).json(&note).send().await;
        assert_eq!((saved.status, saved.delivery), (StatusCode::OK, Delivery::Invocation), "{mode:?}");
        assert_eq!(saved.json::<Value>().unwrap(), note);
        assert_eq!(saved.output("changes"), Some(&json!({"id": ID, "title": "groceries"})));
        assert!(saved.logs.iter().any(|l| l == &format!("note {ID} saved with 1 tags")), "{:?}", saved.logs);
        assert!(saved.logs.iter().any(|l| l.contains("outcome=allowed")), "the decision line: {:?}", saved.logs);
    }
}

#[tokio::test]
async fn query_and_form_rejections_are_problems() {
    let issuer = TestIssuer::new();
    let reader = issuer.token().scope("read:notes").sign();
    for mode in MODES {
        let app = app(&issuer, mode);
        let found = app.get("/api/notes/search?q=milk&limit=5").bearer(&reader).send().await;
        assert_eq!((found.status, found.text().as_str()), (StatusCode::OK, "milk (up to 5)"), "{mode:?}");
        let bad = app.get("/api/notes/search?q=milk&limit=ten").bearer(&reader).send().await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{mode:?}");
        assert_eq!(problem(&bad)["invalid-params"][0]["name"], "limit");
        let missing = app.get("/api/notes/search?limit=1").bearer(&reader).send().await;
        assert_eq!(problem(&missing)["invalid-params"], json!([{"name": "q", "reason": "missing field `q`"}]));

        let form = "application/x-www-form-urlencoded";
        let posted =
            app.post("/api/feedback").header("Content-Type", form).body("stars=5&text=great%20app").send().await;
        assert_eq!((posted.status, posted.text().as_str()), (StatusCode::OK, "5 stars: great app"), "{mode:?}");
        let queried = app.get("/api/feedback?stars=4&text=ok").send().await;
        assert_eq!(queried.text(), "4 stars: ok");
        let wrong = app.post("/api/feedback").header("Content-Type", form).body("stars=many&text=x").send().await;
        assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY, "{mode:?}");
        assert_eq!(problem(&wrong)["invalid-params"][0]["name"], "stars");
        let json_body = app.post("/api/feedback").json(&json!({"stars": 1, "text": "x"})).send().await;
        assert_eq!(json_body.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        problem(&json_body);
    }
}

#[tokio::test]
async fn a_functions_max_body_bytes_is_its_limit_not_axums_default() {
    let issuer = TestIssuer::new();
    let writer = issuer.token().scope("write:notes").sign();
    // upload's auth.json: maxBodyBytes 4 MiB; axum's own default for `Bytes` is 2 MB.
    for mode in [HostMode::Forwarding, HostMode::Proxy] {
        let app = app(&issuer, mode);
        let three = vec![b'x'; 3 << 20];
        let taken = app.post("/api/upload").bearer(&writer).body(three).send().await;
        assert_eq!((taken.status, taken.text()), (StatusCode::OK, (3 << 20).to_string()), "{mode:?}");
        let five = vec![b'x'; 5 << 20];
        let refused = app.post("/api/upload").bearer(&writer).body(five).send().await;
        assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE, "{mode:?}");
        assert_eq!(problem(&refused)["detail"], "The request body is larger than this function accepts");
        assert_eq!(refused.header("connection"), Some("close"));
    }
}

#[tokio::test]
async fn input_bindings_and_a_return_http_output_go_through_the_envelope() {
    let issuer = TestIssuer::new();
    let reader = issuer.token().scope("read:notes").sign();
    for mode in MODES {
        let app = app(&issuer, mode);
        let found = app.get("/api/archive/2026.txt").bearer(&reader).input("archived", "old notes").send().await;
        assert_eq!(found.delivery, Delivery::Invocation, "{mode:?}: a blob input always means the envelope");
        assert_eq!((found.status, found.text().as_str()), (StatusCode::OK, "2026.txt: old notes"), "{mode:?}");
        let absent = app.get("/api/archive/1999.txt").bearer(&reader).send().await;
        assert_eq!(absent.status, StatusCode::NOT_FOUND);
        assert_eq!(problem(&absent)["detail"], "no archive 1999.txt");
        let refused = app.get("/api/archive/2026.txt").input("archived", "old notes").send().await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "inputs never stand in for a token");
        assert_eq!(refused.header("www-authenticate"), Some(r#"Bearer realm="api""#));
    }
}

#[tokio::test]
async fn triggers_get_their_payload_and_metadata_and_give_outputs_and_logs() {
    let issuer = TestIssuer::new();
    let app = app(&issuer, HostMode::Forwarding);
    let done = app
        .trigger("notes-worker")
        .data(json!({"id": ID, "title": "groceries"}))
        .metadata("DequeueCount", 2)
        .send()
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert_eq!(done.output("archive"), Some(&json!({"id": ID, "title": "groceries"})));
    assert_eq!(done.logs, [format!("archiving {ID} (delivery 2)")]);

    // A payload of the wrong shape fails the invocation (the platform retries it).
    let wrong = app.trigger("notes-worker").data("not a change").send().await;
    assert!(!wrong.status.is_success(), "{}", wrong.status);
    assert!(wrong.outputs.is_empty());
    let unknown = app.trigger("nothing-here").data(json!({})).send().await;
    assert_eq!((unknown.status, unknown.delivery), (StatusCode::NOT_FOUND, Delivery::NotRouted));
}

#[tokio::test]
async fn an_app_root_the_handler_would_refuse_is_refused_by_the_kit() {
    let missing = TestApp::builder(ROOT).build(Functions::new().function("notes-get", get)).unwrap_err();
    assert!(missing.to_string().contains("has no handler in this binary"), "{missing}");
    let nowhere = TestApp::builder(concat!(env!("CARGO_MANIFEST_DIR"), "/no-such-root")).build(functions());
    assert!(nowhere.is_err());
}
