//! The shop.v1 contracts (`proto/shop/v1`), generated at build time by
//! `workmesh-build`: what the example services serve and call.
//!
//! For each service, [`v1`] has a server trait to implement, a typed client
//! and the method metadata:
//!
//! | service | server | client |
//! |---|---|---|
//! | `shop.v1.CatalogService` | [`v1::catalog_service_server`] | [`v1::catalog_service_client`] |
//! | `shop.v1.OrderService` | [`v1::order_service_server`] | [`v1::order_service_client`] |
//!
//! ```
//! use shop_contracts::v1::{catalog_service_methods, GetProductRequest};
//! use workmesh::Idempotency;
//!
//! // Reads are marked in the contract, so the mesh may retry them and serve them with GET.
//! assert_eq!(catalog_service_methods::GET_PRODUCT.idempotency, Idempotency::NoSideEffects);
//! let request = GetProductRequest { sku: "tea-earl-grey".into() };
//! assert_eq!(serde_json::to_string(&request).unwrap(), r#"{"sku":"tea-earl-grey"}"#);
//! ```

/// `shop.v1`: the catalog and orders of the example shop.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/shop.v1.rs"));
}
pub mod paging;
