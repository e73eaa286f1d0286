//! The orders service: takes orders, prices them through the catalog service
//! (a typed client over a service binding), and records them in its own D1.
//!
//! Each new order is announced on the `order-events` queue, which this
//! Worker also consumes (the "confirmation"): the trace context rides in the
//! message, so the consumer's work appears in the CreateOrder trace.
//!
//! `CreateOrder` is `IDEMPOTENT` in the contract: the client's `request_id` is
//! its idempotency key, so the mesh may retry it and a repeated key returns
//! the order the first call created.

mod money;
mod store;

use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};
use shop_contracts::v1::catalog_service_client::CatalogServiceClient;
use shop_contracts::v1::catalog_service_methods;
use shop_contracts::v1::order_service_server::{OrderService, OrderServiceServer};
use shop_contracts::v1::{
    CreateOrderRequest, CreateOrderResponse, GetOrderRequest, GetOrderResponse, GetProductRequest,
    LineItem, ListOrdersRequest, ListOrdersResponse, Money, Order, OrderStatus,
};
use tracing::Instrument;
use worker::{event, Context, Env, MessageBatch};
use workmesh::codegen::{Request, Response};
use workmesh::trace::messaging::Traced;
use workmesh::{Code, ConnectError, Deadline, Runtime};
use workmesh_worker::queue::TracedQueue;
use workmesh_worker::{mesh_transport, MeshTransport, Router, TracedD1, WorkerRuntime};

use crate::store::OrderStore;

/// The most line items one order may have, and the most of one item.
const MAX_ITEMS: usize = 100;
const MAX_QUANTITY: u32 = 1_000;

#[event(fetch)]
async fn fetch(req: worker::Request, env: Env, ctx: Context) -> worker::Result<worker::Response> {
    // Calls to catalog go through the mesh's resilience stack: deadlines,
    // retries within a budget, a circuit breaker, load shedding.
    let catalog = match mesh_transport(&env, "CATALOG", catalog_service_methods::SERVICE_NAME) {
        Ok(transport) => CatalogServiceClient::new(transport),
        Err(error) => return workmesh_worker::error_to_worker(&error),
    };
    let orders = Orders {
        store: OrderStore::new(TracedD1::new(env.d1("DB")?)),
        catalog,
        // Optional: without the producer binding, orders are just not announced.
        events: TracedQueue::new(&env, EVENTS_BINDING, EVENTS_QUEUE).ok(),
    };
    let router = Router::new().add(OrderServiceServer::new(orders));
    workmesh_worker::serve(&router, req, &env, &ctx).await
}

/// Consumes `order-events`: the sender's trace continues here, so the
/// confirmation's D1 lookup shows up under the CreateOrder that caused it.
#[event(queue)]
async fn queue(
    batch: MessageBatch<Traced<OrderEvent>>,
    env: Env,
    ctx: Context,
) -> worker::Result<()> {
    let store = OrderStore::new(TracedD1::new(env.d1("DB")?));
    workmesh_worker::queue::consume(batch, &env, &ctx, |event: OrderEvent| {
        let store = &store;
        async move {
            let order = store.get(&event.order_id).await?.ok_or_else(|| {
                ConnectError::not_found(format!("no order {:?}", event.order_id))
            })?;
            tracing::info!(order_id = %order.order_id, customer_id = %order.customer_id, "order confirmation sent");
            Ok(())
        }
    })
    .await
}

/// The producer binding and queue that announce new orders.
const EVENTS_BINDING: &str = "ORDER_EVENTS";
const EVENTS_QUEUE: &str = "order-events";

/// What `order-events` carries.
#[derive(Clone, Serialize, Deserialize)]
struct OrderEvent {
    order_id: String,
}

struct Orders {
    store: OrderStore,
    catalog: CatalogServiceClient<MeshTransport>,
    events: Option<TracedQueue>,
}

