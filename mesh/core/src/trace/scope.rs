//! The current span: a per-thread stack of [`SpanHandle`]s.
//!
//! `http::Extensions` require `Send + Sync`, so a `Rc`-based collector cannot
//! ride in a request. Instead the router runs the handler inside
//! [`in_span`], which makes the server span current for the duration of
//! every poll; code below it (the client trace layer, the `tracing` bridge,
//! a handler's D1 helper) finds it with [`current`]. Because the span is
//! pushed and popped around each poll, not around the whole future, several
//! requests interleaved on one isolate's thread each see their own span.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::span::SpanHandle;

thread_local! {
    static STACK: RefCell<Vec<SpanHandle>> = const { RefCell::new(Vec::new()) };
}

/// The innermost current span, if any.
pub fn current() -> Option<SpanHandle> {
    STACK.with(|stack| stack.borrow().last().cloned())
}

/// Runs `f` with `span` current.
pub fn with_span<T>(span: &SpanHandle, f: impl FnOnce() -> T) -> T {
    let _guard = Entered::push(span.clone());
    f()
}

/// Makes `span` current while `future` is polled.
pub fn in_span<F: Future>(span: SpanHandle, future: F) -> InSpan<F> {
    InSpan {
        span,
        future: Box::pin(future),
    }
}

/// The future returned by [`in_span`].
pub struct InSpan<F> {
    span: SpanHandle,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for InSpan<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _guard = Entered::push(self.span.clone());
        self.future.as_mut().poll(cx)
    }
}

/// Pushes on creation, pops on drop (so a panicking poll leaves the stack
/// as it found it).
pub(crate) struct Entered {
    depth: usize,
}

impl Entered {
    pub(crate) fn push(span: SpanHandle) -> Entered {
        let depth = STACK.with(|stack| {
            let mut stack = stack.borrow_mut();
            stack.push(span);
            stack.len()
        });
        Entered { depth }
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        STACK.with(|stack| stack.borrow_mut().truncate(self.depth - 1));
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use super::*;
    use crate::testing::ManualRuntime;
    use crate::trace::{Sampler, SpanKind, TraceCollector};

    #[test]
    fn each_interleaved_future_sees_its_own_span() {
        let runtime = ManualRuntime::default();
        let collector = TraceCollector::new(&runtime, Sampler::ratio(1.0));
        let a = collector.start_span("a", SpanKind::Server, None);
        let b = collector.start_span("b", SpanKind::Server, None);
        let seen = |expected: SpanHandle| {
            poll_fn(move |_| {
                let current = current().map(|span| span.context().span_id);
                assert_eq!(current, Some(expected.context().span_id));
                Poll::Ready(())
            })
        };
        let fa = in_span(a.handle(), seen(a.handle()));
        let fb = in_span(b.handle(), seen(b.handle()));
        futures_util::FutureExt::now_or_never(futures_util::future::join(fa, fb)).expect("ready");
        assert!(current().is_none(), "the stack is left empty");
        let inner = with_span(&a.handle(), || current().map(|s| s.context().span_id));
        assert_eq!(inner, Some(a.context().span_id));
    }
}
