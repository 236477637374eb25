//! Per-function authorization policy, declared in `<function>/auth.json` next to the
//! function's `function.json` and read at start-up. It runs after the token verified
//! (authentication says who called; the policy says what that caller may do here).
//!
//! ```json
//! {
//!   "scopes":      { "all": ["read:orders"], "any": ["admin", "support"] },
//!   "permissions": { "all": ["read:orders"] },
//!   "clients": ["m2m-client-id"],
//!   "allowClientCredentials": true,
//!   "issuers": ["https://my-tenant.eu.auth0.com/"],
//!   "acrValues": ["http://schemas.openid.net/pape/policies/2007/06/multi-factor"],
//!   "maxAge": 300,
//!   "dpop": "required",
//!   "organizations": ["org_9ybsU1dN2dKfDkBi"],
//!   "organizationFromRoute": "orgId",
//!   "claims": { "https://example.com/roles": { "any": ["admin"] }, "/realm_access/roles": { "all": ["reader"] } }
//! }
//! ```
//! or `{ "anonymous": true }`. A missing file means "any valid token". `acrValues` and
//! `maxAge` are RFC 9470 step-up demands, checked in [`super::step_up`]; `claims` are rules
//! on any claim, in [`super::rules`]; `organizations` / `organizationFromRoute` bind the
//! token's `org_id` (Auth0 Organizations) to a list or to the route value.

use serde::Deserialize;

use super::Claims;
use super::dpop::DpopMode;
use super::rules::ClaimRules;
use super::step_up::StepUpPolicy;
use crate::error::{AuthError, TokenRejection};
use crate::route::RouteValues;

/// Required values: every one of `all`, and at least one of `any` (when non-empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllAny {
    /// Every one of these is required.
    #[serde(default)]
    pub all: Vec<String>,
    /// At least one of these is required (ignored when empty).
    #[serde(default)]
    pub any: Vec<String>,
}

impl AllAny {
    fn satisfied_by(&self, held: &[String]) -> bool {
        self.all.iter().all(|s| held.contains(s)) && (self.any.is_empty() || self.any.iter().any(|s| held.contains(s)))
    }

    fn is_empty(&self) -> bool {
        self.all.is_empty() && self.any.is_empty()
    }

    /// For the RFC 6750 `scope` attribute: the required values, space-separated.
    fn describe(&self) -> String {
        self.all.iter().chain(&self.any).map(String::as_str).collect::<Vec<_>>().join(" ")
    }

