//! The Connect service generator: for every `service` in a contract, a server
//! trait and its [`ServiceHandler`] adapter, a typed client, and the method
//! metadata, all naming only items of the `workmesh::codegen` façade.
//!
//! It plugs into prost-build as a [`prost_build::ServiceGenerator`], so the
//! service code lands in the same file as the package's messages and is
//! formatted with them.
//!
//! [`ServiceHandler`]: https://docs.rs/workmesh

use std::fmt::Write as _;

use heck::ToShoutySnakeCase;
use prost_build::{Comments, Method, Service};
use prost_types::method_options::IdempotencyLevel;

/// The names generated code imports from the façade. A service whose trait
/// would share one of these names is rejected before generation.
pub(crate) const FACADE_NAMES: &[&str] = &[
    "Client",
    "ConnectError",
    "Idempotency",
    "IntoRequest",
    "LocalBoxFuture",
    "MethodDescriptor",
    "Rc",
    "Request",
    "Response",
    "ServiceHandler",
    "Transport",
    "UnaryCall",
    "UnaryReply",
    "serve_unary",
];

/// Names of the items generated inside `<service>_methods` besides the
/// per-method constants; a method whose constant would collide is rejected.
pub(crate) const RESERVED_CONSTS: &[&str] = &["SERVICE_NAME", "ALL"];

/// The Rust constant naming a method's descriptor: `GetProduct` → `GET_PRODUCT`.
pub(crate) fn method_const(proto_name: &str) -> String {
    proto_name.to_shouty_snake_case()
}

/// Generates the server, client and method metadata of each service.
#[derive(Debug, Clone)]
pub(crate) struct ConnectServiceGenerator {
    pub(crate) build_server: bool,
    pub(crate) build_client: bool,
}

impl prost_build::ServiceGenerator for ConnectServiceGenerator {
    fn generate(&mut self, service: Service, buf: &mut String) {
        let names = Names::of(&service);
        render_methods(&service, &names, buf);
        if self.build_server {
            render_server(&service, &names, buf);
        }
        if self.build_client {
            render_client(&service, &names, buf);
        }
    }
}

/// The generated names of one service.
struct Names {
    /// `shop.v1.CatalogService`
    full: String,
    /// `CatalogService`: the trait.
    service: String,
    /// `catalog_service_server`
    server_mod: String,
    /// `catalog_service_client`
    client_mod: String,
    /// `catalog_service_methods`
    methods_mod: String,
}

impl Names {
    fn of(service: &Service) -> Names {
        let snake = heck::ToSnakeCase::to_snake_case(service.name.as_str());
        let full = if service.package.is_empty() {
            service.proto_name.clone()
        } else {
            format!("{}.{}", service.package, service.proto_name)
        };
        Names {
            full,
            service: service.name.clone(),
            server_mod: format!("{snake}_server"),
            client_mod: format!("{snake}_client"),
            methods_mod: format!("{snake}_methods"),
        }
    }
}

/// A message type as seen from inside one of the generated modules, which sit
/// one level below the package's messages.
fn message_path(rust_type: &str) -> String {
    if rust_type.starts_with("::") || rust_type.starts_with("crate::") {
        rust_type.to_owned()
    } else {
        format!("super::{rust_type}")
    }
}

fn idempotency_variant(method: &Method) -> &'static str {
    match method.options.idempotency_level() {
        IdempotencyLevel::IdempotencyUnknown => "Unknown",
        IdempotencyLevel::NoSideEffects => "NoSideEffects",
        IdempotencyLevel::Idempotent => "Idempotent",
    }
}

/// Writes the contract's comments as `///` docs (nothing when there are none).
fn docs(comments: &Comments, buf: &mut String) {
    comments.append_with_indent(0, buf);
}

fn has_docs(comments: &Comments) -> bool {
    !comments.leading.is_empty() || !comments.trailing.is_empty()
}

fn render_methods(service: &Service, names: &Names, buf: &mut String) {
    let Names {
        full, methods_mod, ..
    } = names;
    let _ = writeln!(
        buf,
        "/// Method metadata of `{full}`, as declared in its contract: what the \
         router matches, what the retry layer reads (`idempotency`).\n\
         pub mod {methods_mod} {{\n\
         use workmesh::codegen::{{Idempotency, MethodDescriptor}};\n\
         /// Fully-qualified name of the service.\n\
         pub const SERVICE_NAME: &str = \"{full}\";"
    );
    for method in &service.methods {
        docs(&method.comments, buf);
        if has_docs(&method.comments) {
            buf.push_str("///\n");
        }
        let _ = writeln!(
            buf,
            "/// `{full}/{proto}`.\n\
             pub const {konst}: MethodDescriptor = MethodDescriptor {{\n\
             service: SERVICE_NAME,\n\
             method: \"{proto}\",\n\
             idempotency: Idempotency::{idem},\n\
             }};",
            proto = method.proto_name,
            konst = method_const(&method.proto_name),
            idem = idempotency_variant(method),
        );
    }
    let all = service
        .methods
        .iter()
        .map(|m| method_const(&m.proto_name))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        buf,
        "/// Every method of the service, in contract order.\n\
         pub const ALL: &[MethodDescriptor] = &[{all}];\n\
         }}"
    );
}

