//! The `workmesh.v1.Registry` API over the [`Store`].
//!
//! Handlers make no `await` between their storage calls (until the final
//! alarm check), so each call's reads and writes run inside the object's
//! input gate and its writes commit together. That does not undo the writes
//! before a storage error, though: `ReportOutcomes`, whose id marks the batch
//! as counted, runs in one explicit transaction so a failure leaves nothing.

use workmesh::codegen::{Request, Response};
use workmesh::proto::v1::registry_server::Registry;
use workmesh::proto::v1::{
    BreakerState, DeregisterRequest, DeregisterResponse, DrainRequest, DrainResponse, HealthState,
    HeartbeatRequest, HeartbeatResponse, ListRequest, ListResponse, Outcome, RegisterRequest,
    RegisterResponse, ReportOutcomesRequest, ReportOutcomesResponse, ResolveRequest,
    ResolveResponse, SetWeightsRequest, SetWeightsResponse,
};
use workmesh::{ConnectError, Runtime};
use workmesh_worker::WorkerRuntime;

use crate::model::{self, Counts, RegistryConfig};
use crate::store::Store;
use crate::transaction::transaction;

pub struct RegistryService {
    store: Store,
    /// The object's storage, for the health check alarm.
    storage: worker::Storage,
    config: RegistryConfig,
}

impl RegistryService {
    pub fn new(store: Store, storage: worker::Storage, config: RegistryConfig) -> Self {
        if let Err(e) = store.migrate() {
            // Requests will fail with the storage error; the object stays up
            // so the error is visible to callers rather than a crash loop.
            worker::console_error!("registry schema migration failed: {e}");
        }
        RegistryService {
            store,
            storage,
            config,
        }
    }

    /// Makes sure the health check alarm will run; registered instances are
    /// probed from then on. A storage failure here fails the call, so the
    /// client retries rather than sitting unprobed.
    async fn ensure_alarm(&self) -> Result<(), ConnectError> {
        crate::health::ensure_alarm(&self.storage, self.config.health.interval_ms)
            .await
            .map_err(|e| ConnectError::internal(format!("scheduling health checks: {e}")))
    }

    /// Adds one reported outcome to its instance: totals, breaker state,
    /// streak and window; ejects the instance when it is an outlier and the
    /// service's ejection share allows, and then says so. Unknown instances
    /// are skipped (they expired or were deregistered since the caller
    /// resolved them).
    fn apply_outcome(&self, outcome: &Outcome, now: i64) -> Result<Option<String>, ConnectError> {
        let id = outcome.instance_id.as_str();
        let Some(mut passive) = self.store.passive(id)? else {
            return Ok(None);
        };
        let config = &self.config.ejection;
        let counts = Counts {
            successes: outcome.successes,
            failures: outcome.failures,
        };
        passive.totals = passive.totals.plus(counts);
        let reported = BreakerState::try_from(outcome.breaker_state).unwrap_or_default();
        passive.breaker = model::breaker_after_report(passive.breaker, reported, now);
        passive.state = model::record_outcome(passive.state, counts, now, config);
        let ttl = i64::from(self.config.heartbeat_ttl_ms);
        let live = now - passive.last_heartbeat_ms <= ttl;
        let mut ejection = None;
        if let Some(reason) = model::outlier(&passive.state, now, config).filter(|_| live) {
            let (instances, already) =
                self.store
                    .ejection_share(&passive.service, now - ttl, now)?;
            if model::may_eject(instances, already, config.max_percent) {
                passive.state = model::eject(passive.state, now, config);
                ejection = Some(format!(
                    "ejected {id} ({}) for {} ms (ejection {}): {reason}",
                    passive.service,
                    passive.state.ejected_until_ms - now,
                    passive.state.times_ejected
                ));
            }
        }
        self.store.save_passive(id, &passive, ejection.is_some())?;
        Ok(ejection)
    }
}

fn now_ms() -> i64 {
    WorkerRuntime.now().since_epoch().as_millis() as i64
}

fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, ConnectError> {
    match value.trim() {
        "" => Err(ConnectError::invalid_argument(format!(
            "{field} is required"
        ))),
        v => Ok(v),
    }
}

impl Registry for RegistryService {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, ConnectError> {
        let instance = request
            .into_inner()
            .instance
            .ok_or_else(|| ConnectError::invalid_argument("instance is required"))?;
        let mut instance = model::validate_registration(instance)?;
        let now = now_ms();
        let previous = self.store.get(&instance.instance_id)?;
        instance.registered_at_ms = previous.as_ref().map_or(now, |p| p.registered_at_ms);
        instance.last_heartbeat_ms = now;
        // Until active health checks say otherwise, a live registrant is healthy.
        instance.health = previous
            .as_ref()
            .map_or(HealthState::Healthy as i32, |p| p.health);
        self.store.upsert(&instance)?;
        self.ensure_alarm().await?;
        let stored = self.store.get(&instance.instance_id)?.unwrap_or(instance);
        Ok(Response::new(RegisterResponse {
            instance: Some(stored),
            heartbeat_interval_ms: self.config.heartbeat_interval_ms(),
        }))
    }

