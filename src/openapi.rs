//! An OpenAPI 3.1 document built from the app root, for client teams: every HTTP function's
//! route (parameters typed from their constraints), methods, the function key where
//! `authLevel` asks for one, the OAuth scheme of the configured issuer and each operation's
//! scopes and permissions from `auth.json`, and the 401/403 answers the handler gives.
//! `handler --openapi` (or any app's binary) prints it, and a function folder routed to
//! [`ROUTE`] with no handler of its own serves it (built once at start-up; nothing here
//! runs per request).

use serde_json::{Map, Value, json};

use crate::auth::policy::Policy;
use crate::auth::tenant;
use crate::config::{AuthConfig, IssuerConfig, KeySource};
use crate::layout::{AppLayout, FunctionSpec};
use crate::metadata;

/// Methods a function without a `methods` list answers (the host routes every method).
const ALL_METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The route of a function folder that serves the document (under the host's route
/// prefix: `https://<app>/api/openapi.json`).
pub const ROUTE: &str = "openapi.json";

/// Whether a function's `route` is [`ROUTE`].
pub fn is_route(route: &str) -> bool {
    route.trim_matches('/').eq_ignore_ascii_case(ROUTE)
}

/// The document for `layout`. `auth`: the configured issuers (their OAuth scheme), when
/// the settings are at hand; without them a generic JWT bearer scheme stands in.
pub fn document(layout: &AppLayout, auth: Option<&AuthConfig>, title: &str) -> Value {
    document_for(layout, auth.and_then(|a| a.issuers.first()), title)
}

/// [`document`] with the scheme of `issuer` (the first configured one).
pub fn document_for(layout: &AppLayout, issuer: Option<&IssuerConfig>, title: &str) -> Value {
    let mut scopes: Vec<&str> = layout.functions.iter().flat_map(|f| policy_scopes(&f.policy)).collect();
    scopes.sort_unstable();
    scopes.dedup();
    let mut schemes = Map::new();
    schemes.insert(
        "functionKey".into(),
        json!({"type": "apiKey", "in": "header", "name": "x-functions-key",
               "description": "The function's key (also accepted as the `code` query parameter), checked by the Functions host"}),
    );
    schemes.insert(TOKEN_SCHEME.into(), token_scheme(issuer, &scopes));

    let mut paths = Map::new();
    // The folder that serves this document is not part of the API it describes.
    let described = |f: &&FunctionSpec| f.is_http() && !f.route.as_ref().is_some_and(|r| is_route(r.text()));
    for function in layout.functions.iter().filter(described) {
        for (variant, (path, parameters)) in paths_of(layout, function).into_iter().enumerate() {
            let entry = paths.entry(path).or_insert_with(|| json!({}));
            for method in methods_of(function) {
                let mut operation = operation(function, &parameters, method);
                // One id per operation: the shorter paths of optional parameters get a suffix.
                let id = match variant {
                    0 => format!("{}-{method}", function.name),
                    n => format!("{}-{method}-{n}", function.name),
                };
                operation["operationId"] = json!(id);
                entry[method] = operation;
            }
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": "1.0.0",
            "description": "Generated from the app's function.json and auth.json files by azfn-auth. Every operation needs a valid access token unless it says otherwise; refusals follow RFC 6750 (WWW-Authenticate)."
        },
        "paths": paths,
        "components": {
            "securitySchemes": schemes,
            "schemas": {
                "Problem": {
                    "type": "object",
                    "description": "RFC 9457 problem details",
                    "properties": {
                        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "invalid-params": {"type": "array", "items": {"type": "object", "properties": {
                            "name": {"type": "string"}, "reason": {"type": "string"}}}}
                    }
                }
            },
            "responses": {
                "Unauthorized": {
                    "description": "No token, or a token that is not valid for this API (RFC 6750: `WWW-Authenticate` says which)",
                    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                    "content": {"text/plain": {"schema": {"type": "string"}}}
                },
                "Forbidden": {
                    "description": "A valid token without the scopes or permissions this operation requires (`insufficient_scope`)",
                    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                    "content": {"text/plain": {"schema": {"type": "string"}}}
                },
                "BadRequest": {
                    "description": "A route value or request that does not fit",
                    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
                }
            }
        }
    })
}

