//! Test helpers shared by this crate's tests, its fuzz targets and other
//! crates' tests (feature `test-util`): a small message, a service built from
//! a closure, and a manual clock.
//!
//! They exist so tests need neither generated code nor tokio.

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use crate::server::{ServiceHandler, UnaryCall, UnaryReply};
use crate::{ConnectError, Instant, LocalBoxFuture, MethodDescriptor, Runtime};

/// A hand-written message with prost and (proto3-JSON-compatible) serde
/// impls, standing in for generated code.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Ping {
    #[prost(string, tag = "1")]
    pub text: String,
    #[prost(int32, tag = "2")]
    pub number: i32,
    #[prost(string, repeated, tag = "3")]
    pub tags: Vec<String>,
}

type CallFn = dyn Fn(
    &'static MethodDescriptor,
    UnaryCall,
) -> LocalBoxFuture<'static, Result<UnaryReply, ConnectError>>;

/// A [`ServiceHandler`] whose calls go to one closure.
#[derive(Clone)]
pub struct FnService {
    name: &'static str,
    methods: &'static [MethodDescriptor],
    call: Rc<CallFn>,
}

impl FnService {
    pub fn new<F, Fut>(name: &'static str, methods: &'static [MethodDescriptor], call: F) -> Self
    where
        F: Fn(&'static MethodDescriptor, UnaryCall) -> Fut + 'static,
        Fut: Future<Output = Result<UnaryReply, ConnectError>> + 'static,
    {
        FnService {
            name,
            methods,
            call: Rc::new(move |method, unary| Box::pin(call(method, unary))),
        }
    }
}

impl ServiceHandler for FnService {
    fn name(&self) -> &'static str {
        self.name
    }

    fn methods(&self) -> &'static [MethodDescriptor] {
        self.methods
    }

    fn call(
        &self,
        method: &'static MethodDescriptor,
        call: UnaryCall,
    ) -> LocalBoxFuture<'static, Result<UnaryReply, ConnectError>> {
        (self.call)(method, call)
    }
}

/// A runtime whose clock moves only by [`advance`](Self::advance). A sleep of
/// zero completes at once; any other sleep never completes, so use it only
/// where nothing must wait (fuzzing, synchronous checks). Randomness is a
/// fixed 0.5.
#[derive(Clone, Debug, Default)]
pub struct ManualRuntime {
    now: Rc<Cell<Instant>>,
}

impl ManualRuntime {
    pub fn advance(&self, by: Duration) {
        self.now.set(self.now.get() + by);
    }
}

impl Runtime for ManualRuntime {
    fn now(&self) -> Instant {
        self.now.get()
    }

    fn sleep(&self, duration: Duration) -> LocalBoxFuture<'static, ()> {
        if duration.is_zero() {
            Box::pin(std::future::ready(()))
        } else {
            Box::pin(std::future::pending())
        }
    }

    fn random(&self) -> f64 {
        0.5
    }
}
