//! DPoP (RFC 9449): the proof parser, every per-request proof check, the `jti` replay
//! cache and stateless server nonces. All of it is a pure function of its input and `now`
//! except the replay cache, which is bounded; the access token itself is verified elsewhere
//! ([`super::Authenticator::verify`]) and only bound to the proof key here.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::hmac;
use aws_lc_rs::signature::{RsaPublicKeyComponents, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::keys::{asymmetric_alg, ec_point};
use super::token::decode_json;
use super::verify::{point_algorithm, rsa_params};
use crate::error::{AuthError, ProofRejection as P};

/// Longest `DPoP` header read. An RSA-8192 public key in the JOSE header plus its
/// signature is about 4.5 KB; anything longer is refused before decoding. Raising it lets
/// every request make the handler decode and parse more attacker-chosen bytes.
pub const MAX_PROOF_BYTES: usize = 8192;

/// Longest base64url JOSE header of a proof (it carries the public key: RSA-8192 `n` is
/// 1366 characters, about 2 KB once encoded). Bounds the JSON parsed before any signature.
pub const MAX_PROOF_HEADER_BYTES: usize = 4096;

/// Longest base64url proof payload (`jti`, `htm`, `htu`, `iat`, `ath`, `nonce`).
pub const MAX_PROOF_PAYLOAD_BYTES: usize = 4096;

/// Longest `jti` accepted. Real ones are UUIDs or 16–32 random bytes; the cap bounds what
/// the replay cache hashes (it stores a fixed 32-byte digest either way).
pub const MAX_JTI_BYTES: usize = 256;

/// Largest signature decoded: an RSA-8192 signature (1024 bytes) plus the decoder's slack.
const MAX_SIGNATURE_BYTES: usize = 1032;

/// Length of one nonce time window. A nonce names its window and is accepted in that window
/// and the ones either side (so for 60–120 s after issue, and across instances whose clocks
/// differ by less than a window). Longer windows let a captured nonce be used for longer;
/// shorter ones make slow clients hit `use_dpop_nonce` more often.
pub const NONCE_WINDOW_SECONDS: i64 = 60;

/// Shortest `AUTH_DPOP_NONCE_SECRET` accepted: the HMAC key must not be guessable.
pub const MIN_NONCE_SECRET_BYTES: usize = 32;

/// Proof algorithms accepted by default (`AUTH_DPOP_ALGORITHMS`): what Auth0 and the common
/// DPoP client libraries produce. `EdDSA` also accepts proofs labelled `Ed25519` (RFC 9864),
/// which npm `dpop` 2.x, `oauth4webapi` 3.x and `openid-client` 6.x send.
pub const DEFAULT_ALGORITHMS: [Algorithm; 4] = [Algorithm::ES256, Algorithm::RS256, Algorithm::PS256, Algorithm::EdDSA];

/// JWK members that only a private key has; a proof carrying any of them is refused (the
/// client leaked its key, and accepting it would normalise that).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Where DPoP is accepted: the global `AUTH_DPOP` or a function's `"dpop"` in `auth.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DpopMode {
    /// Only Bearer; tokens bound with `cnf.jkt` are refused.
    Off,
    /// Both schemes; tokens bound with `cnf.jkt` only with a DPoP proof.
    #[default]
    Allowed,
    /// Only DPoP; Bearer is refused.
    Required,
}

impl DpopMode {
    /// `off`, `allowed` or `required` (any case).
    pub fn parse(text: &str) -> Option<Self> {
        [("off", Self::Off), ("allowed", Self::Allowed), ("required", Self::Required)]
            .into_iter()
            .find(|(name, _)| text.eq_ignore_ascii_case(name))
            .map(|(_, mode)| mode)
    }
}

/// The nonce HMAC key as configured; never printed.
#[derive(Clone)]
pub struct NonceSecret(pub Vec<u8>);

impl fmt::Debug for NonceSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceSecret(..)")
    }
}

/// DPoP settings, from `AUTH_DPOP*`, `AUTH_PUBLIC_URL` (see [`crate::config`]).
#[derive(Debug, Clone)]
pub struct DpopSettings {
    /// The global mode; a function's `auth.json` may override it.
    pub mode: DpopMode,
    /// This app's public origins (`scheme://host[:port]`, normalised): `htu` is one of these
    /// plus the request path. Empty: the DPoP scheme is refused.
    pub public_origins: Vec<String>,
    /// Proof signature algorithms accepted (asymmetric only).
    pub algorithms: Vec<Algorithm>,
    /// Oldest proof accepted (`iat` this far back).
    pub max_age: Duration,
    /// Most `jti` values remembered at once (per instance).
    pub replay_entries: usize,
    /// Server nonces: proofs must carry a nonce issued with this key.
    pub nonce_secret: Option<NonceSecret>,
}

