//! A three-hop call (gateway → orders → catalog, with a D1 query in catalog)
//! traced through header maps, exported to a wiremock OTLP endpoint over a
//! tiny HTTP/1.1 transport, and decoded with `opentelemetry-proto`'s types.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};
use workmesh::trace::rpc::{db_span, record_rows, rpc_client_span, rpc_server_span};
use workmesh::trace::{OtlpExporter, Resource, Sampler, SpanData, TraceCollector};
use workmesh::{ConnectError, Idempotency, MethodDescriptor, TokioRuntime};

static CREATE_ORDER: MethodDescriptor = MethodDescriptor {
    service: "shop.v1.OrderService",
    method: "CreateOrder",
    idempotency: Idempotency::Unknown,
};
static GET_PRODUCT: MethodDescriptor = MethodDescriptor {
    service: "shop.v1.CatalogService",
    method: "GetProduct",
    idempotency: Idempotency::NoSideEffects,
};

/// POSTs over a fresh TCP connection with HTTP/1.1 and `Connection: close`,
/// reading the whole answer. Enough for a test peer; not a real client.
async fn post(request: http::Request<Bytes>) -> Result<http::Response<Bytes>, ConnectError> {
    let unavailable = |err: std::io::Error| ConnectError::unavailable(err.to_string());
    let uri = request.uri().clone();
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    let mut stream = tokio::net::TcpStream::connect(&authority)
        .await
        .map_err(unavailable)?;
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\ncontent-length: {}\r\n",
        request.method(),
        uri.path(),
        request.body().len()
    );
    for (name, value) in request.headers() {
        head.push_str(&format!(
            "{name}: {}\r\n",
            value.to_str().unwrap_or_default()
        ));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(unavailable)?;
    stream
        .write_all(request.body())
        .await
        .map_err(unavailable)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.map_err(unavailable)?;
    let text = String::from_utf8_lossy(&answer);
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| ConnectError::unavailable("no HTTP status line"))?;
    let body_at = text.find("\r\n\r\n").map_or(answer.len(), |at| at + 4);
    if status != 200 {
        return Err(ConnectError::unavailable(format!("HTTP {status}")));
    }
    Ok(http::Response::new(Bytes::copy_from_slice(
        answer.get(body_at..).unwrap_or_default(),
    )))
}

/// Runs the three hops, each service with its own collector (as separate
/// Workers would), and returns every service's spans.
fn three_hops(runtime: &TokioRuntime) -> Vec<SpanData> {
    let sampler = Sampler::ratio(1.0);
    let (gateway, orders, catalog) = (
        TraceCollector::new(runtime, sampler),
        TraceCollector::new(runtime, sampler),
        TraceCollector::new(runtime, sampler),
    );

    // gateway: no incoming traceparent, so it roots the trace.
    let to_orders = rpc_client_span(&gateway, &CREATE_ORDER, None, Some("orders"));
    let mut wire = HeaderMap::new();
    to_orders.context().inject(&mut wire);

    // orders: server span from the wire, then a call to catalog.
    let orders_server = rpc_server_span(&orders, &CREATE_ORDER, &wire);
    let to_catalog = rpc_client_span(
        &orders,
        &GET_PRODUCT,
        Some(orders_server.context()),
        Some("catalog"),
    );
    let mut wire = HeaderMap::new();
    to_catalog.context().inject(&mut wire);

    // catalog: a D1 query, then it fails.
    let catalog_server = rpc_server_span(&catalog, &GET_PRODUCT, &wire);
    let query = db_span(
        &catalog,
        "d1",
        "SELECT id, price FROM products WHERE id = ?1",
        Some(catalog_server.context()),
    );
    record_rows(&query, 0);
    query.end();
    let failure: Result<(), _> = Err(ConnectError::unavailable("catalog database is down"));
    catalog_server.end_with(&failure);
    to_catalog.end_with(&failure);
    orders_server.end_with(&failure);
    to_orders.end_with(&failure);

    let mut spans = gateway.drain();
    spans.extend(orders.drain());
    spans.extend(catalog.drain());
    spans
}

fn string_attr<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(Value::StringValue(s)) => Some(s.as_str()),
            _ => None,
        })
}

fn find<'a>(spans: &'a [Span], name: &str, kind: i32) -> &'a Span {
    spans
        .iter()
        .find(|span| span.name == name && span.kind == kind)
        .unwrap_or_else(|| panic!("no span {name} of kind {kind}"))
}

