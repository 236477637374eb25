//! Verified claims handed to business handlers: the standard fields typed, the rest raw.

use serde_json::{Map, Value};

/// The organization a token was issued for (Auth0 Organizations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Organization<'a> {
    /// `org_id`: the organization's id (`org_...`), what `auth.json` rules compare.
    pub id: &'a str,
    /// `org_name`, when the tenant includes it; display only (names can be renamed).
    pub name: Option<&'a str>,
}

/// The claims of a token whose signature and registered claims were verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    issuer: String,
    subject: Option<String>,
    audiences: Vec<String>,
    expires_at: i64,
    key_id: Option<String>,
    scopes: Vec<String>,
    permissions: Vec<String>,
    raw: Map<String, Value>,
    /// The configured `{tenantid}` issuer `iss` matched, when it was one.
    issuer_template: Option<String>,
}

impl Claims {
    /// Builds claims from a verified payload. Callers have already checked `iss`, `aud`
    /// and `exp`; the lists are read leniently (unknown shapes give empty lists).
    pub(crate) fn from_verified(
        issuer: String,
        audiences: Vec<String>,
        expires_at: i64,
        key_id: Option<String>,
        raw: Map<String, Value>,
    ) -> Self {
        let subject = raw.get("sub").and_then(Value::as_str).map(str::to_owned);
        // Auth0 and RFC 9068 use `scope`; Entra ID uses `scp`. Both are space-separated.
        let scopes = ["scope", "scp"]
            .iter()
            .filter_map(|name| raw.get(*name))
            .flat_map(|v| match v {
                Value::String(s) => s.split_whitespace().map(str::to_owned).collect::<Vec<_>>(),
                Value::Array(items) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
                _ => Vec::new(),
            })
            .collect();
        // Auth0 RBAC puts `permissions`; Entra ID app roles arrive as `roles`.
        let permissions = ["permissions", "roles"]
            .iter()
            .filter_map(|name| raw.get(*name).and_then(Value::as_array))
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        Self { issuer, subject, audiences, expires_at, key_id, scopes, permissions, raw, issuer_template: None }
    }

    /// The same claims, accepted through the `{tenantid}` issuer `template`.
    pub(crate) fn with_issuer_template(mut self, template: String) -> Self {
        self.issuer_template = Some(template);
        self
    }

    /// The configured issuer that accepted the token: `iss` itself, or the `{tenantid}`
    /// template it matched (`https://login.microsoftonline.com/{tenantid}/v2.0`). The
    /// `issuers` of `auth.json` are compared with this.
    pub fn trusted_issuer(&self) -> &str {
        self.issuer_template.as_deref().unwrap_or(&self.issuer)
    }

    /// `tid`: the Entra ID tenant, when it is a string. For a token accepted through a
    /// `{tenantid}` issuer, it is the tenant in `iss` and one `AUTH_TENANTS` allows.
    pub fn tenant_id(&self) -> Option<&str> {
        self.raw.get("tid").and_then(Value::as_str)
    }

    /// `iss`, as the token has it (the tenant's own issuer under a `{tenantid}` issuer).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `sub`, when present.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// `aud`, as a list.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// `exp`, seconds since the Unix epoch.
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// The `kid` of the key that verified the token.
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// The client the token was issued to: `azp`, else `client_id` (RFC 9068), else Entra's
    /// v1 `appid`, else Okta's `cid`.
    pub fn client_id(&self) -> Option<&str> {
        ["azp", "client_id", "appid", "cid"].iter().find_map(|name| self.raw.get(*name).and_then(Value::as_str))
    }

    /// True for machine-to-machine tokens (`gty: client-credentials`, Auth0's marker).
    pub fn is_client_credentials(&self) -> bool {
        self.raw.get("gty").and_then(Value::as_str) == Some("client-credentials")
    }