impl Default for DpopSettings {
    fn default() -> Self {
        Self {
            mode: DpopMode::Allowed,
            public_origins: Vec::new(),
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            max_age: Duration::from_secs(300),
            replay_entries: 100_000,
            nonce_secret: None,
        }
    }
}

/// The proof's public key, as sent in its `jwk` header (base64url members kept for the
/// RFC 7638 thumbprint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofKey {
    /// `kty: EC`, P-256 or P-384.
    Ec {
        /// `crv`.
        crv: &'static str,
        /// `x`, base64url.
        x: String,
        /// `y`, base64url.
        y: String,
        /// `0x04 || x || y`.
        point: Vec<u8>,
    },
    /// `kty: RSA`.
    Rsa {
        /// `n`, base64url.
        n: String,
        /// `e`, base64url.
        e: String,
        /// Decoded modulus.
        modulus: Vec<u8>,
        /// Decoded exponent.
        exponent: Vec<u8>,
    },
    /// `kty: OKP`, `crv: Ed25519`.
    Ed25519 {
        /// `x`, base64url.
        x: String,
        /// Decoded public key.
        public: Vec<u8>,
    },
}

impl ProofKey {
    /// Reads a public JWK. Private members, unknown key types or curves, and members of the
    /// wrong length are refused.
    pub fn from_jwk(jwk: &Map<String, Value>) -> Result<Self, P> {
        if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
            return Err(P::PrivateKey);
        }
        let text = |name: &str| match jwk.get(name) {
            Some(Value::String(s)) => Ok(s.as_str()),
            _ => Err(P::BadKey),
        };
        let bytes = |name: &str| text(name).and_then(|s| URL_SAFE_NO_PAD.decode(s).map_err(|_| P::BadKey));
        match text("kty")? {
            "EC" => {
                let (crv, len) = match text("crv")? {
                    "P-256" => ("P-256", 32),
                    "P-384" => ("P-384", 48),
                    _ => return Err(P::BadKey),
                };
                let point = ec_point(&bytes("x")?, &bytes("y")?, len).ok_or(P::BadKey)?;
                Ok(Self::Ec { crv, x: text("x")?.to_owned(), y: text("y")?.to_owned(), point })
            }
            "RSA" => {
                let (modulus, exponent) = (bytes("n")?, bytes("e")?);
                // 2048..=8192 bits (leading zero bytes aside); aws-lc checks again on use.
                let bits = modulus.iter().skip_while(|b| **b == 0).count() * 8;
                if !(2048 - 8..=8192).contains(&bits) || exponent.is_empty() || exponent.len() > 8 {
                    return Err(P::BadKey);
                }
                Ok(Self::Rsa { n: text("n")?.to_owned(), e: text("e")?.to_owned(), modulus, exponent })
            }
            "OKP" => {
                if text("crv")? != "Ed25519" {
                    return Err(P::BadKey);
                }
                let public = bytes("x")?;
                if public.len() != 32 {
                    return Err(P::BadKey);
                }
                Ok(Self::Ed25519 { x: text("x")?.to_owned(), public })
            }
            _ => Err(P::BadKey),
        }
    }

    /// True when `alg` belongs to this key's type (and curve).
    pub fn fits(&self, alg: Algorithm) -> bool {
        match self {
            Self::Ec { crv, .. } => matches!((*crv, alg), ("P-256", Algorithm::ES256) | ("P-384", Algorithm::ES384)),
            Self::Rsa { .. } => matches!(
                alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ),
            Self::Ed25519 { .. } => alg == Algorithm::EdDSA,
        }
    }

    /// True when `signature` is a valid `alg` signature of `message` under this key.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        let point_verifies = |public: &[u8]| {
            point_algorithm(alg)
                .is_some_and(|algorithm| UnparsedPublicKey::new(algorithm, public).verify(message, signature).is_ok())
        };
        match self {
            Self::Ec { point, .. } => matches!(alg, Algorithm::ES256 | Algorithm::ES384) && point_verifies(point),
            Self::Ed25519 { public, .. } => alg == Algorithm::EdDSA && point_verifies(public),
            Self::Rsa { modulus, exponent, .. } => rsa_params(alg).is_some_and(|params| {
                RsaPublicKeyComponents { n: modulus.as_slice(), e: exponent.as_slice() }
                    .verify(params, message, signature)
                    .is_ok()
            }),
        }
    }

    /// The RFC 7638 JWK thumbprint: base64url(SHA-256) of the required members in
    /// lexicographic order, no whitespace. The member values are base64url, so they need no
    /// JSON escaping.
    pub fn thumbprint(&self) -> String {
        let canonical = match self {
            Self::Ec { crv, x, y, .. } => format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#),
            Self::Rsa { n, e, .. } => format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
            Self::Ed25519 { x, .. } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
        };
        sha256_b64(canonical.as_bytes())
    }
}

/// base64url(SHA-256(bytes)), as `ath`, `jkt` and `x5t#S256` are written.
pub fn sha256_b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, bytes))
}

