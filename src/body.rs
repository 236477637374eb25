//! Request bodies handed to business code as they stream, never collected here: a size
//! limit per function (`"maxBodyBytes"` in `auth.json`, else `HANDLER_MAX_BODY_BYTES`)
//! checked against the declared length at once, and against the bytes read while a body of
//! unknown length (chunked) streams.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::BoxError;
use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};
use http_body_util::{LengthLimitError, Limited};

/// What a request body may go on to the handler as.
#[derive(Debug)]
pub(crate) enum Admitted {
    /// The body, as it arrived: its declared length is within the limit, and hyper never
    /// yields more than a declared length.
    Whole(Body),
    /// A body of unknown length, stopped with an error once it passes the limit; the flag
    /// says it did, so the caller gets 413 whatever the handler made of the error.
    Watched(Body, Exceeded),
    /// The declared length is over the limit: refuse without reading a byte.
    TooLarge,
}

/// Set once a watched body passed its limit.
#[derive(Debug, Clone, Default)]
pub(crate) struct Exceeded(Arc<AtomicBool>);

impl Exceeded {
    /// Whether the body passed its limit.
    pub(crate) fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Admits `body` under `limit` bytes. A body of known size costs nothing (no wrapper, no
/// allocation): that covers every forwarded request (the host only forwards bodies with a
/// `Content-Length`), invocation bodies, and proxied uploads that declare their length.
pub(crate) fn admit(body: Body, limit: u64) -> Admitted {
    let hint = http_body::Body::size_hint(&body);
    match hint.exact() {
        Some(length) if length > limit => Admitted::TooLarge,
        Some(_) => Admitted::Whole(body),
        None if hint.lower() > limit => Admitted::TooLarge,
        None => {
            let exceeded = Exceeded::default();
            let limited = usize::try_from(limit).unwrap_or(usize::MAX);
            let watched = Watched { inner: Limited::new(body, limited), exceeded: exceeded.clone() };
            Admitted::Watched(Body::new(watched), exceeded)
        }
    }
}

/// [`Limited`] (whose error axum's `Bytes`/`Json`/`String` extractors already answer with
/// 413) that also records that the limit was passed.
struct Watched {
    inner: Limited<Body>,
    exceeded: Exceeded,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(error))) = &polled
            && error.is::<LengthLimitError>()
        {
            self.exceeded.0.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn chunked(parts: &'static [&'static str]) -> Body {
        let frames = parts.iter().map(|p| Ok::<_, std::convert::Infallible>(Bytes::from_static(p.as_bytes())));
        Body::from_stream(futures_util::stream::iter(frames))
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_unread() {
        assert!(matches!(admit(Body::from("x".repeat(11)), 10), Admitted::TooLarge));
    }

    #[test]
    fn a_declared_length_within_the_limit_passes_unwrapped() {
        assert!(matches!(admit(Body::from("x".repeat(10)), 10), Admitted::Whole(_)));
        assert!(matches!(admit(Body::empty(), 0), Admitted::Whole(_)));
    }

    #[tokio::test]
    async fn a_chunked_body_within_the_limit_streams_whole() {
        let Admitted::Watched(body, exceeded) = admit(chunked(&["abc", "def"]), 6) else { panic!("not watched") };
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abcdef");
        assert!(!exceeded.get());
    }

    #[tokio::test]
    async fn a_chunked_body_past_the_limit_errors_and_is_flagged() {
        let Admitted::Watched(body, exceeded) = admit(chunked(&["abc", "def", "g"]), 6) else { panic!("not watched") };
        let error = axum::body::to_bytes(body, usize::MAX).await.unwrap_err();
        assert!(exceeded.get(), "{error}");
    }
}
