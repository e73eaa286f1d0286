#![allow(clippy::unwrap_used)]

use super::*;

const NOW: u64 = 1_800_000_000_000_000_000;
const MIN: u64 = 60_000_000_000;

fn parse(query: &[(&'static str, &'static str)]) -> Result<TraceFilter, String> {
    trace_filter(query.iter().copied(), NOW)
}

#[test]
fn durations_have_units_and_bounds() {
    assert_eq!(parse_duration_ns("15m"), Some(15 * MIN));
    assert_eq!(parse_duration_ns("2h"), Some(120 * MIN));
    assert_eq!(parse_duration_ns("30s"), Some(MIN / 2));
    assert_eq!(parse_duration_ns("1d"), Some(1440 * MIN));
    for bad in [
        "",
        "15",
        "m",
        "0m",
        "-1h",
        "1.5h",
        "1w",
        "367d",
        "99999999999999999999d",
    ] {
        assert_eq!(parse_duration_ns(bad), None, "{bad}");
    }
}

#[test]
fn a_full_filter_parses() {
    let filter = parse(&[
        ("service", "shop.v1.OrderService"),
        ("method", "CreateOrder"),
        ("status", "not_found"),
        ("min_duration_ms", "2.5"),
        ("since", "15m"),
        ("limit", "20"),
        ("unknown", "ignored"),
    ])
    .unwrap();
    assert_eq!(filter.service, "shop.v1.OrderService");
    assert_eq!(filter.method, "CreateOrder");
    assert_eq!(filter.status, StatusFilter::Code(Code::NotFound));
    assert_eq!(filter.min_duration_ms, Some(2.5));
    assert_eq!(
        filter.range,
        TimeRange {
            from_ns: NOW - 15 * MIN,
            to_ns: NOW
        }
    );
    assert_eq!(filter.limit, 20);
    assert_eq!(filter.since, "15m");
    assert_eq!(parse(&[("limit", "9999")]).unwrap().limit, MAX_LIMIT);
}

#[test]
fn empty_form_fields_are_absent() {
    let filter = parse(&[
        ("service", ""),
        ("status", " "),
        ("since", ""),
        ("limit", ""),
    ])
    .unwrap();
    assert_eq!(filter, TraceFilter::recent(NOW));
}

#[test]
fn no_range_means_the_last_hour() {
    let filter = parse(&[("service", "svc")]).unwrap();
    assert_eq!(
        filter.range,
        TimeRange {
            from_ns: NOW - 60 * MIN,
            to_ns: NOW
        }
    );
    assert_eq!(filter.since, DEFAULT_SINCE, "the form shows the default");
    assert_eq!(
        TimeRange::default_window(NOW),
        TimeRange::last(parse_duration_ns(DEFAULT_SINCE).unwrap(), NOW)
    );
    // A range given any way replaces the default.
    assert_eq!(
        parse(&[("since", "5m")]).unwrap().range.from_ns,
        NOW - 5 * MIN
    );
    let from = parse(&[("from", "1000")]).unwrap();
    assert_eq!(from.range.from_ns, 1_000_000_000);
    assert_eq!(from.since, "", "from/to is no since");
    assert_eq!(parse(&[("to", "1000")]).unwrap().range.from_ns, 0);
}

#[test]
fn bad_values_name_the_parameter() {
    let cases: [(&[(&str, &str)], &str); 9] = [
        (
            &[("status", "broken")],
            "status: expected ok, error or a Connect code",
        ),
        (
            &[("min_duration_ms", "fast")],
            "min_duration_ms: expected a number",
        ),
        (&[("min_duration_ms", "-1")], "min_duration_ms"),
        (&[("min_duration_ms", "NaN")], "min_duration_ms"),
        (&[("limit", "0")], "limit: expected a whole number from 1"),
        (
            &[("limit", "lots")],
            "limit: expected a whole number from 1",
        ),
        (&[("since", "yesterday")], "since: expected a duration"),
        (&[("from", "1"), ("since", "1h")], "either since or from"),
        (&[("from", "2000"), ("to", "1000")], "from is after to"),
    ];
    for (query, expected) in cases {
        let error = parse(query).unwrap_err();
        assert!(error.contains(expected), "{query:?}: {error}");
    }
    assert!(parse(&[("to", "x")])
        .unwrap_err()
        .contains("to: expected Unix milliseconds"));
    let long = "x".repeat(300);
    let error = trace_filter([("service", long.as_str())], NOW).unwrap_err();
    assert!(error.contains("at most 256"));
}

#[test]
fn from_and_to_are_milliseconds() {
    let filter = parse(&[("from", "1000"), ("to", "3000")]).unwrap();
    assert_eq!(
        filter.range,
        TimeRange {
            from_ns: 1_000_000_000,
            to_ns: 3_000_000_000
        }
    );
    let open = parse(&[("from", "1000")]).unwrap().range;
    assert_eq!(open.to_ns, NOW);
    assert_eq!(open.seconds(), (NOW - 1_000_000_000) as f64 / 1e9);
}

#[test]
fn list_sql_binds_one_param_per_placeholder() {
    let placeholders = |sql: &str| {
        let mut found: Vec<usize> = sql
            .match_indices('?')
            .filter_map(|(i, _)| {
                let digits: String = sql[i + 1..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse().ok()
            })
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    };
    let (sql, params) = list_sql(&TraceFilter::recent(NOW));
    assert_eq!(
        params,
        [
            Param::Text(crate::otlp::pad_ns(NOW - 60 * MIN)),
            Param::Text(crate::otlp::pad_ns(NOW)),
            Param::Num(50.0)
        ],
        "no filter is still the last hour"
    );
    assert_eq!(placeholders(&sql), [1, 2, 3]);
    assert!(
        sql.contains("WHERE start_ns >= ?1 AND start_ns <= ?2"),
        "{sql}"
    );

    let filter = parse(&[
        ("service", "svc"),
        ("method", "M"),
        ("status", "unavailable"),
        ("min_duration_ms", "1.5"),
        ("since", "1h"),
    ])
    .unwrap();
    let (sql, params) = list_sql(&filter);
    assert_eq!(placeholders(&sql), (1..=params.len()).collect::<Vec<_>>());
    assert!(params.contains(&Param::Text("svc".into())));
    assert!(params.contains(&Param::Text("unavailable".into())));
    assert!(params.contains(&Param::Num(1_500_000.0)), "ms become ns");
    assert!(params.contains(&Param::Text(crate::otlp::pad_ns(NOW - 60 * MIN))));

    let (ok_sql, _) = list_sql(&parse(&[("status", "ok")]).unwrap());
    assert!(ok_sql.contains("AND MAX(s.failed) = 0"));
    let (error_sql, _) = list_sql(&parse(&[("status", "error")]).unwrap());
    assert!(error_sql.contains("AND MAX(s.failed) = 1"));
}