/// A proof split and decoded, its header rules applied; signature not yet checked.
#[derive(Debug)]
pub struct Proof<'a> {
    /// Signature algorithm: in the accepted list and fitting the key.
    pub alg: Algorithm,
    /// The public key from the `jwk` header.
    pub key: ProofKey,
    /// `jti`.
    pub jti: String,
    /// `htm`.
    pub htm: String,
    /// `htu`.
    pub htu: String,
    /// `iat`, Unix seconds.
    pub iat: i64,
    /// `ath`, when present.
    pub ath: Option<String>,
    /// `nonce`, when present.
    pub nonce: Option<String>,
    signed: &'a str,
    signature: &'a str,
}

impl Proof<'_> {
    /// True when the proof is signed by its own `jwk`.
    pub fn signature_valid(&self) -> bool {
        let mut signature = [0u8; MAX_SIGNATURE_BYTES];
        let Ok(len) = URL_SAFE_NO_PAD.decode_slice(self.signature, &mut signature) else { return false };
        self.key.verify(self.alg, self.signed.as_bytes(), &signature[..len])
    }
}

/// Splits and decodes a DPoP proof (RFC 9449 §4.2–4.3, the syntactic checks): at most
/// [`MAX_PROOF_BYTES`], three segments of strict unpadded base64url, JSON object header and
/// payload, `typ` `dpop+jwt`, `alg` in `allowed` and fitting the `jwk` (a public key), no
/// `crit`, and the claims `jti`, `htm`, `htu` (strings), `iat` (a number), `ath` and
/// `nonce` (strings when present). Total: any input gives `Ok` or `Err`.
pub fn parse_proof<'a>(proof: &'a str, allowed: &[Algorithm]) -> Result<Proof<'a>, P> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(P::Oversized);
    }
    if !proof.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return Err(P::Malformed);
    }
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(P::Malformed);
    };
    if header_b64.len() > MAX_PROOF_HEADER_BYTES || payload_b64.len() > MAX_PROOF_PAYLOAD_BYTES || signature.is_empty()
    {
        return Err(P::Malformed);
    }
    let header = decode_json(header_b64).ok_or(P::Malformed)?;
    if !header.get("typ").and_then(Value::as_str).is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt")) {
        return Err(P::WrongType);
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(asymmetric_alg)
        .filter(|alg| allowed.contains(alg))
        .ok_or(P::AlgorithmNotAllowed)?;
    if header.contains_key("crit") {
        return Err(P::Malformed);
    }
    let Some(Value::Object(jwk)) = header.get("jwk") else { return Err(P::BadKey) };
    let key = ProofKey::from_jwk(jwk)?;
    if !key.fits(alg) {
        return Err(P::BadKey);
    }

    let payload = decode_json(payload_b64).ok_or(P::Malformed)?;
    let required = |name: &str| match payload.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(P::Malformed),
    };
    let optional = |name: &str| match payload.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(P::Malformed),
    };
    let jti = required("jti")?;
    if jti.is_empty() || jti.len() > MAX_JTI_BYTES {
        return Err(P::Malformed);
    }
    let iat = match payload.get("iat") {
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i,
            (None, Some(f)) if f.is_finite() => f.clamp(i64::MIN as f64, i64::MAX as f64) as i64,
            _ => return Err(P::Malformed),
        },
        _ => return Err(P::Malformed),
    };
    Ok(Proof {
        alg,
        key,
        jti,
        htm: required("htm")?,
        htu: required("htu")?,
        iat,
        ath: optional("ath")?,
        nonce: optional("nonce")?,
        signed: &proof[..header_b64.len() + 1 + payload_b64.len()],
        signature,
    })
}

/// An http(s) URL reduced to `scheme://host[:port]/path` after RFC 3986 normalisation
/// (§6.2.2 syntax-based: case of scheme, host and percent-encodings, unreserved characters
/// decoded, dot segments removed; §6.2.3 scheme-based: default port dropped, empty path is
/// `/`). Query and fragment are dropped (RFC 9449 §4.3 compares without them). `None` for
/// anything else, including URLs with user information.
pub fn normalize_url(text: &str) -> Option<String> {
    let url = url::Url::parse(text).ok()?;
    if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let host = url.host_str()?;
    let mut out = format!("{}://{host}", url.scheme());
    if let Some(port) = url.port() {
        out.push(':');
        out.push_str(&port.to_string());
    }
    out.push_str(&normalize_percent(url.path())?);
    Some(out)
}

/// A request path as [`normalize_url`] writes it (the handler's side of the `htu`
/// comparison). `None` unless it starts with `/`.
pub fn normalize_path(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let url = url::Url::parse(&format!("http://h{path}")).ok()?;
    normalize_percent(url.path())
}

/// An origin for `AUTH_PUBLIC_URL`: `scheme://host[:port]` normalised; `None` when `text`
/// has a path other than `/`, a query or a fragment.
pub fn normalize_origin(text: &str) -> Option<String> {
    let url = url::Url::parse(text).ok()?;
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return None;
    }
    normalize_url(text).and_then(|u| u.strip_suffix('/').map(str::to_owned))
}