/// The name of the OAuth scheme in `securitySchemes`.
const TOKEN_SCHEME: &str = "accessToken";

/// The first configured issuer's scheme: OAuth 2.0 client credentials at Auth0's token
/// endpoint, OpenID Connect discovery for the others, a plain JWT bearer without settings.
fn token_scheme(issuer: Option<&IssuerConfig>, scopes: &[&str]) -> Value {
    let Some(issuer) = issuer else {
        return json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"});
    };
    let base = issuer.issuer.trim_end_matches('/');
    let auth0 =
        matches!(&issuer.keys, KeySource::JwksUri(uri) if uri.host_str().is_some_and(|h| h.ends_with(".auth0.com")));
    if auth0 {
        let scopes: Map<String, Value> = scopes.iter().map(|s| ((*s).to_owned(), json!(""))).collect();
        json!({
            "type": "oauth2",
            "description": format!("Access tokens from {}/ (request them with the API's identifier as `audience`)", base),
            "flows": {"clientCredentials": {"tokenUrl": format!("{base}/oauth/token"), "scopes": scopes}}
        })
    } else {
        // Where the handler itself reads it (a `{tenantid}` issuer's under `organizations`).
        json!({"type": "openIdConnect", "openIdConnectUrl": tenant::discovery_url(&issuer.issuer)})
    }
}

fn policy_scopes(policy: &Policy) -> Vec<&str> {
    match policy {
        Policy::Token(p) => p.scopes.all.iter().chain(&p.scopes.any).map(String::as_str).collect(),
        _ => Vec::new(),
    }
}

fn methods_of(function: &FunctionSpec) -> Vec<&'static str> {
    match &function.methods {
        None => ALL_METHODS.to_vec(),
        Some(methods) => ALL_METHODS
            .iter()
            .chain(&["head", "options"])
            .copied()
            .filter(|m| methods.iter().any(|x| x.as_str().eq_ignore_ascii_case(m)))
            .collect(),
    }
}

/// A route parameter as the template declares it.
#[derive(Debug, Clone, PartialEq)]
struct Parameter {
    name: String,
    constraints: Vec<String>,
    optional: bool,
    catch_all: bool,
}

/// OpenAPI paths for a function: the template with `{name}` parameters, and for each trailing
/// optional parameter (or catch-all, or one with a default) also the path without it, since
/// OpenAPI path parameters are always required.
fn paths_of(layout: &AppLayout, function: &FunctionSpec) -> Vec<(String, Vec<Parameter>)> {
    let Some(route) = &function.route else { return Vec::new() };
    let prefix = if layout.route_prefix.is_empty() { String::new() } else { format!("/{}", layout.route_prefix) };
    let mut segments: Vec<(String, Vec<Parameter>)> = Vec::new();
    for segment in route.segment_texts() {
        let (text, parameters) = segment_of(segment);
        segments.push((text, parameters));
    }
    let mut paths = Vec::new();
    let mut keep = segments.len();
    loop {
        let path =
            format!("{prefix}/{}", segments[..keep].iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>().join("/"));
        let parameters = segments[..keep].iter().flat_map(|(_, p)| p.clone()).collect();
        paths.push((path, parameters));
        // Drop the last segment while it is one optional parameter alone; from one ending in
        // an optional parameter after a period (`{name}.{ext?}`), drop `.{ext}`.
        match segments[..keep].last() {
            Some((_, p)) if p.len() == 1 && (p[0].optional || p[0].catch_all) => keep -= 1,
            Some((text, p)) if p.len() > 1 && p[p.len() - 1].optional => {
                let Some(shorter) = text.strip_suffix(&format!(".{{{}}}", p[p.len() - 1].name)) else { break };
                segments[keep - 1] = (shorter.to_owned(), p[..p.len() - 1].to_vec());
            }
            _ => break,
        }
    }
    paths
}

