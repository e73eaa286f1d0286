//! `workmesh setup`: everything a Worker build needs, from the package
//! registries only, installed if missing and left alone if present.
//!
//! worker-build would otherwise download wasm-bindgen, wasm-opt and esbuild
//! from GitHub on first use. We install each from a registry instead and point
//! worker-build at them through `WASM_BINDGEN_BIN`, `WASM_OPT_BIN` and
//! `ESBUILD_BIN` (see [`build_env`]).
//!
//! The dashboard's browser test (tests/e2e/dashboard.test.mjs) drives
//! Debian's `chromium` through playwright-core (an npm package without a
//! browser of its own); set-up installs it with apt-get when it is missing.

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
    ensure_chromium()?;
    Ok(())
}

/// Where the dashboard test finds the browser (Debian's package).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Installs Debian's `chromium` unless [`CHROMIUM`] exists: as root with
/// apt-get, otherwise through `sudo -n` (never a password prompt); when
/// neither works, an error says what to install.
fn ensure_chromium() -> Result<()> {
    if std::path::Path::new(CHROMIUM).exists() {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    let sudo = !root
        && Command::new("sudo")
            .args(["-n", "true"])
            .output()
            .is_ok_and(|out| out.status.success());
    let apt = Command::new("apt-get")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    let commands = match chromium_install_plan(root, sudo, apt) {
        Ok(commands) => commands,
        Err(message) => bail!(message),
    };
    eprintln!("setup: installing Debian's chromium for the dashboard test (once per machine)");
    for argv in commands {
        let (program, args) = argv.split_first().context("empty install command")?;
        checked(
            Command::new(program)
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    if !std::path::Path::new(CHROMIUM).exists() {
        bail!("apt-get installed chromium, but {CHROMIUM} is still missing");
    }
    Ok(())
}

/// The commands that install chromium, or why this user cannot.
fn chromium_install_plan(
    root: bool,
    sudo: bool,
    apt: bool,
) -> std::result::Result<Vec<Vec<String>>, String> {
    let manual = format!(
        "{CHROMIUM} is missing: the dashboard test needs Debian's chromium package \
         (`sudo apt-get install -y chromium`, or your system's Chromium installed at {CHROMIUM})"
    );
    if !apt {
        return Err(format!("{manual}; apt-get is not available here"));
    }
    let prefix: &[&str] = if root {
        &[]
    } else if sudo {
        &["sudo", "-n", "--preserve-env=DEBIAN_FRONTEND"]
    } else {
        return Err(format!(
            "{manual}; set-up cannot install it: not root and sudo needs a password"
        ));
    };
    let command = |args: &[&str]| -> Vec<String> {
        prefix.iter().chain(args).map(|s| (*s).to_owned()).collect()
    };
    Ok(vec![
        command(&["apt-get", "update", "-q"]),
        command(&["apt-get", "install", "-y", "-q", "chromium"]),
    ])
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn chromium_installs_as_root_or_through_sudo_and_says_what_to_do_otherwise() {
        let as_root = chromium_install_plan(true, false, true).unwrap_or_default();
        assert_eq!(as_root[0], ["apt-get", "update", "-q"]);
        assert_eq!(as_root[1], ["apt-get", "install", "-y", "-q", "chromium"]);
        let with_sudo = chromium_install_plan(false, true, true).unwrap_or_default();
        assert!(with_sudo.iter().all(|c| c[0] == "sudo" && c[1] == "-n"));
        assert_eq!(with_sudo[1].last().map(String::as_str), Some("chromium"));
        let neither = chromium_install_plan(false, false, true).unwrap_err();
        assert!(
            neither.contains("sudo apt-get install -y chromium"),
            "{neither}"
        );
        assert!(neither.contains("not root"), "{neither}");
        let no_apt = chromium_install_plan(true, false, false).unwrap_err();
        assert!(no_apt.contains("apt-get is not available"), "{no_apt}");
    }
}
