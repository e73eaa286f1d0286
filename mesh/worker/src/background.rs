//! Work that must run after the response: a per-isolate queue that
//! [`serve`](crate::serve) (and [`queue::consume`](crate::queue::consume),
//! after a batch) drains into `ctx.wait_until`.
//!
//! Code deep in a request (a transport refreshing the registry's answer)
//! has no `worker::Context`; it queues the future here instead, and the
//! `serve` that is answering hands everything queued to `wait_until` once
//! its response is ready. Requests of one isolate interleave, so a task may
//! ride on another request's `wait_until` than the one that queued it; it
//! still runs after a response and never delays one. Work queued outside any
//! `serve` or `consume` (a scheduled handler, say) waits for the next one of
//! the isolate.

use std::cell::RefCell;
use std::future::Future;

use futures_util::future::join_all;
use workmesh::LocalBoxFuture;

/// The most tasks waiting at once; more are dropped (and logged): they are
/// refreshes and reports, which the next request schedules again.
const MAX_QUEUED: usize = 64;

thread_local! {
    static QUEUE: RefCell<Vec<LocalBoxFuture<'static, ()>>> = const { RefCell::new(Vec::new()) };
}

/// Queues `task` to run after the current (or next) response; false when
/// the queue is full and `task` was dropped (the caller must then undo any
/// claim it made for it).
#[must_use = "a dropped task's claims must be released"]
pub(crate) fn spawn(task: impl Future<Output = ()> + 'static) -> bool {
    QUEUE.with(|queue| {
        let mut queue = queue.borrow_mut();
        if queue.len() >= MAX_QUEUED {
            worker::console_warn!("workmesh: background queue full, dropping a task");
            return false;
        }
        queue.push(Box::pin(task));
        true
    })
}

/// Everything queued, as one future (`None` when nothing is).
pub(crate) fn take() -> Option<LocalBoxFuture<'static, ()>> {
    let tasks = QUEUE.with(|queue| std::mem::take(&mut *queue.borrow_mut()));
    if tasks.is_empty() {
        return None;
    }
    Some(Box::pin(async move {
        join_all(tasks).await;
    }))
}
