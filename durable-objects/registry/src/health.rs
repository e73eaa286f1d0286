//! Active health checks: the registry object's alarm probes every live
//! instance's `workmesh.v1.Health/Check` and flips its health on consecutive
//! results ([`model::after_probe`]). The same alarm does the registry's
//! housekeeping: it deletes long-silent instances, forgets `ReportOutcomes`
//! ids after [`REPORT_ID_RETENTION_MS`], and applies the decay of
//! `times_ejected`.
//!
//! Endpoints that name a binding are called through the registry Worker's own
//! service bindings (`[[services]]` in wrangler/registry.toml): an instance
//! registered with binding `CATALOG` is probed through the registry's
//! `CATALOG` binding. URL endpoints are fetched over the network.

use std::time::Duration;

use futures_util::future::{self, Either};
use wasm_bindgen::JsValue;
use workmesh::proto::v1::instance::Endpoint;
use workmesh::proto::v1::Instance;
use workmesh::Runtime;
use workmesh_worker::WorkerRuntime;

use crate::model::{self, RegistryConfig, REPORT_ID_RETENTION_MS};
use crate::store::Store;

const CHECK_PATH: &str = "/workmesh.v1.Health/Check";

/// Makes sure an alarm is pending, so registered instances get probed.
pub async fn ensure_alarm(storage: &worker::Storage, interval_ms: u32) -> worker::Result<()> {
    if storage.get_alarm().await?.is_none() {
        storage.set_alarm(i64::from(interval_ms)).await?;
    }
    Ok(())
}

/// One round: purge long-silent instances and old report ids, decay
/// ejection counts, probe the live instances, record the results. Returns
/// whether anything remains to look after (the alarm should re-arm).
pub async fn run_round(
    store: &Store,
    env: &worker::Env,
    registry: &RegistryConfig,
) -> Result<bool, workmesh::ConnectError> {
    let config = &registry.health;
    let now = now_ms();
    let purge_after = registry.purge_after_ms();
    let purged = store.purge_silent_since(now - purge_after)?;
    if purged > 0 {
        worker::console_log!(
            "registry: purged {purged} instance(s) silent for over {purge_after} ms"
        );
    }
    store.forget_reports_before(now - REPORT_ID_RETENTION_MS)?;
    store.decay_ejections(now, registry.ejection.decay_ms)?;
    let live: Vec<Instance> = store
        .list(None)?
        .into_iter()
        .filter(|i| model::is_live(i, now, registry.heartbeat_ttl_ms))
        .collect();
    let timeout = Duration::from_millis(u64::from(config.timeout_ms));
    let results = future::join_all(live.iter().map(|i| probe(env, i, timeout))).await;
    for (instance, result) in live.iter().zip(results) {
        // Read the state now, not before the probes: calls served while
        // they ran may have changed or removed the instance.
        let Some((health, counters)) = store.probe_state(&instance.instance_id)? else {
            continue;
        };
        let out = model::after_probe(health, counters, result.is_ok(), config);
        if out.flipped {
            // Only flips are logged: a failing instance would otherwise log every round.
            let why = result.err().unwrap_or_else(|| "probes pass".into());
            worker::console_log!(
                "registry: {} ({}) is now {}: {why}",
                instance.instance_id,
                instance.service,
                out.health.as_str_name()
            );
        }
        store.record_probe(&instance.instance_id, out.health, out.counters, out.flipped)?;
    }
    Ok(store.count()? > 0 || store.report_count()? > 0)
}

fn now_ms() -> i64 {
    WorkerRuntime.now().since_epoch().as_millis() as i64
}

/// Probes one instance within `timeout`; `Err` says why it failed.
async fn probe(env: &worker::Env, instance: &Instance, timeout: Duration) -> Result<(), String> {
    let check = Box::pin(check(env, instance));
    let deadline = Box::pin(worker::Delay::from(timeout));
    match future::select(check, deadline).await {
        Either::Left((result, _)) => result,
        Either::Right(((), _)) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

async fn check(env: &worker::Env, instance: &Instance) -> Result<(), String> {
    let mut response = match &instance.endpoint {
        Some(Endpoint::Binding(binding)) => {
            let fetcher = env.service(binding).map_err(|e| {
                format!("the registry Worker has no service binding {binding:?}: {e}")
            })?;
            let request = check_request(&format!("https://{binding}{CHECK_PATH}"))?;
            fetcher
                .fetch_request(request)
                .await
                .map_err(|e| format!("fetch failed: {e}"))?
        }
        Some(Endpoint::Url(url)) => {
            let request = check_request(&format!("{}{CHECK_PATH}", url.trim_end_matches('/')))?;
            worker::Fetch::Request(request)
                .send()
                .await
                .map_err(|e| format!("fetch failed: {e}"))?
        }
        None => return Err("no endpoint".into()),
    };
    let status = response.status_code();
    let body = response
        .text()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?;
    if status != 200 {
        return Err(format!("HTTP {status}: {}", truncate(&body)));
    }
    if serving(&body) {
        Ok(())
    } else {
        Err(format!("not serving: {}", truncate(&body)))
    }
}

fn check_request(url: &str) -> Result<worker::Request, String> {
    let headers = worker::Headers::new();
    for (name, value) in [
        ("content-type", "application/json"),
        ("connect-protocol-version", "1"),
    ] {
        headers
            .set(name, value)
            .map_err(|e| format!("building the request: {e}"))?;
    }
    let mut init = worker::RequestInit::new();
    init.with_method(worker::Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str("{}")));
    worker::Request::new_with_init(url, &init).map_err(|e| format!("building the request: {e}"))
}

/// True when a `CheckResponse` in Connect JSON says `SERVING` (by name or number).
fn serving(body: &str) -> bool {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
        return false;
    };
    match value.get("status") {
        Some(serde_json::Value::String(s)) => s == "SERVING_STATUS_SERVING",
        Some(serde_json::Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

fn truncate(body: &str) -> &str {
    match body.char_indices().nth(200) {
        Some((i, _)) => &body[..i],
        None => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_serving_answer_passes() {
        assert!(serving(r#"{"status":"SERVING_STATUS_SERVING"}"#));
        assert!(serving(r#"{"status":1}"#));
        assert!(!serving(r#"{"status":"SERVING_STATUS_NOT_SERVING"}"#));
        assert!(!serving(r#"{"status":"SERVING_STATUS_SERVICE_UNKNOWN"}"#));
        assert!(!serving("{}"));
        assert!(!serving("not json"));
    }

    #[test]
    fn truncate_keeps_short_bodies_and_cuts_on_char_boundaries() {
        assert_eq!(truncate("short"), "short");
        let long = "é".repeat(300);
        assert_eq!(truncate(&long).chars().count(), 200);
    }
}
