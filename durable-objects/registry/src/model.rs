//! Registry rules that need no storage: what a valid instance is, when one
//! is eligible to receive traffic, how probes flip its health, and (in
//! [`passive`]) how reported call outcomes eject outliers. Native unit tests
//! cover them.

use workmesh::proto::v1::instance::Endpoint;
use workmesh::proto::v1::{HealthState, Instance};
use workmesh::ConnectError;

mod passive;

pub use passive::*;

/// How long the registry waits without a heartbeat before it stops resolving
/// an instance (default of `WORKMESH_HEARTBEAT_TTL_MS`). Instances are asked
/// to heartbeat three times per TTL, so one lost heartbeat does not expire them.
pub const DEFAULT_HEARTBEAT_TTL_MS: u32 = 30_000;

/// Weight an instance gets when it registers with none.
pub const DEFAULT_WEIGHT: u32 = 100;

const MAX_NAME_LEN: usize = 256;
const MAX_METADATA_ENTRIES: usize = 32;

/// Checks a registration and fills in defaults; the error names the bad field.
pub fn validate_registration(mut instance: Instance) -> Result<Instance, ConnectError> {
    check_name("instance.service", &instance.service)?;
    check_name("instance.instance_id", &instance.instance_id)?;
    if instance.version.is_empty() {
        instance.version = "v1".into();
    }
    check_name("instance.version", &instance.version)?;
    match &instance.endpoint {
        Some(Endpoint::Binding(binding)) => check_name("instance.binding", binding)?,
        Some(Endpoint::Url(url)) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 2048 {
                return Err(ConnectError::invalid_argument(
                    "instance.url must be an http(s) URL",
                ));
            }
        }
        None => {
            return Err(ConnectError::invalid_argument(
                "instance.endpoint (binding or url) is required",
            ))
        }
    }
    if instance.metadata.len() > MAX_METADATA_ENTRIES {
        return Err(ConnectError::invalid_argument(format!(
            "instance.metadata has more than {MAX_METADATA_ENTRIES} entries"
        )));
    }
    if instance.weight == 0 {
        instance.weight = DEFAULT_WEIGHT;
    }
    Ok(instance)
}

fn check_name(field: &str, value: &str) -> Result<(), ConnectError> {
    if value.trim().is_empty() {
        return Err(ConnectError::invalid_argument(format!(
            "{field} is required"
        )));
    }
    if value.len() > MAX_NAME_LEN || value.chars().any(char::is_control) {
        return Err(ConnectError::invalid_argument(format!(
            "{field} must be at most {MAX_NAME_LEN} printable characters"
        )));
    }
    Ok(())
}

/// True when the instance should receive new calls at `now_ms`.
pub fn is_routable(instance: &Instance, now_ms: i64, heartbeat_ttl_ms: u32) -> bool {
    let fresh = is_live(instance, now_ms, heartbeat_ttl_ms);
    let healthy = instance.health != HealthState::Unhealthy as i32;
    let ejected = instance.ejected_until_ms > now_ms;
    fresh && healthy && !ejected && !instance.draining
}

/// A cheap token that changes whenever a Resolve answer would: the store's
/// write generation plus the ids of the instances that are routable now
/// (expiry changes the answer without any write).
pub fn version_token(generation: i64, routable: &[Instance]) -> String {
    // FNV-1a: stable across isolates and builds, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for instance in routable {
        for byte in instance.instance_id.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{generation}-{hash:016x}")
}

/// The registry vars that configure active health checks.
pub const HEALTH_INTERVAL_VAR: &str = "WORKMESH_HEALTH_INTERVAL_MS";
pub const HEALTH_TIMEOUT_VAR: &str = "WORKMESH_HEALTH_TIMEOUT_MS";
pub const HEALTH_UNHEALTHY_THRESHOLD_VAR: &str = "WORKMESH_HEALTH_UNHEALTHY_THRESHOLD";
pub const HEALTH_HEALTHY_THRESHOLD_VAR: &str = "WORKMESH_HEALTH_HEALTHY_THRESHOLD";

/// Active health checking: how often every live instance is probed, how long
/// a probe may take, and how many consecutive results flip its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    pub interval_ms: u32,
    pub timeout_ms: u32,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
}

impl Default for HealthConfig {
    /// The reference defaults (Dapr, Envoy): 5 s interval, 500 ms timeout,
    /// 3 failures to mark unhealthy, 2 successes to mark healthy again.
    fn default() -> Self {
        HealthConfig {
            interval_ms: 5_000,
            timeout_ms: 500,
            unhealthy_threshold: 3,
            healthy_threshold: 2,
        }
    }
}

