//! What matching a request path against a route template costs (criterion), by template
//! kind: literal-only, one-value parameters, constraints, and complex segments
//! (`{name}.{ext?}`, `{lang}-{region}`), each as a hit and as a miss; beside them the floor for
//! a literal route (split the path, compare each segment ignoring ASCII case), which any
//! implementation pays.
//!
//! `cargo bench --bench routes`; `scripts/bench-routes.sh` counts instructions per match
//! under callgrind instead (stable to the instruction, unlike wall-clock time on a shared
//! machine): with `ROUTES_BENCH_LOOP=<case>:<n>` this binary only runs case `<case>` n times.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use azfn_auth::route::RouteTemplate;
use criterion::Criterion;

/// (name, template, path, matches)
const CASES: &[(&str, &str, &str, bool)] = &[
    ("literal/hit", "api/orders/list", "/api/Orders/list", true),
    ("literal/miss", "api/orders/list", "/api/orders/lost", false),
    ("literal/hit_trailing_slash", "api/orders/list", "/api/orders/list/", true),
    ("parameter/hit", "api/orders/{id}", "/api/orders/12345", true),
    ("parameter/miss", "api/orders/{id}", "/api/items/12345", false),
    ("constraint_int/hit", "api/orders/{id:int}", "/api/orders/12345", true),
    ("catch_all/hit", "api/files/{*path}", "/api/files/a/b/c.txt", true),
    ("complex_ext/hit", "api/files/{name}.{ext}", "/api/files/report.pdf", true),
    ("complex_optional_ext/hit", "api/files/{name}.{ext?}", "/api/files/report.pdf", true),
    ("complex_optional_ext/hit_without", "api/files/{name}.{ext?}", "/api/files/report", true),
    ("complex_optional_ext/miss", "api/files/{name}.{ext?}", "/api/docs/report.pdf", false),
    ("complex_locale/hit", "api/{lang}-{region}/docs", "/api/en-GB/docs", true),
    ("complex_long/hit", "api/{prefix}xyz{suffix}", "/api/abcxxxxyzxyzxxxxxxyzxx", true),
];

/// The floor for a literal route: what matching `/api/orders/list` needs at the least.
fn literal_floor(literals: &[&str], path: &str) -> bool {
    let path = path.strip_prefix('/').unwrap_or(path);
    let path = path.strip_suffix('/').unwrap_or(path);
    let mut segments = path.split('/');
    literals.iter().all(|l| segments.next().is_some_and(|s| s.eq_ignore_ascii_case(l))) && segments.next().is_none()
}

fn compiled() -> Vec<(&'static str, RouteTemplate, &'static str, bool)> {
    CASES
        .iter()
        .map(|(name, template, path, matches)| {
            let t = RouteTemplate::parse(template).expect("template");
            assert_eq!(t.matches(path).is_some(), *matches, "{name}");
            (*name, t, *path, *matches)
        })
        .collect()
}

fn main() {
    let cases = compiled();
    let literals = ["api", "orders", "list"];
    if let Ok(spec) = std::env::var("ROUTES_BENCH_LOOP") {
        let (case, n) = spec.split_once(':').expect("ROUTES_BENCH_LOOP=<case>:<n>");
        let n: usize = n.parse().expect("count");
        if case == "literal_floor/hit" {
            for _ in 0..n {
                black_box(literal_floor(black_box(&literals), black_box("/api/Orders/list")));
            }
            return;
        }
        let (_, t, path, _) = cases.iter().find(|(name, ..)| *name == case).expect("known case");
        for _ in 0..n {
            black_box(black_box(t).matches(black_box(path)));
        }
        return;
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30)
        .without_plots()
        .configure_from_args();
    c.bench_function("literal_floor/hit", |b| {
        b.iter(|| literal_floor(black_box(&literals), black_box("/api/Orders/list")))
    });
    for (name, t, path, _) in &cases {
        c.bench_function(name, |b| b.iter(|| black_box(t).matches(black_box(path))));
    }
    c.final_summary();
}