/// Upper-case hex in percent-encodings, unreserved characters decoded (RFC 3986 §6.2.2.1–2).
fn normalize_percent(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let value = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
                out.push(value as char);
            } else {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase().iter().map(|b| *b as char).collect::<String>());
            }
            i += 3;
        } else {
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    Some(out)
}

/// What the request says, for the proof to match.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'r> {
    /// The HTTP method.
    pub method: &'r str,
    /// The request path as the handler received it (the public path in every host mode).
    pub path: &'r str,
    /// The access token from `Authorization: DPoP`.
    pub access_token: &'r str,
    /// Unix seconds.
    pub now: i64,
}

/// A proof that passed every check; the token binding and the replay record come next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedProof {
    /// RFC 7638 thumbprint of the proof key (to compare with the token's `cnf.jkt`).
    pub thumbprint: String,
    /// Replay-cache key: SHA-256 of thumbprint and `jti`.
    replay_id: [u8; 32],
    /// Unix second after which the proof is too old anyway: the replay entry's end.
    replay_until: i64,
}

impl CheckedProof {
    /// The replay key (SHA-256 of thumbprint and `jti`: the `jti` itself is never stored).
    pub fn replay_id(&self) -> &[u8; 32] {
        &self.replay_id
    }

    /// Unix second after which the proof is too old anyway.
    pub fn replay_until(&self) -> i64 {
        self.replay_until
    }
}

/// Stateless server nonces: `base64url(window || HMAC-SHA256(secret, label || window))`.
/// Every instance holding the same secret accepts every other's nonces, and nothing is
/// stored per client.
pub struct Nonces {
    key: hmac::Key,
}

impl fmt::Debug for Nonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Nonces(..)")
    }
}

/// Domain separation for the nonce HMAC: a secret reused for anything else can never make
/// a valid nonce, and changing the label invalidates every nonce issued before.
const NONCE_LABEL: &[u8] = b"azfn-auth dpop nonce v1";

impl Nonces {
    /// Nonces keyed by `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, secret) }
    }

    fn tag(&self, window: i64) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(NONCE_LABEL);
        context.update(&window.to_be_bytes());
        context.sign()
    }

    /// The nonce for the window holding `now`.
    pub fn issue(&self, now: i64) -> String {
        let window = now.div_euclid(NONCE_WINDOW_SECONDS);
        let mut bytes = window.to_be_bytes().to_vec();
        bytes.extend_from_slice(self.tag(window).as_ref());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// True when `nonce` was issued with this secret for the window holding `now` or one
    /// next to it.
    pub fn accepts(&self, nonce: &str, now: i64) -> bool {
        let mut bytes = [0u8; 48];
        let Ok(40) = URL_SAFE_NO_PAD.decode_slice(nonce, &mut bytes) else { return false };
        let mut window = [0u8; 8];
        window.copy_from_slice(&bytes[..8]);
        let window = i64::from_be_bytes(window);
        let current = now.div_euclid(NONCE_WINDOW_SECONDS);
        if window.abs_diff(current) > 1 {
            return false;
        }
        let mut message = NONCE_LABEL.to_vec();
        message.extend_from_slice(&window.to_be_bytes());
        hmac::verify(&self.key, &message, &bytes[8..40]).is_ok()
    }
}

/// Remembers proof ids until their proofs are too old to pass the `iat` check, so a proof
/// is accepted once per instance. Bounded: when full of live entries, new proofs are
/// refused ([`AuthError::Overloaded`]) rather than forgetting live ones, which would let
/// them be replayed.
#[derive(Debug)]
pub struct ReplayCache {
    capacity: usize,
    state: Mutex<ReplayState>,
}

#[derive(Debug, Default)]
struct ReplayState {
    entries: HashMap<[u8; 32], i64>,
    /// No purge before this second: a full cache is not rescanned on every request.
    next_purge: i64,
}

impl ReplayCache {
    /// A cache holding at most `capacity` ids.
    pub fn new(capacity: usize) -> Self {
        Self { capacity, state: Mutex::new(ReplayState::default()) }
    }

    /// Records `id` until `until`. `Err(Replayed)` when it is already recorded and live,
    /// `Err(Overloaded)` when the cache is full of live entries.
    pub fn remember(&self, id: [u8; 32], until: i64, now: i64) -> Result<(), AuthError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(end) = state.entries.get(&id)
            && *end > now
        {
            return Err(AuthError::InvalidDpopProof(P::Replayed));
        }
        if state.entries.len() >= self.capacity && !state.entries.contains_key(&id) {
            if now < state.next_purge {
                return Err(AuthError::Overloaded);
            }
            state.entries.retain(|_, end| *end > now);
            if state.entries.len() >= self.capacity {
                state.next_purge = now.saturating_add(1);
                return Err(AuthError::Overloaded);
            }
        }
        state.entries.insert(id, until);
        Ok(())
    }

    /// Number of ids held (live or not yet purged).
    pub fn len(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).entries.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The DPoP side of the authenticator: settings, replay cache and nonces, built once.
