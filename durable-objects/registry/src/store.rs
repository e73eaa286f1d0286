//! Instances in the Durable Object's SQLite storage.
//!
//! Durable Object SQL calls are synchronous and run inside the object's input
//! gate, so each method here is atomic with respect to other requests.
//! Schema changes are numbered migrations, applied once, in order, when the
//! object starts.

use std::collections::HashMap;

use serde::Deserialize;
use worker::{SqlStorage, SqlStorageValue};
use workmesh::proto::v1::instance::Endpoint;
use workmesh::proto::v1::{BreakerState, HealthState, Instance};
use workmesh::ConnectError;

use crate::model::{Counts, OutcomeWindow, PassiveState, ProbeCounters, ReportedBreaker};

/// Numbered schema migrations. Append only: a deployed registry keeps its data.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE instances (
        instance_id       TEXT PRIMARY KEY,
        service           TEXT NOT NULL,
        version           TEXT NOT NULL,
        endpoint_kind     TEXT NOT NULL CHECK (endpoint_kind IN ('binding', 'url')),
        endpoint          TEXT NOT NULL,
        weight            INTEGER NOT NULL,
        zone              TEXT NOT NULL,
        metadata          TEXT NOT NULL,
        health            INTEGER NOT NULL,
        registered_at_ms  INTEGER NOT NULL,
        last_heartbeat_ms INTEGER NOT NULL,
        ejected_until_ms  INTEGER NOT NULL DEFAULT 0,
        times_ejected     INTEGER NOT NULL DEFAULT 0,
        draining          INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX instances_by_service ON instances (service);
    CREATE TABLE version_weights (
        service TEXT NOT NULL,
        version TEXT NOT NULL,
        weight  INTEGER NOT NULL,
        PRIMARY KEY (service, version)
    );
    CREATE TABLE generation (id INTEGER PRIMARY KEY CHECK (id = 0), value INTEGER NOT NULL);
    INSERT INTO generation (id, value) VALUES (0, 0);
",
    // 1: active health checks' consecutive probe results.
    "
    ALTER TABLE instances ADD COLUMN probe_failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE instances ADD COLUMN probe_successes INTEGER NOT NULL DEFAULT 0;
",
    // 2: passive health: reported outcome totals, the worst recent breaker
    // state, the ejection streak and window, and the report ids already seen.
    "
    ALTER TABLE instances ADD COLUMN reported_successes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE instances ADD COLUMN reported_failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE instances ADD COLUMN breaker_state INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE instances ADD COLUMN breaker_reported_at_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE instances ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE instances ADD COLUMN window_start_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE instances ADD COLUMN window_successes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE instances ADD COLUMN window_failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE instances ADD COLUMN previous_successes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE instances ADD COLUMN previous_failures INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE outcome_reports (
        report_id      TEXT PRIMARY KEY,
        received_at_ms INTEGER NOT NULL
    );
    CREATE INDEX outcome_reports_by_time ON outcome_reports (received_at_ms);
",
];

pub struct Store {
    sql: SqlStorage,
}

#[derive(Deserialize)]
struct InstanceRow {
    instance_id: String,
    service: String,
    version: String,
    endpoint_kind: String,
    endpoint: String,
    weight: i64,
    zone: String,
    metadata: String,
    health: i32,
    registered_at_ms: i64,
    last_heartbeat_ms: i64,
    ejected_until_ms: i64,
    times_ejected: i64,
    draining: i64,
    reported_successes: i64,
    reported_failures: i64,
    breaker_state: i32,
    breaker_reported_at_ms: i64,
}

/// What `ReportOutcomes` reads and writes of one instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Passive {
    pub service: String,
    pub last_heartbeat_ms: i64,
    pub totals: Counts,
    pub breaker: ReportedBreaker,
    pub state: PassiveState,
}

#[derive(Deserialize)]
struct PassiveRow {
    service: String,
    last_heartbeat_ms: i64,
    reported_successes: i64,
    reported_failures: i64,
    breaker_state: i32,
    breaker_reported_at_ms: i64,
    consecutive_failures: i64,
    window_start_ms: i64,
    window_successes: i64,
    window_failures: i64,
    previous_successes: i64,
    previous_failures: i64,
    times_ejected: i64,
    ejected_until_ms: i64,
}

