//! The app root as the Functions host sees it: `host.json` (route prefix, which protocol
//! mode the host uses) and one `*/function.json` per function. Read once at start-up, so
//! the handler routes exactly what the host routes.

use std::path::{Path, PathBuf};

use http::Method;
use serde_json::Value;

use crate::auth::policy::Policy;

/// How the host hands HTTP requests to the handler (PROTOCOL.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostMode {
    /// `POST /<Function>` with the `Data`/`Metadata` JSON envelope.
    Invocation,
    /// `enableForwardingHttpRequest`: the raw request at `/<prefix>/<route>`.
    Forwarding,
    /// `enableProxyingHttpRequest`: the raw request at `/<prefix>/<route>`, streamed.
    Proxy,
}

/// One function, from its `function.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    /// Folder name (the function name).
    pub name: String,
    /// Route after the prefix, lower-cased for matching (the host matches case-insensitively).
    pub route: String,
    /// Allowed methods; `None` means all.
    pub methods: Option<Vec<Method>>,
    /// Name of the `httpTrigger` binding (the key in invocation `Data`).
    pub trigger: String,
    /// Name of the `http` output binding (`res`, or `$return`).
    pub output: String,
    /// Authorization rules from `auth.json` beside `function.json`.
    pub policy: Policy,
}

/// Routing facts for the whole app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppLayout {
    /// `extensions.http.routePrefix` (default `api`), without slashes, lower-cased.
    pub route_prefix: String,
    /// The protocol mode `host.json` selects.
    pub mode: HostMode,
    /// Functions found under the app root, sorted by name.
    pub functions: Vec<FunctionSpec>,
}

/// A problem with `host.json` or a `function.json`; the message names the file and field.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", file.display())]
pub struct LayoutError {
    /// The file at fault.
    pub file: PathBuf,
    /// What is wrong.
    pub problem: String,
}

fn bad(file: &Path, problem: impl Into<String>) -> LayoutError {
    LayoutError { file: file.to_owned(), problem: problem.into() }
}

/// Case-insensitive member lookup: the host binds host.json with .NET configuration,
/// whose keys are case-insensitive.
fn member<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    value.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v)
}

