//! The client stack for one target: every resilience layer, composed in the
//! documented order from one [`ResilienceConfig`].
//!
//! ```text
//! fault → call deadline → retry → breaker (or balance → breaker per endpoint)
//!       → concurrency limit → try timeout → trace → transport
//! ```
//!
//! Why this order, outermost first:
//!
//! 1. **fault** is outermost so an injected abort reaches the application as
//!    a dependency failure the mesh already gave up on (not retried, not
//!    counted by breakers), and an injected delay spends the caller's
//!    deadline like real slowness (Envoy's fault filter also sits before its
//!    router's retries).
//! 2. **call deadline** fixes the overall deadline once, before any retry,
//!    so retries and backoff sleeps all spend the same budget.
//! 3. **retry** sits above the breaker and balancer so each attempt is
//!    balanced afresh (a retry may land on another endpoint). A breaker's own
//!    fast "open" failure is not retried: nothing was sent, the same breaker
//!    would refuse again, and the balancer already steers around open
//!    breakers, so retrying would only sleep and spend budget.
//! 4. **breaker** (per endpoint, under **balance**) sees every attempt's
//!    outcome, including per-try timeouts, since those happen below it.
//! 5. **limit** counts attempts actually on the wire; a shed is immediate and
//!    counts neither as a breaker failure nor as a retryable error.
//! 6. **try timeout** is innermost so `Connect-Timeout-Ms` is written at the
//!    moment of sending, with the budget that is truly left, and the per-try
//!    timer covers exactly one attempt. (The architecture sketch had one
//!    deadline layer above retry; splitting it is what makes per-attempt
//!    headers and per-try timeouts possible.)
//! 7. **trace** ([`TraceLayer`]) is just above the transport: one CLIENT
//!    span per attempt, under the caller's current span, with
//!    `traceparent` written last.
//!
//! # Example
//!
//! ```
//! use std::rc::Rc;
//! use workmesh::config::ResilienceConfig;
//! use workmesh::stack::ClientStack;
//! # fn demo<R: workmesh::Runtime, T>(runtime: R, transport: T)
//! # where T: tower::Service<http::Request<bytes::Bytes>, Response = http::Response<bytes::Bytes>, Error = workmesh::ConnectError> + Clone + 'static {
//! let config = Rc::new(ResilienceConfig::from_json(r#"{"default": {"timeout_ms": 1000}}"#).unwrap());
//! let stack = ClientStack::new(runtime, config, "shop.v1.CatalogService");
//! let client = tower::Layer::layer(&stack, transport);
//! let breaker = stack.breaker(); // observe the target's breaker
//! # }
//! ```

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use crate::balance::{Balance, Endpoint};
use crate::breaker::{Breaker, BreakerHandle, BreakerLayer};
use crate::config::{ResilienceConfig, TargetPolicy};
use crate::deadline::{CallDeadline, CallDeadlineLayer, TryTimeout, TryTimeoutLayer};
use crate::fault::{FaultInjection, FaultInjectionLayer};
use crate::limit::{ConcurrencyLimit, ConcurrencyLimitLayer};
use crate::retry::{Retry, RetryBudget, RetryLayer};
use crate::trace::{TraceLayer, TraceService};
use crate::Runtime;

/// The full stack over one transport.
pub type ClientService<S, R> = FaultInjection<
    CallDeadline<Retry<Breaker<ConcurrencyLimit<TryTimeout<TraceService<S>, R>>, R>, R>, R>,
    R,
>;

/// The full stack balancing over several endpoints, one breaker each.
pub type BalancedService<S, R> = FaultInjection<
    CallDeadline<
        Retry<Balance<Breaker<ConcurrencyLimit<TryTimeout<TraceService<S>, R>>, R>, R>, R>,
        R,
    >,
    R,
>;

/// The layers for one target, with its per-target state (retry budget,
/// breaker, in-flight count) shared by every service it builds.
#[derive(Clone, Debug)]
pub struct ClientStack<R> {
    runtime: R,
    config: Rc<ResilienceConfig>,
    target: String,
    policy: TargetPolicy,
    fault: FaultInjectionLayer<R>,
    deadline: CallDeadlineLayer<R>,
    retry: RetryLayer<R>,
    breaker: BreakerLayer<R>,
    limit: ConcurrencyLimitLayer,
    try_timeout: TryTimeoutLayer<R>,
    trace: TraceLayer,
}

/// Shorthand for [`ClientStack::new`].
pub fn layer<R: Runtime>(runtime: R, config: Rc<ResilienceConfig>, target: &str) -> ClientStack<R> {
    ClientStack::new(runtime, config, target)
}

