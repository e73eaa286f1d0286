//! Service discovery inside a Worker: resolving targets through the
//! `REGISTRY` service binding, reporting call outcomes, and registering the
//! Worker's own instance. The decisions are `workmesh::discovery`'s; this
//! module sends the calls and holds the isolate-wide state.
//!
//! # When the registry is called
//!
//! - **Resolve**: the first call to a target in a cold isolate resolves
//!   inline, bounded by the resolve timeout (200 ms); concurrent first calls
//!   wait for that one Resolve, watching the cache on their own timers for
//!   at most what is left of the resolve timeout. They never poll the
//!   Resolve itself: its I/O belongs to the request that started it
//!   (workerd refuses I/O on behalf of another request, and cancels it with
//!   that request), so a cancelled first call never makes others hang.
//!   After that, every Resolve (stale answer, failed registry) runs in
//!   `wait_until` after a response, at most one per target at a time and at
//!   most one per TTL (5 s) after a failure. A warm isolate
//!   never waits for the registry.
//! - **ReportOutcomes**: per-instance outcomes of discovered calls, batched
//!   in the isolate and sent from `wait_until` at most every 2 s, one at a
//!   time. A failed report is logged and dropped; one that never finished
//!   (its task dropped by a full background queue, or cut short) stops
//!   blocking the next after 10 s.
//! - **Register / Heartbeat**: a Worker with `WORKMESH_INSTANCE` and
//!   `WORKMESH_ENDPOINT` registers once per isolate, after its first
//!   response, then heartbeats at the interval the registry asks for,
//!   piggybacked on later responses.
//!
//! # Never a hard dependency
//!
//! No `REGISTRY` binding, a Resolve that fails or times out, or an answer
//! with no routable instance all route the call by the last answer that had
//! instances, else by the static binding the caller named. A call never fails
//! only because the registry is down.
//!
//! Per call (`workmesh::discovery::choose_route`): a fresh or stale answer
//! is routed by; an expired one (older than TTL + stale window, 5 min) only
//! while the static binding's breaker is open, else the call takes the
//! static binding. And when every instance of the picked version has its
//! breaker open, the call takes the static binding: a discovered route that
//! cannot send never blocks one that might.
//!
//! # Deadlines
//!
//! A call's deadline starts before its route is decided: the typed client's
//! `Deadline`, else now + the configured timeout. A cold isolate's inline
//! Resolve waits at most what is left of it, so waiting for the registry
//! never makes a call overrun its `Connect-Timeout-Ms`.
//!
//! # Endpoints
//!
//! An instance's endpoint is a binding name (the caller must have a
//! `[[services]]` binding of that name; instances it cannot reach are
//! skipped, with a warning) or an http(s) URL (called with `fetch`). A
//! picked version none of whose instances is reachable routes the call to
//! the static binding.
//!
//! # Outcomes
//!
//! Every attempt sent to a discovered instance is counted for it: a success,
//! or a failure when its Connect code blames the instance
//! (`workmesh::discovery::blames_instance`). An attempt dropped before it
//! answered counts as a failure only when it ran for its whole budget (the
//! `Connect-Timeout-Ms` it was sent with): its per-try timeout or the call's
//! deadline cut it short. One dropped earlier was abandoned by its caller
//! (`try_join_all` dropping sibling calls after one failed, a client going
//! away) and is not counted at all
//! (`workmesh::discovery::dropped_attempt_blames`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{select, Either};
use workmesh::breaker::BreakerLayer;
use workmesh::context::headers::CONNECT_TIMEOUT_MS;
use workmesh::discovery::{
    blames_instance, choose_route, dropped_attempt_blames, inline_wait, pick_version,
    proto_breaker_state, report_id, DiscoveryPolicy, Freshness, OutcomeRecorder, Refresh,
    RegistrationAction, Resolution, ResolutionCache, RouteChoice, SelfRegistration,
};
use workmesh::proto::v1::instance::Endpoint;
use workmesh::proto::v1::registry_client::RegistryClient;
use workmesh::proto::v1::{
    BreakerState, HeartbeatRequest, Instance, RegisterRequest, ReportOutcomesRequest,
    ResolveRequest,
};
use workmesh::stack::{BalancedService, ClientStack};
use workmesh::{ConnectError, Instant, LocalBoxFuture, Runtime};

