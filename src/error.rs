//! The one mapping from an authentication failure to an HTTP answer (RFC 6750 §3).
//! Client-facing text is fixed per case: it never echoes configuration, key ids, URLs or
//! token content. The detailed reason goes to the decision log only.

use std::fmt;

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode, header};

/// Why a request was refused before the business handler ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header, or one with another scheme.
    MissingToken,
    /// The `Authorization` header is malformed.
    InvalidRequest(RequestProblem),
    /// The token is not acceptable.
    InvalidToken(TokenRejection),
    /// The token is valid but lacks rights this function requires.
    InsufficientScope {
        /// Space-separated scopes the function requires (RFC 6750 `scope` attribute).
        scope: String,
    },
    /// No signing keys can be obtained, so no token can be checked.
    KeysUnavailable,
    /// The token is valid but the login behind it is too weak or too old for this function
    /// (RFC 9470): a new login meeting the demand cures it.
    InsufficientUserAuthentication(StepUp),
    /// The DPoP proof is not acceptable (RFC 9449 `invalid_dpop_proof`).
    InvalidDpopProof(ProofRejection),
    /// Server nonces are on and the proof has no current one (RFC 9449 `use_dpop_nonce`).
    UseDpopNonce,
    /// The DPoP replay cache is full of live entries: refusing beats forgetting one.
    Overloaded,
    /// Strict DPoP single use (`AUTH_DPOP_REPLAY_STORE=table`) could not record the proof
    /// in storage: refusing beats admitting a proof another instance may have seen.
    ReplayStoreUnavailable,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidRequest(_) => write!(f, "malformed authorization header: {}", self.reason()),
            Self::InvalidToken(_) => write!(f, "invalid token: {}", self.reason()),
            Self::InsufficientUserAuthentication(_) => write!(f, "insufficient user authentication: {}", self.reason()),
            Self::InvalidDpopProof(_) => write!(f, "invalid DPoP proof: {}", self.reason()),
            _ => f.write_str(self.reason()),
        }
    }
}

impl std::error::Error for AuthError {}

/// What is wrong with the `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.reason())]
pub enum RequestProblem {
    /// `Bearer` with nothing after it.
    EmptyToken,
    /// More than one token in one header.
    SeveralTokens,
    /// More than one `Authorization` header (or several joined into one line).
    SeveralHeaders,
    /// Characters outside the RFC 6750 `b64token` syntax.
    InvalidCharacters,
}

impl RequestProblem {
    /// A short fixed description, for logs.
    pub fn reason(self) -> &'static str {
        match self {
            Self::EmptyToken => "empty token",
            Self::SeveralTokens => "several tokens",
            Self::SeveralHeaders => "several authorization headers",
            Self::InvalidCharacters => "invalid characters",
        }
    }
}

/// Why a token was rejected. [`TokenRejection::reason`] is for logs; clients get a generic text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.reason())]
pub enum TokenRejection {
    /// Longer than the configured cap; not parsed.
    Oversized,
    /// Not three base64url segments with JSON header and claims.
    Malformed,
    /// Five segments: an encrypted token (JWE).
    Encrypted,
    /// One segment, no `.` at all: an opaque token, not a JWT (what Auth0 issues, like a
    /// JWE, when the client asked for a token without `audience`).
    Opaque,
    /// `cty: JWT`: a nested token.
    Nested,
    /// A `crit` header this handler does not understand.
    CriticalHeader,
    /// `alg` not allowed by configuration (including `none` and HMAC).
    AlgorithmNotAllowed,
    /// `typ` is not `at+jwt` while RFC 9068 tokens are required.
    WrongType,
    /// No key with the token's `kid`.
    UnknownKey,
    /// The key does not permit the token's algorithm.
    KeyMismatch,
    /// Signature check failed.
    BadSignature,
    /// `iss` missing, not a string, or not a trusted issuer.
    WrongIssuer,
    /// `aud` missing, malformed, or none of the accepted audiences.
    WrongAudience,
    /// `iss` has a `{tenantid}` issuer's shape, but the token's `tid` is missing or names
    /// another tenant: refused before any key lookup.
    IssuerTenantMismatch,
    /// `iss` is a `{tenantid}` issuer for a tenant `AUTH_TENANTS` does not list: refused
    /// before any key lookup.
    TenantNotAllowed,
    /// `exp` missing.
    MissingExpiry,
    /// A registered claim of the wrong JSON type.
    BadClaimType,
    /// `exp` in the past (beyond the skew).
    Expired,
    /// `nbf` in the future (beyond the skew).
    NotYetValid,
    /// `iat` in the future (beyond the skew).
    IssuedInFuture,
    /// A `cnf` (sender-constraint) member this request does not prove: accepting it as a
    /// plain bearer token would let a stolen bound token work from anywhere.
    UnverifiedBinding,
    /// `auth_time` in the future (beyond the skew), on a function with `maxAge`: no login
    /// happens later than now, so the token is defective, not merely old.
    AuthenticatedInFuture,
    /// A Bearer token where the function requires DPoP.
    DpopRequired,
    /// The DPoP scheme where DPoP is off or `AUTH_PUBLIC_URL` is not set: an unsupported
    /// scheme, so the challenge carries no error code (RFC 6750 §3.1).
    DpopNotEnabled,
    /// The DPoP scheme with a token that has no `cnf.jkt`.
    UnboundToken,
    /// `cnf.jkt` is not the thumbprint of the proof key.
    KeyBindingMismatch,
    /// `cnf.x5t#S256` with no client certificate header, or another certificate.
    CertificateMismatch,
}