fn render_server(service: &Service, names: &Names, buf: &mut String) {
    let Names {
        full,
        service: trait_name,
        server_mod,
        methods_mod,
        ..
    } = names;
    let _ = writeln!(
        buf,
        "/// Server side of `{full}`: implement the `{trait_name}` trait and \
         mount a `{trait_name}Server` in a router.\n\
         pub mod {server_mod} {{\n\
         use workmesh::codegen::{{\n\
         serve_unary, ConnectError, LocalBoxFuture, MethodDescriptor, Rc, Request, Response,\n\
         ServiceHandler, UnaryCall, UnaryReply,\n\
         }};"
    );

    // The trait.
    docs(&service.comments, buf);
    if has_docs(&service.comments) {
        buf.push_str("///\n");
    }
    let _ = writeln!(
        buf,
        "/// The handlers of `{full}`, one `async fn` per method. They return a \
         [`ConnectError`] to fail a call; the router turns it into a Connect error response.\n\
         ///\n\
         /// The futures are not required to be `Send`: in a Worker nothing is, so \
         handlers may hold `Rc`s and `RefCell` borrows across `.await`.\n\
         #[allow(async_fn_in_trait)]\n\
         pub trait {trait_name}: 'static {{"
    );
    for method in &service.methods {
        docs(&method.comments, buf);
        let _ = writeln!(
            buf,
            "async fn {name}(&self, request: Request<{req}>) -> Result<Response<{res}>, ConnectError>;",
            name = method.name,
            req = message_path(&method.input_type),
            res = message_path(&method.output_type),
        );
    }
    buf.push_str("}\n");

    // The handler adapter.
    let _ = writeln!(
        buf,
        "/// Serves a [`{trait_name}`] implementation: decodes each call, runs the \
         matching handler and encodes its reply.\n\
         pub struct {trait_name}Server<T> {{\n\
         inner: Rc<T>,\n\
         }}\n\
         \n\
         impl<T: {trait_name}> {trait_name}Server<T> {{\n\
         /// Wraps a service implementation.\n\
         pub fn new(inner: T) -> Self {{\n\
         Self::from_rc(Rc::new(inner))\n\
         }}\n\
         \n\
         /// Wraps an implementation shared with other code (a scheduled handler, \
         another service).\n\
         pub fn from_rc(inner: Rc<T>) -> Self {{\n\
         Self {{ inner }}\n\
         }}\n\
         }}\n\
         \n\
         impl<T> Clone for {trait_name}Server<T> {{\n\
         fn clone(&self) -> Self {{\n\
         Self {{ inner: Rc::clone(&self.inner) }}\n\
         }}\n\
         }}\n\
         \n\
         impl<T: {trait_name}> ServiceHandler for {trait_name}Server<T> {{\n\
         fn name(&self) -> &'static str {{\n\
         super::{methods_mod}::SERVICE_NAME\n\
         }}\n\
         \n\
         fn methods(&self) -> &'static [MethodDescriptor] {{\n\
         super::{methods_mod}::ALL\n\
         }}\n\
         \n\
         fn call(\n\
         &self,\n\
         method: &'static MethodDescriptor,\n\
         call: UnaryCall,\n\
         ) -> LocalBoxFuture<'static, Result<UnaryReply, ConnectError>> {{"
    );
    if !service.methods.is_empty() {
        buf.push_str("let inner = Rc::clone(&self.inner);\n");
    }
    buf.push_str("match method.method {\n");
    for method in &service.methods {
        let _ = writeln!(
            buf,
            "\"{proto}\" => Box::pin(serve_unary(call, move |request: Request<{req}>| async move {{\n\
             inner.{name}(request).await\n\
             }})),",
            proto = method.proto_name,
            name = method.name,
            req = message_path(&method.input_type),
        );
    }
    let _ = writeln!(
        buf,
        "other => {{\n\
         let error = ConnectError::unimplemented(format!(\"{full}/{{other}} is not implemented\"));\n\
         Box::pin(async move {{ Err(error) }})\n\
         }}\n\
         }}\n\
         }}\n\
         }}\n\
         }}"
    );
}

fn render_client(service: &Service, names: &Names, buf: &mut String) {
    let Names {
        full,
        service: trait_name,
        client_mod,
        methods_mod,
        ..
    } = names;
    let _ = writeln!(
        buf,
        "/// Client side of `{full}`: a typed client over any mesh transport.\n\
         pub mod {client_mod} {{\n\
         use workmesh::codegen::{{Client, ConnectError, IntoRequest, Response, Transport}};\n"
    );
    docs(&service.comments, buf);
    if has_docs(&service.comments) {
        buf.push_str("///\n");
    }
    let _ = writeln!(
        buf,
        "/// A typed client of `{full}`: one `async fn` per method, each sending a \
         Connect unary call through the transport's middleware stack.\n\
         #[derive(Clone, Debug)]\n\
         pub struct {trait_name}Client<T> {{\n\
         inner: Client<T>,\n\
         }}\n\
         \n\
         impl<T: Transport> {trait_name}Client<T> {{\n\
         /// A client sending its calls through `transport`.\n\
         pub fn new(transport: T) -> Self {{\n\
         Self::from_client(Client::new(transport))\n\
         }}\n\
         \n\
         /// A typed view of an untyped client (sharing its transport).\n\
         pub fn from_client(inner: Client<T>) -> Self {{\n\
         Self {{ inner }}\n\
         }}\n\
         \n\
         /// The untyped client underneath.\n\
         pub fn client(&self) -> &Client<T> {{\n\
         &self.inner\n\
         }}"
    );
    for method in &service.methods {
        buf.push('\n');
        docs(&method.comments, buf);
        let _ = writeln!(
            buf,
            "pub async fn {name}(\n\
             &self,\n\
             request: impl IntoRequest<{req}>,\n\
             ) -> Result<Response<{res}>, ConnectError> {{\n\
             self.inner\n\
             .unary(&super::{methods_mod}::{konst}, request.into_request())\n\
             .await\n\
             }}",
            name = method.name,
            req = message_path(&method.input_type),
            res = message_path(&method.output_type),
            konst = method_const(&method.proto_name),
        );
    }
    buf.push_str("}\n}\n");
}