use crate::transport::UrlTransport;
use crate::{background, BindingTransport, WorkerRuntime};

/// The service binding to the registry Worker.
pub const REGISTRY_BINDING: &str = "REGISTRY";
/// The registry's bearer token (a secret), for registries that require one.
pub const REGISTRY_TOKEN_VAR: &str = "WORKMESH_REGISTRY_TOKEN";
/// The service this Worker serves (fully qualified), for self-registration.
pub const SERVICE_VAR: &str = "WORKMESH_SERVICE";
/// The version this Worker runs (default `v1`).
pub const VERSION_VAR: &str = "WORKMESH_VERSION";
/// This Worker's instance id, unique in the mesh; self-registration is off
/// without it.
pub const INSTANCE_VAR: &str = "WORKMESH_INSTANCE";
/// How callers reach this Worker: the binding name they use (`CATALOG`) or
/// an http(s) URL; self-registration is off without it.
pub const ENDPOINT_VAR: &str = "WORKMESH_ENDPOINT";

/// The longest a report, registration or heartbeat may take.
const BACKGROUND_TIMEOUT: Duration = Duration::from_secs(2);

/// A report still unanswered this long after it was queued is taken as
/// lost (it runs at most `BACKGROUND_TIMEOUT` once started, but its task may
/// have been dropped unrun or cancelled), so reports never stop for good.
const REPORT_LOST_AFTER: Duration = Duration::from_secs(10);

/// A discovered call's route: the resilience stack balancing over one
/// version's instances, one breaker each.
pub(crate) type Discovered = BalancedService<Recorded<EndpointTransport>, WorkerRuntime>;

/// How often a call waiting for another call's inline Resolve looks at the
/// cache again.
const INLINE_POLL: Duration = Duration::from_millis(5);

/// Marks the inline Resolve of `service` (when it started) while the call
/// that runs it waits for it, and unmarks it when that call is done with it
/// or dropped (its client went away). Other calls wait for the mark to go.
struct InlineMark<'a> {
    service: &'a str,
}

impl<'a> InlineMark<'a> {
    fn new(service: &'a str, started: Instant) -> Self {
        with_isolate(|i| i.inline.insert(service.to_owned(), started));
        InlineMark { service }
    }
}

impl Drop for InlineMark<'_> {
    fn drop(&mut self) {
        with_isolate(|i| i.inline.remove(self.service));
    }
}

struct Isolate {
    cache: ResolutionCache,
    recorder: OutcomeRecorder,
    registration: SelfRegistration,
    targets: HashMap<String, Rc<Target>>,
    /// Services whose inline Resolve is running, and since when.
    inline: HashMap<String, Instant>,
    /// When the outcome report in flight was queued; forgotten after
    /// [`REPORT_LOST_AFTER`] (its `wait_until` may have been cut short).
    report_started: Option<Instant>,
    report_failures: u64,
}

thread_local! {
    static ISOLATE: RefCell<Isolate> = RefCell::new({
        let policy = DiscoveryPolicy::default();
        Isolate {
            recorder: OutcomeRecorder::new(&policy),
            registration: SelfRegistration::new(policy.register_retry),
            cache: ResolutionCache::new(policy),
            targets: HashMap::new(),
            inline: HashMap::new(),
            report_started: None,
            report_failures: 0,
        }
    });
}

fn with_isolate<T>(f: impl FnOnce(&mut Isolate) -> T) -> T {
    ISOLATE.with(|isolate| f(&mut isolate.borrow_mut()))
}

/// One target service's discovered routes, shared by the isolate's requests.
pub(crate) struct Target {
    service: String,
    stack: ClientStack<WorkerRuntime>,
    /// Per-instance breakers, by instance id: they outlive re-resolution,
    /// for the instances of the answer last routed by only.
    breakers: RefCell<HashMap<String, BreakerLayer<WorkerRuntime>>>,
    /// The routes built for the answer last routed by.
    routes: RefCell<Option<Routes>>,
}

struct Routes {
    resolution: Rc<Resolution>,
    versions: HashMap<String, Discovered>,
}

