//! The catalog service: products, stored in the Worker's own D1 database.
//!
//! It is the smallest complete workmesh service: implement the generated
//! `CatalogService` trait, put it in a `Router`, and `serve` it.

use serde::Deserialize;
use shop_contracts::v1::catalog_service_server::{CatalogService, CatalogServiceServer};
use shop_contracts::v1::{
    GetProductRequest, GetProductResponse, ListProductsRequest, ListProductsResponse, Money,
    Product,
};
use worker::{event, Context, Env};
use workmesh::codegen::{Request, Response};
use workmesh::ConnectError;
use workmesh_worker::{Router, TracedD1};

/// Page size when the caller asks for none, and the most we return at once.
const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 200;

#[event(fetch)]
async fn fetch(req: worker::Request, env: Env, ctx: Context) -> worker::Result<worker::Response> {
    let router = Router::new().add(CatalogServiceServer::new(Catalog {
        db: TracedD1::new(env.d1("DB")?),
    }));
    workmesh_worker::serve(&router, req, &env, &ctx).await
}

struct Catalog {
    /// Every query gets a span under the call's SERVER span.
    db: TracedD1,
}

/// One `products` row, as D1 returns it.
#[derive(Deserialize)]
struct ProductRow {
    sku: String,
    name: String,
    description: String,
    currency_code: String,
    price_units: i64,
    price_nanos: i32,
}

impl From<ProductRow> for Product {
    fn from(row: ProductRow) -> Self {
        Product {
            sku: row.sku,
            name: row.name,
            description: row.description,
            price: Some(Money {
                currency_code: row.currency_code,
                units: row.price_units,
                nanos: row.price_nanos,
            }),
        }
    }
}

const SELECT_PRODUCT: &str =
    "SELECT sku, name, description, currency_code, price_units, price_nanos FROM products";

impl CatalogService for Catalog {
    async fn get_product(
        &self,
        request: Request<GetProductRequest>,
    ) -> Result<Response<GetProductResponse>, ConnectError> {
        let sku = request.get_ref().sku.trim();
        if sku.is_empty() {
            return Err(ConnectError::invalid_argument("sku is required"));
        }
        let row: Option<ProductRow> = self
            .db
            .prepare(format!("{SELECT_PRODUCT} WHERE sku = ?1"))
            .bind(&[sku.into()])
            .map_err(d1_error)?
            .first()
            .await
            .map_err(d1_error)?;
        match row {
            Some(row) => Ok(Response::new(GetProductResponse {
                product: Some(row.into()),
            })),
            None => Err(ConnectError::not_found(format!(
                "no product with sku {sku:?}"
            ))),
        }
    }

    async fn list_products(
        &self,
        request: Request<ListProductsRequest>,
    ) -> Result<Response<ListProductsResponse>, ConnectError> {
        let request = request.into_inner();
        let page_size =
            shop_contracts::paging::page_size(request.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
        // The page token is the last SKU of the previous page: stable under inserts.
        let rows: Vec<ProductRow> = self
            .db
            .prepare(format!(
                "{SELECT_PRODUCT} WHERE sku > ?1 ORDER BY sku LIMIT ?2"
            ))
            .bind(&[request.page_token.as_str().into(), (page_size + 1).into()])
            .map_err(d1_error)?
            .all()
            .await
            .map_err(d1_error)?;
        let mut products: Vec<Product> = rows.into_iter().map(Product::from).collect();
        let next_page_token = if products.len() > page_size as usize {
            products.truncate(page_size as usize);
            products.last().map(|p| p.sku.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(ListProductsResponse {
            products,
            next_page_token,
        }))
    }
}

fn d1_error(e: worker::Error) -> ConnectError {
    ConnectError::unavailable(format!("catalog database: {e}"))
}
