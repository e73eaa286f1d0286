//! `workmesh.v1.Health/Check` for every Worker, with no code in the service.
//!
//! The registry's active health checks and `cargo workmesh up` probe it. A
//! Worker that serves its own `workmesh.v1.Health` keeps it; otherwise
//! [`serve`](crate::serve) answers from the router: `SERVING` for the Worker as
//! a whole (empty `service`) and for each service it routes,
//! `SERVICE_UNKNOWN` for anything else.

use workmesh::codegen::{Request, Response};
use workmesh::proto::v1::health_server::{Health, HealthServer};
use workmesh::proto::v1::{CheckRequest, CheckResponse, ServingStatus};
use workmesh::server::Router;
use workmesh::ConnectError;

pub(crate) const HEALTH_SERVICE: &str = "workmesh.v1.Health";

/// Health answered from the services a router serves.
struct RouterHealth {
    services: Vec<&'static str>,
}

impl Health for RouterHealth {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, ConnectError> {
        let service = request.get_ref().service.as_str();
        let status = if service.is_empty() || self.services.contains(&service) {
            ServingStatus::Serving
        } else {
            ServingStatus::ServiceUnknown
        };
        Ok(Response::new(CheckResponse {
            status: status as i32,
        }))
    }
}

/// A router serving only the health of `router`'s services.
pub(crate) fn health_router(router: &Router) -> Router {
    Router::new().add(HealthServer::new(RouterHealth {
        services: router.service_names(),
    }))
}