/// The isolate's discovery state for `service`, created on first use with
/// `stack` (which carries the target's policy and retry budget).
pub(crate) fn target(
    service: &str,
    stack: impl FnOnce() -> ClientStack<WorkerRuntime>,
) -> Rc<Target> {
    with_isolate(|isolate| {
        isolate
            .targets
            .entry(service.to_owned())
            .or_insert_with(|| {
                Rc::new(Target {
                    service: service.to_owned(),
                    stack: stack(),
                    breakers: RefCell::new(HashMap::new()),
                    routes: RefCell::new(None),
                })
            })
            .clone()
    })
}

/// The registry client, when this Worker has a `REGISTRY` binding.
pub(crate) fn registry(env: &worker::Env) -> Option<RegistryClient<RegistryTransport>> {
    let binding = BindingTransport::new(env, REGISTRY_BINDING).ok()?;
    let authorization = env
        .secret(REGISTRY_TOKEN_VAR)
        .or_else(|_| env.var(REGISTRY_TOKEN_VAR))
        .ok()
        .map(|token| token.to_string())
        .filter(|token| !token.is_empty())
        .and_then(|token| match http::HeaderValue::from_str(&format!("Bearer {token}")) {
            Ok(mut value) => {
                value.set_sensitive(true);
                Some(value)
            }
            Err(_) => {
                worker::console_error!(
                    "workmesh: {REGISTRY_TOKEN_VAR} cannot be sent as a header; calling the registry without it"
                );
                None
            }
        });
    Some(RegistryClient::new(RegistryTransport {
        binding,
        authorization,
    }))
}

/// The registry's binding, sending `Authorization: Bearer <token>` when this
/// Worker has `WORKMESH_REGISTRY_TOKEN` (the registry then requires it).
#[derive(Clone)]
pub(crate) struct RegistryTransport {
    binding: BindingTransport,
    authorization: Option<http::HeaderValue>,
}

impl tower_service::Service<http::Request<Bytes>> for RegistryTransport {
    type Response = http::Response<Bytes>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.binding.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Bytes>) -> Self::Future {
        if let Some(value) = &self.authorization {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value.clone());
        }
        self.binding.call(request)
    }
}

/// Decides the route of one call to `target`: a discovered version's
/// balanced stack, or `None` for the static binding
/// (`workmesh::discovery::choose_route`; `static_can_send` is false while
/// the static binding's breaker is open). Resolves inline only in a cold
/// isolate, waiting at most the resolve timeout and never past the call's
/// `deadline`; otherwise queues any refresh for after the response.
pub(crate) async fn route(
    target: &Target,
    registry: &RegistryClient<RegistryTransport>,
    env: &worker::Env,
    deadline: Option<Instant>,
    static_can_send: bool,
) -> Option<Discovered> {
    let service = target.service.as_str();
    let now = WorkerRuntime.now();
    let (plan, timeout) =
        with_isolate(|i| (i.cache.plan(service, now), i.cache.policy().resolve_timeout));
    let wait = inline_wait(timeout, deadline, now);
    let resolution = match plan.refresh {
        Refresh::Inline => {
            let _mark = InlineMark::new(service, now);
            if !bounded(wait, resolve(registry.clone(), service.to_owned())).await {
                // Cut short by the call's deadline: resolve after the
                // response instead (a fresh Resolve, so its I/O belongs to
                // whichever request runs it).
                let queued = background::spawn(resolve(registry.clone(), service.to_owned()));
                if !queued {
                    with_isolate(|i| i.cache.failed(service, WorkerRuntime.now()));
                }
            }
            usable(service)
        }
        Refresh::InFlight => {
            // Another call's inline Resolve is running. Its future, I/O and
            // timer belong to that call's request: polling it from this one
            // is refused by workerd, and it stops if that call is cancelled.
            // So this call only watches the mark, on its own timers, for at
            // most what is left of the resolve timeout (and of its deadline).
            let started = with_isolate(|i| i.inline.get(service).copied());
            if let Some(started) = started {
                let left = timeout.saturating_sub(now.saturating_duration_since(started));
                if left.is_zero() {
                    // Its call is gone without unmarking it: forget it.
                    with_isolate(|i| i.inline.remove(service));
                } else {
                    wait_for_inline(service, started, wait.min(left)).await;
                }
            }
            usable(service)
        }
        Refresh::Background => {
            if !background::spawn(resolve(registry.clone(), service.to_owned())) {
                with_isolate(|i| i.cache.failed(service, now));
            }
            plan.resolution.zip(plan.freshness)
        }
        Refresh::None => plan.resolution.zip(plan.freshness),
    };
    let (resolution, freshness) = resolution?;
    target.pick(resolution, freshness, static_can_send, env)
}

