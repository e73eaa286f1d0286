//! Generated servers and clients, end to end in one process: a typed client,
//! the Connect wire format (proto and JSON), the router, the server adapter,
//! and a handwritten implementation of the generated trait.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use bytes::Bytes;
use http::HeaderValue;
use shop_contracts::v1::catalog_service_client::CatalogServiceClient;
use shop_contracts::v1::catalog_service_server::{CatalogService, CatalogServiceServer};
use shop_contracts::v1::order_service_client::OrderServiceClient;
use shop_contracts::v1::order_service_server::{OrderService, OrderServiceServer};
use shop_contracts::v1::*;
use workmesh::client::{Client, RouterTransport};
use workmesh::message::{Request, Response};
use workmesh::proto::v1::health_client::HealthClient;
use workmesh::proto::v1::health_server::{Health, HealthServer};
use workmesh::proto::v1::{CheckRequest, CheckResponse, ServingStatus};
use workmesh::protocol::{into_result, Encoding};
use workmesh::server::{Router, ServiceHandler, UnaryCall};
use workmesh::{Code, ConnectError, Idempotency, MethodDescriptor, TokioRuntime};

fn eur(units: i64) -> Money {
    Money {
        currency_code: "EUR".into(),
        units,
        nanos: 0,
    }
}

/// A catalog kept in SKU order.
struct Catalog {
    products: Vec<Product>,
}

impl Catalog {
    fn new() -> Self {
        let product = |sku: &str, units| Product {
            sku: sku.into(),
            name: sku.to_uppercase(),
            description: String::new(),
            price: Some(eur(units)),
        };
        Catalog {
            products: vec![
                product("coffee", 4),
                product("jam", 3),
                product("scone", 2),
                product("tea", 5),
            ],
        }
    }
}

impl CatalogService for Catalog {
    async fn get_product(
        &self,
        request: Request<GetProductRequest>,
    ) -> Result<Response<GetProductResponse>, ConnectError> {
        let echo = request.metadata().get("x-request-id").cloned();
        let sku = &request.get_ref().sku;
        let product = self.products.iter().find(|p| &p.sku == sku).cloned();
        let product =
            product.ok_or_else(|| ConnectError::not_found(format!("no product {sku:?}")))?;
        let mut response = Response::new(GetProductResponse {
            product: Some(product),
        });
        if let Some(id) = echo {
            response.metadata_mut().insert("x-request-id", id);
        }
        Ok(response)
    }

    async fn list_products(
        &self,
        request: Request<ListProductsRequest>,
    ) -> Result<Response<ListProductsResponse>, ConnectError> {
        let ListProductsRequest {
            page_size,
            page_token,
        } = request.into_inner();
        let size = if page_size > 0 { page_size as usize } else { 2 };
        let rest: Vec<_> = self
            .products
            .iter()
            .filter(|p| p.sku > page_token)
            .cloned()
            .collect();
        let products: Vec<_> = rest.iter().take(size).cloned().collect();
        let next_page_token = match (rest.len() > size, products.last()) {
            (true, Some(last)) => last.sku.clone(),
            _ => String::new(),
        };
        Ok(Response::new(ListProductsResponse {
            products,
            next_page_token,
        }))
    }
}

/// Orders in memory; `request_id` makes creation idempotent.
#[derive(Default)]
struct Orders {
    by_request: RefCell<HashMap<String, String>>,
    orders: RefCell<Vec<Order>>,
    next_id: Cell<u32>,
}

impl OrderService for Orders {
    async fn create_order(
        &self,
        request: Request<CreateOrderRequest>,
    ) -> Result<Response<CreateOrderResponse>, ConnectError> {
        let CreateOrderRequest {
            customer_id,
            items,
            request_id,
        } = request.into_inner();
        if items.is_empty() {
            return Err(ConnectError::invalid_argument(
                "an order needs at least one item",
            ));
        }
        if let Some(order_id) = self.by_request.borrow().get(&request_id) {
            let order = self
                .orders
                .borrow()
                .iter()
                .find(|o| &o.order_id == order_id)
                .cloned();
            return Ok(Response::new(CreateOrderResponse { order }));
        }
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        let units = items.iter().map(|item| i64::from(item.quantity)).sum();
        let order = Order {
            order_id: format!("o-{id}"),
            customer_id,
            items,
            total: Some(eur(units)),
            status: OrderStatus::Pending as i32,
            created_at_ms: i64::from(id),
        };
        self.by_request
            .borrow_mut()
            .insert(request_id, order.order_id.clone());
        self.orders.borrow_mut().push(order.clone());
        Ok(Response::new(CreateOrderResponse { order: Some(order) }))
    }

