//! `workmesh services`, `workmesh weights` and `workmesh drain`: the registry
//! from the terminal, through the typed `workmesh.v1.Registry` client.
//!
//! Without `--url`, the target is the local mesh Worker whose
//! `WORKMESH_SERVICE` var is `workmesh.v1.Registry`. Connect errors come back
//! as `<code>: <message>` (the `Display` of [`ConnectError`]) and exit 1.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Result};
use workmesh::client::HttpTransport;
use workmesh::proto::v1::registry_client::RegistryClient;
use workmesh::proto::v1::{
    instance::Endpoint, BreakerState, DrainRequest, HealthState, Instance, ListRequest,
    SetWeightsRequest,
};
use workmesh::ConnectError;

use crate::project::Project;

const REGISTRY_SERVICE: &str = "workmesh.v1.Registry";
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The registry's bearer token, for a registry with `WORKMESH_REGISTRY_TOKEN`
/// set (read from the environment so it stays out of shell history).
const TOKEN_ENV: &str = "WORKMESH_REGISTRY_TOKEN";

/// `services [--service S]`: every instance the registry knows, as a table.
pub fn services(project: &Project, service: Option<String>, url: Option<String>) -> Result<()> {
    let (client, base_url) = client(project, url)?;
    let request = ListRequest {
        service: service.unwrap_or_default(),
    };
    let listed = block_on(&base_url, client.list(request))?.into_inner();
    if listed.instances.is_empty() {
        println!("no instances registered");
    } else {
        print!("{}", instances_table(&listed.instances, now_ms()));
    }
    Ok(())
}

/// `weights <service> v1=90 v2=10`: replaces the service's version weights.
pub fn weights(
    project: &Project,
    service: String,
    pairs: &[String],
    url: Option<String>,
) -> Result<()> {
    // Checked before anything is sent: a typo must not half-apply.
    let version_weights = parse_weights(pairs)?;
    let (client, base_url) = client(project, url)?;
    let request = SetWeightsRequest {
        service: service.clone(),
        version_weights: version_weights.into_iter().collect(),
    };
    let set = block_on(&base_url, client.set_weights(request))?.into_inner();
    if set.version_weights.is_empty() {
        println!("{service}: no weights (every version weighs the same)");
    } else {
        println!("{service}:");
        print!(
            "{}",
            weights_table(&set.version_weights.into_iter().collect())
        );
    }
    Ok(())
}

/// `drain <instance-id>`: stops routing new traffic to the instance.
pub fn drain(project: &Project, instance_id: String, url: Option<String>) -> Result<()> {
    let (client, base_url) = client(project, url)?;
    let request = DrainRequest {
        instance_id: instance_id.clone(),
    };
    let drained = block_on(&base_url, client.drain(request))?.into_inner();
    let Some(instance) = drained.instance else {
        bail!("not_found: no instance {instance_id:?} is registered");
    };
    print!("{}", instances_table(&[instance], now_ms()));
    Ok(())
}

fn client(
    project: &Project,
    url: Option<String>,
) -> Result<(RegistryClient<HttpTransport>, String)> {
    let base_url = match url {
        Some(url) => url,
        None => project.local_url(REGISTRY_SERVICE)?,
    };
    let base_url = base_url.trim_end_matches('/').to_string();
    let transport = match std::env::var(TOKEN_ENV) {
        Ok(token) if !token.is_empty() => {
            HttpTransport::with_client(bearer_client(&token)?, base_url.clone())
        }
        _ => HttpTransport::new(base_url.clone()),
    };
    Ok((RegistryClient::new(transport), base_url))
}

/// An HTTP client that sends `Authorization: Bearer <token>` on every call.
fn bearer_client(token: &str) -> Result<reqwest::Client> {
    let mut value = http::HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| anyhow!("{TOKEN_ENV} holds characters a header cannot carry"))?;
    value.set_sensitive(true);
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, value);
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .build()?)
}

