//! Route templates (`orders/{id:int}`, `files/{name}.{ext?}`, `{*path}`) parsed once at
//! start-up and matched exactly as the Functions host matches them. The host maps each HTTP
//! function's `{routePrefix}/{route}` with legacy ASP.NET Core routing (`Route` in a
//! `RouteCollection`, `DefaultInlineConstraintResolver`, `TemplateMatcher` over
//! `RoutePatternMatcher`); this module is a port of those parts:
//!
//! - `parse`: `RoutePatternParser` / `RouteParameterParser`: segments of literal and
//!   parameter parts, escaped braces, `/` inside a parameter, `~/`, and every refusal;
//! - `constraint`: the inline constraints .NET 8 registers and how each checks a value;
//! - here: `RoutePatternMatcher.TryMatch` (segment walk, empty segments refused, catch-all
//!   remainders kept as they are, defaults and optional values) and `MatchComplexSegment`
//!   (right-to-left literal search in segments such as `{name}.{ext}`), then the route's
//!   constraint check (`RouteConstraintMatcher`, `OptionalRouteConstraint`).
//!
//! Literals compare as .NET's `StringComparison.OrdinalIgnoreCase` does (simple upper-case
//! mapping, any script); values are the path as Kestrel decodes it (everything but `%2F`).

mod constraint;
mod parse;

use std::borrow::Cow;
use std::fmt;

use constraint::Constraint;

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

/// A path segment of the template. Literal-only and single-parameter segments (the
/// `IsSimple` ones) are matched without looking inside the request segment.
#[derive(Debug, Clone)]
enum Segment {
    Literal(Literal),
    Parameter(Parameter),
    /// Several parts, never two parameters side by side; `optional_last`: the last part is
    /// an optional parameter after a `.` (a `RoutePatternSeparatorPart` in .NET).
    Complex {
        parts: Vec<Part>,
        optional_last: bool,
    },
}

impl Segment {
    fn new(mut parts: Vec<Part>) -> Self {
        if parts.len() == 1 {
            match parts.pop() {
                Some(Part::Literal(text)) => return Self::Literal(Literal { ascii: text.is_ascii(), text }),
                Some(Part::Parameter(p)) => return Self::Parameter(p),
                None => {}
            }
        }
        let optional_last = matches!(parts.last(), Some(Part::Parameter(p)) if p.optional);
        Self::Complex { parts, optional_last }
    }
}

/// A literal segment; `ascii`: then a request segment can only equal it ignoring ASCII case
/// (.NET's mapping never takes a non-ASCII character onto an ASCII one), the fast path.
#[derive(Debug, Clone)]
struct Literal {
    text: String,
    ascii: bool,
}

impl Literal {
    fn matches(&self, segment: &str) -> bool {
        if self.ascii { segment.eq_ignore_ascii_case(&self.text) } else { ordinal_eq(segment, &self.text) }
    }
}

#[derive(Debug, Clone)]
enum Part {
    Literal(String),
    Parameter(Parameter),
}

#[derive(Debug, Clone)]
struct Parameter {
    name: String,
    /// Position among the template's parameters (the order of [`RouteValues`]).
    index: usize,
    optional: bool,
    catch_all: bool,
    default: Option<String>,
    constraints: Vec<Constraint>,
}

/// A template the host would refuse, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(String);

/// Values of a route's parameters, in template order; `None` for an absent optional one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteValues(Vec<(String, Option<String>)>);

impl RouteValues {
    /// The value of parameter `name` (case-insensitive, as the host's route values); `None`
    /// if absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| ordinal_eq(n, name)).and_then(|(_, v)| v.as_deref())
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

/// .NET's upper-case mapping as `OrdinalIgnoreCase` applies it (`OrdinalCasing`): the simple
/// one-to-one mapping, never a non-ASCII character onto an ASCII one (`ı` and `ſ` stay
/// themselves), and beyond the BMP only the six scripts .NET maps (Deseret, Osage, Old
/// Hungarian, Warang Citi, Medefaidrin, Adlam).
fn fold(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_uppercase();
    }
    if u32::from(c) > 0xFFFF
        && ![
            0x10428..=0x1044F,
            0x104D8..=0x104FB,
            0x10CC0..=0x10CF2,
            0x118C0..=0x118DF,
            0x16E60..=0x16E7F,
            0x1E922..=0x1E943,
        ]
        .iter()
        .any(|lower| lower.contains(&u32::from(c)))
    {
        return c;
    }
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) if !u.is_ascii() => u,
        _ => c,
    }
}

