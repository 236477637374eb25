//! `handler`: the process the Functions host starts, serving the built-in functions
//! (`api-a`). Wiring only; see the library.

use std::process::ExitCode;

/// mimalloc instead of the platform allocator. On the static musl build that ships,
/// musl's malloc is slow (about 370 instructions per malloc/free pair, one global lock);
/// measured in the same bench run against the same code on musl's malloc: cache misses
/// 1.14x vs 1.00x of the inline-jsonwebtoken baseline, and about 3k fewer instructions
/// (15%) per refused request under callgrind, for about 90 KB of binary. Built without
/// transparent huge pages (feature `no_thp`): with them RSS after 10k requests was 16 MB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match azfn_auth::server::run(azfn_auth::functions::builtin()) {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
