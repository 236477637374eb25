//! The OpenAPI document (`--openapi`) of the three app roots in the repository, checked by a
//! real validator (PyPI `openapi-spec-validator`, pinned in scripts/openapi-validator/
//! requirements.txt, installed into its .venv by scripts/test.sh or here) and by what it must
//! say: typed route parameters, the function key, scopes per operation, anonymous functions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "../examples/orders/orders.rs"]
#[allow(dead_code)]
mod orders;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

use azfn_auth::config::{AuthConfig, KeySource};
use azfn_auth::layout::AppLayout;
use serde_json::{Value, json};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The validator's venv python, installed on first use (pip, pinned requirements).
fn validator() -> PathBuf {
    static INSTALL: Once = Once::new();
    let dir = repo().join("scripts").join("openapi-validator");
    let python = dir.join(".venv").join("bin").join("python");
    INSTALL.call_once(|| {
        if python.is_file()
            && Command::new(&python).args(["-c", "import openapi_spec_validator"]).status().unwrap().success()
        {
            return;
        }
        let ok = Command::new("python3").arg("-m").arg("venv").arg(dir.join(".venv")).status().unwrap().success()
            && Command::new(&python)
                .args(["-m", "pip", "install", "-q", "-r"])
                .arg(dir.join("requirements.txt"))
                .status()
                .unwrap()
                .success();
        assert!(
            ok,
            "installing openapi-spec-validator into {} failed (needs python3 with venv and pip)",
            dir.display()
        );
    });
    python
}