impl OrderService for Orders {
    async fn create_order(
        &self,
        request: Request<CreateOrderRequest>,
    ) -> Result<Response<CreateOrderResponse>, ConnectError> {
        let deadline = request.deadline();
        let request = request.into_inner();
        validate(&request)?;

        if let Some(order) = self
            .store
            .find_by_request_id(&request.customer_id, &request.request_id)
            .await?
        {
            return Ok(Response::new(CreateOrderResponse { order: Some(order) }));
        }

        // A plain `tracing` span: the catalog calls become its children.
        let prices = try_join_all(
            request
                .items
                .iter()
                .map(|item| self.price_of(item, deadline)),
        )
        .instrument(tracing::info_span!(
            "price_items",
            items = request.items.len()
        ))
        .await?;
        let total = money::total(
            prices
                .iter()
                .zip(&request.items)
                .map(|(price, item)| (price, item.quantity)),
        )?;
        tracing::info!(currency = %total.currency_code, units = total.units, "order priced");
        let order = Order {
            order_id: uuid::Uuid::new_v4().to_string(),
            customer_id: request.customer_id,
            items: request.items,
            total: Some(total),
            status: OrderStatus::Confirmed as i32,
            created_at_ms: WorkerRuntime.now().since_epoch().as_millis() as i64,
        };
        let order = self.store.insert(order, &request.request_id).await?;
        if let Some(events) = &self.events {
            // The order is stored: a failed announcement must not fail it.
            let event = OrderEvent {
                order_id: order.order_id.clone(),
            };
            if let Err(error) = events.send(event).await {
                tracing::warn!(%error, "order event not sent");
            }
        }
        Ok(Response::new(CreateOrderResponse { order: Some(order) }))
    }

    async fn get_order(
        &self,
        request: Request<GetOrderRequest>,
    ) -> Result<Response<GetOrderResponse>, ConnectError> {
        let order_id = request.get_ref().order_id.trim();
        if order_id.is_empty() {
            return Err(ConnectError::invalid_argument("order_id is required"));
        }
        match self.store.get(order_id).await? {
            Some(order) => Ok(Response::new(GetOrderResponse { order: Some(order) })),
            None => Err(ConnectError::not_found(format!("no order {order_id:?}"))),
        }
    }

    async fn list_orders(
        &self,
        request: Request<ListOrdersRequest>,
    ) -> Result<Response<ListOrdersResponse>, ConnectError> {
        let request = request.into_inner();
        if request.customer_id.trim().is_empty() {
            return Err(ConnectError::invalid_argument("customer_id is required"));
        }
        let (orders, next_page_token) = self
            .store
            .list(&request.customer_id, request.page_size, &request.page_token)
            .await?;
        Ok(Response::new(ListOrdersResponse {
            orders,
            next_page_token,
        }))
    }
}

impl Orders {
    /// The unit price of one line item, asked of the catalog within our own deadline.
    async fn price_of(
        &self,
        item: &LineItem,
        deadline: Option<Deadline>,
    ) -> Result<Money, ConnectError> {
        let request = Request::new(GetProductRequest {
            sku: item.sku.clone(),
        })
        .with_deadline(deadline);
        let product = match self.catalog.get_product(request).await {
            Ok(response) => response.into_inner().product,
            Err(e) if e.code == Code::NotFound => {
                return Err(ConnectError::invalid_argument(format!(
                    "unknown sku {:?}",
                    item.sku
                )))
            }
            Err(e) => return Err(e),
        };
        product.and_then(|p| p.price).ok_or_else(|| {
            ConnectError::internal(format!("catalog returned no price for {:?}", item.sku))
        })
    }
}

fn validate(request: &CreateOrderRequest) -> Result<(), ConnectError> {
    if request.customer_id.trim().is_empty() {
        return Err(ConnectError::invalid_argument("customer_id is required"));
    }
    if request.request_id.trim().is_empty() {
        return Err(ConnectError::invalid_argument(
            "request_id is required: it is the idempotency key that makes CreateOrder safe to retry",
        ));
    }
    if request.items.is_empty() || request.items.len() > MAX_ITEMS {
        return Err(ConnectError::invalid_argument(format!(
            "an order needs 1 to {MAX_ITEMS} items"
        )));
    }
    for (i, item) in request.items.iter().enumerate() {
        if item.sku.trim().is_empty() {
            return Err(ConnectError::invalid_argument(format!(
                "items[{i}].sku is required"
            )));
        }
        if item.quantity == 0 || item.quantity > MAX_QUANTITY {
            return Err(ConnectError::invalid_argument(format!(
                "items[{i}].quantity must be 1 to {MAX_QUANTITY}"
            )));
        }
    }
    Ok(())
}