#[derive(Deserialize)]
struct DecayRow {
    instance_id: String,
    times_ejected: i64,
    ejected_until_ms: i64,
}

#[derive(Deserialize)]
struct ShareRow {
    live: i64,
    ejected: Option<i64>,
}

#[derive(Deserialize)]
struct ProbeRow {
    health: i32,
    probe_failures: i64,
    probe_successes: i64,
}

#[derive(Deserialize)]
struct Count {
    n: i64,
}

#[derive(Deserialize)]
struct WeightRow {
    version: String,
    weight: i64,
}

const SELECT_INSTANCE: &str =
    "SELECT instance_id, service, version, endpoint_kind, endpoint, weight, zone, metadata, \
     health, registered_at_ms, last_heartbeat_ms, ejected_until_ms, times_ejected, draining, \
     reported_successes, reported_failures, breaker_state, breaker_reported_at_ms FROM instances";

impl Store {
    pub fn new(sql: SqlStorage) -> Self {
        Store { sql }
    }

    /// Applies the migrations this object has not seen yet.
    pub fn migrate(&self) -> Result<(), ConnectError> {
        self.exec(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)",
            vec![],
        )?;
        let applied: Vec<Count> =
            self.query("SELECT COUNT(*) AS n FROM schema_migrations", vec![])?;
        let applied = applied.first().map_or(0, |c| c.n) as usize;
        for (version, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
            self.exec(migration, vec![])?;
            self.exec(
                "INSERT INTO schema_migrations (version) VALUES (?)",
                vec![(version as i64).into()],
            )?;
        }
        Ok(())
    }

    pub fn upsert(&self, instance: &Instance) -> Result<(), ConnectError> {
        let (kind, endpoint) = match &instance.endpoint {
            Some(Endpoint::Binding(b)) => ("binding", b.as_str()),
            Some(Endpoint::Url(u)) => ("url", u.as_str()),
            None => {
                return Err(ConnectError::invalid_argument(
                    "instance endpoint is required",
                ))
            }
        };
        let metadata = serde_json::to_string(&instance.metadata)
            .map_err(|e| ConnectError::internal(format!("encoding metadata: {e}")))?;
        // Re-registering keeps what the registry learned (ejections, drain).
        self.exec(
            "INSERT INTO instances (instance_id, service, version, endpoint_kind, endpoint, weight, zone, metadata, health, registered_at_ms, last_heartbeat_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (instance_id) DO UPDATE SET service = excluded.service, version = excluded.version, \
               endpoint_kind = excluded.endpoint_kind, endpoint = excluded.endpoint, weight = excluded.weight, \
               zone = excluded.zone, metadata = excluded.metadata, last_heartbeat_ms = excluded.last_heartbeat_ms",
            vec![
                instance.instance_id.as_str().into(),
                instance.service.as_str().into(),
                instance.version.as_str().into(),
                kind.into(),
                endpoint.into(),
                i64::from(instance.weight).into(),
                instance.zone.as_str().into(),
                metadata.into(),
                instance.health.into(),
                instance.registered_at_ms.into(),
                instance.last_heartbeat_ms.into(),
            ],
        )?;
        self.bump_generation()
    }

    pub fn get(&self, instance_id: &str) -> Result<Option<Instance>, ConnectError> {
        let rows: Vec<InstanceRow> = self.query(
            &format!("{SELECT_INSTANCE} WHERE instance_id = ?"),
            vec![instance_id.into()],
        )?;
        rows.into_iter().next().map(to_instance).transpose()
    }

    pub fn remove(&self, instance_id: &str) -> Result<bool, ConnectError> {
        let cursor = self.exec(
            "DELETE FROM instances WHERE instance_id = ?",
            vec![instance_id.into()],
        )?;
        let removed = cursor.rows_written() > 0;
        if removed {
            self.bump_generation()?;
        }
        Ok(removed)
    }

    /// Records a heartbeat; false when the instance is unknown (it must register again).
    pub fn heartbeat(&self, instance_id: &str, now_ms: i64) -> Result<bool, ConnectError> {
        let cursor = self.exec(
            "UPDATE instances SET last_heartbeat_ms = ? WHERE instance_id = ?",
            vec![now_ms.into(), instance_id.into()],
        )?;
        // A heartbeat does not bump the generation: the version token already
        // reflects liveness through the set of routable instances.
        Ok(cursor.rows_written() > 0)
    }

    pub fn set_draining(&self, instance_id: &str) -> Result<bool, ConnectError> {
        let cursor = self.exec(
            "UPDATE instances SET draining = 1 WHERE instance_id = ?",
            vec![instance_id.into()],
        )?;
        let changed = cursor.rows_written() > 0;
        if changed {
            self.bump_generation()?;
        }
        Ok(changed)
    }

    /// Every instance, or those of one service, ordered for stable output.
    pub fn list(&self, service: Option<&str>) -> Result<Vec<Instance>, ConnectError> {
        let rows: Vec<InstanceRow> = match service {
            Some(service) => self.query(
                &format!("{SELECT_INSTANCE} WHERE service = ? ORDER BY version, instance_id"),
                vec![service.into()],
            )?,
            None => self.query(
                &format!("{SELECT_INSTANCE} ORDER BY service, version, instance_id"),
                vec![],
            )?,
        };
        rows.into_iter().map(to_instance).collect()
    }

    /// An instance's health and probe counters, if it is still registered.
    pub fn probe_state(
        &self,
        instance_id: &str,
    ) -> Result<Option<(HealthState, ProbeCounters)>, ConnectError> {
        let rows: Vec<ProbeRow> = self.query(
            "SELECT health, probe_failures, probe_successes FROM instances WHERE instance_id = ?",
            vec![instance_id.into()],
        )?;
        let counter = |n: i64| n.clamp(0, i64::from(u32::MAX)) as u32;
        Ok(rows.into_iter().next().map(|r| {
            (
                HealthState::try_from(r.health).unwrap_or(HealthState::Unspecified),
                ProbeCounters {
                    failures: counter(r.probe_failures),
                    successes: counter(r.probe_successes),
                },
            )
        }))
    }

    /// Records a probe's outcome; a health flip bumps the generation, since
    /// it changes what Resolve answers.
    pub fn record_probe(
        &self,
        instance_id: &str,
        health: HealthState,
        counters: ProbeCounters,
        flipped: bool,
    ) -> Result<(), ConnectError> {
        let cursor = self.exec(
            "UPDATE instances SET health = ?, probe_failures = ?, probe_successes = ? WHERE instance_id = ?",
            vec![
                (health as i32).into(),
                i64::from(counters.failures).into(),
                i64::from(counters.successes).into(),
                instance_id.into(),
            ],
        )?;
        if flipped && cursor.rows_written() > 0 {
            self.bump_generation()?;
        }
        Ok(())
    }

    /// Deletes instances whose last heartbeat is before `cutoff_ms`; returns how many.
    pub fn purge_silent_since(&self, cutoff_ms: i64) -> Result<usize, ConnectError> {
        let cursor = self.exec(
            "DELETE FROM instances WHERE last_heartbeat_ms < ?",
            vec![cutoff_ms.into()],
        )?;
        let removed = cursor.rows_written();
        if removed > 0 {
            self.bump_generation()?;
        }
        Ok(removed)
    }

    /// Remembers a `ReportOutcomes` batch id; false when it was seen before
    /// (the batch was already counted).
    pub fn remember_report(&self, report_id: &str, now_ms: i64) -> Result<bool, ConnectError> {
        let cursor = self.exec(
            "INSERT INTO outcome_reports (report_id, received_at_ms) VALUES (?, ?) \
             ON CONFLICT (report_id) DO NOTHING",
            vec![report_id.into(), now_ms.into()],
        )?;
        Ok(cursor.rows_written() > 0)
    }

    /// Forgets report ids received before `cutoff_ms`; returns how many.
    pub fn forget_reports_before(&self, cutoff_ms: i64) -> Result<usize, ConnectError> {
        let cursor = self.exec(
            "DELETE FROM outcome_reports WHERE received_at_ms < ?",
            vec![cutoff_ms.into()],
        )?;
        Ok(cursor.rows_written())
    }

    /// How many report ids are remembered.
    pub fn report_count(&self) -> Result<i64, ConnectError> {
        let rows: Vec<Count> = self.query("SELECT COUNT(*) AS n FROM outcome_reports", vec![])?;
        Ok(rows.first().map_or(0, |c| c.n))
    }

    /// An instance's passive-health state, if it is registered.
    pub fn passive(&self, instance_id: &str) -> Result<Option<Passive>, ConnectError> {
        let rows: Vec<PassiveRow> = self.query(
            "SELECT service, last_heartbeat_ms, reported_successes, reported_failures, breaker_state, \
             breaker_reported_at_ms, consecutive_failures, window_start_ms, window_successes, \
             window_failures, previous_successes, previous_failures, times_ejected, ejected_until_ms \
             FROM instances WHERE instance_id = ?",
            vec![instance_id.into()],
        )?;
        let count = |n: i64| n.max(0) as u64;
        let counts = |successes: i64, failures: i64| Counts {
            successes: count(successes),
            failures: count(failures),
        };
        Ok(rows.into_iter().next().map(|r| Passive {
            service: r.service,
            last_heartbeat_ms: r.last_heartbeat_ms,
            totals: counts(r.reported_successes, r.reported_failures),
            breaker: ReportedBreaker {
                state: BreakerState::try_from(r.breaker_state).unwrap_or_default(),
                at_ms: r.breaker_reported_at_ms,
            },
            state: PassiveState {
                consecutive_failures: count(r.consecutive_failures),
                window: OutcomeWindow {
                    bucket_start_ms: r.window_start_ms,
                    current: counts(r.window_successes, r.window_failures),
                    previous: counts(r.previous_successes, r.previous_failures),
                },
                times_ejected: r.times_ejected.clamp(0, i64::from(u32::MAX)) as u32,
                ejected_until_ms: r.ejected_until_ms,
            },
        }))
    }

    /// Stores an instance's passive-health state. An ejection bumps the
    /// generation, since it changes what Resolve answers; totals and breaker
    /// states do not (they would void every cached answer on every report).
    pub fn save_passive(
        &self,
        instance_id: &str,
        passive: &Passive,
        ejected: bool,
    ) -> Result<(), ConnectError> {
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let state = &passive.state;
        let cursor = self.exec(
            "UPDATE instances SET reported_successes = ?, reported_failures = ?, breaker_state = ?, \
             breaker_reported_at_ms = ?, consecutive_failures = ?, window_start_ms = ?, \
             window_successes = ?, window_failures = ?, previous_successes = ?, previous_failures = ?, \
             times_ejected = ?, ejected_until_ms = ? WHERE instance_id = ?",
            vec![
                int(passive.totals.successes).into(),
                int(passive.totals.failures).into(),
                (passive.breaker.state as i32).into(),
                passive.breaker.at_ms.into(),
                int(state.consecutive_failures).into(),
                state.window.bucket_start_ms.into(),
                int(state.window.current.successes).into(),
                int(state.window.current.failures).into(),
                int(state.window.previous.successes).into(),
                int(state.window.previous.failures).into(),
                i64::from(state.times_ejected).into(),
                state.ejected_until_ms.into(),
                instance_id.into(),
            ],
        )?;
        if ejected && cursor.rows_written() > 0 {
            self.bump_generation()?;
        }
        Ok(())
    }

    /// A service's live instances (heartbeat at or after `live_since_ms`) and
    /// how many of them are ejected at `now_ms`.
    pub fn ejection_share(
        &self,
        service: &str,
        live_since_ms: i64,
        now_ms: i64,
    ) -> Result<(u64, u64), ConnectError> {
        let rows: Vec<ShareRow> = self.query(
            "SELECT COUNT(*) AS live, SUM(ejected_until_ms > ?) AS ejected FROM instances \
             WHERE service = ? AND last_heartbeat_ms >= ?",
            vec![now_ms.into(), service.into(), live_since_ms.into()],
        )?;
        let row = rows.first();
        let live = row.map_or(0, |r| r.live).max(0) as u64;
        let ejected = row.and_then(|r| r.ejected).unwrap_or(0).max(0) as u64;
        Ok((live, ejected))
    }

    /// Applies the decay of `times_ejected` ([`crate::model::decayed`]) to
    /// every instance quiet for at least `decay_ms` at `now_ms`, so List shows
    /// it too; returns how many changed.
    pub fn decay_ejections(&self, now_ms: i64, decay_ms: u32) -> Result<usize, ConnectError> {
        let rows: Vec<DecayRow> = self.query(
            "SELECT instance_id, times_ejected, ejected_until_ms FROM instances \
             WHERE times_ejected > 0 AND ejected_until_ms <= ?",
            vec![now_ms.saturating_sub(i64::from(decay_ms)).into()],
        )?;
        let mut changed = 0;
        for row in rows {
            let state = PassiveState {
                times_ejected: row.times_ejected.clamp(0, i64::from(u32::MAX)) as u32,
                ejected_until_ms: row.ejected_until_ms,
                ..PassiveState::default()
            };
            let after = crate::model::decayed(state, now_ms, decay_ms);
            if after != state {
                self.exec(
                    "UPDATE instances SET times_ejected = ?, ejected_until_ms = ? WHERE instance_id = ?",
                    vec![
                        i64::from(after.times_ejected).into(),
                        after.ejected_until_ms.into(),
                        row.instance_id.as_str().into(),
                    ],
                )?;
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// How many instances are registered, live or not.
    pub fn count(&self) -> Result<i64, ConnectError> {
        let rows: Vec<Count> = self.query("SELECT COUNT(*) AS n FROM instances", vec![])?;
        Ok(rows.first().map_or(0, |c| c.n))
    }

    pub fn version_weights(&self, service: &str) -> Result<HashMap<String, u32>, ConnectError> {
        let rows: Vec<WeightRow> = self.query(
            "SELECT version, weight FROM version_weights WHERE service = ?",
            vec![service.into()],
        )?;
        Ok(rows
            .into_iter()
            .map(|r| (r.version, r.weight.clamp(0, i64::from(u32::MAX)) as u32))
            .collect())
    }

    /// Replaces a service's per-version weights.
    pub fn set_version_weights(
        &self,
        service: &str,
        weights: &HashMap<String, u32>,
    ) -> Result<(), ConnectError> {
        self.exec(
            "DELETE FROM version_weights WHERE service = ?",
            vec![service.into()],
        )?;
        for (version, weight) in weights {
            self.exec(
                "INSERT INTO version_weights (service, version, weight) VALUES (?, ?, ?)",
                vec![
                    service.into(),
                    version.as_str().into(),
                    i64::from(*weight).into(),
                ],
            )?;
        }
        self.bump_generation()
    }

    pub fn generation(&self) -> Result<i64, ConnectError> {
        let rows: Vec<Count> =
            self.query("SELECT value AS n FROM generation WHERE id = 0", vec![])?;
        Ok(rows.first().map_or(0, |c| c.n))
    }

    fn bump_generation(&self) -> Result<(), ConnectError> {
        self.exec(
            "UPDATE generation SET value = value + 1 WHERE id = 0",
            vec![],
        )
        .map(|_| ())
    }

    fn exec(
        &self,
        query: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> Result<worker::SqlCursor, ConnectError> {
        self.sql.exec(query, bindings).map_err(storage_error)
    }

    fn query<T: serde::de::DeserializeOwned>(
        &self,
        query: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> Result<Vec<T>, ConnectError> {
        self.exec(query, bindings)?
            .to_array()
            .map_err(storage_error)
    }
}

fn to_instance(row: InstanceRow) -> Result<Instance, ConnectError> {
    let endpoint = match row.endpoint_kind.as_str() {
        "url" => Endpoint::Url(row.endpoint),
        _ => Endpoint::Binding(row.endpoint),
    };
    let metadata = serde_json::from_str(&row.metadata).map_err(|e| {
        ConnectError::data_loss(format!(
            "instance {} has unreadable metadata: {e}",
            row.instance_id
        ))
    })?;
    Ok(Instance {
        service: row.service,
        instance_id: row.instance_id,
        version: row.version,
        endpoint: Some(endpoint),
        weight: row.weight.clamp(0, i64::from(u32::MAX)) as u32,
        zone: row.zone,
        metadata,
        health: row.health,
        registered_at_ms: row.registered_at_ms,
        last_heartbeat_ms: row.last_heartbeat_ms,
        ejected_until_ms: row.ejected_until_ms,
        times_ejected: row.times_ejected.clamp(0, i64::from(u32::MAX)) as u32,
        draining: row.draining != 0,
        breaker_state: row.breaker_state,
        breaker_reported_at_ms: row.breaker_reported_at_ms,
        reported_successes: row.reported_successes.max(0) as u64,
        reported_failures: row.reported_failures.max(0) as u64,
    })
}

fn storage_error(e: worker::Error) -> ConnectError {
    ConnectError::internal(format!("registry storage: {e}"))
}
