//! The proto3 JSON mapping of the generated messages, case by case.

use serde_json::json;
use shop_contracts::v1::{
    GetOrderResponse, ListProductsRequest, Money, Order, OrderStatus, Product,
};
use workmesh::proto::v1::{instance::Endpoint, Instance};

fn order() -> Order {
    Order {
        order_id: "o-1".into(),
        customer_id: "c-9".into(),
        items: vec![],
        total: Some(Money {
            currency_code: "EUR".into(),
            units: 12,
            nanos: 500_000_000,
        }),
        status: OrderStatus::Confirmed as i32,
        created_at_ms: 1_700_000_000_000,
    }
}

#[test]
fn field_names_are_lower_camel_case_and_defaults_are_omitted() {
    let json = serde_json::to_value(order()).expect("encodes");
    assert_eq!(
        json,
        json!({
            "orderId": "o-1",
            "customerId": "c-9",
            "total": { "currencyCode": "EUR", "units": "12", "nanos": 500000000 },
            "status": "ORDER_STATUS_CONFIRMED",
            "createdAtMs": "1700000000000",
        })
    );
    assert_eq!(
        serde_json::to_value(Product::default()).expect("encodes"),
        json!({})
    );
}

#[test]
fn both_json_and_proto_field_names_are_accepted() {
    let camel: ListProductsRequest =
        serde_json::from_value(json!({ "pageSize": 5, "pageToken": "p2" })).expect("camelCase");
    let snake: ListProductsRequest =
        serde_json::from_value(json!({ "page_size": 5, "page_token": "p2" })).expect("snake_case");
    assert_eq!(
        camel,
        ListProductsRequest {
            page_size: 5,
            page_token: "p2".into()
        }
    );
    assert_eq!(snake, camel);
}

#[test]
fn enums_travel_by_name_and_are_accepted_by_number() {
    let by_name: Order =
        serde_json::from_value(json!({ "status": "ORDER_STATUS_CANCELLED" })).expect("by name");
    assert_eq!(by_name.status(), OrderStatus::Cancelled);
    let by_number: Order = serde_json::from_value(json!({ "status": 2 })).expect("by number");
    assert_eq!(by_number.status(), OrderStatus::Confirmed);
    serde_json::from_value::<Order>(json!({ "status": "ORDER_STATUS_LOST" }))
        .expect_err("an unknown enum name is an error");
}

#[test]
fn unknown_fields_are_ignored_at_every_depth() {
    let parsed: GetOrderResponse = serde_json::from_value(json!({
        "order": {
            "orderId": "o-1",
            "giftWrap": { "paper": "red" },
            "total": { "currencyCode": "EUR", "units": "3", "exchangeRate": 1.1 },
        },
        "servedBy": ["orders-blue-1"],
    }))
    .expect("unknown fields are skipped");
    let order = parsed.order.expect("order");
    assert_eq!(order.order_id, "o-1");
    assert_eq!(order.total.map(|t| t.units), Some(3));
}

#[test]
fn malformed_values_are_errors() {
    serde_json::from_value::<Money>(json!({ "units": "twelve" })).expect_err("not an integer");
    serde_json::from_value::<Money>(json!({ "nanos": "5000000000" }))
        .expect_err("out of int32 range");
    serde_json::from_value::<Money>(json!([1, 2])).expect_err("not an object");
}

#[test]
fn oneofs_maps_and_unsigned_fields() {
    let instance = Instance {
        instance_id: "orders-blue-1".into(),
        endpoint: Some(Endpoint::Binding("ORDERS".into())),
        metadata: [("team".to_owned(), "shop".to_owned())].into(),
        weight: 3,
        times_ejected: 1,
        ..Default::default()
    };
    let json = serde_json::to_value(&instance).expect("encodes");
    assert_eq!(
        json,
        json!({
            "instanceId": "orders-blue-1",
            "binding": "ORDERS",
            "weight": 3,
            "metadata": { "team": "shop" },
            "timesEjected": 1,
        })
    );
    let url: Instance =
        serde_json::from_value(json!({ "url": "https://orders.example" })).expect("url arm");
    assert_eq!(
        url.endpoint,
        Some(Endpoint::Url("https://orders.example".into()))
    );
}
