//! Orders in D1. Every write is one D1 batch, which D1 runs as a transaction:
//! an order is stored with all its items or not at all.

use serde::Deserialize;
use shop_contracts::v1::{LineItem, Money, Order};
use worker::wasm_bindgen::JsValue;
use workmesh::ConnectError;
use workmesh_worker::TracedD1;

const DEFAULT_PAGE_SIZE: u32 = 20;
const MAX_PAGE_SIZE: u32 = 100;

/// Every query gets a span under the current span.
pub struct OrderStore {
    db: TracedD1,
}

#[derive(Deserialize)]
struct OrderRow {
    order_id: String,
    customer_id: String,
    status: i32,
    currency_code: String,
    total_units: i64,
    total_nanos: i32,
    created_at_ms: i64,
}

#[derive(Deserialize)]
struct ItemRow {
    sku: String,
    quantity: u32,
}

const SELECT_ORDER: &str =
    "SELECT order_id, customer_id, status, currency_code, total_units, total_nanos, created_at_ms FROM orders";

impl OrderStore {
    pub fn new(db: TracedD1) -> Self {
        OrderStore { db }
    }

    pub async fn get(&self, order_id: &str) -> Result<Option<Order>, ConnectError> {
        self.find_one("order_id = ?1", &[order_id.into()]).await
    }

    pub async fn find_by_request_id(
        &self,
        customer_id: &str,
        request_id: &str,
    ) -> Result<Option<Order>, ConnectError> {
        self.find_one(
            "customer_id = ?1 AND request_id = ?2",
            &[customer_id.into(), request_id.into()],
        )
        .await
    }

    /// The one order matching `condition` (a WHERE clause on `orders`), with its items.
    async fn find_one(
        &self,
        condition: &str,
        bindings: &[JsValue],
    ) -> Result<Option<Order>, ConnectError> {
        let row: Option<OrderRow> = self
            .db
            .prepare(format!("{SELECT_ORDER} WHERE {condition}"))
            .bind(bindings)
            .map_err(db_error)?
            .first()
            .await
            .map_err(db_error)?;
        match row {
            Some(row) => Ok(Some(self.with_items(row).await?)),
            None => Ok(None),
        }
    }

    /// Stores a new order. If a concurrent call with the same idempotency key
    /// won the race, returns the order that call stored instead.
    pub async fn insert(&self, order: Order, request_id: &str) -> Result<Order, ConnectError> {
        let total = order.total.clone().unwrap_or_default();
        let mut statements = vec![self
            .db
            .prepare(
                "INSERT INTO orders (order_id, customer_id, request_id, status, currency_code, total_units, total_nanos, created_at_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .bind(&[
                order.order_id.as_str().into(),
                order.customer_id.as_str().into(),
                request_id.into(),
                order.status.into(),
                total.currency_code.as_str().into(),
                (total.units as f64).into(),
                total.nanos.into(),
                (order.created_at_ms as f64).into(),
            ])
            .map_err(db_error)?];
        for (position, item) in order.items.iter().enumerate() {
            statements.push(
                self.db
                    .prepare("INSERT INTO order_items (order_id, position, sku, quantity) VALUES (?1, ?2, ?3, ?4)")
                    .bind(&[
                        order.order_id.as_str().into(),
                        (position as u32).into(),
                        item.sku.as_str().into(),
                        item.quantity.into(),
                    ])
                    .map_err(db_error)?,
            );
        }
        match self.db.batch(statements).await {
            Ok(_) => Ok(order),
            Err(e) if e.to_string().contains("UNIQUE") => self
                .find_by_request_id(&order.customer_id, request_id)
                .await?
                .ok_or_else(|| {
                    ConnectError::aborted(format!(
                        "order {request_id:?} conflicted and vanished: retry"
                    ))
                }),
            Err(e) => Err(db_error(e)),
        }
    }

    /// A customer's orders, newest first. The page token is the position after
    /// the last order returned (`<created_at_ms>.<order_id>`).
    pub async fn list(
        &self,
        customer_id: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<Order>, String), ConnectError> {
        let page_size =
            shop_contracts::paging::page_size(page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
        let (after_ms, after_id) = parse_page_token(page_token)?;
        let rows: Vec<OrderRow> = self
            .db
            .prepare(format!(
                "{SELECT_ORDER} WHERE customer_id = ?1 AND (created_at_ms < ?2 OR (created_at_ms = ?2 AND order_id < ?3)) \
                 ORDER BY created_at_ms DESC, order_id DESC LIMIT ?4"
            ))
            .bind(&[customer_id.into(), (after_ms as f64).into(), after_id.as_str().into(), (page_size + 1).into()])
            .map_err(db_error)?
            .all()
            .await
            .map_err(db_error)?;
        let more = rows.len() > page_size as usize;
        let mut orders = Vec::with_capacity(rows.len());
        for row in rows.into_iter().take(page_size as usize) {
            orders.push(self.with_items(row).await?);
        }
        let next = match orders.last() {
            Some(last) if more => format!("{}.{}", last.created_at_ms, last.order_id),
            _ => String::new(),
        };
        Ok((orders, next))
    }

    async fn with_items(&self, row: OrderRow) -> Result<Order, ConnectError> {
        let items: Vec<ItemRow> = self
            .db
            .prepare("SELECT sku, quantity FROM order_items WHERE order_id = ?1 ORDER BY position")
            .bind(&[row.order_id.as_str().into()])
            .map_err(db_error)?
            .all()
            .await
            .map_err(db_error)?;
        Ok(Order {
            order_id: row.order_id,
            customer_id: row.customer_id,
            items: items
                .into_iter()
                .map(|i| LineItem {
                    sku: i.sku,
                    quantity: i.quantity,
                })
                .collect(),
            total: Some(Money {
                currency_code: row.currency_code,
                units: row.total_units,
                nanos: row.total_nanos,
            }),
            status: row.status,
            created_at_ms: row.created_at_ms,
        })
    }
}

/// The empty token starts at the newest order.
fn parse_page_token(token: &str) -> Result<(i64, String), ConnectError> {
    if token.is_empty() {
        return Ok((i64::MAX, String::new()));
    }
    let bad = || ConnectError::invalid_argument("page_token is not one this service issued");
    let (ms, id) = token.split_once('.').ok_or_else(bad)?;
    Ok((ms.parse().map_err(|_| bad())?, id.to_string()))
}

fn db_error(e: worker::Error) -> ConnectError {
    ConnectError::unavailable(format!("orders database: {e}"))
}
