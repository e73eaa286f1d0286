//! `workmesh build`: every Worker crate to a deployable bundle in `<crate>/build/`.
//!
//! One `cargo build` compiles all the requested crates for wasm32 (so they share
//! work and the target dir), then worker-build runs wasm-bindgen, wasm-opt and
//! esbuild for each crate whose wasm changed. A crate whose bundle is newer than
//! its wasm is left alone, so a no-op build takes about a second.

use anyhow::{Context, Result};

use crate::project::{checked, Project, Worker};
use crate::setup::build_env;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Dev,
    Release,
}

impl Profile {
    fn target_subdir(self) -> &'static str {
        match self {
            Profile::Dev => "debug",
            Profile::Release => "release",
        }
    }
}

pub fn run(project: &Project, names: &[String], profile: Profile) -> Result<()> {
    let workers = project.select_workers(names)?;
    let mut cargo = project.command("cargo");
    cargo.args(["build", "--target", "wasm32-unknown-unknown", "--lib"]);
    if profile == Profile::Release {
        cargo.arg("--release");
    }
    for worker in &workers {
        cargo.args(["-p", &worker.package]);
    }
    checked(&mut cargo).context("compiling Workers for wasm32")?;

    let target_dir = project.target_dir();
    for worker in &workers {
        let wasm = worker.cargo_wasm(&target_dir, profile.target_subdir());
        if is_newer(&worker.bundled_wasm(), &wasm)
            && worker.crate_dir.join("build/index.js").exists()
        {
            continue;
        }
        bundle(project, worker, profile)?;
    }
    for worker in &workers {
        report_size(worker)?;
    }
    Ok(())
}

/// Workers limit the compressed size of a bundle, so that is the number to watch.
fn report_size(worker: &Worker) -> Result<()> {
    use std::io::Write;
    let wasm =
        std::fs::read(worker.bundled_wasm()).with_context(|| format!("reading {}", worker.name))?;
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&wasm)?;
    let gzipped = gzip.finish()?.len();
    eprintln!(
        "build: {:<10} wasm {:>5} KiB, gzip {:>5} KiB",
        worker.name,
        wasm.len() / 1024,
        gzipped / 1024
    );
    Ok(())
}

/// wasm-bindgen + wasm-opt + esbuild, through worker-build.
fn bundle(project: &Project, worker: &Worker, profile: Profile) -> Result<()> {
    eprintln!("build: bundling {}", worker.name);
    let mut command = std::process::Command::new("worker-build");
    command
        .current_dir(&worker.crate_dir)
        .envs(build_env(project));
    command.arg(match profile {
        Profile::Release => "--release",
        Profile::Dev => "--dev",
    });
    checked(&mut command).with_context(|| format!("bundling {}", worker.name))
}

/// True when `a` exists and was modified no earlier than `b`.
fn is_newer(a: &std::path::Path, b: &std::path::Path) -> bool {
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((modified(a), modified(b)), (Some(a), Some(b)) if a >= b)
}
