//! The app's own storage account (`AzureWebJobsStorage`): its connection string (or
//! identity-based settings) parsed, and small Blob and Table REST clients authorized with
//! Shared Key or the managed identity's tokens (`identity`), on the one reqwest/rustls stack
//! already used for key sets. Only what scale-out state needs: read a blob with its ETag,
//! write one under an `If-Match`/`If-None-Match` condition, create its container; insert a
//! table entity that must not exist yet, create and delete tables.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub mod identity;
pub mod settings;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::{Method, StatusCode, Url};

/// The Blob service REST version sent (`x-ms-version`); Azurite and Azure both serve it.
const API_VERSION: &str = "2021-12-02";

/// Largest blob body read; a snapshot is far smaller (the key set itself is capped).
const MAX_BLOB_BYTES: usize = 1024 * 1024;

/// Azurite's (and the old storage emulator's) well-known development account. Public
/// constants from Microsoft's documentation, never a secret.
const DEV_ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const DEV_BLOB_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";
const DEV_TABLE_ENDPOINT: &str = "http://127.0.0.1:10002/devstoreaccount1";

/// The Table service REST version sent.
const TABLE_API_VERSION: &str = "2019-02-02";

/// An account key, decoded; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountKey(Vec<u8>);

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountKey(redacted)")
    }
}

/// How requests to the account are authorized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// Shared Key: every request signed with the account key (connection strings).
    SharedKey(AccountKey),
    /// OAuth tokens of the app's managed identity (identity-based connections).
    ManagedIdentity(identity::Identity),
}

/// A storage account: name, credential, Blob and Table endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageAccount {
    /// Account name (signs every Shared Key request).
    pub name: String,
    /// How requests are authorized.
    pub credential: Credential,
    /// Blob service endpoint, without a trailing slash (`https://acct.blob.core.windows.net`,
    /// or path-style `http://127.0.0.1:10000/devstoreaccount1` for Azurite). `None` only for
    /// an identity-based connection that names a table service URI and no account.
    pub blob_endpoint: Option<Url>,
    /// Table service endpoint, likewise (`https://acct.table.core.windows.net`); `None` only
    /// for an identity-based connection that names a blob service URI and no account.
    pub table_endpoint: Option<Url>,
}

/// Why a connection string cannot be used (never echoes its value: it holds the key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// `AccountName` is missing.
    #[error("no AccountName")]
    NoAccountName,
    /// `AccountKey` is missing (SAS-only strings are not supported).
    #[error("no AccountKey (only Shared Key connection strings are supported)")]
    NoAccountKey,
    /// `AccountKey` is not base64.
    #[error("AccountKey is not base64")]
    BadAccountKey,
    /// `BlobEndpoint` is not an http(s) URL, or no endpoint can be built.
    #[error("BlobEndpoint or TableEndpoint is not an http(s) URL")]
    BadEndpoint,
    /// An identity-based connection to an endpoint that is not https: the managed
    /// identity's bearer token would cross the wire in clear.
    #[error("a storage endpoint reached with a managed identity token must be https")]
    InsecureEndpoint,
}

