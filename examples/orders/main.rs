//! `orders`: the worked example of an app on this library (see `orders.rs`). Built with
//! `cargo build --release --example orders`; the Functions host starts
//! `target/release/examples/orders` as it starts `handler`, with the same settings, and
//! `examples/orders` is its app root (`FUNCTIONS_APP_ROOT_PATH`).

mod orders;

fn main() -> std::process::ExitCode {
    match azfn_auth::server::run(orders::functions()) {
        0 => std::process::ExitCode::SUCCESS,
        _ => std::process::ExitCode::FAILURE,
    }
}
