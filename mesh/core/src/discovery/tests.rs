#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use super::*;
use crate::proto::v1::{BreakerState, Instance, ResolveResponse};
use crate::{Code, Runtime, TokioRuntime};

const SVC: &str = "shop.v1.CatalogService";

fn instance(id: &str, version: &str) -> Instance {
    Instance {
        service: SVC.into(),
        instance_id: id.into(),
        version: version.into(),
        ..Default::default()
    }
}

fn answer(token: &str, instances: Vec<Instance>, weights: &[(&str, u32)]) -> ResolveResponse {
    ResolveResponse {
        instances,
        version_token: token.into(),
        not_modified: false,
        version_weights: weights.iter().map(|(v, w)| (v.to_string(), *w)).collect(),
    }
}

fn not_modified(token: &str) -> ResolveResponse {
    ResolveResponse {
        version_token: token.into(),
        not_modified: true,
        ..Default::default()
    }
}

fn ids(plan: &Plan) -> Vec<String> {
    plan.resolution
        .as_ref()
        .map(|r| r.instances.iter().map(|i| i.instance_id.clone()).collect())
        .unwrap_or_default()
}

async fn advance(rt: &TokioRuntime, ms: u64) {
    rt.sleep(Duration::from_millis(ms)).await;
}

// ---- cache ----