/// A template segment as an OpenAPI path segment and its parameters. The template was
/// validated at start-up (src/route.rs); `{{` / `}}` are literal braces.
fn segment_of(segment: &str) -> (String, Vec<Parameter>) {
    let mut text = String::new();
    let mut parameters = Vec::new();
    let mut rest = segment;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("{{") || rest.starts_with("}}") {
            text.push(c);
            rest = &rest[2..];
        } else if c == '{' {
            let end = parameter_end(rest).unwrap_or(rest.len());
            let parameter = parameter_of(&rest[1..end.saturating_sub(1).max(1)]);
            text.push_str(&format!("{{{}}}", parameter.name));
            parameters.push(parameter);
            rest = &rest[end..];
        } else {
            text.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    (text, parameters)
}

/// Byte index just past the `}` that closes the parameter starting at `text[0]` (`{`),
/// skipping doubled braces inside constraints.
fn parameter_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'}' if bytes.get(i + 1) == Some(&b'}') => i += 2,
            b'{' if bytes.get(i + 1) == Some(&b'{') => i += 2,
            b'}' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// `*rest`, `id:int:min(1)`, `id?`, `id=5` → a [`Parameter`].
fn parameter_of(inner: &str) -> Parameter {
    let catch_all = inner.starts_with('*');
    let inner = inner.trim_start_matches('*');
    // Constraint arguments may contain ':', '?' and '=' (regexes): split on ':' outside parentheses.
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in inner.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    let mut name = parts[0].to_owned();
    let mut constraints: Vec<String> = parts[1..].iter().map(|c| (*c).to_owned()).collect();
    // The last part may end in `?` (optional) or `=default`.
    let mut optional = false;
    let last = constraints.last_mut().unwrap_or(&mut name);
    if let Some(stripped) = last.strip_suffix('?').filter(|s| !s.ends_with('\\')) {
        *last = stripped.to_owned();
        optional = true;
    } else if let Some((before, _default)) = split_default(last) {
        *last = before;
        optional = true;
    }
    Parameter { name, constraints, optional, catch_all }
}

/// `int=5` → `int` (a default makes the value optional); `=` inside parentheses is not one.
fn split_default(text: &str) -> Option<(String, String)> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '=' if depth == 0 => return Some((text[..i].to_owned(), text[i + 1..].to_owned())),
            _ => {}
        }
    }
    None
}

