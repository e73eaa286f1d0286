//! The mesh's own contracts, generated from `proto/workmesh/v1` by
//! `workmesh-build` at build time.
//!
//! - `Health` ([`v1::health_server`], [`v1::health_client`]): the health check
//!   every Worker serves and the registry probes.
//! - `Registry` ([`v1::registry_server`], [`v1::registry_client`]): service
//!   discovery, weights, drain and outcome reports.
//! - `Faults` ([`v1::faults_server`], [`v1::faults_client`]): fault injection
//!   rules.
//!
//! Every message has its protobuf encoding (prost) and its proto3 JSON
//! mapping (serde, via pbjson).

/// `workmesh.v1`: health checking, service discovery and fault injection.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/workmesh.v1.rs"));
}