#[tokio::test]
async fn three_hop_trace_reaches_the_otlp_endpoint_intact() {
    let endpoint = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/traces"))
        .and(header("content-type", "application/x-protobuf"))
        .and(header("x-api-key", "secret"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&endpoint)
        .await;

    let runtime = TokioRuntime::with_seed(11);
    let spans = three_hops(&runtime);
    assert_eq!(spans.len(), 5);

    let exporter = OtlpExporter::new(
        tower::service_fn(post),
        &endpoint.uri(),
        Resource::new("shop").with_version("0.1.0"),
    )
    .expect("valid endpoint")
    .with_header("x-api-key", "secret")
    .expect("valid header")
    .with_epoch_offset(Duration::from_secs(1_700_000_000));
    exporter.export(spans).await.expect("exported");

    let received = endpoint.received_requests().await.expect("recording");
    let body = &received[0].body;
    let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
    let spans: Vec<Span> = request.resource_spans[0].scope_spans[0].spans.clone();

    // One trace id across all spans.
    let trace_id = &spans[0].trace_id;
    assert_eq!(trace_id.len(), 16);
    assert!(spans.iter().all(|span| &span.trace_id == trace_id));

    const SERVER: i32 = 2;
    const CLIENT: i32 = 3;
    let gateway_client = find(&spans, "shop.v1.OrderService/CreateOrder", CLIENT);
    let orders_server = find(&spans, "shop.v1.OrderService/CreateOrder", SERVER);
    let orders_client = find(&spans, "shop.v1.CatalogService/GetProduct", CLIENT);
    let catalog_server = find(&spans, "shop.v1.CatalogService/GetProduct", SERVER);
    let d1 = find(&spans, "SELECT d1", CLIENT);

    // Each CLIENT span is the parent of the next hop's SERVER span.
    assert!(
        gateway_client.parent_span_id.is_empty(),
        "the gateway roots the trace"
    );
    assert_eq!(orders_server.parent_span_id, gateway_client.span_id);
    assert_eq!(orders_client.parent_span_id, orders_server.span_id);
    assert_eq!(catalog_server.parent_span_id, orders_client.span_id);
    // The D1 span is a child of catalog's SERVER span.
    assert_eq!(d1.parent_span_id, catalog_server.span_id);
    assert_eq!(string_attr(d1, "db.system"), Some("d1"));
    assert_eq!(
        string_attr(d1, "db.query.text"),
        Some("SELECT id, price FROM products WHERE id = ?1")
    );

    // RPC attributes.
    for span in [gateway_client, orders_server, orders_client, catalog_server] {
        assert_eq!(string_attr(span, "rpc.system"), Some("connect_rpc"));
        assert!(string_attr(span, "rpc.service").is_some_and(|s| s.starts_with("shop.v1.")));
        assert!(string_attr(span, "rpc.method").is_some());
    }
    assert_eq!(
        string_attr(orders_client, "server.address"),
        Some("catalog")
    );

    // Error status carries the Connect code.
    for span in [gateway_client, orders_server, orders_client, catalog_server] {
        let status = span.status.as_ref().expect("status");
        assert_eq!(status.code, 2, "{}", span.name);
        assert!(
            status.message.starts_with("unavailable"),
            "{}",
            status.message
        );
        assert_eq!(
            string_attr(span, "rpc.connect_rpc.error_code"),
            Some("unavailable")
        );
    }
    // Wall-clock time: the epoch offset is applied.
    assert!(spans
        .iter()
        .all(|s| s.start_time_unix_nano >= 1_700_000_000_000_000_000));
}

#[tokio::test]
async fn export_failures_are_returned_not_swallowed() {
    let endpoint = MockServer::start().await;
    Mock::given(path("/v1/traces"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&endpoint)
        .await;
    let runtime = TokioRuntime::with_seed(12);
    let exporter = OtlpExporter::new(tower::service_fn(post), &endpoint.uri(), Resource::new("x"))
        .expect("valid endpoint");
    let err = exporter
        .export(three_hops(&runtime))
        .await
        .expect_err("503 is a failure");
    assert_eq!(err.code, workmesh::Code::Unavailable);
    // Nothing to send: no request at all.
    exporter.export(Vec::new()).await.expect("empty batch");
    assert_eq!(endpoint.received_requests().await.map(|r| r.len()), Some(1));
}
