use super::*;

const NOW: i64 = 1_000_000;

fn failures(n: u64) -> Counts {
    Counts {
        successes: 0,
        failures: n,
    }
}

fn mixed(successes: u64, failures: u64) -> Counts {
    Counts {
        successes,
        failures,
    }
}

fn report(state: PassiveState, counts: Counts, now: i64) -> PassiveState {
    record_outcome(state, counts, now, &EjectionConfig::default())
}

fn outcome(id: &str) -> Outcome {
    Outcome {
        instance_id: id.into(),
        successes: 3,
        failures: 1,
        ..Default::default()
    }
}

#[test]
fn five_consecutive_failures_make_an_outlier_across_reports() {
    let config = EjectionConfig::default();
    let mut state = PassiveState::default();
    for (i, n) in [2, 2].into_iter().enumerate() {
        state = report(state, failures(n), NOW + i as i64);
        assert_eq!(outlier(&state, NOW + i as i64, &config), None);
    }
    state = report(state, failures(1), NOW + 2);
    assert_eq!(
        outlier(&state, NOW + 2, &config),
        Some(EjectReason::ConsecutiveFailures(5))
    );
}

#[test]
fn a_reported_success_ends_the_streak() {
    let config = EjectionConfig {
        success_rate_percent: 0,
        ..EjectionConfig::default()
    };
    let state = report(PassiveState::default(), failures(4), NOW);
    let state = record_outcome(state, mixed(1, 3), NOW, &config);
    assert_eq!(state.consecutive_failures, 0);
    let state = record_outcome(state, failures(4), NOW, &config);
    assert_eq!(outlier(&state, NOW, &config), None);
    let state = record_outcome(state, failures(1), NOW, &config);
    assert!(outlier(&state, NOW, &config).is_some());
}

#[test]
fn success_rate_below_80_percent_with_5_calls_makes_an_outlier() {
    let config = EjectionConfig::default();
    // 4 of 5 = 80 %: not below.
    let state = report(PassiveState::default(), mixed(4, 1), NOW);
    assert_eq!(outlier(&state, NOW, &config), None);
    // 3 of 4 = 75 %, but under the minimum of 5 calls.
    let state = report(PassiveState::default(), mixed(3, 1), NOW);
    assert_eq!(outlier(&state, NOW, &config), None);
    // 7 of 10 = 70 %.
    let state = report(PassiveState::default(), mixed(7, 3), NOW);
    assert_eq!(
        outlier(&state, NOW, &config),
        Some(EjectReason::SuccessRate {
            successes: 7,
            calls: 10
        })
    );
    // The rate rule can be turned off.
    let off = EjectionConfig {
        success_rate_percent: 0,
        ..config
    };
    assert_eq!(outlier(&state, NOW, &off), None);
}

#[test]
fn the_window_forgets_outcomes_older_than_its_length() {
    let config = EjectionConfig::default(); // 10 s window, 5 s buckets
    let start = 1_000_000; // a bucket boundary
    let state = report(PassiveState::default(), mixed(1, 3), start);
    // 6 s later the first bucket is the previous one: still counted.
    let later = report(state, mixed(1, 0), start + 6_000);
    assert_eq!(later.window.total(), mixed(2, 3));
    assert!(outlier(&later, start + 6_000, &config).is_some());
    // 10 s later the first bucket has shifted out.
    assert_eq!(later.window.at(start + 10_000, 10_000).total(), mixed(1, 0));
    assert_eq!(outlier(&later, start + 10_000, &config), None);
    // A long silence empties it.
    assert_eq!(
        state.window.at(start + 60_000, 10_000).total(),
        Counts::default()
    );
}

#[test]
fn ejection_time_grows_with_times_ejected_and_is_capped() {
    let config = EjectionConfig::default();
    assert_eq!(ejection_ms(1, &config), 30_000);
    assert_eq!(ejection_ms(2, &config), 60_000);
    assert_eq!(ejection_ms(10, &config), 300_000);
    assert_eq!(ejection_ms(11, &config), 300_000);
    assert_eq!(ejection_ms(u32::MAX, &config), 300_000);

    let first = eject(
        report(PassiveState::default(), failures(5), NOW),
        NOW,
        &config,
    );
    assert_eq!(
        (first.times_ejected, first.ejected_until_ms),
        (1, NOW + 30_000)
    );
    assert!(first.is_ejected(NOW + 29_999));
    assert!(!first.is_ejected(NOW + 30_000));
    // The streak and the window start over.
    assert_eq!(first.consecutive_failures, 0);
    assert_eq!(first.window.total(), Counts::default());

    let back = NOW + 40_000;
    let second = eject(report(first, failures(5), back), back, &config);
    assert_eq!(
        (second.times_ejected, second.ejected_until_ms),
        (2, back + 60_000)
    );
}

#[test]
fn reports_during_an_ejection_do_not_count_towards_the_next() {
    let config = EjectionConfig::default();
    let ejected = eject(PassiveState::default(), NOW, &config);
    let during = report(ejected, failures(50), NOW + 1_000);
    assert_eq!(during, ejected);
    assert_eq!(outlier(&during, NOW + 1_000, &config), None);
    assert_eq!(outlier(&during, NOW + 30_000, &config), None);
}

