//! Method metadata, generated from the contracts.
//!
//! Middleware reads it from the request's extensions to decide what is safe:
//! a retry layer retries only `NoSideEffects` / `Idempotent` methods (or calls
//! carrying an idempotency key), and the router serves GET only for
//! `NoSideEffects` methods.

/// The `idempotency_level` method option of a `.proto` method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Idempotency {
    /// `IDEMPOTENCY_UNKNOWN`: may have side effects; never retried blindly.
    Unknown,
    /// `NO_SIDE_EFFECTS`: a read; retryable and callable with GET.
    NoSideEffects,
    /// `IDEMPOTENT`: a write that is safe to repeat.
    Idempotent,
}

impl Idempotency {
    /// True when repeating the call cannot change the outcome.
    pub fn is_retry_safe(self) -> bool {
        !matches!(self, Idempotency::Unknown)
    }
}

/// One RPC of a service, as declared in its contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MethodDescriptor {
    /// Fully-qualified service name, e.g. `shop.v1.CatalogService`.
    pub service: &'static str,
    /// Method name as in the contract, e.g. `GetProduct`.
    pub method: &'static str,
    pub idempotency: Idempotency,
}

impl MethodDescriptor {
    /// The Connect request path: `/shop.v1.CatalogService/GetProduct`.
    pub fn path(&self) -> String {
        format!("/{}/{}", self.service, self.method)
    }
}