    async fn get_order(
        &self,
        request: Request<GetOrderRequest>,
    ) -> Result<Response<GetOrderResponse>, ConnectError> {
        let id = &request.get_ref().order_id;
        let order = self
            .orders
            .borrow()
            .iter()
            .find(|o| &o.order_id == id)
            .cloned();
        match order {
            Some(order) => Ok(Response::new(GetOrderResponse { order: Some(order) })),
            None => Err(ConnectError::not_found(format!("no order {id:?}"))),
        }
    }

    async fn list_orders(
        &self,
        request: Request<ListOrdersRequest>,
    ) -> Result<Response<ListOrdersResponse>, ConnectError> {
        let customer = &request.get_ref().customer_id;
        let mut orders: Vec<_> = self
            .orders
            .borrow()
            .iter()
            .filter(|o| &o.customer_id == customer)
            .cloned()
            .collect();
        orders.reverse();
        Ok(Response::new(ListOrdersResponse {
            orders,
            next_page_token: String::new(),
        }))
    }
}

fn shop() -> RouterTransport<TokioRuntime> {
    let router = Router::new()
        .add(CatalogServiceServer::new(Catalog::new()))
        .add(OrderServiceServer::new(Orders::default()));
    RouterTransport::new(router, TokioRuntime::default())
}

fn line(sku: &str, quantity: u32) -> LineItem {
    LineItem {
        sku: sku.into(),
        quantity,
    }
}

#[tokio::test]
async fn get_product_over_proto_and_json() {
    for encoding in [Encoding::Proto, Encoding::Json] {
        let catalog =
            CatalogServiceClient::from_client(Client::new(shop()).with_encoding(encoding));
        let response = catalog
            .get_product(GetProductRequest { sku: "tea".into() })
            .await
            .expect("found");
        let product = response.into_inner().product.expect("product");
        assert_eq!(
            (product.name.as_str(), product.price),
            ("TEA", Some(eur(5))),
            "{encoding:?}"
        );
    }
}

#[tokio::test]
async fn handler_errors_reach_the_client_as_connect_errors() {
    let catalog = CatalogServiceClient::new(shop());
    let error = catalog
        .get_product(GetProductRequest {
            sku: "caviar".into(),
        })
        .await
        .expect_err("not found");
    assert_eq!(error.code, Code::NotFound);
    assert_eq!(error.message, "no product \"caviar\"");

    let orders = OrderServiceClient::new(shop());
    let error = orders
        .create_order(CreateOrderRequest::default())
        .await
        .expect_err("no items");
    assert_eq!(error.code, Code::InvalidArgument);
}

#[tokio::test]
async fn request_and_response_metadata_travel_with_the_call() {
    let catalog = CatalogServiceClient::new(shop());
    let mut request = Request::new(GetProductRequest { sku: "jam".into() });
    request
        .metadata_mut()
        .insert("x-request-id", HeaderValue::from_static("r-42"));
    let response = catalog.get_product(request).await.expect("found");
    assert_eq!(
        response.metadata().get("x-request-id"),
        Some(&HeaderValue::from_static("r-42"))
    );
}

