//! Registry rules that need no storage: what a valid instance is, and when
//! one is eligible to receive traffic. Native unit tests cover them.

use workmesh::proto::v1::instance::Endpoint;
use workmesh::proto::v1::{HealthState, Instance};
use workmesh::ConnectError;

/// How often instances should heartbeat, and how long the registry waits
/// without one before it stops resolving the instance.
pub const HEARTBEAT_INTERVAL_MS: u32 = 10_000;
pub const HEARTBEAT_TTL_MS: i64 = 3 * HEARTBEAT_INTERVAL_MS as i64;

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
pub fn is_routable(instance: &Instance, now_ms: i64) -> bool {
    let fresh = now_ms - instance.last_heartbeat_ms <= HEARTBEAT_TTL_MS;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str) -> Instance {
        Instance {
            service: "shop.v1.CatalogService".into(),
            instance_id: id.into(),
            endpoint: Some(Endpoint::Binding("CATALOG".into())),
            ..Default::default()
        }
    }

    #[test]
    fn registration_fills_defaults() {
        let ok = validate_registration(instance("catalog-1")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.version, "v1");
        assert_eq!(ok.weight, DEFAULT_WEIGHT);
    }

    #[test]
    fn registration_names_the_bad_field() {
        let mut bad = instance("catalog-1");
        bad.service = " ".into();
        let err = validate_registration(bad).err().map(|e| e.message);
        assert_eq!(err.as_deref(), Some("instance.service is required"));

        let mut bad = instance("catalog-1");
        bad.endpoint = Some(Endpoint::Url("ftp://x".into()));
        assert!(validate_registration(bad).is_err());

        let mut bad = instance("catalog-1");
        bad.endpoint = None;
        assert!(validate_registration(bad).is_err());
    }

    #[test]
    fn stale_unhealthy_ejected_and_draining_instances_are_not_routable() {
        let now = 1_000_000;
        let mut i = instance("a");
        i.last_heartbeat_ms = now - HEARTBEAT_TTL_MS;
        assert!(is_routable(&i, now));
        i.last_heartbeat_ms = now - HEARTBEAT_TTL_MS - 1;
        assert!(!is_routable(&i, now));

        let mut i = instance("a");
        i.last_heartbeat_ms = now;
        i.health = HealthState::Unhealthy as i32;
        assert!(!is_routable(&i, now));

        let mut i = instance("a");
        i.last_heartbeat_ms = now;
        i.ejected_until_ms = now + 1;
        assert!(!is_routable(&i, now));

        let mut i = instance("a");
        i.last_heartbeat_ms = now;
        i.draining = true;
        assert!(!is_routable(&i, now));
    }

    #[test]
    fn version_token_tracks_generation_and_membership() {
        let a = [instance("a")];
        let ab = [instance("a"), instance("b")];
        assert_eq!(version_token(3, &a), version_token(3, &a));
        assert_ne!(version_token(3, &a), version_token(4, &a));
        assert_ne!(version_token(3, &a), version_token(3, &ab));
    }
}
