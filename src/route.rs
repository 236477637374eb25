//! Route templates (`orders/{id:int}`, `files/{*path}`) parsed once at start-up and matched
//! as the Functions host matches them. The host maps each HTTP function's
//! `{routePrefix}/{route}` with legacy ASP.NET Core routing (`Route` in a `RouteCollection`,
//! `DefaultInlineConstraintResolver`); this module follows its rules:
//!
//! - segments are separated by `/`; literal segments compare case-insensitively (ordinal);
//! - `{name}` takes one non-empty segment, `{name?}` may be absent (value `None`),
//!   `{name=default}` takes the default when absent, `{*name}` / `{**name}` (last segment
//!   only) take the rest of the path, slashes included, and may be absent;
//! - inline constraints `{name:int:min(1)}` (names case-insensitive) are checked on every
//!   value present; an absent optional value skips them (`OptionalRouteConstraint`);
//! - one trailing slash is ignored; values are percent-decoded except `%2F`, as Kestrel
//!   decodes the path before routing.
//!
//! Constraints follow .NET's invariant-culture parsing: `int`/`long` allow a sign and
//! surrounding white space (`NumberStyles.Integer`); `bool` is case-insensitive; `alpha` is
//! ASCII letters; `guid` takes the `D`, `N`, `B` and `P` formats; `double`/`float` allow
//! thousands separators and an exponent, `decimal` no exponent; `datetime` accepts ISO 8601
//! dates and date-times and `M/d/yyyy` (a subset of `DateTime.TryParse`: other forms it
//! would accept are refused here, so the handler never serves a request the host would not
//! route; at worst it refuses one the host would); lengths count characters; `min`, `max`,
//! `range` compare the value as a 64-bit integer; `regex(...)` is case-insensitive and,
//! as in .NET, unanchored unless the pattern anchors itself.
//!
//! Segments that mix literals and parameters (`{a}.{b}`, `file{n}.txt`) are refused at
//! start-up: rather than risk matching differently from the host, the handler refuses to
//! start.

use std::borrow::Cow;
use std::fmt;

use regex::Regex;

/// A compiled route template.
#[derive(Debug, Clone)]
pub struct RouteTemplate {
    text: String,
    segments: Vec<Segment>,
    parameters: usize,
}

impl PartialEq for RouteTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Parameter(Parameter),
}

#[derive(Debug, Clone)]
struct Parameter {
    name: String,
    optional: bool,
    catch_all: bool,
    default: Option<String>,
    constraints: Vec<Constraint>,
}

#[derive(Debug, Clone)]
enum Constraint {
    Int,
    Long,
    Bool,
    Guid,
    Alpha,
    Double,
    Decimal,
    DateTime,
    MinLength(usize),
    MaxLength(usize),
    Length(usize, usize),
    Min(i64),
    Max(i64),
    Range(i64, i64),
    Regex(Box<Regex>),
}

/// A template the host would refuse, or one this handler cannot match exactly like it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(String);

fn error<T>(message: impl Into<String>) -> Result<T, TemplateError> {
    Err(TemplateError(message.into()))
}

/// Values of a route's parameters, in template order; `None` for an absent optional one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteValues(Vec<(String, Option<String>)>);

