//! Tenant-aware authorization through the app: Auth0 Organizations (`organizations`,
//! `organizationFromRoute`) and rules on any claim (`claims`), with tokens shaped as each
//! issuer documents them (Auth0 with `org_id`, Keycloak with `realm_access` /
//! `resource_access`, Okta with an `scp` array and `cid`). The route binding is exercised in
//! the three host modes, since each brings route values its own way (matched from the path in
//! forwarding and proxy mode, the host's `Params` in invocation mode).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use azfn_auth::app::{AppState, UnknownFunction, app};
use azfn_auth::auth::policy::Policy;
use azfn_auth::auth::{Authenticator, Claims};
use azfn_auth::layout::{AppLayout, FunctionSpec, HostMode};
use common::*;
use http::{Request, StatusCode};
use serde_json::{Value, json};

const ORG: &str = "org_9ybsU1dN2dKfDkBi";
const OTHER_ORG: &str = "org_Jd4K1ZbB0Le2QBjc";
const ROUTE: &str = "orgs/{orgId}/orders";
const FORBIDDEN_BODY: &str = "The access token does not grant access to this function";
/// The 403 challenge that names no scope, no organization and no claim value.
const FORBIDDEN_CHALLENGE: &str = concat!(
    r#"Bearer realm="api", error="insufficient_scope", "#,
    r#"error_description="The access token does not grant access to this function""#
);

/// The business handler: what the typed claims say about the organization.
async fn orders(claims: Option<Claims>) -> String {
    match claims.as_ref().and_then(|c| c.organization()) {
        Some(org) => format!("orders of {} ({})", org.id, org.name.unwrap_or("-")),
        None => "orders of nobody".to_owned(),
    }
}

fn build(issuer: &str, mode: HostMode, route: &str, policy: Value) -> Result<Arc<AppState>, UnknownFunction> {
    let mut function = FunctionSpec::http("orders", route, None).unwrap();
    function.policy = Policy::parse(policy.to_string().as_bytes()).unwrap();
    let layout = AppLayout { route_prefix: "api".into(), mode, functions: vec![function] };
    let functions = azfn_auth::functions::builtin().function("orders", orders);
    let auth = Authenticator::new(&auth_config(issuer)).unwrap();
    AppState::with_functions(auth, layout, functions, 1 << 20).map(Arc::new)
}

fn router(issuer: &str, mode: HostMode, policy: Value) -> Router {
    app(build(issuer, mode, ROUTE, policy).unwrap())
}

/// What came back, whichever host mode carried it.
#[derive(Debug)]
struct Outcome {
    status: u16,
    challenge: Option<String>,
    body: String,
}