    async fn deregister(
        &self,
        request: Request<DeregisterRequest>,
    ) -> Result<Response<DeregisterResponse>, ConnectError> {
        let id = required("instance_id", &request.get_ref().instance_id)?;
        Ok(Response::new(DeregisterResponse {
            removed: self.store.remove(id)?,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, ConnectError> {
        let id = required("instance_id", &request.get_ref().instance_id)?;
        let known = self.store.heartbeat(id, now_ms())?;
        if known {
            // Instances registered before health checks existed get probed too.
            self.ensure_alarm().await?;
        }
        Ok(Response::new(HeartbeatResponse { known }))
    }

    async fn resolve(
        &self,
        request: Request<ResolveRequest>,
    ) -> Result<Response<ResolveResponse>, ConnectError> {
        let request = request.into_inner();
        let service = required("service", &request.service)?;
        let all = self.store.list(Some(service))?;
        if all.is_empty() {
            return Err(ConnectError::not_found(format!(
                "no instances of {service} are registered"
            )));
        }
        let now = now_ms();
        let ttl = self.config.heartbeat_ttl_ms;
        let routable: Vec<_> = all
            .into_iter()
            .filter(|i| model::is_routable(i, now, ttl))
            .map(|i| model::as_seen(i, now))
            .collect();
        let version_token = model::version_token(self.store.generation()?, &routable);
        if !request.known_version_token.is_empty() && request.known_version_token == version_token {
            return Ok(Response::new(ResolveResponse {
                version_token,
                not_modified: true,
                ..Default::default()
            }));
        }
        Ok(Response::new(ResolveResponse {
            instances: routable,
            version_token,
            not_modified: false,
            version_weights: self.store.version_weights(service)?,
        }))
    }

    async fn list(
        &self,
        request: Request<ListRequest>,
    ) -> Result<Response<ListResponse>, ConnectError> {
        let service = request.get_ref().service.trim();
        let filter = (!service.is_empty()).then_some(service);
        let now = now_ms();
        let instances = self.store.list(filter)?;
        Ok(Response::new(ListResponse {
            instances: instances
                .into_iter()
                .map(|i| model::as_seen(i, now))
                .collect(),
        }))
    }

    async fn set_weights(
        &self,
        request: Request<SetWeightsRequest>,
    ) -> Result<Response<SetWeightsResponse>, ConnectError> {
        let request = request.into_inner();
        let service = required("service", &request.service)?;
        if self.store.list(Some(service))?.is_empty() {
            return Err(ConnectError::not_found(format!(
                "no instances of {service} are registered"
            )));
        }
        if !request.version_weights.is_empty() && request.version_weights.values().all(|w| *w == 0)
        {
            return Err(ConnectError::invalid_argument(
                "version_weights must give at least one version a weight",
            ));
        }
        self.store
            .set_version_weights(service, &request.version_weights)?;
        Ok(Response::new(SetWeightsResponse {
            version_weights: self.store.version_weights(service)?,
        }))
    }

    async fn drain(
        &self,
        request: Request<DrainRequest>,
    ) -> Result<Response<DrainResponse>, ConnectError> {
        let id = required("instance_id", &request.get_ref().instance_id)?;
        if !self.store.set_draining(id)? {
            return Err(ConnectError::not_found(format!("no instance {id:?}")));
        }
        Ok(Response::new(DrainResponse {
            instance: self.store.get(id)?,
        }))
    }

    async fn report_outcomes(
        &self,
        request: Request<ReportOutcomesRequest>,
    ) -> Result<Response<ReportOutcomesResponse>, ConnectError> {
        let request = request.into_inner();
        // The whole batch is checked before anything is stored, so a bad
        // entry leaves no partial report behind.
        model::validate_report(&request.report_id, &request.outcomes)?;
        let now = now_ms();
        // The id and the outcomes are stored in one transaction: a storage
        // error halfway leaves neither, so the client's retry counts the
        // whole batch rather than being skipped as already seen. A repeated
        // id (a retry of a batch that was stored) is acknowledged without
        // counting again.
        let ejections = transaction(&self.storage, || {
            let mut ejections = Vec::new();
            if self.store.remember_report(&request.report_id, now)? {
                for outcome in &request.outcomes {
                    ejections.extend(self.apply_outcome(outcome, now)?);
                }
            }
            Ok(ejections)
        })?;
        // Logged once committed, so a rolled-back ejection is not reported.
        for ejection in ejections {
            worker::console_log!("registry: {ejection}");
        }
        // The alarm forgets old report ids.
        self.ensure_alarm().await?;
        Ok(Response::new(ReportOutcomesResponse {}))
    }
}