impl RouteValues {
    /// The value of parameter `name` (case-insensitive); `None` if absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.as_deref())
    }

    /// Every parameter with its value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_deref()))
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No parameters.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl RouteTemplate {
    /// Parses a template; leading and trailing `/` are ignored.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let text = template.trim_matches('/').to_owned();
        let mut segments = Vec::new();
        if !text.is_empty() {
            for raw in text.split('/') {
                segments.push(parse_segment(raw)?);
            }
        }
        let mut names: Vec<&str> = Vec::new();
        for (i, segment) in segments.iter().enumerate() {
            let Segment::Parameter(p) = segment else { continue };
            if names.iter().any(|n| n.eq_ignore_ascii_case(&p.name)) {
                return error(format!("parameter {{{}}} appears twice", p.name));
            }
            names.push(&p.name);
            if p.catch_all && i + 1 != segments.len() {
                return error(format!("catch-all parameter {{*{}}} must be the last segment", p.name));
            }
        }
        let parameters = names.len();
        Ok(Self { text, segments, parameters })
    }

    /// The host's template for a function: `{prefix}/{route}`, or just the route when the
    /// prefix is empty.
    pub fn join(prefix: &str, route: &str) -> Result<Self, TemplateError> {
        let prefix = prefix.trim_matches('/');
        if prefix.is_empty() {
            Self::parse(route)
        } else {
            Self::parse(&format!("{prefix}/{}", route.trim_matches('/')))
        }
    }

    /// The template (without leading or trailing `/`).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Parameter names, in template order.
    pub fn parameter_names(&self) -> impl Iterator<Item = &str> {
        self.parameters().map(|p| p.name.as_str())
    }

    /// Whether the template has any parameter.
    pub fn has_parameters(&self) -> bool {
        self.parameters > 0
    }

    fn parameters(&self) -> impl Iterator<Item = &Parameter> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Parameter(p) => Some(p),
            Segment::Literal(_) => None,
        })
    }

    /// Matches a request path (`/api/orders/12`, percent-encoded as on the wire), with
    /// constraints checked. A literal-only template allocates nothing.
    pub fn matches(&self, path: &str) -> Option<RouteValues> {
        let path = path.strip_prefix('/').unwrap_or(path);
        // One trailing slash is ignored ("/items/5/" is "/items/5").
        let path = path.strip_suffix('/').unwrap_or(path);
        let mut rest = if path.is_empty() { None } else { Some(path) };
        let mut values = Vec::with_capacity(self.parameters);
        for segment in &self.segments {
            let current = rest.map(|r| r.split_once('/').map_or((r, None), |(head, tail)| (head, Some(tail))));
            match segment {
                Segment::Literal(literal) => {
                    let (head, tail) = current?;
                    if !decode(head).eq_ignore_ascii_case(literal) {
                        return None;
                    }
                    rest = tail;
                }
                Segment::Parameter(p) if p.catch_all => {
                    let value = rest.filter(|r| !r.is_empty()).map(|r| decode(r).into_owned());
                    values.push((p.name.clone(), p.resolve(value)?));
                    rest = None;
                }
                Segment::Parameter(p) => {
                    let (value, tail) = match current {
                        Some((head, tail)) if !head.is_empty() => (Some(decode(head).into_owned()), tail),
                        // An empty segment is no value: only the last segments may be absent.
                        Some((_, Some(_))) => return None,
                        _ => (None, None),
                    };
                    values.push((p.name.clone(), p.resolve(value)?));
                    rest = tail;
                }
            }
        }
        rest.is_none().then_some(RouteValues(values))
    }

    /// Values the host already matched (invocation mode's `Data.<trigger>.Params`): only
    /// this template's parameters are kept (other names dropped), defaults applied and
    /// constraints re-checked. `None` when a value fails its constraint or a required one
    /// is missing.
    pub fn accept_values<'a>(
        &self,
        values: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Option<RouteValues> {
        let given: Vec<(&str, Option<&str>)> = values.into_iter().collect();
        let mut accepted = Vec::with_capacity(self.parameters);
        for p in self.parameters() {
            let value = given.iter().rev().find(|(n, _)| n.eq_ignore_ascii_case(&p.name)).and_then(|(_, v)| *v);
            let value = value.filter(|v| !v.is_empty()).map(str::to_owned);
            accepted.push((p.name.clone(), p.resolve(value)?));
        }
        Some(RouteValues(accepted))
    }
}

impl fmt::Display for RouteTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Parameter {
    /// The parameter's value: `value`, else its default; constraints checked on it.
    /// `None` (no match) when required and absent, or when a constraint fails.
    fn resolve(&self, value: Option<String>) -> Option<Option<String>> {
        let value = value.or_else(|| self.default.clone());
        match &value {
            Some(v) if !self.constraints.iter().all(|c| c.accepts(v)) => None,
            Some(_) => Some(value),
            None if self.optional || self.catch_all => Some(None),
            None => None,
        }
    }
}

