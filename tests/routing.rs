//! Which function serves a forwarded request, over real TCP: the host's choice (functions
//! by name, first route matching path and method), so a request the host let through under
//! one function's `authLevel` is never served by another.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use azfn_auth::app::{AppState, app};
use azfn_auth::auth::Authenticator;
use azfn_auth::extract::Path;
use azfn_auth::functions::Functions;
use azfn_auth::layout::AppLayout;
use common::*;
use serde_json::json;

fn write(root: &std::path::Path, name: &str, function: serde_json::Value, policy: Option<serde_json::Value>) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("function.json"), function.to_string()).unwrap();
    if let Some(policy) = policy {
        std::fs::write(dir.join("auth.json"), policy.to_string()).unwrap();
    }
}

fn http(route: &str, auth_level: &str) -> serde_json::Value {
    json!({"bindings": [
        {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": auth_level, "methods": ["get"], "route": route},
        {"type": "http", "direction": "out", "name": "res"}
    ]})
}

#[tokio::test]
async fn the_function_the_host_picks_serves_the_request() {
    let root = std::env::temp_dir().join(format!("azfn-routing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("host.json"), r#"{"customHandler": {"enableForwardingHttpRequest": true}}"#).unwrap();
    // Written in reverse order: discovery order must not matter, only names.
    write(&root, "b-private", http("items/secret", "function"), None);
    write(&root, "a-public", http("items/{id}", "anonymous"), Some(json!({"anonymous": true})));
    let idp = Idp::start(&[]).await;
    let functions = Functions::new()
        .function("a-public", |Path(id): Path<String>| async move { format!("a-public {id}") })
        .function("b-private", || async { "b-private" });
    let layout = AppLayout::load(&root).unwrap();
    let auth = Authenticator::new(&auth_config(&idp.issuer)).unwrap();
    let state = Arc::new(AppState::with_functions(auth, layout, functions, 1 << 20).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state)).await.unwrap() });

    let get =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: localhost:7071\r\nConnection: close\r\n\r\n").into_bytes();
    // The host maps a-public first; its template matches, so it serves "secret" too.
    let (status, _, body) = raw(addr, get("/api/items/secret")).await;
    assert_eq!((status, String::from_utf8(body).unwrap().as_str()), (200, "a-public secret"));
    let (status, _, body) = raw(addr, get("/API/Items/7")).await;
    assert_eq!((status, String::from_utf8(body).unwrap().as_str()), (200, "a-public 7"));
    assert_eq!(idp.jwks_hits() + idp.discovery_hits(), 0, "anonymous: no token asked for");
    let (status, _, _) = raw(addr, get("/api/items")).await;
    assert_eq!(status, 404);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn folders_without_a_handler_and_reserved_routes_stop_start_up() {
    let root = std::env::temp_dir().join(format!("azfn-routing-startup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    write(&root, "orders", http("orders/{id:int}", "function"), None);
    let layout = AppLayout::load(&root).unwrap();
    let auth = Authenticator::new(&auth_config("https://issuer.example/")).unwrap();
    let err = AppState::with_functions(auth, layout, Functions::new(), 1 << 20).unwrap_err();
    assert!(err.to_string().contains("\"orders\" has no handler"), "{err}");
    write(&root, "keys", http("admin/keys", "function"), None);
    let err = AppLayout::load(&root).unwrap_err();
    assert!(err.to_string().contains("reserved by the Functions host"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

// ---------------------------------------------------------------------------------------
// Parity tables. Each row comes from a named source file of dotnet/aspnetcore (the routing
// the host's `WebJobsRouteBuilder` builds: `Route` + `TemplateParser` + `TemplateMatcher` +
// `DefaultInlineConstraintResolver`), of Azure/azure-webjobs-sdk-extensions, or of the
// Functions documentation; a row's expectation is what that source asserts. Defaults the
// .NET tests pass out of line are written inline (`{id=default id}`), which the host's
// `Route` merges the same way.
// ---------------------------------------------------------------------------------------

use azfn_auth::route::RouteTemplate;

const MATCHER_TESTS: &str = "aspnetcore src/Http/Routing/test/UnitTests/Template/TemplateMatcherTests.cs";
const PARSER_TESTS: &str = "aspnetcore src/Http/Routing/test/UnitTests/Template/TemplateParserTests.cs";
const CONSTRAINT_TESTS: &str = "aspnetcore src/Http/Routing/test/UnitTests/Constraints/";
const MATCHER_SOURCE: &str = "aspnetcore src/Http/Routing/src/Patterns/RoutePatternMatcher.cs";
const FILE_SOURCE: &str =
    "aspnetcore src/Http/Routing/src/Constraints/FileNameRouteConstraint.cs, NonFileNameRouteConstraint.cs";
const RESOLVER_SOURCE: &str = "aspnetcore src/Http/Routing/src/ParameterPolicyActivator.cs, RouteOptions.cs";
const FUNCTIONS_DOCS: &str =
    "learn.microsoft.com azure-functions functions-bindings-http-webhook-trigger (Customize the HTTP endpoint)";

type Values<'a> = &'a [(&'a str, Option<&'a str>)];

/// `Some`, short, for the tables.
fn s<T>(value: T) -> Option<T> {
    Some(value)
}

/// `template` against `path`: `None` when the host's route does not match, else every
/// parameter's value in template order.
fn route(template: &str, path: &str, source: &str) -> Option<Vec<(String, Option<String>)>> {
    let t = RouteTemplate::parse(template).unwrap_or_else(|e| panic!("{source}: {template:?} refused: {e}"));
    t.matches(path).map(|v| v.iter().map(|(n, v)| (n.to_owned(), v.map(str::to_owned))).collect())
}

fn check_rows(source: &str, rows: &[(&str, &str, Option<Values<'_>>)]) {
    for (template, path, expected) in rows {
        let got = route(template, path, source);
        let expected: Option<Vec<(String, Option<String>)>> =
            expected.map(|v| v.iter().map(|(n, v)| ((*n).to_owned(), v.map(str::to_owned))).collect());
        assert_eq!(got, expected, "{source}: {template:?} against {path:?}");
    }
}

fn check_matches(source: &str, rows: &[(&str, &str, bool)]) {
    for (template, path, expected) in rows {
        assert_eq!(route(template, path, source).is_some(), *expected, "{source}: {template:?} against {path:?}");
    }
}

#[test]
fn template_matcher_rows_match_with_the_same_values() {
    check_rows(
        MATCHER_TESTS,
        &[
            // TryMatch_Success / _Fails / _WithDefaults_* / _WithLiterals_*
            (
                "{controller}/{action}/{id}",
                "/Bank/DoAction/123",
                s(&[("controller", s("Bank")), ("action", s("DoAction")), ("id", s("123"))]),
            ),
            ("{controller}/{action}/{id}", "/Bank/DoAction", None),
            (
                "{controller}/{action}/{id=default id}",
                "/Bank/DoAction",
                s(&[("controller", s("Bank")), ("action", s("DoAction")), ("id", s("default id"))]),
            ),
            ("{controller}/{action}/{id=default id}", "/Bank", None),
            ("moo/{p1}/bar/{p2=default p2}", "/moo/111/bar/222", s(&[("p1", s("111")), ("p2", s("222"))])),
            ("moo/{p1}/bar/{p2=default p2}", "/moo/111/bar/", s(&[("p1", s("111")), ("p2", s("default p2"))])),
            // TryMatch_OptionalParameter_FollowedByPeriod_Valid
            ("moo/{p1}.{p2?}", "/moo/foo.bar", s(&[("p1", s("foo")), ("p2", s("bar"))])),
            ("moo/{p1?}", "/moo/foo", s(&[("p1", s("foo"))])),
            ("moo/{p1?}", "/moo", s(&[("p1", None)])),
            ("moo/{p1}.{p2?}", "/moo/foo", s(&[("p1", s("foo")), ("p2", None)])),
            ("moo/{p1}.{p2?}", "/moo/foo..bar", s(&[("p1", s("foo.")), ("p2", s("bar"))])),
            ("moo/{p1}.{p2?}", "/moo/foo.moo.bar", s(&[("p1", s("foo.moo")), ("p2", s("bar"))])),
            ("moo/{p1}.{p2}", "/moo/foo.bar", s(&[("p1", s("foo")), ("p2", s("bar"))])),
            ("moo/foo.{p1}.{p2?}", "/moo/foo.moo.bar", s(&[("p1", s("moo")), ("p2", s("bar"))])),
            ("moo/foo.{p1}.{p2?}", "/moo/foo.moo", s(&[("p1", s("moo")), ("p2", None)])),
            ("moo/.{p2?}", "/moo/.foo", s(&[("p2", s("foo"))])),
            ("moo/.{p2?}", "/moo", None),
            ("moo/{p1}.{p2?}", "/moo/....", s(&[("p1", s("..")), ("p2", s("."))])),
            ("moo/{p1}.{p2?}", "/moo/.bar", s(&[("p1", s(".bar")), ("p2", None)])),
            // TryMatch_OptionalParameter_FollowedByPeriod_3Parameters_Valid
            ("moo/{p1}.{p2}.{p3?}", "/moo/foo.moo.bar", s(&[("p1", s("foo")), ("p2", s("moo")), ("p3", s("bar"))])),
            ("moo/{p1}.{p2}.{p3?}", "/moo/foo.moo", s(&[("p1", s("foo")), ("p2", s("moo")), ("p3", None)])),
            (
                "moo/{p1}.{p2}.{p3}.{p4?}",
                "/moo/foo.moo.bar",
                s(&[("p1", s("foo")), ("p2", s("moo")), ("p3", s("bar")), ("p4", None)]),
            ),
            ("{p1}.{p2?}/{p3}", "/foo.moo/bar", s(&[("p1", s("foo")), ("p2", s("moo")), ("p3", s("bar"))])),
            ("{p1}.{p2?}/{p3}", "/foo/bar", s(&[("p1", s("foo")), ("p2", None), ("p3", s("bar"))])),
            ("{p1}.{p2?}/{p3}", "/.foo/bar", s(&[("p1", s(".foo")), ("p2", None), ("p3", s("bar"))])),
            ("{p1}/{p2}/{p3?}", "/foo/bar/baz", s(&[("p1", s("foo")), ("p2", s("bar")), ("p3", s("baz"))])),
            // TryMatch_RouteWith*Literals* / ExtraSeparators / LongerUrl / SimpleFilename
            ("moo/bar", "/moo/bar", s(&[])),
            ("moo/bars", "/moo/bar", None),
            ("moo/bar", "/moo/bar/", s(&[])),
            ("moo/bar/", "/moo/bar", s(&[])),
            ("{p1}/{p2}/", "/moo/bar", s(&[("p1", s("moo")), ("p2", s("bar"))])),
            ("{p1}/{p2}/baz", "/moo/bar/boo", None),
            ("{p1}", "/moo/bar", None),
            ("DEFAULT.ASPX", "/default.aspx", s(&[])),
            // TryMatch_WithMultiSegmentParams*
            ("language/{lang}-{region}", "/language/en-US", s(&[("lang", s("en")), ("region", s("US"))])),
            ("language/{lang}-{region}a", "/language/en-USa", s(&[("lang", s("en")), ("region", s("US"))])),
            ("language/a{lang}-{region}", "/language/aen-US", s(&[("lang", s("en")), ("region", s("US"))])),
            ("language/a{lang}-{region}a", "/language/aen-USa", s(&[("lang", s("en")), ("region", s("US"))])),
            ("language/a{lang}-{region}a", "/language/a-USa", None),
            ("language/a{lang}-{region}a", "/language/aen-a", None),
            ("language/{lang}", "/language/en", s(&[("lang", s("en"))])),
            ("language/{lang}", "/language/", None),
            ("language/{lang}", "/language", None),
            ("language/{lang}-", "/language/en-", s(&[("lang", s("en"))])),
            ("language/a{lang}", "/language/aen", s(&[("lang", s("en"))])),
            ("language/a{lang}a", "/language/aena", s(&[("lang", s("en"))])),
            // TryMatch_WithMultiSegmentStandamatchMvcRouteMatches (id's null default: `?`)
            (
                "{controller}.mvc/{action=Index}/{id?}",
                "/home.mvc/index",
                s(&[("controller", s("home")), ("action", s("index")), ("id", None)]),
            ),
            ("language/{lang=xx}-{region=yy}", "/language/-", None),
            // TryMatch_WithUrlWith* (dots, '!', backslashes, parentheses, spaces)
            (
                "{Controller}..mvc/{id}/{Param1}",
                "/Home..mvc/123/p1",
                s(&[("Controller", s("Home")), ("id", s("123")), ("Param1", s("p1"))]),
            ),
            (
                "{Controller}.mvc/../{action}",
                "/Home.mvc/../index",
                s(&[("Controller", s("Home")), ("action", s("index"))]),
            ),
            (
                "{Controller}.mvc/.../{action}",
                "/Home.mvc/.../index",
                s(&[("Controller", s("Home")), ("action", s("index"))]),
            ),
            (
                "{Controller}.mvc/../../../{action}",
                "/Home.mvc/../../../index",
                s(&[("Controller", s("Home")), ("action", s("index"))]),
            ),
            ("{Controller}.mvc!/{action}", "/Home.mvc!/index", s(&[("Controller", s("Home")), ("action", s("index"))])),
            ("../{Controller}.mvc", "/../Home.mvc", s(&[("Controller", s("Home"))])),
            (r"\{Controller}.mvc", r"/\Home.mvc", s(&[("Controller", s("Home"))])),
            (
                r"{Controller}.mvc\{id}\{Param1}",
                r"/Home.mvc\123\p1",
                s(&[("Controller", s("Home")), ("id", s("123")), ("Param1", s("p1"))]),
            ),
            ("(Controller).mvc", "/(Controller).mvc", s(&[])),
            ("Controller.mvc/ ", "/Controller.mvc/ ", s(&[])),
            ("Controller.mvc ", "/Controller.mvc ", s(&[])),
            // TryMatch_WithCatchAllCapturesDots / TryMatch_RouteWithCatchAll_*
            (
                "Home/ShowPilot/{missionId}/{*name}",
                "/Home/ShowPilot/777/12345./foobar",
                s(&[("missionId", s("777")), ("name", s("12345./foobar"))]),
            ),
            ("{p1}/{*p2}", "/v1/v2/v3", s(&[("p1", s("v1")), ("p2", s("v2/v3"))])),
            ("{p1}/{*p2}", "/v1/", s(&[("p1", s("v1")), ("p2", None)])),
            ("{p1}/{*p2}", "/v1", s(&[("p1", s("v1")), ("p2", None)])),
            ("{p1}/{*p2=catchall}", "/v1", s(&[("p1", s("v1")), ("p2", s("catchall"))])),
            ("{p1}/{*p2=catchall}", "/v1/hello/whatever", s(&[("p1", s("v1")), ("p2", s("hello/whatever"))])),
            // TryMatch_DoesNotMatch*LiteralMatch / DoesMatchesExactLiteralMatch
            ("foo", "/fooBAR", None),
            ("foo", "/BARfoo", None),
            ("foo", "/BARfooBAR", None),
            ("foo", "/foo", s(&[])),
            // TryMatch_WithWeimatchParameterNames
            (
                "foo/{ }/{.!$%}/{dynamic.data}/{op.tional=default value}",
                "/foo/space/weimatch/omatcherid",
                s(&[
                    (" ", s("space")),
                    (".!$%", s("weimatch")),
                    ("dynamic.data", s("omatcherid")),
                    ("op.tional", s("default value")),
                ]),
            ),
            // TryMatch_*RouteWithLiteralSeparator*
            ("{controller}/{language=en}-{locale=US}", "/foo", None),
            ("{controller}/{language=en}-{locale=US}", "/foo/xx-", None),
            ("{controller}/{language=en}-{locale=US}", "/foo/-yy", None),
            (
                "{controller}/{language=en}-{locale=US}",
                "/foo/xx-yy",
                s(&[("controller", s("foo")), ("language", s("xx")), ("locale", s("yy"))]),
            ),
            // TryMatch_SetsOptionalParameter / DoesNotSetOptionalParameter* / MultipleOptionalParameters
            ("{controller}/{action?}", "/Home/Index", s(&[("controller", s("Home")), ("action", s("Index"))])),
            ("{controller}/{action?}", "/Home", s(&[("controller", s("Home")), ("action", None)])),
            ("{controller?}", "", s(&[("controller", None)])),
            ("", "", s(&[])),
            (
                "{controller}/{action?}/{id?}",
                "/Home/Index",
                s(&[("controller", s("Home")), ("action", s("Index")), ("id", None)]),
            ),
            // TryMatch_CatchAllParameters_WithEmptyValuesAtTheEnd: the rest, as it is
            (
                "{controller}/{action}/{*id}",
                "/a/b/c//",
                s(&[("controller", s("a")), ("action", s("b")), ("id", s("c//"))]),
            ),
            (
                "{controller}/{action}/{*id}",
                "/a/b/c/////",
                s(&[("controller", s("a")), ("action", s("b")), ("id", s("c/////"))]),
            ),
        ],
    );
    check_matches(
        MATCHER_TESTS,
        &[
            // TryMatch_RegularExpressionConstraint_Valid
            (r"{p1:regex(^\d{{3}}-\d{{3}}-\d{{4}}$)}", "/123-456-7890", true),
            (r"{p1:regex(^\w+\@\w+\.\w+)}", "/asd@assds.com", true),
            (r"{p1:regex(([}}])\w+)}", "/}sda", true),
            (r"{p1:regex(([{{)])\w+)}", "/})sda", true),
            // TryMatch_OptionalParameter_FollowedByPeriod_Invalid
            ("moo/{p1}.{p2?}", "/moo/foo.", false),
            ("moo/{p1}.{p2?}", "/moo/.", false),
            ("moo/{p1}.{p2}", "/foo.", false),
            ("moo/{p1}.{p2}", "/foo", false),
            ("moo/{p1}.{p2}.{p3?}", "/moo/foo.moo.", false),
            ("moo/foo.{p2}.{p3?}", "/moo/bar.foo.moo", false),
            ("moo/foo.{p2}.{p3?}", "/moo/kungfoo.moo.bar", false),
            ("moo/foo.{p2}.{p3?}", "/moo/kungfoo.moo", false),
            ("moo/{p1}.{p2}.{p3?}", "/moo/foo", false),
            ("{p1}.{p2?}/{p3}", "/foo./bar", false),
            ("moo/.{p2?}", "/moo/.", false),
            ("{p1}.{p2}/{p3}", "/.foo/bar", false),
            // TryMatch_RouteWithComplexSegment_Success
            ("{prefix}x{suffix}", "/xxxxxxxxxx", true),
            ("{prefix}xyz{suffix}", "/xxxxyzxyzxxxxxxyz", true),
            ("{prefix}xyz{suffix}", "/abcxxxxyzxyzxxxxxxyzxx", true),
            ("{prefix}xyz{suffix}", "/xyzxyzxyzxyzxyz", true),
            ("{prefix}xyz{suffix}", "/xyzxyzxyzxyzxyz1", true),
            ("{prefix}xyz{suffix}", "/xyzxyzxyz", true),
            ("{prefix}aa{suffix}", "/aaaaa", true),
            ("{prefix}aaa{suffix}", "/aaaaa", true),
            // TryMatch_MultipleOptionalParameters_WithEmptyIntermediateSegmentsDoesNotMatch
            ("{controller?}/{action?}/{id?}", "///", false),
            ("{controller?}/{action?}/{id?}", "/a//", false),
            ("{controller?}/{action?}/{id?}", "/a/b//", false),
            ("{controller?}/{action?}/{id?}", "//b//", false),
            ("{controller?}/{action?}/{id?}", "///c", false),
            ("{controller?}/{action?}/{id?}", "///c/", false),
            // TryMatch_MultipleOptionalParameters_WithIncrementalOptionalValues
            ("{controller?}/{action?}/{id?}", "", true),
            ("{controller?}/{action?}/{id?}", "/", true),
            ("{controller?}/{action?}/{id?}", "/a", true),
            ("{controller?}/{action?}/{id?}", "/a/", true),
            ("{controller?}/{action?}/{id?}", "/a/b", true),
            ("{controller?}/{action?}/{id?}", "/a/b/", true),
            ("{controller?}/{action?}/{id?}", "/a/b/c", true),
            ("{controller?}/{action?}/{id?}", "/a/b/c/", true),
            // TryMatch_MultipleParameters_WithEmptyValues
            ("{controller}/{action}/{id}", "///", false),
            ("{controller}/{action}/{id}", "////", false),
            ("{controller}/{action}/{id}", "/a//", false),
            ("{controller}/{action}/{id}", "/a///", false),
            ("{controller}/{action}/{id}", "//b/", false),
            ("{controller}/{action}/{id}", "//b//", false),
            ("{controller}/{action}/{id}", "///c", false),
            ("{controller}/{action}/{id}", "///c/", false),
            // TryMatch_CatchAllParameters_WithEmptyValues
            ("{controller}/{action}/{*id}", "/a/b//", false),
            ("{controller}/{action}/{*id}", "/a/b///c", false),
        ],
    );
}

#[test]
fn complex_segments_search_literals_right_to_left_and_keep_the_last_parameter_short() {
    // Values follow `MatchComplexSegmentCore`: the right-most literal is found last-first,
    // leaving one character for the parameter after it; the left-most parameter takes the
    // rest.
    check_rows(
        MATCHER_SOURCE,
        &[
            ("{prefix}x{suffix}", "/xxxxxxxxxx", s(&[("prefix", s("xxxxxxxx")), ("suffix", s("x"))])),
            ("{prefix}xyz{suffix}", "/xyzxyzxyz", s(&[("prefix", s("xyz")), ("suffix", s("xyz"))])),
            ("{prefix}aa{suffix}", "/aaaaa", s(&[("prefix", s("aa")), ("suffix", s("a"))])),
            ("files/{name}.{ext}", "/files/archive.tar.gz", s(&[("name", s("archive.tar")), ("ext", s("gz"))])),
            ("files/{name}.{ext?}", "/files/README", s(&[("name", s("README")), ("ext", None)])),
            ("files/{name}.{ext?}", "/files/README.", None),
            ("{lang}-{region}/docs", "/en-GB-oxendict/Docs", s(&[("lang", s("en-GB")), ("region", s("oxendict"))])),
            ("file{n}.txt", "/FILE12.TXT", s(&[("n", s("12"))])),
            ("file{n}.txt", "/file.txt", None),
            ("file{n}.txt", "/file12.txt.bak", None),
            // Decoded before matching, as Kestrel decodes the path; `%2F` stays as it is.
            ("files/{name}.{ext}", "/files/a%20b.c%2Fd", s(&[("name", s("a b")), ("ext", s("c%2Fd"))])),
            ("files/{name}.{ext}", "/files/%C3%A9t%C3%A9.%C3%89T%C3%89", s(&[("name", s("été")), ("ext", s("ÉTÉ"))])),
            // Literals compare as OrdinalIgnoreCase: any script, one character to one.
            ("wörter/{id}", "/W%C3%96RTER/1", s(&[("id", s("1"))])),
            ("{a}ß{b}", "/xSSy", None),
            ("{a}σ{b}", "/xΣy", s(&[("a", s("x")), ("b", s("y"))])),
            // Constraints run on the values of complex segments too.
            ("img/{w:int}x{h:int}.png", "/img/640x480.png", s(&[("w", s("640")), ("h", s("480"))])),
            ("img/{w:int}x{h:int}.png", "/img/640xabc.png", None),
            ("files/{name}.{ext:alpha?}", "/files/a.b1", None),
            ("files/{name}.{ext:alpha?}", "/files/a", s(&[("name", s("a")), ("ext", None)])),
            // `.{ext?}` without its value: the second attempt has no part left and fails.
            ("moo/.{p2?}", "/moo/x", None),
            ("moo/.{p2?}", "/moo/x.", None),
            // .NET throws here (`Slice(0, -1)` once the literal `y` took the segment's start):
            // the host answers 500, the handler finds no match.
            ("x{a}y{b}", "/yb", None),
        ],
    );
}

#[test]
fn templates_the_host_refuses_are_refused_with_the_reason() {
    let rows: &[(&str, &str)] = &[
        // InvalidTemplate_CannotHaveConsecutiveOpenBrace / CloseBrace, mismatched braces
        ("foo/{{p1}", "incomplete parameter"),
        ("foo/{p1}}", "incomplete parameter"),
        ("{a}/{aa}a}/{z}", "incomplete parameter"),
        ("123{a}abc{", "incomplete parameter"),
        ("123{a}abc}", "incomplete parameter"),
        ("xyz}123{a}abc}", "incomplete parameter"),
        ("{{p1}", "incomplete parameter"),
        ("{p1}}", "incomplete parameter"),
        ("p1}}p2{", "incomplete parameter"),
        // Parse_RegularExpressions_Invalid
        (r"{p1:regex(^\d{{3}}-\d{{3}}-\d{{4}}}$)}", "incomplete parameter"),
        (r"{p1:regex(^\d{{3}}-\d{{3}}-\d{{4}}$)}}", "incomplete parameter"),
        (r"{{p1:regex(^\d{{3}}-\d{{3}}-\d{{4}}$)}", "incomplete parameter"),
        (r"{p1:regex(([}])\w+}", "incomplete parameter"),
        (r"{p1:regex(^\d{{3}}-\d{{3}}-\d{{4}$)}", "incomplete parameter"),
        ("{p1:regex(abc)", "incomplete parameter"),
        // Parse_RegularExpressions_Unescaped / InvalidParameterNameWithOpenBracket
        (r"{p1:regex(^\d{{3}}-\d{{3}}-\d{{{4}}$)}", "must be escaped"),
        (r"{p1:regex(^\d{{3}}-\d{{3}}-\d{4}}$)}", "must be escaped"),
        ("{a}/{a{aa}/{z}", "must be escaped"),
        // SameParameterTwice*, WithRepeatedParameter
        ("{aaa}/{AAA}", "\"AAA\" appears more than once"),
        ("{aaa}/{*AAA}", "\"AAA\" appears more than once"),
        ("{Controller}.mvc/{id}/{controller}", "\"controller\" appears more than once"),
        // Invalid names: empty, '?', '*', '/', braces
        ("{a}/{}/{z}", "name \"\" is invalid"),
        ("{Controller}.mvc/{?}", "name \"\" is invalid"),
        ("foo/{*}", "name \"\" is invalid"),
        ("{foor?b}", "name \"foor?b\" is invalid"),
        ("{a*}", "name \"a*\" is invalid"),
        ("{*a*}", "name \"a*\" is invalid"),
        ("{*a*:int}", "name \"a*\" is invalid"),
        ("{*a*=5}", "name \"a*\" is invalid"),
        ("{*a*b=5}", "name \"a*b\" is invalid"),
        ("{p1?}.{p2/}/{p3}", "name \"p2/\" is invalid"),
        ("{p{{}", "name \"p{\" is invalid"),
        ("{p}}}", "name \"p}\" is invalid"),
        ("{p/}", "name \"p/\" is invalid"),
        // ConsecutiveSeparatorsSlashSlash, CannotStartWithTilde, CannotContainQuestionMark
        ("{a}//{z}", "twice in a row"),
        ("~foo", "cannot start with '~'"),
        ("foor?bar", "cannot contain '?'"),
        // Catch-alls: last, alone in their segment, not optional
        ("foo/{p1}/{*p2}/{p3}", "last segment"),
        ("{*p1}/{*p2}", "last segment"),
        ("123{a}abc{*moo}", "cannot contain a catch-all"),
        ("{*p1}abc{*p2}", "cannot contain a catch-all"),
        ("{a}/{*b?}", "cannot be marked optional"),
        // RepeatedParameters (two parameters side by side)
        ("foo/aa{p1}{p2}", "side by side"),
        // Parse_ComplexSegment_OptionalParameter_NotTheLastPart
        ("{p1}.{p2?}.{p3}", "must end its segment"),
        ("{p1?}{p2}", "must end its segment"),
        ("{p1?}{p2?}", "must end its segment"),
        ("{p1}.{p2?})", "must end its segment"),
        ("{foorb?}-bar-{z}", "must end its segment"),
        // Parse_ComplexSegment_OptionalParametersSeparatedByPeriod_Invalid
        ("{p1}-{p2?}", "only a period"),
        ("{p1}..{p2?}", "only a period"),
        ("..{p2?}", "only a period"),
        ("{p1}.abc.{p2?}", "only a period"),
        ("{p1}{p2?}", "only a period"),
    ];
    for (template, reason) in rows {
        let err = RouteTemplate::parse(template).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains(reason), "{PARSER_TESTS}: {template:?}: {err}");
    }
    // The resolver: unknown names, argument counts and values the constructors refuse
    // (`LengthRouteConstraintTests`: negative lengths, minimum above maximum).
    for (template, reason) in [
        ("{id:nope}", "unknown constraint"),
        ("{id:string}", "unknown constraint"),
        ("{id:int(5)}", "takes no arguments"),
        ("{id:int()}", "takes no arguments"),
        ("{id:regex}", "needs an argument"),
        ("{id:minlength}", "needs an argument"),
        ("{id:minlength(-1)}", "0 or more"),
        ("{id:length(-1)}", "0 or more"),
        ("{id:length(-1,3)}", "0 or more"),
        ("{id:length(0,-1)}", "0 or more"),
        ("{id:length(3,2)}", "above the maximum"),
        ("{id:length(1,2,3)}", "one or two"),
        ("{id:range(5,1)}", "above the maximum"),
        ("{id:range(1)}", "two arguments"),
        ("{id:min(1,2)}", "not an Int64"),
        ("{id:max(x)}", "not an Int64"),
        ("{id:minlength(3000000000)}", "not an Int32"),
        ("{id:int(5}", "unknown constraint"),
    ] {
        let err = RouteTemplate::parse(template).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains(reason), "{RESOLVER_SOURCE}: {template:?}: {err}");
        assert!(err.contains("constraint"), "{template:?}: the constraint is named: {err}");
    }
}

#[test]
fn templates_the_host_accepts_are_accepted() {
    for template in [
        // ValidTemplate_CanStartWithSlashOrTildeSlash, complex-segment and regex parse rows
        "/foo",
        "~/foo",
        "{p1}.{p2?}/{p3}",
        "{p1}/{p2}.{p3?}",
        "{p2}/.{p3?}",
        "{p1}.{p2}.{p3}",
        r"{p1:regex(^\d{{3}}-\d{{3}}-\d{{4}}$)}",
        r"{p1:regex(^\d{{1,2}}\/\d{{1,2}}\/\d{{4}}$)}",
        r"{p1:regex(^\w+\@\w+\.\w+)}",
        r"{p1:regex(([}}])\w+)}",
        r"{p1:regex(([{{(])\w+)}",
        // A '/' inside a parameter does not split the segment.
        "files/{*path:regex(^a/b$)}",
        // Constraint names are case-insensitive; the .NET 8 additions.
        "{id:INT:Min(1)}",
        "{id:required}",
        "{name:file}",
        "{name:nonfile}",
        // Delimiters inside constraint arguments, defaults after constraints, a default
        // its own constraint refuses (the host builds the route; it never matches absent).
        "{p:regex(a:b=c)}",
        "{p:int=5}",
        "{p:int=x}",
        "{p=a=b}",
        "{:x}",
    ] {
        assert!(
            RouteTemplate::parse(template).is_ok(),
            "{PARSER_TESTS}: {template:?}: {:?}",
            RouteTemplate::parse(template).err()
        );
    }
    // `~/` and one `/` are dropped; a `/` or braces inside a parameter belong to it.
    let t = RouteTemplate::parse("~/files/{*path:regex(^a/b$)}").unwrap();
    assert_eq!(t.text(), "files/{*path:regex(^a/b$)}");
    assert_eq!(t.segment_texts(), ["files", "{*path:regex(^a/b$)}"]);
    assert!(t.matches("/files/a/b").is_some() && t.matches("/files/a/c").is_none());
    let v = RouteTemplate::parse("{p=a=b}").unwrap().matches("/").unwrap();
    assert_eq!(v.get("p"), Some("a=b"), "the default runs to the end");
    let v = RouteTemplate::parse("{:x}").unwrap().matches("/1").unwrap();
    assert_eq!(v.get(":x"), Some("1"), "a name may start with ':'");
    assert!(RouteTemplate::parse("{p:int=x}").unwrap().matches("/").is_none());
    assert!(RouteTemplate::parse("{p:int=x}").unwrap().matches("/7").is_some());
}

/// A constraint's verdict on `value` through a real match: the value as a catch-all's rest
/// (`c/{*v:constraint}`), or, for values no request path can carry (empty, a leading `/` or
/// an empty segment), as the parameter's default.
fn constraint_accepts(constraint: &str, value: &str) -> bool {
    let carried = !value.is_empty() && !value.starts_with('/') && !value.contains("//");
    if carried {
        let encoded: String = value
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        route(&format!("c/{{*v:{constraint}}}"), &format!("/c/{encoded}"), CONSTRAINT_TESTS).is_some()
    } else {
        let escaped = value.replace('{', "{{").replace('}', "}}");
        route(&format!("c/{{v:{constraint}={escaped}}}"), "/c", CONSTRAINT_TESTS).is_some()
    }
}

#[test]
fn constraint_rows_accept_and_refuse_as_dotnet() {
    let rows: &[(&str, &str, bool)] = &[
        // IntRouteConstraintsTests, LongRouteConstraintTests
        ("int", "42", true),
        ("int", "43.567", false),
        ("int", "42a", false),
        ("int", " -42 ", true),
        ("int", "2147483648", false),
        ("long", "2147483648", true),
        ("long", "9223372036854775808", false),
        // BoolRouteConstraintTests
        ("bool", "true", true),
        ("bool", "TruE", true),
        ("bool", "false", true),
        ("bool", "FalSe", true),
        ("bool", " FalSe", true),
        ("bool", "True ", true),
        ("bool", " False ", true),
        ("bool", "not-parseable-as-bool", false),
        // DoubleRouteConstraintTests (double and float: Float | AllowThousands)
        ("double", "3.14", true),
        ("double", "1.79769313486232E+300", true),
        ("double", "not-parseable-as-double", false),
        ("float", "3.14", true),
        ("double", "-Infinity", true),
        ("double", "nan", true),
        ("double", "∞", false),
        ("double", "5-", false),
        // DecimalRouteConstraintTests (Number: trailing sign, no exponent, decimal.MaxValue)
        ("decimal", "3.14", true),
        ("decimal", "9223372036854775808.9223372036854775808", true),
        ("decimal", "1.79769313486232E+300", false),
        ("decimal", "not-parseable-as-decimal", false),
        ("decimal", "5-", true),
        ("decimal", "79228162514264337593543950335", true),
        ("decimal", "79228162514264337593543950336", false),
        // GuidRouteConstraintTests
        ("guid", "12345678-1234-1234-1234-123456789012", true),
        ("guid", "12345678901234567890123456789012", true),
        ("guid", "not-parseable-as-guid", false),
        // AlphaRouteConstraintTests (`^[A-Za-z]*$`)
        ("alpha", "alpha", true),
        ("alpha", "a1pha", false),
        ("alpha", "ALPHA", true),
        ("alpha", "A1PHA", false),
        ("alpha", "alPHA", true),
        ("alpha", "A1pHA", false),
        ("alpha", "AlpHA╥", false),
        ("alpha", "", true),
        // DateTimeRouteConstraintTests
        ("datetime", "12/25/2009", true),
        ("datetime", "25/12/2009 11:45:00 PM", false),
        ("datetime", "25/12/2009", false),
        ("datetime", "11:45:00 PM", true),
        ("datetime", "11:45:00", true),
        ("datetime", "11:45", true),
        ("datetime", "11", false),
        ("datetime", "", false),
        ("datetime", "Apr 5 2009 11:45:00 PM", true),
        ("datetime", "April 5 2009 11:45:00 PM", true),
        ("datetime", "12/25/2009 11:45:00 PM", true),
        ("datetime", "2009-05-12T11:45:00Z", true),
        ("datetime", "not-parseable-as-date", false),
        // LengthRouteConstraintTests, MinLength/MaxLength (string.Length: UTF-16 units)
        ("length(3)", "123", true),
        ("length(3)", "1234", false),
        ("length(0)", "", true),
        ("length(3,5)", "12", false),
        ("length(3,5)", "123", true),
        ("length(3,5)", "1234", true),
        ("length(3,5)", "12345", true),
        ("length(3,5)", "123456", false),
        ("maxlength(1)", "😀", false),
        ("minlength(2)", "😀", true),
        // MinRouteConstraintTests, MaxRouteConstraintTests, RangeRouteConstraintTests
        ("min(3)", "4", true),
        ("min(3)", "2", false),
        ("max(3)", "2", true),
        ("max(3)", "4", false),
        ("range(1,5)", "5", true),
        ("range(1,5)", "6", false),
        // RegexInlineRouteConstraintTests (case-insensitive, unanchored, culture-invariant)
        ("regex(abc)", "abc", true),
        ("regex(abc)", "Abc", true),
        ("regex(abc)", "Abc ", true),
        ("regex(abc)", "Abcd", true),
        ("regex(abc)", "^Abcd", true),
        ("regex( abc)", "Abc", false),
        ("regex(^([a-z]+)$)", "\u{130}", false),
        // RequiredRouteConstraint: an empty string is no value
        ("required", "x", true),
        ("required", "", false),
        // FileNameRouteConstraintTest (Match_RouteValue_IsFileName / IsNotFileName)
        ("file", "hello.txt", true),
        ("file", "hello.txt.jpg", true),
        ("file", "/hello.t", true),
        ("file", "/////hello.x", true),
        ("file", "a/b/c/d.e", true),
        ("file", "a/b./.c/d.e", true),
        ("file", ".gitnore", true),
        ("file", ".a", true),
        ("file", "/.......a", true),
        ("file", "", false),
        ("file", "/", false),
        ("file", ".", false),
        ("file", "..........", false),
        ("file", "hello.", false),
        ("file", "/hello", false),
        ("file", "//", false),
        ("file", "//b.c/", false),
        ("file", "/////hello.", false),
        ("file", "a/b./.c/d.", false),
        // NonFileNameRouteConstraint's documented examples
        ("nonfile", "/a/b/c", true),
        ("nonfile", "/a/b.d/c", true),
        ("nonfile", "/a/b.d/c/", true),
        ("nonfile", "", true),
        ("nonfile", "/a/b/c.txt", false),
        ("nonfile", "/hello.world.txt", false),
        ("nonfile", "hello.world.txt", false),
        ("nonfile", ".gitignore", false),
    ];
    for (constraint, value, expected) in rows {
        assert_eq!(constraint_accepts(constraint, value), *expected, "{CONSTRAINT_TESTS}: {constraint} on {value:?}");
    }
}

#[test]
fn absent_values_meet_constraints_as_the_host_checks_them() {
    check_matches(
        FILE_SOURCE,
        &[
            // An empty catch-all is `null`: every constraint refuses it but `nonfile`.
            ("c/{*v:nonfile}", "/c", true),
            ("c/{*v:file}", "/c", false),
            ("c/{*v:int}", "/c", false),
            ("c/{*v:regex(.*)}", "/c/", false),
            ("c/{*v:minlength(0)}", "/c", false),
            ("c/{*v:required}", "/c", false),
            ("c/{*v:required}", "/c/x", true),
            ("c/{*v}", "/c", true),
            // An optional one without a value skips them (`OptionalRouteConstraint`).
            ("c/{v:int?}", "/c", true),
            ("c/{v:required?}", "/c", true),
            ("c/{v:int?}", "/c/x", false),
        ],
    );
}

#[test]
fn function_routes_from_the_docs_match_as_in_the_host() {
    check_rows(
        FUNCTIONS_DOCS,
        &[
            (
                "products/{category:alpha}/{id:int?}",
                "/products/electronics/357",
                s(&[("category", s("electronics")), ("id", s("357"))]),
            ),
            (
                "products/{category:alpha}/{id:int?}",
                "/products/electronics",
                s(&[("category", s("electronics")), ("id", None)]),
            ),
            ("products/{category:alpha}/{id:int?}", "/products/3d/357", None),
            ("{*restOfPath}", "/any/thing/", s(&[("restOfPath", s("any/thing/"))])),
        ],
    );
}

#[test]
fn complex_routes_pick_the_function_and_refusals_name_the_file() {
    let root = std::env::temp_dir().join(format!("azfn-routing-complex-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    write(&root, "a-files", http("files/{name}.{ext?}", "function"), None);
    write(&root, "b-locale", http("{lang:alpha}-{region:alpha}/docs", "function"), None);
    let layout = AppLayout::load(&root).unwrap();
    let found = |path: &str| match layout.route_target(&http::Method::GET, path) {
        azfn_auth::layout::RouteMatch::Found { index, values } => Some((
            layout.functions[index].name.clone(),
            values.iter().map(|(n, v)| format!("{n}={v:?}")).collect::<Vec<_>>(),
        )),
        _ => None,
    };
    assert_eq!(found("/api/files/report.pdf").unwrap().1, ["name=Some(\"report\")", "ext=Some(\"pdf\")"]);
    assert_eq!(found("/api/files/report").unwrap().1, ["name=Some(\"report\")", "ext=None"]);
    assert_eq!(
        found("/API/en-GB/DOCS").unwrap(),
        ("b-locale".into(), vec!["lang=Some(\"en\")".into(), "region=Some(\"GB\")".into()])
    );
    assert_eq!(found("/api/en-1/docs"), None, "constraints on complex segments");
    assert_eq!(found("/api/files//x"), None, "an empty segment");
    write(&root, "c-bad", http("items/{a}{b}", "function"), None);
    let err = AppLayout::load(&root).unwrap_err().to_string();
    assert!(err.contains("c-bad") && err.contains("function.json") && err.contains("side by side"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn under_a_route_prefix_the_route_is_not_trimmed_as_a_template_start() {
    // `WebJobsRouteBuilder.BuildRouteTemplate`: `prefix + '/' + route`, parsed as one
    // template (azure-webjobs-sdk-extensions src/WebJobs.Extensions.Http/Routing).
    let root = std::env::temp_dir().join(format!("azfn-routing-prefix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    write(&root, "tilde", http("~/x", "anonymous"), None);
    let layout = AppLayout::load(&root).unwrap();
    let found = |layout: &AppLayout, path: &str| {
        matches!(layout.route_target(&http::Method::GET, path), azfn_auth::layout::RouteMatch::Found { .. })
    };
    assert!(found(&layout, "/api/~/x") && !found(&layout, "/api/x"), "`api/~/x`: a literal '~' segment");
    write(&root, "slash", http("/orders", "anonymous"), None);
    let err = AppLayout::load(&root).unwrap_err().to_string();
    assert!(err.contains("slash") && err.contains("cannot start with '/'"), "`api//orders`: {err}");
    // Without a prefix the route is the whole template: "~/" and one "/" are dropped.
    std::fs::write(root.join("host.json"), r#"{"extensions": {"http": {"routePrefix": ""}}}"#).unwrap();
    let layout = AppLayout::load(&root).unwrap();
    assert!(found(&layout, "/x") && found(&layout, "/orders"));
    let _ = std::fs::remove_dir_all(&root);
}

/// Templates and paths drawn from the pieces the tables use (fixed seed): parsing either
/// succeeds or gives a reason, matching never panics, and a match has a value slot for
/// every parameter.
#[test]
fn any_template_against_any_path_answers_without_panicking() {
    const TEMPLATE_PIECES: &[&str] = &[
        "a",
        "b",
        ".",
        "-",
        "/",
        "{p}",
        "{q?}",
        "{r=d}",
        "{*s}",
        "{t:int}",
        "{u:alpha?}",
        "{v:file}",
        "~",
        "{{",
        "}}",
        "{",
        "}",
        "?",
        "é",
        "{w:regex(^a/b$)}",
        "{x:length(1,2)}",
    ];
    const PATH_PIECES: &[&str] = &["/", "a", "b", ".", "-", "1", "%2F", "%20", "%C3%A9", "É", "//", "x.y", "%FF"];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let (mut parsed, mut matched) = (0, 0);
    for _ in 0..4000 {
        let template: String = (0..1 + next(6)).map(|_| TEMPLATE_PIECES[next(TEMPLATE_PIECES.len())]).collect();
        let Ok(t) = RouteTemplate::parse(&template) else { continue };
        parsed += 1;
        for _ in 0..8 {
            let path: String = (0..next(7)).map(|_| PATH_PIECES[next(PATH_PIECES.len())]).collect();
            if let Some(values) = t.matches(&format!("/{path}")) {
                matched += 1;
                assert_eq!(values.len(), t.parameter_names().count(), "{template:?} against {path:?}");
            }
        }
    }
    assert!(parsed > 500 && matched > 100, "the draw exercises both: {parsed} parsed, {matched} matched");
}
