//! Where things are in a workmesh project, read from its files rather than
//! hard-coded: the Workers are the `wrangler/*.toml` configs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

pub struct Project {
    pub root: PathBuf,
}

/// One Worker, as its wrangler config describes it.
pub struct Worker {
    pub name: String,
    pub config: PathBuf,
    /// The Rust crate that builds it: `main` is `<crate>/build/index.js`.
    pub crate_dir: PathBuf,
    /// The crate's package name, for `cargo -p`.
    pub package: String,
    /// The Connect service it serves: its `WORKMESH_SERVICE` var.
    pub service: Option<String>,
    /// Where the local mesh serves it: `[dev] port`.
    pub dev_port: Option<u16>,
}

#[derive(Deserialize)]
struct WranglerConfig {
    name: String,
    main: String,
    #[serde(default)]
    vars: std::collections::HashMap<String, toml::Value>,
    dev: Option<DevConfig>,
}

#[derive(Deserialize)]
struct DevConfig {
    port: Option<u16>,
}

#[derive(Deserialize)]
struct CargoManifest {
    package: CargoPackage,
}

#[derive(Deserialize)]
struct CargoPackage {
    name: String,
}

impl Project {
    /// The project root: the nearest ancestor with a `wrangler/` folder and a `Cargo.toml`.
    pub fn discover() -> Result<Self> {
        let mut dir = std::env::current_dir()?;
        loop {
            if dir.join("wrangler").is_dir() && dir.join("Cargo.toml").is_file() {
                return Ok(Project { root: dir });
            }
            if !dir.pop() {
                bail!(
                    "not inside a workmesh project (no wrangler/ and Cargo.toml above this folder)"
                );
            }
        }
    }

    pub fn workers(&self) -> Result<Vec<Worker>> {
        let mut configs: Vec<PathBuf> = std::fs::read_dir(self.root.join("wrangler"))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        // By name without the extension, so `catalog` comes before
        // `catalog-canary` and is the Worker `local_url` picks for its service.
        configs.sort_by(|a, b| a.file_stem().cmp(&b.file_stem()));
        configs.iter().map(|config| Worker::read(config)).collect()
    }

    /// The named Workers, or all of them when `names` is empty.
    pub fn select_workers(&self, names: &[String]) -> Result<Vec<Worker>> {
        let all = self.workers()?;
        if names.is_empty() {
            return Ok(all);
        }
        let known: Vec<&str> = all.iter().map(|w| w.name.as_str()).collect();
        for name in names {
            if !known.contains(&name.as_str()) {
                bail!(
                    "no Worker named {name:?}; the Workers are: {}",
                    known.join(", ")
                );
            }
        }
        Ok(all
            .into_iter()
            .filter(|w| names.contains(&w.name))
            .collect())
    }

    /// The local mesh URL of the Worker that serves `service` (the one whose
    /// `WORKMESH_SERVICE` var names it), from its `[dev]` port.
    pub fn local_url(&self, service: &str) -> Result<String> {
        for worker in self.workers()? {
            if worker.service.as_deref() == Some(service) {
                let port = worker
                    .dev_port
                    .with_context(|| format!("{} has no [dev] port", worker.config.display()))?;
                return Ok(format!("http://127.0.0.1:{port}"));
            }
        }
        bail!("no Worker in wrangler/ has WORKMESH_SERVICE = {service:?}; pass --url")
    }

    /// The Worker named `name` (its wrangler config's `name`).
    pub fn worker(&self, name: &str) -> Result<Worker> {
        let mut workers = self.select_workers(&[name.to_owned()])?;
        workers
            .pop()
            .with_context(|| format!("no Worker named {name:?}"))
    }

    pub fn node_bin(&self, name: &str) -> PathBuf {
        self.root.join("node_modules/.bin").join(name)
    }

    pub fn target_dir(&self) -> PathBuf {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.root.join("target"))
    }

    /// A command that runs in the project root.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command.current_dir(&self.root);
        command
    }
}

impl Worker {
    fn read(config: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(config)
            .with_context(|| format!("reading {}", config.display()))?;
        let parsed: WranglerConfig =
            toml::from_str(&text).with_context(|| format!("parsing {}", config.display()))?;
        let config_dir = config.parent().context("config has no folder")?;
        let main = config_dir.join(&parsed.main);
        let crate_dir = main.parent().and_then(Path::parent).with_context(|| {
            format!("{}: main must be <crate>/build/index.js", config.display())
        })?;
        let crate_dir = crate_dir.canonicalize().with_context(|| {
            format!(
                "{}: crate folder {} is missing",
                config.display(),
                crate_dir.display()
            )
        })?;
        let manifest =
            std::fs::read_to_string(crate_dir.join("Cargo.toml")).with_context(|| {
                format!(
                    "{}: no Cargo.toml in {}",
                    config.display(),
                    crate_dir.display()
                )
            })?;
        let manifest: CargoManifest = toml::from_str(&manifest)?;
        let service = parsed
            .vars
            .get("WORKMESH_SERVICE")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        Ok(Worker {
            name: parsed.name,
            config: config.to_path_buf(),
            crate_dir,
            package: manifest.package.name,
            service,
            dev_port: parsed.dev.and_then(|d| d.port),
        })
    }

    /// The wasm cargo emits for this crate, before wasm-bindgen.
    pub fn cargo_wasm(&self, target_dir: &Path, profile_dir: &str) -> PathBuf {
        target_dir
            .join("wasm32-unknown-unknown")
            .join(profile_dir)
            .join(format!("{}.wasm", self.package.replace('-', "_")))
    }

    /// The wasm worker-build emits, after wasm-bindgen (and wasm-opt in release).
    pub fn bundled_wasm(&self) -> PathBuf {
        self.crate_dir.join("build/index_bg.wasm")
    }
}

/// Runs a command to completion, failing with its name when it fails.
pub fn checked(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    if !status.success() {
        bail!("{:?} failed ({status})", command.get_program());
    }
    Ok(())
}