    fn validate(&self, field: &str) -> Result<(), String> {
        match self.all.iter().chain(&self.any).find(|s| s.is_empty() || s.contains([' ', '"', '\\'])) {
            Some(_) => Err(format!("{field}: values must be non-empty and contain no spaces, quotes or backslashes")),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicyDoc {
    #[serde(default)]
    anonymous: bool,
    #[serde(default)]
    scopes: AllAny,
    #[serde(default)]
    permissions: AllAny,
    #[serde(default)]
    clients: Option<Vec<String>>,
    #[serde(default)]
    allow_client_credentials: Option<bool>,
    #[serde(default)]
    issuers: Option<Vec<String>>,
    #[serde(default)]
    acr_values: Option<Vec<String>>,
    /// A raw number, so that `-1` or `1.5` are refused with the field's name, not coerced.
    #[serde(default)]
    max_age: Option<serde_json::Number>,
    dpop: Option<DpopMode>,
    #[serde(default)]
    organizations: Option<Vec<String>>,
    #[serde(default)]
    organization_from_route: Option<String>,
    /// Raw, so that [`ClaimRules::parse`] names the claim in its errors.
    #[serde(default)]
    claims: Option<serde_json::Value>,
}

/// What a function requires of its callers.
// One per function, built at start-up and only ever borrowed: the variants' size difference
// costs nothing, and boxing would add a pointer chase to every request's policy check.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Policy {
    /// No token needed; the handler gets no claims.
    Anonymous,
    /// A valid token, plus these rules.
    Token(TokenPolicy),
    /// Any valid token (no `auth.json`).
    #[default]
    AnyValidToken,
}

/// Rules applied to a verified token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenPolicy {
    /// Scopes (`scope` / `scp`).
    pub scopes: AllAny,
    /// Permissions (Auth0 RBAC `permissions`, Entra ID `roles`).
    pub permissions: AllAny,
    /// Allowed client ids (`azp` / `client_id` / `appid`); `None` allows every client.
    pub clients: Option<Vec<String>>,
    /// Whether machine-to-machine (`gty: client-credentials`) tokens are accepted.
    pub allow_client_credentials: bool,
    /// Issuers accepted for this function, as configured (a `{tenantid}` issuer by its
    /// template); `None` accepts every configured issuer.
    pub issuers: Option<Vec<String>>,
    /// RFC 9470 demands on the login behind the token (`acrValues`, `maxAge`).
    pub step_up: StepUpPolicy,
    /// DPoP for this function (`"dpop"`); `None` follows `AUTH_DPOP`.
    pub dpop: Option<DpopMode>,
    /// Organizations (`org_id`) accepted (`"organizations"`); `None` accepts any, and a token
    /// without an organization.
    pub organizations: Option<Vec<String>>,
    /// Route parameter whose value the token's `org_id` must equal (`"organizationFromRoute"`).
    pub organization_from_route: Option<String>,
    /// Rules on any claim (`"claims"`).
    pub claims: ClaimRules,
}

impl Policy {
    /// Parses an `auth.json` document. Errors name the field.
    pub fn parse(json: &[u8]) -> Result<Self, String> {
        let doc: PolicyDoc = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        if doc.anonymous {
            let restricted = !doc.scopes.is_empty()
                || !doc.permissions.is_empty()
                || doc.clients.is_some()
                || doc.allow_client_credentials.is_some()
                || doc.issuers.is_some()
                || doc.acr_values.is_some()
                || doc.max_age.is_some()
                || doc.dpop.is_some()
                || doc.organizations.is_some()
                || doc.organization_from_route.is_some()
                || doc.claims.is_some();
            if restricted {
                return Err("anonymous: cannot be combined with scopes, permissions, clients, allowClientCredentials, issuers, acrValues, maxAge, dpop, organizations, organizationFromRoute or claims".into());
            }
            return Ok(Self::Anonymous);
        }
        doc.scopes.validate("scopes")?;
        doc.permissions.validate("permissions")?;
        for (field, list) in
            [("clients", &doc.clients), ("issuers", &doc.issuers), ("organizations", &doc.organizations)]
        {
            match list {
                Some(list) if list.is_empty() => {
                    return Err(format!("{field}: an empty list would refuse every caller"));
                }
                Some(list) if list.iter().any(String::is_empty) => {
                    return Err(format!("{field}: values must be non-empty"));
                }
                _ => {}
            }
        }
        if doc.organization_from_route.as_deref().is_some_and(|name| name.is_empty() || name.contains(['{', '}', '/']))
        {
            return Err("organizationFromRoute: the name of a route parameter, as in {orgId} (without braces)".into());
        }
        let claims = match &doc.claims {
            Some(rules) => ClaimRules::parse(rules)?,
            None => ClaimRules::default(),
        };
        let step_up = StepUpPolicy::new(doc.acr_values, doc.max_age)?;
        Ok(Self::Token(TokenPolicy {
            scopes: doc.scopes,
            permissions: doc.permissions,
            clients: doc.clients,
            allow_client_credentials: doc.allow_client_credentials.unwrap_or(true),
            issuers: doc.issuers,
            step_up,
            dpop: doc.dpop,
            organizations: doc.organizations,
            organization_from_route: doc.organization_from_route,
            claims,
        }))
    }

    /// The route parameter `organizationFromRoute` names, when set (start-up checks that the
    /// function's route has it).
    pub fn organization_route_parameter(&self) -> Option<&str> {
        match self {
            Self::Token(TokenPolicy { organization_from_route, .. }) => organization_from_route.as_deref(),
            _ => None,
        }
    }