#[tokio::test(start_paused = true)]
async fn fresh_then_stale_then_expired() {
    let rt = TokioRuntime::default();
    let mut cache = ResolutionCache::new(DiscoveryPolicy::default());

    let cold = cache.plan(SVC, rt.now());
    assert_eq!(cold.refresh, Refresh::Inline);
    assert_eq!(cold.resolution, None);
    cache.resolved(SVC, answer("t1", vec![instance("a", "v1")], &[]), rt.now());

    let warm = cache.plan(SVC, rt.now());
    assert_eq!(
        (warm.freshness, warm.refresh),
        (Some(Freshness::Fresh), Refresh::None)
    );
    assert_eq!(ids(&warm), ["a"]);

    advance(&rt, 4_999).await;
    assert_eq!(cache.plan(SVC, rt.now()).refresh, Refresh::None);
    advance(&rt, 1).await;
    let stale = cache.plan(SVC, rt.now());
    assert_eq!(
        (stale.freshness, stale.refresh),
        (Some(Freshness::Stale), Refresh::Background)
    );
    assert_eq!(ids(&stale), ["a"], "a stale answer still routes");
    // The refresh is claimed: concurrent calls do not start another.
    assert_eq!(cache.plan(SVC, rt.now()).refresh, Refresh::None);
    assert_eq!(cache.known_token(SVC), "t1");

    // Not modified: the same answer is fresh again.
    cache.resolved(SVC, not_modified("t1"), rt.now());
    let renewed = cache.plan(SVC, rt.now());
    assert_eq!(
        (renewed.freshness, renewed.refresh),
        (Some(Freshness::Fresh), Refresh::None)
    );

    // Past TTL + stale window with every refresh failing: expired, still the last known.
    advance(&rt, 305_000).await;
    let expired = cache.plan(SVC, rt.now());
    assert_eq!(expired.freshness, Some(Freshness::Expired));
    assert_eq!(
        expired.refresh,
        Refresh::Background,
        "never inline once warm"
    );
    assert_eq!(ids(&expired), ["a"]);
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_one_ttl_and_never_go_inline_again() {
    let rt = TokioRuntime::default();
    let mut cache = ResolutionCache::new(DiscoveryPolicy::default());
    assert_eq!(cache.plan(SVC, rt.now()).refresh, Refresh::Inline);
    cache.failed(SVC, rt.now());

    let after = cache.plan(SVC, rt.now());
    assert_eq!(
        (after.resolution, after.refresh),
        (None, Refresh::None),
        "static, no retry storm"
    );
    advance(&rt, 5_000).await;
    assert_eq!(cache.plan(SVC, rt.now()).refresh, Refresh::Background);
    cache.failed(SVC, rt.now());
    advance(&rt, 1_000).await;
    assert_eq!(cache.plan(SVC, rt.now()).refresh, Refresh::None);
}

#[tokio::test(start_paused = true)]
async fn a_cold_resolve_in_flight_is_shared_and_a_lost_claim_expires() {
    let rt = TokioRuntime::default();
    let mut cache = ResolutionCache::new(DiscoveryPolicy::default());
    assert_eq!(cache.plan(SVC, rt.now()).refresh, Refresh::Inline);
    assert_eq!(cache.plan(SVC, rt.now()).refresh, Refresh::InFlight);
    // The claim never reported back: after a TTL a background refresh may run.
    advance(&rt, 5_000).await;
    assert_eq!(cache.plan(SVC, rt.now()).refresh, Refresh::Background);
}

#[tokio::test(start_paused = true)]
async fn an_answer_without_instances_falls_back_to_the_last_one_with_instances() {
    let rt = TokioRuntime::default();
    let mut cache = ResolutionCache::new(DiscoveryPolicy::default());
    cache.plan(SVC, rt.now());
    cache.resolved(SVC, answer("t1", vec![instance("a", "v1")], &[]), rt.now());
    advance(&rt, 6_000).await;
    cache.plan(SVC, rt.now());
    cache.resolved(SVC, answer("t2", vec![], &[]), rt.now());

    let plan = cache.plan(SVC, rt.now());
    assert_eq!(ids(&plan), ["a"]);
    assert_eq!(
        plan.freshness,
        Some(Freshness::Stale),
        "the fallback keeps its own age"
    );
    // The token is the latest answer's, so an unchanged empty answer stays cheap.
    assert_eq!(cache.known_token(SVC), "t2");

    // A service that never had an instance: static.
    let mut other = ResolutionCache::new(DiscoveryPolicy::default());
    other.plan(SVC, rt.now());
    other.resolved(SVC, answer("t", vec![], &[]), rt.now());
    assert_eq!(other.plan(SVC, rt.now()).resolution, None);
}

#[tokio::test(start_paused = true)]
async fn not_modified_for_a_token_we_do_not_hold_is_a_failure() {
    let rt = TokioRuntime::default();
    let mut cache = ResolutionCache::new(DiscoveryPolicy::default());
    cache.plan(SVC, rt.now());
    cache.resolved(SVC, not_modified("t9"), rt.now());
    let plan = cache.plan(SVC, rt.now());
    assert_eq!((plan.resolution, plan.refresh), (None, Refresh::None));
    assert_eq!(cache.freshness(SVC, rt.now()), None);
}

// ---- weighted picking ----

fn resolution(instances: Vec<Instance>, weights: &[(&str, u32)]) -> Resolution {
    Resolution::from_response(answer("t", instances, weights))
}

fn split(resolution: &Resolution, picks: usize, seed: u64) -> HashMap<String, usize> {
    let rt = TokioRuntime::with_seed(seed);
    let mut counts = HashMap::new();
    for _ in 0..picks {
        let version = pick_version(resolution, rt.random()).unwrap();
        *counts.entry(version.to_owned()).or_default() += 1;
    }
    counts
}

#[test]
fn ninety_ten_split_within_three_points_over_ten_thousand_picks() {
    let r = resolution(
        vec![
            instance("a", "v1"),
            instance("b", "v1"),
            instance("c", "v2"),
        ],
        &[("v1", 90), ("v2", 10)],
    );
    for seed in [1, 7, 42, 1234] {
        let counts = split(&r, 10_000, seed);
        let v2 = counts.get("v2").copied().unwrap_or(0) as f64 / 100.0;
        assert!((7.0..=13.0).contains(&v2), "seed {seed}: v2 got {v2}%");
        assert_eq!(counts.values().sum::<usize>(), 10_000);
    }
}

#[test]
fn all_or_nothing_weights() {
    let both = vec![instance("a", "v1"), instance("c", "v2")];
    let to_v1 = split(
        &resolution(both.clone(), &[("v1", 100), ("v2", 0)]),
        1_000,
        3,
    );
    assert_eq!(to_v1, HashMap::from([("v1".to_owned(), 1_000)]));
    let to_v2 = split(
        &resolution(both.clone(), &[("v1", 0), ("v2", 100)]),
        1_000,
        3,
    );
    assert_eq!(to_v2, HashMap::from([("v2".to_owned(), 1_000)]));
    // A version left out of the weights gets nothing while any weight is set.
    let left_out = split(&resolution(both, &[("v2", 5)]), 1_000, 3);
    assert_eq!(left_out, HashMap::from([("v2".to_owned(), 1_000)]));
}

#[test]
fn no_weights_means_every_version_weighs_the_same() {
    // Three v1 instances and one v2: versions, not instances, split evenly.
    let r = resolution(
        vec![
            instance("a", "v1"),
            instance("b", "v1"),
            instance("c", "v1"),
            instance("d", "v2"),
        ],
        &[],
    );
    assert_eq!(version_shares(&r), vec![("v1", 1), ("v2", 1)]);
    let counts = split(&r, 10_000, 9);
    let v2 = counts["v2"] as f64 / 100.0;
    assert!((47.0..=53.0).contains(&v2), "v2 got {v2}%");
}

#[test]
fn drained_and_empty_answers() {
    // Every weighted version drained (absent from the routable list):
    // availability beats the split.
    let r = resolution(vec![instance("c", "v2")], &[("v1", 100)]);
    assert_eq!(version_shares(&r), vec![("v2", 1)]);
    assert_eq!(pick_version(&r, 0.3), Some("v2"));
    // Nothing routable at all.
    let empty = resolution(vec![], &[("v1", 90), ("v2", 10)]);
    assert_eq!(pick_version(&empty, 0.3), None);
    // The edges of the unit interval stay in range.
    let r = resolution(
        vec![instance("a", "v1"), instance("c", "v2")],
        &[("v1", 90), ("v2", 10)],
    );
    assert_eq!(pick_version(&r, 0.0), Some("v1"));
    assert_eq!(pick_version(&r, 0.899), Some("v1"));
    assert_eq!(pick_version(&r, 0.9), Some("v2"));
    assert_eq!(pick_version(&r, 1.0), Some("v2"));
}

// ---- outcome reports ----

#[tokio::test(start_paused = true)]
async fn outcomes_batch_per_instance_at_most_once_per_interval() {
    let rt = TokioRuntime::default();
    let mut recorder = OutcomeRecorder::new(&DiscoveryPolicy::default());
    assert!(!recorder.due(rt.now()), "nothing to report");
    recorder.record("a", false, Duration::from_millis(10));
    recorder.record("a", true, Duration::from_millis(30));
    recorder.record("b", false, Duration::from_millis(5));
    let breaker = |id: &str| {
        if id == "a" {
            BreakerState::Open
        } else {
            BreakerState::Closed
        }
    };
    let batch = recorder.take(rt.now(), breaker).unwrap();
    assert_eq!(batch.len(), 2);
    let a = &batch[0];
    assert_eq!(
        (
            a.instance_id.as_str(),
            a.successes,
            a.failures,
            a.latency_sum_ms,
            a.latency_count
        ),
        ("a", 1, 1, 40, 2)
    );
    assert_eq!(a.breaker_state, BreakerState::Open as i32);
    assert_eq!(batch[1].breaker_state, BreakerState::Closed as i32);

    recorder.record("a", false, Duration::from_millis(1));
    assert!(
        recorder.take(rt.now(), breaker).is_none(),
        "within the interval"
    );
    advance(&rt, 1_999).await;
    assert!(!recorder.due(rt.now()));
    advance(&rt, 1).await;
    let next = recorder.take(rt.now(), breaker).unwrap();
    assert_eq!((next.len(), next[0].successes), (1, 1));
}

#[test]
fn the_batch_is_bounded() {
    let policy = DiscoveryPolicy {
        max_report_instances: 2,
        ..Default::default()
    };
    let mut recorder = OutcomeRecorder::new(&policy);
    for id in ["a", "b", "c", "a", "d"] {
        recorder.record(id, false, Duration::ZERO);
    }
    assert_eq!((recorder.pending_instances(), recorder.dropped()), (2, 2));
}

#[test]
fn blame_follows_the_contract() {
    for code in [Code::Unavailable, Code::Internal, Code::DeadlineExceeded] {
        assert!(blames_instance(code), "{code:?}");
    }
    for code in [
        Code::NotFound,
        Code::InvalidArgument,
        Code::PermissionDenied,
    ] {
        assert!(!blames_instance(code), "{code:?}");
    }
}

#[test]
fn report_ids_are_v4_uuids_and_differ() {
    let rt = TokioRuntime::with_seed(5);
    let a = report_id(&rt);
    let b = report_id(&rt);
    assert_ne!(a, b);
    let groups: Vec<&str> = a.split('-').collect();
    assert_eq!(
        groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12]
    );
    assert!(groups[2].starts_with('4'), "{a}");
    assert!(matches!(&groups[3][..1], "8" | "9" | "a" | "b"), "{a}");
}

