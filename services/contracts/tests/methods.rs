//! The generated method constants carry what the contracts declare.

use std::collections::BTreeMap;
use std::path::Path;

use prost_types::method_options::IdempotencyLevel;
use shop_contracts::v1::{catalog_service_methods, order_service_methods};
use workmesh::proto::v1::{faults_methods, health_methods, registry_methods};
use workmesh::{Idempotency, MethodDescriptor};

/// Every generated service, by name.
fn generated() -> BTreeMap<&'static str, &'static [MethodDescriptor]> {
    BTreeMap::from([
        (
            catalog_service_methods::SERVICE_NAME,
            catalog_service_methods::ALL,
        ),
        (
            order_service_methods::SERVICE_NAME,
            order_service_methods::ALL,
        ),
        (health_methods::SERVICE_NAME, health_methods::ALL),
        (registry_methods::SERVICE_NAME, registry_methods::ALL),
        (faults_methods::SERVICE_NAME, faults_methods::ALL),
    ])
}

#[test]
fn every_method_matches_its_contract() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "shop/v1/catalog.proto",
        "shop/v1/orders.proto",
        "workmesh/v1/health.proto",
        "workmesh/v1/registry.proto",
        "workmesh/v1/faults.proto",
    ];
    let fds = protox::compile(files, [&root]).expect("contracts parse");

    let generated = generated();
    let mut seen = Vec::new();
    for file in fds.file.iter().filter(|f| files.contains(&f.name())) {
        for service in &file.service {
            let name = format!("{}.{}", file.package(), service.name());
            let methods = generated
                .get(name.as_str())
                .unwrap_or_else(|| panic!("{name} has no generated methods"));
            assert_eq!(methods.len(), service.method.len(), "{name}: method count");
            for (descriptor, method) in methods.iter().zip(&service.method) {
                assert_eq!(descriptor.service, name);
                assert_eq!(descriptor.method, method.name(), "{name}: contract order");
                let declared = match method.options.as_ref().map(|o| o.idempotency_level()) {
                    Some(IdempotencyLevel::NoSideEffects) => Idempotency::NoSideEffects,
                    Some(IdempotencyLevel::Idempotent) => Idempotency::Idempotent,
                    Some(IdempotencyLevel::IdempotencyUnknown) | None => Idempotency::Unknown,
                };
                assert_eq!(descriptor.idempotency, declared, "{}", descriptor.path());
            }
            seen.push(name);
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        generated.keys().copied().collect::<Vec<_>>(),
        "every contract service is generated"
    );
}

#[test]
fn reads_are_side_effect_free_and_writes_are_retry_safe() {
    use Idempotency::{Idempotent, NoSideEffects};
    let expected = [
        (
            catalog_service_methods::GET_PRODUCT,
            "/shop.v1.CatalogService/GetProduct",
            NoSideEffects,
        ),
        (
            catalog_service_methods::LIST_PRODUCTS,
            "/shop.v1.CatalogService/ListProducts",
            NoSideEffects,
        ),
        (
            order_service_methods::CREATE_ORDER,
            "/shop.v1.OrderService/CreateOrder",
            Idempotent,
        ),
        (
            order_service_methods::GET_ORDER,
            "/shop.v1.OrderService/GetOrder",
            NoSideEffects,
        ),
        (
            order_service_methods::LIST_ORDERS,
            "/shop.v1.OrderService/ListOrders",
            NoSideEffects,
        ),
        (
            health_methods::CHECK,
            "/workmesh.v1.Health/Check",
            NoSideEffects,
        ),
        (
            registry_methods::REGISTER,
            "/workmesh.v1.Registry/Register",
            Idempotent,
        ),
        (
            registry_methods::DEREGISTER,
            "/workmesh.v1.Registry/Deregister",
            Idempotent,
        ),
        (
            registry_methods::HEARTBEAT,
            "/workmesh.v1.Registry/Heartbeat",
            Idempotent,
        ),
        (
            registry_methods::RESOLVE,
            "/workmesh.v1.Registry/Resolve",
            NoSideEffects,
        ),
        (
            registry_methods::LIST,
            "/workmesh.v1.Registry/List",
            NoSideEffects,
        ),
        (
            registry_methods::SET_WEIGHTS,
            "/workmesh.v1.Registry/SetWeights",
            Idempotent,
        ),
        (
            registry_methods::DRAIN,
            "/workmesh.v1.Registry/Drain",
            Idempotent,
        ),
        (
            registry_methods::REPORT_OUTCOMES,
            "/workmesh.v1.Registry/ReportOutcomes",
            Idempotent,
        ),
        (
            faults_methods::SET_FAULTS,
            "/workmesh.v1.Faults/SetFaults",
            Idempotent,
        ),
        (
            faults_methods::GET_FAULTS,
            "/workmesh.v1.Faults/GetFaults",
            NoSideEffects,
        ),
    ];
    for (descriptor, path, idempotency) in expected {
        assert_eq!(descriptor.path(), path);
        assert_eq!(descriptor.idempotency, idempotency, "{path}");
    }
    let total: usize = generated().values().map(|methods| methods.len()).sum();
    assert_eq!(total, expected.len(), "every method is listed above");
}
