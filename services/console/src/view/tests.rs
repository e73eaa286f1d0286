use super::*;
use crate::otlp::pad_ns;

fn span(id: &str, parent: Option<&str>, start: u64, end: u64) -> SpanRow {
    SpanRow {
        trace_id: "t".repeat(32),
        span_id: id.to_owned(),
        parent_span_id: parent.map(str::to_owned),
        service: "svc".to_owned(),
        name: format!("<{id}>"),
        kind: 2,
        start_ns: pad_ns(start),
        end_ns: pad_ns(end),
        status_code: 0,
        status_message: String::new(),
        attributes: "{}".to_owned(),
        events: "[]".to_owned(),
    }
}

#[test]
fn tree_order_puts_children_after_parents_and_orphans_at_the_root() {
    let spans = vec![
        span("c2", Some("root"), 30, 40),
        span("root", Some("outside"), 0, 100),
        span("c1", Some("root"), 10, 20),
        span("g", Some("c1"), 11, 12),
    ];
    let order: Vec<_> = tree_order(&spans)
        .into_iter()
        .map(|(d, s)| (d, s.span_id.as_str()))
        .collect();
    assert_eq!(order, [(0, "root"), (1, "c1"), (2, "g"), (1, "c2")]);
}

#[test]
fn pages_escape_names_and_json_reports_durations() {
    let spans = vec![span("a", None, 1_000_000, 3_500_000)];
    let html = trace_page("abc", &spans);
    assert!(html.contains("&lt;a&gt;"));
    assert!(!html.contains("<a>"));
    let value = span_json(&spans[0]);
    assert_eq!(value["durationMs"], 2.5);
    assert_eq!(value["startTimeUnixNano"], "1000000");
    assert_eq!(value["parentSpanId"], Value::Null);
    assert_eq!(value["kind"], "SERVER");
}

#[test]
fn rates_switch_to_per_minute_below_one_per_second() {
    assert_eq!(rate(2.34), "2.3/s");
    assert_eq!(rate(1.0 / 3600.0), "0.02/min");
    assert_eq!(rate(0.5), "30.00/min");
}

/// The `<tr>` of the span named `<id>` in a rendered waterfall.
fn row_of<'a>(html: &'a str, id: &str) -> &'a str {
    let name = format!("&lt;{id}&gt;");
    let at = html.find(&name).unwrap_or_else(|| panic!("{id} in {html}"));
    let start = html[..at].rfind("<tr").unwrap_or(0);
    let end = at + html[at..].find("</tr>").unwrap_or(html.len() - at);
    &html[start..end]
}