#[derive(Debug)]
pub struct DpopVerifier {
    settings: DpopSettings,
    skew: i64,
    replay: ReplayCache,
    nonces: Option<Nonces>,
    /// `ES256 RS256 ...`, for the `algs` challenge parameter (`EdDSA Ed25519` for EdDSA).
    algs: String,
}

impl DpopVerifier {
    /// Builds the verifier; `skew` is how far ahead of `now` an `iat` may be.
    pub fn new(settings: &DpopSettings, skew: Duration) -> Self {
        Self {
            replay: ReplayCache::new(settings.replay_entries),
            nonces: settings.nonce_secret.as_ref().map(|s| Nonces::new(&s.0)),
            algs: settings.algorithms.iter().map(|a| super::keys::alg_names(*a)).collect::<Vec<_>>().join(" "),
            skew: skew.as_secs() as i64,
            settings: settings.clone(),
        }
    }

    /// The global mode.
    pub fn mode(&self) -> DpopMode {
        self.settings.mode
    }

    /// True when the DPoP scheme can be checked at all (`AUTH_PUBLIC_URL` set).
    pub fn enabled(&self) -> bool {
        !self.settings.public_origins.is_empty()
    }

    /// The accepted algorithms, space-separated (the challenge's `algs`).
    pub fn algs(&self) -> &str {
        &self.algs
    }

    /// The replay cache (for tests and metrics).
    pub fn replay_cache(&self) -> &ReplayCache {
        &self.replay
    }

    /// A fresh `DPoP-Nonce` value, when server nonces are on.
    pub fn next_nonce(&self, now: i64) -> Option<HeaderValue> {
        self.nonces.as_ref().and_then(|n| HeaderValue::from_str(&n.issue(now)).ok())
    }

    /// Every per-request proof check of RFC 9449 §4.3 except the token binding (`cnf.jkt`,
    /// checked after the token verified) and the replay record ([`DpopVerifier::remember`],
    /// last): exactly one `DPoP` header, syntax, signature, `htm`, `htu` against the
    /// configured origins and this path, `iat` window, `ath`, then the server nonce.
    pub fn check(&self, headers: &HeaderMap, request: RequestFacts<'_>) -> Result<CheckedProof, AuthError> {
        let invalid = AuthError::InvalidDpopProof;
        let mut values = headers.get_all("dpop").iter();
        let Some(value) = values.next() else { return Err(invalid(P::Missing)) };
        if values.next().is_some() {
            return Err(invalid(P::Several));
        }
        let value = value.as_bytes().trim_ascii();
        if value.len() > MAX_PROOF_BYTES {
            return Err(invalid(P::Oversized));
        }
        // The host joins repeated headers with ", "; a proof has neither character.
        if value.contains(&b',') {
            return Err(invalid(P::Several));
        }
        let text = std::str::from_utf8(value).map_err(|_| invalid(P::Malformed))?;
        let proof = parse_proof(text, &self.settings.algorithms).map_err(invalid)?;
        if !proof.signature_valid() {
            return Err(invalid(P::BadSignature));
        }
        if proof.htm != request.method {
            return Err(invalid(P::WrongMethod));
        }
        if !self.htu_matches(&proof.htu, request.path) {
            return Err(invalid(P::WrongUrl));
        }
        if proof.iat > request.now.saturating_add(self.skew) {
            return Err(invalid(P::IssuedInFuture));
        }
        let max_age = self.settings.max_age.as_secs() as i64;
        if request.now.saturating_sub(proof.iat) > max_age {
            return Err(invalid(P::Stale));
        }
        if proof.ath.as_deref() != Some(sha256_b64(request.access_token.as_bytes()).as_str()) {
            return Err(invalid(P::WrongTokenHash));
        }
        if let Some(nonces) = &self.nonces
            && !proof.nonce.as_deref().is_some_and(|n| nonces.accepts(n, request.now))
        {
            return Err(AuthError::UseDpopNonce);
        }
        let thumbprint = proof.key.thumbprint();
        let mut replay_id = [0u8; 32];
        let mut id_input = Vec::with_capacity(thumbprint.len() + 1 + proof.jti.len());
        id_input.extend_from_slice(thumbprint.as_bytes());
        id_input.push(b'.');
        id_input.extend_from_slice(proof.jti.as_bytes());
        replay_id.copy_from_slice(digest(&SHA256, &id_input).as_ref());
        Ok(CheckedProof { thumbprint, replay_id, replay_until: proof.iat.saturating_add(max_age).saturating_add(1) })
    }