#[test]
fn times_ejected_goes_down_by_one_per_quiet_period() {
    let config = EjectionConfig::default();
    let state = PassiveState {
        times_ejected: 3,
        ejected_until_ms: NOW,
        ..PassiveState::default()
    };
    assert_eq!(decayed_times_ejected(&state, NOW + 299_999, 300_000), 3);
    assert_eq!(decayed_times_ejected(&state, NOW + 300_000, 300_000), 2);
    assert_eq!(decayed_times_ejected(&state, NOW + 899_999, 300_000), 1);
    assert_eq!(decayed_times_ejected(&state, NOW + 900_000, 300_000), 0);
    assert_eq!(
        decayed_times_ejected(&state, i64::MAX, 300_000),
        0,
        "saturates"
    );
    // Ejected again after one quiet period: the third ejection, not the fourth.
    let again = eject(state, NOW + 300_000, &config);
    assert_eq!(again.times_ejected, 3);
    assert_eq!(again.ejected_until_ms, NOW + 300_000 + 90_000);
    // After three: the base time again.
    let fresh = eject(state, NOW + 900_000, &config);
    assert_eq!(fresh.times_ejected, 1);
    assert_eq!(fresh.ejected_until_ms, NOW + 900_000 + 30_000);
    // Before one: the fourth ejection.
    let soon = eject(state, NOW + 1_000, &config);
    assert_eq!(soon.times_ejected, 4);
    assert_eq!(soon.ejected_until_ms, NOW + 1_000 + 120_000);
}

#[test]
fn decay_applied_in_steps_counts_each_quiet_period_once() {
    let state = PassiveState {
        times_ejected: 3,
        ejected_until_ms: NOW,
        ..PassiveState::default()
    };
    // The alarm applies the decay every few seconds; the result is the same
    // as applying it once at the end.
    let mut stepped = state;
    for t in (NOW..=NOW + 650_000).step_by(5_000) {
        stepped = decayed(stepped, t, 300_000);
        assert!(!stepped.is_ejected(t));
    }
    assert_eq!(stepped.times_ejected, 1);
    assert_eq!(stepped.ejected_until_ms, NOW + 600_000);
    assert_eq!(stepped, decayed(state, NOW + 650_000, 300_000));
    // The next step comes a whole period after the previous one.
    assert_eq!(decayed(stepped, NOW + 899_999, 300_000).times_ejected, 1);
    assert_eq!(decayed(stepped, NOW + 900_000, 300_000).times_ejected, 0);
    // An instance still ejected does not decay.
    let ejected = PassiveState {
        ejected_until_ms: NOW + 10_000,
        ..state
    };
    assert_eq!(decayed(ejected, NOW + 5_000, 1_000), ejected);
}

#[test]
fn at_most_half_of_a_service_is_ejected_and_never_a_lone_instance() {
    assert!(!may_eject(1, 0, 50), "a lone instance stays");
    assert!(!may_eject(1, 0, 100), "a lone instance stays at 100 % too");
    assert!(may_eject(2, 0, 50));
    assert!(!may_eject(2, 1, 50));
    assert!(may_eject(3, 0, 50));
    assert!(!may_eject(3, 1, 50), "floor(1.5) = 1");
    assert!(may_eject(4, 1, 50));
    assert!(!may_eject(4, 2, 50));
    assert!(may_eject(2, 1, 100));
    assert!(!may_eject(2, 2, 100));
    assert!(!may_eject(10, 0, 0), "0 % turns ejection off");
    assert!(!may_eject(0, 0, 100));
}

#[test]
fn a_small_share_still_lets_one_of_two_or_more_go() {
    // floor(2 × 10 %) and floor(9 × 10 %) are 0; Envoy still ejects one.
    assert!(may_eject(2, 0, 10));
    assert!(!may_eject(2, 1, 10));
    assert!(may_eject(9, 0, 10));
    assert!(!may_eject(9, 1, 10));
    assert!(may_eject(3, 0, 1));
    // Above the minimum the share rules: floor(25 × 10 %) = 2.
    assert!(may_eject(25, 1, 10));
    assert!(!may_eject(25, 2, 10));
}