impl TokenRejection {
    /// A short fixed description, for logs.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Oversized => "oversized",
            Self::Malformed => "malformed",
            Self::Encrypted => "encrypted token",
            Self::Opaque => "opaque token (not a JWT)",
            Self::Nested => "nested token",
            Self::CriticalHeader => "unsupported critical header",
            Self::AlgorithmNotAllowed => "algorithm not allowed",
            Self::WrongType => "not an access token",
            Self::UnknownKey => "unknown key id",
            Self::KeyMismatch => "key does not permit the algorithm",
            Self::BadSignature => "bad signature",
            Self::WrongIssuer => "untrusted issuer",
            Self::WrongAudience => "wrong audience",
            Self::IssuerTenantMismatch => "iss does not match the token's tid",
            Self::TenantNotAllowed => "tenant not allowed",
            Self::MissingExpiry => "missing exp",
            Self::BadClaimType => "claim of the wrong type",
            Self::Expired => "expired",
            Self::NotYetValid => "not yet valid",
            Self::IssuedInFuture => "issued in the future",
            Self::UnverifiedBinding => "sender-constrained token without proof",
            Self::DpopRequired => "bearer token where DPoP is required",
            Self::DpopNotEnabled => "DPoP scheme while DPoP is not enabled",
            Self::UnboundToken => "DPoP scheme with a token not bound to a key",
            Self::KeyBindingMismatch => "token bound to another DPoP key",
            Self::CertificateMismatch => "client certificate missing or not the bound one",
            Self::AuthenticatedInFuture => "auth_time in the future",
        }
    }
}

/// A step-up demand (RFC 9470 §3): why the login behind a valid token falls short, and
/// everything the function requires of a login, so one new login satisfies it all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepUp {
    /// Why, for the decision log (never sent to the client).
    pub shortfall: Shortfall,
    /// Acceptable `acr` values, space-separated (the `acr_values` attribute); empty when the
    /// function names none. Validated at start-up: no quotes or backslashes.
    pub acr_values: std::sync::Arc<str>,
    /// Greatest login age in seconds (the `max_age` attribute), when the function sets one.
    pub max_age: Option<u64>,
}

/// How a login falls short of a function's step-up demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.reason())]
pub enum Shortfall {
    /// No `acr` claim, on a function with `acrValues`.
    MissingAcr,
    /// An `acr` that is not one of the function's `acrValues`.
    AcrNotAccepted,
    /// No `auth_time` claim, on a function with `maxAge`.
    MissingAuthTime,
    /// The login is older than `maxAge` (plus the skew).
    AuthenticationTooOld,
}

impl Shortfall {
    /// A short fixed description, for logs.
    pub fn reason(self) -> &'static str {
        match self {
            Self::MissingAcr => "acr missing",
            Self::AcrNotAccepted => "acr not accepted",
            Self::MissingAuthTime => "auth_time missing",
            Self::AuthenticationTooOld => "authentication too old",
        }
    }
}

