//! The one module generated code imports (`use workmesh::codegen::…`), so
//! generated files stay stable while the crate's layout changes.
//!
//! Not for hand-written code: use the items from their home modules.

pub use crate::client::{Client, Transport};
pub use crate::message::{IntoRequest, Message, Request, Response};
pub use crate::server::{serve_unary, ServiceHandler, UnaryCall, UnaryReply};
pub use crate::{Code, ConnectError, Idempotency, LocalBoxFuture, MethodDescriptor};
pub use std::rc::Rc;
