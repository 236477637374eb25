//! Signing-key life cycle against a real loopback key server with a hit counter: caching,
//! single-flight refetch, cooldown, rotation, outages and hostile key-set answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use http::StatusCode;
use serde_json::json;

fn config_with(issuer: &str, cooldown: Duration, max_stale: Duration) -> azfn_auth::config::AuthConfig {
    let mut config = auth_config(issuer);
    config.jwks.cooldown = cooldown;
    config.jwks.max_stale = max_stale;
    config
}

const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test]
async fn keys_are_fetched_once_and_cached() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let (router, _) = forwarding_app(auth_config(&idp.issuer));
    for _ in 0..20 {
        let mut c = claims(&idp.issuer);
        c["jti"] = json!(format!("{}", rand_suffix()));
        assert_ok(&with_token(&router, &token(&key, &c)).await);
    }
    assert_eq!(idp.jwks_hits(), 1);
    assert_eq!(idp.discovery_hits(), 1);
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

#[tokio::test]
async fn unknown_kid_flood_costs_the_provider_one_fetch() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let (router, _) = forwarding_app(auth_config(&idp.issuer));
    for i in 0..200 {
        let random = rsa_key("rsa-a.pem", &format!("random-{i}"));
        assert_invalid_token(&with_token(&router, &token(&random, &claims(&idp.issuer))).await);
    }
    assert_eq!(idp.jwks_hits(), 1, "random kids must not each trigger a fetch");
    // The known key still works throughout.
    assert_ok(&with_token(&router, &token(&key, &claims(&idp.issuer))).await);
    assert_eq!(idp.jwks_hits(), 1);
}

#[tokio::test]
async fn concurrent_first_requests_on_a_cold_cache_share_one_fetch() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    // Cooldown zero: only single-flight keeps this at one fetch.
    let (router, _) = forwarding_app(config_with(&idp.issuer, Duration::ZERO, DAY));
    let t = token(&key, &claims(&idp.issuer));
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (router, t) = (router.clone(), t.clone());
        tasks.push(tokio::spawn(async move { with_token(&router, &t).await.status }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(idp.jwks_hits(), 1);
}

#[tokio::test]
async fn a_new_key_is_accepted_after_one_refetch() {
    let a = rsa_key("rsa-a.pem", "key-a");
    let b = rsa_key("rsa-b.pem", "key-b");
    let idp = Idp::start(&[&a]).await;
    let (router, _) = forwarding_app(config_with(&idp.issuer, Duration::ZERO, DAY));
    assert_ok(&with_token(&router, &token(&a, &claims(&idp.issuer))).await);
    idp.set_keys(&[&a, &b]);
    assert_ok(&with_token(&router, &token(&b, &claims(&idp.issuer))).await);
    assert_eq!(idp.jwks_hits(), 2);
    assert_ok(&with_token(&router, &token(&b, &claims(&idp.issuer))).await);
    assert_eq!(idp.jwks_hits(), 2);
}

#[tokio::test]
async fn a_new_key_within_the_cooldown_waits_for_it() {
    let a = rsa_key("rsa-a.pem", "key-a");
    let b = rsa_key("rsa-b.pem", "key-b");
    let idp = Idp::start(&[&a]).await;
    let (router, _) = forwarding_app(auth_config(&idp.issuer));
    assert_ok(&with_token(&router, &token(&a, &claims(&idp.issuer))).await);
    idp.set_keys(&[&a, &b]);
    assert_invalid_token(&with_token(&router, &token(&b, &claims(&idp.issuer))).await);
    assert_eq!(idp.jwks_hits(), 1);
}

#[tokio::test]
async fn a_removed_key_is_refused_after_the_next_successful_refresh() {
    let a = rsa_key("rsa-a.pem", "key-a");
    let b = rsa_key("rsa-b.pem", "key-b");
    let idp = Idp::start(&[&a, &b]).await;
    let (router, state) = forwarding_app(auth_config(&idp.issuer));
    let old = token(&a, &claims(&idp.issuer));
    assert_ok(&with_token(&router, &old).await);
    idp.set_keys(&[&b]);
    assert!(state.auth.key_stores()[0].refresh().await);
    // Even though this exact token verified (and was cached) before.
    assert_invalid_token(&with_token(&router, &old).await);
    assert_ok(&with_token(&router, &token(&b, &claims(&idp.issuer))).await);
}

#[tokio::test]
async fn emergency_rotation_replaces_every_key() {
    let a = rsa_key("rsa-a.pem", "key-a");
    let b = rsa_key("rsa-b.pem", "key-b");
    let idp = Idp::start(&[&a]).await;
    let (router, _) = forwarding_app(config_with(&idp.issuer, Duration::ZERO, DAY));
    let old = token(&a, &claims(&idp.issuer));
    assert_ok(&with_token(&router, &old).await);
    idp.set_keys(&[&b]);
    // The first token from the new key triggers the refetch that also drops the old key.
    assert_ok(&with_token(&router, &token(&b, &claims(&idp.issuer))).await);
    assert_invalid_token(&with_token(&router, &old).await);
}

#[tokio::test]
async fn key_set_down_at_start_is_503_then_200_once_it_recovers() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    idp.set_mode(IdpMode::Status(500));
    let (router, _) = forwarding_app(config_with(&idp.issuer, Duration::ZERO, DAY));
    let t = token(&key, &claims(&idp.issuer));
    let answer = with_token(&router, &t).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.challenge(), None);
    assert!(answer.header("retry-after").is_some());
    idp.set_mode(IdpMode::Up);
    assert_ok(&with_token(&router, &t).await);
}