/// Why a DPoP proof was rejected (RFC 9449 §4.3). [`ProofRejection::reason`] is for logs;
/// clients get one fixed text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.reason())]
pub enum ProofRejection {
    /// No `DPoP` header.
    Missing,
    /// More than one `DPoP` header (or several joined into one line).
    Several,
    /// Longer than the cap; not parsed.
    Oversized,
    /// Not a compact JWS with JSON header and claims, or a claim missing or mistyped.
    Malformed,
    /// `typ` is not `dpop+jwt`.
    WrongType,
    /// `alg` not in `AUTH_DPOP_ALGORITHMS` (never `none` or HMAC).
    AlgorithmNotAllowed,
    /// `jwk` missing, malformed, unsupported, or not of the `alg`'s type.
    BadKey,
    /// `jwk` holds private key members.
    PrivateKey,
    /// Not signed by its `jwk`.
    BadSignature,
    /// `htm` is not the request method.
    WrongMethod,
    /// `htu` is not this request's URL at a configured public origin.
    WrongUrl,
    /// `iat` older than `AUTH_DPOP_MAX_AGE_SECONDS`.
    Stale,
    /// `iat` in the future beyond the clock skew.
    IssuedInFuture,
    /// `ath` missing or not the hash of the access token.
    WrongTokenHash,
    /// `jti` already used.
    Replayed,
}

impl ProofRejection {
    /// A short fixed description, for logs.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "no DPoP proof",
            Self::Several => "several DPoP proofs",
            Self::Oversized => "oversized proof",
            Self::Malformed => "malformed proof",
            Self::WrongType => "proof typ is not dpop+jwt",
            Self::AlgorithmNotAllowed => "proof algorithm not allowed",
            Self::BadKey => "bad proof key",
            Self::PrivateKey => "private key in proof",
            Self::BadSignature => "bad proof signature",
            Self::WrongMethod => "proof htm mismatch",
            Self::WrongUrl => "proof htu mismatch",
            Self::Stale => "proof too old",
            Self::IssuedInFuture => "proof issued in the future",
            Self::WrongTokenHash => "proof ath mismatch",
            Self::Replayed => "proof replayed",
        }
    }
}

/// Which challenges a refused request gets (RFC 9449 §7.1): the scheme the request used,
/// or, with no credentials, every scheme the function accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// `Bearer realm=...` only.
    Bearer,
    /// `DPoP algs=...` only.
    Dpop,
    /// `Bearer realm=..., DPoP algs=...` (no credentials, DPoP allowed).
    Both,
}

/// A refused request: the failure, the challenges to send, and a fresh `DPoP-Nonce` when
/// server nonces are on and DPoP is offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What failed.
    pub error: AuthError,
    /// Which challenges go with it.
    pub offer: Offer,
    /// `DPoP-Nonce` value to send.
    pub nonce: Option<HeaderValue>,
}

impl Refusal {
    /// The full HTTP answer.
    pub fn into_response(self, challenges: &Challenges) -> Response<Body> {
        let Self { error, offer, nonce } = self;
        // Bearer-only refusals are exactly the prebuilt answers (the common, measured path).
        let dpop_challenge = (offer != Offer::Bearer).then(|| challenges.dpop_header(&error, offer));
        let mut response = error.into_response(challenges);
        let headers = response.headers_mut();
        if let Some(challenge) = dpop_challenge {
            headers.remove(header::WWW_AUTHENTICATE);
            if let Some(challenge) = challenge {
                headers.insert(header::WWW_AUTHENTICATE, challenge);
            }
        }
        if let Some(nonce) = nonce {
            headers.insert(DPOP_NONCE, nonce);
        }
        response
    }
}

/// The `DPoP-Nonce` response header (RFC 9449 §8).
pub const DPOP_NONCE: header::HeaderName = header::HeaderName::from_static("dpop-nonce");

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

/// Every fixed `WWW-Authenticate` value of one configuration, built once at start-up so a
/// refused request copies a header instead of formatting and validating one. Only
/// `insufficient_scope` with a scope list and step-up demands (per function) are built per
/// request.
#[derive(Debug, Clone)]
pub struct Challenges {
    context: ChallengeContext,
    missing_token: Option<HeaderValue>,
    invalid_request: Option<HeaderValue>,
    invalid_token: Option<HeaderValue>,
    expired: Option<HeaderValue>,
    no_scope: Option<HeaderValue>,
    retry_after: HeaderValue,
    /// `algs` of the DPoP challenge (`ES256 RS256 ...`); `None` when DPoP is never offered.
    dpop_algs: Option<String>,
}

