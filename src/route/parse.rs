//! The template parser, ported from ASP.NET Core's `RoutePatternParser` and
//! `RouteParameterParser` (what the host's legacy `TemplateParser.Parse` runs): the same
//! character walk, so the same templates are accepted, split into the same parts, and refused
//! for the same reasons. Comments name the .NET error each refusal stands for.

use super::constraint::Constraint;
use super::{Parameter, Part, Segment, TemplateError, ordinal_eq};

/// A segment's parts before they are sorted into [`Segment`] kinds.
enum Raw {
    Literal(String),
    Parameter(RawParameter),
}

/// `RoutePatternParameterPart` before its constraints are resolved.
struct RawParameter {
    name: String,
    optional: bool,
    catch_all: bool,
    default: Option<String>,
    constraints: Vec<String>,
}

fn fail<T>(reason: impl Into<String>) -> Result<T, TemplateError> {
    Err(TemplateError(reason.into()))
}

const MISMATCHED: &str = "there is an incomplete parameter in the route template: each '{' needs a matching '}' \
                          (literal braces are written '{{' and '}}')";

/// Parses `template` into segments and the parameter count, as `TemplateParser.Parse` and
/// the `Route` constructor (constraint resolution) do.
pub(super) fn parse(template: &str) -> Result<(Vec<Segment>, usize), TemplateError> {
    // `TrimPrefix`: "~/" or one "/" is dropped; "~" alone at the start is refused.
    let trimmed = if let Some(rest) = template.strip_prefix("~/") {
        rest
    } else if let Some(rest) = template.strip_prefix('/') {
        rest
    } else if template.starts_with('~') {
        return fail("the route template cannot start with '~' unless it is followed by '/'");
    } else {
        template
    };
    let chars: Vec<char> = trimmed.chars().collect();
    let mut names: Vec<String> = Vec::new();
    let mut raw_segments: Vec<Vec<Raw>> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '/' {
            return fail("the separator '/' cannot appear twice in a row: an empty segment");
        }
        let parts = parse_segment(&chars, &mut i, &mut names)?;
        raw_segments.push(parts);
        // At a separator or the end; a trailing separator is allowed.
        i += 1;
    }
    // `IsAllValid`: a catch-all must be the last part of the last segment.
    for (s, parts) in raw_segments.iter().enumerate() {
        for (p, part) in parts.iter().enumerate() {
            if let Raw::Parameter(parameter) = part
                && parameter.catch_all
                && (s + 1 != raw_segments.len() || p + 1 != parts.len())
            {
                return fail("a catch-all parameter can only be the last segment of the route template");
            }
        }
    }
    let mut index = 0;
    let mut segments = Vec::with_capacity(raw_segments.len());
    for parts in raw_segments {
        let mut resolved = Vec::with_capacity(parts.len());
        for part in parts {
            resolved.push(match part {
                Raw::Literal(text) => Part::Literal(text),
                Raw::Parameter(raw) => {
                    let parameter = resolve(raw, index)?;
                    index += 1;
                    Part::Parameter(parameter)
                }
            });
        }
        segments.push(Segment::new(resolved));
    }
    Ok((segments, index))
}

/// The `Route` constructor's constraint resolution (`DefaultInlineConstraintResolver`).
fn resolve(raw: RawParameter, index: usize) -> Result<Parameter, TemplateError> {
    let mut constraints = Vec::with_capacity(raw.constraints.len());
    for text in &raw.constraints {
        let constraint = Constraint::resolve(text)
            .map_err(|reason| TemplateError(format!("parameter {{{}}}: constraint {text:?}: {reason}", raw.name)))?;
        constraints.push(constraint);
    }
    Ok(Parameter {
        name: raw.name,
        index,
        optional: raw.optional,
        catch_all: raw.catch_all,
        default: raw.default,
        constraints,
    })
}

/// `ParseSegment`: parts up to the next separator (outside a parameter) or the end; `i` is
/// left on that separator or at the end.
fn parse_segment(chars: &[char], i: &mut usize, names: &mut Vec<String>) -> Result<Vec<Raw>, TemplateError> {
    let mut parts = Vec::new();
    loop {
        if chars[*i] == '{' {
            match chars.get(*i + 1) {
                None => return fail(MISMATCHED),
                Some('{') => parse_literal(chars, i, &mut parts)?,
                Some(_) => parse_parameter(chars, i, &mut parts, names)?,
            }
        } else {
            parse_literal(chars, i, &mut parts)?;
        }
        if *i >= chars.len() || chars[*i] == '/' {
            break;
        }
    }
    validate_segment(&mut parts)?;
    Ok(parts)
}