// ---- self-registration ----

#[tokio::test(start_paused = true)]
async fn registers_once_then_heartbeats_at_the_given_interval() {
    let rt = TokioRuntime::default();
    let mut reg = SelfRegistration::new(Duration::from_secs(5));
    assert_eq!(reg.next(rt.now()), Some(RegistrationAction::Register));
    assert_eq!(reg.next(rt.now()), None, "claimed until it answers");
    reg.registered(rt.now(), Duration::from_secs(10));
    assert!(reg.is_registered());

    advance(&rt, 9_999).await;
    assert_eq!(reg.next(rt.now()), None);
    advance(&rt, 1).await;
    assert_eq!(reg.next(rt.now()), Some(RegistrationAction::Heartbeat));
    reg.heartbeat_answered(rt.now(), true);
    assert_eq!(reg.next(rt.now()), None);

    // The registry forgot us: register again at once.
    advance(&rt, 10_000).await;
    assert_eq!(reg.next(rt.now()), Some(RegistrationAction::Heartbeat));
    reg.heartbeat_answered(rt.now(), false);
    assert_eq!(reg.next(rt.now()), Some(RegistrationAction::Register));
}

#[tokio::test(start_paused = true)]
async fn failed_registration_retries_after_the_retry_interval() {
    let rt = TokioRuntime::default();
    let mut reg = SelfRegistration::new(Duration::from_secs(5));
    assert_eq!(reg.next(rt.now()), Some(RegistrationAction::Register));
    reg.failed(rt.now());
    assert_eq!(reg.next(rt.now()), None);
    advance(&rt, 5_000).await;
    assert_eq!(reg.next(rt.now()), Some(RegistrationAction::Register));
    // A claim whose wait_until was cut short is forgotten after 30 s.
    advance(&rt, 30_000).await;
    assert_eq!(reg.next(rt.now()), Some(RegistrationAction::Register));
}