/// Percent-decodes a path piece as Kestrel does: everything but `%2F`, which stays encoded
/// (so it never becomes a segment separator). Invalid UTF-8 keeps the raw text.
fn decode(raw: &str) -> Cow<'_, str> {
    if !raw.contains('%') {
        return Cow::Borrowed(raw);
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
        {
            let byte = (h * 16 + l) as u8;
            if byte == b'/' {
                out.extend_from_slice(&bytes[i..i + 3]);
            } else {
                out.push(byte);
            }
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(text) => Cow::Owned(text),
        Err(_) => Cow::Borrowed(raw),
    }
}

fn parse_segment(raw: &str) -> Result<Segment, TemplateError> {
    if raw.is_empty() {
        return error("empty segment (\"//\")");
    }
    if !raw.contains(['{', '}']) {
        return Ok(Segment::Literal(raw.to_owned()));
    }
    if raw.contains("{{") || raw.contains("}}") {
        // `{{` and `}}` are literal braces; a segment that only escapes braces is a literal.
        if !raw.replace("{{", "").replace("}}", "").contains(['{', '}']) {
            return Ok(Segment::Literal(raw.replace("{{", "{").replace("}}", "}")));
        }
    }
    let Some(inner) = raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) else {
        return error(format!("segment {raw:?}: literals and parameters in one segment are not supported"));
    };
    // Inside a parameter only doubled braces (in a regex) may appear.
    let unescaped = inner.replace("{{", "").replace("}}", "");
    if unescaped.contains(['{', '}']) {
        return error(format!("segment {raw:?}: literals and parameters in one segment are not supported"));
    }
    parse_parameter(&inner.replace("{{", "{").replace("}}", "}")).map(Segment::Parameter)
}

fn parse_parameter(inner: &str) -> Result<Parameter, TemplateError> {
    let (catch_all, body) = match inner.strip_prefix("**").or_else(|| inner.strip_prefix('*')) {
        Some(body) => (true, body),
        None => (false, inner),
    };
    // The name runs to the first ':' (constraint), '=' (default) or a final '?'.
    let name_end = body.find([':', '=']).unwrap_or(body.len());
    let (mut name, mut rest) = body.split_at(name_end);
    let mut optional = false;
    if let Some(n) = name.strip_suffix('?') {
        (name, optional) = (n, true);
    }
    if name.is_empty() || name.contains(['/', '?', '*', '{', '}', '=', ':']) {
        return error(format!("parameter {{{inner}}}: invalid name"));
    }
    let mut constraints = Vec::new();
    let mut default = None;
    while let Some(after) = rest.strip_prefix(':') {
        // A constraint runs to the next ':' or '=' outside parentheses, or a final '?'.
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                ':' | '=' if depth == 0 => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let (mut text, tail) = after.split_at(end);
        if tail.is_empty()
            && let Some(t) = text.strip_suffix('?')
            && !t.ends_with('(')
        {
            (text, optional) = (t, true);
        }
        constraints.push(parse_constraint(text).map_err(|e| TemplateError(format!("parameter {{{inner}}}: {e}")))?);
        rest = tail;
    }
    if let Some(value) = rest.strip_prefix('=') {
        let value = match value.strip_suffix('?') {
            Some(_) => return error(format!("parameter {{{inner}}}: an optional parameter cannot have a default")),
            None => value,
        };
        default = Some(value.to_owned());
    } else if !rest.is_empty() {
        return error(format!("parameter {{{inner}}}: unexpected {rest:?}"));
    }
    if optional && default.is_some() {
        return error(format!("parameter {{{inner}}}: an optional parameter cannot have a default"));
    }
    if catch_all && optional {
        return error(format!("parameter {{{inner}}}: a catch-all parameter cannot be marked optional"));
    }
    if let Some(d) = &default
        && !constraints.iter().all(|c| c.accepts(d))
    {
        return error(format!("parameter {{{inner}}}: the default does not satisfy the constraints"));
    }
    Ok(Parameter { name: name.to_owned(), optional, catch_all, default, constraints })
}