impl Challenges {
    /// Builds the values from the configured parameters.
    pub fn new(context: ChallengeContext) -> Self {
        let build = |error: AuthError| header_value(error.challenge(&context));
        Self {
            missing_token: build(AuthError::MissingToken),
            invalid_request: build(AuthError::InvalidRequest(RequestProblem::EmptyToken)),
            invalid_token: build(AuthError::InvalidToken(TokenRejection::Malformed)),
            expired: build(AuthError::InvalidToken(TokenRejection::Expired)),
            no_scope: build(AuthError::InsufficientScope { scope: String::new() }),
            retry_after: HeaderValue::from(context.retry_after_secs.max(1)),
            context,
            dpop_algs: None,
        }
    }

    /// The same values, plus DPoP challenges naming `algs` (space-separated).
    pub fn with_dpop(mut self, algs: &str) -> Self {
        self.dpop_algs = Some(algs.to_owned());
        self
    }

    /// The `WWW-Authenticate` value with a DPoP challenge (`Offer::Dpop`), or with both
    /// (`Offer::Both`, which only a request without credentials gets). DPoP answers are
    /// refusals only, so they are formatted here rather than prebuilt.
    pub fn dpop_header(&self, error: &AuthError, offer: Offer) -> Option<HeaderValue> {
        let Some(algs) = &self.dpop_algs else { return self.header(error) };
        let dpop = error.dpop_challenge(&self.context, algs)?;
        match offer {
            Offer::Both => {
                let bearer = AuthError::MissingToken.challenge(&self.context)?;
                header_value(Some(format!("{bearer}, {dpop}")))
            }
            Offer::Dpop | Offer::Bearer => header_value(Some(dpop)),
        }
    }

    /// The parameters these values were built from.
    pub fn context(&self) -> &ChallengeContext {
        &self.context
    }

    /// The `WWW-Authenticate` value for `error`: the same as [`AuthError::challenge`].
    pub fn header(&self, error: &AuthError) -> Option<HeaderValue> {
        match error {
            AuthError::MissingToken => self.missing_token.clone(),
            AuthError::InvalidRequest(_) => self.invalid_request.clone(),
            AuthError::InvalidToken(TokenRejection::Expired) => self.expired.clone(),
            AuthError::InvalidToken(TokenRejection::DpopNotEnabled) => self.missing_token.clone(),
            AuthError::InvalidToken(TokenRejection::DpopRequired) => header_value(error.challenge(&self.context)),
            AuthError::InvalidToken(_) => self.invalid_token.clone(),
            AuthError::InsufficientScope { scope } if scope.is_empty() => self.no_scope.clone(),
            AuthError::InsufficientScope { .. }
            | AuthError::KeysUnavailable
            | AuthError::InsufficientUserAuthentication(_)
            | AuthError::InvalidDpopProof(_)
            | AuthError::UseDpopNonce
            | AuthError::Overloaded
            | AuthError::ReplayStoreUnavailable => header_value(error.challenge(&self.context)),
        }
    }
}

/// A header value from text built here (it never fails for a valid realm and URL; an
/// invalid one means no challenge rather than a panic).
fn header_value(text: Option<String>) -> Option<HeaderValue> {
    text.and_then(|text| HeaderValue::from_maybe_shared(axum::body::Bytes::from(text)).ok())
}

/// Body and `error_description` of a step-up demand: one text for every shortfall, so the
/// answer says what to do (log in again) without telling which check failed.
pub const STEP_UP_TEXT: &str = "A stronger or more recent authentication is required";

