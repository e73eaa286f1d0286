//! Every generated message survives protobuf bytes and proto3 JSON, for
//! arbitrary field values, and its JSON decoding ignores unknown fields.

use std::collections::HashMap;
use std::fmt::Debug;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use shop_contracts::v1 as shop;
use workmesh::proto::v1 as mesh;

/// Checks both encodings, then decodes the JSON again with `noise` (unknown
/// fields) added to the top-level object.
fn check<M>(message: &M, noise: &HashMap<String, Value>) -> Result<(), TestCaseError>
where
    M: prost::Message + Default + Serialize + DeserializeOwned + PartialEq + Debug,
{
    let fail =
        |what: &str, error: &dyn std::fmt::Display| TestCaseError::fail(format!("{what}: {error}"));

    let bytes = message.encode_to_vec();
    let decoded = M::decode(bytes.as_slice()).map_err(|e| fail("proto decode", &e))?;
    prop_assert_eq!(&decoded, message);

    let json = serde_json::to_value(message).map_err(|e| fail("JSON encode", &e))?;
    let decoded: M = serde_json::from_value(json.clone()).map_err(|e| fail("JSON decode", &e))?;
    prop_assert_eq!(&decoded, message);

    let Value::Object(mut object) = json else {
        return Err(TestCaseError::fail(
            "a message must encode as a JSON object",
        ));
    };
    for (key, value) in noise {
        object.insert(key.clone(), value.clone());
    }
    let decoded: M = serde_json::from_value(Value::Object(object))
        .map_err(|e| fail("JSON decode with unknown fields", &e))?;
    prop_assert_eq!(&decoded, message);
    Ok(())
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

/// Unknown fields as a newer peer might send them: names no contract uses.
fn noise() -> impl Strategy<Value = HashMap<String, Value>> {
    let value = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        text().prop_map(Value::from),
        prop::collection::vec(any::<u32>().prop_map(Value::from), 0..3).prop_map(Value::from),
        (text(), any::<i32>()).prop_map(|(k, v)| serde_json::json!({ k: v })),
    ];
    prop::collection::hash_map("zz[a-zA-Z_]{1,8}", value, 0..4)
}

/// A percentage that is exact in binary, so JSON text round-trips it exactly.
fn percent() -> impl Strategy<Value = f64> {
    (0u32..=400).prop_map(|quarters| f64::from(quarters) / 4.0)
}

// shop.v1

fn money() -> impl Strategy<Value = shop::Money> {
    (text(), any::<i64>(), any::<i32>()).prop_map(|(currency_code, units, nanos)| shop::Money {
        currency_code,
        units,
        nanos,
    })
}

fn product() -> impl Strategy<Value = shop::Product> {
    (text(), text(), text(), prop::option::of(money())).prop_map(
        |(sku, name, description, price)| shop::Product {
            sku,
            name,
            description,
            price,
        },
    )
}

fn line_item() -> impl Strategy<Value = shop::LineItem> {
    (text(), any::<u32>()).prop_map(|(sku, quantity)| shop::LineItem { sku, quantity })
}

fn order() -> impl Strategy<Value = shop::Order> {
    let status = prop_oneof![
        Just(shop::OrderStatus::Unspecified),
        Just(shop::OrderStatus::Pending),
        Just(shop::OrderStatus::Confirmed),
        Just(shop::OrderStatus::Cancelled),
    ];
    (
        text(),
        text(),
        prop::collection::vec(line_item(), 0..4),
        prop::option::of(money()),
        status,
        any::<i64>(),
    )
        .prop_map(
            |(order_id, customer_id, items, total, status, created_at_ms)| shop::Order {
                order_id,
                customer_id,
                items,
                total,
                status: status as i32,
                created_at_ms,
            },
        )
}

// workmesh.v1

