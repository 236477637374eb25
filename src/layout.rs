//! The app root as the Functions host sees it: `host.json` (route prefix, which protocol
//! mode the host uses) and one `*/function.json` per function. Read once at start-up, so
//! the handler routes exactly what the host routes.

use std::path::{Path, PathBuf};

use http::Method;
use serde_json::Value;

use crate::auth::policy::Policy;
use crate::route::{RouteTemplate, RouteValues, TemplateError};

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
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    /// Folder name (the function name).
    pub name: String,
    /// HTTP functions: the route template after the prefix (`route`, default the function
    /// name). `None` for other triggers.
    pub route: Option<RouteTemplate>,
    /// HTTP functions: allowed methods; `None` means all.
    pub methods: Option<Vec<Method>>,
    /// Name of the trigger binding (the key in invocation `Data`).
    pub trigger: String,
    /// The trigger's `type` as written (`httpTrigger`, `timerTrigger`, `queueTrigger`, ...).
    pub trigger_type: String,
    /// HTTP functions: the name of the `http` output binding (`res`, or `$return`).
    pub output: Option<String>,
    /// Every other binding (inputs and outputs beyond the trigger and the HTTP output).
    pub bindings: Vec<Binding>,
    /// Authorization rules from `auth.json` beside `function.json`.
    pub policy: Policy,
    /// `"maxBodyBytes"` in `auth.json`: the largest request body this function reads
    /// (`None`: `HANDLER_MAX_BODY_BYTES`).
    pub max_body_bytes: Option<u64>,
    /// HTTP functions: the trigger's `authLevel` as written (`function` when omitted, the
    /// host's default): whether the host asks for a function key (for the OpenAPI document).
    pub auth_level: String,
}

/// A binding other than the trigger and the HTTP output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// `name` (the key in `Data` or `Outputs`; `$return` for the return value).
    pub name: String,
    /// `type` as written (`queue`, `blob`, ...).
    pub kind: String,
    /// `direction`.
    pub direction: Direction,
    /// `dataType: binary`: the host passes values through instead of guessing base64.
    pub binary: bool,
}

/// A binding's `direction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Read by the function (`Data.<name>`).
    In,
    /// Written by the function (`Outputs.<name>`).
    Out,
    /// Both (`inout`, e.g. some blob bindings).
    InOut,
}

impl FunctionSpec {
    /// An HTTP function, served on its route (plain `httpTrigger` + `http` output, no
    /// other bindings): what tests and simple apps build by hand.
    pub fn http(name: &str, route: &str, methods: Option<Vec<Method>>) -> Result<Self, TemplateError> {
        Ok(Self {
            name: name.to_owned(),
            route: Some(RouteTemplate::parse(route)?),
            methods,
            trigger: "req".to_owned(),
            trigger_type: "httpTrigger".to_owned(),
            output: Some("res".to_owned()),
            bindings: Vec::new(),
            policy: Policy::default(),
            max_body_bytes: None,
            auth_level: "function".to_owned(),
        })
    }

    /// Triggered by HTTP (has a route).
    pub fn is_http(&self) -> bool {
        self.route.is_some()
    }

    /// Whether the host always calls this function with the invocation envelope, whatever
    /// host.json says: every non-HTTP trigger, and HTTP functions with any binding beyond
    /// one `httpTrigger` and one `http` output (PROTOCOL.md §2, `IsHttpInAndOutFunction`).
    pub fn envelope_only(&self) -> bool {
        !self.is_http() || !self.bindings.is_empty()
    }

    /// The declared output binding `name` (case-sensitive, as the host looks it up).
    pub fn output_binding(&self, name: &str) -> Option<&Binding> {
        self.bindings.iter().find(|b| b.name == name && b.direction != Direction::In)
    }
}

/// Routing facts for the whole app.
#[derive(Debug, Clone, PartialEq)]
pub struct AppLayout {
    /// `extensions.http.routePrefix` (default `api`), without slashes, lower-cased.
    pub route_prefix: String,
    /// The protocol mode `host.json` selects.
    pub mode: HostMode,
    /// Functions found under the app root, in the host's order (by name, ordinal ignoring
    /// case): the first whose route and method match serves a request, as in the host.
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
            let mut function = Self::read_function(&file, name, &doc, &route_prefix)?;
            let policy_file = entry.path().join("auth.json");
            match std::fs::read(&policy_file) {
                Ok(bytes) => {
                    let (policy, max_body_bytes) = read_auth_json(&bytes).map_err(|e| bad(&policy_file, e))?;
                    function.policy = policy;
                    function.max_body_bytes = max_body_bytes;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(bad(&policy_file, e.to_string())),
            }
            functions.push(function);
        }
        sort_like_the_host(&mut functions);
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

