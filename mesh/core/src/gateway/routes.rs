//! Which service the gateway sends where.

use crate::{ConnectError, MethodDescriptor};

/// A service the gateway knows the contract of: its full name and methods
/// (the generated `<service>_methods::{SERVICE_NAME, ALL}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceContract {
    pub service: &'static str,
    pub methods: &'static [MethodDescriptor],
}

/// One route: calls to `contract.service` go to `target` (a service binding
/// name in a Worker).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub contract: ServiceContract,
    pub target: String,
}

/// The gateway's routes, validated: every routed service has a known
/// contract, every target is named, no service is routed twice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Routes from a JSON object mapping service names to targets,
    /// e.g. `{"shop.v1.OrderService": "ORDERS"}`. A service not in
    /// `contracts` (the gateway cannot know its methods' retry and GET
    /// rules), an empty target, or anything but such an object is
    /// `failed_precondition`, naming the problem.
    pub fn from_json(json: &str, contracts: &[ServiceContract]) -> Result<Self, ConnectError> {
        let bad = |why: String| ConnectError::failed_precondition(format!("routes: {why}"));
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let mut pairs = Vec::with_capacity(map.len());
        for (service, target) in map {
            let target = target
                .as_str()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| bad(format!("{service}: the target must be a non-empty string")))?;
            pairs.push((service, target.to_owned()));
        }
        Self::new(pairs, contracts)
    }

    /// Routes from `(service, target)` pairs, validated as in
    /// [`from_json`](Self::from_json).
    pub fn new(
        pairs: impl IntoIterator<Item = (String, String)>,
        contracts: &[ServiceContract],
    ) -> Result<Self, ConnectError> {
        let bad = |why: String| ConnectError::failed_precondition(format!("routes: {why}"));
        let mut routes: Vec<Route> = Vec::new();
        for (service, target) in pairs {
            let contract = contracts
                .iter()
                .find(|c| c.service == service)
                .copied()
                .ok_or_else(|| {
                    let known: Vec<_> = contracts.iter().map(|c| c.service).collect();
                    bad(format!(
                        "{service} has no contract in this gateway (known: {})",
                        known.join(", ")
                    ))
                })?;
            if target.trim().is_empty() {
                return Err(bad(format!("{service}: empty target")));
            }
            if routes.iter().any(|r| r.contract.service == service) {
                return Err(bad(format!("{service} is routed twice")));
            }
            routes.push(Route { contract, target });
        }
        Ok(RouteTable { routes })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route of `service`, if it is routed.
    pub fn get(&self, service: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.contract.service == service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Code, Idempotency};

    static ORDER_METHODS: [MethodDescriptor; 1] = [MethodDescriptor {
        service: "shop.v1.OrderService",
        method: "CreateOrder",
        idempotency: Idempotency::Idempotent,
    }];
    const CONTRACTS: [ServiceContract; 2] = [
        ServiceContract {
            service: "shop.v1.OrderService",
            methods: &ORDER_METHODS,
        },
        ServiceContract {
            service: "shop.v1.CatalogService",
            methods: &[],
        },
    ];

    #[test]
    fn routes_known_services_to_their_targets() {
        let table = RouteTable::from_json(
            r#"{"shop.v1.OrderService": "ORDERS", "shop.v1.CatalogService": " CATALOG "}"#,
            &CONTRACTS,
        )
        .expect("valid");
        assert_eq!(table.routes().len(), 2);
        let orders = table.get("shop.v1.OrderService").expect("routed");
        assert_eq!(orders.target, "ORDERS");
        assert_eq!(orders.contract.methods, &ORDER_METHODS);
        assert_eq!(
            table
                .get("shop.v1.CatalogService")
                .map(|r| r.target.as_str()),
            Some("CATALOG")
        );
        assert!(table.get("shop.v1.PaymentService").is_none());
    }

    #[test]
    fn rejects_unknown_services_empty_targets_and_non_objects() {
        for (json, needle) in [
            (r#"{"shop.v1.PaymentService": "PAYMENTS"}"#, "no contract"),
            (r#"{"shop.v1.OrderService": ""}"#, "non-empty"),
            (r#"{"shop.v1.OrderService": 7}"#, "non-empty"),
            (r#"["shop.v1.OrderService"]"#, "routes:"),
            ("not json", "routes:"),
        ] {
            let error = RouteTable::from_json(json, &CONTRACTS).expect_err(json);
            assert_eq!(error.code, Code::FailedPrecondition, "{json}");
            assert!(error.message.contains(needle), "{json}: {}", error.message);
        }
        let twice = RouteTable::new(
            [
                ("shop.v1.OrderService".to_owned(), "A".to_owned()),
                ("shop.v1.OrderService".to_owned(), "B".to_owned()),
            ],
            &CONTRACTS,
        )
        .expect_err("routed twice");
        assert!(twice.message.contains("twice"));
    }
}
