//! OTLP/HTTP export: spans (and metrics, see [`crate::metrics`]) encoded as
//! protobuf (`application/x-protobuf`) and POSTed to `<endpoint>/v1/traces`
//! and `<endpoint>/v1/metrics`.
//!
//! **Wall-clock time.** OTLP wants Unix-epoch nanoseconds; spans carry
//! [`Instant`]s of the runtime's clock. In Workers that clock *is* Unix time
//! (`Date.now()`), so the offset is zero. [`TokioRuntime`](crate::TokioRuntime)
//! counts from process start, so native callers pass the Unix time of the
//! runtime's epoch with [`OtlpExporter::with_epoch_offset`] (computed once,
//! outside Worker code: `SystemTime::now() - runtime.now()`). This keeps the
//! [`Runtime`](crate::Runtime) trait free of a second clock.
//!
//! **Failures.** [`OtlpExporter::export`] returns its error for the caller to
//! log. It never touches the request being served: the Workers adapter runs
//! it inside `ctx.wait_until`, after the response is sent.

pub mod proto;

use std::borrow::Cow;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use prost::Message;
use tower::ServiceExt;

use super::span::{AttrValue, Attributes, SpanData, SpanKind, SpanStatus};
use crate::client::Transport;
use crate::{ConnectError, Instant, LocalBoxFuture};

/// The protobuf media type of OTLP/HTTP.
pub const PROTOBUF: &str = "application/x-protobuf";
/// The instrumentation scope name, and `telemetry.sdk.name`.
pub const SDK_NAME: &str = "workmesh";

/// Who produced the telemetry: becomes the OTLP `Resource`.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub service_name: Cow<'static, str>,
    pub service_version: Option<Cow<'static, str>>,
    /// This isolate or process (e.g. a random id chosen at start).
    pub instance_id: Option<String>,
    /// Anything else (`deployment.environment.name`, `cloud.region`, …).
    pub attributes: Attributes,
}

impl Resource {
    pub fn new(service_name: impl Into<Cow<'static, str>>) -> Self {
        Resource {
            service_name: service_name.into(),
            service_version: None,
            instance_id: None,
            attributes: Vec::new(),
        }
    }

    pub fn with_version(mut self, version: impl Into<Cow<'static, str>>) -> Self {
        self.service_version = Some(version.into());
        self
    }

    pub fn with_instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    pub fn with_attribute(
        mut self,
        key: impl Into<Cow<'static, str>>,
        value: impl Into<AttrValue>,
    ) -> Self {
        self.attributes.push((key.into(), value.into()));
        self
    }

    /// `service.name`, `service.version`, `service.instance.id`,
    /// `telemetry.sdk.name`, `telemetry.sdk.language`, then the extras.
    pub fn to_proto(&self) -> proto::Resource {
        let mut attributes = vec![key_value("service.name", &self.service_name.clone().into())];
        if let Some(version) = &self.service_version {
            attributes.push(key_value("service.version", &version.clone().into()));
        }
        if let Some(id) = &self.instance_id {
            attributes.push(key_value("service.instance.id", &id.clone().into()));
        }
        attributes.push(key_value("telemetry.sdk.name", &SDK_NAME.into()));
        attributes.push(key_value("telemetry.sdk.language", &"rust".into()));
        attributes.extend(self.attributes.iter().map(|(k, v)| key_value(k, v)));
        proto::Resource {
            attributes,
            dropped_attributes_count: 0,
        }
    }
}

/// Converts runtime [`Instant`]s to Unix nanoseconds: `offset` is the Unix
/// time of the runtime clock's zero (zero in Workers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EpochOffset(pub Duration);

impl EpochOffset {
    pub fn unix_nanos(self, instant: Instant) -> u64 {
        let since = self.0.saturating_add(instant.since_epoch()).as_nanos();
        u64::try_from(since).unwrap_or(u64::MAX)
    }
}

pub(crate) fn key_value(key: &str, value: &AttrValue) -> proto::KeyValue {
    use proto::any_value::Value;
    let value = match value {
        AttrValue::Str(s) => Value::StringValue(s.to_string()),
        AttrValue::Int(i) => Value::IntValue(*i),
        AttrValue::Float(f) => Value::DoubleValue(*f),
        AttrValue::Bool(b) => Value::BoolValue(*b),
    };
    proto::KeyValue {
        key: key.to_owned(),
        value: Some(proto::AnyValue { value: Some(value) }),
    }
}

