//! Generates the shop.v1 contracts (messages, JSON, servers, clients) into
//! `OUT_DIR`; no `protoc` needed.

fn main() -> std::io::Result<()> {
    workmesh_build::compile_protos(&["../../proto/shop/v1"], &["../../proto"])
}