    /// Scopes from `scope` / `scp`.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Permissions from `permissions` (Auth0 RBAC) and `roles` (Entra ID).
    pub fn permissions(&self) -> &[String] {
        &self.permissions
    }

    /// The organization (`org_id`, with `org_name` when present) the token was issued for;
    /// `None` when `org_id` is absent or not a string.
    pub fn organization(&self) -> Option<Organization<'_>> {
        let id = self.raw.get("org_id").and_then(Value::as_str)?;
        Some(Organization { id, name: self.raw.get("org_name").and_then(Value::as_str) })
    }

    /// `acr`: the authentication context class the login satisfied, when it is a string.
    pub fn acr(&self) -> Option<&str> {
        self.raw.get("acr").and_then(Value::as_str)
    }

    /// `auth_time`: when the user logged in (seconds since the Unix epoch), when it is a
    /// number. Functions with `maxAge` in `auth.json` have it checked before they run.
    pub fn auth_time(&self) -> Option<i64> {
        super::token::numeric_date(self.raw.get("auth_time")).ok().flatten()
    }

    /// Every claim, as sent.
    pub fn raw(&self) -> &Map<String, Value> {
        &self.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(raw: Value) -> Claims {
        let Value::Object(map) = raw else { panic!("object expected") };
        Claims::from_verified("https://i/".into(), vec!["a".into()], 1, None, map)
    }

    #[test]
    fn scopes_and_permissions_are_read_from_auth0_and_entra_shapes() {
        let c = claims(json!({"scope": "read:a  write:a", "permissions": ["p1", 2, "p2"], "sub": "s"}));
        assert_eq!(c.scopes(), ["read:a", "write:a"]);
        assert_eq!(c.permissions(), ["p1", "p2"]);
        assert_eq!(c.subject(), Some("s"));
        let e = claims(json!({"scp": "User.Read", "roles": ["Admin"], "appid": "app"}));
        assert_eq!(e.scopes(), ["User.Read"]);
        assert_eq!(e.permissions(), ["Admin"]);
        assert_eq!(e.client_id(), Some("app"));
    }

    #[test]
    fn client_id_prefers_azp_and_detects_client_credentials() {
        let c = claims(json!({"azp": "x", "client_id": "y", "gty": "client-credentials"}));
        assert_eq!(c.client_id(), Some("x"));
        assert!(c.is_client_credentials());
        assert!(!claims(json!({})).is_client_credentials());
        assert_eq!(claims(json!({"cid": "0oa1ab2c3D4E5F6G7h8i"})).client_id(), Some("0oa1ab2c3D4E5F6G7h8i"));
        assert_eq!(claims(json!({"client_id": "c", "cid": "o"})).client_id(), Some("c"));
    }

    #[test]
    fn organization_is_org_id_with_org_name_when_present() {
        let c = claims(json!({"org_id": "org_9ybsU1dN2dKfDkBi", "org_name": "acme"}));
        assert_eq!(c.organization(), Some(Organization { id: "org_9ybsU1dN2dKfDkBi", name: Some("acme") }));
        let id_only = claims(json!({"org_id": "org_9ybsU1dN2dKfDkBi"}));
        assert_eq!(id_only.organization().map(|o| (o.id, o.name)), Some(("org_9ybsU1dN2dKfDkBi", None)));
        assert_eq!(claims(json!({"org_name": "acme"})).organization(), None);
        assert_eq!(claims(json!({"org_id": 7})).organization(), None);
    }

    #[test]
    fn acr_and_auth_time_are_typed_and_never_coerced() {
        let c = claims(json!({"acr": "mfa", "auth_time": 1_700_000_000}));
        assert_eq!((c.acr(), c.auth_time()), (Some("mfa"), Some(1_700_000_000)));
        let wrong = claims(json!({"acr": 2, "auth_time": "1700000000"}));
        assert_eq!((wrong.acr(), wrong.auth_time()), (None, None));
        assert_eq!(claims(json!({})).auth_time(), None);
    }
}