fn parse_constraint(text: &str) -> Result<Constraint, String> {
    let (name, args) = match text.split_once('(') {
        Some((name, rest)) => {
            let args = rest.strip_suffix(')').ok_or_else(|| format!("constraint {text:?}: missing ')'"))?;
            (name, Some(args))
        }
        None => (text, None),
    };
    let number =
        |arg: &str| arg.trim().parse::<i64>().map_err(|_| format!("constraint {text:?}: {arg:?} is not an integer"));
    let count =
        |arg: &str| arg.trim().parse::<usize>().map_err(|_| format!("constraint {text:?}: {arg:?} is not a count"));
    let lower = name.to_ascii_lowercase();
    let constraint = match (lower.as_str(), args) {
        ("int", None) => Constraint::Int,
        ("long", None) => Constraint::Long,
        ("bool", None) => Constraint::Bool,
        ("guid", None) => Constraint::Guid,
        ("alpha", None) => Constraint::Alpha,
        ("double" | "float", None) => Constraint::Double,
        ("decimal", None) => Constraint::Decimal,
        ("datetime", None) => Constraint::DateTime,
        ("minlength", Some(n)) => Constraint::MinLength(count(n)?),
        ("maxlength", Some(n)) => Constraint::MaxLength(count(n)?),
        ("length", Some(args)) => match args.split_once(',') {
            Some((a, b)) => {
                let (a, b) = (count(a)?, count(b)?);
                if a > b {
                    return Err(format!("constraint {text:?}: minimum above maximum"));
                }
                Constraint::Length(a, b)
            }
            None => {
                let n = count(args)?;
                Constraint::Length(n, n)
            }
        },
        ("min", Some(n)) => Constraint::Min(number(n)?),
        ("max", Some(n)) => Constraint::Max(number(n)?),
        ("range", Some(args)) => {
            let (a, b) = args.split_once(',').ok_or_else(|| format!("constraint {text:?}: needs two arguments"))?;
            let (a, b) = (number(a)?, number(b)?);
            if a > b {
                return Err(format!("constraint {text:?}: minimum above maximum"));
            }
            Constraint::Range(a, b)
        }
        ("regex", Some(pattern)) => {
            let regex = regex::RegexBuilder::new(pattern)
                .case_insensitive(true)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("constraint {text:?}: invalid regex: {e}"))?;
            Constraint::Regex(Box::new(regex))
        }
        _ => return Err(format!("unknown constraint {text:?}")),
    };
    Ok(constraint)
}

impl Constraint {
    fn accepts(&self, value: &str) -> bool {
        match self {
            Self::Int => integer(value).is_some_and(|n| i32::try_from(n).is_ok()),
            Self::Long => integer(value).is_some(),
            Self::Bool => {
                let v = value.trim();
                v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")
            }
            Self::Guid => guid(value.trim()),
            Self::Alpha => !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphabetic()),
            Self::Double => float(value, true),
            Self::Decimal => float(value, false),
            Self::DateTime => datetime(value.trim()),
            Self::MinLength(n) => value.chars().count() >= *n,
            Self::MaxLength(n) => value.chars().count() <= *n,
            Self::Length(a, b) => (*a..=*b).contains(&value.chars().count()),
            Self::Min(n) => integer(value).is_some_and(|v| v >= *n),
            Self::Max(n) => integer(value).is_some_and(|v| v <= *n),
            Self::Range(a, b) => integer(value).is_some_and(|v| (*a..=*b).contains(&v)),
            Self::Regex(regex) => regex.is_match(value),
        }
    }
}