/// Runs one call on a current-thread runtime, with an overall deadline.
fn block_on<T>(base_url: &str, call: impl Future<Output = Result<T, ConnectError>>) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = runtime
        .block_on(async { tokio::time::timeout(CALL_TIMEOUT, call).await })
        .map_err(|_| {
            anyhow!(
                "no answer from {base_url} within {} ms",
                CALL_TIMEOUT.as_millis()
            )
        })?;
    // Plain `<code>: <message>`, as main prints it after `error: `.
    Ok(outcome?)
}

/// `version=weight` pairs; each weight a u32, each version named once.
fn parse_weights(pairs: &[String]) -> Result<BTreeMap<String, u32>> {
    let mut weights = BTreeMap::new();
    for pair in pairs {
        let (version, weight) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("{pair:?} is not `version=weight` (like v1=90)"))?;
        let version = version.trim();
        if version.is_empty() {
            bail!("{pair:?} names no version; expected `version=weight` (like v1=90)");
        }
        let weight: u32 = weight.trim().parse().map_err(|_| {
            anyhow!(
                "{pair:?}: the weight {weight:?} is not a whole number from 0 to {}",
                u32::MAX
            )
        })?;
        if weights.insert(version.to_string(), weight).is_some() {
            bail!("version {version:?} is given more than once");
        }
    }
    Ok(weights)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn health(instance: &Instance) -> &'static str {
    match HealthState::try_from(instance.health) {
        Ok(HealthState::Healthy) => "healthy",
        Ok(HealthState::Unhealthy) => "unhealthy",
        Ok(HealthState::Unspecified) => "unprobed",
        Err(_) => "unknown",
    }
}

fn endpoint(instance: &Instance) -> String {
    match &instance.endpoint {
        Some(Endpoint::Binding(name)) => format!("binding:{name}"),
        Some(Endpoint::Url(url)) => url.clone(),
        None => "-".to_string(),
    }
}

/// `-` when routable; otherwise how long the ejection still lasts.
fn ejected(instance: &Instance, now_ms: i64) -> String {
    if instance.ejected_until_ms > now_ms {
        let left = (instance.ejected_until_ms - now_ms) as f64 / 1000.0;
        format!("{left:.1}s left")
    } else {
        "-".to_string()
    }
}

/// The worst breaker state callers reported recently (`-` when none did).
fn breaker(instance: &Instance) -> &'static str {
    match BreakerState::try_from(instance.breaker_state) {
        Ok(BreakerState::Closed) => "closed",
        Ok(BreakerState::Open) => "open",
        Ok(BreakerState::HalfOpen) => "half-open",
        Ok(BreakerState::Unspecified) | Err(_) => "-",
    }
}

fn instances_table(instances: &[Instance], now_ms: i64) -> String {
    let header = [
        "SERVICE", "INSTANCE", "VERSION", "ENDPOINT", "WEIGHT", "HEALTH", "DRAINING", "EJECTED",
        "TIMES", "BREAKER", "OK", "FAILED",
    ];
    let rows: Vec<Vec<String>> = instances
        .iter()
        .map(|i| {
            vec![
                i.service.clone(),
                i.instance_id.clone(),
                i.version.clone(),
                endpoint(i),
                i.weight.to_string(),
                health(i).to_string(),
                if i.draining { "yes" } else { "no" }.to_string(),
                ejected(i, now_ms),
                i.times_ejected.to_string(),
                breaker(i).to_string(),
                i.reported_successes.to_string(),
                i.reported_failures.to_string(),
            ]
        })
        .collect();
    table(&header, &rows)
}

fn weights_table(weights: &BTreeMap<String, u32>) -> String {
    let total: u64 = weights.values().map(|&w| u64::from(w)).sum();
    let rows: Vec<Vec<String>> = weights
        .iter()
        .map(|(version, &weight)| {
            let share = if total == 0 {
                0.0
            } else {
                u64::from(weight) as f64 * 100.0 / total as f64
            };
            vec![version.clone(), weight.to_string(), format!("{share:.1}%")]
        })
        .collect();
    table(&["VERSION", "WEIGHT", "SHARE"], &rows)
}