/// `GET /api/orgs/{org}/orders` with `token`, as `mode` brings it: the request itself
/// (forwarding, proxy) or an invocation envelope whose `Params` carry the route value.
async fn get_orders(router: &Router, mode: HostMode, org: &str, token: &str) -> Outcome {
    let path = format!("/api/orgs/{org}/orders");
    let authorization = format!("Bearer {token}");
    if mode != HostMode::Invocation {
        let request = Request::get(&path).header("authorization", &authorization).body(Body::empty()).unwrap();
        let answer = send(router, request).await;
        let challenge = answer.challenge().map(str::to_owned);
        return Outcome { status: answer.status.as_u16(), challenge, body: answer.body };
    }
    let envelope = json!({
        "Data": {"req": {
            "Url": format!("https://my-app.azurewebsites.net{path}"),
            "Method": "GET",
            "Query": {},
            "Headers": {"Authorization": [authorization], "Host": ["my-app.azurewebsites.net"]},
            "Params": {"orgId": org},
        }},
        "Metadata": {}
    });
    let request =
        Request::post("/orders").header("content-type", "application/json").body(Body::from(envelope.to_string()));
    let answer = send(router, request.unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let result: Value = serde_json::from_str(&answer.body).unwrap();
    let res = &result["Outputs"]["res"];
    Outcome {
        status: res["statusCode"].as_u64().unwrap() as u16,
        challenge: res["headers"]["www-authenticate"].as_str().map(str::to_owned),
        body: res["body"].as_str().unwrap_or_default().to_owned(),
    }
}

const MODES: [HostMode; 3] = [HostMode::Forwarding, HostMode::Proxy, HostMode::Invocation];

/// An Auth0 access token for a user who logged in through an organization, shaped as
/// Auth0's "Work with Tokens and Organizations" shows it (`org_id`; `org_name` when the
/// tenant allows organization names in the Authentication API).
fn auth0_org_claims(issuer: &str, org: Option<&str>) -> Value {
    let now = now();
    let mut claims = json!({
        "iss": issuer,
        "sub": "auth0|602c0dcab993d10073daf680",
        "aud": [AUDIENCE, format!("{issuer}userinfo")],
        "iat": now,
        "exp": now + 600,
        "azp": "0b4rKLBmL5tjHZXvnNIW0aeTMzWIGcgz",
        "scope": "openid profile email read:orders",
    });
    if let Some(org) = org {
        claims["org_id"] = json!(org);
    }
    claims
}

fn assert_forbidden_naming_nothing(outcome: &Outcome, mode: HostMode) {
    assert_eq!(outcome.status, 403, "{mode:?}: {outcome:?}");
    assert_eq!(outcome.challenge.as_deref(), Some(FORBIDDEN_CHALLENGE), "{mode:?}");
    assert_eq!(outcome.body, FORBIDDEN_BODY, "{mode:?}");
}

#[tokio::test]
async fn a_member_of_the_organization_in_the_route_is_served_in_every_host_mode() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let mut claims = auth0_org_claims(&idp.issuer, Some(ORG));
    claims["org_name"] = json!("acme");
    let token = token(&key, &claims);
    for mode in MODES {
        let router = router(&idp.issuer, mode, json!({"organizationFromRoute": "orgId"}));
        let outcome = get_orders(&router, mode, ORG, &token).await;
        assert_eq!((outcome.status, outcome.body.as_str()), (200, "orders of org_9ybsU1dN2dKfDkBi (acme)"), "{mode:?}");
    }
}

#[tokio::test]
async fn another_organizations_token_is_403_naming_no_organization_in_every_host_mode() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let token = token(&key, &auth0_org_claims(&idp.issuer, Some(OTHER_ORG)));
    let policy = json!({"organizationFromRoute": "orgId", "scopes": {"all": ["read:orders"]}});
    for mode in MODES {
        let outcome = get_orders(&router(&idp.issuer, mode, policy.clone()), mode, ORG, &token).await;
        assert_forbidden_naming_nothing(&outcome, mode);
        assert!(!format!("{outcome:?}").contains("org_"), "{mode:?}: {outcome:?}");
    }
}

#[tokio::test]
async fn a_token_without_org_id_never_passes_a_route_binding() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let token = token(&key, &auth0_org_claims(&idp.issuer, None));
    for mode in MODES {
        let router = router(&idp.issuer, mode, json!({"organizationFromRoute": "orgId"}));
        assert_forbidden_naming_nothing(&get_orders(&router, mode, ORG, &token).await, mode);
    }
}

#[tokio::test]
async fn the_route_value_is_compared_exactly() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let token = token(&key, &auth0_org_claims(&idp.issuer, Some(ORG)));
    let router = router(&idp.issuer, HostMode::Forwarding, json!({"organizationFromRoute": "orgId"}));
    for near in ["ORG_9YBSU1DN2DKFDKBI", "org_9ybsU1dN2dKfDkBi%20", "org_9ybsU1dN2dKfDkB"] {
        assert_forbidden_naming_nothing(
            &get_orders(&router, HostMode::Forwarding, near, &token).await,
            HostMode::Forwarding,
        );
    }
    assert_eq!(get_orders(&router, HostMode::Forwarding, ORG, &token).await.status, 200);
}

