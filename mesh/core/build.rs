//! Generates the mesh's own contracts (`proto/workmesh/v1`) into `OUT_DIR`;
//! `src/proto.rs` includes them as `workmesh::proto::v1`.
//!
//! Pure Rust (protox parses the files), no `protoc`; the output is rewritten
//! only when it changes, and cargo reruns this only when a contract changes.

fn main() -> std::io::Result<()> {
    workmesh_build::compile_protos(&["../../proto/workmesh/v1"], &["../../proto"])
}