#[tokio::test]
async fn pages_cover_the_catalog_once() {
    let catalog = CatalogServiceClient::new(shop());
    let (mut skus, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let page = catalog
            .list_products(ListProductsRequest {
                page_size: 3,
                page_token: token,
            })
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        skus.extend(page.products.into_iter().map(|p| p.sku));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(skus, ["coffee", "jam", "scone", "tea"]);
    assert_eq!(pages, 2);
}

#[tokio::test]
async fn a_repeated_request_id_returns_the_first_order() {
    let orders = OrderServiceClient::new(shop());
    let create = |request_id: &str| CreateOrderRequest {
        customer_id: "c-1".into(),
        items: vec![line("tea", 2), line("scone", 1)],
        request_id: request_id.into(),
    };
    let first = orders
        .create_order(create("k-1"))
        .await
        .expect("created")
        .into_inner()
        .order
        .expect("order");
    let again = orders
        .create_order(create("k-1"))
        .await
        .expect("replayed")
        .into_inner()
        .order
        .expect("order");
    let other = orders
        .create_order(create("k-2"))
        .await
        .expect("created")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(again, first);
    assert_ne!(other.order_id, first.order_id);
    assert_eq!(first.total, Some(eur(3)));

    let fetched = orders
        .get_order(GetOrderRequest {
            order_id: first.order_id.clone(),
        })
        .await
        .expect("found");
    assert_eq!(fetched.into_inner().order, Some(first.clone()));
    let listed = orders
        .list_orders(ListOrdersRequest {
            customer_id: "c-1".into(),
            ..Default::default()
        })
        .await
        .expect("listed");
    let ids: Vec<_> = listed
        .into_inner()
        .orders
        .into_iter()
        .map(|o| o.order_id)
        .collect();
    assert_eq!(ids, [other.order_id, first.order_id]);
}

#[tokio::test]
async fn a_service_the_router_does_not_serve_is_unimplemented() {
    let catalog_only = RouterTransport::new(
        Router::new().add(CatalogServiceServer::new(Catalog::new())),
        TokioRuntime::default(),
    );
    let orders = OrderServiceClient::new(catalog_only);
    let error = orders
        .get_order(GetOrderRequest::default())
        .await
        .expect_err("not served");
    assert_eq!(error.code, Code::Unimplemented);
}

#[tokio::test]
async fn the_server_adapter_describes_its_service_and_refuses_unknown_methods() {
    static NOPE: MethodDescriptor = MethodDescriptor {
        service: catalog_service_methods::SERVICE_NAME,
        method: "Nope",
        idempotency: Idempotency::Unknown,
    };
    let server = CatalogServiceServer::new(Catalog::new());
    assert_eq!(server.name(), "shop.v1.CatalogService");
    assert_eq!(server.methods(), catalog_service_methods::ALL);
    let error = server
        .call(&NOPE, UnaryCall::new(&NOPE, Encoding::Proto, Bytes::new()))
        .await
        .expect_err("unknown");
    assert_eq!(error.code, Code::Unimplemented);
    assert!(
        error.message.contains("shop.v1.CatalogService/Nope"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn any_tower_service_is_a_transport_and_sees_the_method() {
    let router = Rc::new(Router::new().add(OrderServiceServer::new(Orders::default())));
    let runtime = TokioRuntime::default();
    let seen: Rc<RefCell<Vec<(String, String, MethodDescriptor)>>> = Rc::default();
    let transport = {
        let seen = Rc::clone(&seen);
        tower::service_fn(move |request: http::Request<Bytes>| {
            let (router, runtime, seen) = (Rc::clone(&router), runtime.clone(), Rc::clone(&seen));
            async move {
                let method = request
                    .extensions()
                    .get::<MethodDescriptor>()
                    .copied()
                    .expect("the client names the method");
                seen.borrow_mut().push((
                    request.method().to_string(),
                    request.uri().path().to_owned(),
                    method,
                ));
                into_result(router.handle(&runtime, request).await)
            }
        })
    };
    let orders = OrderServiceClient::new(transport);
    let order = orders
        .create_order(CreateOrderRequest {
            customer_id: "c".into(),
            items: vec![line("jam", 1)],
            request_id: "k".into(),
        })
        .await
        .expect("created");
    assert_eq!(
        order.into_inner().order.map(|o| o.order_id),
        Some("o-1".into())
    );
    assert_eq!(
        *seen.borrow(),
        [(
            "POST".to_owned(),
            "/shop.v1.OrderService/CreateOrder".to_owned(),
            order_service_methods::CREATE_ORDER
        )]
    );
    assert_eq!(seen.borrow()[0].2.idempotency, Idempotency::Idempotent);
}

/// The mesh's own contracts are generated into the core crate the same way.
struct AlwaysServing;

impl Health for AlwaysServing {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, ConnectError> {
        let status = match request.get_ref().service.as_str() {
            "" | "shop.v1.CatalogService" => ServingStatus::Serving,
            _ => ServingStatus::ServiceUnknown,
        };
        Ok(Response::new(CheckResponse {
            status: status as i32,
        }))
    }
}

#[tokio::test]
async fn workmesh_health_is_served_and_called_through_generated_code() {
    let router = Router::new().add(HealthServer::new(AlwaysServing));
    let health = HealthClient::from_client(
        Client::new(RouterTransport::new(router, TokioRuntime::default()))
            .with_encoding(Encoding::Json),
    );
    let serving = health
        .check(CheckRequest {
            service: "shop.v1.CatalogService".into(),
        })
        .await
        .expect("checked");
    assert_eq!(serving.into_inner().status(), ServingStatus::Serving);
    let unknown = health
        .check(CheckRequest {
            service: "shop.v1.Nothing".into(),
        })
        .await
        .expect("checked");
    assert_eq!(unknown.into_inner().status(), ServingStatus::ServiceUnknown);
}
