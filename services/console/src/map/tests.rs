use super::*;

fn call(caller: &str, callee: &str, ms: f64, failed: bool) -> Call {
    Call {
        caller: caller.to_owned(),
        service: Some(callee.to_owned()),
        name: format!("{callee}/Call"),
        duration_ns: ms * 1e6,
        failed: i64::from(failed),
        ..Call::default()
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
    assert_eq!(
        svg.matches("fill=\"#eef3fb\"").count(),
        6,
        "a box per service"
    );
    assert_eq!(
        svg.matches("fill=\"#fff\"").count(),
        6,
        "a label card per edge"
    );
    assert_eq!(svg.matches("fill=\"none\"").count(), 6, "an arrow per edge");
    assert_eq!(svg.matches("marker-end=\"url(#arrow)\"").count(), 6);
}

#[test]
fn svg_escapes_service_names() {
    let svg = svg(&edges(&[call("<a>", "b&c", 1.0, true)], 1.0));
    assert!(svg.contains("&lt;a&gt;") && svg.contains("b&amp;c"));
    assert!(!svg.contains("<a>"));
    assert!(svg.contains("#b00020"), "failed calls draw red");
    assert!(
        svg.contains("marker-end=\"url(#arrow-err)\""),
        "with a red arrowhead"
    );
}

fn db_call(caller: &str, system: &str, namespace: Option<&str>) -> Call {
    Call {
        caller: caller.to_owned(),
        db_system: Some(system.to_owned()),
        db_namespace: namespace.map(str::to_owned),
        name: "SELECT products".to_owned(),
        duration_ns: 1e6,
        ..Call::default()
    }
}

#[test]
fn databases_are_named_by_namespace_else_kept_per_caller() {
    let edges = edges(
        &[
            db_call("shop.v1.CatalogService", "cloudflare_d1", None),
            db_call("shop.v1.CatalogService", "cloudflare_d1", None),
            db_call("shop.v1.OrderService", "cloudflare_d1", None),
            db_call("a", "postgresql", Some("shop")),
            db_call("b", "postgresql", Some("shop")),
        ],
        1.0,
    );
    let pairs: Vec<(&str, &str, u64)> = edges
        .iter()
        .map(|e| (e.caller.as_str(), e.callee.as_str(), e.calls))
        .collect();
    assert_eq!(
        pairs,
        [
            ("a", "postgresql:shop", 1),
            ("b", "postgresql:shop", 1),
            ("shop.v1.CatalogService", "d1 (shop.v1.CatalogService)", 2),
            ("shop.v1.OrderService", "d1 (shop.v1.OrderService)", 1),
        ],
        "one shared namespace is one node; D1 without one is per caller"
    );
}

#[test]
fn callee_prefers_the_answering_service_then_the_span_name() {
    let mut rpc = db_call("orders", "cloudflare_d1", None);
    rpc.service = Some("catalog".to_owned());
    assert_eq!(rpc.callee(), "catalog");
    let other = Call {
        caller: "orders".to_owned(),
        name: "fetch example.com".to_owned(),
        ..Call::default()
    };
    assert_eq!(other.callee(), "fetch example.com");
}

#[test]
fn arrows_end_outside_the_callee_box() {
    let (w, h) = (100.0, 30.0);
    // Forward: right edge of the caller to just left of the callee.
    let (path, lx, _) = route((0.0, 0.0), (200.0, 60.0), w, h);
    assert_eq!(path, "M100,15L197,75");
    assert!(lx > 100.0 && lx < 200.0, "the label sits between the boxes");
    // Backward (a cycle): left edge to just right of the callee.
    let (path, ..) = route((200.0, 0.0), (0.0, 0.0), w, h);
    assert_eq!(path, "M200,15L103,15");
    // Same column: bends out to the right instead of crossing boxes.
    let (path, lx, _) = route((0.0, 0.0), (0.0, 120.0), w, h);
    assert!(
        path.starts_with("M100,15C") && path.ends_with(" 103,135"),
        "{path}"
    );
    assert!(lx > w, "the label is beside the column");
    // Oneself: a loop on the right side.
    let (path, ..) = route((0.0, 0.0), (0.0, 0.0), w, h);
    assert!(
        path.starts_with("M100,") && path.contains(" 103,"),
        "{path}"
    );
}

#[test]
fn labels_read_rate_and_p99_and_long_names_fit_their_box() {
    let long = "shop.v1.AVeryLongServiceNameIndeed";
    let svg = svg(&edges(&[call("gateway", long, 12.0, false)], 60.0));
    assert!(svg.contains(">1.00/min<tspan"), "{svg}");
    assert!(svg.contains("dy=\"16\">p99 12.0 ms</tspan>"), "{svg}");
    assert_eq!(svg.matches("textLength=").count(), 1, "only the long name");
}