impl StorageAccount {
    /// Parses a storage connection string: `UseDevelopmentStorage=true` (Azurite on its
    /// default port), or `AccountName`/`AccountKey` with `BlobEndpoint` or
    /// `DefaultEndpointsProtocol` and `EndpointSuffix` (default `core.windows.net`).
    pub fn from_connection_string(text: &str) -> Result<Self, ConnectionError> {
        let mut fields = std::collections::HashMap::new();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            if let Some((name, value)) = part.split_once('=') {
                fields.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let field = |name: &str| fields.get(name).map(String::as_str);
        if field("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            let proxy = field("developmentstorageproxyuri");
            let (blob, table) = match proxy {
                Some(proxy) => {
                    let proxy = proxy.trim_end_matches('/');
                    (format!("{proxy}:10000/{DEV_ACCOUNT}"), format!("{proxy}:10002/{DEV_ACCOUNT}"))
                }
                None => (DEV_BLOB_ENDPOINT.to_owned(), DEV_TABLE_ENDPOINT.to_owned()),
            };
            return Ok(Self {
                name: DEV_ACCOUNT.to_owned(),
                credential: Credential::SharedKey(AccountKey(
                    BASE64.decode(DEV_KEY).map_err(|_| ConnectionError::BadAccountKey)?,
                )),
                blob_endpoint: Some(endpoint_url(&blob)?),
                table_endpoint: Some(endpoint_url(&table)?),
            });
        }
        let name = field("accountname").ok_or(ConnectionError::NoAccountName)?.to_owned();
        let key = field("accountkey").ok_or(ConnectionError::NoAccountKey)?;
        let key = AccountKey(BASE64.decode(key).map_err(|_| ConnectionError::BadAccountKey)?);
        let endpoint = |explicit: &str, service: &str| match field(explicit) {
            Some(endpoint) => endpoint_url(endpoint),
            None => {
                let scheme = field("defaultendpointsprotocol").unwrap_or("https");
                let suffix = field("endpointsuffix").unwrap_or("core.windows.net");
                endpoint_url(&format!("{scheme}://{name}.{service}.{suffix}"))
            }
        };
        Ok(Self {
            blob_endpoint: Some(endpoint("blobendpoint", "blob")?),
            table_endpoint: Some(endpoint("tableendpoint", "table")?),
            name,
            credential: Credential::SharedKey(key),
        })
    }
}

impl StorageAccount {
    /// An identity-based connection (`AzureWebJobsStorage__accountName`, or
    /// `__blobServiceUri`/`__tableServiceUri`, which win, as in the host's
    /// `StorageServiceUriOptions`): the public endpoints of `account_name`
    /// (`https://{name}.blob.core.windows.net`, `.table.`), or the given URIs, reached with
    /// `identity`'s tokens. Every endpoint must be https (bearer tokens never go in clear;
    /// Azure Storage and Azurite refuse them over http anyway); at least one must exist.
    pub fn with_identity(
        account_name: Option<&str>,
        blob_uri: Option<&str>,
        table_uri: Option<&str>,
        identity: identity::Identity,
    ) -> Result<Self, ConnectionError> {
        let endpoint = |explicit: Option<&str>, service: &str| -> Result<Option<Url>, ConnectionError> {
            let text = match (explicit, account_name) {
                (Some(uri), _) => uri.to_owned(),
                (None, Some(name)) => format!("https://{name}.{service}.core.windows.net"),
                (None, None) => return Ok(None),
            };
            let url = endpoint_url(&text)?;
            if url.scheme() != "https" {
                return Err(ConnectionError::InsecureEndpoint);
            }
            Ok(Some(url))
        };
        let blob_endpoint = endpoint(blob_uri, "blob")?;
        let table_endpoint = endpoint(table_uri, "table")?;
        let name = match (account_name, blob_endpoint.as_ref().or(table_endpoint.as_ref())) {
            (Some(name), _) => name.to_owned(),
            (None, Some(url)) => account_of(url),
            (None, None) => return Err(ConnectionError::NoAccountName),
        };
        Ok(Self { name, credential: Credential::ManagedIdentity(identity), blob_endpoint, table_endpoint })
    }

    /// The token source this account's requests need, if any (managed identity).
    fn tokens(&self, http: &reqwest::Client) -> Option<Arc<identity::IdentityTokens>> {
        match &self.credential {
            Credential::SharedKey(_) => None,
            Credential::ManagedIdentity(id) => Some(Arc::new(identity::IdentityTokens::new(id.clone(), http.clone()))),
        }
    }