#[test]
fn breaker_state_keeps_the_worst_recent_report() {
    let none = ReportedBreaker {
        state: BreakerState::Unspecified,
        at_ms: 0,
    };
    let open = breaker_after_report(none, BreakerState::Open, NOW);
    assert_eq!(
        open,
        ReportedBreaker {
            state: BreakerState::Open,
            at_ms: NOW
        }
    );
    // A better state within 30 s does not hide it.
    assert_eq!(
        breaker_after_report(open, BreakerState::Closed, NOW + 10_000),
        open
    );
    assert_eq!(
        breaker_after_report(open, BreakerState::HalfOpen, NOW + 10_000),
        open
    );
    // A silent (unspecified) report changes nothing.
    assert_eq!(
        breaker_after_report(open, BreakerState::Unspecified, NOW + 1),
        open
    );
    // A worse one replaces a better one at once.
    let closed = breaker_after_report(none, BreakerState::Closed, NOW);
    assert_eq!(
        breaker_after_report(closed, BreakerState::HalfOpen, NOW + 1).state,
        BreakerState::HalfOpen
    );
    // After 30 s the next report wins whatever it says.
    let later = NOW + BREAKER_STATE_TTL_MS + 1;
    assert_eq!(
        breaker_after_report(open, BreakerState::Closed, later),
        ReportedBreaker {
            state: BreakerState::Closed,
            at_ms: later
        }
    );
    // And reads show a stale state as unspecified.
    assert_eq!(breaker_as_seen(open, NOW + 30_000), BreakerState::Open);
    assert_eq!(breaker_as_seen(open, later), BreakerState::Unspecified);
}

#[test]
fn instances_are_shown_without_past_ejections_and_stale_breakers() {
    let instance = Instance {
        ejected_until_ms: NOW,
        times_ejected: 2,
        breaker_state: BreakerState::Open as i32,
        breaker_reported_at_ms: NOW - 1_000,
        ..Instance::default()
    };
    let during = as_seen(instance.clone(), NOW - 1);
    assert_eq!(during.ejected_until_ms, NOW);
    assert_eq!(during.breaker_state, BreakerState::Open as i32);
    let after = as_seen(instance, NOW + BREAKER_STATE_TTL_MS);
    assert_eq!(after.ejected_until_ms, 0);
    assert_eq!(after.times_ejected, 2);
    assert_eq!(after.breaker_state, BreakerState::Unspecified as i32);
    assert_eq!(after.breaker_reported_at_ms, NOW - 1_000);
}

#[test]
fn reports_are_validated_naming_the_field() {
    assert!(validate_report("r-1", &[outcome("a"), outcome("b")]).is_ok());
    assert!(validate_report("r-1", &[]).is_ok());

    let message = |r: Result<(), ConnectError>| {
        let e = r.err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!(e.code, workmesh::Code::InvalidArgument);
        e.message
    };
    assert_eq!(
        message(validate_report(" ", &[outcome("a")])),
        "report_id is required"
    );
    assert_eq!(
        message(validate_report("r", &[outcome("a"), outcome("")])),
        "outcomes[1].instance_id is required"
    );
    let many = vec![outcome("a"); MAX_OUTCOMES_PER_REPORT + 1];
    assert!(message(validate_report("r", &many)).starts_with("outcomes has 1001 entries"));
    assert!(validate_report("r", &many[..MAX_OUTCOMES_PER_REPORT]).is_ok());
    let huge = Outcome {
        failures: MAX_CALLS_PER_OUTCOME + 1,
        ..outcome("a")
    };
    assert!(message(validate_report("r", &[huge])).starts_with("outcomes[0].failures"));
    let unknown = Outcome {
        breaker_state: 9,
        ..outcome("a")
    };
    assert!(message(validate_report("r", &[unknown])).starts_with("outcomes[0].breaker_state"));
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
fn ejection_config_defaults_overrides_and_bad_values() {
    let config = EjectionConfig::from_vars(vars(&[])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config, EjectionConfig::default());
    assert_eq!(
        (config.base_ms, config.max_ms, config.max_percent),
        (30_000, 300_000, 50)
    );

    let config = EjectionConfig::from_vars(vars(&[
        (EJECTION_CONSECUTIVE_FAILURES_VAR, "3"),
        (EJECTION_SUCCESS_RATE_PERCENT_VAR, "0"),
        (EJECTION_MIN_CALLS_VAR, "20"),
        (EJECTION_WINDOW_VAR, "2000"),
        (EJECTION_BASE_VAR, "400"),
        (EJECTION_MAX_VAR, "1000"),
        (EJECTION_MAX_PERCENT_VAR, "100"),
        (EJECTION_DECAY_VAR, "5000"),
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config,
        EjectionConfig {
            consecutive_failures: 3,
            success_rate_percent: 0,
            min_calls: 20,
            window_ms: 2_000,
            base_ms: 400,
            max_ms: 1_000,
            max_percent: 100,
            decay_ms: 5_000,
        }
    );

    for (name, value) in [
        (EJECTION_CONSECUTIVE_FAILURES_VAR, "0"),
        (EJECTION_SUCCESS_RATE_PERCENT_VAR, "101"),
        (EJECTION_WINDOW_VAR, "10"),
        (EJECTION_BASE_VAR, "soon"),
        (EJECTION_MAX_PERCENT_VAR, "-1"),
        (EJECTION_MAX_VAR, "10"), // below the 30 s base
    ] {
        let err = EjectionConfig::from_vars(vars(&[(name, value)]))
            .err()
            .unwrap_or_else(|| panic!("{name}={value} was accepted"));
        assert_eq!(err.code, workmesh::Code::FailedPrecondition);
        assert!(err.message.contains(name), "{}", err.message);
    }
}
