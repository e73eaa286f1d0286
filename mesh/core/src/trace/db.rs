//! Database spans following OpenTelemetry's database conventions: one
//! CLIENT span per statement (or batch) under the current span, named
//! `<operation> <table>` (`SELECT products`), with `db.system`,
//! `db.query.text` (the statement as written, with placeholders — bound
//! values are never recorded), `db.operation.name` and, when the statement
//! names one table plainly, `db.collection.name`.
//!
//! The adapter that runs the query (e.g. `workmesh_worker::d1`) starts the
//! span with [`statement_span`] or [`batch_span`], records rows with
//! [`record_returned_rows`] / [`record_rows_written`] and ends it with
//! [`end_with_db_result`].
//!
//! ```
//! use workmesh::trace::{db, scope, Sampler, SpanKind, TraceCollector};
//! use workmesh::testing::ManualRuntime;
//!
//! let collector = TraceCollector::new(&ManualRuntime::default(), Sampler::ratio(1.0));
//! let server = collector.start_span("server", SpanKind::Server, None);
//! scope::with_span(&server.handle(), || {
//!     let span = db::statement_span("cloudflare_d1", "SELECT * FROM products WHERE sku = ?1").unwrap();
//!     db::record_returned_rows(&span, 1);
//!     db::end_with_db_result::<(), String>(span, &Ok(()));
//! });
//! server.end();
//! let spans = collector.drain();
//! assert_eq!(spans[1].name, "SELECT products");
//! ```

use std::borrow::Cow;

use super::scope;
use super::span::{ActiveSpan, SpanKind, SpanStatus};

/// Attribute keys of database spans.
pub mod attr {
    pub const DB_SYSTEM: &str = "db.system";
    pub const DB_QUERY_TEXT: &str = "db.query.text";
    pub const DB_OPERATION_NAME: &str = "db.operation.name";
    pub const DB_COLLECTION_NAME: &str = "db.collection.name";
    pub const DB_BATCH_SIZE: &str = "db.operation.batch.size";
    pub const DB_RETURNED_ROWS: &str = "db.response.returned_rows";
    /// Rows the statement changed (no standard key yet; D1 reports it).
    pub const DB_ROWS_WRITTEN: &str = "db.response.rows_written";
    pub const ERROR_TYPE: &str = "error.type";
}

/// The statement's operation (its first keyword, upper-cased) and the table
/// it names after `FROM` / `INTO` / `UPDATE`, when plain enough to tell.
pub fn parse_statement(statement: &str) -> (Option<String>, Option<String>) {
    let mut words = statement.split_whitespace();
    let operation = words
        .next()
        .filter(|word| word.chars().all(|c| c.is_ascii_alphabetic()))
        .map(str::to_ascii_uppercase);
    let marker = match operation.as_deref() {
        Some("SELECT") | Some("DELETE") => "FROM",
        Some("INSERT") | Some("REPLACE") => "INTO",
        Some("UPDATE") => "UPDATE",
        _ => return (operation, None),
    };
    let mut words = statement.split_whitespace().peekable();
    if marker != "UPDATE" {
        for word in words.by_ref() {
            if word.eq_ignore_ascii_case(marker) {
                break;
            }
        }
    } else {
        words.next();
        // `UPDATE OR REPLACE t`
        if words.peek().is_some_and(|w| w.eq_ignore_ascii_case("OR")) {
            words.next();
            words.next();
        }
    }
    let table = words.next().and_then(|word| {
        let name: String = word
            .trim_matches(|c| c == '"' || c == '`' || c == '[' || c == ']')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        (!name.is_empty()).then_some(name)
    });
    (operation, table)
}

/// An operation and a table, as [`parse_statement`] returns them.
type Parsed = (Option<String>, Option<String>);

fn start(name: String, system: &'static str) -> Option<ActiveSpan> {
    let parent = scope::current()?;
    let span = parent.child(name, SpanKind::Client);
    span.set_attribute(attr::DB_SYSTEM, system);
    Some(span)
}

