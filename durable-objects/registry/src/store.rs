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
use workmesh::proto::v1::{HealthState, Instance};
use workmesh::ConnectError;

use crate::model::ProbeCounters;

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

const SELECT_INSTANCE: &str = "SELECT instance_id, service, version, endpoint_kind, endpoint, weight, zone, metadata, \
     health, registered_at_ms, last_heartbeat_ms, ejected_until_ms, times_ejected, draining FROM instances";

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
        // Passive-health fields are filled once outcome reports are stored.
        ..Instance::default()
    })
}

fn storage_error(e: worker::Error) -> ConnectError {
    ConnectError::internal(format!("registry storage: {e}"))
}