fn usable(service: &str) -> Option<(Rc<Resolution>, Freshness)> {
    with_isolate(|i| i.cache.usable(service, WorkerRuntime.now()))
}

/// One Resolve, bounded by the resolve timeout; the answer (or the failure)
/// goes into the cache.
async fn resolve(registry: RegistryClient<RegistryTransport>, service: String) {
    let (token, timeout) = with_isolate(|i| {
        (
            i.cache.known_token(&service),
            i.cache.policy().resolve_timeout,
        )
    });
    let request = ResolveRequest {
        service: service.clone(),
        known_version_token: token,
    };
    let outcome = within(timeout, registry.resolve(request)).await;
    let now = WorkerRuntime.now();
    match outcome {
        Ok(response) => with_isolate(|i| i.cache.resolved(&service, response.into_inner(), now)),
        Err(error) => {
            worker::console_warn!(
                "workmesh: resolving {service} failed ({}: {}); routing by the last known or static endpoint",
                error.code,
                error.message
            );
            with_isolate(|i| i.cache.failed(&service, now));
        }
    }
}

/// Waits, on this call's own timers, until the inline Resolve of `service`
/// that started at `started` is over or `wait` has passed.
async fn wait_for_inline(service: &str, started: Instant, wait: Duration) {
    let until = WorkerRuntime.now() + wait;
    loop {
        let running = with_isolate(|i| i.inline.get(service) == Some(&started));
        let now = WorkerRuntime.now();
        if !running || now >= until {
            return;
        }
        WorkerRuntime
            .sleep(INLINE_POLL.min(until.saturating_duration_since(now)))
            .await;
    }
}

/// Waits for `future` at most `wait` on this call's own timer; false when
/// the timer won.
async fn bounded(wait: Duration, future: impl std::future::Future<Output = ()>) -> bool {
    let future = std::pin::pin!(future);
    matches!(
        select(future, WorkerRuntime.sleep(wait)).await,
        Either::Left(_)
    )
}

/// `future`, or `deadline_exceeded` after `timeout`.
async fn within<T>(
    timeout: Duration,
    future: impl std::future::Future<Output = Result<T, ConnectError>>,
) -> Result<T, ConnectError> {
    let future = std::pin::pin!(future);
    match select(future, WorkerRuntime.sleep(timeout)).await {
        Either::Left((outcome, _)) => outcome,
        Either::Right(_) => Err(ConnectError::deadline_exceeded(format!(
            "the registry did not answer within {} ms",
            timeout.as_millis()
        ))),
    }
}

impl Target {
    /// Picks a version by weight and returns its balanced stack (building
    /// the routes when the answer changed), or `None` when the call goes to
    /// the static binding instead (see `choose_route`).
    fn pick(
        &self,
        resolution: Rc<Resolution>,
        freshness: Freshness,
        static_can_send: bool,
        env: &worker::Env,
    ) -> Option<Discovered> {
        let stale = self
            .routes
            .borrow()
            .as_ref()
            .is_none_or(|routes| !Rc::ptr_eq(&routes.resolution, &resolution));
        if stale {
            let routes = self.build(resolution, env);
            *self.routes.borrow_mut() = Some(routes);
        }
        let routes = self.routes.borrow();
        let routes = routes.as_ref()?;
        let version = pick_version(&routes.resolution, WorkerRuntime.random())?;
        let route = routes.versions.get(version);
        let can_send = route.is_some() && self.any_closed(&routes.resolution, version);
        match choose_route(Some(freshness), can_send, static_can_send) {
            RouteChoice::Discovered => route.cloned(),
            RouteChoice::Static => None,
        }
    }

    /// Whether some reachable instance of `version` has a breaker that
    /// would admit a call now.
    fn any_closed(&self, resolution: &Resolution, version: &str) -> bool {
        let now = WorkerRuntime.now();
        let breakers = self.breakers.borrow();
        resolution
            .instances
            .iter()
            .filter(|i| i.version == version)
            .filter_map(|i| breakers.get(&i.instance_id))
            .any(|b| !b.handle().is_open(now))
    }