pub(crate) fn scope() -> proto::InstrumentationScope {
    proto::InstrumentationScope {
        name: SDK_NAME.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

fn span_to_proto(span: &SpanData, offset: EpochOffset) -> proto::Span {
    let kind = match span.kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    };
    let status = match &span.status {
        SpanStatus::Unset => None,
        SpanStatus::Ok => Some(proto::Status {
            message: String::new(),
            code: 1,
        }),
        SpanStatus::Error { message } => Some(proto::Status {
            message: message.clone(),
            code: 2,
        }),
    };
    proto::Span {
        trace_id: span.trace_id.0.to_vec(),
        span_id: span.span_id.0.to_vec(),
        trace_state: span.tracestate.clone().unwrap_or_default(),
        parent_span_id: span
            .parent_span_id
            .map(|id| id.0.to_vec())
            .unwrap_or_default(),
        // W3C trace flags in the low byte.
        flags: u32::from(span.sampled),
        name: span.name.to_string(),
        kind,
        start_time_unix_nano: offset.unix_nanos(span.start),
        end_time_unix_nano: offset.unix_nanos(span.end.max(span.start)),
        attributes: span
            .attributes
            .iter()
            .map(|(k, v)| key_value(k, v))
            .collect(),
        dropped_attributes_count: 0,
        events: span
            .events
            .iter()
            .map(|event| proto::SpanEvent {
                time_unix_nano: offset.unix_nanos(event.time),
                name: event.name.to_string(),
                attributes: event
                    .attributes
                    .iter()
                    .map(|(k, v)| key_value(k, v))
                    .collect(),
                dropped_attributes_count: 0,
            })
            .collect(),
        dropped_events_count: span.dropped_events,
        status,
    }
}

/// One `ExportTraceServiceRequest` for `spans`, all under `resource`.
pub fn encode_traces(
    resource: &Resource,
    offset: EpochOffset,
    spans: &[SpanData],
) -> proto::ExportTraceServiceRequest {
    proto::ExportTraceServiceRequest {
        resource_spans: vec![proto::ResourceSpans {
            resource: Some(resource.to_proto()),
            scope_spans: vec![proto::ScopeSpans {
                scope: Some(scope()),
                spans: spans.iter().map(|s| span_to_proto(s, offset)).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// Sends OTLP/HTTP protobuf over any [`Transport`] (a service binding to the
/// console Worker, `fetch` to an external collector, an in-process router in
/// tests). Cheap to clone.
#[derive(Clone)]
pub struct OtlpExporter<T> {
    transport: T,
    traces_uri: Uri,
    metrics_uri: Uri,
    headers: Rc<HeaderMap>,
    resource: Rc<Resource>,
    offset: EpochOffset,
}

impl<T> std::fmt::Debug for OtlpExporter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Extra headers usually carry API keys: never print them.
        f.debug_struct("OtlpExporter")
            .field("traces_uri", &self.traces_uri)
            .field("metrics_uri", &self.metrics_uri)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("resource", &self.resource)
            .finish()
    }
}

impl<T: Transport> OtlpExporter<T> {
    /// An exporter to `endpoint` (the OTLP/HTTP base URL, e.g.
    /// `http://localhost:4318`; `/v1/traces` and `/v1/metrics` are appended).
    /// An unusable URL is `invalid_argument`, at configuration time.
    pub fn new(transport: T, endpoint: &str, resource: Resource) -> Result<Self, ConnectError> {
        let base = endpoint.trim_end_matches('/');
        let uri = |path: &str| {
            format!("{base}{path}").parse::<Uri>().map_err(|err| {
                ConnectError::invalid_argument(format!("OTLP endpoint {endpoint:?}: {err}"))
            })
        };
        Ok(OtlpExporter {
            transport,
            traces_uri: uri("/v1/traces")?,
            metrics_uri: uri("/v1/metrics")?,
            headers: Rc::new(HeaderMap::new()),
            resource: Rc::new(resource),
            offset: EpochOffset::default(),
        })
    }

    /// Adds a header to every export (an API key: `x-honeycomb-team`,
    /// `authorization`). Bad names or values are `invalid_argument`.
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Self, ConnectError> {
        let name = HeaderName::try_from(name)
            .map_err(|err| ConnectError::invalid_argument(format!("OTLP header name: {err}")))?;
        let mut value = HeaderValue::try_from(value)
            .map_err(|err| ConnectError::invalid_argument(format!("OTLP header value: {err}")))?;
        value.set_sensitive(true);
        Rc::make_mut(&mut self.headers).append(name, value);
        Ok(self)
    }

    /// The Unix time of the runtime clock's zero (see the module docs).
    pub fn with_epoch_offset(mut self, offset: Duration) -> Self {
        self.offset = EpochOffset(offset);
        self
    }

    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    pub fn epoch_offset(&self) -> EpochOffset {
        self.offset
    }

    /// POSTs `spans` to `/v1/traces`. Nothing is sent for an empty batch.
    /// A rejection by the collector (`partial_success.rejected_spans > 0`) is
    /// `data_loss`.
    pub fn export(
        &self,
        spans: Vec<SpanData>,
    ) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        if spans.is_empty() {
            return Box::pin(async { Ok(()) });
        }
        let body = encode_traces(&self.resource, self.offset, &spans).encode_to_vec();
        self.post(self.traces_uri.clone(), body, |bytes| {
            proto::ExportTraceServiceResponse::decode(bytes)
                .ok()
                .and_then(|response| response.partial_success)
        })
    }

    /// POSTs a metrics request (see
    /// [`MetricsRegistry::to_otlp`](crate::metrics::MetricsRegistry::to_otlp))
    /// to `/v1/metrics`.
    pub fn export_metrics(
        &self,
        request: proto::ExportMetricsServiceRequest,
    ) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        if request.resource_metrics.is_empty() {
            return Box::pin(async { Ok(()) });
        }
        self.post(self.metrics_uri.clone(), request.encode_to_vec(), |bytes| {
            proto::ExportMetricsServiceResponse::decode(bytes)
                .ok()
                .and_then(|response| response.partial_success)
        })
    }

    fn post(
        &self,
        uri: Uri,
        body: Vec<u8>,
        partial: fn(Bytes) -> Option<proto::ExportPartialSuccess>,
    ) -> LocalBoxFuture<'static, Result<(), ConnectError>> {
        let mut request = http::Request::new(Bytes::from(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        for (name, value) in self.headers.iter() {
            headers.append(name, value.clone());
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROTOBUF));
        let transport = self.transport.clone();
        Box::pin(async move {
            let response = transport.oneshot(request).await?;
            match partial(response.into_body()) {
                Some(partial) if partial.rejected > 0 => Err(ConnectError::data_loss(format!(
                    "OTLP collector rejected {} item(s): {}",
                    partial.rejected, partial.error_message
                ))),
                _ => Ok(()),
            }
        })
    }
}

#[cfg(test)]
mod tests;
