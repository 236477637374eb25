//! RFC 9728 OAuth 2.0 Protected Resource Metadata (optional, off unless `AUTH_RESOURCE` is
//! set): a JSON document telling clients which authorization servers issue tokens for this
//! API and how to present them, advertised from every challenge (`resource_metadata`).
//!
//! Served without authentication at the RFC location (`/.well-known/oauth-protected-resource`
//! followed by the resource's path) and, so the Functions host can route to it, at
//! `/<routePrefix>/.well-known/oauth-protected-resource` through a function folder whose
//! `route` is `.well-known/oauth-protected-resource`.

use reqwest::Url;
use serde_json::json;

use crate::layout::AppLayout;

/// The route a function folder uses to expose the document through the host.
pub const ROUTE: &str = ".well-known/oauth-protected-resource";

/// Whether a function folder's `route` exposes the document: the bare
/// `.well-known/oauth-protected-resource`, or that followed by the resource's path (RFC 9728
/// §3.1; with `routePrefix` `""` that is exactly where clients look). Without a resource,
/// any route under `.well-known/oauth-protected-resource` counts, so start-up can say
/// `AUTH_RESOURCE` is missing.
pub fn is_route(route: &str, resource: Option<&Url>) -> bool {
    let route = route.trim_matches('/');
    let Some(rest) =
        route.get(..ROUTE.len()).filter(|start| start.eq_ignore_ascii_case(ROUTE)).map(|_| &route[ROUTE.len()..])
    else {
        return false;
    };
    match resource {
        _ if rest.is_empty() => true,
        None => rest.starts_with('/'),
        Some(resource) => rest.eq_ignore_ascii_case(resource.path().trim_end_matches('/')),
    }
}

/// The published document and where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceMetadata {
    /// The JSON document.
    pub document: String,
    /// URL advertised in challenges.
    pub url: String,
    /// Request paths (lower-case) answered with the document.
    pub paths: Vec<String>,
}

impl ResourceMetadata {
    /// Builds the document for `resource`, the given authorization servers (issuers) and the
    /// scopes the policies use.
    pub fn new(resource: &Url, issuers: &[String], layout: &AppLayout) -> Self {
        let mut scopes: Vec<&str> = layout
            .functions
            .iter()
            .filter_map(|f| match &f.policy {
                crate::auth::policy::Policy::Token(p) => Some(p.scopes.all.iter().chain(&p.scopes.any)),
                _ => None,
            })
            .flatten()
            .map(String::as_str)
            .collect();
        scopes.sort_unstable();
        scopes.dedup();
        let mut document = json!({
            "resource": resource.as_str(),
            "authorization_servers": issuers,
            "bearer_methods_supported": ["header"],
        });
        if !scopes.is_empty() {
            document["scopes_supported"] = json!(scopes);
        }

        let origin = resource.origin().ascii_serialization();
        let resource_path = resource.path().trim_end_matches('/');
        let rfc_path = format!("/{ROUTE}{resource_path}");
        let under_prefix = |path: &str| {
            if layout.route_prefix.is_empty() { path.to_owned() } else { format!("/{}{path}", layout.route_prefix) }
        };
        let prefixed = under_prefix(&format!("/{ROUTE}"));
        let prefixed_rfc = under_prefix(&rfc_path);
        // Under the host only a function route is reachable: advertise the one a folder
        // routes, the RFC's own location (`.well-known/oauth-protected-resource/<path>`,
        // which is where clients look first) before the bare one.
        let routes = |wanted: &str| {
            layout
                .functions
                .iter()
                .any(|f| f.route.as_ref().is_some_and(|r| r.text().trim_matches('/').eq_ignore_ascii_case(wanted)))
        };
        let url = if !resource_path.is_empty() && routes(&format!("{ROUTE}{resource_path}")) {
            format!("{origin}{prefixed_rfc}")
        } else if routes(ROUTE) {
            format!("{origin}{prefixed}")
        } else {
            format!("{origin}{rfc_path}")
        };
        let mut paths = vec![rfc_path.to_ascii_lowercase(), prefixed, prefixed_rfc.to_ascii_lowercase()];
        paths.dedup();
        Self { document: document.to_string(), url, paths }
    }

    /// True when `path` is one of the document's locations.
    pub fn serves(&self, path: &str) -> bool {
        let path = path.strip_suffix('/').unwrap_or(path);
        self.paths.iter().any(|p| p.eq_ignore_ascii_case(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::HostMode;

    #[test]
    fn document_lists_issuers_and_locations() {
        let layout = AppLayout { route_prefix: "api".into(), mode: HostMode::Forwarding, functions: vec![] };
        let resource = Url::parse("https://app.example.net/api").unwrap();
        let meta = ResourceMetadata::new(&resource, &["https://t.auth0.com/".to_owned()], &layout);
        let doc: serde_json::Value = serde_json::from_str(&meta.document).unwrap();
        assert_eq!(doc["resource"], "https://app.example.net/api");
        assert_eq!(doc["authorization_servers"], json!(["https://t.auth0.com/"]));
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
        assert_eq!(meta.url, "https://app.example.net/.well-known/oauth-protected-resource/api");
        assert!(meta.serves("/.well-known/oauth-protected-resource/api"));
        assert!(meta.serves("/api/.well-known/oauth-protected-resource"));
        assert!(!meta.serves("/api/api-a"));
    }

    #[test]
    fn a_folder_at_the_rfc_location_is_advertised() {
        let resource = Url::parse("https://app.example.net/mcp").unwrap();
        let mut function =
            crate::layout::FunctionSpec::http("prm", ".well-known/oauth-protected-resource/mcp", None).unwrap();
        function.policy = crate::auth::policy::Policy::Anonymous;
        let layout = AppLayout { route_prefix: String::new(), mode: HostMode::Proxy, functions: vec![function] };
        let meta = ResourceMetadata::new(&resource, &["https://t.auth0.com/".to_owned()], &layout);
        assert_eq!(meta.url, "https://app.example.net/.well-known/oauth-protected-resource/mcp");
        assert!(meta.serves("/.well-known/oauth-protected-resource/mcp"));
        assert!(meta.serves("/.well-known/oauth-protected-resource"));
    }

    #[test]
    fn metadata_routes_are_the_bare_one_or_the_resource_path() {
        let resource = Url::parse("https://app.example.net/mcp").unwrap();
        assert!(is_route(".well-known/oauth-protected-resource", Some(&resource)));
        assert!(is_route("/.well-known/OAuth-Protected-Resource/MCP/", Some(&resource)));
        assert!(!is_route(".well-known/oauth-protected-resource/other", Some(&resource)));
        assert!(!is_route(".well-known/oauth-protected-resourcex", Some(&resource)));
        assert!(is_route(".well-known/oauth-protected-resource/mcp", None));
        assert!(!is_route("mcp", Some(&resource)));
    }
}
