//! Typed resilience configuration: timeouts, retries and their budget, circuit
//! breakers, concurrency limits, balancing and fault injection.
//!
//! The configuration arrives as a JSON string (a Worker var such as
//! `WORKMESH_RESILIENCE`), is parsed with unknown fields rejected, and is
//! validated once at start-up, so a typo fails the deploy rather than
//! silently falling back to defaults. Everything not set takes the reference
//! defaults of the architecture document (see each `*Policy`'s `Default`).
//!
//! Settings resolve from the most specific level that sets them:
//! built-in defaults ← `default` ← `services.<name>` ← `services.<name>.methods.<method>`.
//! Call-level settings (timeouts, retry) may be set per method; target-level
//! settings (retry budget, breaker, limit, balance) per service.
//!
//! ```
//! use workmesh::config::ResilienceConfig;
//! let config = ResilienceConfig::from_json(r#"{
//!     "default": {"retry": {"max_attempts": 2}},
//!     "services": {"shop.v1.CatalogService": {"methods": {"GetProduct": {"timeout_ms": 200}}}}
//! }"#).unwrap();
//! let policy = config.call_policy("shop.v1.CatalogService", "GetProduct");
//! assert_eq!(policy.timeout, Some(std::time::Duration::from_millis(200)));
//! assert_eq!(policy.retry.max_attempts, 2);
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::error::Code;
use crate::method::MethodDescriptor;

/// The most attempts (first try included) a retry policy may allow.
pub const MAX_ATTEMPTS_LIMIT: i64 = 10;

/// Why a configuration was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON, a wrong type, or an unknown field.
    #[error("resilience config does not parse: {0}")]
    Parse(String),
    /// Parsed, but some values are out of range; one message per bad field.
    #[error("invalid resilience config: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// The whole resilience configuration of one Worker.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResilienceConfig {
    /// Settings for every target unless a service overrides them.
    #[serde(default)]
    pub default: ServiceConfig,
    /// Per-service overrides, by fully-qualified service name.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceConfig>,
    /// Fault injection; off unless `enabled` is true.
    #[serde(default)]
    pub faults: FaultConfig,
}

/// Settings of one service (or of `default`). Every field is optional.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Overall deadline of a call that carries none (milliseconds).
    pub timeout_ms: Option<i64>,
    /// Timeout of each attempt (milliseconds).
    pub per_try_timeout_ms: Option<i64>,
    pub retry: Option<RetryConfig>,
    pub retry_budget: Option<BudgetConfig>,
    pub breaker: Option<BreakerConfig>,
    pub limit: Option<LimitConfig>,
    pub balance: Option<BalanceConfig>,
    /// Per-method overrides, by method name as in the contract.
    #[serde(default)]
    pub methods: BTreeMap<String, MethodConfig>,
}

/// Per-method overrides: only call-level settings.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MethodConfig {
    pub timeout_ms: Option<i64>,
    pub per_try_timeout_ms: Option<i64>,
    pub retry: Option<RetryConfig>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts including the first; 1 disables retries.
    pub max_attempts: Option<i64>,
    pub backoff_base_ms: Option<i64>,
    pub backoff_cap_ms: Option<i64>,
    /// Codes to retry (wire names). Per-try timeouts are always retryable.
    pub retry_on: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Retries allowed as a fraction of requests, `0..=1`.
    pub ratio: Option<f64>,
    /// Retries per second always allowed, however few the requests.
    pub min_per_s: Option<f64>,
    pub window_ms: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    pub consecutive_failures: Option<i64>,
    /// Open when the success rate over the window falls below this, `0..=1`.
    pub min_success_rate: Option<f64>,
    pub window_ms: Option<i64>,
    /// Calls needed in the window before the success rate counts.
    pub min_calls: Option<i64>,
    pub backoff_initial_ms: Option<i64>,
    pub backoff_max_ms: Option<i64>,
    /// Extra random share of each open period, `0..=1`.
    pub jitter: Option<f64>,
    /// Codes that count as failures (wire names).
    pub failure_codes: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    pub max_in_flight: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BalanceConfig {
    pub ewma_seed_ms: Option<i64>,
    pub decay_ms: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub rules: Vec<FaultRuleConfig>,
}

