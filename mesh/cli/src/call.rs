//! `workmesh call <Service>/<Method> '<json>'`: one Connect call from the
//! terminal, like `buf curl`, with the schema read from the project's
//! contracts.
//!
//! The JSON request is checked against the method's input message and sent
//! as `application/proto` (or as JSON with `--json`); the answer is printed
//! as proto3 JSON. Without `--url`, the target is the local mesh Worker whose
//! `WORKMESH_SERVICE` var names the service.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, SerializeOptions};
use tower::ServiceExt;
use workmesh::client::HttpTransport;

use crate::project::Project;

pub struct CallArgs {
    pub target: String,
    pub request: String,
    pub url: Option<String>,
    pub json: bool,
    pub headers: Vec<String>,
    pub timeout_ms: Option<u64>,
}

pub fn run(project: &Project, args: CallArgs) -> Result<()> {
    let pool = load_contracts(project)?;
    let method = find_method(&pool, &args.target)?;
    let service = method.parent_service().full_name().to_string();
    let request = DynamicMessage::deserialize(
        method.input(),
        &mut serde_json::Deserializer::from_str(&args.request),
    )
    .with_context(|| {
        format!(
            "the request is not a valid {} in JSON",
            method.input().full_name()
        )
    })?;

    let base_url = match args.url {
        Some(url) => url,
        None => project.local_url(&service)?,
    };
    let (content_type, body) = if args.json {
        ("application/json", Bytes::from(args.request.clone()))
    } else {
        ("application/proto", Bytes::from(request.encode_to_vec()))
    };
    let mut builder = http::Request::post(format!("/{service}/{}", method.name()))
        .header("content-type", content_type)
        .header("connect-protocol-version", "1");
    if let Some(ms) = args.timeout_ms {
        builder = builder.header("connect-timeout-ms", ms.to_string());
    }
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| anyhow!("header {header:?} is not `name: value`"))?;
        builder = builder.header(name.trim(), value.trim());
    }
    let http_request = builder.body(body)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let transport = HttpTransport::new(base_url.trim_end_matches('/'));
    let timeout = Duration::from_millis(args.timeout_ms.unwrap_or(30_000) + 1_000);
    let outcome = runtime
        .block_on(async { tokio::time::timeout(timeout, transport.oneshot(http_request)).await })
        .map_err(|_| {
            anyhow!(
                "no answer from {base_url} within {} ms",
                timeout.as_millis()
            )
        })?;
    match outcome {
        Ok(response) => {
            let body = response.body();
            let message = if args.json {
                DynamicMessage::deserialize(
                    method.output(),
                    &mut serde_json::Deserializer::from_slice(body),
                )?
            } else {
                DynamicMessage::decode(method.output(), body.as_ref()).with_context(|| {
                    format!("the response is not a {}", method.output().full_name())
                })?
            };
            let mut out = serde_json::Serializer::pretty(std::io::stdout());
            message.serialize_with_options(&mut out, &SerializeOptions::new())?;
            println!();
            Ok(())
        }
        Err(error) => {
            let body = workmesh::protocol::error::error_to_json(&error);
            eprintln!("{}", String::from_utf8_lossy(&body));
            bail!("{service}/{} failed: {error}", method.name())
        }
    }
}

/// Every `.proto` under `proto/`, compiled in-process (no protoc).
fn load_contracts(project: &Project) -> Result<DescriptorPool> {
    let root = project.root.join("proto");
    let mut files = Vec::new();
    collect_protos(&root, &root, &mut files)?;
    let mut compiler = protox::Compiler::new([&root])?;
    compiler.include_imports(true);
    compiler
        .open_files(files)
        .map_err(|e| anyhow!("reading the contracts: {e}"))?;
    Ok(compiler.descriptor_pool())
}

fn collect_protos(
    root: &std::path::Path,
    dir: &std::path::Path,
    out: &mut Vec<String>,
) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path.strip_prefix(root)?.to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(())
}

/// `pkg.Service/Method` (a leading `/` is fine).
fn find_method(pool: &DescriptorPool, target: &str) -> Result<MethodDescriptor> {
    let (service, method) = target
        .trim_start_matches('/')
        .split_once('/')
        .ok_or_else(|| anyhow!("expected <package.Service>/<Method>, got {target:?}"))?;
    let Some(descriptor) = pool.get_service_by_name(service) else {
        let known: Vec<String> = pool.services().map(|s| s.full_name().to_string()).collect();
        bail!(
            "no service {service:?} in proto/; the contracts define: {}",
            known.join(", ")
        );
    };
    let found = descriptor.methods().find(|m| m.name() == method);
    found.ok_or_else(|| {
        let known: Vec<String> = descriptor.methods().map(|m| m.name().to_string()).collect();
        anyhow!(
            "{service} has no method {method:?}; it has: {}",
            known.join(", ")
        )
    })
}