#[test]
fn waterfall_rows_open_to_sorted_escaped_attributes_and_events() {
    let mut db = span("db", Some("root"), 2_000_000, 4_000_000);
    db.kind = 3;
    db.attributes = serde_json::json!({
        "db.system": "cloudflare_d1",
        "db.query.text": "SELECT * FROM products WHERE sku = ?1 </dd><script>alert(1)</script>",
        "db.response.returned_rows": 1,
    })
    .to_string();
    let mut priced = span("priced", Some("root"), 5_000_000, 6_000_000);
    priced.kind = 1;
    priced.events = serde_json::json!([{
        "name": "order priced",
        "timeUnixNano": "5500000",
        "attributes": { "units": 42, "currency": "<EUR>" },
    }])
    .to_string();
    let spans = vec![span("root", None, 1_000_000, 9_000_000), db, priced];
    let html = trace_page("abc", &spans);

    assert_eq!(html.matches("<details>").count(), 3, "every row opens");
    assert!(!html.contains("<script>"), "attribute values are escaped");
    assert!(html.contains("&lt;/dd&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));

    let db = row_of(&html, "db");
    let keys: Vec<usize> = [
        "<dt>db.query.text</dt>",
        "<dt>db.response.returned_rows</dt><dd>1</dd>",
        "<dt>db.system</dt><dd>cloudflare_d1</dd>",
    ]
    .iter()
    .map(|k| db.find(k).unwrap_or_else(|| panic!("{k} in {db}")))
    .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "sorted by key");
    assert!(db.contains("<dt>span id</dt><dd><code>db</code></dd>"));
    assert!(db.contains("<dt>parent id</dt><dd><code>root</code></dd>"));
    assert!(db.contains("<dt>kind</dt><dd>CLIENT</dd>"));
    assert!(db.contains("<h4>events (0)</h4>"));
    assert!(
        db.contains("left:12.50%;width:25.00%"),
        "the bar keeps its place"
    );

    let priced = row_of(&html, "priced");
    assert!(priced.contains("<h4>events (1)</h4>"));
    assert!(
        priced.contains("+4.500 ms</span> <strong>order priced</strong>"),
        "event time is an offset from the trace start: {priced}"
    );
    assert!(priced.contains("<dt>currency</dt><dd>&lt;EUR&gt;</dd><dt>units</dt><dd>42</dd>"));
    assert!(row_of(&html, "root").contains("<dt>parent id</dt><dd><code>–</code></dd>"));
}

#[test]
fn error_spans_show_red_bars_and_their_connect_code() {
    let mut failed = span("failed", Some("root"), 2_000_000, 3_000_000);
    failed.kind = 3;
    failed.attributes =
        serde_json::json!({ "rpc.connect_rpc.error_code": "not_found" }).to_string();
    let mut errored = span("errored", Some("root"), 2_000_000, 3_000_000);
    errored.status_code = 2;
    errored.status_message = "boom".to_owned();
    let ok = span("root", None, 1_000_000, 4_000_000);
    let html = trace_page("abc", &[ok, failed, errored]);

    let failed = row_of(&html, "failed");
    assert!(failed.starts_with("<tr class=\"err\">"), "{failed}");
    assert!(failed.contains("<code class=\"c\">not_found</code>"));
    assert!(failed.contains("<dt>Connect code</dt><dd class=\"err\">not_found</dd>"));
    assert!(failed.contains("<span class=\"e\""), "a red bar");
    let errored = row_of(&html, "errored");
    assert!(errored.contains("<span class=\"e\""));
    assert!(errored.contains("<dt>status</dt><dd>ERROR: boom</dd>"));
    let root = row_of(&html, "root");
    assert!(root.starts_with("<tr>") && !root.contains("class=\"e\""));
    assert!(root.contains("<dt>status</dt><dd>UNSET</dd>"));
}

#[test]
fn metrics_page_lists_errors_by_code() {
    let m = crate::metrics::MethodRed {
        side: "server".to_owned(),
        reporter: "catalog".to_owned(),
        service: "shop.v1.CatalogService".to_owned(),
        method: "GetProduct".to_owned(),
        requests: 4.0,
        errors: 3.0,
        errors_by_code: [("<x>".to_owned(), 1.0), ("not_found".to_owned(), 2.0)].into(),
        rate: 1.0,
        error_rate: 0.75,
        p50_ms: None,
        p99_ms: None,
        mean_ms: None,
    };
    let html = metrics_page(&[m], "1h", None);
    assert!(
        html.contains(
            "75.0% <span class=\"k\">&lt;x&gt; ×1</span> <span class=\"k\">not_found ×2</span>"
        ),
        "{html}"
    );
}

#[test]
fn the_list_form_shows_its_window_and_offers_no_unbounded_one() {
    let form = ListForm {
        since: crate::query::DEFAULT_SINCE.to_owned(),
        ..ListForm::default()
    };
    let html = list_page(&[], &form, None);
    assert!(
        html.contains("<option value=\"1h\" selected>last hour</option>"),
        "{html}"
    );
    let since = html
        .split_once("name=\"since\"")
        .and_then(|(_, rest)| rest.split_once("</select>"))
        .map_or("", |(select, _)| select);
    assert!(since.contains("last 7 days"), "{html}");
    assert!(!since.contains("any time"), "{since}");
    assert!(!since.contains("value=\"\""), "{since}");
    let custom = list_page(
        &[],
        &ListForm {
            since: "90m".to_owned(),
            ..ListForm::default()
        },
        None,
    );
    assert!(custom.contains("<option value=\"90m\" selected>last 90m</option>"));
}