/// `ParseLiteral`: up to a separator, an unescaped `{` or the end; `{{` and `}}` are braces.
fn parse_literal(chars: &[char], i: &mut usize, parts: &mut Vec<Raw>) -> Result<(), TemplateError> {
    let start = *i;
    loop {
        match chars[*i] {
            '/' => break,
            '{' => match chars.get(*i + 1) {
                None => return fail(MISMATCHED),
                Some('{') => *i += 1,
                // The start of a parameter.
                Some(_) => break,
            },
            '}' => match chars.get(*i + 1) {
                Some('}') => *i += 1,
                _ => return fail(MISMATCHED),
            },
            _ => {}
        }
        *i += 1;
        if *i >= chars.len() {
            break;
        }
    }
    let encoded: String = chars[start..*i].iter().collect();
    let literal = encoded.replace("}}", "}").replace("{{", "{");
    if literal.contains('?') {
        return fail(format!("the literal {literal:?} is invalid: literals cannot contain '?'"));
    }
    parts.push(Raw::Literal(literal));
    Ok(())
}

/// `ParseParameter`: `{` ... `}`, where braces inside (in a constraint) are doubled and `/`
/// is an ordinary character.
fn parse_parameter(
    chars: &[char],
    i: &mut usize,
    parts: &mut Vec<Raw>,
    names: &mut Vec<String>,
) -> Result<(), TemplateError> {
    let start = *i;
    *i += 1;
    loop {
        match chars[*i] {
            '{' => match chars.get(*i + 1) {
                Some('{') => *i += 1,
                Some(_) => return fail("inside a route parameter, '{' and '}' must be escaped as '{{' and '}}'"),
                None => return fail(MISMATCHED),
            },
            '}' => {
                *i += 1;
                if chars.get(*i) != Some(&'}') {
                    // The end of the parameter (or of the template).
                    break;
                }
            }
            _ => {}
        }
        *i += 1;
        if *i >= chars.len() {
            return fail(MISMATCHED);
        }
    }
    let text: String = chars[start..*i].iter().collect();
    let inside = &text[1..text.len() - 1];
    let decoded = inside.replace("}}", "}").replace("{{", "{");
    let parameter = parse_parameter_text(&decoded);
    if decoded.starts_with('*') && decoded.ends_with('?') {
        return fail("a catch-all parameter cannot be marked optional");
    }
    if parameter.optional && parameter.default.is_some() {
        return fail(format!("parameter {{{decoded}}}: an optional parameter cannot have a default value"));
    }
    if parameter.name.is_empty() || parameter.name.contains(['/', '{', '}', '?', '*']) {
        return fail(format!(
            "the parameter name {:?} is invalid: names are non-empty and contain none of '{{', '}}', '/'; \
             '?' (optional) may only end a parameter and '*' (catch-all) only start it",
            parameter.name
        ));
    }
    if names.iter().any(|n| ordinal_eq(n, &parameter.name)) {
        return fail(format!("the parameter name {:?} appears more than once in the route template", parameter.name));
    }
    names.push(parameter.name.clone());
    parts.push(Raw::Parameter(parameter));
    Ok(())
}

/// `IsSegmentValid`: catch-alls alone in their segment; an optional parameter in a segment
/// of several parts only last and only after a period; no two parameters side by side.
fn validate_segment(parts: &mut [Raw]) -> Result<(), TemplateError> {
    let shown = || parts_text(parts);
    if parts.len() > 1 && parts.iter().any(|p| matches!(p, Raw::Parameter(q) if q.catch_all)) {
        return fail(format!(
            "the segment {:?} has several parts (literals or parameters) and so cannot contain a catch-all parameter",
            shown()
        ));
    }
    if parts.len() > 1 {
        for (i, part) in parts.iter().enumerate() {
            let Raw::Parameter(parameter) = part else { continue };
            if !parameter.optional {
                continue;
            }
            if i + 1 != parts.len() {
                return fail(format!(
                    "an optional parameter must end its segment: in {:?}, {:?} is followed by {:?}",
                    shown(),
                    parameter.name,
                    part_text(&parts[i + 1])
                ));
            }
            match &parts[i - 1] {
                Raw::Literal(text) if text == "." => {}
                previous => {
                    return fail(format!(
                        "in the segment {:?}, the optional parameter {:?} follows {:?}: only a period (.) can \
                         precede an optional parameter",
                        shown(),
                        parameter.name,
                        part_text(previous)
                    ));
                }
            }
        }
    }
    if parts.windows(2).any(|w| matches!(w, [Raw::Parameter(_), Raw::Parameter(_)])) {
        return fail(format!(
            "the segment {:?} has two parameters side by side: they must be separated by '/' or a literal",
            shown()
        ));
    }
    Ok(())
}

