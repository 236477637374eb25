//! The one mapping from an authentication failure to an HTTP answer (RFC 6750 §3).
//! Client-facing text is fixed per case: it never echoes configuration, key ids, URLs or
//! token content. The detailed reason goes to the decision log only.

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode, header};

/// Why a request was refused before the business handler ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header, or one with another scheme.
    #[error("no bearer token")]
    MissingToken,
    /// The `Authorization` header is malformed.
    #[error("malformed authorization header: {0}")]
    InvalidRequest(RequestProblem),
    /// The token is not acceptable.
    #[error("invalid token: {0}")]
    InvalidToken(TokenRejection),
    /// The token is valid but lacks rights this function requires.
    #[error("insufficient scope")]
    InsufficientScope {
        /// Space-separated scopes the function requires (RFC 6750 `scope` attribute).
        scope: String,
    },
    /// No signing keys can be obtained, so no token can be checked.
    #[error("signing keys unavailable")]
    KeysUnavailable,
}

/// What is wrong with the `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestProblem {
    /// `Bearer` with nothing after it.
    #[error("empty token")]
    EmptyToken,
    /// More than one token in one header.
    #[error("several tokens")]
    SeveralTokens,
    /// More than one `Authorization` header (or several joined into one line).
    #[error("several authorization headers")]
    SeveralHeaders,
    /// Characters outside the RFC 6750 `b64token` syntax.
    #[error("invalid characters")]
    InvalidCharacters,
}

/// Why a token was rejected. `reason()` is for logs; clients get a generic text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    /// Longer than the configured cap; not parsed.
    #[error("oversized")]
    Oversized,
    /// Not three base64url segments with JSON header and claims.
    #[error("malformed")]
    Malformed,
    /// Five segments: an encrypted token (JWE).
    #[error("encrypted token")]
    Encrypted,
    /// `cty: JWT`: a nested token.
    #[error("nested token")]
    Nested,
    /// A `crit` header this handler does not understand.
    #[error("unsupported critical header")]
    CriticalHeader,
    /// `alg` not allowed by configuration (including `none` and HMAC).
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    /// `typ` is not `at+jwt` while RFC 9068 tokens are required.
    #[error("not an access token")]
    WrongType,
    /// No key with the token's `kid`.
    #[error("unknown key id")]
    UnknownKey,
    /// The key does not permit the token's algorithm.
    #[error("key does not permit the algorithm")]
    KeyMismatch,
    /// Signature check failed.
    #[error("bad signature")]
    BadSignature,
    /// `iss` missing, not a string, or not a trusted issuer.
    #[error("untrusted issuer")]
    WrongIssuer,
    /// `aud` missing, malformed, or none of the accepted audiences.
    #[error("wrong audience")]
    WrongAudience,
    /// `exp` missing.
    #[error("missing exp")]
    MissingExpiry,
    /// A registered claim of the wrong JSON type.
    #[error("claim of the wrong type")]
    BadClaimType,
    /// `exp` in the past (beyond the skew).
    #[error("expired")]
    Expired,
    /// `nbf` in the future (beyond the skew).
    #[error("not yet valid")]
    NotYetValid,
    /// `iat` in the future (beyond the skew).
    #[error("issued in the future")]
    IssuedInFuture,
}

/// Fixed parts of every challenge, from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeContext {
    /// `realm` attribute.
    pub realm: String,
    /// Seconds in `Retry-After` on 503.
    pub retry_after_secs: u64,
    /// RFC 9728 metadata URL, when published.
    pub resource_metadata: Option<String>,
}

/// Body sent when no token was presented (the text Auth0's Node middleware uses).
pub const MISSING_TOKEN_BODY: &str = "No authorization token was found";

