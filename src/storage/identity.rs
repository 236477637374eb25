//! Tokens for the storage account from the app's managed identity, by the App Service
//! identity endpoint protocol (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`, API version
//! 2019-08-01): `GET {endpoint}?resource=https://storage.azure.com/&api-version=2019-08-01`
//! (`&client_id=` for a user-assigned identity) with the `X-IDENTITY-HEADER` secret. Tokens
//! are cached until shortly before they expire; they never reach a log.

use std::fmt;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::{StatusCode, Url};
use serde::Deserialize;

use super::StorageError;

/// The audience of storage tokens.
pub const STORAGE_RESOURCE: &str = "https://storage.azure.com/";

/// The identity endpoint protocol version spoken.
const API_VERSION: &str = "2019-08-01";

/// A token is fetched again this long before it expires, so no request carries one that
/// expires in flight (and clock skew between this host and storage cannot reject it).
pub const REFRESH_MARGIN_SECS: u64 = 300;

/// Largest identity endpoint answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// `IDENTITY_HEADER`: the per-app secret the identity endpoint requires; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityHeader(pub String);

impl fmt::Debug for IdentityHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentityHeader(redacted)")
    }
}

/// How to reach the managed identity endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `IDENTITY_ENDPOINT` (loopback on App Service and Functions).
    pub endpoint: Url,
    /// `IDENTITY_HEADER`.
    pub header: IdentityHeader,
    /// `AzureWebJobsStorage__clientId`: a user-assigned identity; `None`: the system-assigned one.
    pub client_id: Option<String>,
}

/// True when a token expiring at `expires_on` must be fetched again at `now` (Unix seconds).
pub fn needs_refresh(expires_on: u64, now: u64) -> bool {
    now.saturating_add(REFRESH_MARGIN_SECS) >= expires_on
}

/// The endpoint's answer: `expires_on` is Unix seconds, a string in this protocol version
/// (a number is accepted too).
#[derive(Deserialize)]
struct Answer {
    access_token: String,
    expires_on: serde_json::Value,
}

/// Storage tokens of one identity, cached; one fetch at a time.
pub struct IdentityTokens {
    identity: Identity,
    http: reqwest::Client,
    /// The current token and when it expires (Unix seconds), and the last fetch's outcome.
    state: Mutex<State>,
    /// Held while fetching: callers that find no usable token wait for the fetch in flight
    /// instead of each starting their own.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    cached: Option<(String, u64)>,
    /// Fetches finished so far, and the error of the last one when it failed.
    fetches: u64,
    failure: Option<StorageError>,
}

impl fmt::Debug for IdentityTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityTokens").field("identity", &self.identity).finish_non_exhaustive()
    }
}

impl IdentityTokens {
    /// Tokens for `identity`, fetched through `http` when needed.
    pub fn new(identity: Identity, http: reqwest::Client) -> Self {
        Self { identity, http, state: Mutex::default(), fetching: tokio::sync::Mutex::new(()) }
    }

    /// A storage token valid for at least [`REFRESH_MARGIN_SECS`]; fetched only when the
    /// cached one is missing or about to expire. Concurrent callers share one fetch: those
    /// that waited for it get its token, or its error (so an identity endpoint that is down
    /// costs one timeout for all of them, not one after another).
    pub async fn token(&self) -> Result<String, StorageError> {
        let usable = |state: &State| {
            state
                .cached
                .as_ref()
                .filter(|(_, expires_on)| !needs_refresh(*expires_on, unix_now()))
                .map(|(t, _)| t.clone())
        };
        let seen = {
            let state = self.state();
            if let Some(token) = usable(&state) {
                return Ok(token);
            }
            state.fetches
        };
        let _fetching = self.fetching.lock().await;
        {
            let state = self.state();
            if let Some(token) = usable(&state) {
                return Ok(token);
            }
            if state.fetches != seen
                && let Some(failure) = &state.failure
            {
                return Err(failure.clone());
            }
        }
        let fetched = self.fetch().await;
        let mut state = self.state();
        state.fetches += 1;
        match fetched {
            Ok((token, expires_on)) => {
                state.cached = Some((token.clone(), expires_on));
                state.failure = None;
                Ok(token)
            }
            Err(failure) => {
                state.failure = Some(failure.clone());
                Err(failure)
            }
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn fetch(&self) -> Result<(String, u64), StorageError> {
        let mut url = self.identity.endpoint.clone();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("resource", STORAGE_RESOURCE).append_pair("api-version", API_VERSION);
            if let Some(client_id) = &self.identity.client_id {
                query.append_pair("client_id", client_id);
            }
        }
        let mut response = self
            .http
            .get(url)
            .header("x-identity-header", &self.identity.header.0)
            .send()
            .await
            .map_err(|e| StorageError::Identity(e.without_url().to_string()))?;
        if response.status() != StatusCode::OK {
            return Err(StorageError::Identity(format!("identity endpoint answered {}", response.status().as_u16())));
        }
        let mut body = Vec::new();
        while let Some(chunk) =
            response.chunk().await.map_err(|e| StorageError::Identity(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(StorageError::Identity("identity endpoint answer too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|_| StorageError::Identity("identity endpoint answer is not a token".into()))?;
        let expires_on = match &answer.expires_on {
            serde_json::Value::String(text) => text.trim().parse().ok(),
            serde_json::Value::Number(n) => n.as_u64(),
            _ => None,
        };
        match expires_on {
            Some(expires_on) if !answer.access_token.is_empty() => Ok((answer.access_token, expires_on)),
            _ => Err(StorageError::Identity("identity endpoint answer is not a token".into())),
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_fetched_again_five_minutes_before_it_expires() {
        assert!(!needs_refresh(10_000, 10_000 - REFRESH_MARGIN_SECS - 1));
        assert!(needs_refresh(10_000, 10_000 - REFRESH_MARGIN_SECS));
        assert!(needs_refresh(10_000, 20_000));
    }

    #[test]
    fn the_identity_header_never_prints() {
        assert_eq!(format!("{:?}", IdentityHeader("s3cret".into())), "IdentityHeader(redacted)");
    }
}