fn instance() -> impl Strategy<Value = mesh::Instance> {
    let endpoint = prop_oneof![
        Just(None),
        text().prop_map(|b| Some(mesh::instance::Endpoint::Binding(b))),
        text().prop_map(|u| Some(mesh::instance::Endpoint::Url(u))),
    ];
    let health = prop_oneof![
        Just(mesh::HealthState::Unspecified),
        Just(mesh::HealthState::Healthy),
        Just(mesh::HealthState::Unhealthy),
    ];
    (
        (text(), text(), text(), endpoint, any::<u32>(), text()),
        (
            prop::collection::hash_map(text(), text(), 0..4),
            health,
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
            any::<u32>(),
            any::<bool>(),
        ),
        (breaker_state(), any::<i64>(), any::<u64>(), any::<u64>()),
    )
        .prop_map(
            |(
                (service, instance_id, version, endpoint, weight, zone),
                (
                    metadata,
                    health,
                    registered_at_ms,
                    last_heartbeat_ms,
                    ejected_until_ms,
                    times_ejected,
                    draining,
                ),
                (breaker_state, breaker_reported_at_ms, reported_successes, reported_failures),
            )| mesh::Instance {
                service,
                instance_id,
                version,
                endpoint,
                weight,
                zone,
                metadata,
                health: health as i32,
                registered_at_ms,
                last_heartbeat_ms,
                ejected_until_ms,
                times_ejected,
                draining,
                breaker_state: breaker_state as i32,
                breaker_reported_at_ms,
                reported_successes,
                reported_failures,
            },
        )
}

fn weights() -> impl Strategy<Value = HashMap<String, u32>> {
    prop::collection::hash_map(text(), any::<u32>(), 0..4)
}

fn fault_rule() -> impl Strategy<Value = mesh::FaultRule> {
    (
        (text(), text(), any::<u32>(), percent(), text(), percent()),
        (any::<u32>(), any::<u64>(), any::<i64>()),
    )
        .prop_map(
            |(
                (service, method, delay_ms, delay_percent, abort_code, abort_percent),
                (max_injections, injected, last_timeout_ms),
            )| mesh::FaultRule {
                service,
                method,
                delay_ms,
                delay_percent,
                abort_code,
                abort_percent,
                max_injections,
                injected,
                last_timeout_ms,
            },
        )
}