impl<R: Runtime> ClientStack<R> {
    /// The stack for `target` (a fully-qualified service name).
    pub fn new(runtime: R, config: Rc<ResilienceConfig>, target: &str) -> Self {
        let policy = config.target_policy(target);
        let budget = Rc::new(RetryBudget::new(policy.budget.clone()));
        ClientStack {
            fault: FaultInjection::layer(runtime.clone(), config.fault_rules()),
            deadline: CallDeadline::layer(runtime.clone(), config.clone()),
            retry: Retry::layer(runtime.clone(), config.clone(), budget),
            breaker: Breaker::layer(runtime.clone(), policy.breaker.clone(), target),
            limit: ConcurrencyLimit::layer(policy.limit.max_in_flight),
            try_timeout: TryTimeout::layer(runtime.clone(), config.clone()),
            trace: TraceLayer::new(),
            runtime,
            config,
            target: target.to_owned(),
            policy,
        }
    }

    /// The target's breaker (single-endpoint stacks).
    pub fn breaker(&self) -> BreakerHandle {
        self.breaker.handle()
    }

    /// The target's retry budget.
    pub fn budget(&self) -> Rc<RetryBudget> {
        self.retry.budget().clone()
    }

    /// Calls to the target on the wire now.
    pub fn in_flight(&self) -> usize {
        self.limit.in_flight()
    }

    fn wrap<S>(&self, inner: S) -> FaultInjection<CallDeadline<Retry<S, R>, R>, R> {
        use tower::Layer;
        self.fault
            .layer(self.deadline.layer(self.retry.layer(inner)))
    }

    /// The stack balancing over `endpoints` (id, transport), each with its
    /// own breaker (named `<target>/<id>`); returns the breakers too.
    pub fn balanced<S>(
        &self,
        endpoints: Vec<(String, S)>,
    ) -> (BalancedService<S, R>, Vec<(String, BreakerHandle)>) {
        let ids: Vec<String> = endpoints.iter().map(|(id, _)| id.clone()).collect();
        let mut breakers = HashMap::new();
        let service = self.balanced_with(endpoints, &mut breakers);
        let handles = ids
            .into_iter()
            .filter_map(|id| Some((id.clone(), breakers.get(&id)?.handle())))
            .collect();
        (service, handles)
    }

    /// [`balanced`](Self::balanced), reusing the breakers in `breakers` by
    /// endpoint id and adding new ones there: an endpoint keeps its breaker's
    /// state across rebuilds of the endpoint list (service discovery
    /// rebuilds it whenever the registry's answer changes).
    pub fn balanced_with<S>(
        &self,
        endpoints: Vec<(String, S)>,
        breakers: &mut HashMap<String, BreakerLayer<R>>,
    ) -> BalancedService<S, R> {
        use tower::Layer;
        let endpoints = endpoints
            .into_iter()
            .map(|(id, transport)| {
                let breaker = breakers
                    .entry(id.clone())
                    .or_insert_with(|| {
                        let name = format!("{}/{id}", self.target);
                        Breaker::layer(self.runtime.clone(), self.policy.breaker.clone(), name)
                    })
                    .clone();
                let transport = self
                    .trace
                    .clone()
                    .with_server_address(id.as_str())
                    .layer(transport);
                let service = breaker.layer(self.limit.layer(self.try_timeout.layer(transport)));
                Endpoint::new(id, service).with_breaker(breaker.handle())
            })
            .collect();
        let balance = Balance::new(self.runtime.clone(), self.policy.balance.clone(), endpoints);
        self.wrap(balance)
    }

    /// One balanced stack per group of endpoints (service discovery builds
    /// one per version), each endpoint with its breaker from `breakers` as
    /// in [`balanced_with`](Self::balanced_with). Breakers of endpoints in
    /// no group are removed from `breakers`: the table holds only the
    /// current answer's endpoints, however many answers came before (an
    /// endpoint that comes back later starts with a closed breaker).
    pub fn balanced_groups<K, S>(
        &self,
        groups: Vec<(K, Vec<(String, S)>)>,
        breakers: &mut HashMap<String, BreakerLayer<R>>,
    ) -> HashMap<K, BalancedService<S, R>>
    where
        K: Eq + std::hash::Hash,
    {
        let current: HashSet<String> = groups
            .iter()
            .flat_map(|(_, endpoints)| endpoints.iter().map(|(id, _)| id.clone()))
            .collect();
        breakers.retain(|id, _| current.contains(id));
        groups
            .into_iter()
            .map(|(key, endpoints)| (key, self.balanced_with(endpoints, breakers)))
            .collect()
    }

    /// Names the callee in the CLIENT spans of single-endpoint stacks
    /// (`server.address`: the binding or host it is reached by).
    pub fn with_server_address(mut self, address: &str) -> Self {
        self.trace = self.trace.with_server_address(address);
        self
    }

    /// The configuration this stack was built from.
    pub fn config(&self) -> &Rc<ResilienceConfig> {
        &self.config
    }
}

impl<S, R: Runtime> tower::Layer<S> for ClientStack<R> {
    type Service = ClientService<S, R>;
    fn layer(&self, transport: S) -> Self::Service {
        self.wrap(
            self.breaker.layer(
                self.limit
                    .layer(self.try_timeout.layer(self.trace.layer(transport))),
            ),
        )
    }
}

#[cfg(all(test, feature = "tokio"))]
mod tests;