    /// The `Authorization` value for a request to `url`: Shared Key by `sign`, else a cached
    /// identity token, and that only over https (checked here too, not only when the account
    /// is built, since its fields are public): fail closed rather than send a token in clear.
    async fn authorization(
        &self,
        tokens: Option<&identity::IdentityTokens>,
        url: &Url,
        sign: impl FnOnce(&AccountKey) -> String,
    ) -> Result<String, StorageError> {
        match (&self.credential, tokens) {
            (Credential::SharedKey(key), _) => Ok(sign(key)),
            (Credential::ManagedIdentity(_), _) if url.scheme() != "https" => Err(StorageError::InsecureEndpoint),
            (Credential::ManagedIdentity(_), Some(tokens)) => Ok(format!("Bearer {}", tokens.token().await?)),
            (Credential::ManagedIdentity(_), None) => Err(StorageError::Identity("no token source".into())),
        }
    }
}

/// The account name in `url`: the first label of `acct.blob.core.windows.net`, or the first
/// path segment of a path-style endpoint on an IP address (`https://127.0.0.1:10000/acct`).
fn account_of(url: &Url) -> String {
    match url.host() {
        Some(url::Host::Domain(host)) => host.split('.').next().unwrap_or_default().to_owned(),
        _ => url.path_segments().and_then(|mut s| s.next()).unwrap_or_default().to_owned(),
    }
}

fn endpoint_url(text: &str) -> Result<Url, ConnectionError> {
    let url = Url::parse(text.trim_end_matches('/')).map_err(|_| ConnectionError::BadEndpoint)?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || url.query().is_some() {
        return Err(ConnectionError::BadEndpoint);
    }
    Ok(url)
}

/// A failed storage call (the message never holds a key or a signature).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// No answer: connection refused, timeout, TLS.
    #[error("storage unreachable: {0}")]
    Transport(String),
    /// An answer other than the ones the caller handles.
    #[error("storage answered {0}")]
    Status(u16),
    /// A blob larger than `MAX_BLOB_BYTES`.
    #[error("blob larger than {MAX_BLOB_BYTES} bytes")]
    TooLarge,
    /// No token from the managed identity endpoint.
    #[error("no managed identity token: {0}")]
    Identity(String),
    /// A managed identity token would have gone to an endpoint that is not https.
    #[error("refused to send a managed identity token to a storage endpoint that is not https")]
    InsecureEndpoint,
    /// The account has no endpoint for this service (an identity-based connection naming
    /// only the other service's URI).
    #[error("no {0} service endpoint configured")]
    NoEndpoint(&'static str),
}

/// A blob as read: its body and ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// The body.
    pub body: Vec<u8>,
    /// The ETag, for a conditional write over exactly this version.
    pub etag: String,
}

/// The condition a write is made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition<'a> {
    /// Only when the blob does not exist yet (`If-None-Match: *`).
    Absent,
    /// Only over this version (`If-Match: <etag>`).
    Matches(&'a str),
}

/// What a conditional write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Written; the new ETag.
    Done(String),
    /// The condition failed: another writer got there first.
    Lost,
}

/// Blob REST calls on one account, through one HTTP client.
#[derive(Debug, Clone)]
pub struct BlobClient {
    account: StorageAccount,
    http: reqwest::Client,
    tokens: Option<Arc<identity::IdentityTokens>>,
}

impl BlobClient {
    /// A client for `account` over `http` (bounded timeouts, no redirects: see
    /// [`crate::auth::keystore::http_client`]).
    pub fn new(account: StorageAccount, http: reqwest::Client) -> Self {
        Self { tokens: account.tokens(&http), account, http }
    }

    /// The account reached.
    pub fn account(&self) -> &StorageAccount {
        &self.account
    }