    /// `prefix`: the route prefix, under which the host maps `{prefix}/{route}`.
    fn read_function(file: &Path, name: String, doc: &Value, prefix: &str) -> Result<FunctionSpec, LayoutError> {
        let bindings =
            member(doc, "bindings").and_then(Value::as_array).ok_or_else(|| bad(file, "bindings must be an array"))?;
        let text = |b: &'_ Value, field: &str| member(b, field).and_then(Value::as_str).map(str::to_owned);
        let mut trigger = None;
        let mut output = None;
        let mut others = Vec::new();
        for (i, binding) in bindings.iter().enumerate() {
            let kind = text(binding, "type").ok_or_else(|| bad(file, format!("bindings[{i}].type is required")))?;
            let binding_name =
                text(binding, "name").ok_or_else(|| bad(file, format!("bindings[{i}].name is required")))?;
            let direction = match text(binding, "direction").map(|d| d.to_ascii_lowercase()).as_deref() {
                Some("in") => Direction::In,
                Some("out") => Direction::Out,
                Some("inout") => Direction::InOut,
                // Triggers are inputs whether or not they say so.
                None if kind.to_ascii_lowercase().ends_with("trigger") => Direction::In,
                _ => return Err(bad(file, format!("bindings[{i}].direction must be \"in\", \"out\" or \"inout\""))),
            };
            let lower = kind.to_ascii_lowercase();
            if lower.ends_with("trigger") {
                if trigger.is_some() {
                    return Err(bad(file, "bindings: a function has exactly one trigger"));
                }
                trigger = Some((binding, binding_name, kind));
            } else if lower == "http" && direction == Direction::Out && output.is_none() {
                output = Some(binding_name);
            } else {
                let binary = text(binding, "dataType").is_some_and(|t| t.eq_ignore_ascii_case("binary"));
                others.push(Binding { name: binding_name, kind, direction, binary });
            }
        }
        let (trigger, trigger_name, trigger_type) =
            trigger.ok_or_else(|| bad(file, "bindings: no trigger binding (e.g. httpTrigger, timerTrigger)"))?;
        if !trigger_type.eq_ignore_ascii_case("httpTrigger") {
            return Ok(FunctionSpec {
                name,
                route: None,
                methods: None,
                trigger: trigger_name,
                trigger_type,
                output,
                bindings: others,
                policy: Policy::default(),
                max_body_bytes: None,
                auth_level: String::new(),
            });
        }
        let auth_level = text(trigger, "authLevel").unwrap_or_else(|| "function".to_owned());
        // Without an HTTP output the handler could not answer even a refused token.
        let output = output.ok_or_else(|| bad(file, "bindings: an http output binding (e.g. \"res\") is required"))?;
        let route = match member(trigger, "route") {
            None | Some(Value::Null) => RouteTemplate::parse(&name),
            // `HttpTriggerAttribute.Route` null or empty: the function name.
            Some(Value::String(r)) if r.trim_matches('/').is_empty() => RouteTemplate::parse(&name),
            Some(Value::String(r)) => {
                // The host refuses these (`ScriptHost.ValidateFunction`: "The specified route
                // conflicts with one or more built in routes").
                let relative = r.trim_start_matches('/');
                if ["admin", "runtime"].iter().any(|reserved| {
                    relative.get(..reserved.len()).is_some_and(|start| start.eq_ignore_ascii_case(reserved))
                }) {
                    return Err(bad(
                        file,
                        "bindings[httpTrigger].route: routes starting with \"admin\" or \"runtime\" are reserved by the Functions host",
                    ));
                }
                // The host maps `{prefix}/{route}` (`WebJobsRouteBuilder`): under a prefix,
                // a leading `~` or `/` of the route is not trimmed.
                if prefix.is_empty() { RouteTemplate::parse(r) } else { RouteTemplate::parse_after_prefix(r) }
            }
            Some(_) => return Err(bad(file, "bindings[httpTrigger].route must be a string")),
        }
        .map_err(|e| bad(file, format!("bindings[httpTrigger].route: {e}")))?;
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
        Ok(FunctionSpec {
            name,
            route: Some(route),
            methods,
            trigger: trigger_name,
            trigger_type,
            output: Some(output),
            bindings: others,
            policy: Policy::default(),
            max_body_bytes: None,
            auth_level,
        })
    }