/// One fault rule; `service` / `method` absent match any.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultRuleConfig {
    pub service: Option<String>,
    pub method: Option<String>,
    pub delay: Option<FaultDelayConfig>,
    pub abort: Option<FaultAbortConfig>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultDelayConfig {
    pub ms: i64,
    /// Share of matching calls delayed, `0..=100`.
    pub percent: f64,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultAbortConfig {
    /// Connect code wire name, e.g. `"unavailable"`.
    pub code: String,
    /// Share of matching calls aborted, `0..=100`.
    pub percent: f64,
    pub message: Option<String>,
}

// ---------------------------------------------------------------------------
// Resolved policies: what the layers read.

/// A set of [`Code`]s, cheap to copy and test.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CodeSet(u32);

impl CodeSet {
    pub const fn empty() -> Self {
        CodeSet(0)
    }

    pub fn of(codes: &[Code]) -> Self {
        codes
            .iter()
            .fold(CodeSet::empty(), |set, code| set.with(*code))
    }

    pub fn with(self, code: Code) -> Self {
        CodeSet(self.0 | Self::bit(code))
    }

    pub fn contains(self, code: Code) -> bool {
        self.0 & Self::bit(code) != 0
    }

    fn bit(code: Code) -> u32 {
        let index = Code::ALL.iter().position(|c| *c == code).unwrap_or(0);
        1 << index
    }

    fn from_names(names: &[String]) -> Self {
        CodeSet::of(
            &names
                .iter()
                .filter_map(|n| Code::from_wire(n))
                .collect::<Vec<_>>(),
        )
    }
}

/// Call-level settings of one method.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallPolicy {
    /// Overall deadline for calls that carry none; `None` = unbounded.
    pub timeout: Option<Duration>,
    /// Timeout of each attempt; `None` = only the overall deadline.
    pub per_try_timeout: Option<Duration>,
    pub retry: RetryPolicy,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts including the first (default 3).
    pub max_attempts: u32,
    /// Full-jitter exponential backoff: attempt `n` (0-based retry index)
    /// sleeps uniformly in `[0, min(cap, base·2^n)]`. Defaults 25 ms / 250 ms.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Codes retried (default: `unavailable`). Per-try timeouts always are.
    pub retry_on: CodeSet,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff_base: Duration::from_millis(25),
            backoff_cap: Duration::from_millis(250),
            retry_on: CodeSet::of(&[Code::Unavailable]),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BudgetPolicy {
    /// Retries as a share of requests in the window (default 0.2).
    pub ratio: f64,
    /// Retries per second always allowed (default 10).
    pub min_per_s: f64,
    /// Window over which requests and retries are counted (default 10 s).
    pub window: Duration,
}

impl Default for BudgetPolicy {
    fn default() -> Self {
        BudgetPolicy {
            ratio: 0.2,
            min_per_s: 10.0,
            window: Duration::from_secs(10),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BreakerPolicy {
    /// Open after this many consecutive failures (default 5).
    pub consecutive_failures: u32,
    /// Open when the success rate over `window` is below this (default 0.8) ...
    pub min_success_rate: f64,
    /// ... counted over this window (default 10 s) ...
    pub window: Duration,
    /// ... once it holds at least this many calls (default 5).
    pub min_calls: u32,
    /// First open period (default 1 s), doubling per failed probe ...
    pub backoff_initial: Duration,
    /// ... up to this (default 60 s).
    pub backoff_max: Duration,
    /// Each open period is lengthened by up to this share, at random (default 0.5).
    pub jitter: f64,
    /// Which error codes are failures (default: unavailable, internal,
    /// unknown, deadline_exceeded — not the caller's own mistakes).
    pub failure_codes: CodeSet,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            consecutive_failures: 5,
            min_success_rate: 0.8,
            window: Duration::from_secs(10),
            min_calls: 5,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            jitter: 0.5,
            failure_codes: CodeSet::of(&[
                Code::Unavailable,
                Code::Internal,
                Code::Unknown,
                Code::DeadlineExceeded,
            ]),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LimitPolicy {
    /// Calls in flight before new ones are shed (default 100).
    pub max_in_flight: usize,
}

impl Default for LimitPolicy {
    fn default() -> Self {
        LimitPolicy { max_in_flight: 100 }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BalancePolicy {
    /// Latency assumed for an endpoint not yet measured (default 30 ms).
    pub ewma_seed: Duration,
    /// Time constant of the moving average (default 10 s).
    pub decay: Duration,
}

impl Default for BalancePolicy {
    fn default() -> Self {
        BalancePolicy {
            ewma_seed: Duration::from_millis(30),
            decay: Duration::from_secs(10),
        }
    }
}

/// Target-level settings of one service.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TargetPolicy {
    pub budget: BudgetPolicy,
    pub breaker: BreakerPolicy,
    pub limit: LimitPolicy,
    pub balance: BalancePolicy,
}

/// One resolved fault rule.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRule {
    pub service: Option<String>,
    pub method: Option<String>,
    /// Delay and the fraction (`0..=1`) of matching calls that get it.
    pub delay: Option<(Duration, f64)>,
    /// Abort error and the fraction (`0..=1`) of matching calls that get it.
    pub abort: Option<(Code, String, f64)>,
}

impl FaultRule {
    pub fn matches(&self, method: Option<&MethodDescriptor>) -> bool {
        let service_ok = match (&self.service, method) {
            (None, _) => true,
            (Some(s), Some(m)) => s == m.service,
            (Some(_), None) => false,
        };
        let method_ok = match (&self.method, method) {
            (None, _) => true,
            (Some(name), Some(m)) => name == m.method,
            (Some(_), None) => false,
        };
        service_ok && method_ok
    }
}

fn ms(value: i64) -> Duration {
    Duration::from_millis(value.max(0) as u64)
}

fn count(value: i64) -> u32 {
    value.clamp(0, i64::from(u32::MAX)) as u32
}

impl RetryConfig {
    fn apply(&self, p: &mut RetryPolicy) {
        if let Some(v) = self.max_attempts {
            p.max_attempts = count(v).max(1);
        }
        if let Some(v) = self.backoff_base_ms {
            p.backoff_base = ms(v);
        }
        if let Some(v) = self.backoff_cap_ms {
            p.backoff_cap = ms(v);
        }
        if let Some(v) = &self.retry_on {
            p.retry_on = CodeSet::from_names(v);
        }
    }
}

impl ServiceConfig {
    fn apply_call(&self, p: &mut CallPolicy) {
        if let Some(v) = self.timeout_ms {
            p.timeout = Some(ms(v));
        }
        if let Some(v) = self.per_try_timeout_ms {
            p.per_try_timeout = Some(ms(v));
        }
        if let Some(r) = &self.retry {
            r.apply(&mut p.retry);
        }
    }

    fn apply_target(&self, p: &mut TargetPolicy) {
        if let Some(b) = &self.retry_budget {
            if let Some(v) = b.ratio {
                p.budget.ratio = v;
            }
            if let Some(v) = b.min_per_s {
                p.budget.min_per_s = v;
            }
            if let Some(v) = b.window_ms {
                p.budget.window = ms(v);
            }
        }
        if let Some(b) = &self.breaker {
            let q = &mut p.breaker;
            if let Some(v) = b.consecutive_failures {
                q.consecutive_failures = count(v);
            }
            if let Some(v) = b.min_success_rate {
                q.min_success_rate = v;
            }
            if let Some(v) = b.window_ms {
                q.window = ms(v);
            }
            if let Some(v) = b.min_calls {
                q.min_calls = count(v);
            }
            if let Some(v) = b.backoff_initial_ms {
                q.backoff_initial = ms(v);
            }
            if let Some(v) = b.backoff_max_ms {
                q.backoff_max = ms(v);
            }
            if let Some(v) = b.jitter {
                q.jitter = v;
            }
            if let Some(v) = &b.failure_codes {
                q.failure_codes = CodeSet::from_names(v);
            }
        }
        if let Some(v) = self.limit.as_ref().and_then(|l| l.max_in_flight) {
            p.limit.max_in_flight = v.max(0) as usize;
        }
        if let Some(b) = &self.balance {
            if let Some(v) = b.ewma_seed_ms {
                p.balance.ewma_seed = ms(v);
            }
            if let Some(v) = b.decay_ms {
                p.balance.decay = ms(v);
            }
        }
    }
}

impl ResilienceConfig {
    /// Parses and validates a configuration (e.g. a Worker var).
    pub fn from_json(json: &str) -> Result<Self, ConfigError> {
        let config: ResilienceConfig =
            serde_json::from_str(json).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Call-level settings for `service`/`method`.
    pub fn call_policy(&self, service: &str, method: &str) -> CallPolicy {
        let mut policy = CallPolicy::default();
        self.default.apply_call(&mut policy);
        if let Some(s) = self.services.get(service) {
            s.apply_call(&mut policy);
            if let Some(m) = s.methods.get(method) {
                if let Some(v) = m.timeout_ms {
                    policy.timeout = Some(ms(v));
                }
                if let Some(v) = m.per_try_timeout_ms {
                    policy.per_try_timeout = Some(ms(v));
                }
                if let Some(r) = &m.retry {
                    r.apply(&mut policy.retry);
                }
            }
        }
        policy
    }

    /// Call-level settings for a request's method, or the defaults when the
    /// request carries no [`MethodDescriptor`].
    pub fn call_policy_for(&self, method: Option<&MethodDescriptor>) -> CallPolicy {
        match method {
            Some(m) => self.call_policy(m.service, m.method),
            None => self.call_policy("", ""),
        }
    }

    /// Target-level settings for `service`.
    pub fn target_policy(&self, service: &str) -> TargetPolicy {
        let mut policy = TargetPolicy::default();
        self.default.apply_target(&mut policy);
        if let Some(s) = self.services.get(service) {
            s.apply_target(&mut policy);
        }
        policy
    }

    /// The fault rules in force: empty unless `faults.enabled`.
    pub fn fault_rules(&self) -> Vec<FaultRule> {
        if !self.faults.enabled {
            return Vec::new();
        }
        self.faults
            .rules
            .iter()
            .map(|r| FaultRule {
                service: r.service.clone(),
                method: r.method.clone(),
                delay: r
                    .delay
                    .as_ref()
                    .map(|d| (ms(d.ms), d.percent.clamp(0.0, 100.0) / 100.0)),
                abort: r.abort.as_ref().map(|a| {
                    let code = Code::from_wire(&a.code).unwrap_or(Code::Unavailable);
                    let message = a
                        .message
                        .clone()
                        .unwrap_or_else(|| "fault injected".to_owned());
                    (code, message, a.percent.clamp(0.0, 100.0) / 100.0)
                }),
            })
            .collect()
    }

    /// Checks every value; the error names each bad field by its JSON path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut v = Validator::default();
        v.service("default", &self.default);
        if !self.default.methods.is_empty() {
            v.error(
                "default.methods",
                "per-method overrides belong under services.<service>.methods",
            );
        }
        for (name, service) in &self.services {
            if name.is_empty() {
                v.error("services", "service names must not be empty");
            }
            let path = format!("services.{name}");
            v.service(&path, service);
            for (method, m) in &service.methods {
                let path = format!("{path}.methods.{method}");
                v.timeouts(&path, m.timeout_ms, m.per_try_timeout_ms);
                if let Some(r) = &m.retry {
                    v.retry(&format!("{path}.retry"), r);
                }
            }
        }
        for (i, rule) in self.faults.rules.iter().enumerate() {
            let path = format!("faults.rules[{i}]");
            if rule.delay.is_none() && rule.abort.is_none() {
                v.error(&path, "a rule needs a delay or an abort");
            }
            if let Some(d) = &rule.delay {
                v.non_negative(&format!("{path}.delay.ms"), Some(d.ms));
                v.percent(&format!("{path}.delay.percent"), d.percent);
            }
            if let Some(a) = &rule.abort {
                v.percent(&format!("{path}.abort.percent"), a.percent);
                if Code::from_wire(&a.code).is_none() {
                    v.error(
                        &format!("{path}.abort.code"),
                        &format!("unknown code {:?}", a.code),
                    );
                }
            }
        }
        if v.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(v.errors))
        }
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<String>,
}

impl Validator {
    fn error(&mut self, field: &str, reason: &str) {
        self.errors.push(format!("{field}: {reason}"));
    }

    fn non_negative(&mut self, field: &str, value: Option<i64>) {
        if let Some(v) = value.filter(|v| *v < 0) {
            self.error(field, &format!("must not be negative (got {v})"));
        }
    }

    fn positive(&mut self, field: &str, value: Option<i64>) {
        if let Some(v) = value.filter(|v| *v <= 0) {
            self.error(field, &format!("must be greater than 0 (got {v})"));
        }
    }

    fn fraction(&mut self, field: &str, value: Option<f64>) {
        if let Some(v) = value.filter(|v| !(0.0..=1.0).contains(v)) {
            self.error(field, &format!("must be within 0..=1 (got {v})"));
        }
    }

    fn percent(&mut self, field: &str, value: f64) {
        if !(0.0..=100.0).contains(&value) {
            self.error(field, &format!("must be within 0..=100 (got {value})"));
        }
    }

    fn codes(&mut self, field: &str, codes: &[String]) {
        for name in codes {
            if Code::from_wire(name).is_none() {
                self.error(
                    field,
                    &format!("unknown code {name:?} (codes are wire names like \"unavailable\")"),
                );
            }
        }
    }

    fn ordered(&mut self, field: &str, low: Option<i64>, high: Option<i64>, low_name: &str) {
        if let (Some(l), Some(h)) = (low, high) {
            if l > h {
                self.error(
                    field,
                    &format!("must not be less than {low_name} ({h} < {l})"),
                );
            }
        }
    }

    fn timeouts(&mut self, path: &str, timeout: Option<i64>, per_try: Option<i64>) {
        self.positive(&format!("{path}.timeout_ms"), timeout);
        self.positive(&format!("{path}.per_try_timeout_ms"), per_try);
    }

    fn retry(&mut self, path: &str, r: &RetryConfig) {
        if let Some(n) = r.max_attempts {
            if !(1..=MAX_ATTEMPTS_LIMIT).contains(&n) {
                self.error(
                    &format!("{path}.max_attempts"),
                    &format!(
                        "must be within 1..={MAX_ATTEMPTS_LIMIT} (got {n}; 1 disables retries)"
                    ),
                );
            }
        }
        self.non_negative(&format!("{path}.backoff_base_ms"), r.backoff_base_ms);
        self.non_negative(&format!("{path}.backoff_cap_ms"), r.backoff_cap_ms);
        self.ordered(
            &format!("{path}.backoff_cap_ms"),
            r.backoff_base_ms,
            r.backoff_cap_ms,
            "backoff_base_ms",
        );
        if let Some(codes) = &r.retry_on {
            let field = format!("{path}.retry_on");
            self.codes(&field, codes);
            if codes.iter().any(|c| c == "deadline_exceeded") {
                self.error(
                    &field,
                    "deadline_exceeded may not be listed: per-try timeouts are always retried, the overall deadline never",
                );
            }
        }
    }

    fn service(&mut self, path: &str, s: &ServiceConfig) {
        self.timeouts(path, s.timeout_ms, s.per_try_timeout_ms);
        if let Some(r) = &s.retry {
            self.retry(&format!("{path}.retry"), r);
        }
        if let Some(b) = &s.retry_budget {
            let p = format!("{path}.retry_budget");
            self.fraction(&format!("{p}.ratio"), b.ratio);
            if let Some(v) = b.min_per_s.filter(|v| *v < 0.0 || !v.is_finite()) {
                self.error(
                    &format!("{p}.min_per_s"),
                    &format!("must be a non-negative number (got {v})"),
                );
            }
            self.positive(&format!("{p}.window_ms"), b.window_ms);
        }
        if let Some(b) = &s.breaker {
            let p = format!("{path}.breaker");
            self.positive(&format!("{p}.consecutive_failures"), b.consecutive_failures);
            self.fraction(&format!("{p}.min_success_rate"), b.min_success_rate);
            self.positive(&format!("{p}.window_ms"), b.window_ms);
            self.positive(&format!("{p}.min_calls"), b.min_calls);
            self.positive(&format!("{p}.backoff_initial_ms"), b.backoff_initial_ms);
            self.positive(&format!("{p}.backoff_max_ms"), b.backoff_max_ms);
            self.ordered(
                &format!("{p}.backoff_max_ms"),
                b.backoff_initial_ms,
                b.backoff_max_ms,
                "backoff_initial_ms",
            );
            self.fraction(&format!("{p}.jitter"), b.jitter);
            if let Some(codes) = &b.failure_codes {
                self.codes(&format!("{p}.failure_codes"), codes);
            }
        }
        if let Some(l) = &s.limit {
            self.positive(&format!("{path}.limit.max_in_flight"), l.max_in_flight);
        }
        if let Some(b) = &s.balance {
            self.positive(&format!("{path}.balance.ewma_seed_ms"), b.ewma_seed_ms);
            self.positive(&format!("{path}.balance.decay_ms"), b.decay_ms);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn invalid(json: &str) -> Vec<String> {
        match ResilienceConfig::from_json(json) {
            Err(ConfigError::Invalid(errors)) => errors,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn empty_config_gives_reference_defaults() {
        let config = ResilienceConfig::from_json("{}").unwrap();
        let call = config.call_policy("a.B", "C");
        assert_eq!(call.timeout, None);
        assert_eq!(call.retry.max_attempts, 3);
        assert_eq!(call.retry.backoff_base, Duration::from_millis(25));
        assert_eq!(call.retry.backoff_cap, Duration::from_millis(250));
        assert!(call.retry.retry_on.contains(Code::Unavailable));
        assert!(!call.retry.retry_on.contains(Code::Internal));
        let target = config.target_policy("a.B");
        assert_eq!(target.budget.ratio, 0.2);
        assert_eq!(target.breaker.consecutive_failures, 5);
        assert_eq!(target.breaker.backoff_max, Duration::from_secs(60));
        assert!(target
            .breaker
            .failure_codes
            .contains(Code::DeadlineExceeded));
        assert!(!target.breaker.failure_codes.contains(Code::InvalidArgument));
        assert_eq!(target.balance.ewma_seed, Duration::from_millis(30));
        assert!(config.fault_rules().is_empty());
    }

    #[test]
    fn overrides_resolve_from_most_specific_level() {
        let config = ResilienceConfig::from_json(
            r#"{"default": {"timeout_ms": 1000, "retry": {"max_attempts": 2}, "limit": {"max_in_flight": 7}},
                "services": {"shop.v1.CatalogService": {
                    "retry": {"backoff_cap_ms": 100},
                    "breaker": {"consecutive_failures": 3},
                    "methods": {"GetProduct": {"timeout_ms": 200, "retry": {"max_attempts": 4}}}}}}"#,
        )
        .unwrap();
        let get = config.call_policy("shop.v1.CatalogService", "GetProduct");
        assert_eq!(get.timeout, Some(Duration::from_millis(200)));
        assert_eq!(get.retry.max_attempts, 4);
        assert_eq!(get.retry.backoff_cap, Duration::from_millis(100));
        let list = config.call_policy("shop.v1.CatalogService", "ListProducts");
        assert_eq!(list.timeout, Some(Duration::from_millis(1000)));
        assert_eq!(list.retry.max_attempts, 2);
        let other = config.call_policy("shop.v1.Orders", "GetProduct");
        assert_eq!(other.retry.backoff_cap, Duration::from_millis(250));
        assert_eq!(
            config
                .target_policy("shop.v1.CatalogService")
                .breaker
                .consecutive_failures,
            3
        );
        assert_eq!(
            config
                .target_policy("shop.v1.CatalogService")
                .limit
                .max_in_flight,
            7
        );
        assert_eq!(
            config
                .target_policy("shop.v1.Orders")
                .breaker
                .consecutive_failures,
            5
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = ResilienceConfig::from_json(r#"{"default": {"timout_ms": 5}}"#).unwrap_err();
        assert!(err.to_string().contains("timout_ms"), "{err}");
        // Target-level settings are not accepted per method.
        let err = ResilienceConfig::from_json(
            r#"{"services": {"a.B": {"methods": {"M": {"breaker": {}}}}}}"#,
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::Parse(_)), "{err}");
    }

    #[test]
    fn validation_names_every_bad_field() {
        let errors = invalid(
            r#"{"default": {"retry": {"max_attempts": 0}, "retry_budget": {"ratio": 1.5}},
                "services": {"a.B": {"methods": {"M": {"timeout_ms": -5}},
                                     "breaker": {"failure_codes": ["UNAVAILABLE"], "jitter": -0.1}}}}"#,
        );
        let all = errors.join("\n");
        assert!(
            all.contains("default.retry.max_attempts: must be within 1..=10 (got 0"),
            "{all}"
        );
        assert!(
            all.contains("default.retry_budget.ratio: must be within 0..=1 (got 1.5)"),
            "{all}"
        );
        assert!(
            all.contains("services.a.B.methods.M.timeout_ms: must be greater than 0 (got -5)"),
            "{all}"
        );
        assert!(
            all.contains("services.a.B.breaker.failure_codes: unknown code \"UNAVAILABLE\""),
            "{all}"
        );
        assert!(all.contains("services.a.B.breaker.jitter"), "{all}");
        assert_eq!(errors.len(), 5, "{all}");
    }

    #[test]
    fn validation_rejects_inconsistent_values() {
        let errors = invalid(
            r#"{"default": {"retry": {"backoff_base_ms": 300, "backoff_cap_ms": 100, "retry_on": ["deadline_exceeded"]}}}"#,
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].starts_with("default.retry.backoff_cap_ms"));
        assert!(errors[1].contains("per-try timeouts are always retried"));
        let errors = invalid(
            r#"{"faults": {"rules": [{"service": "a.B", "abort": {"code": "nope", "percent": 120}}, {}]}}"#,
        );
        assert_eq!(
            errors,
            vec![
                "faults.rules[0].abort.percent: must be within 0..=100 (got 120)".to_owned(),
                "faults.rules[0].abort.code: unknown code \"nope\"".to_owned(),
                "faults.rules[1]: a rule needs a delay or an abort".to_owned(),
            ]
        );
    }

    #[test]
    fn fault_rules_need_enabled_and_match_descriptors() {
        let json = r#"{"faults": {"enabled": ENABLED, "rules": [{"service": "a.B", "method": "M",
            "abort": {"code": "internal", "percent": 50}}]}}"#;
        let off = ResilienceConfig::from_json(&json.replace("ENABLED", "false")).unwrap();
        assert!(off.fault_rules().is_empty());
        let on = ResilienceConfig::from_json(&json.replace("ENABLED", "true")).unwrap();
        let rules = on.fault_rules();
        assert_eq!(
            rules[0].abort,
            Some((Code::Internal, "fault injected".to_owned(), 0.5))
        );
        let m = |service, method| MethodDescriptor {
            service,
            method,
            idempotency: crate::Idempotency::Unknown,
        };
        assert!(rules[0].matches(Some(&m("a.B", "M"))));
        assert!(!rules[0].matches(Some(&m("a.B", "N"))));
        assert!(!rules[0].matches(None));
    }
}