fn flag(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

impl AppLayout {
    /// Reads `root/host.json` (defaults when absent: prefix `api`, forwarding) and every
    /// `root/*/function.json`.
    pub fn load(root: &Path) -> Result<Self, LayoutError> {
        let host_file = root.join("host.json");
        let (route_prefix, mode) = match std::fs::read(&host_file) {
            Ok(bytes) => {
                let host: Value =
                    serde_json::from_slice(&bytes).map_err(|e| bad(&host_file, format!("not valid JSON: {e}")))?;
                Self::read_host(&host_file, &host)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ("api".to_owned(), HostMode::Forwarding),
            Err(e) => return Err(bad(&host_file, e.to_string())),
        };
        let mut functions = Vec::new();
        let entries = std::fs::read_dir(root).map_err(|e| bad(root, format!("cannot list the app root: {e}")))?;
        for entry in entries.flatten() {
            let file = entry.path().join("function.json");
            if !file.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(&file).map_err(|e| bad(&file, e.to_string()))?;
            let doc: Value = serde_json::from_slice(&bytes).map_err(|e| bad(&file, format!("not valid JSON: {e}")))?;
            let mut function = Self::read_function(&file, name, &doc)?;
            let policy_file = entry.path().join("auth.json");
            match std::fs::read(&policy_file) {
                Ok(bytes) => function.policy = Policy::parse(&bytes).map_err(|e| bad(&policy_file, e))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(bad(&policy_file, e.to_string())),
            }
            functions.push(function);
        }
        functions.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self { route_prefix, mode, functions })
    }

    fn read_host(file: &Path, host: &Value) -> Result<(String, HostMode), LayoutError> {
        let prefix =
            match member(host, "extensions").and_then(|e| member(e, "http")).and_then(|h| member(h, "routePrefix")) {
                None => "api".to_owned(),
                Some(Value::String(p)) => p.trim_matches('/').to_ascii_lowercase(),
                Some(_) => return Err(bad(file, "extensions.http.routePrefix must be a string")),
            };
        let section = member(host, "customHandler").or_else(|| member(host, "httpWorker"));
        let legacy = member(host, "customHandler").is_none() && section.is_some();
        let mode = match section {
            Some(s) if flag(member(s, "enableProxyingHttpRequest")) => HostMode::Proxy,
            Some(s) if legacy || flag(member(s, "enableForwardingHttpRequest")) => HostMode::Forwarding,
            _ => HostMode::Invocation,
        };
        Ok((prefix, mode))
    }

    fn read_function(file: &Path, name: String, doc: &Value) -> Result<FunctionSpec, LayoutError> {
        let bindings =
            member(doc, "bindings").and_then(Value::as_array).ok_or_else(|| bad(file, "bindings must be an array"))?;
        let kind = |b: &Value| member(b, "type").and_then(Value::as_str).map(str::to_ascii_lowercase);
        let direction = |b: &Value| member(b, "direction").and_then(Value::as_str).map(str::to_ascii_lowercase);
        let binding_name = |b: &Value| member(b, "name").and_then(Value::as_str).map(str::to_owned);

        let trigger = bindings
            .iter()
            .find(|b| kind(b).as_deref() == Some("httptrigger"))
            .ok_or_else(|| bad(file, "bindings: no httpTrigger binding (only HTTP functions are served)"))?;
        let trigger_name = binding_name(trigger).ok_or_else(|| bad(file, "bindings[httpTrigger].name is required"))?;
        let output = bindings
            .iter()
            .find(|b| kind(b).as_deref() == Some("http") && direction(b).as_deref() == Some("out"))
            .and_then(binding_name)
            .ok_or_else(|| bad(file, "bindings: an http output binding (e.g. \"res\") is required"))?;

        let route = match member(trigger, "route") {
            None | Some(Value::Null) => name.to_ascii_lowercase(),
            Some(Value::String(r)) => r.trim_matches('/').to_ascii_lowercase(),
            Some(_) => return Err(bad(file, "bindings[httpTrigger].route must be a string")),
        };
        if route.contains(['{', '}', '*']) {
            return Err(bad(file, "bindings[httpTrigger].route: route templates with parameters are not supported"));
        }
        let methods = match member(trigger, "methods") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|m| {
                        m.as_str()
                            .and_then(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
                            .ok_or_else(|| bad(file, "bindings[httpTrigger].methods must list HTTP method names"))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(_) => return Err(bad(file, "bindings[httpTrigger].methods must be an array")),
        };
        Ok(FunctionSpec { name, route, methods, trigger: trigger_name, output, policy: Policy::default() })
    }

    /// The function whose invocation-mode path (`/<Function>`) is `path`, if the host would
    /// call it that way.
    pub fn invocation_target(&self, path: &str) -> Option<usize> {
        // With an empty route prefix, `/<name>` is also a public route; host.json decides.
        if self.route_prefix.is_empty() && self.mode != HostMode::Invocation {
            return None;
        }
        let name = path.strip_prefix('/')?;
        self.functions.iter().position(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// The function served at public path `path` (`/<prefix>/<route>`), case-insensitively,
    /// a trailing slash tolerated.
    pub fn route_target(&self, path: &str) -> Option<usize> {
        let path = path.strip_prefix('/')?;
        let path = path.strip_suffix('/').unwrap_or(path);
        let rest = if self.route_prefix.is_empty() {
            path
        } else {
            let (prefix, rest) = path.split_at_checked(self.route_prefix.len())?;
            if !prefix.eq_ignore_ascii_case(&self.route_prefix) {
                return None;
            }
            rest.strip_prefix('/')?
        };
        self.functions.iter().position(|f| f.route.eq_ignore_ascii_case(rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(doc: Value) -> Result<FunctionSpec, LayoutError> {
        AppLayout::read_function(Path::new("api-a/function.json"), "api-a".into(), &doc)
    }

    fn api_a() -> Value {
        json!({"bindings": [
            {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "function", "methods": ["get", "post"]},
            {"type": "http", "direction": "out", "name": "res"}
        ]})
    }

    #[test]
    fn function_json_gives_route_methods_and_binding_names() {
        let f = spec(api_a()).unwrap();
        assert_eq!(f.route, "api-a");
        assert_eq!(f.methods, Some(vec![Method::GET, Method::POST]));
        assert_eq!((f.trigger.as_str(), f.output.as_str()), ("req", "res"));
    }

    #[test]
    fn function_json_errors_name_the_field() {
        let err = spec(json!({"bindings": [{"type": "queueTrigger", "name": "q"}]})).unwrap_err();
        assert!(err.to_string().contains("httpTrigger"), "{err}");
        let mut doc = api_a();
        doc["bindings"][0]["methods"] = json!(["g e t"]);
        assert!(spec(doc).unwrap_err().to_string().contains("methods"));
        let mut doc = api_a();
        doc["bindings"][0]["route"] = json!("items/{id}");
        assert!(spec(doc).unwrap_err().to_string().contains("route"));
    }

    #[test]
    fn host_json_selects_mode_and_prefix() {
        let read = |v: Value| AppLayout::read_host(Path::new("host.json"), &v).unwrap();
        assert_eq!(read(json!({})), ("api".into(), HostMode::Invocation));
        assert_eq!(read(json!({"customHandler": {"enableForwardingHttpRequest": true}})).1, HostMode::Forwarding);
        assert_eq!(read(json!({"CustomHandler": {"EnableProxyingHttpRequest": "true"}})).1, HostMode::Proxy);
        assert_eq!(read(json!({"httpWorker": {}})).1, HostMode::Forwarding);
        assert_eq!(read(json!({"extensions": {"http": {"routePrefix": "/V1/"}}})).0, "v1");
    }

    #[test]
    fn routes_match_case_insensitively_under_the_prefix() {
        let layout = AppLayout {
            route_prefix: "api".into(),
            mode: HostMode::Forwarding,
            functions: vec![spec(api_a()).unwrap()],
        };
        assert_eq!(layout.route_target("/api/api-a"), Some(0));
        assert_eq!(layout.route_target("/API/Api-A/"), Some(0));
        assert_eq!(layout.route_target("/api-a"), None);
        assert_eq!(layout.route_target("/apix/api-a"), None);
        assert_eq!(layout.invocation_target("/api-a"), Some(0));
        assert_eq!(layout.invocation_target("/API-A"), Some(0));
    }

    #[test]
    fn empty_prefix_lets_host_json_decide_between_envelope_and_raw() {
        let functions = vec![spec(api_a()).unwrap()];
        let raw = AppLayout { route_prefix: String::new(), mode: HostMode::Forwarding, functions: functions.clone() };
        assert_eq!(raw.route_target("/api-a"), Some(0));
        assert_eq!(raw.invocation_target("/api-a"), None);
        let envelope = AppLayout { route_prefix: String::new(), mode: HostMode::Invocation, functions };
        assert_eq!(envelope.invocation_target("/api-a"), Some(0));
    }
}