fn outcome() -> impl Strategy<Value = mesh::Outcome> {
    (
        text(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        breaker_state(),
    )
        .prop_map(
            |(instance_id, successes, failures, latency_sum_ms, latency_count, breaker_state)| {
                mesh::Outcome {
                    instance_id,
                    successes,
                    failures,
                    latency_sum_ms,
                    latency_count,
                    breaker_state: breaker_state as i32,
                }
            },
        )
}

fn breaker_state() -> impl Strategy<Value = mesh::BreakerState> {
    prop_oneof![
        Just(mesh::BreakerState::Unspecified),
        Just(mesh::BreakerState::Closed),
        Just(mesh::BreakerState::Open),
        Just(mesh::BreakerState::HalfOpen),
    ]
}

fn serving_status() -> impl Strategy<Value = mesh::ServingStatus> {
    prop_oneof![
        Just(mesh::ServingStatus::Unspecified),
        Just(mesh::ServingStatus::Serving),
        Just(mesh::ServingStatus::NotServing),
        Just(mesh::ServingStatus::ServiceUnknown),
    ]
}

macro_rules! round_trips {
    ($($name:ident: $strategy:expr;)*) => {
        proptest! {
            $(
                #[test]
                fn $name(message in $strategy, noise in noise()) {
                    check(&message, &noise)?;
                }
            )*
        }
    };
}

round_trips! {
    // shop.v1.CatalogService
    money_round_trips: money();
    product_round_trips: product();
    get_product_request_round_trips: text().prop_map(|sku| shop::GetProductRequest { sku });
    get_product_response_round_trips: prop::option::of(product()).prop_map(|product| shop::GetProductResponse { product });
    list_products_request_round_trips: (any::<i32>(), text())
        .prop_map(|(page_size, page_token)| shop::ListProductsRequest { page_size, page_token });
    list_products_response_round_trips: (prop::collection::vec(product(), 0..4), text())
        .prop_map(|(products, next_page_token)| shop::ListProductsResponse { products, next_page_token });

    // shop.v1.OrderService
    line_item_round_trips: line_item();
    order_round_trips: order();
    create_order_request_round_trips: (text(), prop::collection::vec(line_item(), 0..4), text())
        .prop_map(|(customer_id, items, request_id)| shop::CreateOrderRequest { customer_id, items, request_id });
    create_order_response_round_trips: prop::option::of(order()).prop_map(|order| shop::CreateOrderResponse { order });
    get_order_request_round_trips: text().prop_map(|order_id| shop::GetOrderRequest { order_id });
    get_order_response_round_trips: prop::option::of(order()).prop_map(|order| shop::GetOrderResponse { order });
    list_orders_request_round_trips: (text(), any::<i32>(), text())
        .prop_map(|(customer_id, page_size, page_token)| shop::ListOrdersRequest { customer_id, page_size, page_token });
    list_orders_response_round_trips: (prop::collection::vec(order(), 0..3), text())
        .prop_map(|(orders, next_page_token)| shop::ListOrdersResponse { orders, next_page_token });

    // workmesh.v1.Health
    check_request_round_trips: text().prop_map(|service| mesh::CheckRequest { service });
    check_response_round_trips: serving_status().prop_map(|status| mesh::CheckResponse { status: status as i32 });

    // workmesh.v1.Registry
    instance_round_trips: instance();
    register_request_round_trips: prop::option::of(instance()).prop_map(|instance| mesh::RegisterRequest { instance });
    register_response_round_trips: (prop::option::of(instance()), any::<u32>())
        .prop_map(|(instance, heartbeat_interval_ms)| mesh::RegisterResponse { instance, heartbeat_interval_ms });
    deregister_request_round_trips: text().prop_map(|instance_id| mesh::DeregisterRequest { instance_id });
    deregister_response_round_trips: any::<bool>().prop_map(|removed| mesh::DeregisterResponse { removed });
    heartbeat_request_round_trips: text().prop_map(|instance_id| mesh::HeartbeatRequest { instance_id });
    heartbeat_response_round_trips: any::<bool>().prop_map(|known| mesh::HeartbeatResponse { known });
    resolve_request_round_trips: (text(), text())
        .prop_map(|(service, known_version_token)| mesh::ResolveRequest { service, known_version_token });
    resolve_response_round_trips: (prop::collection::vec(instance(), 0..3), text(), any::<bool>(), weights()).prop_map(
        |(instances, version_token, not_modified, version_weights)| mesh::ResolveResponse { instances, version_token, not_modified, version_weights },
    );
    list_request_round_trips: text().prop_map(|service| mesh::ListRequest { service });
    list_response_round_trips: prop::collection::vec(instance(), 0..3).prop_map(|instances| mesh::ListResponse { instances });
    set_weights_request_round_trips: (text(), weights())
        .prop_map(|(service, version_weights)| mesh::SetWeightsRequest { service, version_weights });
    set_weights_response_round_trips: weights().prop_map(|version_weights| mesh::SetWeightsResponse { version_weights });
    drain_request_round_trips: text().prop_map(|instance_id| mesh::DrainRequest { instance_id });
    drain_response_round_trips: prop::option::of(instance()).prop_map(|instance| mesh::DrainResponse { instance });
    outcome_round_trips: outcome();
    report_outcomes_request_round_trips: (text(), prop::collection::vec(outcome(), 0..4))
        .prop_map(|(report_id, outcomes)| mesh::ReportOutcomesRequest { report_id, outcomes });
    report_outcomes_response_round_trips: Just(mesh::ReportOutcomesResponse {});

    // workmesh.v1.Faults
    fault_rule_round_trips: fault_rule();
    set_faults_request_round_trips: prop::collection::vec(fault_rule(), 0..3).prop_map(|rules| mesh::SetFaultsRequest { rules });
    set_faults_response_round_trips: prop::collection::vec(fault_rule(), 0..3).prop_map(|rules| mesh::SetFaultsResponse { rules });
    get_faults_request_round_trips: Just(mesh::GetFaultsRequest {});
    get_faults_response_round_trips: prop::collection::vec(fault_rule(), 0..3).prop_map(|rules| mesh::GetFaultsResponse { rules });
}

proptest! {
    /// 64-bit integers travel as JSON strings (JavaScript numbers lose
    /// precision past 2^53), and both forms are accepted in.
    #[test]
    fn int64_fields_are_json_strings(units in any::<i64>(), count in any::<u64>()) {
        let json = serde_json::to_value(shop::Money { units, ..Default::default() }).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if units == 0 {
            prop_assert_eq!(json, serde_json::json!({}));
        } else {
            prop_assert_eq!(&json["units"], &Value::String(units.to_string()));
        }
        let outcome = mesh::Outcome { latency_count: count, ..Default::default() };
        let json = serde_json::to_value(&outcome).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if count != 0 {
            prop_assert_eq!(&json["latencyCount"], &Value::String(count.to_string()));
        }
        // A JSON number is accepted too, where it is exact.
        if units.unsigned_abs() < (1 << 53) {
            let parsed: shop::Money = serde_json::from_value(serde_json::json!({ "units": units }))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(parsed.units, units);
        }
    }
}
