use std::fs;
use std::path::Path;

use super::*;

const GREETER: &str = r#"syntax = "proto3";

package greet.v1;

// Greets people.
service Greeter {
  // Says hello to someone.
  rpc SayHello(SayHelloRequest) returns (SayHelloResponse) {
    option idempotency_level = NO_SIDE_EFFECTS;
  }
  // Remembers a name.
  rpc Remember(RememberRequest) returns (RememberResponse) {
    option idempotency_level = IDEMPOTENT;
  }
  // Sends a postcard: a side effect, never retried.
  rpc SendPostcard(SendPostcardRequest) returns (SendPostcardResponse);
}

// Whom to greet.
message SayHelloRequest {
  // Their name.
  string name = 1;
  // How many times.
  int64 times = 2;
}
message SayHelloResponse { string greeting = 1; }
message RememberRequest { string name = 1; }
message RememberResponse {}
message SendPostcardRequest { string address = 1; }
message SendPostcardResponse {}
"#;

/// Writes `files` (path, contents) under a fresh directory and compiles them
/// all, returning the generated files.
fn compile(builder: Builder, files: &[(&str, &str)]) -> io::Result<BTreeMap<String, String>> {
    let root = tempfile::tempdir()?;
    let out = tempfile::tempdir()?;
    for (path, contents) in files {
        let path = root.path().join(path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(path, contents)?;
    }
    builder
        .out_dir(out.path())
        .emit_rerun_if_changed(false)
        .compile(&[root.path()], &[root.path()])?;
    let mut generated = BTreeMap::new();
    for entry in fs::read_dir(out.path())? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        generated.insert(name, fs::read_to_string(&path)?);
    }
    Ok(generated)
}

fn greeter() -> String {
    let generated = compile(configure(), &[("greet/v1/greeter.proto", GREETER)]).expect("compiles");
    assert_eq!(generated.keys().collect::<Vec<_>>(), ["greet.v1.rs"]);
    generated["greet.v1.rs"].clone()
}