    /// Records the proof's `jti` (after every other check passed): a second use is refused.
    pub fn remember(&self, proof: &CheckedProof, now: i64) -> Result<(), AuthError> {
        self.replay.remember(proof.replay_id, proof.replay_until, now)
    }

    fn htu_matches(&self, htu: &str, path: &str) -> bool {
        let (Some(htu), Some(path)) = (normalize_url(htu), normalize_path(path)) else { return false };
        self.settings.public_origins.iter().any(|origin| {
            htu.len() == origin.len() + path.len() && htu.starts_with(origin.as_str()) && htu.ends_with(path.as_str())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::EncodingKey;
    use jsonwebtoken::jwk::Jwk;
    use serde_json::json;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    struct Signer {
        alg: Algorithm,
        key: EncodingKey,
        jwk: Value,
    }

    fn es256() -> Signer {
        let key = EncodingKey::from_ec_pem(&fixture("ec-p256.pem")).unwrap();
        let jwk = serde_json::to_value(Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap()).unwrap();
        Signer { alg: Algorithm::ES256, key, jwk }
    }

    fn rs256() -> Signer {
        let key = EncodingKey::from_rsa_pem(&fixture("rsa-a.pem")).unwrap();
        let jwk = serde_json::to_value(Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap()).unwrap();
        Signer { alg: Algorithm::RS256, key, jwk }
    }

    fn public_jwk(signer: &Signer) -> Value {
        let mut jwk = json!({});
        for member in ["kty", "crv", "x", "y", "n", "e"] {
            if let Some(v) = signer.jwk.get(member) {
                jwk[member] = v.clone();
            }
        }
        jwk
    }

    fn sign(signer: &Signer, header: &Value, claims: &Value) -> String {
        let message = format!("{}.{}", b64(header), b64(claims));
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &signer.key, signer.alg).unwrap();
        format!("{message}.{signature}")
    }

    const NOW: i64 = 1_700_000_000;
    const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";

    fn claims() -> Value {
        json!({"jti": "j1", "htm": "GET", "htu": "https://app.example/api/api-a", "iat": NOW,
               "ath": sha256_b64(TOKEN.as_bytes())})
    }

    fn proof(signer: &Signer, claims: &Value) -> String {
        let alg = format!("{:?}", signer.alg);
        sign(signer, &json!({"typ": "dpop+jwt", "alg": alg, "jwk": public_jwk(signer)}), claims)
    }

    fn verifier(nonce: bool) -> DpopVerifier {
        let settings = DpopSettings {
            public_origins: vec!["https://app.example".into()],
            nonce_secret: nonce.then(|| NonceSecret(vec![7; 32])),
            replay_entries: 4,
            ..DpopSettings::default()
        };
        DpopVerifier::new(&settings, Duration::from_secs(30))
    }

    fn check(verifier: &DpopVerifier, proof: &str) -> Result<CheckedProof, AuthError> {
        let mut headers = HeaderMap::new();
        headers.insert("dpop", HeaderValue::from_str(proof).unwrap());
        let facts = RequestFacts { method: "GET", path: "/api/api-a", access_token: TOKEN, now: NOW };
        verifier.check(&headers, facts)
    }

    fn rejected(result: Result<CheckedProof, AuthError>) -> P {
        match result {
            Err(AuthError::InvalidDpopProof(p)) => p,
            other => panic!("expected a proof rejection, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_es256_and_rs256_proof_passes_every_check() {
        for signer in [es256(), rs256()] {
            let checked = check(&verifier(false), &proof(&signer, &claims())).unwrap();
            assert_eq!(
                checked.thumbprint,
                ProofKey::from_jwk(public_jwk(&signer).as_object().unwrap()).unwrap().thumbprint()
            );
        }
    }

    #[test]
    fn rfc7638_thumbprint_of_the_rfc_example_key() {
        // RFC 7638 §3.1.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let key = ProofKey::from_jwk(jwk.as_object().unwrap()).unwrap();
        assert_eq!(key.thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn typ_must_be_dpop_jwt() {
        let signer = es256();
        for typ in [json!("JWT"), json!("at+jwt"), json!(null)] {
            let header = json!({"typ": typ, "alg": "ES256", "jwk": public_jwk(&signer)});
            assert_eq!(rejected(check(&verifier(false), &sign(&signer, &header, &claims()))), P::WrongType);
        }
    }

    #[test]
    fn alg_must_be_an_accepted_asymmetric_one() {
        let signer = es256();
        for alg in ["none", "HS256", "ES384", "RS999"] {
            let header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": public_jwk(&signer)});
            let message = format!("{}.{}.c2ln", b64(&header), b64(&claims()));
            assert_eq!(rejected(check(&verifier(false), &message)), P::AlgorithmNotAllowed, "{alg}");
        }
    }

    #[test]
    fn private_key_members_are_refused() {
        let signer = es256();
        let mut jwk = public_jwk(&signer);
        jwk["d"] = json!("AAAA");
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
        assert_eq!(rejected(check(&verifier(false), &sign(&signer, &header, &claims()))), P::PrivateKey);
    }

    #[test]
    fn a_key_of_another_type_or_none_is_refused() {
        let signer = es256();
        let rsa = public_jwk(&rs256());
        for header in [
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": rsa}),
            json!({"typ": "dpop+jwt", "alg": "ES256"}),
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}}),
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}}),
        ] {
            let found = rejected(check(&verifier(false), &sign(&signer, &header, &claims())));
            assert!(matches!(found, P::BadKey | P::PrivateKey), "{header}: {found:?}");
        }
    }