    /// True when no token is needed.
    pub fn is_anonymous(&self) -> bool {
        matches!(self, Self::Anonymous)
    }

    /// Issuers this policy names (to check against configuration at start-up).
    pub fn issuers(&self) -> &[String] {
        match self {
            Self::Token(TokenPolicy { issuers: Some(issuers), .. }) => issuers,
            _ => &[],
        }
    }

    /// The function's own DPoP mode (`"dpop"`), when set.
    pub fn dpop(&self) -> Option<DpopMode> {
        match self {
            Self::Token(TokenPolicy { dpop, .. }) => *dpop,
            _ => None,
        }
    }

    /// Applies the rules to verified claims of a request whose route values are `route`, at
    /// `now` (Unix seconds, `skew` seconds of leeway): 401 for an issuer this function does
    /// not accept; 401 `insufficient_user_authentication` for a login too weak or too old
    /// (RFC 9470); 403 `insufficient_scope` for client rights, another organization, a claim
    /// rule, missing scopes or permissions. Step-up comes before the 403 checks: how the
    /// caller logged in is authentication, and a weak login is not told which rights the
    /// function requires. Organization and claim refusals name nothing (no scope, no
    /// organization, no claim value), and come before scopes so a caller from another
    /// tenant is not told which scopes this function wants.
    pub fn check(&self, claims: &Claims, route: &RouteValues, now: i64, skew: i64) -> Result<(), AuthError> {
        let Self::Token(policy) = self else { return Ok(()) };
        if let Some(issuers) = &policy.issuers
            && !issuers.iter().any(|i| i == claims.trusted_issuer())
        {
            return Err(AuthError::InvalidToken(TokenRejection::WrongIssuer));
        }
        policy.step_up.check(claims, now, skew)?;
        let forbidden = |scope: String| Err(AuthError::InsufficientScope { scope });
        if !policy.allow_client_credentials && claims.is_client_credentials() {
            return forbidden(String::new());
        }
        if let Some(clients) = &policy.clients
            && !claims.client_id().is_some_and(|c| clients.iter().any(|allowed| allowed == c))
        {
            return forbidden(String::new());
        }
        if !policy.organization_allowed(claims, route) || !policy.claims.satisfied_by(claims.raw()) {
            return forbidden(String::new());
        }
        if !policy.scopes.satisfied_by(claims.scopes()) {
            return forbidden(policy.scopes.describe());
        }
        if !policy.permissions.satisfied_by(claims.permissions()) {
            return forbidden(policy.permissions.describe());
        }
        Ok(())
    }
}

impl TokenPolicy {
    /// `org_id` is one of `organizations` and equals the `organizationFromRoute` value, for
    /// whichever of the two is set. A token without `org_id` passes neither; a request
    /// without the route value (an absent optional parameter) fails the route binding.
    fn organization_allowed(&self, claims: &Claims, route: &RouteValues) -> bool {
        if self.organizations.is_none() && self.organization_from_route.is_none() {
            return true;
        }
        let Some(organization) = claims.organization() else { return false };
        let listed = self.organizations.as_ref().is_none_or(|list| list.iter().any(|o| o == organization.id));
        let routed = self
            .organization_from_route
            .as_deref()
            .is_none_or(|parameter| route.get(parameter).is_some_and(|value| value == organization.id));
        listed && routed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn claims(raw: Value) -> Claims {
        let Value::Object(map) = raw else { panic!("object expected") };
        Claims::from_verified("https://a/".into(), vec![], 0, None, map)
    }

    fn policy(doc: Value) -> Policy {
        Policy::parse(doc.to_string().as_bytes()).unwrap()
    }

    impl Policy {
        fn check_now(&self, claims: &Claims) -> Result<(), AuthError> {
            self.check(claims, &RouteValues::default(), NOW, 30)
        }
    }

    const NOW: i64 = 1_800_000_000;

    fn scope_error(scope: &str) -> Result<(), AuthError> {
        Err(AuthError::InsufficientScope { scope: scope.into() })
    }

    #[test]
    fn missing_policy_accepts_any_valid_token() {
        assert_eq!(Policy::default().check_now(&claims(json!({}))), Ok(()));
    }

    #[test]
    fn scopes_all_of_and_any_of() {
        let p = policy(json!({"scopes": {"all": ["read:a"], "any": ["x", "y"]}}));
        assert_eq!(p.check_now(&claims(json!({"scope": "read:a y"}))), Ok(()));
        assert_eq!(p.check_now(&claims(json!({"scope": "read:a"}))), scope_error("read:a x y"));
        assert_eq!(p.check_now(&claims(json!({"scope": "x y"}))), scope_error("read:a x y"));
        assert_eq!(p.check_now(&claims(json!({"scp": "read:a x"}))), Ok(()));
    }

    #[test]
    fn permissions_are_read_from_auth0_rbac() {
        let p = policy(json!({"permissions": {"all": ["delete:a"]}}));
        assert_eq!(p.check_now(&claims(json!({"permissions": ["delete:a"]}))), Ok(()));
        assert_eq!(p.check_now(&claims(json!({"permissions": ["read:a"]}))), scope_error("delete:a"));
    }

    #[test]
    fn clients_and_client_credentials() {
        let p = policy(json!({"clients": ["c1"]}));
        assert_eq!(p.check_now(&claims(json!({"azp": "c1"}))), Ok(()));
        assert_eq!(p.check_now(&claims(json!({"azp": "c2"}))), scope_error(""));
        assert_eq!(p.check_now(&claims(json!({}))), scope_error(""));
        let no_m2m = policy(json!({"allowClientCredentials": false}));
        assert_eq!(no_m2m.check_now(&claims(json!({"gty": "client-credentials"}))), scope_error(""));
        assert_eq!(no_m2m.check_now(&claims(json!({"sub": "auth0|user"}))), Ok(()));
    }

    #[test]
    fn issuers_restrict_which_configured_issuer_is_accepted() {
        let p = policy(json!({"issuers": ["https://b/"]}));
        assert_eq!(p.check_now(&claims(json!({}))), Err(AuthError::InvalidToken(TokenRejection::WrongIssuer)));
        assert_eq!(policy(json!({"issuers": ["https://a/"]})).check_now(&claims(json!({}))), Ok(()));
    }

    #[test]
    fn anonymous_policy() {
        assert!(policy(json!({"anonymous": true})).is_anonymous());
        let err = Policy::parse(br#"{"anonymous": true, "scopes": {"all": ["a"]}}"#).unwrap_err();
        assert!(err.starts_with("anonymous"), "{err}");
    }

    fn step_up_shortfall(result: Result<(), AuthError>) -> Option<crate::error::Shortfall> {
        match result {
            Err(AuthError::InsufficientUserAuthentication(step_up)) => Some(step_up.shortfall),
            _ => None,
        }
    }

    #[test]
    fn acr_values_and_max_age_are_read_from_auth_json() {
        use crate::error::Shortfall;
        let p = policy(json!({"acrValues": ["mfa"], "maxAge": 300}));
        let Policy::Token(token) = &p else { panic!("token policy expected") };
        assert_eq!(token.step_up.acr_values().collect::<Vec<_>>(), ["mfa"]);
        assert_eq!(token.step_up.max_age(), Some(300));
        assert_eq!(p.check_now(&claims(json!({"acr": "mfa", "auth_time": NOW - 10}))), Ok(()));
        assert_eq!(step_up_shortfall(p.check_now(&claims(json!({"auth_time": NOW})))), Some(Shortfall::MissingAcr));
        assert_eq!(
            step_up_shortfall(p.check_now(&claims(json!({"acr": "mfa", "auth_time": NOW - 400})))),
            Some(Shortfall::AuthenticationTooOld)
        );
    }

    #[test]
    fn step_up_is_demanded_before_scopes_are_checked() {
        let p = policy(json!({"acrValues": ["mfa"], "scopes": {"all": ["write:a"]}}));
        let weak = claims(json!({"acr": "pwd", "scope": "read:a"}));
        assert!(step_up_shortfall(p.check_now(&weak)).is_some());
        assert_eq!(p.check_now(&claims(json!({"acr": "mfa", "scope": "read:a"}))), scope_error("write:a"));
    }

    #[test]
    fn an_issuer_the_function_refuses_is_refused_before_step_up() {
        let p = policy(json!({"issuers": ["https://b/"], "maxAge": 60}));
        assert_eq!(p.check_now(&claims(json!({}))), Err(AuthError::InvalidToken(TokenRejection::WrongIssuer)));
    }

    #[test]
    fn step_up_fields_are_validated_naming_the_field() {
        for (doc, field) in [
            (json!({"acrValues": []}), "acrValues"),
            (json!({"acrValues": ["a b"]}), "acrValues"),
            (json!({"acrValues": ["a\"b"]}), "acrValues"),
            (json!({"maxAge": -1}), "maxAge"),
            (json!({"maxAge": 2.5}), "maxAge"),
            (json!({"maxAge": 100_000_000}), "maxAge"),
            (json!({"anonymous": true, "maxAge": 60}), "anonymous"),
            (json!({"anonymous": true, "acrValues": ["mfa"]}), "anonymous"),
        ] {
            let err = Policy::parse(doc.to_string().as_bytes()).unwrap_err();
            assert!(err.starts_with(field), "{doc}: {err}");
        }
        let wrong_type = Policy::parse(br#"{"maxAge": "300"}"#).unwrap_err();
        assert!(wrong_type.contains("invalid type"), "{wrong_type}");
        assert!(Policy::parse(br#"{"acrValues": "mfa"}"#).is_err());
        assert!(Policy::parse(br#"{"acr_values": ["mfa"]}"#).unwrap_err().contains("unknown field `acr_values`"));
    }

    #[test]
    fn dpop_mode_per_function() {
        assert_eq!(policy(json!({"dpop": "required"})).dpop(), Some(DpopMode::Required));
        assert_eq!(policy(json!({"dpop": "off"})).dpop(), Some(DpopMode::Off));
        assert_eq!(policy(json!({})).dpop(), None);
        assert!(Policy::parse(br#"{"dpop": "sometimes"}"#).unwrap_err().contains("sometimes"));
        assert!(Policy::parse(br#"{"anonymous": true, "dpop": "required"}"#).unwrap_err().starts_with("anonymous"));
    }

    fn route(template: &str, path: &str) -> RouteValues {
        crate::route::RouteTemplate::parse(template).unwrap().matches(path).unwrap()
    }

    #[test]
    fn organizations_accept_only_listed_org_ids_and_never_a_token_without_one() {
        let p = policy(json!({"organizations": ["org_9ybsU1dN2dKfDkBi", "org_2"]}));
        assert_eq!(p.check_now(&claims(json!({"org_id": "org_9ybsU1dN2dKfDkBi"}))), Ok(()));
        for refused in
            [json!({"org_id": "org_3"}), json!({}), json!({"org_id": ["org_2"]}), json!({"org_name": "org_2"})]
        {
            assert_eq!(p.check_now(&claims(refused.clone())), scope_error(""), "{refused}");
        }
        assert_eq!(p.check_now(&claims(json!({"org_id": "ORG_2"}))), scope_error(""), "compared exactly");
    }

    #[test]
    fn organization_from_route_must_equal_the_route_value() {
        let p = policy(json!({"organizationFromRoute": "orgId", "scopes": {"all": ["read:orders"]}}));
        let values = route("orgs/{orgId}/orders", "/orgs/org_abc/orders");
        let check = |raw: Value| p.check(&claims(raw), &values, NOW, 30);
        assert_eq!(check(json!({"org_id": "org_abc", "scope": "read:orders"})), Ok(()));
        // Another tenant's token is refused without learning which scopes the function wants.
        assert_eq!(check(json!({"org_id": "org_xyz", "scope": "read:orders"})), scope_error(""));
        assert_eq!(check(json!({"org_id": "org_xyz"})), scope_error(""));
        assert_eq!(check(json!({"scope": "read:orders"})), scope_error(""));
        assert_eq!(check(json!({"org_id": "org_abc"})), scope_error("read:orders"));
        // No route value (an absent optional parameter, or none matched): refused.
        assert_eq!(p.check_now(&claims(json!({"org_id": "org_abc", "scope": "read:orders"}))), scope_error(""));
        let optional = route("orgs/{orgId?}", "/orgs");
        assert_eq!(p.check(&claims(json!({"org_id": "org_abc"})), &optional, NOW, 30), scope_error(""));
    }

    #[test]
    fn organization_list_and_route_binding_both_apply() {
        let p = policy(json!({"organizations": ["org_abc"], "organizationFromRoute": "orgId"}));
        let ok = claims(json!({"org_id": "org_abc"}));
        assert_eq!(p.check(&ok, &route("orgs/{orgId}", "/orgs/org_abc"), NOW, 30), Ok(()));
        let other = claims(json!({"org_id": "org_def"}));
        assert_eq!(p.check(&other, &route("orgs/{orgId}", "/orgs/org_def"), NOW, 30), scope_error(""));
        assert_eq!(p.organization_route_parameter(), Some("orgId"));
        assert_eq!(Policy::default().organization_route_parameter(), None);
    }

    #[test]
    fn claim_rules_refuse_with_403_naming_no_claim_value() {
        let p = policy(json!({"claims": {"https://example.com/roles": {"any": ["admin"]}}, "scopes": {"all": ["a"]}}));
        assert_eq!(p.check_now(&claims(json!({"https://example.com/roles": ["admin"], "scope": "a"}))), Ok(()));
        assert_eq!(p.check_now(&claims(json!({"https://example.com/roles": ["user"], "scope": "a"}))), scope_error(""));
        assert_eq!(p.check_now(&claims(json!({"scope": "a"}))), scope_error(""));
    }

    #[test]
    fn tenant_fields_are_validated_naming_the_field() {
        for (doc, field) in [
            (json!({"organizations": []}), "organizations"),
            (json!({"organizations": [""]}), "organizations"),
            (json!({"organizationFromRoute": ""}), "organizationFromRoute"),
            (json!({"organizationFromRoute": "{orgId}"}), "organizationFromRoute"),
            (json!({"claims": {"x": {"any": []}}}), "claims.x"),
            (json!({"claims": {}}), "claims"),
            (json!({"anonymous": true, "organizations": ["o"]}), "anonymous"),
            (json!({"anonymous": true, "organizationFromRoute": "orgId"}), "anonymous"),
            (json!({"anonymous": true, "claims": {"x": {"equals": 1}}}), "anonymous"),
        ] {
            let err = Policy::parse(doc.to_string().as_bytes()).unwrap_err();
            assert!(err.starts_with(field), "{doc}: {err}");
        }
        assert!(Policy::parse(br#"{"organizations": "org_1"}"#).is_err());
        assert!(Policy::parse(br#"{"organisations": ["org_1"]}"#).unwrap_err().contains("unknown field"));
    }

    #[test]
    fn errors_name_the_field() {
        let unknown = Policy::parse(br#"{"scope": ["a"]}"#).unwrap_err();
        assert!(unknown.contains("unknown field `scope`"), "{unknown}");
        let nested = Policy::parse(br#"{"scopes": {"every": ["a"]}}"#).unwrap_err();
        assert!(nested.contains("every"), "{nested}");
        assert!(Policy::parse(br#"{"clients": []}"#).unwrap_err().starts_with("clients"));
        assert!(Policy::parse(br#"{"scopes": {"all": ["a b"]}}"#).unwrap_err().starts_with("scopes"));
        assert!(Policy::parse(br#"{"scopes": {"all": "read"}}"#).is_err());
    }
}