    fn url(&self, container: &str, blob: Option<&str>) -> Result<Url, StorageError> {
        let mut url = self.account.blob_endpoint.clone().ok_or(StorageError::NoEndpoint("blob"))?;
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push(container);
            if let Some(blob) = blob {
                segments.push(blob);
            }
        }
        Ok(url)
    }

    /// Reads `container/blob`; `None` when it (or its container) does not exist.
    pub async fn get(&self, container: &str, blob: &str) -> Result<Option<Blob>, StorageError> {
        let url = self.url(container, Some(blob))?;
        let mut response = self.send(Method::GET, url, &[], None).await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            other => return Err(StorageError::Status(other.as_u16())),
        }
        let etag = header(&response, "etag").unwrap_or_default();
        if response.content_length().is_some_and(|len| len > MAX_BLOB_BYTES as u64) {
            return Err(StorageError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_BLOB_BYTES {
                return Err(StorageError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(Blob { body, etag }))
    }

    /// Writes `body` as block blob `container/blob` under `condition`, creating the
    /// container when it is missing.
    pub async fn put(
        &self,
        container: &str,
        blob: &str,
        body: Vec<u8>,
        condition: Condition<'_>,
    ) -> Result<Written, StorageError> {
        for attempt in 0..2 {
            let (name, value) = match condition {
                Condition::Absent => ("if-none-match", "*"),
                Condition::Matches(etag) => ("if-match", etag),
            };
            let headers = [("content-type", "application/json"), (name, value), ("x-ms-blob-type", "BlockBlob")];
            let url = self.url(container, Some(blob))?;
            let response = self.send(Method::PUT, url, &headers, Some(body.clone())).await?;
            match response.status() {
                StatusCode::CREATED => return Ok(Written::Done(header(&response, "etag").unwrap_or_default())),
                // 412: If-Match failed; 409 BlobAlreadyExists: If-None-Match * failed.
                StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT => return Ok(Written::Lost),
                StatusCode::NOT_FOUND if attempt == 0 && condition == Condition::Absent => {
                    self.create_container(container).await?;
                }
                other => return Err(StorageError::Status(other.as_u16())),
            }
        }
        Err(StorageError::Status(404))
    }

    /// Creates `container` (private); an existing one is fine.
    pub async fn create_container(&self, container: &str) -> Result<(), StorageError> {
        let mut url = self.url(container, None)?;
        url.set_query(Some("restype=container"));
        let response = self.send(Method::PUT, url, &[], Some(Vec::new())).await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::CONFLICT => Ok(()),
            other => Err(StorageError::Status(other.as_u16())),
        }
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<reqwest::Response, StorageError> {
        let date = http_date(SystemTime::now());
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        all.push(("x-ms-date", &date));
        all.push(("x-ms-version", API_VERSION));
        let length = body.as_ref().map_or(0, Vec::len);
        let authorization = self
            .account
            .authorization(self.tokens.as_deref(), &url, |key| {
                shared_key(&self.account.name, key, method.as_str(), &url, &all, length)
            })
            .await?;
        let mut request = self.http.request(method, url);
        for (name, value) in &all {
            request = request.header(*name, *value);
        }
        request = request.header("authorization", authorization);
        if let Some(body) = body {
            request = request.header("content-length", body.len().to_string()).body(body);
        }
        request.send().await.map_err(transport)
    }
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The entity is new.
    Created,
    /// An entity with this key exists already.
    Exists,
    /// The table does not exist (create it, then insert again).
    NoTable,
}

/// Table REST calls on one account, through one HTTP client.
#[derive(Debug, Clone)]
pub struct TableClient {
    account: StorageAccount,
    http: reqwest::Client,
    tokens: Option<Arc<identity::IdentityTokens>>,
}

impl TableClient {
    /// A client for `account` over `http`.
    pub fn new(account: StorageAccount, http: reqwest::Client) -> Self {
        Self { tokens: account.tokens(&http), account, http }
    }

    /// The account reached.
    pub fn account(&self) -> &StorageAccount {
        &self.account
    }

    fn url(&self, last: &str) -> Result<Url, StorageError> {
        let mut url = self.account.table_endpoint.clone().ok_or(StorageError::NoEndpoint("table"))?;
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push(last);
        }
        Ok(url)
    }

    /// Inserts the entity `(partition, row)` with the JSON `properties` merged in; the
    /// service refuses a second insert of the same key (409), which is the whole point.
    pub async fn insert(
        &self,
        table: &str,
        partition: &str,
        row: &str,
        mut properties: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Inserted, StorageError> {
        properties.insert("PartitionKey".into(), partition.into());
        properties.insert("RowKey".into(), row.into());
        let body = serde_json::to_vec(&properties).unwrap_or_default();
        let response =
            self.send(Method::POST, self.url(table)?, Some(body), &[("prefer", "return-no-content")]).await?;
        match response.status() {
            StatusCode::NO_CONTENT | StatusCode::CREATED => Ok(Inserted::Created),
            StatusCode::CONFLICT => Ok(Inserted::Exists),
            StatusCode::NOT_FOUND => Ok(Inserted::NoTable),
            other => Err(StorageError::Status(other.as_u16())),
        }
    }

    /// Creates `table`; an existing one is fine.
    pub async fn create_table(&self, table: &str) -> Result<(), StorageError> {
        let body = serde_json::to_vec(&serde_json::json!({ "TableName": table })).unwrap_or_default();
        let response =
            self.send(Method::POST, self.url("Tables")?, Some(body), &[("prefer", "return-no-content")]).await?;
        match response.status() {
            StatusCode::NO_CONTENT | StatusCode::CREATED | StatusCode::CONFLICT => Ok(()),
            other => Err(StorageError::Status(other.as_u16())),
        }
    }

    /// Deletes `table` with everything in it; a missing one is fine.
    pub async fn delete_table(&self, table: &str) -> Result<(), StorageError> {
        let response = self.send(Method::DELETE, self.url(&format!("Tables('{table}')"))?, None, &[]).await?;
        match response.status() {
            StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => Ok(()),
            other => Err(StorageError::Status(other.as_u16())),
        }
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        extra: &[(&str, &str)],
    ) -> Result<reqwest::Response, StorageError> {
        let date = http_date(SystemTime::now());
        let content_type = if body.is_some() { "application/json" } else { "" };
        let authorization = self
            .account
            .authorization(self.tokens.as_deref(), &url, |key| {
                table_shared_key(&self.account.name, key, method.as_str(), &url, content_type, &date)
            })
            .await?;
        let mut request = self
            .http
            .request(method, url)
            .header("x-ms-date", &date)
            .header("x-ms-version", TABLE_API_VERSION)
            .header("accept", "application/json;odata=nometadata")
            .header("dataserviceversion", "3.0;NetFx")
            .header("authorization", authorization);
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.header("content-type", content_type).body(body);
        }
        request.send().await.map_err(transport)
    }
}

