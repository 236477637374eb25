//! Sender-constrained tokens: which scheme a request used, the DPoP proof for it, and the
//! token's `cnf` confirmation (RFC 7800) checked against what the request proves: the
//! proof key (`jkt`, RFC 9449) or the client certificate (`x5t#S256`, RFC 8705). A `cnf`
//! member that the request does not prove refuses the token, whatever the scheme.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue};
use serde_json::Value;

use super::bearer::{self, Scheme};
use super::dpop::{DpopMode, RequestFacts, sha256_b64};
use super::{Authenticator, Claims, unix_now};
use crate::error::{AuthError, Offer, Refusal, TokenRejection};

/// Longest client-certificate header read (base64 DER). Real certificates are 1–4 KB;
/// longer values are refused before decoding.
pub const MAX_CLIENT_CERT_HEADER_BYTES: usize = 16 * 1024;

/// An authenticated request.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The verified claims.
    pub claims: Arc<Claims>,
    /// The scheme the token came with.
    pub scheme: Scheme,
    /// The next `DPoP-Nonce` for the answer (DPoP scheme with server nonces on).
    pub nonce: Option<HeaderValue>,
}

impl Authenticator {
    /// The mode for a function: its `auth.json` `"dpop"` when set, else `AUTH_DPOP`.
    pub fn dpop_mode(&self, function: Option<DpopMode>) -> DpopMode {
        function.unwrap_or(self.dpop.mode())
    }

    /// True when the DPoP scheme can be checked (`AUTH_PUBLIC_URL` is set).
    pub fn dpop_enabled(&self) -> bool {
        self.dpop.enabled()
    }

    /// The accepted DPoP proof algorithms, for the challenge's `algs`.
    pub fn dpop_algs(&self) -> &str {
        self.dpop.algs()
    }

    /// Number of DPoP proof ids held by the replay cache.
    pub fn remembered_proofs(&self) -> usize {
        self.dpop.replay_cache().len()
    }

    /// The challenges a function in `mode` offers to a request without credentials.
    fn offer(&self, mode: DpopMode) -> Offer {
        match mode {
            DpopMode::Off => Offer::Bearer,
            DpopMode::Allowed if self.dpop.enabled() => Offer::Both,
            DpopMode::Allowed => Offer::Bearer,
            DpopMode::Required => Offer::Dpop,
        }
    }

    /// The refusal for `error` on a function in `mode` after a request used `scheme`
    /// (`None`: no usable credentials): DPoP challenges for DPoP requests and for functions
    /// that require DPoP, both for a request without credentials where DPoP is allowed, and
    /// a fresh nonce whenever a DPoP challenge goes out and server nonces are on.
    pub fn refusal(&self, error: AuthError, scheme: Option<Scheme>, mode: DpopMode) -> Refusal {
        let offer = match (self.offer(mode), scheme, &error) {
            (Offer::Bearer, _, _) => Offer::Bearer,
            (Offer::Dpop, _, _) | (_, Some(Scheme::Dpop), _) => Offer::Dpop,
            (Offer::Both, _, AuthError::MissingToken) => Offer::Both,
            (Offer::Both, _, _) => Offer::Bearer,
        };
        let nonce = match offer {
            Offer::Bearer => None,
            Offer::Dpop | Offer::Both => self.dpop.next_nonce(unix_now()),
        };
        Refusal { error, offer, nonce }
    }

