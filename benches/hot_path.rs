//! Micro-benchmarks of the per-request authentication path (criterion).
//!
//! `cargo bench --bench hot_path` runs each benchmark ~1.5 s; lengthen with e.g.
//! `cargo bench --bench hot_path -- --measurement-time 10 --warm-up-time 3`, or pick one with
//! `cargo bench --bench hot_path -- verify/`.
//!
//! Keys come from `tests/fixtures` as a static PEM key, so nothing here touches the network
//! and `Authenticator::verify` never waits: it is polled once with a no-op waker.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use azfn_auth::auth::{Authenticator, bearer, token};
use azfn_auth::config::{AuthConfig, KeySource};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, header};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::json;

use azfn_auth::auth::verify;

const ISSUER: &str = "https://bench-tenant.example/";
const AUDIENCE: &str = "https://api-a.example.com";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

/// Auth0-shaped access tokens signed with rsa-a.pem, valid for an hour, `jti` = index.
fn tokens(count: usize) -> Vec<String> {
    let key = EncodingKey::from_rsa_pem(fixture("rsa-a.pem").as_bytes()).expect("rsa-a.pem");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    (0..count)
        .map(|i| {
            let claims = json!({
                "iss": ISSUER, "sub": "bench-client@clients", "aud": AUDIENCE, "iat": now, "exp": now + 3600,
                "azp": "bench-client", "scope": "read:a", "gty": "client-credentials", "jti": format!("bench-{i}"),
            });
            let message = format!("{}.{}", b64(json!({"alg": "RS256", "typ": "JWT", "kid": "k1"})), b64(claims));
            let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::RS256).expect("sign");
            format!("{message}.{signature}")
        })
        .collect()
}

fn authenticator(cache_entries: usize) -> Authenticator {
    let mut config = AuthConfig::new(ISSUER, KeySource::StaticPem(fixture("rsa-a-pub.pem")), vec![AUDIENCE.into()]);
    config.token_cache_entries = cache_entries;
    Authenticator::new(&config).expect("authenticator")
}

/// Runs a future that must complete without waiting (static keys: no fetch).
fn now_or_never<F: Future>(future: F) -> F::Output {
    match pin!(future).as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("verification waited; the benchmark keys are static"),
    }
}

fn parsing(c: &mut Criterion) {
    let token = tokens(1).remove(0);
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).expect("header"));
    headers.insert(header::HOST, HeaderValue::from_static("bench.azurewebsites.net"));
    c.bench_function("bearer/bearer_token", |b| b.iter(|| bearer::bearer_token(black_box(&headers), 8192).is_ok()));
    c.bench_function("token/parse", |b| b.iter(|| token::parse(black_box(&token), &[Algorithm::RS256]).is_ok()));
    c.bench_function("cache/sha256_of_token", |b| {
        b.iter(|| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, black_box(token.as_bytes())))
    });
}

fn verifying(c: &mut Criterion) {
    // Cache hit: the same token again and again (the first call verifies and caches it).
    let auth = authenticator(10_000);
    let token = tokens(1).remove(0);
    assert!(now_or_never(auth.verify(&token)).is_ok(), "bench token must verify");
    c.bench_function("verify/cache_hit", |b| b.iter(|| now_or_never(auth.verify(black_box(&token))).is_ok()));

    // Cache miss: 64 distinct tokens through a 32-entry cache, so every call verifies the
    // signature, checks the claims and inserts (the shipped path for a new token).
    let distinct = tokens(64);
    let auth = authenticator(32);
    let mut i = 0;
    c.bench_function("verify/distinct_tokens_miss", |b| {
        b.iter(|| {
            i = (i + 1) % distinct.len();
            now_or_never(auth.verify(black_box(&distinct[i]))).is_ok()
        })
    });
}

fn signatures(c: &mut Criterion) {
    // The RSA check alone, three ways, for the same RS256 signature.
    let token = tokens(1).remove(0);
    let (signed, signature) = token.rsplit_once('.').expect("three segments");
    let encoding = EncodingKey::from_rsa_pem(fixture("rsa-a.pem").as_bytes()).expect("rsa-a.pem");
    let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, Algorithm::RS256).expect("jwk");
    let from_jwk = DecodingKey::from_jwk(&jwk).expect("decoding key"); // n/e, as from a JWKS
    let from_pem = DecodingKey::from_rsa_pem(fixture("rsa-a-pub.pem").as_bytes()).expect("pem");
    let verify = |key: &DecodingKey| {
        jsonwebtoken::crypto::verify(black_box(signature), signed.as_bytes(), key, Algorithm::RS256).unwrap_or(false)
    };
    assert!(verify(&from_jwk) && verify(&from_pem));
    c.bench_function("rs256/jsonwebtoken_verify_jwk_n_e", |b| b.iter(|| verify(&from_jwk)));
    c.bench_function("rs256/jsonwebtoken_verify_pem_der", |b| b.iter(|| verify(&from_pem)));
    let prepared = verify::PreparedKey::new(&from_jwk);
    assert!(prepared.verify(Algorithm::RS256, signed.as_bytes(), signature));
    c.bench_function("rs256/prepared_key_verify", |b| {
        b.iter(|| prepared.verify(Algorithm::RS256, signed.as_bytes(), black_box(signature)))
    });
}