/// Left-aligned columns, two spaces apart, no trailing spaces.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            line.push_str(&format!("{cell:<width$}  "));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn pairs(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_version_weight_pairs() {
        let weights = parse_weights(&pairs(&["v1=90", " v2 = 10 "])).unwrap();
        assert_eq!(
            weights.into_iter().collect::<Vec<_>>(),
            vec![("v1".to_string(), 90), ("v2".to_string(), 10)]
        );
        assert!(parse_weights(&[]).unwrap().is_empty());
    }

    #[test]
    fn rejects_bad_pairs_with_the_offending_text() {
        let err = parse_weights(&pairs(&["v1=abc"])).unwrap_err().to_string();
        assert!(
            err.contains("\"v1=abc\"") && err.contains("not a whole number"),
            "{err}"
        );
        let err = parse_weights(&pairs(&["v1=-1"])).unwrap_err().to_string();
        assert!(err.contains("not a whole number"), "{err}");
        let err = parse_weights(&pairs(&["v1=4294967296"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("4294967295"), "{err}");
        let err = parse_weights(&pairs(&["v1"])).unwrap_err().to_string();
        assert!(err.contains("version=weight"), "{err}");
        let err = parse_weights(&pairs(&["=5"])).unwrap_err().to_string();
        assert!(err.contains("names no version"), "{err}");
        let err = parse_weights(&pairs(&["v1=1", "v1=2"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than once"), "{err}");
    }

    #[test]
    fn table_lists_every_instance_with_health_drain_and_ejection() {
        let a = Instance {
            service: "shop.v1.CatalogService".into(),
            instance_id: "catalog-a".into(),
            version: "v1".into(),
            endpoint: Some(Endpoint::Binding("CATALOG".into())),
            weight: 100,
            health: HealthState::Healthy as i32,
            ..Default::default()
        };
        let b = Instance {
            instance_id: "catalog-b".into(),
            version: "v2".into(),
            endpoint: Some(Endpoint::Url("https://b.example".into())),
            health: HealthState::Unhealthy as i32,
            draining: true,
            ejected_until_ms: 12_500,
            times_ejected: 2,
            breaker_state: BreakerState::Open as i32,
            reported_successes: 7,
            reported_failures: 9,
            ..a.clone()
        };
        let out = instances_table(&[a, b], 10_000);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        let cells = |line: &str| {
            line.split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(cells(lines[0])[0], "SERVICE");
        assert_eq!(
            cells(lines[1]),
            [
                "shop.v1.CatalogService",
                "catalog-a",
                "v1",
                "binding:CATALOG",
                "100",
                "healthy",
                "no",
                "-",
                "0",
                "-",
                "0",
                "0"
            ]
        );
        assert_eq!(
            cells(lines[2])[3..],
            [
                "https://b.example",
                "100",
                "unhealthy",
                "yes",
                "2.5s",
                "left",
                "2",
                "open",
                "7",
                "9"
            ]
        );
        // Columns line up: every header starts where its cells start.
        let col = lines[0].find("HEALTH").unwrap();
        assert_eq!(&lines[1][col..col + 7], "healthy");
        assert_eq!(&lines[2][col..col + 9], "unhealthy");
    }

    #[test]
    fn an_expired_ejection_shows_as_routable() {
        let i = Instance {
            ejected_until_ms: 5_000,
            times_ejected: 1,
            ..Default::default()
        };
        assert_eq!(ejected(&i, 5_000), "-");
        assert_eq!(ejected(&i, 4_000), "1.0s left");
    }

    #[test]
    fn weights_table_shows_shares() {
        let weights = BTreeMap::from([("v1".to_string(), 90), ("v2".to_string(), 10)]);
        let out = weights_table(&weights);
        let lines: Vec<Vec<&str>> = out
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(lines[1], ["v1", "90", "90.0%"]);
        assert_eq!(lines[2], ["v2", "10", "10.0%"]);
        let zero = BTreeMap::from([("v1".to_string(), 0)]);
        assert!(weights_table(&zero).contains("0.0%"));
    }
}
