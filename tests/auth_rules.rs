//! One test per row of the answer table and per validation rule, through the public router
//! with a real discovery + JWKS server on loopback and tokens signed at test time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use common::*;
use http::{Request, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;

async fn setup() -> (Idp, TestKey, axum::Router) {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let (router, _) = forwarding_app(auth_config(&idp.issuer));
    (idp, key, router)
}

// ---- the answer table ----

#[tokio::test]
async fn valid_token_is_200_authentication_successful() {
    let (idp, key, router) = setup().await;
    assert_ok(&with_token(&router, &token(&key, &claims(&idp.issuer))).await);
}

#[tokio::test]
async fn no_authorization_header_is_401_with_bare_challenge() {
    let (_idp, _key, router) = setup().await;
    let answer = get_api_a(&router, &[]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.challenge(), Some(r#"Bearer realm="api""#));
    assert_eq!(answer.body, "No authorization token was found");
}

#[tokio::test]
async fn non_bearer_scheme_is_401_with_bare_challenge() {
    let (_idp, _key, router) = setup().await;
    let answer = get_api_a(&router, &["Basic dXNlcjpwYXNz"]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.challenge(), Some(r#"Bearer realm="api""#));
}

#[tokio::test]
async fn empty_token_is_400_invalid_request() {
    let (_idp, _key, router) = setup().await;
    let answer = get_api_a(&router, &["Bearer "]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.challenge().unwrap().contains(r#"error="invalid_request""#));
}

#[tokio::test]
async fn two_authorization_headers_are_400_invalid_request() {
    let (idp, key, router) = setup().await;
    let good = format!("Bearer {}", token(&key, &claims(&idp.issuer)));
    let answer = get_api_a(&router, &[&good, &good]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.challenge().unwrap().contains(r#"error="invalid_request""#));
    // Forwarding and proxy modes join repeated headers into one line.
    let answer = get_api_a(&router, &[&format!("{good}, {good}")]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn several_tokens_in_one_header_are_400() {
    let (_idp, _key, router) = setup().await;
    assert_eq!(get_api_a(&router, &["Bearer a.b.c d.e.f"]).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bad_signature_is_401_invalid_token() {
    let (idp, key, router) = setup().await;
    let good = token(&key, &claims(&idp.issuer));
    let (signed, signature) = good.rsplit_once('.').unwrap();
    let (header, _) = signed.split_once('.').unwrap();
    let mut forged_claims = claims(&idp.issuer);
    forged_claims["sub"] = json!("admin");
    let forged = format!("{header}.{}.{signature}", b64(&forged_claims));
    assert_invalid_token(&with_token(&router, &forged).await);
    let other = rsa_key("rsa-b.pem", "key-a");
    assert_invalid_token(&with_token(&router, &token(&other, &claims(&idp.issuer))).await);
}

#[tokio::test]
async fn no_signing_keys_at_all_is_503_with_retry_after_and_no_challenge() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let issuer = closed_port_url().await;
    let (router, _) = forwarding_app(auth_config(&issuer));
    let answer = with_token(&router, &token(&key, &claims(&issuer))).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.challenge(), None);
    assert_eq!(answer.header("retry-after"), Some("30"));
}

#[tokio::test]
async fn error_text_never_echoes_configuration_or_token_content() {
    let (idp, key, router) = setup().await;
    let mut c = claims(&idp.issuer);
    c["aud"] = json!("https://other.example.com");
    let answer = with_token(&router, &token(&key, &c)).await;
    assert_invalid_token(&answer);
    let everything = format!("{} {:?}", answer.body, answer.headers);
    for secret in [idp.issuer.as_str(), "key-a", AUDIENCE, "other.example.com", "test-client"] {
        assert!(!everything.contains(secret), "{secret} leaked in {everything}");
    }
}

// ---- algorithm rules ----

#[tokio::test]
async fn alg_none_is_401() {
    let (idp, _key, router) = setup().await;
    let unsigned = format!("{}.{}.", b64(&json!({"alg": "none", "kid": "key-a"})), b64(&claims(&idp.issuer)));
    assert_invalid_token(&with_token(&router, &unsigned).await);
    let with_sig = format!("{unsigned}c2ln");
    assert_invalid_token(&with_token(&router, &with_sig).await);
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_401() {
    let (idp, _key, router) = setup().await;
    let public_pem = fixture("rsa-a-pub.pem");
    let secret = EncodingKey::from_secret(public_pem.as_bytes());
    let header = json!({"alg": "HS256", "kid": "key-a"});
    let forged = sign_raw(&header, &claims(&idp.issuer), &secret, Algorithm::HS256);
    assert_invalid_token(&with_token(&router, &forged).await);
}

#[tokio::test]
async fn algorithm_not_in_configuration_is_401_even_with_a_valid_signature() {
    let (idp, key, router) = setup().await;
    let ps256 =
        sign_raw(&json!({"alg": "PS256", "kid": "key-a"}), &claims(&idp.issuer), &key.encoding, Algorithm::PS256);
    assert_invalid_token(&with_token(&router, &ps256).await);
}

#[tokio::test]
async fn configured_ps256_is_accepted() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let mut config = auth_config(&idp.issuer);
    config.algorithms = vec![Algorithm::RS256, Algorithm::PS256];
    let (router, _) = forwarding_app(config);
    let ps256 =
        sign_raw(&json!({"alg": "PS256", "kid": "key-a"}), &claims(&idp.issuer), &key.encoding, Algorithm::PS256);
    assert_ok(&with_token(&router, &ps256).await);
}

#[tokio::test]
async fn es256_token_needs_an_ec_key_and_configuration() {
    let ec = ec_key("ec-1");
    let rsa = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&ec, &rsa]).await;
    let mut config = auth_config(&idp.issuer);
    config.algorithms = vec![Algorithm::RS256, Algorithm::ES256];
    let (router, _) = forwarding_app(config);
    assert_ok(&with_token(&router, &token(&ec, &claims(&idp.issuer))).await);
    // An ES256 header pointing at the RSA key is a key/algorithm mismatch.
    let mismatched =
        sign_raw(&json!({"alg": "ES256", "kid": "key-a"}), &claims(&idp.issuer), &ec.encoding, Algorithm::ES256);
    assert_invalid_token(&with_token(&router, &mismatched).await);
}

// ---- claims rules ----

async fn claims_case(edit: impl FnOnce(&mut serde_json::Value)) -> Answer {
    let (idp, key, router) = setup().await;
    let mut c = claims(&idp.issuer);
    edit(&mut c);
    with_token(&router, &token(&key, &c)).await
}

#[tokio::test]
async fn wrong_audience_is_401() {
    assert_invalid_token(&claims_case(|c| c["aud"] = json!("https://other.example.com")).await);
}

#[tokio::test]
async fn audience_array_is_any_of() {
    assert_ok(&claims_case(|c| c["aud"] = json!(["https://other.example.com", AUDIENCE])).await);
    assert_invalid_token(&claims_case(|c| c["aud"] = json!(["https://other.example.com"])).await);
    assert_invalid_token(&claims_case(|c| c["aud"] = json!([AUDIENCE, 7])).await);
    assert_invalid_token(&claims_case(|c| c["aud"] = json!([])).await);
}

#[tokio::test]
async fn missing_audience_is_401() {
    assert_invalid_token(&claims_case(|c| drop(c.as_object_mut().unwrap().remove("aud"))).await);
}

#[tokio::test]
async fn wrong_issuer_is_401() {
    assert_invalid_token(&claims_case(|c| c["iss"] = json!("https://evil.example.com/")).await);
}

#[tokio::test]
async fn issuer_must_match_exactly_including_trailing_slash() {
    assert_invalid_token(&claims_case(|c| c["iss"] = json!(c["iss"].as_str().unwrap().trim_end_matches('/'))).await);
}

#[tokio::test]
async fn expired_token_is_401_invalid_token() {
    let answer = claims_case(|c| c["exp"] = json!(now() - 120)).await;
    assert_invalid_token(&answer);
    assert!(answer.challenge().unwrap().contains("expired"));
}

#[tokio::test]
async fn token_expired_within_the_clock_skew_is_accepted() {
    assert_ok(&claims_case(|c| c["exp"] = json!(now() - 5)).await);
}

#[tokio::test]
async fn future_nbf_is_401() {
    assert_invalid_token(&claims_case(|c| c["nbf"] = json!(now() + 300)).await);
    assert_ok(&claims_case(|c| c["nbf"] = json!(now() + 5)).await);
}

#[tokio::test]
async fn future_iat_is_401() {
    assert_invalid_token(&claims_case(|c| c["iat"] = json!(now() + 300)).await);
}

#[tokio::test]
async fn missing_exp_is_401() {
    assert_invalid_token(&claims_case(|c| drop(c.as_object_mut().unwrap().remove("exp"))).await);
}

#[tokio::test]
async fn claims_of_the_wrong_type_are_401() {
    assert_invalid_token(&claims_case(|c| c["exp"] = json!((now() + 600).to_string())).await);
    assert_invalid_token(&claims_case(|c| c["nbf"] = json!("0")).await);
    assert_invalid_token(&claims_case(|c| c["iss"] = json!([c["iss"].clone()])).await);
    assert_invalid_token(&claims_case(|c| c["sub"] = json!(42)).await);
    assert_invalid_token(&claims_case(|c| c["aud"] = json!({"a": 1})).await);
}

// ---- header rules ----

async fn header_case(header: serde_json::Value) -> Answer {
    let (idp, key, router) = setup().await;
    with_token(&router, &sign_raw(&header, &claims(&idp.issuer), &key.encoding, Algorithm::RS256)).await
}

#[tokio::test]
async fn unknown_crit_header_is_401() {
    assert_invalid_token(&header_case(json!({"alg": "RS256", "kid": "key-a", "crit": ["exp"], "exp": 1})).await);
}

#[tokio::test]
async fn nested_jwt_is_401() {
    assert_invalid_token(&header_case(json!({"alg": "RS256", "kid": "key-a", "cty": "JWT"})).await);
}

#[tokio::test]
async fn jwe_is_401() {
    let (_idp, _key, router) = setup().await;
    let jwe = format!("{}.a.b.c.d", b64(&json!({"alg": "RSA-OAEP", "enc": "A256GCM"})));
    assert_invalid_token(&with_token(&router, &jwe).await);
}

#[tokio::test]
async fn jku_and_x5u_headers_are_never_dereferenced() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let attacker = rsa_key("rsa-b.pem", "evil");
    let idp = Idp::start(&[&key]).await;
    let (router, _) = forwarding_app(auth_config(&idp.issuer));
    let header = json!({
        "alg": "RS256", "kid": "evil",
        "jku": format!("{}attacker-jwks", idp.issuer),
        "x5u": format!("{}attacker-cert", idp.issuer),
        "jwk": attacker.jwk,
    });
    let forged = sign_raw(&header, &claims(&idp.issuer), &attacker.encoding, Algorithm::RS256);
    assert_invalid_token(&with_token(&router, &forged).await);
    assert_eq!(idp.other_hits(), 0, "a URL from the token header was fetched");
}

#[tokio::test]
async fn malformed_tokens_are_401() {
    let (_idp, _key, router) = setup().await;
    for bad in ["abc", "a.b", "a.b.c", "--.__.~~", "eyJhbGciOiJSUzI1NiJ9.e30.", "a.b.c.d"] {
        assert_invalid_token(&with_token(&router, bad).await);
    }
    // Characters outside the bearer token syntax make the header itself malformed.
    assert_eq!(with_token(&router, "!!.??.$$").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn oversized_token_is_401_before_parsing() {
    let (idp, key, router) = setup().await;
    let mut c = claims(&idp.issuer);
    c["padding"] = json!("x".repeat(10_000));
    let answer = with_token(&router, &token(&key, &c)).await;
    assert_invalid_token(&answer);
    assert_eq!(idp.jwks_hits(), 0, "an oversized token caused a key fetch");
}

#[tokio::test]
async fn oversized_header_segment_is_401() {
    assert_invalid_token(&header_case(json!({"alg": "RS256", "kid": "key-a", "pad": "x".repeat(2000)})).await);
}

#[tokio::test]
async fn token_without_kid_is_accepted_only_with_a_single_key() {
    let a = rsa_key("rsa-a.pem", "key-a");
    let b = rsa_key("rsa-b.pem", "key-b");
    let idp = Idp::start(&[&a]).await;
    let (router, _) = forwarding_app(auth_config(&idp.issuer));
    let no_kid = sign_raw(&json!({"alg": "RS256"}), &claims(&idp.issuer), &a.encoding, Algorithm::RS256);
    assert_ok(&with_token(&router, &no_kid).await);

    let idp2 = Idp::start(&[&a, &b]).await;
    let (router2, _) = forwarding_app(auth_config(&idp2.issuer));
    let no_kid = sign_raw(&json!({"alg": "RS256"}), &claims(&idp2.issuer), &a.encoding, Algorithm::RS256);
    assert_invalid_token(&with_token(&router2, &no_kid).await);
}

// ---- where the token may come from ----

#[tokio::test]
async fn token_in_the_query_string_is_ignored() {
    let (idp, key, router) = setup().await;
    let t = token(&key, &claims(&idp.issuer));
    for uri in [format!("/api/api-a?access_token={t}"), format!("/api/api-a?code=k&token={t}")] {
        let answer = send(&router, Request::get(uri).body(Body::empty()).unwrap()).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.challenge(), Some(r#"Bearer realm="api""#));
    }
}

#[tokio::test]
async fn token_in_the_body_is_ignored() {
    let (idp, key, router) = setup().await;
    let t = token(&key, &claims(&idp.issuer));
    let request = Request::post("/api/api-a")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!("access_token={t}")))
        .unwrap();
    assert_eq!(send(&router, request).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let (idp, key, router) = setup().await;
    let t = token(&key, &claims(&idp.issuer));
    assert_ok(&get_api_a(&router, &[&format!("bearer {t}")]).await);
    assert_ok(&get_api_a(&router, &[&format!("BEARER {t}")]).await);
}

// ---- static key (the Node tutorial's PEM) ----

#[tokio::test]
async fn static_pem_certificate_verifies_without_any_fetch() {
    use azfn_auth::config::{AuthConfig, KeySource};
    let key = rsa_key("rsa-a.pem", "key-a");
    let issuer = "https://tenant.example.auth0.com/";
    for pem in [fixture("rsa-a-cert.pem"), fixture("rsa-a-pub.pem")] {
        let config = AuthConfig::new(issuer, KeySource::StaticPem(pem), vec![AUDIENCE.into()]);
        let (router, _) = forwarding_app(config);
        assert_ok(&with_token(&router, &token(&key, &claims(issuer))).await);
        let other = rsa_key("rsa-b.pem", "key-a");
        assert_invalid_token(&with_token(&router, &token(&other, &claims(issuer))).await);
    }
}

fn weak_jwk() -> serde_json::Value {
    serde_json::from_str(&fixture("rsa-weak-1024.jwk.json")).unwrap()
}

#[tokio::test]
async fn a_key_set_with_only_a_weak_rsa_key_has_no_usable_key() {
    let good = rsa_key("rsa-a.pem", "weak");
    let idp = Idp::start(&[]).await;
    idp.set_raw_keys(vec![weak_jwk()]);
    let (router, _) = forwarding_app(auth_config(&idp.issuer));
    let answer = with_token(&router, &token(&good, &claims(&idp.issuer))).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_weak_key_next_to_a_good_one_is_ignored() {
    let good = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&good]).await;
    idp.set_raw_keys(vec![weak_jwk(), good.jwk.clone()]);
    let (router, _) = forwarding_app(auth_config(&idp.issuer));
    let claiming_weak = rsa_key("rsa-a.pem", "weak");
    assert_invalid_token(&with_token(&router, &token(&claiming_weak, &claims(&idp.issuer))).await);
    assert_ok(&with_token(&router, &token(&good, &claims(&idp.issuer))).await);
}

#[tokio::test]
async fn dpop_bound_token_over_bearer_is_401_invalid_token() {
    assert_invalid_token(
        &claims_case(|c| c["cnf"] = json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"})).await,
    );
}

#[tokio::test]
async fn certificate_bound_token_over_bearer_is_401_invalid_token() {
    assert_invalid_token(
        &claims_case(|c| c["cnf"] = json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"})).await,
    );
}
