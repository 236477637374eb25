//! `AzureWebJobsStorage` read as the Functions host reads it: a connection string in the
//! setting itself, or an identity-based connection in settings under its prefix
//! (`AzureWebJobsStorage__accountName`, `__blobServiceUri`, `__tableServiceUri`,
//! `__clientId`, `__credential`) with the token endpoint the platform sets
//! (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`). Errors name the setting, never its value.
//!
//! The host's rules, from its source (azure-functions-host `StorageClientProvider`,
//! `BlobServiceClientProvider`, `StorageServiceUriOptions`; Microsoft.Extensions.Azure's
//! credential settings):
//! - a connection string wins: when `AzureWebJobsStorage` has a value, the settings under
//!   the prefix are not read (`IsConnectionStringPresent`);
//! - a service URI wins over the account name, which otherwise gives
//!   `https://{accountName}.blob.core.windows.net` (and `.table.`);
//! - .NET configuration maps `__` in an environment variable's name to its `:` separator,
//!   so `AzureWebJobsStorage:accountName` (possible on Windows) is the same setting; set
//!   both ways with different values is refused rather than guessed;
//! - `credential=managedidentity` (or no `credential` at all, which the host resolves to
//!   the managed identity on App Service and Functions) uses the app's managed identity,
//!   user-assigned when `clientId` is set. The handler speaks only that protocol, so a
//!   client secret, certificate or any other `credential` is refused at start-up.

use super::StorageAccount;
use super::identity::{Identity, IdentityHeader};

/// The setting: a connection string, or the prefix of an identity-based connection.
pub const CONNECTION: &str = "AzureWebJobsStorage";

/// The service a feature needs from the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Blob storage (key set snapshots).
    Blob,
    /// Table storage (strict DPoP replay).
    Table,
}

/// Unusable storage settings; names the variable, never echoes its value (connection
/// strings hold keys, `IDENTITY_HEADER` is a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct SettingsError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// What is wrong.
    pub problem: String,
}

fn bad(variable: &'static str, problem: impl Into<String>) -> SettingsError {
    SettingsError { variable, problem: problem.into() }
}

/// One setting under the prefix, by both separators.
#[derive(Clone, Copy)]
struct Name {
    /// `AzureWebJobsStorage__x`: the only form Linux environment variables can carry.
    double: &'static str,
    /// `AzureWebJobsStorage:x`: the same .NET configuration key.
    colon: &'static str,
}

macro_rules! name {
    ($key:literal) => {
        Name { double: concat!("AzureWebJobsStorage__", $key), colon: concat!("AzureWebJobsStorage:", $key) }
    };
}

const ACCOUNT_NAME: Name = name!("accountName");
const BLOB_SERVICE_URI: Name = name!("blobServiceUri");
const TABLE_SERVICE_URI: Name = name!("tableServiceUri");
const CLIENT_ID: Name = name!("clientId");
const CREDENTIAL: Name = name!("credential");
/// Settings that make the host use a service principal rather than the managed identity.
const SECRET_CREDENTIALS: [Name; 2] = [name!("clientSecret"), name!("clientCertificate")];

/// The identity endpoint's URL and secret, set by App Service and Functions for apps with
/// a managed identity.
const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
const IDENTITY_HEADER: &str = "IDENTITY_HEADER";

fn setting(get: &impl Fn(&str) -> Option<String>, name: Name) -> Result<Option<String>, SettingsError> {
    match (get(name.double), get(name.colon)) {
        (Some(a), Some(b)) if a != b => Err(bad(name.double, format!("also set as {} with another value", name.colon))),
        (a, b) => Ok(a.or(b)),
    }
}

/// True when the app has a storage account configured either way: a connection string, or
/// an account name or service URI under the prefix. (`AUTH_JWKS_SNAPSHOT_DIR=auto` picks
/// blob snapshots on this, then [`account`] says what, if anything, is missing.)
pub fn configured(get: &impl Fn(&str) -> Option<String>) -> bool {
    get(CONNECTION).is_some()
        || [ACCOUNT_NAME, BLOB_SERVICE_URI, TABLE_SERVICE_URI]
            .iter()
            .any(|n| get(n.double).is_some() || get(n.colon).is_some())
}

