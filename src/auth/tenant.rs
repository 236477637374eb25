//! Issuer templates for multi-tenant issuers (Entra ID's `organizations` / `common`
//! endpoints): `https://login.microsoftonline.com/{tenantid}/v2.0` stands for one issuer per
//! tenant. A token matches when its `iss` is the template with its own `tid` put in, and that
//! tenant is allowed (`AUTH_TENANTS`); this is decided from the unverified payload before any
//! key is looked up, so a foreign or inconsistent tenant costs no key lookup, and the
//! signature is then checked with the template issuer's one key set.

use serde_json::{Map, Value};

use crate::config::TenantAllowList;
use crate::error::TokenRejection;

/// The placeholder, exactly as Entra's multi-tenant discovery documents write it.
pub const PLACEHOLDER: &str = "{tenantid}";

/// What the placeholder is replaced with to find the discovery document: Entra serves the
/// template issuer's metadata (and the key set all tenants share) under `organizations`.
pub const DISCOVERY_TENANT: &str = "organizations";

/// Where `issuer`'s OpenID Connect discovery document is: `<issuer>/.well-known/openid-configuration`,
/// a `{tenantid}` issuer's under the [`DISCOVERY_TENANT`] (whose document names the template
/// itself as its issuer).
pub fn discovery_url(issuer: &str) -> String {
    let base = issuer.replace(PLACEHOLDER, DISCOVERY_TENANT);
    format!("{}/.well-known/openid-configuration", base.trim_end_matches('/'))
}

/// Longest tenant id accepted (Entra's are 36-character GUIDs). Bounds the work and what a
/// token can make the handler compare; a longer `tid` is simply not a tenant.
pub const MAX_TENANT_ID_BYTES: usize = 64;

/// An issuer with `{tenantid}` in its path, split around the placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerTemplate {
    prefix: String,
    suffix: String,
}

/// True for a tenant id that can stand in a path segment: ASCII letters, digits and `-`,
/// 1 to [`MAX_TENANT_ID_BYTES`] long (GUIDs, as `tid` carries them).
pub fn is_tenant_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_TENANT_ID_BYTES
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl IssuerTemplate {
    /// Splits `issuer` around its one `{tenantid}`; `None` when it has none. Errors (for
    /// `AUTH_ISSUER`) when the placeholder is repeated, not a whole path segment, or another
    /// brace appears.
    pub fn parse(issuer: &str) -> Result<Option<Self>, String> {
        let Some(at) = issuer.find(PLACEHOLDER) else {
            return match issuer.contains(['{', '}']) {
                true => Err(format!("the only placeholder an issuer may contain is {PLACEHOLDER}")),
                false => Ok(None),
            };
        };
        let (prefix, suffix) = (&issuer[..at], &issuer[at + PLACEHOLDER.len()..]);
        if prefix.contains(['{', '}']) || suffix.contains(['{', '}']) {
            return Err(format!("{PLACEHOLDER} may appear once, and no other placeholder"));
        }
        // In the path, as a whole segment: after `scheme://host/`, and followed by `/` or the end.
        let authority_end = prefix.find("://").map(|s| s + 3).and_then(|s| prefix[s..].find('/').map(|p| s + p));
        let whole_segment = prefix.ends_with('/') && (suffix.is_empty() || suffix.starts_with('/'));
        if authority_end.is_none() || !whole_segment || suffix.contains(['?', '#']) {
            return Err(format!(
                "{PLACEHOLDER} must be a whole path segment, as in https://login.microsoftonline.com/{PLACEHOLDER}/v2.0"
            ));
        }
        Ok(Some(Self { prefix: prefix.to_owned(), suffix: suffix.to_owned() }))
    }

    /// The template with `tenant` put in.
    pub fn with_tenant(&self, tenant: &str) -> String {
        format!("{}{tenant}{}", self.prefix, self.suffix)
    }

    /// The tenant an `iss` names through this template, if it has the template's shape.
    pub fn tenant_of<'a>(&self, iss: &'a str) -> Option<&'a str> {
        let tenant = iss.strip_prefix(&self.prefix)?.strip_suffix(&self.suffix)?;
        is_tenant_id(tenant).then_some(tenant)
    }

    /// Judges a token whose `iss` has this template's shape (`Ok(false)` when it has not):
    /// its `tid` must be a string equal to the tenant in `iss`, and allowed.
    pub fn admits(
        &self,
        iss: &str,
        payload: &Map<String, Value>,
        allowed: &TenantAllowList,
    ) -> Result<bool, TokenRejection> {
        let Some(tenant) = self.tenant_of(iss) else { return Ok(false) };
        match payload.get("tid") {
            Some(Value::String(tid)) if tid == tenant => {}
            _ => return Err(TokenRejection::IssuerTenantMismatch),
        }
        if !allowed.allows(tenant) {
            return Err(TokenRejection::TenantNotAllowed);
        }
        Ok(true)
    }
}

