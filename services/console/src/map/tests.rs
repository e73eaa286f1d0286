use super::*;

fn call(caller: &str, callee: &str, ms: f64, failed: bool) -> Call {
    Call {
        caller: caller.to_owned(),
        callee: callee.to_owned(),
        duration_ns: ms * 1e6,
        failed: i64::from(failed),
    }
}

#[test]
fn percentiles_are_nearest_rank() {
    let values: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(percentile(&values, 0.5), 50.0);
    assert_eq!(percentile(&values, 0.99), 99.0);
    assert_eq!(percentile(&values, 1.0), 100.0);
    assert_eq!(percentile(&values, 0.0), 1.0);
    assert_eq!(percentile(&[7.0], 0.99), 7.0);
    assert_eq!(percentile(&[], 0.5), 0.0);
}

#[test]
fn calls_group_into_edges_with_rates_and_latency() {
    let mut calls: Vec<Call> = (1..=10)
        .map(|i| call("orders", "catalog", f64::from(i), i == 10))
        .collect();
    calls.push(call("gateway", "orders", 30.0, false));
    let edges = edges(&calls, 20.0);
    let [gateway, orders] = edges.as_slice() else {
        panic!("{edges:?}")
    };
    assert_eq!(
        (gateway.caller.as_str(), gateway.callee.as_str()),
        ("gateway", "orders")
    );
    assert_eq!(
        (gateway.calls, gateway.errors, gateway.p99_ms),
        (1, 0, 30.0)
    );
    assert_eq!((orders.calls, orders.errors), (10, 1));
    assert_eq!(orders.rate, 0.5);
    assert_eq!(orders.error_rate, 0.1);
    assert_eq!((orders.p50_ms, orders.p99_ms), (5.0, 10.0));
}

#[test]
fn columns_follow_call_depth_and_survive_cycles() {
    let edges = edges(
        &[
            call("gateway", "orders", 1.0, false),
            call("orders", "catalog", 1.0, false),
            call("gateway", "catalog", 1.0, false),
            call("a", "b", 1.0, false),
            call("b", "a", 1.0, false),
            call("self", "self", 1.0, false),
        ],
        1.0,
    );
    let columns = columns(&edges);
    assert_eq!(columns["gateway"], 0);
    assert_eq!(columns["orders"], 1);
    assert_eq!(columns["catalog"], 1, "the shortest path wins");
    assert_eq!(columns["self"], 0);
    assert_eq!(
        (columns["a"], columns["b"]),
        (0, 1),
        "a cycle starts at its first node"
    );
    let svg = svg(&edges);
    assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    assert_eq!(svg.matches("<rect").count(), 6);
    assert_eq!(svg.matches("<line").count(), 6);
}

#[test]
fn svg_escapes_service_names() {
    let svg = svg(&edges(&[call("<a>", "b&c", 1.0, true)], 1.0));
    assert!(svg.contains("&lt;a&gt;") && svg.contains("b&amp;c"));
    assert!(!svg.contains("<a>"));
    assert!(svg.contains("#b00020"), "failed calls draw red");
}
