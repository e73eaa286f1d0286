//! `workmesh setup`: everything a Worker build needs, from the package
//! registries only, installed if missing and left alone if present.
//!
//! worker-build would otherwise download wasm-bindgen, wasm-opt and esbuild
//! from GitHub on first use. We install each from a registry instead and point
//! worker-build at them through `WASM_BINDGEN_BIN`, `WASM_OPT_BIN` and
//! `ESBUILD_BIN` (see [`build_env`]).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::project::{checked, Project};

/// worker-build is pinned: its output layout and shim are part of our build.
const WORKER_BUILD_VERSION: &str = "0.8.7";
const WASM_TARGET: &str = "wasm32-unknown-unknown";

pub fn run(project: &Project) -> Result<()> {
    ensure_wasm_target()?;
    ensure_cargo_tool("worker-build", "worker-build", WORKER_BUILD_VERSION)?;
    // wasm-bindgen-cli must match the wasm-bindgen library exactly, so the
    // version comes from Cargo.lock (the workspace pins it with `=`).
    let bindgen_version = locked_version(project, "wasm-bindgen")?;
    ensure_cargo_tool("wasm-bindgen-cli", "wasm-bindgen", &bindgen_version)?;
    ensure_node_modules(project)?;
    Ok(())
}

/// The environment that makes worker-build use our tools instead of downloading its own.
pub fn build_env(project: &Project) -> Vec<(&'static str, PathBuf)> {
    vec![
        ("WASM_BINDGEN_BIN", cargo_bin("wasm-bindgen")),
        ("WASM_OPT_BIN", project.node_bin("wasm-opt")),
        ("ESBUILD_BIN", project.node_bin("esbuild")),
    ]
}

fn cargo_bin(name: &str) -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"));
    home.join("bin").join(name)
}

fn ensure_wasm_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    if let Ok(out) = installed {
        if String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.trim() == WASM_TARGET)
        {
            return Ok(());
        }
    }
    eprintln!("setup: adding the {WASM_TARGET} target");
    checked(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

/// Installs `crate_name` at exactly `version` unless `binary --version` already says so.
fn ensure_cargo_tool(crate_name: &str, binary: &str, version: &str) -> Result<()> {
    let current = Command::new(cargo_bin(binary)).arg("--version").output();
    if let Ok(out) = current {
        let text = String::from_utf8_lossy(&out.stdout);
        if text.split_whitespace().any(|word| word == version) {
            return Ok(());
        }
    }
    eprintln!("setup: installing {crate_name} {version} from crates.io (once per machine)");
    let exact = format!("={version}");
    let locked = Command::new("cargo")
        .args([
            "install",
            crate_name,
            "--version",
            &exact,
            "--locked",
            "--force",
        ])
        .status();
    if locked.is_ok_and(|s| s.success()) {
        return Ok(());
    }
    // A lock file can name a dependency version the registry no longer serves
    // (seen with wasm-bindgen-cli 0.2.130); the tool's own version stays exact.
    eprintln!(
        "setup: --locked install of {crate_name} failed; retrying with fresh dependency resolution"
    );
    checked(Command::new("cargo").args(["install", crate_name, "--version", &exact, "--force"]))
}

/// `npm ci` when node_modules is missing or older than package-lock.json.
fn ensure_node_modules(project: &Project) -> Result<()> {
    let lock = project.root.join("package-lock.json");
    let installed = project.root.join("node_modules/.package-lock.json");
    let fresh = match (std::fs::metadata(&lock), std::fs::metadata(&installed)) {
        (Ok(lock), Ok(installed)) => installed.modified()? >= lock.modified()?,
        _ => false,
    };
    if fresh {
        return Ok(());
    }
    eprintln!("setup: installing npm packages from package-lock.json");
    checked(
        project
            .command("npm")
            .args(["ci", "--no-audit", "--no-fund"]),
    )
}

/// The version of `package` recorded in Cargo.lock.
fn locked_version(project: &Project, package: &str) -> Result<String> {
    let lock =
        std::fs::read_to_string(project.root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let lock: toml::Value = toml::from_str(&lock).context("parsing Cargo.lock")?;
    let packages = lock
        .get("package")
        .and_then(|p| p.as_array())
        .context("Cargo.lock has no packages")?;
    for entry in packages {
        if entry.get("name").and_then(|n| n.as_str()) == Some(package) {
            if let Some(version) = entry.get("version").and_then(|v| v.as_str()) {
                return Ok(version.to_string());
            }
        }
    }
    bail!("{package} is not in Cargo.lock")
}