impl TenantAllowList {
    /// True when `tenant` may call.
    pub fn allows(&self, tenant: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Only(tenants) => tenants.iter().any(|t| t == tenant),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const V2: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";
    const V1: &str = "https://sts.windows.net/{tenantid}/";
    const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    fn payload(raw: Value) -> Map<String, Value> {
        let Value::Object(map) = raw else { panic!("object expected") };
        map
    }

    #[test]
    fn templates_split_around_the_one_placeholder() {
        let v2 = IssuerTemplate::parse(V2).unwrap().unwrap();
        assert_eq!(v2.with_tenant(TID), format!("https://login.microsoftonline.com/{TID}/v2.0"));
        assert_eq!(v2.tenant_of(&format!("https://login.microsoftonline.com/{TID}/v2.0")), Some(TID));
        let v1 = IssuerTemplate::parse(V1).unwrap().unwrap();
        assert_eq!(v1.tenant_of(&format!("https://sts.windows.net/{TID}/")), Some(TID));
        assert_eq!(IssuerTemplate::parse("https://tenant.eu.auth0.com/").unwrap(), None);
    }

    #[test]
    fn shapes_that_are_not_one_tenant_segment_name_no_tenant() {
        let v2 = IssuerTemplate::parse(V2).unwrap().unwrap();
        for iss in [
            "https://login.microsoftonline.com//v2.0",
            "https://login.microsoftonline.com/a/b/v2.0",
            "https://login.microsoftonline.com/a%2Fb/v2.0",
            "https://login.microsoftonline.com/{tenantid}/v2.0",
            "https://login.microsoftonline.com/abc/v2.0/",
            "https://evil.example/abc/v2.0",
            "https://login.microsoftonline.com/abc/v1.0",
        ] {
            assert_eq!(v2.tenant_of(iss), None, "{iss}");
        }
        let long = "a".repeat(MAX_TENANT_ID_BYTES + 1);
        assert_eq!(v2.tenant_of(&v2.with_tenant(&long)), None);
    }

    #[test]
    fn bad_templates_are_refused() {
        for bad in [
            "https://login.microsoftonline.com/{tenantid}/{tenantid}/v2.0",
            "https://login.microsoftonline.com/{tenantId}/v2.0",
            "https://{tenantid}.example.com/",
            "https://login.microsoftonline.com/t-{tenantid}/v2.0",
            "https://login.microsoftonline.com/{tenantid}x/v2.0",
            "https://login.microsoftonline.com/v2.0?tenant={tenantid}",
            "https://login.microsoftonline.com/{tenantid}/v2.0?x",
            "{tenantid}",
        ] {
            assert!(IssuerTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_token_is_admitted_only_for_its_own_allowed_tenant() {
        let v2 = IssuerTemplate::parse(V2).unwrap().unwrap();
        let iss = v2.with_tenant(TID);
        let only = TenantAllowList::Only(vec![TID.to_owned()]);
        assert_eq!(v2.admits(&iss, &payload(json!({"tid": TID})), &only), Ok(true));
        assert_eq!(v2.admits(&iss, &payload(json!({"tid": TID})), &TenantAllowList::Any), Ok(true));
        let other = "9188040d-6c67-4c5b-b112-36a304b66dad";
        let foreign = v2.with_tenant(other);
        assert_eq!(v2.admits(&foreign, &payload(json!({"tid": other})), &only), Err(TokenRejection::TenantNotAllowed));
        for tid in [json!(other), json!(null), json!([TID]), json!(TID.to_uppercase())] {
            assert_eq!(
                v2.admits(&iss, &payload(json!({ "tid": tid })), &TenantAllowList::Any),
                Err(TokenRejection::IssuerTenantMismatch),
                "{tid}"
            );
        }
        assert_eq!(v2.admits(&iss, &payload(json!({})), &only), Err(TokenRejection::IssuerTenantMismatch));
        assert_eq!(v2.admits("https://other.example/", &payload(json!({"tid": TID})), &only), Ok(false));
    }

    #[test]
    fn tenant_ids_are_path_safe() {
        assert!(is_tenant_id(TID));
        for bad in ["", "a/b", "a b", "a.b", "ä", "{tenantid}", &"a".repeat(65)] {
            assert!(!is_tenant_id(bad), "{bad}");
        }
    }
}