impl StepUp {
    /// The RFC 9470 §3 attributes: `, acr_values="a b"` and/or `, max_age="N"` (quoted, as
    /// in the RFC's examples). Scheme-independent, so any challenge scheme can carry them.
    pub fn attributes(&self) -> String {
        let mut attributes = String::new();
        if !self.acr_values.is_empty() {
            attributes.push_str(&format!(r#", acr_values="{}""#, self.acr_values));
        }
        if let Some(max_age) = self.max_age {
            attributes.push_str(&format!(r#", max_age="{max_age}""#));
        }
        attributes
    }
}

/// Body sent when no token was presented (the text Auth0's Node middleware uses).
pub const MISSING_TOKEN_BODY: &str = "No authorization token was found";

impl AuthError {
    /// The fixed reason for the decision log: the detail of a malformed header or rejected
    /// token (the status tells which), else the failure itself.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingToken => "no bearer token",
            Self::InvalidRequest(problem) => problem.reason(),
            Self::InvalidToken(rejection) => rejection.reason(),
            Self::InsufficientScope { .. } => "insufficient scope",
            Self::KeysUnavailable => "signing keys unavailable",
            Self::InsufficientUserAuthentication(step_up) => step_up.shortfall.reason(),
            Self::InvalidDpopProof(rejection) => rejection.reason(),
            Self::UseDpopNonce => "DPoP nonce missing or stale",
            Self::Overloaded => "DPoP replay cache full",
            Self::ReplayStoreUnavailable => "DPoP replay store unavailable",
        }
    }

    /// HTTP status for this failure.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken(_) | Self::InsufficientUserAuthentication(_) => {
                StatusCode::UNAUTHORIZED
            }
            Self::InvalidDpopProof(_) | Self::UseDpopNonce => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            Self::KeysUnavailable | Self::Overloaded | Self::ReplayStoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn client_text(&self) -> &'static str {
        match self {
            Self::MissingToken => MISSING_TOKEN_BODY,
            Self::InvalidRequest(_) => "Malformed Authorization header; expected: Authorization: Bearer <token>",
            Self::InvalidToken(TokenRejection::Expired) => "The access token expired",
            Self::InvalidToken(TokenRejection::DpopRequired) => "This function requires a DPoP-bound access token",
            Self::InvalidToken(TokenRejection::DpopNotEnabled) => {
                "This function does not accept DPoP; use Authorization: Bearer"
            }
            Self::InvalidDpopProof(_) => "The DPoP proof is invalid",
            Self::UseDpopNonce => "Resource server requires nonce in DPoP proof",
            Self::Overloaded => "Too many requests are being checked; retry later",
            Self::ReplayStoreUnavailable => "The DPoP proof cannot be checked right now; retry with a new proof",
            Self::InvalidToken(_) => "The access token is invalid",
            Self::InsufficientScope { .. } => "The access token does not grant access to this function",
            Self::KeysUnavailable => "Token signing keys are temporarily unavailable; retry later",
            Self::InsufficientUserAuthentication(_) => STEP_UP_TEXT,
        }
    }