#[test]
fn route_choice_prefers_fresh_and_stale_answers_and_static_over_expired_ones() {
    use Freshness::{Expired, Fresh, Stale};
    use RouteChoice::{Discovered, Static};
    // No answer with instances: static, whatever the breakers say.
    assert_eq!(choose_route(None, true, true), Static);
    assert_eq!(choose_route(None, false, false), Static);
    // A fresh or stale answer is routed by while it can send.
    for freshness in [Fresh, Stale] {
        assert_eq!(choose_route(Some(freshness), true, true), Discovered);
        assert_eq!(choose_route(Some(freshness), true, false), Discovered);
        // Every discovered breaker open: back to the static binding.
        assert_eq!(choose_route(Some(freshness), false, true), Static);
    }
    // Expired: static while it can send; the expired answer is the last resort.
    assert_eq!(choose_route(Some(Expired), true, true), Static);
    assert_eq!(choose_route(Some(Expired), true, false), Discovered);
    assert_eq!(choose_route(Some(Expired), false, false), Static);
}

#[tokio::test(start_paused = true)]
async fn an_inline_wait_never_outlasts_the_call_deadline() {
    let rt = TokioRuntime::with_seed(1);
    let now = rt.now();
    let timeout = Duration::from_millis(200);
    assert_eq!(inline_wait(timeout, None, now), timeout);
    let later = now + Duration::from_millis(50);
    assert_eq!(
        inline_wait(timeout, Some(later), now),
        Duration::from_millis(50)
    );
    let far = now + Duration::from_secs(10);
    assert_eq!(inline_wait(timeout, Some(far), now), timeout);
    // A spent deadline waits not at all.
    advance(&rt, 100).await;
    assert_eq!(inline_wait(timeout, Some(later), rt.now()), Duration::ZERO);
}

#[test]
fn only_an_attempt_that_ran_its_whole_budget_blames_its_instance_when_dropped() {
    let ms = Duration::from_millis;
    // Cut short by its per-try timeout (or the call deadline).
    assert!(dropped_attempt_blames(ms(100), Some(ms(100))));
    assert!(dropped_attempt_blames(ms(150), Some(ms(100))));
    // Abandoned early by its caller (a sibling failed, the client left).
    assert!(!dropped_attempt_blames(ms(3), Some(ms(100))));
    assert!(!dropped_attempt_blames(ms(99), Some(ms(100))));
    // No budget: no timer can have fired.
    assert!(!dropped_attempt_blames(ms(10_000), None));
}
