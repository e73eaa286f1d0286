//! The gateway: the mesh's edge.
//!
//! Any Connect client calls the shop's services here, with POST (proto or
//! JSON) or, for `NO_SIDE_EFFECTS` methods, GET. The gateway never decodes a
//! message: each routed service is a [`Forward`] in an ordinary [`Router`],
//! so `serve` does the protocol checks, the deadline and the SERVER span
//! (the root of the trace) exactly as for any Worker, and the bytes go on
//! over a service binding through `mesh_transport` — retries, breaker,
//! deadline propagation and a CLIENT span per attempt, with the contract's
//! method descriptors deciding what is safe to retry.
//!
//! A caller's `traceparent` is joined like at any hop (W3C); without one,
//! the gateway's SERVER span is the root of the trace.
//!
//! Configuration (vars, see `wrangler/gateway.toml`):
//! - `WORKMESH_ROUTES`: a JSON object, service name → service binding;
//!   unset, [`DEFAULT_ROUTES`]. Only services whose contracts this crate is
//!   built with ([`CONTRACTS`]) can be routed.
//! - `WORKMESH_GATEWAY_TOKEN` (var or secret): when set, every call needs
//!   `Authorization: Bearer <token>`, else `unauthenticated`.
//! - `WORKMESH_GATEWAY_FORWARD_COOKIES`: `true` (or `1`) forwards callers'
//!   `Cookie` header to the services and their `Set-Cookie` back. Unset
//!   (the default), cookies for the edge domain never reach internal
//!   services and services cannot set cookies on it.
//!
//! What callers see of failures: errors a service answers (its Connect
//! errors) pass through unchanged; failures before any answer (a failed
//! fetch, an open breaker, load shedding) keep their code with a generic
//! message, the original going to the logs and the gateway's trace.

use std::cell::RefCell;
use std::rc::Rc;

use shop_contracts::v1::{catalog_service_methods, order_service_methods};
use worker::{event, Context, Env};
use workmesh::gateway::{Forward, RouteTable, ServiceContract};
use workmesh::ConnectError;
use workmesh_worker::{mesh_transport, Router};

/// The var holding the route table.
pub const ROUTES_VAR: &str = "WORKMESH_ROUTES";
/// The var (or secret) holding the bearer token callers must present.
pub const TOKEN_VAR: &str = "WORKMESH_GATEWAY_TOKEN";
/// The var that, `true` or `1`, forwards cookies both ways.
pub const FORWARD_COOKIES_VAR: &str = "WORKMESH_GATEWAY_FORWARD_COOKIES";

/// Every service of the shop, by the binding of the Worker that serves it.
pub const DEFAULT_ROUTES: &str =
    r#"{"shop.v1.OrderService": "ORDERS", "shop.v1.CatalogService": "CATALOG"}"#;

/// The contracts the gateway can route: their methods' idempotency decides
/// retries and GET.
pub const CONTRACTS: [ServiceContract; 2] = [
    ServiceContract {
        service: order_service_methods::SERVICE_NAME,
        methods: order_service_methods::ALL,
    },
    ServiceContract {
        service: catalog_service_methods::SERVICE_NAME,
        methods: catalog_service_methods::ALL,
    },
];