#[tokio::test]
async fn organizations_lists_the_accepted_org_ids() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let router = router(&idp.issuer, HostMode::Forwarding, json!({"organizations": [ORG, "org_second"]}));
    // The route value does not matter here: only the list binds.
    let member = token(&key, &auth0_org_claims(&idp.issuer, Some(ORG)));
    assert_eq!(get_orders(&router, HostMode::Forwarding, "anything", &member).await.status, 200);
    for refused in [Some(OTHER_ORG), None] {
        let token = token(&key, &auth0_org_claims(&idp.issuer, refused));
        assert_forbidden_naming_nothing(
            &get_orders(&router, HostMode::Forwarding, ORG, &token).await,
            HostMode::Forwarding,
        );
    }
}

#[tokio::test]
async fn organization_from_route_naming_a_missing_parameter_is_a_start_up_error() {
    let idp = Idp::start(&[]).await;
    let Err(err) = build(&idp.issuer, HostMode::Forwarding, "orders/{id}", json!({"organizationFromRoute": "orgId"}))
    else {
        panic!("a route without {{orgId}} must be refused at start-up");
    };
    assert_eq!(err.to_string(), "orders/auth.json: organizationFromRoute: the route has no parameter {orgId}");
    assert!(
        build(&idp.issuer, HostMode::Forwarding, "orgs/{ORGID}/x", json!({"organizationFromRoute": "orgId"})).is_ok()
    );
}

#[tokio::test]
async fn auth0_roles_in_a_namespaced_claim_can_be_required() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let policy = json!({"claims": {"https://example.com/roles": {"any": ["orders-admin", "support"]}}});
    let router = router(&idp.issuer, HostMode::Forwarding, policy);
    let mut claims = auth0_org_claims(&idp.issuer, Some(ORG));
    claims["https://example.com/roles"] = json!(["support"]);
    assert_eq!(get_orders(&router, HostMode::Forwarding, ORG, &token(&key, &claims)).await.status, 200);
    claims["https://example.com/roles"] = json!(["viewer"]);
    let outcome = get_orders(&router, HostMode::Forwarding, ORG, &token(&key, &claims)).await;
    assert_forbidden_naming_nothing(&outcome, HostMode::Forwarding);
}

/// A Keycloak access token (realm `orders`, client `orders-api`), as Keycloak issues it.
fn keycloak_claims(issuer: &str, realm_roles: &[&str], client_roles: &[&str], email_verified: bool) -> Value {
    let now = now();
    json!({
        "exp": now + 300,
        "iat": now,
        "auth_time": now - 5,
        "jti": "onrtac:6f1b2f0e-8d0c-4e4b-a9a3-0c5f3b6f7a10",
        "iss": issuer,
        "aud": [AUDIENCE, "account"],
        "sub": "7c1f7e0a-3d1b-4a43-9c55-1b1c0b3f2e11",
        "typ": "Bearer",
        "azp": "orders-spa",
        "sid": "0b1c6f7e-2f3a-4d58-8f0e-6c1d2e3f4a5b",
        "acr": "1",
        "realm_access": {"roles": realm_roles},
        "resource_access": {"orders-api": {"roles": client_roles}, "account": {"roles": ["manage-account", "view-profile"]}},
        "scope": "openid email profile",
        "email_verified": email_verified,
        "preferred_username": "alice",
        "email": "alice@example.com"
    })
}

#[tokio::test]
async fn keycloak_realm_and_client_roles_are_read_through_json_pointers() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let policy = json!({"claims": {
        "/realm_access/roles": {"all": ["orders-reader"]},
        "/resource_access/orders-api/roles": {"any": ["export", "admin"]},
        "email_verified": {"equals": true},
    }});
    let router = router(&idp.issuer, HostMode::Forwarding, policy);
    let call = |claims: Value| {
        let token = token(&key, &claims);
        let router = router.clone();
        async move { get_orders(&router, HostMode::Forwarding, ORG, &token).await }
    };
    let reader = &["offline_access", "orders-reader", "uma_authorization"];
    assert_eq!(call(keycloak_claims(&idp.issuer, reader, &["export"], true)).await.status, 200);
    for (claims, what) in [
        (keycloak_claims(&idp.issuer, &["offline_access"], &["export"], true), "no realm role"),
        (keycloak_claims(&idp.issuer, reader, &["view"], true), "no client role"),
        (keycloak_claims(&idp.issuer, reader, &["export"], false), "email not verified"),
    ] {
        let outcome = call(claims).await;
        assert_eq!(outcome.status, 403, "{what}");
        assert_eq!(outcome.challenge.as_deref(), Some(FORBIDDEN_CHALLENGE), "{what}");
    }
    let mut no_client = keycloak_claims(&idp.issuer, reader, &["export"], true);
    no_client["resource_access"].as_object_mut().unwrap().remove("orders-api");
    assert_eq!(call(no_client).await.status, 403, "a missing claim fails the rule");
}