#[tokio::test]
async fn key_set_down_later_keeps_serving_cached_keys() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let (router, state) = forwarding_app(config_with(&idp.issuer, Duration::ZERO, DAY));
    assert_ok(&with_token(&router, &token(&key, &claims(&idp.issuer))).await);
    idp.set_mode(IdpMode::Status(503));
    assert!(!state.auth.key_stores()[0].refresh().await);
    let mut c = claims(&idp.issuer);
    c["jti"] = json!("fresh-token");
    assert_ok(&with_token(&router, &token(&key, &c)).await);
}

#[tokio::test]
async fn after_the_stale_window_requests_fail_closed() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    // A zero stale window: keys are never usable once the provider stops answering.
    let (router, state) = forwarding_app(config_with(&idp.issuer, Duration::ZERO, Duration::ZERO));
    assert!(state.auth.key_stores()[0].refresh().await);
    idp.set_mode(IdpMode::Status(500));
    let answer = with_token(&router, &token(&key, &claims(&idp.issuer))).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn discovery_naming_another_issuer_is_refused() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    idp.set_mode(IdpMode::WrongIssuer);
    let (router, _) = forwarding_app(auth_config(&idp.issuer));
    let answer = with_token(&router, &token(&key, &claims(&idp.issuer))).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(idp.jwks_hits(), 0, "keys from a mismatched discovery document were fetched");
}

async fn hostile_key_set(mode: IdpMode) -> (Answer, usize) {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    idp.set_mode(mode);
    let (router, _) = forwarding_app(auth_config(&idp.issuer));
    let answer = with_token(&router, &token(&key, &claims(&idp.issuer))).await;
    (answer, idp.jwks_hits())
}

#[tokio::test]
async fn key_set_answering_html_is_refused() {
    assert_eq!(hostile_key_set(IdpMode::Html).await.0.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn truncated_key_set_is_refused() {
    assert_eq!(hostile_key_set(IdpMode::Truncated).await.0.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn ten_megabyte_key_set_is_refused() {
    assert_eq!(hostile_key_set(IdpMode::Huge).await.0.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn redirect_to_another_host_is_not_followed() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let elsewhere = Idp::start(&[&key]).await;
    let (answer, _) = hostile_key_set(IdpMode::Redirect(format!("{}jwks", elsewhere.issuer))).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(elsewhere.jwks_hits(), 0);
}

#[tokio::test]
async fn hmac_key_in_the_key_set_never_verifies() {
    use base64::Engine;
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let secret = b"shared-secret-shared-secret-1234";
    idp.set_raw_keys(vec![
        key.jwk.clone(),
        json!({"kty": "oct", "kid": "hmac", "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)}),
    ]);
    let (router, _) = forwarding_app(auth_config(&idp.issuer));
    let forged = sign_raw(
        &json!({"alg": "HS256", "kid": "hmac"}),
        &claims(&idp.issuer),
        &jsonwebtoken::EncodingKey::from_secret(secret),
        jsonwebtoken::Algorithm::HS256,
    );
    assert_invalid_token(&with_token(&router, &forged).await);
    assert_ok(&with_token(&router, &token(&key, &claims(&idp.issuer))).await);
}

#[tokio::test]
async fn keys_without_kid_serve_only_as_the_single_key() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[]).await;
    let mut no_kid = key.jwk.clone();
    no_kid.as_object_mut().unwrap().remove("kid");
    idp.set_raw_keys(vec![no_kid]);
    let (router, _) = forwarding_app(auth_config(&idp.issuer));
    assert_ok(&with_token(&router, &token(&key, &claims(&idp.issuer))).await);
}

#[tokio::test]
async fn slow_key_set_is_bounded_by_the_http_timeout() {
    // A listener that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            held.push(socket);
        }
    });
    let key = rsa_key("rsa-a.pem", "key-a");
    let mut config = auth_config(&issuer);
    config.jwks.http_timeout = Duration::from_secs(1);
    let (router, _) = forwarding_app(config);
    let answer = tokio::time::timeout(Duration::from_secs(10), with_token(&router, &token(&key, &claims(&issuer))))
        .await
        .expect("the request path must not hang on a silent key server");
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    hold.abort();
}

#[tokio::test]
async fn a_failed_key_set_fetch_discovers_again() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let (router, state) = forwarding_app(config_with(&idp.issuer, Duration::ZERO, DAY));
    assert_ok(&with_token(&router, &token(&key, &claims(&idp.issuer))).await);
    assert_eq!(idp.discovery_hits(), 1);
    idp.set_mode(IdpMode::Status(404));
    assert!(!state.auth.key_stores()[0].refresh().await);
    idp.set_mode(IdpMode::Up);
    assert!(state.auth.key_stores()[0].refresh().await);
    assert_eq!(idp.discovery_hits(), 2, "the key set location is looked up again after a failure");
}

#[tokio::test]
async fn the_verified_token_cache_holds_at_most_its_capacity() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let mut config = auth_config(&idp.issuer);
    config.token_cache_entries = 3;
    let (router, state) = forwarding_app(config);
    for i in 0..10 {
        let mut c = claims(&idp.issuer);
        c["jti"] = json!(format!("token-{i}"));
        assert_ok(&with_token(&router, &token(&key, &c)).await);
        assert!(state.auth.cached_tokens() <= 3, "cache grew to {}", state.auth.cached_tokens());
    }
    assert!(state.auth.cached_tokens() >= 1);
}
