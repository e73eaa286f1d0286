//! # workmesh-build
//!
//! Code generation for workmesh contracts, from `build.rs`. Pure Rust: the
//! `.proto` files are parsed by [protox], so no `protoc` is needed on any
//! machine that builds the mesh.
//!
//! For each protobuf package it writes one file, `<package>.rs`, into
//! `OUT_DIR`, holding:
//!
//! - the messages and enums (prost), with the contract's comments as docs;
//! - their proto3 JSON mapping (pbjson `Serialize` / `Deserialize`):
//!   lowerCamelCase names out, both names accepted in, 64-bit integers as
//!   strings, enums by name, unknown fields ignored;
//! - per service `Foo`: `foo_server::{Foo, FooServer}` (a trait of `async fn`
//!   handlers and its router adapter), `foo_client::FooClient` (a typed
//!   client) and `foo_methods` (the method descriptors, with each method's
//!   `idempotency_level`).
//!
//! Generated code names only items of the `workmesh::codegen` façade, so a
//! crate using it depends on `workmesh`, `prost`, `pbjson` and `serde`.
//!
//! ## Example
//!
//! `build.rs`, compiling every contract of a package directory:
//!
//! ```no_run
//! fn main() -> std::io::Result<()> {
//!     workmesh_build::compile_protos(&["../../proto/shop/v1"], &["../../proto"])
//! }
//! ```
//!
//! `src/lib.rs`:
//!
//! ```ignore
//! pub mod v1 {
//!     include!(concat!(env!("OUT_DIR"), "/shop.v1.rs"));
//! }
//! ```
//!
//! The [`Builder`] covers the rest: another output directory, server or
//! client only, packages provided by another crate.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! workmesh_build::configure()
//!     .build_server(false)
//!     .extern_path(".workmesh.v1", "::workmesh::proto::v1")
//!     .compile(&["../../proto/shop/v1/orders.proto"], &["../../proto"])
//! # }
//! ```

mod service;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use prost::Message as _;
use prost_build::Module;
use prost_types::{FileDescriptorProto, FileDescriptorSet};

use crate::service::{method_const, ConnectServiceGenerator, FACADE_NAMES, RESERVED_CONSTS};

/// Compiles contracts with the default options: messages, JSON, servers and
/// clients, written to `OUT_DIR`.
///
/// `protos` are `.proto` files or directories (every `.proto` file below a
/// directory is compiled); `includes` are the roots imports are resolved
/// against, and every proto must lie under one of them. Prints the
/// `cargo:rerun-if-changed` lines for all of them.
pub fn compile_protos(
    protos: &[impl AsRef<Path>],
    includes: &[impl AsRef<Path>],
) -> io::Result<()> {
    configure().compile(protos, includes)
}

/// A [`Builder`] with the default options.
pub fn configure() -> Builder {
    Builder::default()
}

/// Options for a compilation; see [`configure`].
#[derive(Debug, Clone)]
pub struct Builder {
    out_dir: Option<PathBuf>,
    build_server: bool,
    build_client: bool,
    emit_rerun_if_changed: bool,
    extern_paths: Vec<(String, String)>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            out_dir: None,
            build_server: true,
            build_client: true,
            emit_rerun_if_changed: true,
            extern_paths: Vec::new(),
        }
    }
}

impl Builder {
    /// Writes the generated files here instead of `OUT_DIR`.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Whether to generate `<service>_server` modules (default: yes).
    pub fn build_server(mut self, enable: bool) -> Self {
        self.build_server = enable;
        self
    }

    /// Whether to generate `<service>_client` modules (default: yes).
    pub fn build_client(mut self, enable: bool) -> Self {
        self.build_client = enable;
        self
    }

    /// Whether to print `cargo:rerun-if-changed` lines (default: yes; turn it
    /// off outside build scripts).
    pub fn emit_rerun_if_changed(mut self, enable: bool) -> Self {
        self.emit_rerun_if_changed = enable;
        self
    }

    /// Uses already generated Rust types for a protobuf package or type
    /// instead of generating them: `.extern_path(".workmesh.v1",
    /// "::workmesh::proto::v1")`. Applies to messages and JSON alike.
    pub fn extern_path(
        mut self,
        proto_path: impl Into<String>,
        rust_path: impl Into<String>,
    ) -> Self {
        self.extern_paths
            .push((proto_path.into(), rust_path.into()));
        self
    }

