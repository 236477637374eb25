//! Baseline 1: bare axum answering 200 "Authentication successful" to every request
//! (`GET /` answers "OK"), with no authentication and no logging.

use axum::Router;
use axum::routing::any;

fn main() {
    let router =
        Router::new().route("/", any(|| async { "OK" })).fallback(any(|| async { "Authentication successful" }));
    azfn_auth_bench::run(azfn_auth_bench::serve(router));
}
