//! Rules on any claim (`"claims"` in `auth.json`): a claim named at the top level or by an
//! RFC 6901 JSON Pointer must hold any or all of some strings, or equal a JSON value.
//! Parsed once at start-up; evaluated on the verified claims without allocating.
//!
//! ```json
//! "claims": {
//!   "https://example.com/roles": { "any": ["admin", "support"] },
//!   "/realm_access/roles":       { "all": ["orders-reader"] },
//!   "email_verified":            { "equals": true }
//! }
//! ```

use serde_json::{Map, Value};

/// Where a rule finds its claim.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ClaimPath {
    /// A top-level claim, by its exact name (`https://example.com/roles`, `org.id`).
    Top(String),
    /// An RFC 6901 JSON Pointer (`/realm_access/roles`), its reference tokens unescaped.
    Pointer(Vec<String>),
}

/// What a claim must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Test {
    /// At least one of `any` (when non-empty) and every one of `all`, over a string (split
    /// on whitespace, as `scope`) or an array of strings.
    Values { any: Vec<String>, all: Vec<String> },
    /// Exactly this JSON value.
    Equals(Value),
}

/// One rule: a claim and what it must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClaimRule {
    path: ClaimPath,
    test: Test,
}

/// The `"claims"` rules of one function; all must pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClaimRules(Vec<ClaimRule>);

/// Most rules in one `"claims"` object, and most values in one list: a start-up bound so a
/// policy cannot make every request do unbounded work (each rule costs one lookup per request).
pub const MAX_RULES: usize = 64;

impl ClaimRules {
    /// Parses the `"claims"` object of `auth.json`. Errors start with `claims.<name>` (or
    /// `claims`) so the message names the field.
    pub fn parse(doc: &Value) -> Result<Self, String> {
        let Value::Object(rules) = doc else {
            return Err("claims: must be an object of claim names (or JSON Pointers) to rules".into());
        };
        if rules.is_empty() {
            return Err("claims: an empty object requires nothing; remove it or name a claim".into());
        }
        if rules.len() > MAX_RULES {
            return Err(format!("claims: at most {MAX_RULES} rules"));
        }
        rules
            .iter()
            .map(|(name, rule)| {
                let field = format!("claims.{name}");
                let path = parse_path(name).map_err(|problem| format!("{field}: {problem}"))?;
                let test = parse_test(rule).map_err(|problem| format!("{field}: {problem}"))?;
                Ok(ClaimRule { path, test })
            })
            .collect::<Result<Vec<_>, String>>()
            .map(Self)
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when every rule holds for `claims`. A missing claim, or one of a shape the rule
    /// cannot read (a number where strings are wanted), fails its rule.
    pub fn satisfied_by(&self, claims: &Map<String, Value>) -> bool {
        self.0.iter().all(|rule| rule.path.find(claims).is_some_and(|value| rule.test.holds(value)))
    }
}

impl ClaimPath {
    fn find<'a>(&self, claims: &'a Map<String, Value>) -> Option<&'a Value> {
        match self {
            Self::Top(name) => claims.get(name),
            Self::Pointer(tokens) => {
                let (first, rest) = tokens.split_first()?;
                let mut at = claims.get(first)?;
                for token in rest {
                    at = match at {
                        Value::Object(members) => members.get(token)?,
                        Value::Array(items) => items.get(array_index(token)?)?,
                        _ => return None,
                    };
                }
                Some(at)
            }
        }
    }
}

/// RFC 6901 §4: an array index is `0` or digits without a leading zero (`-`, the element
/// after the last, never exists).
fn array_index(token: &str) -> Option<usize> {
    let digits = token.bytes().all(|b| b.is_ascii_digit());
    if token.is_empty() || !digits || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

impl Test {
    fn holds(&self, value: &Value) -> bool {
        match self {
            Self::Equals(expected) => value == expected,
            Self::Values { any, all } => {
                let held = |wanted: &String| holds_string(value, wanted);
                match value {
                    Value::String(_) | Value::Array(_) => {
                        all.iter().all(held) && (any.is_empty() || any.iter().any(held))
                    }
                    _ => false,
                }
            }
        }
    }
}

/// True when `value` (a space-separated string, or an array whose string members are
/// compared whole) contains `wanted`.
fn holds_string(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(list) => list.split_whitespace().any(|s| s == wanted),
        Value::Array(items) => items.iter().any(|item| item.as_str() == Some(wanted)),
        _ => false,
    }
}