    fn build(&self, resolution: Rc<Resolution>, env: &worker::Env) -> Routes {
        let mut by_version: HashMap<String, Vec<(String, Recorded<EndpointTransport>)>> =
            HashMap::new();
        for instance in &resolution.instances {
            let Some(transport) = EndpointTransport::for_instance(instance, env) else {
                continue;
            };
            let recorded = Recorded {
                instance: instance.instance_id.as_str().into(),
                inner: transport,
            };
            by_version
                .entry(instance.version.clone())
                .or_default()
                .push((instance.instance_id.clone(), recorded));
        }
        // Breakers of instances the answer no longer lists are dropped.
        let versions = self.stack.balanced_groups(
            by_version.into_iter().collect(),
            &mut self.breakers.borrow_mut(),
        );
        Routes {
            resolution,
            versions,
        }
    }
}

/// How one instance is reached: a service binding or a URL.
#[derive(Clone)]
pub(crate) enum EndpointTransport {
    Binding(BindingTransport),
    Url(UrlTransport),
}

impl EndpointTransport {
    fn for_instance(instance: &Instance, env: &worker::Env) -> Option<Self> {
        match &instance.endpoint {
            Some(Endpoint::Binding(name)) => match BindingTransport::named(env, name) {
                Ok(binding) => Some(EndpointTransport::Binding(binding)),
                Err(_) => {
                    worker::console_warn!(
                        "workmesh: instance {} is reached by binding {name}, which this Worker does not have; skipping it",
                        instance.instance_id
                    );
                    None
                }
            },
            Some(Endpoint::Url(url)) => Some(EndpointTransport::Url(UrlTransport::new(url))),
            None => None,
        }
    }
}

impl tower_service::Service<http::Request<Bytes>> for EndpointTransport {
    type Response = http::Response<Bytes>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Bytes>) -> Self::Future {
        match self {
            EndpointTransport::Binding(t) => t.call(request),
            EndpointTransport::Url(t) => t.call(request),
        }
    }
}

/// Counts every attempt sent to one instance in the isolate's outcome
/// recorder: latency, and success or a failure that blames the instance.
/// An attempt dropped before it answered counts as a failure only if it ran
/// for its whole budget (a timeout fired); otherwise it is not counted.
#[derive(Clone)]
pub(crate) struct Recorded<S> {
    instance: Rc<str>,
    inner: S,
}

struct Attempt {
    instance: Rc<str>,
    start: Instant,
    /// The `Connect-Timeout-Ms` the attempt was sent with.
    budget: Option<Duration>,
    done: bool,
}

impl Attempt {
    fn finish(&mut self, failure: bool) {
        self.done = true;
        let latency = WorkerRuntime.now().saturating_duration_since(self.start);
        let instance = self.instance.clone();
        with_isolate(|i| i.recorder.record(&instance, failure, latency));
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let elapsed = WorkerRuntime.now().saturating_duration_since(self.start);
        if dropped_attempt_blames(elapsed, self.budget) {
            self.finish(true);
        }
    }
}

impl<S> tower_service::Service<http::Request<Bytes>> for Recorded<S>
where
    S: tower_service::Service<
        http::Request<Bytes>,
        Response = http::Response<Bytes>,
        Error = ConnectError,
        Future = LocalBoxFuture<'static, Result<http::Response<Bytes>, ConnectError>>,
    >,
{
    type Response = http::Response<Bytes>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Bytes>) -> Self::Future {
        // Written by the try-timeout layer above at send time.
        let budget = request
            .headers()
            .get(CONNECT_TIMEOUT_MS)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis);
        let mut attempt = Attempt {
            instance: self.instance.clone(),
            start: WorkerRuntime.now(),
            budget,
            done: false,
        };
        let call = self.inner.call(request);
        Box::pin(async move {
            let outcome = call.await;
            attempt.finish(outcome.as_ref().is_err_and(|e| blames_instance(e.code)));
            outcome
        })
    }
}