    #[test]
    fn a_signature_by_another_key_is_refused() {
        let signer = es256();
        let other = rs256();
        let header = json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": public_jwk(&other)});
        let forged = sign(
            &Signer {
                alg: Algorithm::RS256,
                key: EncodingKey::from_rsa_pem(&fixture("rsa-b.pem")).unwrap(),
                jwk: json!({}),
            },
            &header,
            &claims(),
        );
        assert_eq!(rejected(check(&verifier(false), &forged)), P::BadSignature);
        let good = proof(&signer, &claims());
        let parts: Vec<&str> = good.split('.').collect();
        let mut other_claims = claims();
        other_claims["jti"] = json!("j2");
        let tampered = format!("{}.{}.{}", parts[0], b64(&other_claims), parts[2]);
        assert_eq!(rejected(check(&verifier(false), &tampered)), P::BadSignature);
    }

    #[test]
    fn htm_htu_iat_and_ath_are_checked() {
        let signer = es256();
        let with = |name: &str, value: Value| {
            let mut c = claims();
            c[name] = value;
            rejected(check(&verifier(false), &proof(&signer, &c)))
        };
        assert_eq!(with("htm", json!("POST")), P::WrongMethod);
        assert_eq!(with("htm", json!("get")), P::WrongMethod);
        assert_eq!(with("htu", json!("https://evil.example/api/api-a")), P::WrongUrl);
        assert_eq!(with("htu", json!("https://app.example/api/api-b")), P::WrongUrl);
        assert_eq!(with("htu", json!("http://app.example/api/api-a")), P::WrongUrl);
        assert_eq!(with("iat", json!(NOW + 31)), P::IssuedInFuture);
        assert_eq!(with("iat", json!(NOW - 301)), P::Stale);
        assert_eq!(with("ath", json!(sha256_b64(b"another token"))), P::WrongTokenHash);
        let mut no_ath = claims();
        no_ath.as_object_mut().unwrap().remove("ath");
        assert_eq!(rejected(check(&verifier(false), &proof(&signer, &no_ath))), P::WrongTokenHash);
        let mut edge = claims();
        edge["iat"] = json!(NOW - 300);
        assert!(check(&verifier(false), &proof(&signer, &edge)).is_ok());
    }

    #[test]
    fn htu_is_compared_after_rfc3986_normalisation_without_query_and_fragment() {
        let signer = es256();
        for htu in [
            "HTTPS://App.Example/api/api-a",
            "https://app.example:443/api/api-a",
            "https://app.example/api/%61pi-a",
            "https://app.example/api/x/../api-a",
            "https://app.example/api/api-a?x=1#f",
        ] {
            let mut c = claims();
            c["htu"] = json!(htu);
            assert!(check(&verifier(false), &proof(&signer, &c)).is_ok(), "{htu}");
        }
        for htu in ["https://app.example/API/api-a", "https://user@app.example/api/api-a", "/api/api-a"] {
            let mut c = claims();
            c["htu"] = json!(htu);
            assert_eq!(rejected(check(&verifier(false), &proof(&signer, &c))), P::WrongUrl, "{htu}");
        }
    }

    #[test]
    fn normalisation_rules() {
        assert_eq!(normalize_url("HTTP://A.example:80/%7euser/%2f?q").as_deref(), Some("http://a.example/~user/%2F"));
        assert_eq!(normalize_url("https://a.example").as_deref(), Some("https://a.example/"));
        assert_eq!(normalize_url("ftp://a.example/"), None);
        assert_eq!(normalize_origin("https://A.example:8443/").as_deref(), Some("https://a.example:8443"));
        assert_eq!(normalize_origin("https://a.example/base"), None);
        assert_eq!(normalize_path("/api/%7e"), Some("/api/~".into()));
        assert_eq!(normalize_path("api"), None);
    }

    #[test]
    fn exactly_one_dpop_header() {
        let v = verifier(false);
        let facts = RequestFacts { method: "GET", path: "/api/api-a", access_token: TOKEN, now: NOW };
        assert_eq!(rejected(v.check(&HeaderMap::new(), facts)), P::Missing);
        let good = proof(&es256(), &claims());
        let mut two = HeaderMap::new();
        two.append("dpop", HeaderValue::from_str(&good).unwrap());
        two.append("dpop", HeaderValue::from_str(&good).unwrap());
        assert_eq!(rejected(v.check(&two, facts)), P::Several);
        let mut joined = HeaderMap::new();
        joined.insert("dpop", HeaderValue::from_str(&format!("{good}, {good}")).unwrap());
        assert_eq!(rejected(v.check(&joined, facts)), P::Several);
    }

