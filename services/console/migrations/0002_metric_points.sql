-- OTLP metric data points (Sums and Histograms), one row per point as
-- exported. Cumulative series are turned into per-window numbers when read
-- (see services/console/src/metrics). Times are Unix nanoseconds as
-- 20-digit zero-padded decimal text, like the spans table's.
CREATE TABLE metric_points (
    service       TEXT NOT NULL,
    instance      TEXT NOT NULL DEFAULT '',
    metric        TEXT NOT NULL,
    rpc_service   TEXT NOT NULL DEFAULT '',
    rpc_method    TEXT NOT NULL DEFAULT '',
    -- The Connect error code; '' for successes.
    code          TEXT NOT NULL DEFAULT '',
    start_ns      TEXT NOT NULL,
    time_ns       TEXT NOT NULL,
    -- OTLP aggregation temporality: 1 delta, 2 cumulative.
    temporality   INTEGER NOT NULL,
    -- A Sum's value, or a Histogram's count.
    value         REAL NOT NULL,
    sum           REAL NOT NULL DEFAULT 0,
    bucket_counts TEXT NOT NULL DEFAULT '[]',
    bounds        TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (service, instance, metric, rpc_service, rpc_method, code, start_ns, time_ns)
);

CREATE INDEX metric_points_by_time ON metric_points (time_ns);

-- The service map joins a CLIENT span to its SERVER child.
CREATE INDEX spans_by_parent ON spans (trace_id, parent_span_id);