fn part_text(part: &Raw) -> String {
    match part {
        Raw::Literal(text) => text.clone(),
        Raw::Parameter(p) => {
            let mut out = String::from("{");
            if p.catch_all {
                out.push('*');
            }
            out.push_str(&p.name);
            for c in &p.constraints {
                out.push(':');
                out.push_str(c);
            }
            if let Some(d) = &p.default {
                out.push('=');
                out.push_str(d);
            }
            if p.optional {
                out.push('?');
            }
            out.push('}');
            out
        }
    }
}

fn parts_text(parts: &[Raw]) -> String {
    parts.iter().map(part_text).collect()
}

/// `RouteParameterParser.ParseRouteParameter`: the inside of `{...}` (braces already
/// unescaped) as name, kind, constraint texts and default.
fn parse_parameter_text(parameter: &str) -> RawParameter {
    let text: Vec<char> = parameter.chars().collect();
    let mut raw =
        RawParameter { name: String::new(), optional: false, catch_all: false, default: None, constraints: Vec::new() };
    if text.is_empty() {
        return raw;
    }
    let sub = |from: isize, to: isize| -> String { text[from as usize..to as usize].iter().collect() };
    let mut start: isize = 0;
    let mut end = text.len() as isize - 1;
    if parameter.starts_with("**") {
        raw.catch_all = true;
        start = 2;
    } else if parameter.starts_with('*') {
        raw.catch_all = true;
        start = 1;
    }
    if text[end as usize] == '?' {
        // The kind becomes Optional (no longer CatchAll), as in .NET.
        raw.optional = true;
        raw.catch_all = false;
        end -= 1;
    }
    let mut current = start;
    while current <= end {
        let c = text[current as usize];
        // A name may start with ':' or '=' ("{:x}" is a parameter named ":x").
        if (c == ':' || c == '=') && current != start {
            raw.name = sub(start, current);
            current -= 1;
            break;
        } else if current == end {
            raw.name = sub(start, current + 1);
        }
        current += 1;
    }
    let (after, constraints) = parse_constraints(&text, current, end);
    raw.constraints = constraints;
    if after <= end && after >= 0 && text[after as usize] == '=' {
        raw.default = Some(sub(after + 1, end + 1));
    }
    raw
}

#[derive(PartialEq)]
enum State {
    Start,
    ParsingName,
    InsideParenthesis,
    End,
}