/// A span for one statement under the current span; `None` outside a traced
/// request.
pub fn statement_span(system: &'static str, statement: &str) -> Option<ActiveSpan> {
    let (operation, table) = parse_statement(statement);
    let name = match (&operation, &table) {
        (Some(op), Some(table)) => format!("{op} {table}"),
        (Some(op), None) => op.clone(),
        _ => system.to_owned(),
    };
    let span = start(name, system)?;
    if span.is_recording() {
        span.set_attribute(attr::DB_QUERY_TEXT, statement.to_owned());
        if let Some(op) = operation {
            span.set_attribute(attr::DB_OPERATION_NAME, op);
        }
        if let Some(table) = table {
            span.set_attribute(attr::DB_COLLECTION_NAME, table);
        }
    }
    Some(span)
}

/// A span for a batch (run by D1 as one transaction) under the current span:
/// `db.operation.name` is `BATCH <op>` when every statement has the same
/// operation, else `BATCH`; the statements are joined with `;` in
/// `db.query.text`; the table is named when they all share one.
pub fn batch_span<'a>(
    system: &'static str,
    statements: impl IntoIterator<Item = &'a str>,
) -> Option<ActiveSpan> {
    let statements: Vec<&str> = statements.into_iter().collect();
    let parsed: Vec<_> = statements.iter().map(|s| parse_statement(s)).collect();
    let same = |pick: fn(&Parsed) -> &Option<String>| {
        let first = parsed.first().map(pick)?.clone()?;
        parsed
            .iter()
            .all(|p| pick(p).as_ref() == Some(&first))
            .then_some(first)
    };
    let operation = match same(|p| &p.0) {
        Some(op) => format!("BATCH {op}"),
        None => "BATCH".to_owned(),
    };
    let table = same(|p| &p.1);
    let name = match &table {
        Some(table) => format!("{operation} {table}"),
        None => operation.clone(),
    };
    let span = start(name, system)?;
    if span.is_recording() {
        span.set_attribute(attr::DB_QUERY_TEXT, statements.join("; "));
        span.set_attribute(attr::DB_OPERATION_NAME, operation);
        span.set_attribute(attr::DB_BATCH_SIZE, statements.len());
        if let Some(table) = table {
            span.set_attribute(attr::DB_COLLECTION_NAME, table);
        }
    }
    Some(span)
}

pub fn record_returned_rows(span: &ActiveSpan, rows: usize) {
    span.set_attribute(attr::DB_RETURNED_ROWS, rows);
}

pub fn record_rows_written(span: &ActiveSpan, rows: usize) {
    span.set_attribute(attr::DB_ROWS_WRITTEN, rows);
}

