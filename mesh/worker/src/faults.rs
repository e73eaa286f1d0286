//! Server-side fault injection, for chaos tests and demos: like Envoy's fault
//! filter in front of a service, the Worker itself delays or fails calls that
//! match a rule, before its handlers run.
//!
//! Off unless the Worker's `WORKMESH_FAULTS` var is `"enabled"` (set it only
//! in local or staging configs). When on, the Worker also serves
//! `workmesh.v1.Faults` to set and read its rules at run time. Rules live in
//! the isolate, so they apply to the calls that isolate serves (locally,
//! every call; in production, one of many isolates).
//!
//! The client-side counterpart, static rules applied in the calling Worker's
//! stack, is `workmesh::fault`.

use std::cell::RefCell;
use std::time::Duration;

use workmesh::codegen::{Request, Response};
use workmesh::proto::v1::faults_server::{Faults, FaultsServer};
use workmesh::proto::v1::{
    FaultRule, GetFaultsRequest, GetFaultsResponse, SetFaultsRequest, SetFaultsResponse,
};
use workmesh::server::Router;
use workmesh::{Code, ConnectError, Runtime};

use crate::WorkerRuntime;

/// The Worker var that turns server-side fault injection on.
pub const FAULTS_VAR: &str = "WORKMESH_FAULTS";

pub(crate) const FAULTS_SERVICE: &str = "workmesh.v1.Faults";

thread_local! {
    static RULES: RefCell<Vec<FaultRule>> = const { RefCell::new(Vec::new()) };
}

pub(crate) fn enabled(env: &worker::Env) -> bool {
    env.var(FAULTS_VAR)
        .is_ok_and(|v| v.to_string() == "enabled")
}

/// A router serving `workmesh.v1.Faults` over this isolate's rules.
pub(crate) fn faults_router() -> Router {
    Router::new().add(FaultsServer::new(IsolateFaults))
}

/// What the matching rule (the first one) decided for a call to `path`.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Injection {
    pub delay: Option<Duration>,
    pub abort: Option<ConnectError>,
}

/// Rolls the dice for a call to `/<service>/<method>` carrying `timeout_ms`,
/// and counts what it injects.
pub(crate) fn decide(path: &str, timeout_ms: Option<i64>, runtime: &impl Runtime) -> Injection {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (service, method) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    RULES.with(|rules| {
        let mut rules = rules.borrow_mut();
        let Some(rule) = rules.iter_mut().find(|r| matches(r, service, method)) else {
            return Injection::default();
        };
        rule.last_timeout_ms = timeout_ms.unwrap_or(0);
        let mut injection = Injection::default();
        let exhausted = |rule: &FaultRule| {
            rule.max_injections > 0 && rule.injected >= u64::from(rule.max_injections)
        };
        if rule.delay_ms > 0 && !exhausted(rule) && runtime.random() * 100.0 < rule.delay_percent {
            injection.delay = Some(Duration::from_millis(u64::from(rule.delay_ms)));
            rule.injected += 1;
        }
        if let Some(code) = Code::from_wire(&rule.abort_code) {
            if !exhausted(rule) && runtime.random() * 100.0 < rule.abort_percent {
                injection.abort = Some(ConnectError::new(
                    code,
                    format!("fault injected on {service}/{method}"),
                ));
                rule.injected += 1;
            }
        }
        injection
    })
}

fn matches(rule: &FaultRule, service: &str, method: &str) -> bool {
    (rule.service.is_empty() || rule.service == service)
        && (rule.method.is_empty() || rule.method == method)
}

struct IsolateFaults;

impl Faults for IsolateFaults {
    async fn set_faults(
        &self,
        request: Request<SetFaultsRequest>,
    ) -> Result<Response<SetFaultsResponse>, ConnectError> {
        let mut rules = request.into_inner().rules;
        for (i, rule) in rules.iter_mut().enumerate() {
            validate(i, rule)?;
            rule.injected = 0;
            rule.last_timeout_ms = 0;
        }
        RULES.with(|r| *r.borrow_mut() = rules.clone());
        Ok(Response::new(SetFaultsResponse { rules }))
    }

    async fn get_faults(
        &self,
        _request: Request<GetFaultsRequest>,
    ) -> Result<Response<GetFaultsResponse>, ConnectError> {
        let rules = RULES.with(|r| r.borrow().clone());
        Ok(Response::new(GetFaultsResponse { rules }))
    }
}

fn validate(i: usize, rule: &FaultRule) -> Result<(), ConnectError> {
    let percent_ok = |p: f64| (0.0..=100.0).contains(&p);
    if !percent_ok(rule.delay_percent) || !percent_ok(rule.abort_percent) {
        return Err(ConnectError::invalid_argument(format!(
            "rules[{i}]: delay_percent and abort_percent must be 0 to 100"
        )));
    }
    if !rule.abort_code.is_empty() && Code::from_wire(&rule.abort_code).is_none() {
        return Err(ConnectError::invalid_argument(format!(
            "rules[{i}].abort_code {:?} is not a Connect code",
            rule.abort_code
        )));
    }
    if rule.delay_ms > 60_000 {
        return Err(ConnectError::invalid_argument(format!(
            "rules[{i}].delay_ms must be at most 60000"
        )));
    }
    Ok(())
}

/// Applies an injection: waits out the delay, then fails if it aborts.
pub(crate) async fn apply(injection: Injection) -> Result<(), ConnectError> {
    if let Some(delay) = injection.delay {
        WorkerRuntime.sleep(delay).await;
    }
    match injection.abort {
        Some(error) => Err(error),
        None => Ok(()),
    }
}