/// An Okta custom authorization server access token, as Okta documents it: `scp` is an
/// array, the client is `cid`, the user `uid`.
fn okta_claims(issuer: &str, scp: &[&str]) -> Value {
    let now = now();
    json!({
        "ver": 1,
        "jti": "AT.0mP4JKAZX1iACIT4vbEDF7LpvDVjxypPMf0D7uX39RE",
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": "alice@example.com",
        "iat": now,
        "exp": now + 3600,
        "cid": "0oa1ab2c3D4E5F6G7h8i",
        "uid": "00uid4BxXw6I6TV4m0g3",
        "scp": scp,
        "auth_time": now - 60,
        "groups": ["Everyone", "Orders"]
    })
}

#[tokio::test]
async fn okta_scp_arrays_cid_and_groups_are_enforced() {
    let key = rsa_key("rsa-a.pem", "key-a");
    let idp = Idp::start(&[&key]).await;
    let policy = json!({
        "scopes": {"all": ["orders.read"]},
        "clients": ["0oa1ab2c3D4E5F6G7h8i"],
        "claims": {"groups": {"any": ["Orders"]}},
    });
    let router = router(&idp.issuer, HostMode::Forwarding, policy);
    let ok = token(&key, &okta_claims(&idp.issuer, &["openid", "orders.read"]));
    assert_eq!(get_orders(&router, HostMode::Forwarding, ORG, &ok).await.status, 200);

    let no_scope = token(&key, &okta_claims(&idp.issuer, &["openid"]));
    let outcome = get_orders(&router, HostMode::Forwarding, ORG, &no_scope).await;
    assert_eq!(outcome.status, 403);
    assert!(outcome.challenge.unwrap().ends_with(r#"scope="orders.read""#));

    let mut other_client = okta_claims(&idp.issuer, &["openid", "orders.read"]);
    other_client["cid"] = json!("0oa9zz9zz9ZZ9ZZ9zz9z");
    let outcome = get_orders(&router, HostMode::Forwarding, ORG, &token(&key, &other_client)).await;
    assert_forbidden_naming_nothing(&outcome, HostMode::Forwarding);

    let mut other_group = okta_claims(&idp.issuer, &["openid", "orders.read"]);
    other_group["groups"] = json!(["Everyone"]);
    let outcome = get_orders(&router, HostMode::Forwarding, ORG, &token(&key, &other_group)).await;
    assert_forbidden_naming_nothing(&outcome, HostMode::Forwarding);
}

#[test]
fn a_bad_claim_rule_is_a_start_up_error_naming_file_and_field() {
    let root = std::env::temp_dir().join(format!("azfn-auth-tenants-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("orders")).unwrap();
    std::fs::write(root.join("orders/function.json"), include_str!("../api-a/function.json")).unwrap();
    for (doc, expected) in [
        (json!({"claims": {"/realm_access/roles": {"any": []}}}), "claims./realm_access/roles: any: an empty list"),
        (json!({"claims": {"/a~2": {"equals": 1}}}), "claims./a~2: not a JSON Pointer"),
        (json!({"claims": {"roles": {"oneOf": ["a"]}}}), "claims.roles: unknown rule `oneOf`"),
    ] {
        std::fs::write(root.join("orders/auth.json"), doc.to_string()).unwrap();
        let err = AppLayout::load(&root).unwrap_err().to_string();
        assert!(err.contains("auth.json") && err.contains(expected), "{doc}: {err}");
    }
    let _ = std::fs::remove_dir_all(&root);
}