/// The `Authorization: SharedKey account:signature` value for a Table request: the Table
/// string-to-sign (verb, Content-MD5, Content-Type, the `x-ms-date` value, the resource with
/// only `comp` from the query).
pub fn table_shared_key(
    account: &str,
    key: &AccountKey,
    method: &str,
    url: &Url,
    content_type: &str,
    date: &str,
) -> String {
    let mut text = format!("{method}\n\n{content_type}\n{date}\n/{account}{}", url.path());
    if let Some((_, comp)) = url.query_pairs().find(|(k, _)| k.eq_ignore_ascii_case("comp")) {
        text.push_str("?comp=");
        text.push_str(&comp);
    }
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key.0);
    let signature = BASE64.encode(aws_lc_rs::hmac::sign(&key, text.as_bytes()).as_ref());
    format!("SharedKey {account}:{signature}")
}

fn transport(error: reqwest::Error) -> StorageError {
    StorageError::Transport(error.without_url().to_string())
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// The `Authorization: SharedKey account:signature` value for a Blob request (the Blob,
/// Queue and File string-to-sign; `headers` holds every header sent but `Content-Length`,
/// names in lower case). Only the headers this client sends take part.
pub fn shared_key(
    account: &str,
    key: &AccountKey,
    method: &str,
    url: &Url,
    headers: &[(&str, &str)],
    length: usize,
) -> String {
    let get = |name: &str| headers.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| *v);
    let mut ms: Vec<(&str, &str)> = headers.iter().copied().filter(|(n, _)| n.starts_with("x-ms-")).collect();
    ms.sort_unstable();
    let mut text = String::with_capacity(256);
    text.push_str(method);
    text.push('\n');
    for name in ["content-encoding", "content-language"] {
        text.push_str(get(name));
        text.push('\n');
    }
    // Since version 2015-02-21 an empty body signs as an empty Content-Length.
    if length > 0 {
        text.push_str(&length.to_string());
    }
    text.push('\n');
    for name in [
        "content-md5",
        "content-type",
        "date",
        "if-modified-since",
        "if-match",
        "if-none-match",
        "if-unmodified-since",
        "range",
    ] {
        text.push_str(get(name));
        text.push('\n');
    }
    for (name, value) in ms {
        text.push_str(name);
        text.push(':');
        text.push_str(value.trim());
        text.push('\n');
    }
    // The canonical resource: `/account` then the URL's path (for a path-style endpoint such
    // as Azurite's, the account name therefore appears twice), then each query parameter.
    text.push('/');
    text.push_str(account);
    text.push_str(url.path());
    let mut query: Vec<(String, String)> =
        url.query_pairs().map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned())).collect();
    query.sort();
    for (name, value) in query {
        text.push('\n');
        text.push_str(&name);
        text.push(':');
        text.push_str(&value);
    }
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key.0);
    let signature = BASE64.encode(aws_lc_rs::hmac::sign(&key, text.as_bytes()).as_ref());
    format!("SharedKey {account}:{signature}")
}

