-- Products of the catalog. Prices are stored as Money (units + nanos) in the
-- product's currency, as the shop.v1 contract carries them.
CREATE TABLE products (
    sku           TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    currency_code TEXT NOT NULL,
    price_units   INTEGER NOT NULL,
    price_nanos   INTEGER NOT NULL DEFAULT 0
);

INSERT INTO products (sku, name, description, currency_code, price_units, price_nanos) VALUES
    ('SKU-0001', 'Trail runner shoe', 'Lightweight shoe for rough ground', 'EUR', 89, 990000000),
    ('SKU-0002', 'Merino sock', 'Pair of wool running socks', 'EUR', 14, 500000000),
    ('SKU-0003', 'Headlamp', '400 lumen rechargeable headlamp', 'EUR', 39, 0),
    ('SKU-0004', 'Hydration vest', '5 litre running vest', 'EUR', 119, 0),
    ('SKU-0005', 'Energy gel (box of 12)', 'Citrus flavour', 'EUR', 24, 0);