    /// Authenticates a request to a function whose DPoP mode is `mode`: reads
    /// `Authorization` (Bearer or DPoP), checks the DPoP proof against this request's method
    /// and path, verifies the token (the verified-token cache only ever skips the token's
    /// signature and claims, never the proof), then the token's `cnf` against the proof key
    /// and client certificate, and last records the proof's `jti`.
    pub async fn authenticate_request(
        &self,
        parts: &http::request::Parts,
        mode: DpopMode,
    ) -> Result<Authenticated, Refusal> {
        let (scheme, token) = match bearer::credentials(&parts.headers, self.max_token_bytes) {
            Ok(found) => found,
            Err(error) => return Err(self.refusal(error, None, mode)),
        };
        let refuse = |error| self.refusal(error, Some(scheme), mode);
        match scheme {
            Scheme::Bearer => {
                if mode == DpopMode::Required {
                    return Err(refuse(AuthError::InvalidToken(TokenRejection::DpopRequired)));
                }
                let claims = self.verify(token).await.map_err(refuse)?;
                self.check_confirmation(&claims, &parts.headers, None).map_err(refuse)?;
                Ok(Authenticated { claims, scheme, nonce: None })
            }
            Scheme::Dpop => {
                if mode == DpopMode::Off || !self.dpop.enabled() {
                    // Not offered here: answer as the Bearer-only API this function is.
                    let error = AuthError::InvalidToken(TokenRejection::DpopNotEnabled);
                    return Err(self.refusal(error, None, DpopMode::Off));
                }
                let now = unix_now();
                let facts =
                    RequestFacts { method: parts.method.as_str(), path: parts.uri.path(), access_token: token, now };
                let proof = self.dpop.check(&parts.headers, facts).map_err(refuse)?;
                let claims = self.verify(token).await.map_err(refuse)?;
                self.check_confirmation(&claims, &parts.headers, Some(&proof.thumbprint)).map_err(refuse)?;
                self.dpop.remember(&proof, now).map_err(refuse)?;
                if let Some(table) = &self.replay_table {
                    table.record(&proof).await.map_err(refuse)?;
                }
                Ok(Authenticated { claims, scheme, nonce: self.dpop.next_nonce(now) })
            }
        }
    }

    /// Checks every `cnf` member against what this request proves: `jkt` against the DPoP
    /// proof key's thumbprint (`proof_key`, DPoP scheme only), `x5t#S256` against the
    /// client certificate header. Any other member, or one the request cannot prove, refuses
    /// the token; the DPoP scheme also requires `jkt` (a token not bound to the key).
    pub(crate) fn check_confirmation(
        &self,
        claims: &Claims,
        headers: &HeaderMap,
        proof_key: Option<&str>,
    ) -> Result<(), AuthError> {
        let invalid = AuthError::InvalidToken;
        let cnf = match claims.raw().get("cnf") {
            None if proof_key.is_some() => return Err(invalid(TokenRejection::UnboundToken)),
            None => return Ok(()),
            Some(Value::Object(cnf)) if !cnf.is_empty() => cnf,
            Some(_) => return Err(invalid(TokenRejection::UnverifiedBinding)),
        };
        if proof_key.is_some() && !cnf.contains_key("jkt") {
            return Err(invalid(TokenRejection::UnboundToken));
        }
        for (member, value) in cnf {
            match (member.as_str(), value.as_str()) {
                ("jkt", Some(jkt)) => match proof_key {
                    Some(thumbprint) if thumbprint == jkt => {}
                    Some(_) => return Err(invalid(TokenRejection::KeyBindingMismatch)),
                    None => return Err(invalid(TokenRejection::UnverifiedBinding)),
                },
                ("x5t#S256", Some(expected)) => {
                    let Some(name) = &self.client_cert_header else {
                        return Err(invalid(TokenRejection::UnverifiedBinding));
                    };
                    if client_cert_thumbprint(headers, name).as_deref() != Some(expected) {
                        return Err(invalid(TokenRejection::CertificateMismatch));
                    }
                }
                _ => return Err(invalid(TokenRejection::UnverifiedBinding)),
            }
        }
        Ok(())
    }
}

/// base64url(SHA-256(DER)) of the one client certificate in header `name` (base64 DER, as
/// App Service's `X-ARR-ClientCert`); `None` when absent, repeated, oversized or not base64.
pub fn client_cert_thumbprint(headers: &HeaderMap, name: &http::HeaderName) -> Option<String> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() || value.len() > MAX_CLIENT_CERT_HEADER_BYTES {
        return None;
    }
    let der = STANDARD.decode(value.as_bytes().trim_ascii()).ok()?;
    (!der.is_empty()).then(|| sha256_b64(&der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_thumbprint_is_sha256_of_the_der_base64url() {
        let name = http::HeaderName::from_static("x-arr-clientcert");
        let mut headers = HeaderMap::new();
        assert_eq!(client_cert_thumbprint(&headers, &name), None);
        headers.insert(&name, HeaderValue::from_static("AQID"));
        assert_eq!(client_cert_thumbprint(&headers, &name), Some(sha256_b64(&[1, 2, 3])));
        headers.append(&name, HeaderValue::from_static("AQID"));
        assert_eq!(client_cert_thumbprint(&headers, &name), None, "two certificates");
        headers.insert(&name, HeaderValue::from_static("not base64!"));
        assert_eq!(client_cert_thumbprint(&headers, &name), None);
    }
}