impl AuthError {
    /// HTTP status for this failure.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Self::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn client_text(&self) -> &'static str {
        match self {
            Self::MissingToken => MISSING_TOKEN_BODY,
            Self::InvalidRequest(_) => "Malformed Authorization header; expected: Authorization: Bearer <token>",
            Self::InvalidToken(TokenRejection::Expired) => "The access token expired",
            Self::InvalidToken(_) => "The access token is invalid",
            Self::InsufficientScope { .. } => "The access token does not grant access to this function",
            Self::KeysUnavailable => "Token signing keys are temporarily unavailable; retry later",
        }
    }

    /// The `WWW-Authenticate` value, if this failure carries a challenge.
    pub fn challenge(&self, context: &ChallengeContext) -> Option<String> {
        let realm = &context.realm;
        // RFC 9728 §5.1: point clients at the protected-resource metadata, when published.
        let metadata = context
            .resource_metadata
            .as_deref()
            .map(|url| format!(r#", resource_metadata="{url}""#))
            .unwrap_or_default();
        let with_error = |code: &str| {
            format!(r#"Bearer realm="{realm}", error="{code}", error_description="{}"{metadata}"#, self.client_text())
        };
        match self {
            Self::MissingToken => Some(format!(r#"Bearer realm="{realm}"{metadata}"#)),
            Self::InvalidRequest(_) => Some(with_error("invalid_request")),
            Self::InvalidToken(_) => Some(with_error("invalid_token")),
            Self::InsufficientScope { scope } if scope.is_empty() => Some(with_error("insufficient_scope")),
            Self::InsufficientScope { scope } => Some(format!(
                r#"Bearer realm="{realm}", error="insufficient_scope", error_description="{}"{metadata}, scope="{scope}""#,
                self.client_text()
            )),
            Self::KeysUnavailable => None,
        }
    }

    /// The full HTTP answer.
    pub fn into_response(self, context: &ChallengeContext) -> Response<Body> {
        let mut response = Response::new(Body::from(self.client_text()));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = self.challenge(context)
            && let Ok(value) = HeaderValue::from_str(&challenge)
        {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if self == Self::KeysUnavailable {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(context.retry_after_secs.max(1)));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(err: AuthError) -> (StatusCode, Option<String>, Option<String>) {
        let context = ChallengeContext { realm: "api".into(), retry_after_secs: 30, resource_metadata: None };
        let r = err.into_response(&context);
        let get = |name| r.headers().get(name).map(|v: &HeaderValue| v.to_str().unwrap().to_owned());
        (r.status(), get(header::WWW_AUTHENTICATE), get(header::RETRY_AFTER))
    }

    #[test]
    fn missing_token_is_401_with_a_bare_challenge() {
        let (status, challenge, retry) = answer(AuthError::MissingToken);
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="api""#));
        assert_eq!(retry, None);
    }

    #[test]
    fn malformed_header_is_400_invalid_request() {
        let (status, challenge, _) = answer(AuthError::InvalidRequest(RequestProblem::SeveralTokens));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(challenge.unwrap().starts_with(r#"Bearer realm="api", error="invalid_request""#));
    }

    #[test]
    fn bad_token_is_401_invalid_token_with_generic_text() {
        for rejection in [TokenRejection::BadSignature, TokenRejection::UnknownKey, TokenRejection::WrongAudience] {
            let (status, challenge, _) = answer(AuthError::InvalidToken(rejection));
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(
                challenge.as_deref(),
                Some(r#"Bearer realm="api", error="invalid_token", error_description="The access token is invalid""#)
            );
        }
        let (_, challenge, _) = answer(AuthError::InvalidToken(TokenRejection::Expired));
        assert!(challenge.unwrap().contains("expired"));
    }

    #[test]
    fn insufficient_scope_is_403_naming_the_scope() {
        let (status, challenge, _) = answer(AuthError::InsufficientScope { scope: "read:a write:a".into() });
        assert_eq!(status, StatusCode::FORBIDDEN);
        let challenge = challenge.unwrap();
        assert!(challenge.contains(r#"error="insufficient_scope""#));
        assert!(challenge.ends_with(r#"scope="read:a write:a""#));
    }

    #[test]
    fn insufficient_client_rights_name_no_scope() {
        let (status, challenge, _) = answer(AuthError::InsufficientScope { scope: String::new() });
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(!challenge.unwrap().contains("scope=\""));
    }

    #[test]
    fn challenges_point_to_resource_metadata_when_published() {
        let context = ChallengeContext {
            realm: "api".into(),
            retry_after_secs: 30,
            resource_metadata: Some("https://app.example/.well-known/oauth-protected-resource".into()),
        };
        assert_eq!(
            AuthError::MissingToken.challenge(&context).as_deref(),
            Some(r#"Bearer realm="api", resource_metadata="https://app.example/.well-known/oauth-protected-resource""#)
        );
        assert!(
            AuthError::InvalidToken(TokenRejection::Expired)
                .challenge(&context)
                .unwrap()
                .contains("resource_metadata=")
        );
    }

    #[test]
    fn keys_unavailable_is_503_with_retry_after_and_no_challenge() {
        let (status, challenge, retry) = answer(AuthError::KeysUnavailable);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(challenge, None);
        assert_eq!(retry.as_deref(), Some("30"));
    }
}