/// Reads one whole-number var (`var` returns a var's value when it is set);
/// unset keeps `default`. A bad value is a `failed_precondition` naming the
/// var, like `WORKMESH_RESILIENCE`.
pub(crate) fn read_var(
    var: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, ConnectError> {
    let Some(raw) = var(name) else {
        return Ok(default);
    };
    match raw.trim().parse::<u32>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(ConnectError::failed_precondition(format!(
            "{name} is invalid: {raw:?} is not a whole number from {min} to {max}"
        ))),
    }
}

/// The registry var that sets how long an instance stays resolvable after its
/// last heartbeat.
pub const HEARTBEAT_TTL_VAR: &str = "WORKMESH_HEARTBEAT_TTL_MS";

/// Everything the registry reads from its vars, validated once when the
/// object starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistryConfig {
    pub health: HealthConfig,
    pub ejection: EjectionConfig,
    /// Without a heartbeat for this long an instance is not resolved.
    pub heartbeat_ttl_ms: u32,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            health: HealthConfig::default(),
            ejection: EjectionConfig::default(),
            heartbeat_ttl_ms: DEFAULT_HEARTBEAT_TTL_MS,
        }
    }
}

impl RegistryConfig {
    /// Reads every registry var; the first bad one is a `failed_precondition`
    /// naming it.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConnectError> {
        Ok(RegistryConfig {
            health: HealthConfig::from_vars(&var)?,
            ejection: EjectionConfig::from_vars(&var)?,
            heartbeat_ttl_ms: read_var(
                &var,
                HEARTBEAT_TTL_VAR,
                DEFAULT_HEARTBEAT_TTL_MS,
                100,
                86_400_000,
            )?,
        })
    }

    /// How often instances are asked to heartbeat: three times per TTL.
    pub fn heartbeat_interval_ms(&self) -> u32 {
        (self.heartbeat_ttl_ms / 3).max(1)
    }

    /// Instances silent for this long (ten TTLs) are deleted, not just left
    /// unresolved.
    pub fn purge_after_ms(&self) -> i64 {
        10 * i64::from(self.heartbeat_ttl_ms)
    }
}

impl HealthConfig {
    /// Reads the config from the registry's vars (`var` returns a var's value
    /// when it is set); unset vars keep their defaults. A bad value is a
    /// `failed_precondition` naming the var, like `WORKMESH_RESILIENCE`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConnectError> {
        let defaults = HealthConfig::default();
        let read =
            |name: &str, default: u32, min: u32, max: u32| read_var(&var, name, default, min, max);
        Ok(HealthConfig {
            interval_ms: read(HEALTH_INTERVAL_VAR, defaults.interval_ms, 10, 3_600_000)?,
            timeout_ms: read(HEALTH_TIMEOUT_VAR, defaults.timeout_ms, 1, 60_000)?,
            unhealthy_threshold: read(
                HEALTH_UNHEALTHY_THRESHOLD_VAR,
                defaults.unhealthy_threshold,
                1,
                100,
            )?,
            healthy_threshold: read(
                HEALTH_HEALTHY_THRESHOLD_VAR,
                defaults.healthy_threshold,
                1,
                100,
            )?,
        })
    }
}

/// Consecutive probe results of one instance; a result of the other kind
/// resets the count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeCounters {
    pub failures: u32,
    pub successes: u32,
}

/// An instance's health after one probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeOutcome {
    pub health: HealthState,
    pub counters: ProbeCounters,
    /// The health changed, so Resolve answers change.
    pub flipped: bool,
}

/// Applies one probe result (`passed`) to an instance's health and counters.
pub fn after_probe(
    health: HealthState,
    counters: ProbeCounters,
    passed: bool,
    config: &HealthConfig,
) -> ProbeOutcome {
    let counters = if passed {
        ProbeCounters {
            failures: 0,
            successes: counters.successes.saturating_add(1),
        }
    } else {
        ProbeCounters {
            failures: counters.failures.saturating_add(1),
            successes: 0,
        }
    };
    let next = if passed && counters.successes >= config.healthy_threshold {
        HealthState::Healthy
    } else if !passed && counters.failures >= config.unhealthy_threshold {
        HealthState::Unhealthy
    } else {
        health
    };
    ProbeOutcome {
        health: next,
        counters,
        flipped: next != health,
    }
}

/// True when the instance still heartbeats recently enough to be resolved
/// and probed.
pub fn is_live(instance: &Instance, now_ms: i64, heartbeat_ttl_ms: u32) -> bool {
    now_ms - instance.last_heartbeat_ms <= i64::from(heartbeat_ttl_ms)
}

#[cfg(test)]
mod tests;