/// `time` as an RFC 1123 date in GMT (`Sun, 06 Nov 1994 08:49:37 GMT`), as `x-ms-date` wants.
pub fn http_date(time: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let secs = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = crate::telemetry::civil_date(days);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_date_is_rfc_1123_gmt() {
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(UNIX_EPOCH + Duration::from_secs(784_111_777)), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(UNIX_EPOCH + Duration::from_secs(951_782_400)), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn development_storage_is_azurite_on_its_default_port() {
        let account = StorageAccount::from_connection_string("UseDevelopmentStorage=true").unwrap();
        assert_eq!(account.name, "devstoreaccount1");
        assert_eq!(account.blob_endpoint.unwrap().as_str(), "http://127.0.0.1:10000/devstoreaccount1");
    }

    #[test]
    fn account_strings_build_the_public_endpoint_or_use_the_explicit_one() {
        let key = BASE64.encode([7u8; 64]);
        let public = StorageAccount::from_connection_string(&format!(
            "DefaultEndpointsProtocol=https;AccountName=myapp;AccountKey={key};EndpointSuffix=core.windows.net"
        ))
        .unwrap();
        assert_eq!(public.blob_endpoint.as_ref().unwrap().as_str(), "https://myapp.blob.core.windows.net/");
        let explicit = StorageAccount::from_connection_string(&format!(
            "AccountName=devstoreaccount1;AccountKey={key};BlobEndpoint=http://127.0.0.1:4000/devstoreaccount1/"
        ))
        .unwrap();
        assert_eq!(explicit.blob_endpoint.unwrap().as_str(), "http://127.0.0.1:4000/devstoreaccount1");
        assert_eq!(public.table_endpoint.unwrap().as_str(), "https://myapp.table.core.windows.net/");
        let dev = StorageAccount::from_connection_string("UseDevelopmentStorage=true").unwrap();
        assert_eq!(dev.table_endpoint.unwrap().as_str(), "http://127.0.0.1:10002/devstoreaccount1");
    }

    #[test]
    fn unusable_strings_say_why_without_echoing_the_key() {
        let parse = StorageAccount::from_connection_string;
        assert_eq!(parse("AccountKey=abc").unwrap_err(), ConnectionError::NoAccountName);
        assert_eq!(parse("AccountName=a;SharedAccessSignature=sv=x").unwrap_err(), ConnectionError::NoAccountKey);
        assert_eq!(parse("AccountName=a;AccountKey=not base64!").unwrap_err(), ConnectionError::BadAccountKey);
        let error = parse("AccountName=a;AccountKey=c2VjcmV0;BlobEndpoint=ftp://x").unwrap_err();
        assert_eq!(error, ConnectionError::BadEndpoint);
        assert!(!format!("{:?}", parse("UseDevelopmentStorage=true").unwrap()).contains(DEV_KEY));
    }

    fn identity() -> identity::Identity {
        identity::Identity {
            // A closed port: nothing in these tests may get as far as asking it.
            endpoint: Url::parse("http://127.0.0.1:9/msi/token").unwrap(),
            header: identity::IdentityHeader("secret".into()),
            client_id: None,
        }
    }

    #[test]
    fn identity_based_accounts_are_https_only() {
        let refused = StorageAccount::with_identity(None, Some("http://127.0.0.1:10000/acct"), None, identity());
        assert_eq!(refused.unwrap_err(), ConnectionError::InsecureEndpoint);
        let refused = StorageAccount::with_identity(Some("a1"), None, Some("http://localhost/acct"), identity());
        assert_eq!(refused.unwrap_err(), ConnectionError::InsecureEndpoint);
        assert_eq!(
            StorageAccount::with_identity(None, None, None, identity()).unwrap_err(),
            ConnectionError::NoAccountName
        );
        let path_style = StorageAccount::with_identity(None, Some("https://127.0.0.1:10000/acct"), None, identity());
        let path_style = path_style.unwrap();
        assert_eq!(path_style.name, "acct");
        assert_eq!(path_style.table_endpoint, None);
    }

    #[tokio::test]
    async fn a_token_is_never_sent_to_an_http_endpoint_even_on_a_hand_built_account() {
        let account = StorageAccount {
            name: "acct".into(),
            credential: Credential::ManagedIdentity(identity()),
            blob_endpoint: Some(Url::parse("http://127.0.0.1:9/acct").unwrap()),
            table_endpoint: Some(Url::parse("http://127.0.0.1:9/acct").unwrap()),
        };
        let http = crate::auth::keystore::http_client(&crate::config::JwksSettings::default());
        let blobs = BlobClient::new(account.clone(), http.clone());
        assert_eq!(blobs.get("c", "b").await, Err(StorageError::InsecureEndpoint));
        let tables = TableClient::new(account, http);
        assert_eq!(tables.create_table("t").await, Err(StorageError::InsecureEndpoint));
    }

    #[tokio::test]
    async fn a_missing_service_endpoint_is_an_error_not_a_request() {
        let account = StorageAccount::with_identity(None, None, Some("https://127.0.0.1:9/acct"), identity()).unwrap();
        let blobs =
            BlobClient::new(account, crate::auth::keystore::http_client(&crate::config::JwksSettings::default()));
        assert_eq!(blobs.create_container("c").await, Err(StorageError::NoEndpoint("blob")));
    }

    #[test]
    fn shared_key_signs_the_canonical_resource_with_the_account_twice_on_a_path_style_endpoint() {
        // The same request signed twice gives the same value, and the query parameter and
        // each signed header change it: a mistake in any of them would fail at Azurite.
        let account = StorageAccount::from_connection_string("UseDevelopmentStorage=true").unwrap();
        let Credential::SharedKey(key) = &account.credential else { panic!("a Shared Key account") };
        let sign =
            |url: &Url, headers: &[(&str, &str)], length| shared_key(&account.name, key, "PUT", url, headers, length);
        let url = Url::parse("http://127.0.0.1:10000/devstoreaccount1/c?restype=container").unwrap();
        let headers = [("x-ms-date", "Sun, 06 Nov 1994 08:49:37 GMT"), ("x-ms-version", API_VERSION)];
        let a = sign(&url, &headers, 0);
        assert!(a.starts_with("SharedKey devstoreaccount1:"), "{a}");
        assert_eq!(a, sign(&url, &headers, 0));
        let other = Url::parse("http://127.0.0.1:10000/devstoreaccount1/c").unwrap();
        assert_ne!(a, sign(&other, &headers, 0));
        assert_ne!(a, sign(&url, &[headers[0]], 0));
        assert_ne!(a, sign(&url, &headers, 1));
    }
}
