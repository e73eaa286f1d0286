//! Codec throughput: protobuf vs JSON, for a small request and a larger,
//! order-shaped message. Native only; run with
//! `cargo bench -p workmesh --bench codec`.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use workmesh::protocol::Encoding;

/// Like `shop.v1.GetProductRequest`.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct GetProduct {
    #[prost(string, tag = "1")]
    product_id: String,
    #[prost(bool, tag = "2")]
    include_stock: bool,
}

#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct LineItem {
    #[prost(string, tag = "1")]
    sku: String,
    #[prost(string, tag = "2")]
    title: String,
    #[prost(int32, tag = "3")]
    quantity: i32,
    #[prost(int32, tag = "4")]
    unit_price_cents: i32,
}

/// Like `shop.v1.Order` with 50 line items.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Order {
    #[prost(string, tag = "1")]
    order_id: String,
    #[prost(string, tag = "2")]
    customer_id: String,
    #[prost(message, repeated, tag = "3")]
    items: Vec<LineItem>,
    #[prost(string, repeated, tag = "4")]
    notes: Vec<String>,
    #[prost(int32, tag = "5")]
    total_cents: i32,
}

fn order() -> Order {
    let items: Vec<LineItem> = (0..50)
        .map(|i| LineItem {
            sku: format!("SKU-{i:06}"),
            title: format!("Product number {i} with a realistic title"),
            quantity: i % 5 + 1,
            unit_price_cents: 1999 + i * 37,
        })
        .collect();
    let total_cents = items
        .iter()
        .map(|item| item.quantity * item.unit_price_cents)
        .sum();
    Order {
        order_id: "ord_01HZX3J4K5M6N7P8Q9R0".into(),
        customer_id: "cus_8a7b6c5d".into(),
        items,
        notes: vec!["leave at the door".into(), "gift wrap".into()],
        total_cents,
    }
}

struct Rate {
    encode_mib_s: f64,
    decode_mib_s: f64,
    bytes: usize,
}

/// Runs `f` repeatedly for about `budget`, returning operations per second.
fn ops_per_sec(budget: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..100 {
        f();
    }
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < budget {
        for _ in 0..100 {
            f();
        }
        ops += 100;
    }
    ops as f64 / start.elapsed().as_secs_f64()
}

fn measure<M: workmesh::codegen::Message + PartialEq>(encoding: Encoding, message: &M) -> Rate {
    let budget = Duration::from_millis(400);
    let bytes = encoding.encode(message).expect("encode");
    let decoded: M = encoding.decode(&bytes).expect("decode");
    assert!(decoded == *message, "{encoding:?} round trip");
    let mib = bytes.len() as f64 / (1024.0 * 1024.0);
    let encode = ops_per_sec(budget, || {
        black_box(encoding.encode(black_box(message)).expect("encode"));
    });
    let decode = ops_per_sec(budget, || {
        black_box(encoding.decode::<M>(black_box(&bytes)).expect("decode"));
    });
    Rate {
        encode_mib_s: encode * mib,
        decode_mib_s: decode * mib,
        bytes: bytes.len(),
    }
}

fn report<M: workmesh::codegen::Message + PartialEq>(name: &str, message: &M) {
    let proto = measure(Encoding::Proto, message);
    let json = measure(Encoding::Json, message);
    println!(
        "{name}: proto {} B, json {} B (size ratio json/proto {:.2})",
        proto.bytes,
        json.bytes,
        json.bytes as f64 / proto.bytes as f64
    );
    for (what, p, j) in [
        ("encode", proto.encode_mib_s, json.encode_mib_s),
        ("decode", proto.decode_mib_s, json.decode_mib_s),
    ] {
        // Messages per second is what a Worker cares about: compare that.
        let p_msgs = p * 1024.0 * 1024.0 / proto.bytes as f64;
        let j_msgs = j * 1024.0 * 1024.0 / json.bytes as f64;
        println!(
            "  {what}: proto {p:8.1} MiB/s ({p_msgs:10.0} msg/s)  json {j:8.1} MiB/s ({j_msgs:10.0} msg/s)  proto/json {:.2}x msg/s",
            p_msgs / j_msgs
        );
    }
}

fn main() {
    // `cargo test --benches` runs this too: keep that quick and silent.
    if std::env::args().any(|arg| arg == "--test") {
        return;
    }
    report(
        "small (GetProduct)",
        &GetProduct {
            product_id: "prod_42".into(),
            include_stock: true,
        },
    );
    report("larger (Order, 50 items)", &order());
}