/// `RouteParameterParser.ParseConstraints`: `:name`, `:name(args)` (args may hold `:`, `=`
/// and `)` when a later `)` closes them) up to a default `=` or the end.
fn parse_constraints(text: &[char], mut current: isize, end: isize) -> (isize, Vec<String>) {
    let sub = |from: isize, to: isize| -> String { text[from as usize..to as usize].iter().collect() };
    let at = |i: isize| -> Option<char> { if i > end || i < 0 { None } else { Some(text[i as usize]) } };
    let mut constraints = Vec::new();
    let mut state = State::Start;
    let mut start = current;
    loop {
        let c = at(current);
        match state {
            State::Start => match c {
                None => state = State::End,
                Some(':') => {
                    state = State::ParsingName;
                    start = current + 1;
                }
                Some('(') => state = State::InsideParenthesis,
                Some('=') => {
                    state = State::End;
                    current -= 1;
                }
                Some(_) => {}
            },
            State::InsideParenthesis => match c {
                None => {
                    state = State::End;
                    constraints.push(sub(start, current));
                }
                Some(')') => match at(current + 1) {
                    None => {
                        state = State::End;
                        constraints.push(sub(start, current + 1));
                    }
                    Some(':') => {
                        state = State::Start;
                        constraints.push(sub(start, current + 1));
                        start = current + 1;
                    }
                    Some('=') => {
                        state = State::End;
                        constraints.push(sub(start, current + 1));
                    }
                    Some(_) => {}
                },
                Some(delimiter @ (':' | '=')) => {
                    // The delimiter belongs to the arguments when a ')' follows anywhere.
                    let close = text[(current + 1) as usize..].iter().position(|&c| c == ')');
                    match close {
                        Some(offset) => current += 1 + offset as isize,
                        None => {
                            constraints.push(sub(start, current));
                            if delimiter == ':' {
                                state = State::ParsingName;
                                start = current + 1;
                            } else {
                                state = State::End;
                                current -= 1;
                            }
                        }
                    }
                }
                Some(_) => {}
            },
            State::ParsingName => match c {
                None => {
                    state = State::End;
                    if current > start {
                        constraints.push(sub(start, current));
                    }
                }
                Some(':') => {
                    if current > start {
                        constraints.push(sub(start, current));
                    }
                    start = current + 1;
                }
                Some('(') => state = State::InsideParenthesis,
                Some('=') => {
                    state = State::End;
                    if current > start {
                        constraints.push(sub(start, current));
                    }
                    current -= 1;
                }
                Some(_) => {}
            },
            State::End => {}
        }
        current += 1;
        if state == State::End {
            break;
        }
    }
    (current, constraints)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of aspnetcore `src/Http/Routing/test/UnitTests/Patterns/InlineRouteParameterParserTest.cs`:
    /// the inside of a parameter as name, default, optional and constraint texts.
    #[test]
    fn parameter_texts_split_as_route_parameter_parser_does() {
        type Row<'a> = (&'a str, &'a str, Option<&'a str>, bool, &'a [&'a str]);
        let rows: &[Row<'_>] = &[
            ("=", "=", None, false, &[]),
            (":", ":", None, false, &[]),
            ("param=", "param", Some(""), false, &[]),
            ("param:", "param", None, false, &[]),
            ("param:=", "param", Some(""), false, &[]),
            ("param=:", "param", Some(":"), false, &[]),
            ("param:int=111111", "param", Some("111111"), false, &["int"]),
            (r"param:test(\d+)=111111", "param", Some("111111"), false, &[r"test(\d+)"]),
            ("param:int?", "param", None, true, &["int"]),
            ("param:int=12?", "param", Some("12"), true, &["int"]),
            ("param:int=12??", "param", Some("12?"), true, &["int"]),
            (r"param:test(\d+)?", "param", None, true, &[r"test(\d+)"]),
            (r"param:test(\d+)=abc?", "param", Some("abc"), true, &[r"test(\d+)"]),
            ("param:test(d+):test(w+)", "param", None, false, &["test(d+)", "test(w+)"]),
            ("param::test(d+)::test(w+)", "param", None, false, &["test(d+)", "test(w+)"]),
            (r"param:test(\d+):test(\w:+)", "param", None, false, &[r"test(\d+)", r"test(\w:+)"]),
            (r"param:test(\d+):test(\w+)=qwer", "param", Some("qwer"), false, &[r"test(\d+)", r"test(\w+)"]),
            (r"param:test(\d+)::test(\w+)==qwer", "param", Some("=qwer"), false, &[r"test(\d+)", r"test(\w+)"]),
            ("comparison-operator:length(6)==", "comparison-operator", Some("="), false, &["length(6)"]),
            ("comparison-operator:length(6)=+=", "comparison-operator", Some("+="), false, &["length(6)"]),
            (
                "comparison-operator:length(6)=>= || <= || ==",
                "comparison-operator",
                Some(">= || <= || =="),
                false,
                &["length(6)"],
            ),
            ("world", "world", None, false, &[]),
            ("param=world", "param", Some("world"), false, &[]),
            (r"param:test(\})", "param", None, false, &[r"test(\})"]),
            (r"param:test(\})=wer", "param", Some("wer"), false, &[r"test(\})"]),
            (r"param:test(\))", "param", None, false, &[r"test(\))"]),
            (r"param:test(\))=fsd", "param", Some("fsd"), false, &[r"test(\))"]),
            ("param:test(:)", "param", None, false, &["test(:)"]),
            ("param:test(:)=mnf", "param", Some("mnf"), false, &["test(:)"]),
            ("param:test(a:b:c)", "param", None, false, &["test(a:b:c)"]),
            (":param:test=12", ":param", Some("12"), false, &["test"]),
            (":param::test=12", ":param", Some("12"), false, &["test"]),
            (":param:test:", ":param", None, false, &["test"]),
            (r"param:test(\w,\w)", "param", None, false, &[r"test(\w,\w)"]),
            (r"par,am:test(\w)", "par,am", None, false, &[r"test(\w)"]),
            (r"param:test(\w,\w)=jsd", "param", Some("jsd"), false, &[r"test(\w,\w)"]),
            ("param:int=?", "param", Some(""), true, &["int"]),
            ("param:test(=)", "param", None, false, &["test(=)"]),
            ("param=test=bar", "param", Some("test=bar"), false, &[]),
            ("param:test(a==b)", "param", None, false, &["test(a==b)"]),
            ("param:test(a==b)=dvds", "param", Some("dvds"), false, &["test(a==b)"]),
            ("par==am:test=dvds", "par", Some("=am:test=dvds"), false, &[]),
            ("param:test==dvds", "param", Some("=dvds"), false, &["test"]),
            ("par=am:test(asd)", "par", Some("am:test(asd)"), false, &[]),
            ("par=test(am):est=asd", "par", Some("test(am):est=asd"), false, &[]),
            ("param:test(=)=sds", "param", Some("sds"), false, &["test(=)"]),
            (r"param:test(\{)", "param", None, false, &[r"test(\{)"]),
            (r"par{am:test(\sd)", "par{am", None, false, &[r"test(\sd)"]),
            (r"param:test(\{)=xvc", "param", Some("xvc"), false, &[r"test(\{)"]),
            (r"par(am:test(\()", "par(am", None, false, &[r"test(\()"]),
            (r"param:test(\()", "param", None, false, &[r"test(\()"]),
            ("param:test(#$%", "param", None, false, &["test(#$%"]),
            ("param:test(#:test1", "param", None, false, &["test(#", "test1"]),
            (
                "param:test(abc:somevalue):name(test1:differentname=default-value",
                "param",
                Some("default-value"),
                false,
                &["test(abc:somevalue)", "name(test1", "differentname"],
            ),
            ("param:test(constraintvalue=test1", "param", Some("test1"), false, &["test(constraintvalue"]),
            (r"param:test(\()=djk", "param", Some("djk"), false, &[r"test(\()"]),
            (r"param:test(\?)", "param", None, false, &[r"test(\?)"]),
            (r"param:test(\?)?", "param", None, true, &[r"test(\?)"]),
            (r"param:test(\?)=sdf", "param", Some("sdf"), false, &[r"test(\?)"]),
            (r"param:test(\?)=sdf?", "param", Some("sdf"), true, &[r"test(\?)"]),
            (r"par?am:test(\?)", "par?am", None, false, &[r"test(\?)"]),
            ("param:test(#):$)", "param", None, false, &["test(#)", "$)"]),
            ("param:test(#:)$)", "param", None, false, &["test(#:)$)"]),
            (r"foo:regex(\\(\\(\\(\\()", "foo", None, false, &[r"regex(\\(\\(\\(\\()"]),
            (r"p1:regex(^\d{{3}}-\d{{3}}-\d{{4}}$)", "p1", None, false, &[r"regex(^\d{{3}}-\d{{3}}-\d{{4}}$)"]),
            (
                r"p1:regex(^\d{{3}}-\d{{3}}-\d{{4}}$)=123-456-7890",
                "p1",
                Some("123-456-7890"),
                false,
                &[r"regex(^\d{{3}}-\d{{3}}-\d{{4}}$)"],
            ),
        ];
        for (text, name, default, optional, constraints) in rows {
            let p = parse_parameter_text(text);
            assert_eq!(
                (
                    p.name.as_str(),
                    p.default.as_deref(),
                    p.optional,
                    p.constraints.iter().map(String::as_str).collect::<Vec<_>>()
                ),
                (*name, *default, *optional, constraints.to_vec()),
                "{text:?}"
            );
        }
    }
}