/// The JSON Schema of a route value from its constraints (.NET's inline constraints).
fn schema_of(parameter: &Parameter) -> Value {
    let mut schema = Map::new();
    schema.insert("type".into(), json!("string"));
    for constraint in &parameter.constraints {
        let (name, argument) = match constraint.split_once('(') {
            Some((name, rest)) => (name.to_ascii_lowercase(), rest.strip_suffix(')').unwrap_or(rest).to_owned()),
            None => (constraint.to_ascii_lowercase(), String::new()),
        };
        let numbers: Vec<i64> = argument.split(',').filter_map(|n| n.trim().parse().ok()).collect();
        match (name.as_str(), numbers.as_slice()) {
            ("int", _) => {
                schema.insert("type".into(), json!("integer"));
                schema.insert("format".into(), json!("int32"));
            }
            ("long", _) => {
                schema.insert("type".into(), json!("integer"));
                schema.insert("format".into(), json!("int64"));
            }
            ("bool", _) => {
                schema.insert("type".into(), json!("boolean"));
            }
            ("double" | "float" | "decimal", _) => {
                schema.insert("type".into(), json!("number"));
            }
            ("guid", _) => {
                schema.insert("format".into(), json!("uuid"));
            }
            ("datetime", _) => {
                schema.insert("format".into(), json!("date-time"));
            }
            ("alpha", _) => {
                schema.insert("pattern".into(), json!("^[A-Za-z]+$"));
            }
            ("minlength", [n]) => {
                schema.insert("minLength".into(), json!(n));
            }
            ("maxlength", [n]) => {
                schema.insert("maxLength".into(), json!(n));
            }
            ("length", [n]) => {
                schema.insert("minLength".into(), json!(n));
                schema.insert("maxLength".into(), json!(n));
            }
            ("length", [a, b]) => {
                schema.insert("minLength".into(), json!(a));
                schema.insert("maxLength".into(), json!(b));
            }
            ("min", [n]) => {
                schema.insert("minimum".into(), json!(n));
            }
            ("max", [n]) => {
                schema.insert("maximum".into(), json!(n));
            }
            ("range", [a, b]) => {
                schema.insert("minimum".into(), json!(a));
                schema.insert("maximum".into(), json!(b));
            }
            ("regex", _) => {
                // .NET regex syntax, matched case-insensitively by the host.
                schema.insert("pattern".into(), json!(argument.replace("{{", "{").replace("}}", "}")));
            }
            _ => {}
        }
    }
    if matches!(schema.get("type"), Some(Value::String(t)) if t != "string") {
        schema.remove("pattern");
    }
    Value::Object(schema)
}

