//! D1 with a span per query.
//!
//! [`TracedD1`] wraps a `worker::D1Database`: statements prepared through it
//! remember their SQL, and running one (`first`, `all`, `run`, or a
//! [`batch`](TracedD1::batch)) records a CLIENT span under the current span
//! (the request's SERVER span, or a handler's own span) following
//! OpenTelemetry's database conventions — see [`workmesh::trace::db`]:
//! `db.system = "cloudflare_d1"`, `db.query.text` (the SQL with its
//! placeholders; bound values are never recorded), `db.operation.name`,
//! `db.collection.name`, rows returned or written, and an error status when
//! D1 fails.
//!
//! Durations are honest: the Workers clock advances across I/O, and a D1
//! query is I/O, so the span covers the round trip to the database.
//!
//! ```ignore
//! let db = TracedD1::new(env.d1("DB")?);
//! let row: Option<ProductRow> = db
//!     .prepare("SELECT * FROM products WHERE sku = ?1")
//!     .bind(&[sku.into()])?
//!     .first()
//!     .await?;
//! ```

use serde::de::DeserializeOwned;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, D1Result};
use workmesh::trace::db;

/// `db.system` of Cloudflare D1.
pub const D1_SYSTEM: &str = "cloudflare_d1";

/// A D1 database whose queries are traced.
pub struct TracedD1 {
    db: D1Database,
}

/// A prepared statement that knows its SQL.
pub struct Statement {
    sql: String,
    statement: D1PreparedStatement,
}

impl TracedD1 {
    pub fn new(db: D1Database) -> Self {
        TracedD1 { db }
    }

    /// The underlying database, for what this wrapper does not cover.
    pub fn inner(&self) -> &D1Database {
        &self.db
    }

    pub fn prepare(&self, sql: impl Into<String>) -> Statement {
        let sql = sql.into();
        let statement = self.db.prepare(sql.as_str());
        Statement { sql, statement }
    }

    /// Runs `statements` as one D1 batch (one transaction) under one span;
    /// rows written are summed over the statements.
    pub async fn batch(&self, statements: Vec<Statement>) -> worker::Result<Vec<D1Result>> {
        let span = db::batch_span(D1_SYSTEM, statements.iter().map(|s| s.sql.as_str()));
        let result = self
            .db
            .batch(statements.into_iter().map(|s| s.statement).collect())
            .await;
        if let (Some(span), Ok(results)) = (&span, &result) {
            let written = results
                .iter()
                .filter_map(|r| r.meta().ok().flatten())
                .filter_map(|meta| meta.rows_written.or(meta.changes))
                .sum();
            db::record_rows_written(span, written);
        }
        finish(span, &result);
        result
    }
}

impl Statement {
    /// Binds the `?N` parameters (their values are not recorded).
    pub fn bind(self, values: &[JsValue]) -> worker::Result<Self> {
        Ok(Statement {
            sql: self.sql,
            statement: self.statement.bind(values)?,
        })
    }

    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The first row, if any.
    pub async fn first<T: DeserializeOwned>(&self) -> worker::Result<Option<T>> {
        let span = db::statement_span(D1_SYSTEM, &self.sql);
        let result = self.statement.first::<T>(None).await;
        if let (Some(span), Ok(row)) = (&span, &result) {
            db::record_returned_rows(span, usize::from(row.is_some()));
        }
        finish(span, &result);
        result
    }

    /// Every row.
    pub async fn all<T: DeserializeOwned>(&self) -> worker::Result<Vec<T>> {
        let span = db::statement_span(D1_SYSTEM, &self.sql);
        let result = match self.statement.all().await {
            Ok(result) => result.results::<T>(),
            Err(error) => Err(error),
        };
        if let (Some(span), Ok(rows)) = (&span, &result) {
            db::record_returned_rows(span, rows.len());
        }
        finish(span, &result);
        result
    }

    /// Runs a statement that returns no rows; records the rows it wrote.
    pub async fn run(&self) -> worker::Result<D1Result> {
        let span = db::statement_span(D1_SYSTEM, &self.sql);
        let result = self.statement.run().await;
        if let (Some(span), Ok(result)) = (&span, &result) {
            if let Some(meta) = result.meta().ok().flatten() {
                db::record_rows_written(span, meta.rows_written.or(meta.changes).unwrap_or(0));
            }
        }
        finish(span, &result);
        result
    }
}

fn finish<T>(span: Option<workmesh::trace::ActiveSpan>, result: &worker::Result<T>) {
    if let Some(span) = span {
        db::end_with_db_result(span, result);
    }
}
