use super::*;
use proptest::prelude::*;

const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn parses_the_spec_example() {
    let context = TraceContext::parse_traceparent(VALID).expect("valid");
    assert_eq!(
        context.trace_id.to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(context.span_id.to_string(), "00f067aa0ba902b7");
    assert!(context.sampled);
    assert_eq!(context.format_traceparent(), VALID);
}

#[test]
fn rejects_malformed_traceparents() {
    let bad = [
        "",
        "00",
        // all-zero ids
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        // uppercase hex
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        // version ff, version not hex
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        // version 00 with trailing data
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        // wrong separators and lengths
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        // future version whose fifth field is not dash-separated
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        // multi-byte characters where hex is expected
        "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
    ];
    for value in bad {
        assert_eq!(TraceContext::parse_traceparent(value), None, "{value:?}");
    }
}

#[test]
fn accepts_future_versions_by_their_first_four_fields() {
    let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-the-future-holds";
    let context = TraceContext::parse_traceparent(future).expect("future version");
    assert!(context.sampled);
    // Re-emitted as the version we speak.
    assert_eq!(context.format_traceparent(), VALID);
    let exact = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    assert!(
        !TraceContext::parse_traceparent(exact)
            .expect("exact length")
            .sampled
    );
}

#[test]
fn tracestate_is_kept_only_when_well_formed() {
    assert_eq!(
        parse_tracestate("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"),
        Some("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE".to_owned())
    );
    assert!(parse_tracestate("tenant@vendor=x,,other=y").is_some());
    for bad in [
        "",
        "Upper=1",
        "novalue",
        "a=1,a=2",
        "a=has,comma",
        "a=tab\there",
        "1abc=x",
        "t@TooLongSystemName=x",
    ] {
        assert_eq!(parse_tracestate(bad), None, "{bad:?}");
    }
    let too_many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
    assert_eq!(parse_tracestate(&too_many.join(",")), None);
    let too_long = format!("k={}", "v".repeat(256)) + &format!(",j={}", "v".repeat(256));
    assert_eq!(parse_tracestate(&too_long), None);
}

#[test]
fn inject_then_extract_round_trips_through_headers() {
    let mut context = TraceContext::parse_traceparent(VALID).expect("valid");
    context.tracestate = Some("rojo=1,congo=2".to_owned());
    let mut headers = HeaderMap::new();
    headers.insert(TRACESTATE, HeaderValue::from_static("stale=1"));
    context.inject(&mut headers);
    assert_eq!(TraceContext::extract(&headers), Some(context));
}

#[test]
fn extract_joins_repeated_tracestate_and_rejects_repeated_traceparent() {
    let mut headers = HeaderMap::new();
    headers.append(TRACEPARENT, HeaderValue::from_static(VALID));
    headers.append(TRACESTATE, HeaderValue::from_static("a=1"));
    headers.append(TRACESTATE, HeaderValue::from_static("b=2"));
    let context = TraceContext::extract(&headers).expect("valid");
    assert_eq!(context.tracestate.as_deref(), Some("a=1,b=2"));

    headers.append(TRACEPARENT, HeaderValue::from_static(VALID));
    assert_eq!(TraceContext::extract(&headers), None);
}

#[test]
fn bad_tracestate_is_dropped_but_the_parent_kept() {
    let mut headers = HeaderMap::new();
    headers.insert(TRACEPARENT, HeaderValue::from_static(VALID));
    let long = format!("a={}", "x".repeat(600));
    headers.insert(TRACESTATE, HeaderValue::from_str(&long).expect("ascii"));
    let context = TraceContext::extract(&headers).expect("parent still valid");
    assert_eq!(context.tracestate, None);
}

#[test]
fn random_ids_are_never_zero() {
    #[derive(Clone)]
    struct Zero;
    impl Runtime for Zero {
        fn now(&self) -> crate::Instant {
            crate::Instant::default()
        }
        fn sleep(&self, _: std::time::Duration) -> crate::LocalBoxFuture<'static, ()> {
            Box::pin(async {})
        }
        fn random(&self) -> f64 {
            0.0
        }
    }
    assert_ne!(TraceId::random(&Zero).0, [0; 16]);
    assert_ne!(SpanId::random(&Zero).0, [0; 8]);
}

proptest! {
    #[test]
    fn format_then_parse_round_trips(
        trace in 1u128..,
        span in 1u64..,
        sampled: bool,
    ) {
        let context = TraceContext {
            trace_id: TraceId::from_u128(trace),
            span_id: SpanId::from_u64(span),
            sampled,
            tracestate: None,
        };
        let parsed = TraceContext::parse_traceparent(&context.format_traceparent());
        prop_assert_eq!(parsed, Some(context));
    }

    #[test]
    fn valid_tracestate_round_trips_through_headers(
        members in proptest::collection::btree_map("[a-z][a-z0-9_*/-]{0,10}", "[!-+.-<>-~]{1,12}", 1..8),
    ) {
        let state: Vec<String> = members.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let context = TraceContext {
            trace_id: TraceId::from_u128(7),
            span_id: SpanId::from_u64(9),
            sampled: true,
            tracestate: Some(state.join(",")),
        };
        let mut headers = HeaderMap::new();
        context.inject(&mut headers);
        prop_assert_eq!(TraceContext::extract(&headers), Some(context));
    }

    #[test]
    fn arbitrary_traceparent_never_panics(value in ".{0,80}") {
        let _ = TraceContext::parse_traceparent(&value);
    }

    #[test]
    fn near_valid_traceparent_never_panics(value in "[0-9a-fA-F-]{50,60}") {
        if let Some(context) = TraceContext::parse_traceparent(&value) {
            prop_assert_ne!(context.trace_id.0, [0; 16]);
            prop_assert_ne!(context.span_id.0, [0; 8]);
        }
    }

    #[test]
    fn arbitrary_tracestate_never_panics(value in ".{0,600}") {
        if let Some(kept) = parse_tracestate(&value) {
            prop_assert!(kept.len() <= MAX_TRACESTATE_LEN);
        }
    }
}
