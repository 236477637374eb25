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

/// Collects `body` whole, up to `limit` bytes (`None` past it, or when the body fails). A
/// body that comes in one frame, as the host's envelopes and buffered answers do, is
/// returned as that frame's bytes: no buffer list, no copy. Trailers are dropped.
pub(crate) async fn collect(mut body: Body, limit: usize) -> Option<Bytes> {
    use http_body_util::BodyExt;
    let mut whole: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.ok()?.into_data() else { continue };
        let so_far = whole.as_ref().map_or(joined.len(), Bytes::len);
        if so_far.saturating_add(data.len()) > limit {
            return None;
        }
        match whole.take() {
            None if joined.is_empty() => whole = Some(data),
            None => joined.extend_from_slice(&data),
            Some(first) => {
                joined.reserve(first.len() + data.len());
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&data);
            }
        }
    }
    Some(whole.unwrap_or_else(|| Bytes::from(joined)))
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

    #[tokio::test]
    async fn collect_keeps_one_frame_as_it_is_and_joins_several_up_to_the_limit() {
        let one = Bytes::from_static(b"one frame");
        let whole = collect(Body::from(one.clone()), 9).await.unwrap();
        assert_eq!(whole.as_ptr(), one.as_ptr(), "a single frame is not copied");
        assert_eq!(collect(chunked(&["abc", "", "def", "g"]), 7).await.unwrap(), "abcdefg");
        assert_eq!(collect(chunked(&["abc", "def", "g"]), 6).await, None);
        assert_eq!(collect(Body::from("x".repeat(11)), 10).await, None);
        assert_eq!(collect(Body::empty(), 0).await.unwrap(), "");
    }
}