    /// The function the host calls with an envelope at `POST <path>` (`/<Function>`).
    pub fn invocation_target(&self, path: &str) -> Option<usize> {
        let name = path.strip_prefix('/')?;
        let index = self.functions.iter().position(|f| f.name.eq_ignore_ascii_case(name))?;
        // With an empty route prefix, `/<name>` is also a public route: in forwarding and
        // proxy mode the host sends raw requests there for plain HTTP functions.
        let raw_possible = self.route_prefix.is_empty() && self.mode != HostMode::Invocation;
        (!raw_possible || self.functions[index].envelope_only()).then_some(index)
    }

    /// The function that serves `method path` on the public route (`/<prefix>/<route>`),
    /// chosen as the host chooses: the first function in host order whose template matches
    /// the path and whose methods include `method`.
    pub fn route_target(&self, method: &Method, path: &str) -> RouteMatch {
        let Some(rest) = self.strip_prefix(path) else { return RouteMatch::NotFound };
        let mut allowed: Option<usize> = None;
        for (index, function) in self.functions.iter().enumerate() {
            let Some(route) = &function.route else { continue };
            let Some(values) = route.matches(rest) else { continue };
            match &function.methods {
                Some(methods) if !methods.contains(method) => {
                    allowed.get_or_insert(index);
                }
                _ => return RouteMatch::Found { index, values },
            }
        }
        match allowed {
            Some(index) => RouteMatch::MethodNotAllowed { index },
            None => RouteMatch::NotFound,
        }
    }

    /// `path` after `/<prefix>`, as `/...` (the route template's input); `None` when the path
    /// is outside the prefix.
    fn strip_prefix<'p>(&self, path: &'p str) -> Option<&'p str> {
        if self.route_prefix.is_empty() {
            return path.starts_with('/').then_some(path);
        }
        let after = path.strip_prefix('/')?;
        let (prefix, rest) = after.split_at_checked(self.route_prefix.len())?;
        if !prefix.eq_ignore_ascii_case(&self.route_prefix) {
            return None;
        }
        match rest {
            "" => Some("/"),
            rest if rest.starts_with('/') => Some(rest),
            _ => None,
        }
    }
}

/// What a public path and method resolve to.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteMatch {
    /// Function `index` serves it, with these route values.
    Found {
        /// Index into [`AppLayout::functions`].
        index: usize,
        /// Values of the route's parameters.
        values: RouteValues,
    },
    /// The path matches function `index` (the first such), but no matching function allows
    /// the method. The host answers 404 here; run standalone, the handler answers 405.
    MethodNotAllowed {
        /// Index into [`AppLayout::functions`].
        index: usize,
    },
    /// No function's route matches.
    NotFound,
}

/// The host's function order: `FunctionMetadataManager` sorts by name with
/// `StringComparer.OrdinalIgnoreCase`, which compares upper-cased UTF-16 code units (so `_`
/// sorts after letters), and routes are mapped, and matched, in that order.
fn sort_like_the_host(functions: &mut [FunctionSpec]) {
    fn key(name: &str) -> impl Iterator<Item = u16> + '_ {
        name.encode_utf16().map(|unit| match char::from_u32(u32::from(unit)) {
            Some(c) if c.is_ascii_lowercase() => u16::from(c.to_ascii_uppercase() as u8),
            _ => unit,
        })
    }
    functions.sort_by(|a, b| key(&a.name).cmp(key(&b.name)));
}