/// `long.TryParse(NumberStyles.Integer, InvariantCulture)`: white space around, one sign.
fn integer(value: &str) -> Option<i64> {
    let v = value.trim_matches(|c: char| c.is_ascii_whitespace());
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// `double.TryParse` (`Float | AllowThousands`) or, without `exponent`, `decimal.TryParse`
/// (`Number`), invariant culture.
fn float(value: &str, exponent: bool) -> bool {
    let v = value.trim_matches(|c: char| c.is_ascii_whitespace());
    let unsigned = v.strip_prefix(['+', '-']).unwrap_or(v);
    if exponent && ["infinity", "nan", "∞"].iter().any(|w| unsigned.eq_ignore_ascii_case(w)) {
        return true;
    }
    let (mantissa, exp) = match unsigned.find(['e', 'E']) {
        Some(i) if exponent => (&unsigned[..i], Some(&unsigned[i + 1..])),
        _ => (unsigned, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // Thousands separators: anywhere in the integer part after its first digit.
    let int_ok =
        int.is_empty() || (int.as_bytes()[0].is_ascii_digit() && int.bytes().all(|b| b.is_ascii_digit() || b == b','));
    let digits = int.bytes().filter(u8::is_ascii_digit).count() + frac.len();
    let frac_ok = frac.bytes().all(|b| b.is_ascii_digit());
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
    });
    int_ok && frac_ok && exp_ok && digits > 0
}

/// `Guid.TryParse`: `D` (8-4-4-4-12), `N` (32 hex digits), `B` (`{D}`), `P` (`(D)`).
fn guid(value: &str) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let dashed = |s: &str| {
        let parts: Vec<&str> = s.split('-').collect();
        parts.len() == 5 && parts.iter().zip([8, 4, 4, 4, 12]).all(|(p, n)| hex(p, n))
    };
    if let Some(inner) = value.strip_prefix('{').and_then(|v| v.strip_suffix('}')) {
        return dashed(inner);
    }
    if let Some(inner) = value.strip_prefix('(').and_then(|v| v.strip_suffix(')')) {
        return dashed(inner);
    }
    hex(value, 32) || dashed(value)
}

