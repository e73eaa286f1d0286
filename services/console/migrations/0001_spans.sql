-- Spans received over OTLP/HTTP, one row each. Times are Unix nanoseconds
-- as 20-digit zero-padded decimal text: they do not fit a JavaScript number
-- (D1's binding type), and the padding keeps text order equal to time order.
CREATE TABLE spans (
    trace_id       TEXT NOT NULL,
    span_id        TEXT NOT NULL,
    parent_span_id TEXT,
    service        TEXT NOT NULL,
    name           TEXT NOT NULL,
    -- OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
    kind           INTEGER NOT NULL,
    start_ns       TEXT NOT NULL,
    end_ns         TEXT NOT NULL,
    -- OTLP status code: 0 unset, 1 ok, 2 error.
    status_code    INTEGER NOT NULL DEFAULT 0,
    status_message TEXT NOT NULL DEFAULT '',
    attributes     TEXT NOT NULL DEFAULT '{}',
    events         TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (trace_id, span_id)
);

CREATE INDEX spans_by_start ON spans (start_ns);
CREATE INDEX spans_by_service ON spans (service, start_ns);