/// After a response: queues what is due with the registry (this Worker's
/// registration or heartbeat, an outcome report) for `wait_until`.
pub(crate) fn after_response(env: &worker::Env) {
    let now = WorkerRuntime.now();
    if let Some(instance) = own_instance(env) {
        if let Some(action) = with_isolate(|i| i.registration.next(now)) {
            let queued = registry(env)
                .is_some_and(|registry| background::spawn(register(registry, instance, action)));
            if !queued {
                // No registry to talk to, or no room in the queue: try again
                // after the retry interval.
                with_isolate(|i| i.registration.failed(now));
            }
        }
    }
    let due = with_isolate(|i| {
        let in_flight = i
            .report_started
            .is_some_and(|t| now.saturating_duration_since(t) < REPORT_LOST_AFTER);
        !in_flight && i.recorder.due(now)
    });
    if due {
        let Some(registry) = registry(env) else {
            return;
        };
        let outcomes = with_isolate(|i| {
            let breakers = breaker_states(&i.targets);
            let outcomes = i.recorder.take(now, |id| {
                breakers
                    .get(id)
                    .copied()
                    .unwrap_or(BreakerState::Unspecified)
            });
            i.report_started = outcomes.as_ref().map(|_| now);
            outcomes
        });
        if let Some(outcomes) = outcomes {
            if !background::spawn(report(registry, outcomes)) {
                // Dropped with the task: the next report may go.
                with_isolate(|i| i.report_started = None);
            }
        }
    }
}

fn breaker_states(targets: &HashMap<String, Rc<Target>>) -> HashMap<String, BreakerState> {
    targets
        .values()
        .flat_map(|t| {
            t.breakers
                .borrow()
                .iter()
                .map(|(id, b)| (id.clone(), proto_breaker_state(&b.handle().state())))
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn report(
    registry: RegistryClient<RegistryTransport>,
    outcomes: Vec<workmesh::proto::v1::Outcome>,
) {
    let request = ReportOutcomesRequest {
        report_id: report_id(&WorkerRuntime),
        outcomes,
    };
    let outcome = within(BACKGROUND_TIMEOUT, registry.report_outcomes(request)).await;
    let failures = with_isolate(|i| {
        i.report_started = None;
        if outcome.is_err() {
            i.report_failures += 1;
        }
        i.report_failures
    });
    if let Err(error) = outcome {
        // Logged on the first failure and every 100th: a registry without
        // passive health would otherwise flood the log.
        if failures % 100 == 1 {
            worker::console_warn!(
                "workmesh: outcome report dropped ({}: {}; {failures} so far)",
                error.code,
                error.message
            );
        }
    }
}

/// This Worker's own instance, from its vars; `None` (no self-registration)
/// unless `WORKMESH_SERVICE`, `WORKMESH_INSTANCE` and `WORKMESH_ENDPOINT`
/// are all set.
fn own_instance(env: &worker::Env) -> Option<Instance> {
    let var = |name: &str| {
        env.var(name)
            .ok()
            .map(|v| v.to_string().trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let endpoint = var(ENDPOINT_VAR)?;
    let endpoint = if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        Endpoint::Url(endpoint)
    } else {
        Endpoint::Binding(endpoint)
    };
    Some(Instance {
        service: var(SERVICE_VAR)?,
        instance_id: var(INSTANCE_VAR)?,
        version: var(VERSION_VAR).unwrap_or_else(|| "v1".to_owned()),
        endpoint: Some(endpoint),
        ..Default::default()
    })
}

async fn register(
    registry: RegistryClient<RegistryTransport>,
    instance: Instance,
    action: RegistrationAction,
) {
    let id = instance.instance_id.clone();
    let outcome = match action {
        RegistrationAction::Register => {
            let request = RegisterRequest {
                instance: Some(instance),
            };
            within(BACKGROUND_TIMEOUT, registry.register(request))
                .await
                .map(|r| {
                    let interval = r.into_inner().heartbeat_interval_ms;
                    let now = WorkerRuntime.now();
                    with_isolate(|i| {
                        i.registration
                            .registered(now, Duration::from_millis(u64::from(interval)))
                    });
                })
        }
        RegistrationAction::Heartbeat => {
            let request = HeartbeatRequest {
                instance_id: id.clone(),
            };
            within(BACKGROUND_TIMEOUT, registry.heartbeat(request))
                .await
                .map(|r| {
                    let known = r.into_inner().known;
                    let now = WorkerRuntime.now();
                    with_isolate(|i| i.registration.heartbeat_answered(now, known));
                })
        }
    };
    if let Err(error) = outcome {
        worker::console_warn!(
            "workmesh: {action:?} of instance {id} failed ({}: {}); retrying later",
            error.code,
            error.message
        );
        let now = WorkerRuntime.now();
        with_isolate(|i| i.registration.failed(now));
    }
}