fn parse_path(name: &str) -> Result<ClaimPath, String> {
    if name.is_empty() {
        return Err("a claim name must not be empty".into());
    }
    let Some(pointer) = name.strip_prefix('/') else { return Ok(ClaimPath::Top(name.to_owned())) };
    pointer.split('/').map(unescape).collect::<Result<Vec<_>, _>>().map(ClaimPath::Pointer)
}

/// RFC 6901 §3/§4: `~1` is `/`, `~0` is `~`, and any other `~` is not a valid pointer.
fn unescape(token: &str) -> Result<String, String> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        match c {
            '~' => match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return Err("not a JSON Pointer (RFC 6901): '~' must be followed by 0 or 1".into()),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

fn parse_test(rule: &Value) -> Result<Test, String> {
    let Value::Object(members) = rule else {
        return Err(r#"a rule is an object: {"any": [...]}, {"all": [...]} or {"equals": <value>}"#.into());
    };
    if let Some(unknown) = members.keys().find(|k| !matches!(k.as_str(), "any" | "all" | "equals")) {
        return Err(format!("unknown rule `{unknown}`; use any, all or equals"));
    }
    if let Some(expected) = members.get("equals") {
        if members.len() > 1 {
            return Err("equals cannot be combined with any or all".into());
        }
        return Ok(Test::Equals(expected.clone()));
    }
    let list = |key: &str| -> Result<Vec<String>, String> {
        let Some(value) = members.get(key) else { return Ok(Vec::new()) };
        let Value::Array(items) = value else { return Err(format!("{key}: must be a list of strings")) };
        if items.is_empty() {
            return Err(format!("{key}: an empty list would refuse every caller"));
        }
        if items.len() > MAX_RULES {
            return Err(format!("{key}: at most {MAX_RULES} values"));
        }
        items
            .iter()
            .map(|item| match item.as_str() {
                Some(s) if !s.trim().is_empty() => Ok(s.to_owned()),
                _ => Err(format!("{key}: values must be non-empty strings")),
            })
            .collect()
    };
    let (any, all) = (list("any")?, list("all")?);
    if any.is_empty() && all.is_empty() {
        return Err("a rule needs any, all or equals".into());
    }
    Ok(Test::Values { any, all })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(doc: Value) -> ClaimRules {
        ClaimRules::parse(&doc).unwrap()
    }

    fn obj(raw: Value) -> Map<String, Value> {
        let Value::Object(map) = raw else { panic!("object expected") };
        map
    }

    #[test]
    fn any_and_all_over_arrays_and_space_separated_strings() {
        let r = rules(json!({"roles": {"any": ["admin", "support"], "all": ["staff"]}}));
        assert!(r.satisfied_by(&obj(json!({"roles": ["staff", "support"]}))));
        assert!(r.satisfied_by(&obj(json!({"roles": "support  staff"}))));
        assert!(!r.satisfied_by(&obj(json!({"roles": ["staff"]}))));
        assert!(!r.satisfied_by(&obj(json!({"roles": ["admin"]}))));
        assert!(!r.satisfied_by(&obj(json!({"roles": "staffadmin"}))));
    }

    #[test]
    fn array_members_are_compared_whole_and_other_shapes_fail() {
        let r = rules(json!({"roles": {"any": ["Org Admin"]}}));
        assert!(r.satisfied_by(&obj(json!({"roles": ["Org Admin"]}))));
        assert!(!r.satisfied_by(&obj(json!({"roles": "Org Admin"}))), "a string is a space-separated list");
        for wrong in [json!(1), json!(true), json!({"Org Admin": true}), json!(null), json!([1, ["Org Admin"]])] {
            assert!(!r.satisfied_by(&obj(json!({ "roles": wrong }))), "{wrong}");
        }
    }

    #[test]
    fn a_missing_claim_fails_every_kind_of_rule() {
        for doc in [json!({"x": {"any": ["a"]}}), json!({"x": {"all": ["a"]}}), json!({"x": {"equals": null}})] {
            assert!(!rules(doc.clone()).satisfied_by(&obj(json!({"y": "a"}))), "{doc}");
        }
    }

    #[test]
    fn equals_compares_json_values_exactly() {
        let r = rules(json!({"email_verified": {"equals": true}}));
        assert!(r.satisfied_by(&obj(json!({"email_verified": true}))));
        for wrong in [json!(false), json!("true"), json!(1), json!([true])] {
            assert!(!r.satisfied_by(&obj(json!({ "email_verified": wrong }))), "{wrong}");
        }
        let nested = rules(json!({"tier": {"equals": {"level": 2}}}));
        assert!(nested.satisfied_by(&obj(json!({"tier": {"level": 2}}))));
        assert!(!nested.satisfied_by(&obj(json!({"tier": {"level": 2, "extra": 1}}))));
    }

    #[test]
    fn namespaced_names_are_top_level_claims_not_paths() {
        let r = rules(json!({"https://example.com/roles": {"any": ["admin"]}, "org.id": {"equals": "o1"}}));
        assert!(r.satisfied_by(&obj(json!({"https://example.com/roles": ["admin"], "org.id": "o1"}))));
        assert!(!r.satisfied_by(&obj(json!({"https:": {"": {"example.com": {"roles": ["admin"]}}}, "org.id": "o1"}))));
    }

    #[test]
    fn json_pointers_walk_objects_and_arrays() {
        let keycloak = obj(json!({
            "realm_access": {"roles": ["offline_access", "orders-reader"]},
            "resource_access": {"orders-api": {"roles": ["export"]}, "a/b": {"roles": ["x"]}, "m~n": {"roles": ["y"]}},
            "groups": ["g0", "g1"],
        }));
        assert!(rules(json!({"/realm_access/roles": {"all": ["orders-reader"]}})).satisfied_by(&keycloak));
        assert!(rules(json!({"/resource_access/orders-api/roles": {"any": ["export"]}})).satisfied_by(&keycloak));
        assert!(!rules(json!({"/resource_access/other/roles": {"any": ["export"]}})).satisfied_by(&keycloak));
        assert!(rules(json!({"/resource_access/a~1b/roles": {"any": ["x"]}})).satisfied_by(&keycloak));
        assert!(rules(json!({"/resource_access/m~0n/roles": {"any": ["y"]}})).satisfied_by(&keycloak));
        assert!(rules(json!({"/groups/1": {"equals": "g1"}})).satisfied_by(&keycloak));
        for index in ["01", "-", "2", "+1", "", "1e0"] {
            let r = rules(json!({ format!("/groups/{index}"): {"equals": "g1"} }));
            assert!(!r.satisfied_by(&keycloak), "{index}");
        }
        assert!(!rules(json!({"/groups/0/x": {"equals": "g0"}})).satisfied_by(&keycloak));
    }

    #[test]
    fn the_pointer_slash_is_the_claim_with_the_empty_name() {
        assert!(rules(json!({"/": {"equals": 1}})).satisfied_by(&obj(json!({"": 1}))));
    }

    #[test]
    fn bad_rules_are_start_up_errors_naming_the_field() {
        for (doc, starts) in [
            (json!({"x": {"any": []}}), "claims.x: any: an empty list"),
            (json!({"x": {"all": []}}), "claims.x: all: an empty list"),
            (json!({"x": {"any": "admin"}}), "claims.x: any: must be a list"),
            (json!({"x": {"any": [1]}}), "claims.x: any: values must be"),
            (json!({"x": {"any": [" "]}}), "claims.x: any: values must be"),
            (json!({"x": {"one_of": ["a"]}}), "claims.x: unknown rule `one_of`"),
            (json!({"x": {}}), "claims.x: a rule needs"),
            (json!({"x": ["a"]}), "claims.x: a rule is an object"),
            (json!({"x": {"equals": 1, "any": ["a"]}}), "claims.x: equals cannot"),
            (json!({"/a~2b": {"equals": 1}}), "claims./a~2b: not a JSON Pointer"),
            (json!({"/a~": {"equals": 1}}), "claims./a~: not a JSON Pointer"),
            (json!({"": {"equals": 1}}), "claims.: a claim name"),
            (json!({}), "claims: an empty object"),
            (json!(["x"]), "claims: must be an object"),
        ] {
            let err = ClaimRules::parse(&doc).unwrap_err();
            assert!(err.starts_with(starts), "{doc}: {err}");
        }
        let many: Map<String, Value> = (0..=MAX_RULES).map(|i| (format!("c{i}"), json!({"equals": 1}))).collect();
        assert!(ClaimRules::parse(&Value::Object(many)).unwrap_err().starts_with("claims: at most"));
    }
}
