//! `workmesh up`: the whole mesh in one local workerd.
//!
//! The Workers run under `mesh/cli/js/local-mesh.mjs` (Miniflare's API, fed
//! with wrangler's own reading of `wrangler/*.toml`). This command builds
//! first, starts it, prints where each Worker answers, and stops it cleanly on
//! Ctrl-C or SIGTERM. The runner also exits when our stdin pipe to it closes,
//! so it cannot outlive us even if we are killed.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::signal::unix::{signal, SignalKind};

use crate::build::{self, Profile};
use crate::project::Project;
use crate::setup;

#[derive(Deserialize)]
struct Ready {
    urls: std::collections::BTreeMap<String, String>,
    migrations: Vec<String>,
}

pub fn run(project: &Project, persist_to: &str, verbose: bool) -> Result<()> {
    setup::run(project)?;
    build::run(project, &[], Profile::Release)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(project, persist_to, verbose))
}

async fn serve(project: &Project, persist_to: &str, verbose: bool) -> Result<()> {
    let started = tokio::time::Instant::now();
    let mut command = Command::new("node");
    command
        .current_dir(&project.root)
        .arg("mesh/cli/js/local-mesh.mjs")
        .args(["--persist-to", persist_to])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    if verbose {
        command.arg("--verbose");
    }
    let mut child = command
        .spawn()
        .context("starting node (is Node.js 20 installed?)")?;
    let stdout = child.stdout.take().context("runner stdout")?;
    let mut lines = BufReader::new(stdout).lines();

    let ready: Ready = loop {
        match lines.next_line().await? {
            Some(line) => {
                if let Ok(ready) = serde_json::from_str::<Ready>(&line) {
                    break ready;
                }
                println!("{line}");
            }
            None => {
                let status = child.wait().await?;
                bail!("the local mesh exited before it was ready ({status})");
            }
        }
    };
    for migration in &ready.migrations {
        println!("migrated {migration}");
    }
    println!("local mesh ready in {} ms:", started.elapsed().as_millis());
    for (name, url) in &ready.urls {
        println!("  {name:<12} {url}");
    }
    println!("Ctrl-C to stop.");

    // Keep echoing what the runner prints, until a signal or its exit.
    let echo = async {
        while let Ok(Some(line)) = lines.next_line().await {
            println!("{line}");
        }
    };
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = interrupt.recv() => stop(&mut child).await,
        _ = terminate.recv() => stop(&mut child).await,
        _ = echo => {
            let status = child.wait().await?;
            bail!("the local mesh stopped unexpectedly ({status})")
        }
    }
}

/// SIGTERM to the runner (it disposes workerd), then wait; kill if it hangs.
async fn stop(child: &mut tokio::process::Child) -> Result<()> {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
        Ok(status) => {
            status?;
        }
        Err(_) => child.kill().await?,
    }
    println!("local mesh stopped");
    Ok(())
}
