//! Optional bearer-token check in front of the registry.
//!
//! The registry is internal (no workers.dev or preview URL; services reach it
//! through service bindings). As defence in depth, setting
//! `WORKMESH_REGISTRY_TOKEN` (a var or, better, a secret) makes the registry
//! Worker refuse every call without `Authorization: Bearer <token>` with
//! Connect `unauthenticated` (HTTP 401), so even a caller that gets a route
//! to it cannot register endpoints or forge outcome reports.
//! `workmesh.v1.Health/Check` stays open, for probes. Unset (the local mesh),
//! the registry is open.

use workmesh::ConnectError;

/// The var (or secret) that holds the registry's token.
pub const TOKEN_VAR: &str = "WORKMESH_REGISTRY_TOKEN";

/// The one path answered without a token.
const HEALTH_CHECK_PATH: &str = "/workmesh.v1.Health/Check";

/// Whether a request to `path` with this `Authorization` header may pass
/// when the registry's token is `token` (`None` or empty: no check).
pub fn authorize(
    token: Option<&str>,
    path: &str,
    authorization: Option<&str>,
) -> Result<(), ConnectError> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(());
    };
    if path == HEALTH_CHECK_PATH {
        return Ok(());
    }
    workmesh::auth::check_bearer(token, authorization, "registry")
}

#[cfg(test)]
mod tests {
    use super::*;
    use workmesh::Code;

    const REGISTER: &str = "/workmesh.v1.Registry/Register";

    fn code(result: Result<(), ConnectError>) -> Option<Code> {
        result.err().map(|e| e.code)
    }

    #[test]
    fn without_a_token_everything_passes() {
        assert!(authorize(None, REGISTER, None).is_ok());
        assert!(authorize(Some(""), REGISTER, None).is_ok());
        assert!(authorize(None, REGISTER, Some("Bearer anything")).is_ok());
    }

    #[test]
    fn with_a_token_calls_need_the_bearer_header() {
        let token = Some("s3cret");
        assert!(authorize(token, REGISTER, Some("Bearer s3cret")).is_ok());
        assert!(authorize(token, REGISTER, Some("bearer  s3cret ")).is_ok());
        let unauthenticated = Some(Code::Unauthenticated);
        assert_eq!(code(authorize(token, REGISTER, None)), unauthenticated);
        assert_eq!(
            code(authorize(token, REGISTER, Some("Bearer s3cres"))),
            unauthenticated
        );
        assert_eq!(
            code(authorize(token, REGISTER, Some("Bearer s3cret2"))),
            unauthenticated
        );
        assert_eq!(
            code(authorize(token, REGISTER, Some("Basic s3cret"))),
            unauthenticated
        );
        assert_eq!(
            code(authorize(token, REGISTER, Some("s3cret"))),
            unauthenticated
        );
        let report = "/workmesh.v1.Registry/ReportOutcomes";
        assert_eq!(code(authorize(token, report, None)), unauthenticated);
    }

    #[test]
    fn health_checks_stay_open() {
        assert!(authorize(Some("s3cret"), HEALTH_CHECK_PATH, None).is_ok());
        assert_eq!(
            code(authorize(Some("s3cret"), "/workmesh.v1.Health/Watch", None)),
            Some(Code::Unauthenticated)
        );
    }
}
