//! `workmesh`: the developer workflow of a workmesh project.
//!
//! Run it as `cargo workmesh <command>` (a cargo alias in `.cargo/config.toml`),
//! so a fresh clone needs nothing but Rust and Node to start.

// A native developer tool: it never runs in a Worker, so std::time is fine here.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod build;
mod call;
mod project;
mod registry;
mod setup;
mod test;
mod traces;
mod up;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "workmesh",
    version,
    about = "Contract-first service mesh for Cloudflare Workers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what builds need, offline from the package registries: the wasm32
    /// target, pinned worker-build and wasm-bindgen-cli, and the npm packages.
    /// Idempotent: a ready machine takes seconds.
    Setup,
    /// Build Workers for wasm32 (all, or the named ones), incrementally.
    Build {
        /// Worker names, as in wrangler/<name>.toml; all when empty.
        workers: Vec<String>,
        /// Debug build: skip wasm-opt and optimisations.
        #[arg(long)]
        dev: bool,
    },
    /// Build, then run the whole mesh in one local workerd until Ctrl-C / SIGTERM.
    Up {
        /// Where local D1 and Durable Object state lives.
        #[arg(long, default_value = ".wrangler/state/v3")]
        persist_to: String,
        /// Show workerd's debug log.
        #[arg(long)]
        verbose: bool,
    },
    /// Call a Connect method with a JSON request and print the JSON answer
    /// (`shop.v1.CatalogService/GetProduct '{"sku":"SKU-0001"}'`).
    Call {
        /// `<package.Service>/<Method>`, as in the contracts.
        target: String,
        /// The request message as proto3 JSON.
        #[arg(default_value = "{}")]
        request: String,
        /// Base URL of the Worker; by default the local mesh Worker serving the service.
        #[arg(long)]
        url: Option<String>,
        /// Send and receive JSON instead of binary protobuf.
        #[arg(long)]
        json: bool,
        /// Extra request header, `name: value` (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// Deadline for the call, sent as Connect-Timeout-Ms.
        #[arg(long)]
        timeout_ms: Option<u64>,
    },
    /// List every instance the registry knows: version, endpoint, weight,
    /// health, draining and ejection.
    Services {
        /// Only instances of this service (`shop.v1.CatalogService`).
        #[arg(long)]
        service: Option<String>,
        /// Base URL of the registry Worker; by default the local mesh one.
        #[arg(long)]
        url: Option<String>,
    },
    /// Set the traffic weights of a service's versions (`v1=90 v2=10`);
    /// replaces the previous weights, none clears them.
    Weights {
        /// Fully-qualified service name.
        service: String,
        /// `version=weight` pairs.
        weights: Vec<String>,
        /// Base URL of the registry Worker; by default the local mesh one.
        #[arg(long)]
        url: Option<String>,
    },
    /// Drain an instance: resolves stop returning it.
    Drain {
        /// Identifier of the instance.
        instance_id: String,
        /// Base URL of the registry Worker; by default the local mesh one.
        #[arg(long)]
        url: Option<String>,
    },
    /// List recent traces from the console, or show one trace as a waterfall.
    Traces {
        /// A trace id (32 hex digits): show its spans; without it, list traces.
        trace_id: Option<String>,
        /// Only traces that include a span of this Connect service.
        #[arg(long, conflicts_with = "trace_id")]
        service: Option<String>,
        /// How many traces to list (newest first).
        #[arg(long, default_value_t = 20, conflicts_with = "trace_id")]
        limit: u32,
        /// Base URL of the console Worker; by default the local one.
        #[arg(long)]
        url: Option<String>,
    },
    /// Run every check and test: formatting, clippy, unit tests, wasm builds,
    /// deploy dry-runs and end-to-end tests against the local mesh.
    Test,
}

fn main() -> std::process::ExitCode {
    // Errors are for people: the chain of causes, without a backtrace.
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let project = project::Project::discover()?;
    match cli.command {
        Command::Setup => setup::run(&project),
        Command::Build { workers, dev } => {
            setup::run(&project)?;
            let profile = if dev {
                build::Profile::Dev
            } else {
                build::Profile::Release
            };
            build::run(&project, &workers, profile)
        }
        Command::Up {
            persist_to,
            verbose,
        } => up::run(&project, &persist_to, verbose),
        Command::Call {
            target,
            request,
            url,
            json,
            headers,
            timeout_ms,
        } => call::run(
            &project,
            call::CallArgs {
                target,
                request,
                url,
                json,
                headers,
                timeout_ms,
            },
        ),
        Command::Services { service, url } => registry::services(&project, service, url),
        Command::Weights {
            service,
            weights,
            url,
        } => registry::weights(&project, service, &weights, url),
        Command::Drain { instance_id, url } => registry::drain(&project, instance_id, url),
        Command::Traces {
            trace_id,
            service,
            limit,
            url,
        } => traces::run(&project, trace_id, service, limit, url),
        Command::Test => test::run(&project),
    }
}