    /// The `WWW-Authenticate` value, if this failure carries a challenge.
    pub fn challenge(&self, context: &ChallengeContext) -> Option<String> {
        self.challenge_in(&format!(r#"Bearer realm="{}""#, context.realm), false, context)
    }

    /// The `DPoP` challenge (RFC 9449 §7.1) for this failure: `algs`, then the error code
    /// and fixed description as in [`AuthError::challenge`].
    pub fn dpop_challenge(&self, context: &ChallengeContext, algs: &str) -> Option<String> {
        self.challenge_in(&format!(r#"DPoP algs="{algs}""#), true, context)
    }

    /// The challenge after `scheme` (the scheme and its first attribute). Proof failures have
    /// their own error codes only in a DPoP challenge (RFC 9449 §7.1).
    fn challenge_in(&self, scheme: &str, dpop: bool, context: &ChallengeContext) -> Option<String> {
        // RFC 9728 §5.1: point clients at the protected-resource metadata, when published.
        let metadata = context
            .resource_metadata
            .as_deref()
            .map(|url| format!(r#", resource_metadata="{url}""#))
            .unwrap_or_default();
        let with_error =
            |code: &str| format!(r#"{scheme}, error="{code}", error_description="{}"{metadata}"#, self.client_text());
        match self {
            // RFC 6750 §3.1: a request with an unsupported scheme gets no error code (only the
            // body says DPoP is not accepted here), as a request without credentials.
            Self::MissingToken | Self::InvalidToken(TokenRejection::DpopNotEnabled) => {
                Some(format!("{scheme}{metadata}"))
            }
            Self::InvalidRequest(_) => Some(with_error("invalid_request")),
            Self::InvalidToken(_) => Some(with_error("invalid_token")),
            Self::InvalidDpopProof(_) => Some(with_error(if dpop { "invalid_dpop_proof" } else { "invalid_token" })),
            Self::UseDpopNonce => Some(with_error(if dpop { "use_dpop_nonce" } else { "invalid_token" })),
            Self::InsufficientScope { scope } if scope.is_empty() => Some(with_error("insufficient_scope")),
            Self::InsufficientScope { scope } => {
                Some(format!("{}, scope=\"{scope}\"", with_error("insufficient_scope")))
            }
            Self::InsufficientUserAuthentication(step_up) => {
                Some(with_error("insufficient_user_authentication") + &step_up.attributes())
            }
            Self::KeysUnavailable | Self::Overloaded | Self::ReplayStoreUnavailable => None,
        }
    }

    /// The full HTTP answer.
    pub fn into_response(self, challenges: &Challenges) -> Response<Body> {
        let mut response = Response::new(Body::from(self.client_text()));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, const { HeaderValue::from_static("text/plain; charset=utf-8") });
        headers.insert(header::CACHE_CONTROL, const { HeaderValue::from_static("no-store") });
        if let Some(challenge) = challenges.header(&self) {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if self == Self::KeysUnavailable {
            headers.insert(header::RETRY_AFTER, challenges.retry_after.clone());
        }
        if self == Self::Overloaded || self == Self::ReplayStoreUnavailable {
            headers.insert(header::RETRY_AFTER, const { HeaderValue::from_static("1") });
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(err: AuthError) -> (StatusCode, Option<String>, Option<String>) {
        let context = ChallengeContext { realm: "api".into(), retry_after_secs: 30, resource_metadata: None };
        let r = err.into_response(&Challenges::new(context));
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
    fn dpop_scheme_where_dpop_is_not_accepted_gets_the_plain_challenge() {
        let error = AuthError::InvalidToken(TokenRejection::DpopNotEnabled);
        let (status, challenge, _) = answer(error.clone());
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="api""#));
        assert_eq!(error.client_text(), "This function does not accept DPoP; use Authorization: Bearer");
        assert_eq!(error.reason(), "DPoP scheme while DPoP is not enabled");
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
    fn reasons_are_the_display_text() {
        assert_eq!(TokenRejection::Expired.to_string(), "expired");
        assert_eq!(RequestProblem::SeveralTokens.to_string(), "several tokens");
        assert_eq!(AuthError::InvalidToken(TokenRejection::Expired).to_string(), "invalid token: expired");
        assert_eq!(AuthError::InvalidToken(TokenRejection::BadSignature).reason(), "bad signature");
        assert_eq!(AuthError::MissingToken.to_string(), "no bearer token");
    }

    #[test]
    fn prebuilt_challenges_are_the_formatted_ones() {
        let errors = [
            AuthError::MissingToken,
            AuthError::InvalidRequest(RequestProblem::SeveralTokens),
            AuthError::InvalidRequest(RequestProblem::InvalidCharacters),
            AuthError::InvalidToken(TokenRejection::BadSignature),
            AuthError::InvalidToken(TokenRejection::Expired),
            AuthError::InvalidToken(TokenRejection::NotYetValid),
            AuthError::InvalidToken(TokenRejection::DpopNotEnabled),
            AuthError::InvalidToken(TokenRejection::DpopRequired),
            AuthError::InsufficientScope { scope: String::new() },
            AuthError::InsufficientScope { scope: "read:a".into() },
            AuthError::KeysUnavailable,
            AuthError::InsufficientUserAuthentication(step_up(Some(60))),
        ];
        for metadata in [None, Some("https://app.example/.well-known/oauth-protected-resource".to_owned())] {
            let context = ChallengeContext { realm: "api".into(), retry_after_secs: 0, resource_metadata: metadata };
            let challenges = Challenges::new(context.clone());
            assert_eq!(challenges.context(), &context);
            for error in &errors {
                let prebuilt = challenges.header(error).map(|v| v.to_str().unwrap().to_owned());
                assert_eq!(prebuilt, error.challenge(&context), "{error:?}");
            }
            let response = AuthError::KeysUnavailable.into_response(&challenges);
            assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        }
    }

    fn step_up(max_age: Option<u64>) -> StepUp {
        StepUp { shortfall: Shortfall::AcrNotAccepted, acr_values: "mfa hwk".into(), max_age }
    }

    #[test]
    fn step_up_is_401_insufficient_user_authentication_with_acr_values_and_max_age() {
        let (status, challenge, retry) = answer(AuthError::InsufficientUserAuthentication(step_up(Some(300))));
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge.as_deref(),
            Some(concat!(
                r#"Bearer realm="api", error="insufficient_user_authentication", "#,
                r#"error_description="A stronger or more recent authentication is required", "#,
                r#"acr_values="mfa hwk", max_age="300""#
            ))
        );
        assert_eq!(retry, None);
    }

    #[test]
    fn step_up_names_only_the_requirements_the_function_has() {
        let (_, only_acr, _) = answer(AuthError::InsufficientUserAuthentication(step_up(None)));
        assert!(only_acr.unwrap().ends_with(r#"required", acr_values="mfa hwk""#));
        let only_age = StepUp { shortfall: Shortfall::AuthenticationTooOld, acr_values: "".into(), max_age: Some(0) };
        let (_, challenge, _) = answer(AuthError::InsufficientUserAuthentication(only_age));
        let challenge = challenge.unwrap();
        assert!(challenge.ends_with(r#"required", max_age="0""#), "{challenge}");
        assert!(!challenge.contains("acr_values"), "{challenge}");
    }

    #[test]
    fn step_up_reason_is_logged_but_not_sent() {
        let error = AuthError::InsufficientUserAuthentication(step_up(None));
        assert_eq!(error.reason(), "acr not accepted");
        assert_eq!(error.to_string(), "insufficient user authentication: acr not accepted");
        assert_eq!(AuthError::InvalidToken(TokenRejection::AuthenticatedInFuture).reason(), "auth_time in the future");
        let context = ChallengeContext { realm: "api".into(), retry_after_secs: 30, resource_metadata: None };
        assert!(!error.challenge(&context).unwrap().contains("not accepted"));
    }

    fn refused(error: AuthError, offer: Offer) -> Response<Body> {
        let context = ChallengeContext { realm: "api".into(), retry_after_secs: 30, resource_metadata: None };
        let nonce = Some(HeaderValue::from_static("n1"));
        Refusal { error, offer, nonce }.into_response(&Challenges::new(context).with_dpop("ES256 RS256"))
    }

    fn challenge_of(response: &Response<Body>) -> &str {
        response.headers()[header::WWW_AUTHENTICATE].to_str().unwrap()
    }

    #[test]
    fn proof_failure_is_401_invalid_dpop_proof_with_dpop_challenge_and_nonce() {
        let response = refused(AuthError::InvalidDpopProof(ProofRejection::WrongUrl), Offer::Dpop);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge_of(&response),
            r#"DPoP algs="ES256 RS256", error="invalid_dpop_proof", error_description="The DPoP proof is invalid""#
        );
        assert_eq!(response.headers()[DPOP_NONCE], "n1");
    }

    #[test]
    fn no_credentials_with_dpop_offered_gets_both_challenges() {
        let response = refused(AuthError::MissingToken, Offer::Both);
        assert_eq!(challenge_of(&response), r#"Bearer realm="api", DPoP algs="ES256 RS256""#);
        assert_eq!(challenge_of(&refused(AuthError::MissingToken, Offer::Dpop)), r#"DPoP algs="ES256 RS256""#);
    }

    #[test]
    fn use_dpop_nonce_is_401_with_its_own_error_code() {
        let response = refused(AuthError::UseDpopNonce, Offer::Dpop);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(challenge_of(&response).contains(r#"error="use_dpop_nonce""#));
    }

    #[test]
    fn bearer_refusal_is_the_prebuilt_answer() {
        let response = refused(AuthError::InvalidToken(TokenRejection::UnverifiedBinding), Offer::Bearer);
        assert_eq!(
            challenge_of(&response),
            r#"Bearer realm="api", error="invalid_token", error_description="The access token is invalid""#
        );
    }

    #[test]
    fn full_replay_cache_is_503_with_retry_after_and_no_challenge() {
        let response = refused(AuthError::Overloaded, Offer::Dpop);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn keys_unavailable_is_503_with_retry_after_and_no_challenge() {
        let (status, challenge, retry) = answer(AuthError::KeysUnavailable);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(challenge, None);
        assert_eq!(retry.as_deref(), Some("30"));
    }
}