/// `string.Equals(a, b, StringComparison.OrdinalIgnoreCase)`.
fn ordinal_eq(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    let mut left = a.chars();
    let mut right = b.chars();
    loop {
        match (left.next(), right.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x == y || fold(x) == fold(y) => {}
            _ => return false,
        }
    }
}

/// If `needle` matches `haystack` at byte `start` (ordinal, ignoring case), the byte index
/// where the match ends.
fn ordinal_match_at(haystack: &str, start: usize, needle: &str) -> Option<usize> {
    let mut rest = haystack[start..].char_indices();
    let mut end = start;
    for n in needle.chars() {
        let (i, h) = rest.next()?;
        if h != n && fold(h) != fold(n) {
            return None;
        }
        end = start + i + h.len_utf8();
    }
    Some(end)
}

/// `haystack[..limit].LastIndexOf(needle, StringComparison.OrdinalIgnoreCase)`: the start of
/// the right-most match that ends at or before `limit`.
fn ordinal_rfind(haystack: &str, limit: usize, needle: &str) -> Option<usize> {
    let window = &haystack[..limit];
    let starts = window.char_indices().map(|(i, _)| i).chain(std::iter::once(limit)).rev();
    for start in starts {
        if let Some(end) = ordinal_match_at(window, start, needle)
            && end <= limit
        {
            return Some(start);
        }
    }
    None
}