/// A route with its binding name interned, as `mesh_transport` wants it.
type Routes = Rc<Vec<(ServiceContract, &'static str)>>;

thread_local! {
    static ROUTES: RefCell<Option<Routes>> = const { RefCell::new(None) };
}

#[event(fetch)]
async fn fetch(req: worker::Request, env: Env, ctx: Context) -> worker::Result<worker::Response> {
    match router(&env) {
        Ok(router) => workmesh_worker::serve(&router, req, &env, &ctx).await,
        Err(error) => workmesh_worker::error_to_worker(&error),
    }
}

/// One `Forward` per route, each over its binding's isolate-wide stack.
fn router(env: &Env) -> Result<Router, ConnectError> {
    let token = env
        .secret(TOKEN_VAR)
        .or_else(|_| env.var(TOKEN_VAR))
        .map(|value| value.to_string())
        .unwrap_or_default();
    let cookies = forward_cookies(env.var(FORWARD_COOKIES_VAR).ok().map(|v| v.to_string()));
    let mut router = Router::new();
    for (contract, binding) in routes(env)?.iter() {
        let transport = mesh_transport(env, binding, contract.service)?;
        router = router.add(
            Forward::new(contract.service, contract.methods, transport)
                .with_bearer_token(token.as_str())
                .forward_cookies(cookies),
        );
    }
    Ok(router)
}

/// Whether `WORKMESH_GATEWAY_FORWARD_COOKIES` asks for cookies to be
/// forwarded: `true` or `1` (any case, spaces ignored); anything else, or
/// unset, keeps them at the edge.
fn forward_cookies(value: Option<String>) -> bool {
    value.is_some_and(|v| {
        let v = v.trim();
        v == "1" || v.eq_ignore_ascii_case("true")
    })
}

/// The route table, parsed once per isolate.
fn routes(env: &Env) -> Result<Routes, ConnectError> {
    if let Some(routes) = ROUTES.with(|r| r.borrow().clone()) {
        return Ok(routes);
    }
    let json = env.var(ROUTES_VAR).ok().map(|v| v.to_string());
    let table = route_table(json.as_deref())?;
    let routes: Routes = Rc::new(
        table
            .routes()
            .iter()
            // Bindings are named once per isolate and live as long as it:
            // leaking them is bounded by the size of the route table.
            .map(|route| {
                let binding: &'static str = Box::leak(route.target.clone().into_boxed_str());
                (route.contract, binding)
            })
            .collect(),
    );
    ROUTES.with(|r| *r.borrow_mut() = Some(routes.clone()));
    Ok(routes)
}

/// The table from `WORKMESH_ROUTES`, or [`DEFAULT_ROUTES`] when it is unset
/// or blank; a bad table is `failed_precondition` naming the var.
fn route_table(json: Option<&str>) -> Result<RouteTable, ConnectError> {
    let json = json
        .map(str::trim)
        .filter(|j| !j.is_empty())
        .unwrap_or(DEFAULT_ROUTES);
    RouteTable::from_json(json, &CONTRACTS).map_err(|mut error| {
        error.message = format!("{ROUTES_VAR}: {}", error.message);
        error
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use workmesh::{Code, Idempotency};

    #[test]
    fn the_default_routes_cover_the_shop_with_its_contracts() {
        let table = route_table(None).expect("the default routes are valid");
        let orders = table.get("shop.v1.OrderService").expect("orders routed");
        assert_eq!(orders.target, "ORDERS");
        let create = orders
            .contract
            .methods
            .iter()
            .find(|m| m.method == "CreateOrder")
            .expect("CreateOrder");
        assert_eq!(create.idempotency, Idempotency::Idempotent);
        let catalog = table.get("shop.v1.CatalogService").expect("catalog routed");
        assert_eq!(catalog.target, "CATALOG");
        assert!(catalog
            .contract
            .methods
            .iter()
            .any(|m| m.method == "GetProduct" && m.idempotency == Idempotency::NoSideEffects));
        assert_eq!(
            route_table(Some("  ")).expect("blank is the default"),
            table
        );
    }

    #[test]
    fn cookies_are_forwarded_only_when_the_var_says_so() {
        for on in ["true", "1", " TRUE "] {
            assert!(forward_cookies(Some(on.into())), "{on:?}");
        }
        for off in ["", "false", "0", "yes please"] {
            assert!(!forward_cookies(Some(off.into())), "{off:?}");
        }
        assert!(!forward_cookies(None));
    }

    #[test]
    fn a_configured_table_replaces_the_default_and_is_checked() {
        let table = route_table(Some(r#"{"shop.v1.CatalogService": "PRODUCTS"}"#)).expect("valid");
        assert_eq!(table.routes().len(), 1);
        assert_eq!(table.routes()[0].target, "PRODUCTS");
        let error = route_table(Some(r#"{"shop.v1.Payments": "PAY"}"#)).expect_err("unknown");
        assert_eq!(error.code, Code::FailedPrecondition);
        assert!(
            error.message.starts_with("WORKMESH_ROUTES: "),
            "{}",
            error.message
        );
    }
}
