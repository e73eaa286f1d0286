//! The shop.v1 contracts, generated at build time.