impl RouteTemplate {
    /// Parses a template as the host's `TemplateParser.Parse` does (one leading `/` or `~/`
    /// dropped, a trailing `/` allowed) and resolves its constraints; every template the host
    /// refuses is refused with its reason.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let (segments, parameters) = parse::parse(template)?;
        let text = template.strip_prefix("~/").or_else(|| template.strip_prefix('/')).unwrap_or(template);
        let text = text.strip_suffix('/').unwrap_or(text).to_owned();
        Ok(Self { text, segments, parameters })
    }

    /// A function's route as the host maps it under a non-empty route prefix: the template is
    /// `{prefix}/{route}` (`WebJobsRouteBuilder`), so the route's start is not trimmed (`~/x`
    /// begins with a literal `~` segment, `/x` with an empty segment, which is refused). The
    /// result matches the path after the prefix.
    pub fn parse_after_prefix(route: &str) -> Result<Self, TemplateError> {
        if route.starts_with('/') {
            return Err(TemplateError(
                "under a route prefix the host maps \"{prefix}//...\": a route cannot start with '/'".into(),
            ));
        }
        let (mut segments, parameters) = parse::parse(&format!("prefix/{route}"))?;
        segments.remove(0);
        let text = route.strip_suffix('/').unwrap_or(route).to_owned();
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

    /// The template (without a leading `/` or `~/` or a trailing `/`).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The template's segments as written (`files`, `{name}.{ext?}`, `{*p:regex(^a/b$)}`):
    /// split at each `/` outside a parameter.
    pub fn segment_texts(&self) -> Vec<&str> {
        let bytes = self.text.as_bytes();
        let (mut out, mut start, mut i, mut inside) = (Vec::new(), 0, 0, false);
        while i < bytes.len() {
            match (bytes[i], bytes.get(i + 1), inside) {
                (b'{', Some(b'{'), _) | (b'}', Some(b'}'), _) => i += 1,
                (b'{', _, false) => inside = true,
                (b'}', _, true) => inside = false,
                (b'/', _, false) => {
                    out.push(&self.text[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
            i += 1;
        }
        if start < self.text.len() {
            out.push(&self.text[start..]);
        }
        out
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
        self.segments.iter().flat_map(|s| {
            let (single, parts): (Option<&Parameter>, &[Part]) = match s {
                Segment::Literal(_) => (None, &[]),
                Segment::Parameter(p) => (Some(p), &[]),
                Segment::Complex { parts, .. } => (None, parts),
            };
            single.into_iter().chain(parts.iter().filter_map(|part| match part {
                Part::Parameter(p) => Some(p),
                Part::Literal(_) => None,
            }))
        })
    }

    /// Matches a request path (`/api/orders/12`, percent-encoded as on the wire) as the
    /// host's `Route` does: `TryMatch`, then every constraint. Nothing is allocated until the
    /// path's shape matches, and nothing at all for a literal-only template.
    pub fn matches(&self, path: &str) -> Option<RouteValues> {
        if !self.shape_matches(path) {
            return None;
        }
        if self.parameters == 0 {
            return Some(RouteValues::default());
        }
        // Every parameter's slot, in template order; filled by position.
        let mut slots: Vec<(String, Option<String>)> = self.parameters().map(|p| (p.name.clone(), None)).collect();
        let mut segments = self.segments.iter();
        let mut tokens = Tokens::new(path);
        for segment in segments.by_ref() {
            let Some((token, offset)) = tokens.next() else {
                // Past the path: what remains are optional, defaulted or catch-all
                // parameters (checked by `shape_matches`).
                if let Segment::Parameter(p) = segment {
                    slots[p.index].1 = p.default.clone();
                }
                continue;
            };
            match segment {
                Segment::Parameter(p) if p.catch_all => {
                    // A catch-all keeps the rest of the path exactly, trailing slashes too.
                    slots[p.index].1 = Some(decode(&path[offset..]).into_owned());
                    break;
                }
                Segment::Parameter(p) => slots[p.index].1 = Some(decode(token).into_owned()),
                Segment::Literal(_) => {}
                Segment::Complex { parts, optional_last } => {
                    if !match_complex(parts, *optional_last, &decode(token), Some(&mut slots)) {
                        return None;
                    }
                }
            }
        }
        if !self.parameters().all(|p| p.accepts(slots[p.index].1.as_deref())) {
            return None;
        }
        Some(RouteValues(slots))
    }

    /// The first pass of `RoutePatternMatcher.TryMatch`, allocation-free: every path segment
    /// non-empty, literals equal, complex segments matching, and template segments left over
    /// only when they need no value.
    fn shape_matches(&self, path: &str) -> bool {
        let mut tokens = Tokens::new(path);
        let mut segments = self.segments.iter();
        for (token, _) in tokens.by_ref() {
            if token.is_empty() {
                return false;
            }
            match segments.next() {
                None => return false,
                Some(Segment::Parameter(p)) if p.catch_all => return true,
                Some(Segment::Parameter(_)) => {}
                Some(Segment::Literal(literal)) => {
                    if !literal.matches(&decode(token)) {
                        return false;
                    }
                }
                Some(Segment::Complex { parts, optional_last }) => {
                    if !match_complex(parts, *optional_last, &decode(token), None) {
                        return false;
                    }
                }
            }
        }
        segments.all(|segment| match segment {
            Segment::Parameter(p) => p.catch_all || p.optional || p.default.is_some(),
            Segment::Literal(_) | Segment::Complex { .. } => false,
        })
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
            let value = given.iter().rev().find(|(n, _)| ordinal_eq(n, &p.name)).and_then(|(_, v)| *v);
            let value = value.filter(|v| !v.is_empty()).map(str::to_owned).or_else(|| p.default.clone());
            if value.is_none() && !(p.optional || p.catch_all) {
                return None;
            }
            if !p.accepts(value.as_deref()) {
                return None;
            }
            accepted.push((p.name.clone(), value));
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
    /// The route's constraint check for this parameter: an optional parameter without a
    /// value skips its constraints (`OptionalRouteConstraint`); any other parameter without
    /// one (an empty catch-all) is checked as `null`.
    fn accepts(&self, value: Option<&str>) -> bool {
        if value.is_none() && self.optional {
            return true;
        }
        self.constraints.iter().all(|c| c.accepts(value))
    }
}

/// `PathTokenizer`: the segments of a path that starts with `/`, a trailing `/` ignored;
/// each with its byte offset in the path.
struct Tokens<'p> {
    path: &'p str,
    next: usize,
}

impl<'p> Tokens<'p> {
    fn new(path: &'p str) -> Self {
        // Paths always start with '/' here; one that does not is read as if it did.
        let next = usize::from(path.starts_with('/'));
        Self { path, next }
    }
}

impl<'p> Iterator for Tokens<'p> {
    type Item = (&'p str, usize);

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.next;
        if start >= self.path.len() {
            return None;
        }
        // A byte scan: segments are short, shorter than a searcher takes to set up.
        match self.path.as_bytes()[start..].iter().position(|&b| b == b'/') {
            Some(i) => {
                self.next = start + i + 1;
                Some((&self.path[start..start + i], start))
            }
            None => {
                self.next = self.path.len();
                Some((&self.path[start..], start))
            }
        }
    }
}

/// `MatchComplexSegment`: a segment of several parts against one request segment. With an
/// optional last parameter after a `.`, first with it, then (unless the request segment
/// ends with the `.`) without it. Values go to `slots` when given.
fn match_complex(
    parts: &[Part],
    optional_last: bool,
    segment: &str,
    mut slots: Option<&mut Vec<(String, Option<String>)>>,
) -> bool {
    let last = parts.len() as isize - 1;
    if !optional_last {
        return match_complex_core(parts, segment, last, slots);
    }
    if match_complex_core(parts, segment, last, slots.as_deref_mut()) {
        return true;
    }
    if let Some(slots) = slots.as_deref_mut() {
        // Values of the failed attempt are not kept.
        for part in parts {
            if let Part::Parameter(p) = part {
                slots[p.index].1 = None;
            }
        }
    }
    if segment.ends_with('.') {
        return false;
    }
    // Without the optional parameter and its period; in `.{ext?}` nothing is left, and an
    // empty walk fails on the literal first part, as in .NET.
    match_complex_core(parts, segment, last - 2, slots)
}

/// `MatchComplexSegmentCore`: from the right, each literal is searched right-to-left
/// (leaving at least one character for a pending parameter), and a parameter takes the text
/// between its neighbours; the left-most parameter takes everything left of its literal.
fn match_complex_core(
    parts: &[Part],
    segment: &str,
    last_used: isize,
    mut slots: Option<&mut Vec<(String, Option<String>)>>,
) -> bool {
    let mut last_index = segment.len();
    let mut pending: Option<&Parameter> = None;
    let mut last_literal: Option<&str> = None;
    let mut index = last_used;
    while index >= 0 {
        let part = &parts[index as usize];
        let mut new_last_index = last_index;
        match part {
            Part::Parameter(p) => pending = Some(p),
            Part::Literal(literal) => {
                last_literal = Some(literal);
                let mut start = last_index;
                if pending.is_some() {
                    // Leave at least one character for the parameter.
                    match segment[..start].char_indices().next_back() {
                        Some((i, _)) => start = i,
                        None => return false,
                    }
                }
                if start == 0 {
                    return false;
                }
                let Some(at) = ordinal_rfind(segment, start, literal) else { return false };
                // The right-most literal must end the request segment ("/Foo/" is not
                // "/somethingFoo/"), when it is the template segment's last part.
                if index as usize == parts.len() - 1 && ordinal_match_at(segment, at, literal) != Some(segment.len()) {
                    return false;
                }
                new_last_index = at;
            }
        }
        if let Some(p) = pending
            && ((last_literal.is_some() && matches!(part, Part::Literal(_))) || index == 0)
        {
            let (value_start, value_end) = match (last_literal, part) {
                (None, _) | (Some(_), Part::Parameter(_)) => (0, last_index),
                (Some(literal), Part::Literal(_)) => {
                    let end_of_literal = ordinal_match_at(segment, new_last_index, literal).unwrap_or(new_last_index);
                    (end_of_literal, last_index)
                }
            };
            if value_end <= value_start {
                // Every parameter of a complex segment needs a non-empty value.
                return false;
            }
            // Written at once: a failed attempt's values are cleared by the caller.
            if let Some(slots) = slots.as_deref_mut() {
                slots[p.index].1 = Some(segment[value_start..value_end].to_owned());
            }
            pending = None;
            last_literal = None;
        }
        last_index = new_last_index;
        index -= 1;
    }
    // A literal first part must have consumed the segment's start ("Foo" is not
    // "somethingFoo").
    if last_index != 0 && !matches!(parts[0], Part::Parameter(_)) {
        return false;
    }
    true
}

/// Percent-decodes a path piece as Kestrel does: everything but `%2F`, which stays encoded
/// (so it never becomes a segment separator). Invalid UTF-8 keeps the raw text.
fn decode(raw: &str) -> Cow<'_, str> {
    if !raw.as_bytes().contains(&b'%') {
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
        assert_eq!(one("files/{*path}", "/files/a/b%20c/"), Some(Some("a/b c/".into())), "the rest, as it is");
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
            ("items/{id", "incomplete parameter"),
            ("items/{id:nope}", "unknown constraint"),
            ("items/{id:min(x)}", "not an Int64"),
            ("items/{id:length(5,2)}", "above the maximum"),
            ("items/{id:regex(()}", "invalid regex"),
            ("{*rest}/x", "last segment"),
            ("{id}/{ID}", "appears more than once"),
            ("{id=5?}", "cannot have a default"),
            ("{*rest?}", "cannot be marked optional"),
            ("a//b", "empty segment"),
            ("{}", "is invalid"),
        ] {
            let err = RouteTemplate::parse(template).unwrap_err().to_string();
            assert!(err.contains(reason), "{template}: {err}");
        }
        assert_eq!(RouteTemplate::parse("/a/{{x}}/").unwrap().matches("/A/%7Bx%7D").map(|v| v.len()), Some(0));
    }

    #[test]
    fn ordinal_ignore_case_folds_every_script_but_never_onto_ascii() {
        assert!(!ordinal_eq("straße", "STRASSE"), "one character to one");
        assert!(ordinal_eq("Ärger", "äRGER"));
        assert!(ordinal_eq("ΣΟΦΊΑ", "σοφία"));
        assert!(!ordinal_eq("ı", "I"), "dotless i is not I");
        assert!(!ordinal_eq("\u{212A}", "k"), "the Kelvin sign is not k");
        assert!(ordinal_eq("\u{10428}", "\u{10400}"), "Deseret is mapped");
        assert!(!ordinal_eq("\u{10597}", "\u{10570}"), "Vithkuqi is not, in .NET 8");
        assert!(ordinal_eq("µ", "Μ"), "micro sign to capital mu, as OrdinalCasing's Latin-1 table");
        assert_eq!(ordinal_rfind("a.B.c", 5, "b."), Some(2));
        assert_eq!(ordinal_rfind("éé", 4, "É"), Some(2));
        assert_eq!(ordinal_rfind("éé", 2, "É"), Some(0));
    }

    #[test]
    fn complex_segment_values_are_written_only_on_success() {
        let t = RouteTemplate::parse("{a}.{b?}").unwrap();
        let v = t.matches("/x").unwrap();
        assert_eq!(v.iter().collect::<Vec<_>>(), [("a", Some("x")), ("b", None)]);
    }

    #[test]
    fn join_follows_the_prefix_rule() {
        assert_eq!(RouteTemplate::join("api", "/orders/{id}").unwrap().text(), "api/orders/{id}");
        assert_eq!(RouteTemplate::join("", "orders").unwrap().text(), "orders");
        assert!(RouteTemplate::join("api", "orders/{id}").unwrap().has_parameters());
        assert_eq!(RouteTemplate::parse("a/{x}/{y}").unwrap().parameter_names().collect::<Vec<_>>(), ["x", "y"]);
    }
}
