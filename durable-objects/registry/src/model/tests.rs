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
    let ttl = DEFAULT_HEARTBEAT_TTL_MS;
    let is_routable = |i: &Instance, now| is_routable(i, now, ttl);
    let mut i = instance("a");
    i.last_heartbeat_ms = now - i64::from(ttl);
    assert!(is_routable(&i, now));
    i.last_heartbeat_ms = now - i64::from(ttl) - 1;
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
fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_string())
    }
}

#[test]
fn health_config_defaults_and_overrides() {
    let config = HealthConfig::from_vars(vars(&[])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config, HealthConfig::default());
    assert_eq!((config.interval_ms, config.timeout_ms), (5_000, 500));
    assert_eq!(
        (config.unhealthy_threshold, config.healthy_threshold),
        (3, 2)
    );

    let config = HealthConfig::from_vars(vars(&[
        (HEALTH_INTERVAL_VAR, "200"),
        (HEALTH_TIMEOUT_VAR, " 250 "),
        (HEALTH_UNHEALTHY_THRESHOLD_VAR, "5"),
        (HEALTH_HEALTHY_THRESHOLD_VAR, "1"),
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config,
        HealthConfig {
            interval_ms: 200,
            timeout_ms: 250,
            unhealthy_threshold: 5,
            healthy_threshold: 1,
        }
    );
}

#[test]
fn heartbeat_ttl_is_configurable_and_sets_interval_and_purge() {
    let config = RegistryConfig::from_vars(vars(&[])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config, RegistryConfig::default());
    assert_eq!(
        (config.heartbeat_ttl_ms, config.heartbeat_interval_ms()),
        (30_000, 10_000)
    );
    assert_eq!(config.purge_after_ms(), 300_000);

    let config = RegistryConfig::from_vars(vars(&[(HEARTBEAT_TTL_VAR, "900")]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (config.heartbeat_ttl_ms, config.heartbeat_interval_ms()),
        (900, 300)
    );
    let mut i = instance("a");
    i.last_heartbeat_ms = 0;
    assert!(is_live(&i, 900, config.heartbeat_ttl_ms));
    assert!(!is_live(&i, 901, config.heartbeat_ttl_ms));

    for bad in ["99", "x", ""] {
        let err = RegistryConfig::from_vars(vars(&[(HEARTBEAT_TTL_VAR, bad)]))
            .err()
            .unwrap_or_else(|| panic!("{bad:?} was accepted"));
        assert!(err.message.contains(HEARTBEAT_TTL_VAR), "{}", err.message);
    }
    // A bad ejection var fails the whole config too.
    let err = RegistryConfig::from_vars(vars(&[(EJECTION_MAX_PERCENT_VAR, "200")])).err();
    assert!(err.is_some_and(|e| e.message.contains(EJECTION_MAX_PERCENT_VAR)));
}

#[test]
fn health_config_rejects_bad_values_naming_the_var() {
    for (name, value) in [
        (HEALTH_INTERVAL_VAR, "soon"),
        (HEALTH_INTERVAL_VAR, "0"),
        (HEALTH_TIMEOUT_VAR, "-5"),
        (HEALTH_UNHEALTHY_THRESHOLD_VAR, "0"),
        (HEALTH_HEALTHY_THRESHOLD_VAR, "1.5"),
    ] {
        let err = HealthConfig::from_vars(vars(&[(name, value)]))
            .err()
            .unwrap_or_else(|| panic!("{name}={value} was accepted"));
        assert_eq!(err.code, workmesh::Code::FailedPrecondition);
        assert!(err.message.contains(name), "{}", err.message);
    }
}

#[test]
fn consecutive_failures_flip_to_unhealthy_at_the_threshold() {
    let config = HealthConfig::default();
    let mut health = HealthState::Healthy;
    let mut counters = ProbeCounters::default();
    for round in 1..=3 {
        let out = after_probe(health, counters, false, &config);
        assert_eq!(out.counters.failures, round);
        assert_eq!(out.flipped, round == 3, "round {round}");
        health = out.health;
        counters = out.counters;
    }
    assert_eq!(health, HealthState::Unhealthy);
    // Staying unhealthy is not a flip.
    let out = after_probe(health, counters, false, &config);
    assert_eq!((out.health, out.flipped), (HealthState::Unhealthy, false));
}

#[test]
fn a_success_resets_the_failure_count() {
    let config = HealthConfig::default();
    let two_failures = ProbeCounters {
        failures: 2,
        successes: 0,
    };
    let out = after_probe(HealthState::Healthy, two_failures, true, &config);
    assert_eq!(
        out.counters,
        ProbeCounters {
            failures: 0,
            successes: 1
        }
    );
    let out = after_probe(out.health, out.counters, false, &config);
    assert_eq!(
        (out.health, out.counters.failures),
        (HealthState::Healthy, 1)
    );
}

#[test]
fn consecutive_successes_bring_an_unhealthy_instance_back() {
    let config = HealthConfig::default();
    let down = ProbeCounters {
        failures: 7,
        successes: 0,
    };
    let first = after_probe(HealthState::Unhealthy, down, true, &config);
    assert_eq!(
        (first.health, first.flipped),
        (HealthState::Unhealthy, false)
    );
    let second = after_probe(first.health, first.counters, true, &config);
    assert_eq!(
        (second.health, second.flipped),
        (HealthState::Healthy, true)
    );
    // A failure between successes starts the count again.
    let interrupted = after_probe(first.health, first.counters, false, &config);
    let again = after_probe(interrupted.health, interrupted.counters, true, &config);
    assert_eq!(again.health, HealthState::Unhealthy);
}

#[test]
fn unprobed_instances_settle_on_the_thresholds() {
    let config = HealthConfig {
        healthy_threshold: 1,
        ..HealthConfig::default()
    };
    let out = after_probe(
        HealthState::Unspecified,
        ProbeCounters::default(),
        true,
        &config,
    );
    assert_eq!((out.health, out.flipped), (HealthState::Healthy, true));
}