/// A subset of `DateTime.TryParse` (invariant culture): `yyyy-MM-dd`, optionally followed
/// by `T` or a space and `HH:mm[:ss[.fffffff]]`, optionally `Z` or `±hh:mm`; and `M/d/yyyy`.
fn datetime(value: &str) -> bool {
    fn num(s: &str, min_len: usize, max_len: usize, range: std::ops::RangeInclusive<u32>) -> bool {
        (min_len..=max_len).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_digit())
            && s.parse::<u32>().is_ok_and(|n| range.contains(&n))
    }
    fn date(y: &str, m: &str, d: &str) -> bool {
        if !(num(y, 4, 4, 1..=9999) && num(m, 1, 2, 1..=12) && num(d, 1, 2, 1..=31)) {
            return false;
        }
        let (y, m, d): (u32, u32, u32) = (y.parse().unwrap_or(0), m.parse().unwrap_or(0), d.parse().unwrap_or(0));
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let days = match m {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        d <= days
    }
    fn time(t: &str) -> bool {
        let t = t.strip_suffix(['Z', 'z']).unwrap_or(t);
        let t = match t.rfind(['+', '-']) {
            Some(i) => {
                let offset = &t[i + 1..];
                let ok = match offset.split_once(':') {
                    Some((h, m)) => num(h, 2, 2, 0..=14) && num(m, 2, 2, 0..=59),
                    None => num(offset, 2, 2, 0..=14),
                };
                if !ok {
                    return false;
                }
                &t[..i]
            }
            None => t,
        };
        let (hms, frac) = t.split_once('.').unwrap_or((t, "0"));
        let parts: Vec<&str> = hms.split(':').collect();
        (2..=3).contains(&parts.len())
            && num(parts[0], 1, 2, 0..=23)
            && num(parts[1], 2, 2, 0..=59)
            && parts.get(2).is_none_or(|s| num(s, 2, 2, 0..=59))
            && (1..=7).contains(&frac.len())
            && frac.bytes().all(|b| b.is_ascii_digit())
    }
    if let [m, d, y] = value.split('/').collect::<Vec<_>>()[..] {
        return date(y, m, d);
    }
    let (day, clock) = match value.split_once(['T', 't', ' ']) {
        Some((day, clock)) => (day, Some(clock)),
        None => (value, None),
    };
    let ymd: Vec<&str> = day.split('-').collect();
    let [y, m, d] = ymd[..] else { return false };
    date(y, m, d) && clock.is_none_or(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(template: &str, path: &str) -> Option<Vec<(String, Option<String>)>> {
        RouteTemplate::parse(template).unwrap().matches(path).map(|v| v.0)
    }

    fn one(template: &str, path: &str) -> Option<Option<String>> {
        values(template, path).map(|v| v.into_iter().next().and_then(|(_, v)| v))
    }

    fn ok(template: &str, path: &str) -> bool {
        values(template, path).is_some()
    }

    #[test]
    fn host_cases() {
        // (template, path, matches)
        let table: &[(&str, &str, bool)] = &[
            ("api/items", "/api/items", true),
            ("api/items", "/API/Items", true),
            ("api/items", "/api/items/", true),
            ("api/items", "/api/items//", false),
            ("api/items", "/api/item", false),
            ("api/items", "/api/items/x", false),
            ("api/items", "/api", false),
            ("api/items/{id}", "/api/items/5", true),
            ("api/items/{id}", "/api/items", false),
            ("api/items/{id}", "/api/items/", false),
            ("api/items/{id}", "/api/items/5/6", false),
            ("api/a/{x}/b", "/api/a//b", false),
            ("api/items/{id:int}", "/api/items/-5", true),
            ("api/items/{id:int}", "/api/items/+5", true),
            ("api/items/{id:int}", "/api/items/%205", true),
            ("api/items/{id:int}", "/api/items/5x", false),
            ("api/items/{id:int}", "/api/items/2147483648", false),
            ("api/items/{id:long}", "/api/items/2147483648", true),
            ("api/items/{id:INT}", "/api/items/7", true),
            ("api/f/{on:bool}", "/api/f/TRUE", true),
            ("api/f/{on:bool}", "/api/f/yes", false),
            ("api/g/{id:guid}", "/api/g/0f8fad5b-d9cb-469f-a165-70867728950e", true),
            ("api/g/{id:guid}", "/api/g/0f8fad5bd9cb469fa16570867728950e", true),
            ("api/g/{id:guid}", "/api/g/%7B0f8fad5b-d9cb-469f-a165-70867728950e%7D", true),
            ("api/g/{id:guid}", "/api/g/0f8fad5b-d9cb-469f-a165", false),
            ("api/n/{x:alpha}", "/api/n/abcXYZ", true),
            ("api/n/{x:alpha}", "/api/n/abc1", false),
            ("api/n/{x:double}", "/api/n/1,000.5e3", true),
            ("api/n/{x:double}", "/api/n/-.5", true),
            ("api/n/{x:double}", "/api/n/1.2.3", false),
            ("api/n/{x:decimal}", "/api/n/12.50", true),
            ("api/n/{x:decimal}", "/api/n/1e3", false),
            ("api/n/{x:float}", "/api/n/NaN", true),
            ("api/d/{x:datetime}", "/api/d/2024-02-29", true),
            ("api/d/{x:datetime}", "/api/d/2023-02-29", false),
            ("api/d/{x:datetime}", "/api/d/2024-10-24T17:58:31.123Z", true),
            ("api/d/{x:datetime}", "/api/d/2024-10-24T17:58:31+02:00", true),
            ("api/d/{x:datetime}", "/api/d/10%2F24%2F2024", false),
            ("api/d/{x:datetime}", "/api/d/yesterday", false),
            ("api/s/{x:minlength(3)}", "/api/s/abc", true),
            ("api/s/{x:minlength(3)}", "/api/s/ab", false),
            ("api/s/{x:maxlength(3)}", "/api/s/abcd", false),
            ("api/s/{x:length(2)}", "/api/s/ab", true),
            ("api/s/{x:length(2,4)}", "/api/s/abcde", false),
            ("api/s/{x:length(2,4)}", "/api/s/%C3%A9t%C3%A9", true),
            ("api/r/{x:min(10)}", "/api/r/9", false),
            ("api/r/{x:max(10)}", "/api/r/10", true),
            ("api/r/{x:range(1,5)}", "/api/r/5", true),
            ("api/r/{x:range(1,5)}", "/api/r/6", false),
            ("api/r/{x:int:min(1)}", "/api/r/0", false),
            ("api/r/{x:int:min(1)}", "/api/r/1", true),
            ("api/x/{code:regex(^[a-z]{{2}}\\d+$)}", "/api/x/AB12", true),
            ("api/x/{code:regex(^[a-z]{{2}}\\d+$)}", "/api/x/A12", false),
            ("api/x/{code:regex(\\d)}", "/api/x/a1b", true),
            ("api/o/{id?}", "/api/o", true),
            ("api/o/{id?}", "/api/o/", true),
            ("api/o/{id:int?}", "/api/o/x", false),
            ("api/o/{id:int?}", "/api/o", true),
            ("api/files/{*path}", "/api/files", true),
            ("api/files/{*path}", "/api/files/a/b/c.txt", true),
            ("api/files/{**path}", "/api/files/a/b", true),
        ];
        for (template, path, expected) in table {
            assert_eq!(ok(template, path), *expected, "{template} vs {path}");
        }
    }

    #[test]
    fn values_are_decoded_with_defaults_and_absent_optionals() {
        assert_eq!(one("items/{id}", "/items/a%20b"), Some(Some("a b".into())));
        assert_eq!(one("items/{id}", "/items/a%2Fb"), Some(Some("a%2Fb".into())));
        assert_eq!(one("items/{id}", "/items/%ZZ"), Some(Some("%ZZ".into())));
        assert_eq!(one("items/{id=5}", "/items"), Some(Some("5".into())));
        assert_eq!(one("items/{id=5}", "/items/7"), Some(Some("7".into())));
        assert_eq!(one("items/{id?}", "/items"), Some(None));
        assert_eq!(one("files/{*path}", "/files/a/b%20c/"), Some(Some("a/b c".into())));
        assert_eq!(one("files/{*path}", "/files/"), Some(None));
        assert_eq!(values("{a}/{b?}", "/x").unwrap(), [("a".into(), Some("x".into())), ("b".into(), None)]);
        let v = RouteTemplate::parse("orders/{ID:int}").unwrap().matches("/orders/3").unwrap();
        assert_eq!((v.get("id"), v.len()), (Some("3"), 1));
    }

    #[test]
    fn params_from_the_host_are_filtered_defaulted_and_rechecked() {
        let t = RouteTemplate::parse("orders/{id:int}/{tag=all}/{extra?}").unwrap();
        let v = t.accept_values([("ID", Some("4")), ("unknown", Some("x")), ("extra", None)]).unwrap();
        assert_eq!(v.iter().collect::<Vec<_>>(), [("id", Some("4")), ("tag", Some("all")), ("extra", None)]);
        assert!(t.accept_values([("id", Some("four"))]).is_none(), "mistyped");
        assert!(t.accept_values([("other", Some("4"))]).is_none(), "required missing");
        assert!(t.accept_values([("id", None)]).is_none());
    }

    #[test]
    fn invalid_templates_are_refused_with_a_reason() {
        for (template, reason) in [
            ("items/{id", "literals and parameters"),
            ("items/{id}.{ext}", "literals and parameters"),
            ("file{n}", "literals and parameters"),
            ("items/{id:nope}", "unknown constraint"),
            ("items/{id:min(x)}", "not an integer"),
            ("items/{id:length(5,2)}", "minimum above maximum"),
            ("items/{id:regex(()}", "invalid regex"),
            ("{*rest}/x", "must be the last segment"),
            ("{id}/{ID}", "appears twice"),
            ("{id=5?}", "cannot have a default"),
            ("{*rest?}", "cannot be marked optional"),
            ("{id:int=x}", "default does not satisfy"),
            ("a//b", "empty segment"),
            ("{}", "invalid name"),
        ] {
            let err = RouteTemplate::parse(template).unwrap_err().to_string();
            assert!(err.contains(reason), "{template}: {err}");
        }
        assert_eq!(RouteTemplate::parse("/a/{{x}}/").unwrap().matches("/A/%7Bx%7D").map(|v| v.len()), Some(0));
    }

    #[test]
    fn join_follows_the_prefix_rule() {
        assert_eq!(RouteTemplate::join("api", "/orders/{id}").unwrap().text(), "api/orders/{id}");
        assert_eq!(RouteTemplate::join("", "orders").unwrap().text(), "orders");
        assert!(RouteTemplate::join("api", "orders/{id}").unwrap().has_parameters());
        assert_eq!(RouteTemplate::parse("a/{x}/{y}").unwrap().parameter_names().collect::<Vec<_>>(), ["x", "y"]);
    }
}
