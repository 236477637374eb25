//! Custom-handler wire formats. Forwarded and proxied requests are plain HTTP and need no
//! conversion; the invocation envelope does.

pub mod invocation;
mod scan;