/// Ends the span; a failed query gets status `Error` with the database's
/// message and `error.type`.
pub fn end_with_db_result<T, E: std::fmt::Display>(span: ActiveSpan, result: &Result<T, E>) {
    if let Err(error) = result {
        span.set_attribute(attr::ERROR_TYPE, Cow::Borrowed("db_error"));
        span.set_status(SpanStatus::Error {
            message: error.to_string(),
        });
    }
    span.end();
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testing::ManualRuntime;
    use crate::trace::{AttrValue, Sampler, SpanData, TraceCollector};

    fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a AttrValue> {
        span.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    #[test]
    fn parses_operation_and_table() {
        let cases = [
            (
                "SELECT a, b FROM products WHERE sku = ?1",
                "SELECT",
                Some("products"),
            ),
            (
                "select * from \"orders\" where id = ?",
                "SELECT",
                Some("orders"),
            ),
            (
                "INSERT INTO order_items (order_id) VALUES (?1)",
                "INSERT",
                Some("order_items"),
            ),
            ("insert into t(a) values (1)", "INSERT", Some("t")),
            ("UPDATE orders SET status = ?1", "UPDATE", Some("orders")),
            (
                "UPDATE OR REPLACE orders SET x = 1",
                "UPDATE",
                Some("orders"),
            ),
            ("DELETE FROM sessions", "DELETE", Some("sessions")),
            ("SELECT 1", "SELECT", None),
            ("SELECT * FROM (SELECT 1)", "SELECT", None),
            ("PRAGMA table_list", "PRAGMA", None),
        ];
        for (sql, op, table) in cases {
            let (got_op, got_table) = parse_statement(sql);
            assert_eq!(got_op.as_deref(), Some(op), "{sql}");
            assert_eq!(got_table.as_deref(), table, "{sql}");
        }
        assert_eq!(parse_statement("  "), (None, None));
        assert_eq!(parse_statement("-- x\nSELECT 1").0, None);
    }

    #[test]
    fn statement_spans_are_children_of_the_current_span_with_db_attributes() {
        let runtime = ManualRuntime::default();
        let collector = TraceCollector::new(&runtime, Sampler::ratio(1.0));
        assert!(
            statement_span("cloudflare_d1", "SELECT 1").is_none(),
            "no current span"
        );
        let server = collector.start_span("server", SpanKind::Server, None);
        scope::with_span(&server.handle(), || {
            let ok = statement_span("cloudflare_d1", "SELECT sku FROM products WHERE sku = ?1")
                .expect("a span");
            runtime.advance(Duration::from_millis(7));
            record_returned_rows(&ok, 1);
            end_with_db_result::<(), String>(ok, &Ok(()));
            let failed = statement_span("cloudflare_d1", "INSERT INTO orders (id) VALUES (?1)")
                .expect("a span");
            end_with_db_result::<(), _>(failed, &Err("UNIQUE constraint failed"));
        });
        server.end();
        let spans = collector.drain();
        let (select, insert) = (&spans[1], &spans[2]);
        assert_eq!(select.name, "SELECT products");
        assert_eq!(select.kind, SpanKind::Client);
        assert_eq!(select.parent_span_id, Some(spans[0].span_id));
        assert_eq!(
            select.end.saturating_duration_since(select.start),
            Duration::from_millis(7)
        );
        assert_eq!(
            attribute(select, attr::DB_SYSTEM),
            Some(&"cloudflare_d1".into())
        );
        assert_eq!(
            attribute(select, attr::DB_QUERY_TEXT),
            Some(&AttrValue::from("SELECT sku FROM products WHERE sku = ?1"))
        );
        assert_eq!(
            attribute(select, attr::DB_OPERATION_NAME),
            Some(&"SELECT".into())
        );
        assert_eq!(
            attribute(select, attr::DB_COLLECTION_NAME),
            Some(&"products".into())
        );
        assert_eq!(
            attribute(select, attr::DB_RETURNED_ROWS),
            Some(&AttrValue::Int(1))
        );
        assert_eq!(select.status, SpanStatus::Unset);
        assert_eq!(insert.name, "INSERT orders");
        assert_eq!(
            insert.status,
            SpanStatus::Error {
                message: "UNIQUE constraint failed".into()
            }
        );
    }

    #[test]
    fn batch_spans_name_the_shared_operation_and_table() {
        let runtime = ManualRuntime::default();
        let collector = TraceCollector::new(&runtime, Sampler::ratio(1.0));
        let server = collector.start_span("server", SpanKind::Server, None);
        scope::with_span(&server.handle(), || {
            let span = batch_span(
                "cloudflare_d1",
                [
                    "INSERT INTO orders (a) VALUES (?1)",
                    "INSERT INTO order_items (b) VALUES (?1)",
                ],
            )
            .expect("a span");
            record_rows_written(&span, 3);
            span.end();
            batch_span("cloudflare_d1", ["DELETE FROM t", "DELETE FROM t"])
                .expect("a span")
                .end();
        });
        let spans = collector.drain();
        assert_eq!(spans[1].name, "BATCH INSERT");
        assert_eq!(
            attribute(&spans[1], attr::DB_BATCH_SIZE),
            Some(&AttrValue::Int(2))
        );
        assert_eq!(
            attribute(&spans[1], attr::DB_ROWS_WRITTEN),
            Some(&AttrValue::Int(3))
        );
        assert!(attribute(&spans[1], attr::DB_COLLECTION_NAME).is_none());
        assert_eq!(
            attribute(&spans[1], attr::DB_QUERY_TEXT),
            Some(&AttrValue::from(
                "INSERT INTO orders (a) VALUES (?1); INSERT INTO order_items (b) VALUES (?1)"
            ))
        );
        assert_eq!(spans[2].name, "BATCH DELETE t");
    }
}