fn operation(function: &FunctionSpec, parameters: &[Parameter], _method: &str) -> Value {
    let metadata = function.route.as_ref().is_some_and(|r| metadata::is_route(r.text(), None));
    let parameters: Vec<Value> = parameters
        .iter()
        .map(|p| {
            let mut parameter = json!({"name": p.name, "in": "path", "required": true, "schema": schema_of(p)});
            if p.catch_all {
                parameter["description"] = json!("The rest of the path, slashes included");
            }
            parameter
        })
        .collect();
    let key = function.auth_level.eq_ignore_ascii_case("function") || function.auth_level.eq_ignore_ascii_case("admin");
    let mut requirement = Map::new();
    if key {
        requirement.insert("functionKey".into(), json!([]));
    }
    // Alternatives (OR): with `scopes.any`, one requirement per scope of it, each with all
    // of `scopes.all`; the function key is in each.
    let mut requirements = Vec::new();
    let mut responses = Map::new();
    responses.insert("200".into(), json!({"description": "The function's answer"}));
    let mut description = Vec::new();
    match &function.policy {
        // The RFC 9728 document is served without a token whatever auth.json says.
        _ if metadata => {}
        Policy::Anonymous => {}
        policy => {
            let (all, any) = match policy {
                Policy::Token(p) => (p.scopes.all.clone(), p.scopes.any.clone()),
                _ => (Vec::new(), Vec::new()),
            };
            let alternatives: Vec<Vec<String>> = if any.is_empty() {
                vec![all.clone()]
            } else {
                any.iter().map(|one| all.iter().cloned().chain([one.clone()]).collect()).collect()
            };
            for scopes in alternatives {
                let mut alternative = requirement.clone();
                alternative.insert(TOKEN_SCHEME.into(), json!(scopes));
                requirements.push(Value::Object(alternative));
            }
            responses.insert("401".into(), json!({"$ref": "#/components/responses/Unauthorized"}));
            if let Policy::Token(p) = policy {
                if !(p.scopes.all.is_empty()
                    && p.scopes.any.is_empty()
                    && p.permissions.all.is_empty()
                    && p.permissions.any.is_empty())
                    || p.clients.is_some()
                {
                    responses.insert("403".into(), json!({"$ref": "#/components/responses/Forbidden"}));
                }
                let rule = |kind: &str, all: &[String], any: &[String]| {
                    let mut parts = Vec::new();
                    if !all.is_empty() {
                        parts.push(format!("all of {}", all.join(", ")));
                    }
                    if !any.is_empty() {
                        parts.push(format!("at least one of {}", any.join(", ")));
                    }
                    (!parts.is_empty()).then(|| format!("{kind}: {}.", parts.join("; ")))
                };
                description.extend(rule("Scopes", &p.scopes.all, &p.scopes.any));
                description.extend(rule(
                    "Permissions (`permissions` or `roles` claim)",
                    &p.permissions.all,
                    &p.permissions.any,
                ));
            }
        }
    }
    if !parameters.is_empty() {
        responses.insert("400".into(), json!({"$ref": "#/components/responses/BadRequest"}));
    }
    if let Some(limit) = function.max_body_bytes {
        description.push(format!("Largest request body: {limit} bytes (413 beyond)."));
    }
    if requirements.is_empty() && !requirement.is_empty() {
        requirements.push(Value::Object(requirement));
    }
    let mut operation = json!({
        "summary": if metadata { "OAuth 2.0 protected resource metadata (RFC 9728)".to_owned() } else { format!("Function {}", function.name) },
        "responses": responses,
        "security": requirements,
    });
    if !parameters.is_empty() {
        operation["parameters"] = json!(parameters);
    }
    if !description.is_empty() {
        operation["description"] = json!(description.join(" "));
    }
    operation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_read_with_their_constraints_optional_and_catch_all() {
        let p = parameter_of("id:int:min(1)");
        assert_eq!((p.name.as_str(), p.constraints.len(), p.optional), ("id", 2, false));
        assert!(parameter_of("id?").optional);
        assert!(parameter_of("id:int=5").optional);
        assert_eq!(parameter_of("id:int=5").constraints, ["int"]);
        assert!(parameter_of("*rest").catch_all);
        let regex = parameter_of("code:regex(^a=b?$)");
        assert_eq!((regex.constraints[0].as_str(), regex.optional), ("regex(^a=b?$)", false));
    }

    #[test]
    fn segments_become_openapi_templates() {
        assert_eq!(segment_of("{name}.{ext?}").0, "{name}.{ext}");
        assert_eq!(segment_of("{id:regex(^\\d{{3}}$)}").0, "{id}");
        assert_eq!(segment_of("v{version:int}").0, "v{version}");
    }

    #[test]
    fn an_optional_extension_gives_the_path_without_it() {
        let root = std::env::temp_dir().join(format!("azfn-openapi-ext-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("files")).unwrap();
        std::fs::write(
            root.join("files/function.json"),
            json!({"bindings": [
                {"type": "httpTrigger", "direction": "in", "name": "req", "route": "files/{name}.{ext?}"},
                {"type": "http", "direction": "out", "name": "res"}
            ]})
            .to_string(),
        )
        .unwrap();
        let layout = AppLayout::load(&root).unwrap();
        let paths: Vec<(String, usize)> =
            paths_of(&layout, &layout.functions[0]).into_iter().map(|(path, p)| (path, p.len())).collect();
        assert_eq!(paths, [("/api/files/{name}.{ext}".to_owned(), 2), ("/api/files/{name}".to_owned(), 1)]);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn constraints_give_schemas() {
        let schema = |c: &str| schema_of(&parameter_of(c));
        assert_eq!(schema("id:int"), json!({"type": "integer", "format": "int32"}));
        assert_eq!(schema("id:guid"), json!({"type": "string", "format": "uuid"}));
        assert_eq!(
            schema("n:long:range(1,9)"),
            json!({"type": "integer", "format": "int64", "minimum": 1, "maximum": 9})
        );
        assert_eq!(schema("s:length(2,4)"), json!({"type": "string", "minLength": 2, "maxLength": 4}));
        assert_eq!(schema("s:regex(^\\d{{3}}$)"), json!({"type": "string", "pattern": "^\\d{3}$"}));
    }
}
