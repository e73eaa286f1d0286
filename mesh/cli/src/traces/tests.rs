use serde_json::json;

use super::*;

const MS: u64 = 1_000_000;
const T0: u64 = 1_780_000_000_000_000_000;

fn span(
    id: &str,
    parent: Option<&str>,
    service: &str,
    name: &str,
    kind: &str,
    start: u64,
    end: u64,
) -> Span {
    Span {
        span_id: id.to_owned(),
        parent_span_id: parent.map(str::to_owned),
        service: service.to_owned(),
        name: name.to_owned(),
        kind: kind.to_owned(),
        start_time_unix_nano: T0 + start,
        end_time_unix_nano: T0 + end,
        status: Status::default(),
        attributes: serde_json::Map::new(),
    }
}

fn bar_of(start: usize, len: usize) -> String {
    format!(
        "|{}{}{}|",
        " ".repeat(start),
        "█".repeat(len),
        " ".repeat(BAR_WIDTH - start - len)
    )
}

#[test]
fn waterfall_is_in_tree_order_indented_and_scaled_to_the_trace() {
    // Given out of order: the callee first, the root last.
    let spans = [
        span(
            "c",
            Some("b"),
            "catalog",
            "GetProduct",
            "SERVER",
            3 * MS,
            6 * MS,
        ),
        span(
            "b",
            Some("a"),
            "orders",
            "GetProduct",
            "CLIENT",
            2 * MS,
            7 * MS,
        ),
        span("a", None, "orders", "CreateOrder", "SERVER", 0, 10 * MS),
    ];
    let lines = render_waterfall(&spans);
    assert_eq!(
        lines,
        [
            format!(
                "orders  CreateOrder  SERVER      10.000 ms  {}",
                bar_of(0, 40)
            ),
            format!(
                "  orders  GetProduct  CLIENT      5.000 ms  {}",
                bar_of(8, 20)
            ),
            format!(
                "    catalog  GetProduct  SERVER   3.000 ms  {}",
                bar_of(12, 12)
            ),
        ]
    );
}

#[test]
fn siblings_follow_start_time_and_orphans_are_roots() {
    let spans = [
        span("late", Some("root"), "s", "late", "CLIENT", 5 * MS, 8 * MS),
        span("early", Some("root"), "s", "early", "CLIENT", MS, 2 * MS),
        span("root", None, "s", "root", "SERVER", 0, 10 * MS),
        // Its parent was never exported: shown as a root, after `root`.
        span(
            "orphan",
            Some("gone"),
            "t",
            "orphan",
            "SERVER",
            9 * MS,
            10 * MS,
        ),
    ];
    let names: Vec<String> = render_waterfall(&spans)
        .iter()
        .map(|l| l.split("  ").take(3).collect::<Vec<_>>().join("/"))
        .collect();
    assert_eq!(
        names,
        ["s/root/SERVER", "/s/early", "/s/late", "t/orphan/SERVER"]
    );
}

#[test]
fn a_trace_of_zero_duration_puts_every_span_in_the_first_column() {
    // Workers' clock only moves on I/O: a whole trace can take 0 ns.
    let spans = [
        span("a", None, "orders", "CreateOrder", "SERVER", 0, 0),
        span("b", Some("a"), "orders", "GetProduct", "CLIENT", 0, 0),
    ];
    assert_eq!(
        render_waterfall(&spans),
        [
            format!("orders  CreateOrder  SERVER   0.000 ms  {}", bar_of(0, 1)),
            format!("  orders  GetProduct  CLIENT  0.000 ms  {}", bar_of(0, 1)),
        ]
    );
}

#[test]
fn instant_and_backwards_spans_get_one_column_and_no_negative_duration() {
    let spans = [
        span("a", None, "s", "root", "SERVER", 0, 4 * MS),
        // Zero duration at the very end of the trace: the last column.
        span("b", Some("a"), "s", "end", "INTERNAL", 4 * MS, 4 * MS),
        // Ends before it starts: a zero-length span at its start.
        span("c", Some("a"), "s", "odd", "CLIENT", 2 * MS, MS),
    ];
    assert_eq!(
        render_waterfall(&spans),
        [
            format!("s  root  SERVER     4.000 ms  {}", bar_of(0, 40)),
            format!("  s  odd  CLIENT    0.000 ms  {}", bar_of(20, 1)),
            format!("  s  end  INTERNAL  0.000 ms  {}", bar_of(39, 1)),
        ]
    );
}

