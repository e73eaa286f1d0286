-- Orders and their line items. `request_id` is the client's idempotency key:
-- a repeated CreateOrder with the same key returns the first order.
CREATE TABLE orders (
    order_id      TEXT PRIMARY KEY,
    customer_id   TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    status        INTEGER NOT NULL,
    currency_code TEXT NOT NULL,
    total_units   INTEGER NOT NULL,
    total_nanos   INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    UNIQUE (customer_id, request_id)
);

CREATE INDEX orders_by_customer ON orders (customer_id, created_at_ms DESC, order_id);

CREATE TABLE order_items (
    order_id            TEXT NOT NULL REFERENCES orders (order_id),
    position            INTEGER NOT NULL,
    sku                 TEXT NOT NULL,
    quantity            INTEGER NOT NULL,
    PRIMARY KEY (order_id, position)
);
