//! A DPoP client for tests that call a running `handler` over loopback: an ES256 key pair
//! (tests/fixtures/ec-p256.pem) and proofs for [`PUBLIC_ORIGIN`], signed now. Included
//! with `#[path = "common/dpop_client.rs"] mod dpop_client;` next to `mod common;`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

use crate::common::{fixture, now, sign_raw};

/// The app's public origin the proofs are made for (`AUTH_PUBLIC_URL`).
pub const PUBLIC_ORIGIN: &str = "https://my-app.azurewebsites.net";

/// A DPoP client: an ES256 key pair and proofs for this app's public URL, signed now.
pub struct DpopClient {
    key: jsonwebtoken::EncodingKey,
    jwk: serde_json::Value,
}

impl DpopClient {
    pub fn new() -> Self {
        use jsonwebtoken::{Algorithm, EncodingKey, jwk::Jwk};
        let key = EncodingKey::from_ec_pem(fixture("ec-p256.pem").as_bytes()).unwrap();
        let full = serde_json::to_value(Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap()).unwrap();
        let jwk = json!({"kty": full["kty"], "crv": full["crv"], "x": full["x"], "y": full["y"]});
        Self { key, jwk }
    }

    /// RFC 7638 thumbprint (members in lexicographic order, serde_json's map is sorted).
    pub fn jkt(&self) -> String {
        use base64::Engine as _;
        let canonical = json!({"crv": self.jwk["crv"], "kty": self.jwk["kty"], "x": self.jwk["x"], "y": self.jwk["y"]});
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.to_string().as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    }

    pub fn proof(&self, token: &str, jti: &str) -> String {
        use base64::Engine as _;
        let ath = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
        let claims = json!({
            "jti": jti,
            "htm": "GET",
            "htu": format!("{PUBLIC_ORIGIN}/api/api-a"),
            "iat": now(),
            "ath": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ath),
        });
        sign_raw(&header, &claims, &self.key, jsonwebtoken::Algorithm::ES256)
    }
}

pub async fn call_dpop(http: &reqwest::Client, port: u16, token: &str, proof: &str) -> reqwest::Response {
    http.get(format!("http://127.0.0.1:{port}/api/api-a"))
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .send()
        .await
        .expect("call handler")
}