    #[test]
    fn oversized_or_malformed_proofs_are_refused_unparsed() {
        assert_eq!(parse_proof(&"a".repeat(MAX_PROOF_BYTES + 1), &DEFAULT_ALGORITHMS).unwrap_err(), P::Oversized);
        for bad in ["", "a.b", "a.b.c.d", "!!.b.c", "e30.e30.", "e30=.e30.c2ln", "WzFd.e30.c2ln"] {
            assert!(parse_proof(bad, &DEFAULT_ALGORITHMS).is_err(), "{bad}");
        }
        let signer = es256();
        for (name, value) in [("jti", json!(1)), ("jti", json!("")), ("iat", json!("now")), ("nonce", json!(5))] {
            let mut c = claims();
            c[name] = value;
            assert_eq!(rejected(check(&verifier(false), &proof(&signer, &c))), P::Malformed, "{name}");
        }
    }

    #[test]
    fn replayed_jti_is_refused_and_the_cache_is_bounded() {
        let v = verifier(false);
        let good = proof(&es256(), &claims());
        let checked = check(&v, &good).unwrap();
        assert_eq!(v.remember(&checked, NOW), Ok(()));
        assert_eq!(v.remember(&checked, NOW), Err(AuthError::InvalidDpopProof(P::Replayed)));
        // An entry ends when its proof would be too old anyway.
        assert_eq!(v.remember(&checked, NOW + 302), Ok(()));

        let cache = ReplayCache::new(2);
        assert_eq!(cache.remember([1; 32], 100, 0), Ok(()));
        assert_eq!(cache.remember([2; 32], 100, 0), Ok(()));
        assert_eq!(cache.remember([3; 32], 100, 0), Err(AuthError::Overloaded));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.remember([3; 32], 200, 100), Ok(()), "expired entries make room");
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn nonces_round_trip_expire_and_are_bound_to_the_secret() {
        let nonces = Nonces::new(&[1; 32]);
        let nonce = nonces.issue(NOW);
        assert!(nonces.accepts(&nonce, NOW));
        assert!(nonces.accepts(&nonce, NOW + NONCE_WINDOW_SECONDS));
        assert!(!nonces.accepts(&nonce, NOW + 3 * NONCE_WINDOW_SECONDS));
        assert!(!nonces.accepts(&nonce, NOW - 3 * NONCE_WINDOW_SECONDS));
        assert!(!Nonces::new(&[2; 32]).accepts(&nonce, NOW));
        assert!(!nonces.accepts("", NOW));
        assert!(!nonces.accepts(&format!("{nonce}A"), NOW));
    }

    #[test]
    fn with_server_nonces_a_proof_needs_a_current_nonce() {
        let v = verifier(true);
        let signer = es256();
        assert_eq!(check(&v, &proof(&signer, &claims())), Err(AuthError::UseDpopNonce));
        let mut c = claims();
        c["nonce"] = json!(Nonces::new(&[7; 32]).issue(NOW - 10 * NONCE_WINDOW_SECONDS));
        assert_eq!(check(&v, &proof(&signer, &c)), Err(AuthError::UseDpopNonce));
        c["nonce"] = json!(v.next_nonce(NOW).unwrap().to_str().unwrap());
        assert!(check(&v, &proof(&signer, &c)).is_ok());
    }

    #[test]
    fn proofs_signed_by_another_implementation_verify() {
        // The fuzz seeds were signed with Python's `cryptography` (ES256, RS256, PS256): an
        // independent check of the signature and key handling above.
        for (seed, alg) in
            [("es256-signed", Algorithm::ES256), ("rs256-signed", Algorithm::RS256), ("ps256-signed", Algorithm::PS256)]
        {
            let bytes = std::fs::read(format!("{}/fuzz/corpus/dpop_proof/{seed}", env!("CARGO_MANIFEST_DIR"))).unwrap();
            let text = std::str::from_utf8(&bytes[1..]).unwrap();
            let proof = parse_proof(text, &DEFAULT_ALGORITHMS).unwrap();
            assert_eq!(proof.alg, alg);
            assert!(proof.signature_valid(), "{seed}");
            assert_eq!(proof.ath.as_deref(), Some(sha256_b64(b"token").as_str()));
        }
    }

    #[test]
    fn mode_names() {
        assert_eq!(DpopMode::parse("Required"), Some(DpopMode::Required));
        assert_eq!(DpopMode::parse("off"), Some(DpopMode::Off));
        assert_eq!(DpopMode::parse("on"), None);
        assert_eq!(format!("{:?}", NonceSecret(vec![1, 2])), "NonceSecret(..)");
    }
}