/// Runs the validator on `document`; panics with its complaint.
fn validate(name: &str, document: &Value) {
    let file = std::env::temp_dir().join(format!("azfn-openapi-{name}-{}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_string_pretty(document).unwrap()).unwrap();
    let output = Command::new(validator()).args(["-m", "openapi_spec_validator"]).arg(&file).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && said.contains("OK"), "{name}: {said}");
    let _ = std::fs::remove_file(file);
}

fn auth0() -> AuthConfig {
    let jwks = "https://tenant.eu.auth0.com/.well-known/jwks.json".parse().unwrap();
    AuthConfig::new("https://tenant.eu.auth0.com/", KeySource::JwksUri(jwks), vec!["https://orders".into()])
}

fn document(root: &str, auth: Option<&AuthConfig>) -> Value {
    let layout = AppLayout::load(&repo().join(root)).unwrap();
    azfn_auth::openapi::document(&layout, auth, root)
}

#[test]
fn every_app_roots_document_is_valid_openapi() {
    let entra =
        AuthConfig::new("https://login.microsoftonline.com/t/v2.0", KeySource::Discovery, vec!["api://x".into()]);
    for (name, root, auth) in [
        ("handler", ".", Some(auth0())),
        ("handler-no-settings", ".", None),
        ("orders", "examples/orders", Some(auth0())),
        ("orders-entra", "examples/orders", Some(entra)),
        ("orders-entra-multi-tenant", "examples/orders", Some(multi_tenant())),
        ("mcp", "examples/mcp", Some(auth0())),
    ] {
        validate(name, &document(root, auth.as_ref()));
    }
}

fn multi_tenant() -> AuthConfig {
    let issuer = "https://login.microsoftonline.com/{tenantid}/v2.0";
    let mut config = AuthConfig::new(issuer, KeySource::Discovery, vec!["api://x".into()]);
    config.tenants = Some(azfn_auth::config::TenantAllowList::Any);
    config
}

#[test]
fn a_multi_tenant_issuer_is_described_by_the_discovery_document_the_handler_reads() {
    let doc = document("examples/orders", Some(&multi_tenant()));
    assert_eq!(
        doc["components"]["securitySchemes"]["accessToken"]["openIdConnectUrl"],
        "https://login.microsoftonline.com/organizations/v2.0/.well-known/openid-configuration"
    );
}

#[test]
fn routes_methods_keys_and_scopes_are_described() {
    let doc = document("examples/orders", Some(&auth0()));
    let get = &doc["paths"]["/api/orders/{id}"]["get"];
    assert_eq!(get["parameters"][0]["schema"], json!({"type": "integer", "format": "int32"}), "{get}");
    // orders-get: function key AND a token with read:orders (scopes.any: one alternative each).
    assert_eq!(get["security"], json!([{"functionKey": [], "accessToken": ["read:orders"]}]));
    assert!(get["responses"]["401"].is_object() && get["responses"]["403"].is_object(), "{get}");
    // orders-create: a permission, which OAuth scopes cannot express, is in the description.
    let create = &doc["paths"]["/api/orders"]["post"];
    assert!(create["description"].as_str().unwrap().contains("create:orders"), "{create}");
    // files: anonymous, catch-all: no security, and the path without the optional rest too.
    assert_eq!(doc["paths"]["/api/files/{path}"]["get"]["security"], json!([]));
    assert!(doc["paths"]["/api/files"]["get"].is_object(), "{}", doc["paths"]);
    // Non-HTTP triggers are not operations.
    assert!(!doc["paths"].as_object().unwrap().keys().any(|p| p.contains("cleanup")));
    // Auth0: client credentials at the tenant's token endpoint, with the scopes the policies use.
    let scheme = &doc["components"]["securitySchemes"]["accessToken"];
    assert_eq!(scheme["flows"]["clientCredentials"]["tokenUrl"], "https://tenant.eu.auth0.com/oauth/token");
    assert!(scheme["flows"]["clientCredentials"]["scopes"]["read:orders"].is_string(), "{scheme}");
}

#[test]
fn the_mcp_example_says_what_its_bulk_functions_take() {
    let doc = document("examples/mcp", Some(&auth0()));
    let import = &doc["paths"]["/orders/import"]["post"];
    assert!(import["description"].as_str().unwrap().contains("536870912 bytes"), "{import}");
    // authLevel anonymous: no function key, still a token.
    assert_eq!(doc["paths"]["/mcp"]["post"]["security"], json!([{"accessToken": []}]));
    assert_eq!(doc["paths"]["/.well-known/oauth-protected-resource/mcp"]["get"]["security"], json!([]));
}

#[test]
fn the_binary_prints_it_with_openapi() {
    let output = Command::new(env!("CARGO_BIN_EXE_handler"))
        .arg("--openapi")
        .env_clear()
        .env("FUNCTIONS_APP_ROOT_PATH", repo())
        .env("AUTH0_DOMAIN", "tenant.eu.auth0.com")
        .env("AUTH_AUDIENCE", "https://api-a")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["paths"]["/api/api-a"]["get"]["security"], json!([{"functionKey": [], "accessToken": []}]));
    // Nothing else on stdout: the document pipes straight into a file.
    assert!(output.stderr.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// A folder routed to `openapi.json` with no handler of its own serves the document, in
/// every host mode, behind its own `auth.json` (anonymous in examples/orders); it is valid,
/// names the configured issuer and does not list itself.
#[tokio::test]
async fn a_folder_routed_to_openapi_json_serves_the_document() {
    use azfn_auth::layout::HostMode;
    use azfn_auth::testing::{TestApp, TestIssuer};
    let issuer = TestIssuer::new();
    let root = repo().join("examples/orders");
    for mode in [HostMode::Forwarding, HostMode::Proxy, HostMode::Invocation] {
        let app = TestApp::builder(&root).issuer(&issuer).mode(mode).build(orders::functions()).unwrap();
        let answer = app.get("/api/openapi.json").send().await;
        assert_eq!(answer.status.as_u16(), 200, "{mode:?}: {}", answer.text());
        assert!(answer.headers["content-type"].to_str().unwrap().starts_with("application/json"), "{mode:?}");
        let served: Value = answer.json().unwrap();
        assert!(served["paths"].get("/api/orders").is_some(), "{served}");
        assert!(served["paths"].get("/api/openapi.json").is_none(), "the document does not describe itself");
        let url = served["components"]["securitySchemes"]["accessToken"]["openIdConnectUrl"].as_str().unwrap();
        assert!(url.starts_with(issuer.issuer().trim_end_matches('/')), "{url}");
        if mode == HostMode::Forwarding {
            validate("orders-served", &served);
        }
        let post = app.post("/api/openapi.json").send().await;
        // function.json allows GET only: the host routes no other method there.
        assert_eq!(post.status.as_u16(), 404, "{mode:?}");
    }
}

/// Without `{"anonymous": true}` the document is behind the token check like any function:
/// nothing the folder does not say opens it.
#[tokio::test]
async fn the_served_document_follows_its_folders_policy() {
    use azfn_auth::testing::{TestApp, TestIssuer};
    let root = std::env::temp_dir().join(format!("azfn-openapi-policy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    common::copy_app_root(&repo().join("examples/orders"), &root);
    std::fs::write(root.join("openapi/auth.json"), r#"{ "scopes": { "any": ["read:orders"] } }"#).unwrap();
    let issuer = TestIssuer::new();
    let app = TestApp::builder(&root).issuer(&issuer).build(orders::functions()).unwrap();
    let anonymous = app.get("/api/openapi.json").send().await;
    assert_eq!(anonymous.status.as_u16(), 401, "{}", anonymous.text());
    assert!(anonymous.header("www-authenticate").is_some_and(|c| c.starts_with("Bearer")));
    let reader = issuer.token().scope("read:orders").sign();
    let allowed = app.get("/api/openapi.json").bearer(&reader).send().await;
    assert_eq!(allowed.status.as_u16(), 200, "{}", allowed.text());
    let _ = std::fs::remove_dir_all(&root);
}