fn logging(c: &mut Criterion) {
    // The per-request decision line as src/app.rs emits it, formatted into a sink
    // (formatting cost only, no I/O): by the shipped layer (src/telemetry.rs), and by
    // tracing-subscriber's default `fmt` layer as the baseline.
    use tracing_subscriber::layer::SubscriberExt;
    let emit = || {
        let (client, subject, kid, issuer) = ("bench-client", "bench-client@clients", "bench-rsa-a", ISSUER);
        tracing::info!(
            message = "auth decision",
            function = "api-a",
            outcome = "allowed",
            status = 200u16,
            auth.reason = "valid token",
            client_id = client,
            sub = subject,
            kid = kid,
            iss = issuer,
            duration_us = 2u64,
        )
    };
    // The same line with the correlation fields src/app.rs adds (issue 19).
    let emit_with_ids = || {
        let (client, subject, kid, issuer) = ("bench-client", "bench-client@clients", "bench-rsa-a", ISSUER);
        tracing::info!(
            message = "auth decision",
            function = "api-a",
            outcome = "allowed",
            status = 200u16,
            auth.reason = "valid token",
            client_id = client,
            sub = subject,
            kid = kid,
            iss = issuer,
            keys = "fresh",
            duration_us = 2u64,
            invocation_id = "0d8e3f2a-5c1b-4e7f-9a6d-2b4c8e1f3a5d",
            trace_id = "4bf92f3577b34da6a3ce929d0e0e4736",
            parent_id = "00f067aa0ba902b7",
        )
    };
    let shipped = tracing_subscriber::registry().with(azfn_auth::telemetry::Logfmt::new(|line: &[u8]| {
        black_box(line);
    }));
    tracing::subscriber::with_default(shipped, || {
        c.bench_function("log/decision_line_logfmt", |b| b.iter(emit));
        c.bench_function("log/decision_line_logfmt_with_ids", |b| b.iter(emit_with_ids));
    });
    let baseline = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink).with_ansi(false).with_target(false));
    tracing::subscriber::with_default(baseline, || {
        c.bench_function("log/decision_line_tracing_fmt_baseline", |b| b.iter(emit));
    });
}

fn correlation(c: &mut Criterion) {
    // Per request, src/app.rs reads the invocation id and the trace context from the
    // headers once (src/correlation.rs): the headers of a forwarded request as the host
    // sends them, with and without a traceparent.
    use azfn_auth::correlation::{Correlation, TraceContext};
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("host", "bench.azurewebsites.net"),
        ("user-agent", "curl/8.5.0 Azure-Functions-Host/4.1037.0"),
        ("accept", "*/*"),
        ("x-functions-key", "function-key-placeholder"),
        ("x-forwarded-proto", "https"),
        ("x-azure-functions-hostversion", "4.1037.0"),
        ("x-azure-functions-invocationid", "0d8e3f2a-5c1b-4e7f-9a6d-2b4c8e1f3a5d"),
    ] {
        headers.insert(header::HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    c.bench_function("correlation/from_headers_no_traceparent", |b| b.iter(|| correlate(black_box(&headers))));
    headers.insert("traceparent", HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    headers.insert("tracestate", HeaderValue::from_static("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"));
    assert!(Correlation::from_headers(&headers).trace.is_some());
    c.bench_function("correlation/from_headers_traceparent", |b| b.iter(|| correlate(black_box(&headers))));
    let value = HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    c.bench_function("correlation/is_valid_traceparent", |b| b.iter(|| validate(black_box(value.as_bytes()))));
    let trace = TraceContext::from_headers(&headers).expect("valid");
    c.bench_function("correlation/child_traceparent", |b| b.iter(|| black_box(&trace).child_traceparent()));
}

// Not inlined, so that callgrind can count one call (`--toggle-collect='*correlate*'`, see
// docs/performance.md).
#[inline(never)]
fn correlate(headers: &HeaderMap) -> azfn_auth::correlation::Correlation {
    azfn_auth::correlation::Correlation::from_headers(headers)
}

#[inline(never)]
fn validate(value: &[u8]) -> bool {
    azfn_auth::correlation::is_valid_traceparent(value)
}

fn short() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30)
        .without_plots()
}

criterion_group! {
    name = hot_path;
    config = short();
    targets = parsing, verifying, signatures, logging, correlation
}
criterion_main!(hot_path);
