//! Baseline 2: bare axum calling `jsonwebtoken::decode` on every request with one fixed
//! `DecodingKey` (from the JWKS's n/e, as most JWKS users build it) and one `Validation`
//! (RS256, issuer, audience, exp). No cache, no key store, no logging.
//!
//! Env: BENCH_JWKS (path of the JWK Set; its first key is used), AUTH_ISSUER, AUTH_AUDIENCE.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::any;
use http::{HeaderMap, StatusCode, header};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

async fn check(State(v): State<Arc<Verifier>>, headers: HeaderMap) -> (StatusCode, &'static str) {
    let token =
        headers.get(header::AUTHORIZATION).and_then(|h| h.to_str().ok()).and_then(|h| h.strip_prefix("Bearer "));
    match token.map(|t| jsonwebtoken::decode::<Map<String, Value>>(t, &v.key, &v.validation)) {
        Some(Ok(_)) => (StatusCode::OK, "Authentication successful"),
        _ => (StatusCode::UNAUTHORIZED, "Unauthorized"),
    }
}

fn main() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is required"));
    let jwks: Value = serde_json::from_str(&std::fs::read_to_string(var("BENCH_JWKS")).expect("read BENCH_JWKS"))
        .expect("BENCH_JWKS is JSON");
    let jwk = &jwks["keys"][0];
    let (n, e) = (jwk["n"].as_str().expect("n"), jwk["e"].as_str().expect("e"));
    let key = DecodingKey::from_rsa_components(n, e).expect("RSA key");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[var("AUTH_ISSUER")]);
    validation.set_audience(&[var("AUTH_AUDIENCE")]);
    let state = Arc::new(Verifier { key, validation });
    let router = Router::new().route("/", any(|| async { "OK" })).fallback(any(check)).with_state(state);
    azfn_auth_bench::run(azfn_auth_bench::serve(router));
}