/// `auth.json`: the policy, and `"maxBodyBytes"` (a request-size rule rather than an
/// authorization one, so it is taken out before the policy is parsed). A file holding only
/// `maxBodyBytes` leaves the policy at "any valid token", as no file does.
fn read_auth_json(bytes: &[u8]) -> Result<(Policy, Option<u64>), String> {
    let mut doc: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let Some(limit) = doc.as_object_mut().and_then(|fields| fields.remove("maxBodyBytes")) else {
        return Ok((Policy::parse(bytes)?, None));
    };
    let limit = match limit.as_u64() {
        Some(limit) if limit > 0 => limit,
        _ => return Err("maxBodyBytes: must be a whole number of bytes, at least 1".into()),
    };
    if doc.as_object().is_some_and(serde_json::Map::is_empty) {
        return Ok((Policy::default(), Some(limit)));
    }
    Ok((Policy::parse(doc.to_string().as_bytes())?, Some(limit)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(doc: Value) -> Result<FunctionSpec, LayoutError> {
        named("api-a", doc)
    }

    fn named(name: &str, doc: Value) -> Result<FunctionSpec, LayoutError> {
        AppLayout::read_function(Path::new("x/function.json"), name.into(), &doc, "api")
    }

    fn api_a() -> Value {
        json!({"bindings": [
            {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "function", "methods": ["get", "post"]},
            {"type": "http", "direction": "out", "name": "res"}
        ]})
    }

    fn http(route: &str, methods: Value) -> Value {
        json!({"bindings": [
            {"type": "httpTrigger", "direction": "in", "name": "req", "route": route, "methods": methods},
            {"type": "http", "direction": "out", "name": "res"}
        ]})
    }

    fn layout(prefix: &str, mode: HostMode, functions: Vec<FunctionSpec>) -> AppLayout {
        let mut functions = functions;
        sort_like_the_host(&mut functions);
        AppLayout { route_prefix: prefix.into(), mode, functions }
    }

    #[test]
    fn function_json_gives_route_methods_and_binding_names() {
        let f = spec(api_a()).unwrap();
        assert_eq!(f.route.as_ref().map(RouteTemplate::text), Some("api-a"));
        assert_eq!(f.methods, Some(vec![Method::GET, Method::POST]));
        assert_eq!((f.trigger.as_str(), f.output.as_deref()), ("req", Some("res")));
        assert!(!f.envelope_only());
    }

    #[test]
    fn function_json_errors_name_the_field() {
        let err = spec(json!({"bindings": [{"type": "queue", "direction": "out", "name": "q"}]})).unwrap_err();
        assert!(err.to_string().contains("no trigger"), "{err}");
        let mut doc = api_a();
        doc["bindings"][0]["methods"] = json!(["g e t"]);
        assert!(spec(doc).unwrap_err().to_string().contains("methods"));
        let err = spec(http("items/{id", json!(null))).unwrap_err();
        assert!(err.to_string().contains("route"), "{err}");
        let err = spec(json!({"bindings": [{"type": "httpTrigger", "direction": "in", "name": "req"}]})).unwrap_err();
        assert!(err.to_string().contains("http output"), "{err}");
        let err = spec(json!({"bindings": [{"type": "blob", "direction": "sideways", "name": "b"}]})).unwrap_err();
        assert!(err.to_string().contains("bindings[0].direction"), "{err}");
    }

    #[test]
    fn routes_reserved_by_the_host_are_refused() {
        for route in ["admin", "admin/keys", "Administration/x", "/runtime/webhooks", "RUNTIMEx"] {
            let err = spec(http(route, json!(null))).unwrap_err();
            assert!(err.to_string().contains("reserved by the Functions host"), "{route}: {err}");
        }
        assert!(spec(http("items/admin", json!(null))).is_ok());
        assert!(spec(http("my-admin", json!(null))).is_ok());
    }

    #[test]
    fn non_http_triggers_and_extra_bindings_are_envelope_only() {
        let timer = named(
            "cleanup",
            json!({"bindings": [{"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": "0 */5 * * * *"}]}),
        )
        .unwrap();
        assert_eq!((timer.trigger.as_str(), timer.trigger_type.as_str()), ("timer", "timerTrigger"));
        assert!(timer.route.is_none() && timer.envelope_only());
        let mut doc = http("orders", json!(["post"]));
        doc["bindings"].as_array_mut().unwrap().push(
            json!({"type": "queue", "direction": "out", "name": "outQueue", "queueName": "orders", "dataType": "binary"}),
        );
        let create = spec(doc).unwrap();
        assert!(create.envelope_only());
        assert_eq!(create.bindings[0].name, "outQueue");
        assert!(create.bindings[0].binary);
        assert!(create.output_binding("outQueue").is_some());
        assert!(create.output_binding("outqueue").is_none(), "the host looks outputs up case-sensitively");
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
        let layout = layout("api", HostMode::Forwarding, vec![spec(api_a()).unwrap()]);
        let found = |path: &str| match layout.route_target(&Method::GET, path) {
            RouteMatch::Found { index, .. } => Some(index),
            _ => None,
        };
        assert_eq!(found("/api/api-a"), Some(0));
        assert_eq!(found("/API/Api-A/"), Some(0));
        assert_eq!(found("/api-a"), None);
        assert_eq!(found("/apix/api-a"), None);
        assert_eq!(layout.route_target(&Method::PUT, "/api/api-a"), RouteMatch::MethodNotAllowed { index: 0 });
        assert_eq!(layout.invocation_target("/api-a"), Some(0));
        assert_eq!(layout.invocation_target("/API-A"), Some(0));
    }

    #[test]
    fn the_first_function_by_name_wins_like_the_host() {
        let public = named("a-public", http("items/{id}", json!(["get"]))).unwrap();
        let private = named("b-private", http("items/secret", json!(["get", "delete"]))).unwrap();
        let layout = layout("api", HostMode::Forwarding, vec![private, public]);
        assert_eq!(layout.functions[0].name, "a-public");
        match layout.route_target(&Method::GET, "/api/items/secret") {
            RouteMatch::Found { index, values } => {
                assert_eq!(layout.functions[index].name, "a-public");
                assert_eq!(values.get("id"), Some("secret"));
            }
            other => panic!("{other:?}"),
        }
        // A method only the later function allows goes to it.
        let RouteMatch::Found { index, .. } = layout.route_target(&Method::DELETE, "/api/items/secret") else {
            panic!("DELETE")
        };
        assert_eq!(layout.functions[index].name, "b-private");
    }

    #[test]
    fn host_order_is_ordinal_ignoring_case() {
        let names = ["b", "A_x", "a-y", "Ab", "a"];
        let mut functions: Vec<_> = names.iter().map(|n| named(n, api_a()).unwrap()).collect();
        sort_like_the_host(&mut functions);
        let sorted: Vec<_> = functions.iter().map(|f| f.name.as_str()).collect();
        // Upper-cased: "A" < "A-Y" < "AB" < "A_X" < "B" ('-' 0x2D < 'B' 0x42 < '_' 0x5F).
        assert_eq!(sorted, ["a", "a-y", "Ab", "A_x", "b"]);
    }

    #[test]
    fn empty_prefix_lets_host_json_decide_between_envelope_and_raw() {
        let functions = vec![spec(api_a()).unwrap()];
        let raw = layout("", HostMode::Forwarding, functions.clone());
        assert!(matches!(raw.route_target(&Method::GET, "/api-a"), RouteMatch::Found { index: 0, .. }));
        assert_eq!(raw.invocation_target("/api-a"), None);
        let envelope = layout("", HostMode::Invocation, functions);
        assert_eq!(envelope.invocation_target("/api-a"), Some(0));
    }

    #[test]
    fn max_body_bytes_is_read_beside_the_policy() {
        let (policy, limit) = read_auth_json(br#"{"scopes": {"all": ["a"]}, "maxBodyBytes": 536870912}"#).unwrap();
        assert_eq!(limit, Some(512 << 20));
        assert_eq!(policy, Policy::parse(br#"{"scopes": {"all": ["a"]}}"#).unwrap());
    }

    #[test]
    fn max_body_bytes_alone_keeps_the_default_policy() {
        assert_eq!(read_auth_json(br#"{"maxBodyBytes": 10}"#).unwrap(), (Policy::default(), Some(10)));
        assert_eq!(
            read_auth_json(br#"{"anonymous": true, "maxBodyBytes": 10}"#).unwrap(),
            (Policy::Anonymous, Some(10))
        );
    }

    #[test]
    fn max_body_bytes_must_be_a_positive_whole_number() {
        for bad in [r#"0"#, r#"-1"#, r#"1.5"#, r#""10""#, r#"null"#] {
            let doc = format!(r#"{{"maxBodyBytes": {bad}}}"#);
            let error = read_auth_json(doc.as_bytes()).unwrap_err();
            assert!(error.starts_with("maxBodyBytes:"), "{bad}: {error}");
        }
    }

    #[test]
    fn unknown_auth_json_fields_are_still_refused_beside_max_body_bytes() {
        assert!(read_auth_json(br#"{"maxBodyBytes": 10, "scopez": []}"#).is_err());
    }
}
