//! `workmesh test`: every check the project has, in the order that fails
//! fastest, with one total of passed and failed tests at the end:
//!
//! 1. set-up (idempotent);
//! 2. formatting;
//! 3. clippy, natively and for the Workers' wasm32 target;
//! 4. native unit and property tests;
//! 5. release builds of every Worker;
//! 6. `wrangler deploy --dry-run` of every config;
//! 7. contract checks (buf lint, breaking changes);
//! 8. end-to-end tests against the real Workers in workerd.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::build::{self, Profile};
use crate::project::{checked, Project};
use crate::setup;

#[derive(Default)]
struct Totals {
    passed: u64,
    failed: u64,
}

pub fn run(project: &Project) -> Result<()> {
    let started = Instant::now();
    let mut totals = Totals::default();
    let workers = project.workers()?;

    step("set-up", || setup::run(project))?;
    step("formatting", || {
        checked(
            project
                .command("cargo")
                .args(["fmt", "--all", "--", "--check"]),
        )
    })?;
    step("clippy (native)", || {
        checked(project.command("cargo").args([
            "clippy",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    step("clippy (wasm32 Workers)", || {
        let mut command = project.command("cargo");
        command.args(["clippy", "--target", "wasm32-unknown-unknown", "--lib"]);
        for worker in &workers {
            command.args(["-p", &worker.package]);
        }
        checked(command.args(["--", "-D", "warnings"]))
    })?;
    step("unit tests (native)", || {
        counted(
            project.command("cargo").args(["test", "--all-features"]),
            &mut totals,
            parse_cargo_test,
        )
    })?;
    step("wasm32 release builds", || {
        build::run(project, &[], Profile::Release)
    })?;
    step("wrangler deploy --dry-run", || {
        let out = std::env::temp_dir().join("workmesh-dry-run");
        for worker in &workers {
            let mut command = project.command(project.node_bin("wrangler"));
            command
                .args(["deploy", "--dry-run", "--outdir"])
                .arg(out.join(&worker.name))
                .arg("-c")
                .arg(&worker.config)
                .env("WRANGLER_SEND_METRICS", "false");
            checked(&mut command).with_context(|| format!("dry-run deploy of {}", worker.name))?;
        }
        Ok(())
    })?;
    let contracts = project.root.join("tests/contracts/check.sh");
    if contracts.exists() {
        step("contracts (buf lint, breaking changes)", || {
            checked(project.command("bash").arg(&contracts))
        })?;
    }
    step("end-to-end (workerd)", || {
        counted(
            project.command("node").args([
                "--test",
                "--test-reporter=tap",
                "--test-concurrency=1",
                "tests/e2e/",
            ]),
            &mut totals,
            parse_node_tap,
        )
    })?;

    println!(
        "\nall checks passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    println!("total: {} passed, {} failed", totals.passed, totals.failed);
    Ok(())
}

fn step(name: &str, body: impl FnOnce() -> Result<()>) -> Result<()> {
    println!("\n==> {name}");
    let started = Instant::now();
    body().with_context(|| format!("step failed: {name}"))?;
    println!("==> {name}: ok ({:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// Runs a test command, echoing its output and adding up its counts.
fn counted(
    command: &mut Command,
    totals: &mut Totals,
    parse: fn(&str) -> Option<(u64, u64)>,
) -> Result<()> {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    let stdout = child.stdout.take().context("test stdout")?;
    let (mut passed, mut failed) = (0, 0);
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some((p, f)) = parse(&line) {
            passed += p;
            failed += f;
        }
    }
    let status = child.wait()?;
    totals.passed += passed;
    totals.failed += failed;
    if !status.success() || failed > 0 {
        bail!("{passed} passed, {failed} failed ({status})");
    }
    Ok(())
}

/// `test result: ok. 12 passed; 0 failed; 0 ignored; ...`
fn parse_cargo_test(line: &str) -> Option<(u64, u64)> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let count = |label: &str| -> Option<u64> {
        rest.split(';').find_map(|part| {
            part.trim()
                .strip_suffix(label)?
                .trim()
                .rsplit(' ')
                .next()?
                .parse()
                .ok()
        })
    };
    Some((count(" passed")?, count(" failed")?))
}

/// Node's TAP summary: `# pass 7` and `# fail 0` on separate lines.
fn parse_node_tap(line: &str) -> Option<(u64, u64)> {
    let line = line.trim();
    if let Some(n) = line.strip_prefix("# pass ") {
        return Some((n.trim().parse().ok()?, 0));
    }
    if let Some(n) = line.strip_prefix("# fail ") {
        return Some((0, n.trim().parse().ok()?));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cargo_test_summaries() {
        let line = "test result: ok. 12 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s";
        assert_eq!(parse_cargo_test(line), Some((12, 1)));
        assert_eq!(parse_cargo_test("running 12 tests"), None);
    }

    #[test]
    fn reads_node_tap_summaries() {
        assert_eq!(parse_node_tap("# pass 7"), Some((7, 0)));
        assert_eq!(parse_node_tap("# fail 2"), Some((0, 2)));
        assert_eq!(parse_node_tap("ok 1 - catalog answers"), None);
    }
}