#[test]
fn failed_spans_show_their_connect_code() {
    let mut client = span("b", Some("a"), "orders", "GetProduct", "CLIENT", MS, 2 * MS);
    client.status = Status {
        code: 2,
        message: Some("unavailable: catalog is down".to_owned()),
    };
    client
        .attributes
        .insert(ERROR_CODE.to_owned(), json!("unavailable"));
    let mut root = span("a", None, "orders", "CreateOrder", "SERVER", 0, 2 * MS);
    // An error status without the attribute: its message is the mark.
    root.status = Status {
        code: 2,
        message: Some("internal: boom".to_owned()),
    };
    let lines = render_waterfall(&[root, client]);
    assert!(lines[0].ends_with("|  ✗ internal: boom"), "{}", lines[0]);
    assert!(lines[1].ends_with("|  ✗ unavailable"), "{}", lines[1]);
    assert!(!render_waterfall(&[span("a", None, "s", "ok", "SERVER", 0, MS)])[0].contains('✗'));
}

#[test]
fn bar_never_divides_by_zero_or_overflows() {
    assert_eq!(bar(0, 0, 0, 10), "█         ");
    assert_eq!(bar(5, 5, 0, 10), "█         ");
    assert_eq!(bar(0, u64::MAX, 1, 10), "██████████");
    assert_eq!(bar(u64::MAX, u64::MAX, u64::MAX, 4), "   █");
    assert_eq!(bar(50, 0, 100, 4), "  █ ");
    assert_eq!(bar(1, 1, 3, 3), " █ ");
    assert_eq!(bar(0, 1, 1, 0), "");
    assert!(render_waterfall(&[]) == ["(no spans)"]);
}

#[test]
fn parses_the_consoles_json() -> Result<(), serde_json::Error> {
    let trace: TraceSpans = serde_json::from_value(json!({
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
        "spans": [{
            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
            "spanId": "00f067aa0ba902b7",
            "parentSpanId": null,
            "service": "shop.v1.OrderService",
            "name": "shop.v1.OrderService/CreateOrder",
            "kind": "SERVER",
            "startTimeUnixNano": "1780000000000000000",
            "endTimeUnixNano": "1780000000012000000",
            "durationMs": 12.0,
            "status": { "code": 0, "message": "" },
            "attributes": { "rpc.method": "CreateOrder" },
            "events": []
        }]
    }))?;
    assert_eq!(
        trace.spans[0].end_time_unix_nano - trace.spans[0].start_time_unix_nano,
        12 * MS
    );
    let list: TraceList = serde_json::from_value(json!({ "traces": [{
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
        "rootName": null,
        "rootService": "shop.v1.OrderService",
        "startTimeUnixNano": "1780000000000000000",
        "durationMs": 12.5,
        "spanCount": 3,
        "error": true
    }]}))?;
    assert_eq!(list.traces[0].span_count, 3);
    let bad = serde_json::from_value::<TraceList>(json!({ "traces": [{
        "traceId": "x", "startTimeUnixNano": "soon", "durationMs": 1, "spanCount": 1, "error": false
    }]}));
    assert!(bad.is_err());
    Ok(())
}

#[test]
fn list_is_aligned_with_a_header() {
    let traces = [
        TraceSummary {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".to_owned(),
            root_name: Some("shop.v1.OrderService/CreateOrder".to_owned()),
            root_service: Some("shop.v1.OrderService".to_owned()),
            start_time_unix_nano: 1_700_000_000_123_000_000,
            duration_ms: 12.5,
            span_count: 3,
            error: false,
        },
        TraceSummary {
            trace_id: "0af7651916cd43dd8448eb211c80319c".to_owned(),
            root_name: None,
            root_service: None,
            start_time_unix_nano: 0,
            duration_ms: 0.0,
            span_count: 12,
            error: true,
        },
    ];
    assert_eq!(
        render_list(&traces),
        [
            "TRACE ID                          ROOT                              SERVICE               START (UTC)               DURATION  SPANS  ERROR",
            "4bf92f3577b34da6a3ce929d0e0e4736  shop.v1.OrderService/CreateOrder  shop.v1.OrderService  2023-11-14 22:13:20.123  12.500 ms      3",
            "0af7651916cd43dd8448eb211c80319c  ?                                 ?                     1970-01-01 00:00:00.000   0.000 ms     12  ✗",
        ]
    );
}

#[test]
fn utc_dates() {
    assert_eq!(utc(0), "1970-01-01 00:00:00.000");
    // 2024-02-29 (a leap day) 23:59:59.999.
    assert_eq!(utc(1_709_251_199_999_000_000), "2024-02-29 23:59:59.999");
    assert_eq!(utc(951_782_400_000_000_000), "2000-02-29 00:00:00.000");
}

#[test]
fn query_values_are_percent_encoded() {
    assert_eq!(
        percent_encode("shop.v1.OrderService"),
        "shop.v1.OrderService"
    );
    assert_eq!(percent_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
}