    /// Compiles `protos` (files or directories), resolving imports against
    /// `includes`, and writes one `<package>.rs` per package.
    pub fn compile(
        &self,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> io::Result<()> {
        let out_dir = match &self.out_dir {
            Some(dir) => dir.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or_else(|| {
                    io::Error::other(
                        "OUT_DIR is not set: call from build.rs or set Builder::out_dir",
                    )
                })?,
        };

        let mut files = Vec::new();
        for proto in protos {
            let proto = proto.as_ref();
            if self.emit_rerun_if_changed {
                println!("cargo:rerun-if-changed={}", proto.display());
            }
            collect_protos(proto, &mut files)?;
        }
        if files.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no .proto files to compile",
            ));
        }

        let fds = protox::Compiler::new(includes)
            .and_then(|mut compiler| {
                compiler
                    .include_source_info(true)
                    .include_imports(true)
                    .open_files(&files)?;
                Ok(compiler.file_descriptor_set())
            })
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, format!("{error:?}")))?;

        if self.emit_rerun_if_changed {
            // Imports outside the listed files still change the output.
            for file in &fds.file {
                for include in includes {
                    let path = include.as_ref().join(file.name());
                    if path.is_file() {
                        println!("cargo:rerun-if-changed={}", path.display());
                        break;
                    }
                }
            }
        }

        for (name, contents) in self.generate(fds)? {
            write_if_changed(&out_dir.join(name), contents.as_bytes())?;
        }
        Ok(())
    }

    /// Generates the code for a descriptor set: file name → contents.
    fn generate(&self, fds: FileDescriptorSet) -> io::Result<BTreeMap<String, String>> {
        validate(&fds)?;
        let encoded = fds.encode_to_vec();

        // prost-build sees every file (it needs the whole message graph), but
        // only packages that are not provided elsewhere are written out.
        let packages: BTreeSet<String> = fds
            .file
            .iter()
            .filter(|file| !self.is_extern(file.package()))
            .map(|file| file.package().to_owned())
            .collect();
        let requests: Vec<(Module, FileDescriptorProto)> = fds
            .file
            .into_iter()
            .map(|file| (Module::from_protobuf_package_name(file.package()), file))
            .collect();

        let mut config = prost_build::Config::new();
        config.service_generator(Box::new(ConnectServiceGenerator {
            build_server: self.build_server,
            build_client: self.build_client,
        }));
        // Well-known types come from pbjson-types, which carries their JSON
        // mapping, rather than prost-types (the default).
        config
            .compile_well_known_types()
            .extern_path(".google.protobuf", "::pbjson_types");
        for (proto, rust) in &self.extern_paths {
            config.extern_path(proto, rust);
        }
        let modules = config.generate(requests)?;

        let mut json = pbjson_build::Builder::new();
        json.register_descriptors(&encoded)?
            .extern_path(".google.protobuf", "::pbjson_types")
            .ignore_unknown_fields();
        for (proto, rust) in &self.extern_paths {
            json.extern_path(proto, rust);
        }
        let prefixes: Vec<String> = packages
            .iter()
            .map(|package| format!(".{package}"))
            .collect();
        let serde = json.generate(&prefixes, |_| Ok(Vec::<u8>::new()))?;

        let generated: BTreeSet<Module> = packages
            .iter()
            .map(|package| Module::from_protobuf_package_name(package))
            .collect();
        let mut out: BTreeMap<String, String> = modules
            .into_iter()
            .filter(|(module, _)| generated.contains(module))
            .map(|(module, code)| (module.to_file_name_or("_"), code))
            .collect();
        for (package, code) in serde {
            let name =
                Module::from_protobuf_package_name(&package.to_string()).to_file_name_or("_");
            let code = String::from_utf8(code).map_err(io::Error::other)?;
            let file = out.entry(name).or_default();
            file.push_str("\n// proto3 JSON mapping, generated by pbjson-build.\n");
            file.push_str(&code);
        }
        Ok(out)
    }

    fn is_extern(&self, package: &str) -> bool {
        let dotted = format!(".{package}");
        package == "google.protobuf"
            || self
                .extern_paths
                .iter()
                .any(|(proto, _)| dotted == *proto || dotted.starts_with(&format!("{proto}.")))
    }
}

/// Adds `path`, or every `.proto` file below it, in a stable order.
fn collect_protos(path: &Path, files: &mut Vec<PathBuf>) -> io::Result<()> {
    if path.is_dir() {
        let mut entries = fs::read_dir(path)?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<io::Result<Vec<_>>>()?;
        entries.sort();
        for entry in entries {
            if entry.is_dir() || entry.extension().is_some_and(|ext| ext == "proto") {
                collect_protos(&entry, files)?;
            }
        }
        Ok(())
    } else if path.is_file() {
        files.push(path.to_path_buf());
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{}: no such file or directory", path.display()),
        ))
    }
}

/// Rejects what the mesh cannot serve or the generator cannot name, with a
/// message that points at the contract.
fn validate(fds: &FileDescriptorSet) -> io::Result<()> {
    let invalid = |message: String| Err(io::Error::new(io::ErrorKind::InvalidInput, message));
    for file in &fds.file {
        for service in &file.service {
            let name = format!("{}.{}", file.package(), service.name());
            if FACADE_NAMES.contains(&service.name()) {
                return invalid(format!(
                    "{}: service {name} would shadow workmesh::codegen::{} in generated code; rename the service",
                    file.name(),
                    service.name()
                ));
            }
            let mut consts = BTreeSet::new();
            for method in &service.method {
                if method.client_streaming() || method.server_streaming() {
                    return invalid(format!(
                        "{}: {name}/{} streams; the mesh speaks Connect unary calls only",
                        file.name(),
                        method.name()
                    ));
                }
                let konst = method_const(method.name());
                if RESERVED_CONSTS.contains(&konst.as_str()) || !consts.insert(konst.clone()) {
                    return invalid(format!(
                        "{}: {name}/{} would generate the constant {konst}, which is taken",
                        file.name(),
                        method.name()
                    ));
                }
            }
        }
    }
    Ok(())
}

fn write_if_changed(path: &Path, contents: &[u8]) -> io::Result<()> {
    if fs::read(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    let mut file = fs::File::create(path)?;
    file.write_all(contents)
}

#[cfg(test)]
mod tests;