fn module<'a>(file: &'a syn::File, name: &str) -> &'a syn::ItemMod {
    file.items
        .iter()
        .find_map(|item| match item {
            syn::Item::Mod(m) if m.ident == name => Some(m),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no module {name}"))
}

fn items(module: &syn::ItemMod) -> &[syn::Item] {
    module
        .content
        .as_ref()
        .map(|(_, items)| items.as_slice())
        .unwrap_or_default()
}

fn doc(attrs: &[syn::Attribute]) -> String {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn generated_code_parses_and_has_messages_json_server_client_and_methods() {
    let code = greeter();
    let file = syn::parse_file(&code).expect("generated code is valid Rust");

    // Messages and their JSON mapping.
    assert!(code.contains("pub struct SayHelloRequest"));
    assert!(code.contains("impl serde::Serialize for SayHelloRequest"));
    assert!(code.contains("impl<'de> serde::Deserialize<'de> for SayHelloRequest"));

    // Server: the trait, !Send-friendly, with the contract's docs.
    let server = module(&file, "greeter_server");
    let trait_ = items(server)
        .iter()
        .find_map(|i| match i {
            syn::Item::Trait(t) if t.ident == "Greeter" => Some(t),
            _ => None,
        })
        .expect("trait Greeter");
    assert!(doc(&trait_.attrs).contains("Greets people."));
    assert!(doc(&trait_.attrs).contains("not required to be `Send`"));
    assert!(trait_.attrs.iter().any(|a| a.path().is_ident("allow")));
    assert!(trait_
        .supertraits
        .iter()
        .any(|b| matches!(b, syn::TypeParamBound::Lifetime(l) if l.ident == "static")));
    let methods: Vec<_> = trait_
        .items
        .iter()
        .filter_map(|i| match i {
            syn::TraitItem::Fn(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(
        methods
            .iter()
            .map(|m| m.sig.ident.to_string())
            .collect::<Vec<_>>(),
        ["say_hello", "remember", "send_postcard"]
    );
    assert!(methods.iter().all(|m| m.sig.asyncness.is_some()));
    assert!(doc(&methods[0].attrs).contains("Says hello to someone."));
    assert!(code.contains("request: Request<super::SayHelloRequest>"));
    assert!(code.contains("Result<Response<super::SayHelloResponse>, ConnectError>"));
    assert!(code.contains("pub struct GreeterServer<T>"));
    assert!(code.contains("impl<T: Greeter> ServiceHandler for GreeterServer<T>"));
    assert!(code.contains("\"SayHello\" => "));
    assert!(code.contains("ConnectError::unimplemented"));

    // Client.
    module(&file, "greeter_client");
    assert!(code.contains("pub struct GreeterClient<T>"));
    assert!(code.contains("impl<T: Transport> GreeterClient<T>"));
    assert!(code.contains("request: impl IntoRequest<super::SayHelloRequest>"));
    assert!(code.contains(".unary(&super::greeter_methods::SAY_HELLO, request.into_request())"));

    // Method metadata.
    module(&file, "greeter_methods");
    assert!(code.contains("pub const SERVICE_NAME: &str = \"greet.v1.Greeter\";"));
    assert!(code
        .contains("pub const ALL: &[MethodDescriptor] = &[SAY_HELLO, REMEMBER, SEND_POSTCARD];"));
}

#[test]
fn idempotency_comes_from_the_method_options() {
    let code = greeter();
    let idempotency_of = |konst: &str| {
        let start = code
            .find(&format!("pub const {konst}: MethodDescriptor"))
            .expect(konst);
        let rest = &code[start..];
        let at = rest
            .find("idempotency: Idempotency::")
            .expect("idempotency field")
            + "idempotency: Idempotency::".len();
        rest[at..]
            .split(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(idempotency_of("SAY_HELLO"), "NoSideEffects");
    assert_eq!(idempotency_of("REMEMBER"), "Idempotent");
    assert_eq!(idempotency_of("SEND_POSTCARD"), "Unknown");
}

#[test]
fn service_modules_name_only_the_codegen_facade() {
    let code = greeter();
    let file = syn::parse_file(&code).expect("valid Rust");
    for name in ["greeter_server", "greeter_client", "greeter_methods"] {
        for item in items(module(&file, name)) {
            if let syn::Item::Use(use_) = item {
                let syn::UseTree::Path(root) = &use_.tree else {
                    panic!("{name}: unexpected use")
                };
                let syn::UseTree::Path(second) = root.tree.as_ref() else {
                    panic!("{name}: unexpected use")
                };
                assert_eq!(
                    (root.ident.to_string(), second.ident.to_string()),
                    ("workmesh".into(), "codegen".into())
                );
            }
        }
    }
    // Nothing outside the façade is named by path either.
    let services = &code[code
        .find("pub mod greeter_methods")
        .expect("methods module")..];
    let services = &services[..services.find("\n// proto3 JSON").unwrap_or(services.len())];
    for foreign in [
        "tower::",
        "http::",
        "prost::",
        "std::",
        "::workmesh::",
        "workmesh::server",
        "workmesh::client",
    ] {
        assert!(!services.contains(foreign), "service code names {foreign}");
    }
}

#[test]
fn server_or_client_can_be_left_out() {
    let generated = compile(
        configure().build_server(false),
        &[("greet/v1/greeter.proto", GREETER)],
    )
    .expect("compiles");
    let code = &generated["greet.v1.rs"];
    assert!(!code.contains("greeter_server"));
    assert!(code.contains("pub mod greeter_client"));
    assert!(code.contains("pub mod greeter_methods"));

    let generated = compile(
        configure().build_client(false),
        &[("greet/v1/greeter.proto", GREETER)],
    )
    .expect("compiles");
    let code = &generated["greet.v1.rs"];
    assert!(code.contains("pub mod greeter_server"));
    assert!(!code.contains("greeter_client"));
}

#[test]
fn streaming_methods_are_rejected() {
    let proto = r#"syntax = "proto3";
package s.v1;
service Ticker { rpc Ticks(TicksRequest) returns (stream TicksResponse); }
message TicksRequest {}
message TicksResponse {}
"#;
    let error =
        compile(configure(), &[("s/v1/ticker.proto", proto)]).expect_err("streaming is refused");
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    assert!(
        error.to_string().contains("s.v1.Ticker/Ticks streams"),
        "{error}"
    );
}

#[test]
fn names_that_would_clash_are_rejected() {
    let facade = r#"syntax = "proto3";
package c.v1;
service Client { rpc Get(GetRequest) returns (GetResponse); }
message GetRequest {}
message GetResponse {}
"#;
    let error =
        compile(configure(), &[("c/v1/c.proto", facade)]).expect_err("shadowing is refused");
    assert!(
        error
            .to_string()
            .contains("would shadow workmesh::codegen::Client"),
        "{error}"
    );

    let reserved = r#"syntax = "proto3";
package c.v1;
service Things { rpc All(AllRequest) returns (AllResponse); }
message AllRequest {}
message AllResponse {}
"#;
    let error = compile(configure(), &[("c/v1/c.proto", reserved)]).expect_err("ALL is reserved");
    assert!(error.to_string().contains("constant ALL"), "{error}");
}

#[test]
fn directories_are_walked_and_packages_get_one_file_each() {
    let money = "syntax = \"proto3\";\npackage a.v1;\nmessage Money { int64 units = 1; }\n";
    let shop = "syntax = \"proto3\";\npackage a.v1;\nimport \"a/v1/money.proto\";\nmessage Price { Money amount = 1; }\n";
    let other = "syntax = \"proto3\";\npackage b.v1;\nimport \"a/v1/money.proto\";\nmessage Wallet { a.v1.Money cash = 1; }\n";
    let generated = compile(
        configure(),
        &[
            ("a/v1/money.proto", money),
            ("a/v1/shop.proto", shop),
            ("b/v1/wallet.proto", other),
            ("a/v1/README.md", "not a contract"),
        ],
    )
    .expect("compiles");
    assert_eq!(generated.keys().collect::<Vec<_>>(), ["a.v1.rs", "b.v1.rs"]);
    assert!(generated["a.v1.rs"].contains("pub struct Money"));
    assert!(generated["a.v1.rs"].contains("pub struct Price"));
    assert!(generated["b.v1.rs"].contains("super::super::a::v1::Money"));
    for code in generated.values() {
        syn::parse_file(code).expect("valid Rust");
    }
}

#[test]
fn extern_packages_are_not_generated() {
    let money = "syntax = \"proto3\";\npackage a.v1;\nmessage Money { int64 units = 1; }\n";
    let other = "syntax = \"proto3\";\npackage b.v1;\nimport \"a/v1/money.proto\";\nmessage Wallet { a.v1.Money cash = 1; }\n";
    let generated = compile(
        configure().extern_path(".a.v1", "::money::v1"),
        &[("a/v1/money.proto", money), ("b/v1/wallet.proto", other)],
    )
    .expect("compiles");
    assert_eq!(generated.keys().collect::<Vec<_>>(), ["b.v1.rs"]);
    assert!(generated["b.v1.rs"].contains("::money::v1::Money"));
}

#[test]
fn missing_inputs_and_parse_errors_are_errors() {
    let error = configure()
        .out_dir(std::env::temp_dir())
        .emit_rerun_if_changed(false)
        .compile(&["/nonexistent/x.proto"], &["/nonexistent"])
        .expect_err("missing file");
    assert_eq!(error.kind(), io::ErrorKind::NotFound);

    let error = compile(
        configure(),
        &[("bad/v1/bad.proto", "syntax = \"proto3\";\nmessage {")],
    )
    .expect_err("parse error");
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn unchanged_output_is_not_rewritten() {
    let out = tempfile::tempdir().expect("tempdir");
    let path = out.path().join("x.rs");
    write_if_changed(&path, b"one").expect("write");
    let first = fs::metadata(&path)
        .and_then(|m| m.modified())
        .expect("mtime");
    std::thread::sleep(std::time::Duration::from_millis(20));
    write_if_changed(&path, b"one").expect("write");
    assert_eq!(
        fs::metadata(&path)
            .and_then(|m| m.modified())
            .expect("mtime"),
        first
    );
    write_if_changed(&path, b"two").expect("write");
    assert_eq!(fs::read(&path).expect("read"), b"two");
}

#[test]
fn the_repository_contracts_generate() {
    let proto = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let out = tempfile::tempdir().expect("tempdir");
    configure()
        .out_dir(out.path())
        .emit_rerun_if_changed(false)
        .compile(&[&proto], &[&proto])
        .expect("the contracts compile");
    for (package, services) in [
        ("workmesh.v1", &["health", "registry", "faults"][..]),
        ("shop.v1", &["catalog_service", "order_service"][..]),
    ] {
        let code = fs::read_to_string(out.path().join(format!("{package}.rs"))).expect("generated");
        syn::parse_file(&code).expect("valid Rust");
        for service in services {
            for suffix in ["server", "client", "methods"] {
                assert!(
                    code.contains(&format!("pub mod {service}_{suffix}")),
                    "{package}: {service}_{suffix}"
                );
            }
        }
    }
}
