//! `handler`: the process the Functions host starts. Wiring only; see the library.

use std::process::ExitCode;

use azfn_auth::{config::Config, server, telemetry};

/// mimalloc instead of the platform allocator. On the static musl build that ships,
/// musl's malloc is slow (about 370 instructions per malloc/free pair, one global lock);
/// measured in the same bench run against the same code on musl's malloc: cache misses
/// 1.14x vs 1.00x of the inline-jsonwebtoken baseline, and about 3k fewer instructions
/// (15%) per refused request under callgrind, for about 90 KB of binary. Built without
/// transparent huge pages (feature `no_thp`): with them RSS after 10k requests was 16 MB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    telemetry::init();
    // Tokio's default runtime (as `#[tokio::main]`): one worker per usable core. Pinned to
    // one core, the single-threaded scheduler measured the same (scripts/bench.sh).
    let code = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(run()),
        Err(error) => {
            eprintln!("handler: start-up failed: cannot start the async runtime: {error}");
            ExitCode::FAILURE
        }
    };
    // Lines are written in batches (src/telemetry.rs): write out the last ones.
    telemetry::flush();
    code
}

async fn run() -> ExitCode {
    let started = async {
        let config = Config::from_env()?;
        let state = server::build_state(&config)?;
        let listener = server::bind(&config).await?;
        Ok::<_, server::StartupError>((listener, state))
    };
    let (listener, state) = match started.await {
        Ok(ready) => ready,
        Err(error) => {
            // stderr: the host shows it as an error; exit non-zero so the host restarts us.
            eprintln!("handler: start-up failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    match server::serve(listener, state, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("handler: server failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C or SIGTERM (local runs). The host itself sends SIGKILL; nothing relies on this.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