/// The account for `service`, needed by `feature` (named in errors, e.g. "blob snapshots").
pub fn account(
    get: &impl Fn(&str) -> Option<String>,
    service: Service,
    feature: &str,
) -> Result<StorageAccount, SettingsError> {
    if let Some(connection) = get(CONNECTION) {
        return StorageAccount::from_connection_string(&connection)
            .map_err(|e| bad(CONNECTION, format!("unusable for {feature}: {e}")));
    }
    let account_name = setting(get, ACCOUNT_NAME)?;
    let blob_uri = setting(get, BLOB_SERVICE_URI)?;
    let table_uri = setting(get, TABLE_SERVICE_URI)?;
    let (needed, uri) = match service {
        Service::Blob => (BLOB_SERVICE_URI, &blob_uri),
        Service::Table => (TABLE_SERVICE_URI, &table_uri),
    };
    if account_name.is_none() && uri.is_none() {
        if blob_uri.is_none() && table_uri.is_none() {
            return Err(bad(
                CONNECTION,
                format!(
                    "required for {feature}: a connection string, or an identity-based connection ({} or {})",
                    ACCOUNT_NAME.double, needed.double
                ),
            ));
        }
        return Err(bad(
            needed.double,
            format!(
                "required for {feature} (or {}): the identity-based connection names only the other service",
                ACCOUNT_NAME.double
            ),
        ));
    }
    let valid_name = |name: &str| {
        (3..=24).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if account_name.as_deref().is_some_and(|name| !valid_name(name)) {
        return Err(bad(ACCOUNT_NAME.double, "must be a storage account name: 3 to 24 lower-case letters and digits"));
    }
    for (name, uri) in [(BLOB_SERVICE_URI, &blob_uri), (TABLE_SERVICE_URI, &table_uri)] {
        let Some(uri) = uri else { continue };
        match super::endpoint_url(uri) {
            Ok(url) if url.scheme() == "https" => {}
            Ok(_) => return Err(bad(name.double, "must be https: the managed identity's token is sent to it")),
            Err(_) => return Err(bad(name.double, "must be the service's https URL, without a query")),
        }
    }
    let identity = identity(get)?;
    StorageAccount::with_identity(account_name.as_deref(), blob_uri.as_deref(), table_uri.as_deref(), identity)
        .map_err(|e| bad(needed.double, format!("unusable for {feature}: {e}")))
}

/// The managed identity of an identity-based connection: the credential settings checked,
/// the endpoint and its secret from the platform.
fn identity(get: &impl Fn(&str) -> Option<String>) -> Result<Identity, SettingsError> {
    match setting(get, CREDENTIAL)? {
        Some(credential) if !credential.eq_ignore_ascii_case("managedidentity") => {
            return Err(bad(
                CREDENTIAL.double,
                "must be managedidentity (or unset): the handler gets storage tokens from the app's managed identity only",
            ));
        }
        Some(_) => {}
        None => {
            for name in SECRET_CREDENTIALS {
                if setting(get, name)?.is_some() {
                    return Err(bad(
                        name.double,
                        format!(
                            "service principal credentials are not used by the handler; grant the app's managed identity and set {}=managedidentity",
                            CREDENTIAL.double
                        ),
                    ));
                }
            }
        }
    }
    let endpoint = get(IDENTITY_ENDPOINT).ok_or_else(|| {
        bad(
            IDENTITY_ENDPOINT,
            format!(
                "required by the identity-based {CONNECTION} connection: the platform sets it when the app has a managed identity (turn one on; locally, use a connection string such as UseDevelopmentStorage=true)"
            ),
        )
    })?;
    let endpoint = reqwest::Url::parse(&endpoint)
        .ok()
        .filter(crate::config::is_acceptable_url)
        .ok_or_else(|| bad(IDENTITY_ENDPOINT, "must be an https URL, or http on localhost/127.0.0.1/[::1]"))?;
    let header = get(IDENTITY_HEADER).ok_or_else(|| {
        bad(
            IDENTITY_HEADER,
            "required with IDENTITY_ENDPOINT: the platform sets both for an app with a managed identity",
        )
    })?;
    let client_id = setting(get, CLIENT_ID)?;
    Ok(Identity { endpoint, header: IdentityHeader(header), client_id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Credential;
    use std::collections::HashMap;

    /// Settings as (name, value) pairs.
    type Vars<'a> = Vec<(&'a str, &'a str)>;
    /// The same, borrowed.
    type Pairs<'a> = &'a [(&'a str, &'a str)];

    const PLATFORM: [(&str, &str); 2] =
        [("IDENTITY_ENDPOINT", "http://localhost:8081/msi/token"), ("IDENTITY_HEADER", "the-header-secret")];

    fn parse(service: Service, vars: &[(&str, &str)]) -> Result<StorageAccount, SettingsError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        account(&|name: &str| map.get(name).cloned(), service, "the test")
    }

    fn with_platform<'a>(vars: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut all = PLATFORM.to_vec();
        all.extend_from_slice(vars);
        all
    }

    fn endpoints(account: &StorageAccount) -> (Option<&str>, Option<&str>) {
        (account.blob_endpoint.as_ref().map(|u| u.as_str()), account.table_endpoint.as_ref().map(|u| u.as_str()))
    }

    fn identity_of(account: &StorageAccount) -> &Identity {
        match &account.credential {
            Credential::ManagedIdentity(identity) => identity,
            Credential::SharedKey(_) => panic!("a managed identity account"),
        }
    }

    #[test]
    #[allow(clippy::type_complexity)] // a table of cases, read row by row
    fn identity_settings_give_the_endpoints_the_host_derives() {
        // (settings, service, blob endpoint, table endpoint, account name)
        let cases: [(Pairs, Service, Option<&str>, Option<&str>, &str); 5] = [
            (
                &[("AzureWebJobsStorage__accountName", "myapp")],
                Service::Blob,
                Some("https://myapp.blob.core.windows.net/"),
                Some("https://myapp.table.core.windows.net/"),
                "myapp",
            ),
            (
                &[("AzureWebJobsStorage:accountName", "myapp")],
                Service::Table,
                Some("https://myapp.blob.core.windows.net/"),
                Some("https://myapp.table.core.windows.net/"),
                "myapp",
            ),
            // A service URI wins over the name.
            (
                &[
                    ("AzureWebJobsStorage__accountName", "myapp"),
                    ("AzureWebJobsStorage__blobServiceUri", "https://blobs.example.net/"),
                ],
                Service::Blob,
                Some("https://blobs.example.net/"),
                Some("https://myapp.table.core.windows.net/"),
                "myapp",
            ),
            // Only the URI of the service the feature needs.
            (
                &[("AzureWebJobsStorage__blobServiceUri", "https://other.blob.core.windows.net")],
                Service::Blob,
                Some("https://other.blob.core.windows.net/"),
                None,
                "other",
            ),
            (
                &[("AzureWebJobsStorage__tableServiceUri", "https://127.0.0.1:10002/devstoreaccount1")],
                Service::Table,
                None,
                Some("https://127.0.0.1:10002/devstoreaccount1"),
                "devstoreaccount1",
            ),
        ];
        for (vars, service, blob, table, name) in cases {
            let account = parse(service, &with_platform(vars)).unwrap_or_else(|e| panic!("{vars:?}: {e}"));
            assert_eq!(endpoints(&account), (blob, table), "{vars:?}");
            assert_eq!(account.name, name, "{vars:?}");
            let identity = identity_of(&account);
            assert_eq!(identity.endpoint.as_str(), PLATFORM[0].1);
            assert_eq!(identity.client_id, None);
        }
    }

    #[test]
    fn client_id_selects_a_user_assigned_identity_and_credential_may_say_managedidentity() {
        let vars = with_platform(&[
            ("AzureWebJobsStorage__accountName", "myapp"),
            ("AzureWebJobsStorage__credential", "ManagedIdentity"),
            ("AzureWebJobsStorage__clientId", "8b3c0f4e-0000-4000-8000-000000000001"),
        ]);
        let account = parse(Service::Table, &vars).unwrap();
        assert_eq!(identity_of(&account).client_id.as_deref(), Some("8b3c0f4e-0000-4000-8000-000000000001"));
        assert!(!format!("{account:?}").contains("the-header-secret"), "never prints IDENTITY_HEADER");
    }

    #[test]
    fn a_connection_string_wins_over_identity_settings() {
        let vars = with_platform(&[
            ("AzureWebJobsStorage", "UseDevelopmentStorage=true"),
            ("AzureWebJobsStorage__accountName", "myapp"),
        ]);
        let account = parse(Service::Blob, &vars).unwrap();
        assert!(matches!(account.credential, Credential::SharedKey(_)));
        assert_eq!(account.name, "devstoreaccount1");
        // Even without the platform's identity endpoint: the string needs none.
        assert!(parse(Service::Blob, &[vars[2], vars[3]]).is_ok());
    }

    #[test]
    fn unusable_identity_settings_name_the_variable_at_fault() {
        let name = ("AzureWebJobsStorage__accountName", "myapp");
        // (settings, service, variable named)
        let cases: [(Vars, Service, &str); 11] = [
            (vec![], Service::Blob, "AzureWebJobsStorage"),
            (with_platform(&[]), Service::Table, "AzureWebJobsStorage"),
            (vec![name], Service::Blob, "IDENTITY_ENDPOINT"),
            (vec![name, PLATFORM[0]], Service::Table, "IDENTITY_HEADER"),
            (
                vec![name, ("IDENTITY_ENDPOINT", "http://10.0.0.5/msi/token"), PLATFORM[1]],
                Service::Blob,
                "IDENTITY_ENDPOINT",
            ),
            (vec![name, ("IDENTITY_ENDPOINT", "not a url"), PLATFORM[1]], Service::Blob, "IDENTITY_ENDPOINT"),
            (
                with_platform(&[("AzureWebJobsStorage__blobServiceUri", "http://127.0.0.1:10000/devstoreaccount1")]),
                Service::Blob,
                "AzureWebJobsStorage__blobServiceUri",
            ),
            (
                with_platform(&[("AzureWebJobsStorage__blobServiceUri", "https://a.blob.core.windows.net")]),
                Service::Table,
                "AzureWebJobsStorage__tableServiceUri",
            ),
            (
                with_platform(&[name, ("AzureWebJobsStorage__credential", "workloadidentity")]),
                Service::Blob,
                "AzureWebJobsStorage__credential",
            ),
            (
                with_platform(&[name, ("AzureWebJobsStorage__clientSecret", "shh")]),
                Service::Blob,
                "AzureWebJobsStorage__clientSecret",
            ),
            (
                with_platform(&[name, ("AzureWebJobsStorage:accountName", "someotherapp")]),
                Service::Blob,
                "AzureWebJobsStorage__accountName",
            ),
        ];
        for (vars, service, variable) in cases {
            let error = parse(service, &vars).expect_err(&format!("{vars:?} must be refused"));
            assert_eq!(error.variable, variable, "{vars:?}: {error}");
            for (_, value) in &vars {
                assert!(value.len() < 6 || !error.problem.contains(value), "echoes {value:?}: {error}");
            }
        }
    }

    #[test]
    fn configured_means_a_connection_string_or_an_identity_based_connection() {
        let is = |vars: &[(&str, &str)]| {
            let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            configured(&|name: &str| map.get(name).cloned())
        };
        assert!(!is(&[]));
        assert!(!is(&PLATFORM), "a managed identity alone names no account");
        assert!(!is(&[("AzureWebJobsStorage__clientId", "x")]));
        assert!(is(&[("AzureWebJobsStorage", "UseDevelopmentStorage=true")]));
        assert!(is(&[("AzureWebJobsStorage__accountName", "myapp")]));
        assert!(is(&[("AzureWebJobsStorage:blobServiceUri", "https://a.blob.core.windows.net")]));
        assert!(is(&[("AzureWebJobsStorage__tableServiceUri", "https://a.table.core.windows.net")]));
    }
}
