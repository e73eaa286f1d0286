//! Bearer tokens, checked the same way wherever the mesh guards a door
//! (the gateway, the registry, the console).
//!
//! Tokens are compared in constant time, so response timing does not tell
//! how much of a guess was right.

use crate::{Code, ConnectError};

/// Equal bytes, in time that depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of an `Authorization: Bearer <token>` header value (scheme
/// case-insensitive, surrounding spaces ignored); `None` for any other
/// scheme or an empty token.
pub fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// `Ok` when `authorization` carries `expected` as its bearer token;
/// otherwise `unauthenticated`, saying whether the token was missing or
/// wrong. `guard` names what asks for it ("gateway", "registry").
pub fn check_bearer(
    expected: &str,
    authorization: Option<&str>,
    guard: &str,
) -> Result<(), ConnectError> {
    match authorization.and_then(bearer) {
        Some(given) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(ConnectError::new(
            Code::Unauthenticated,
            format!("invalid {guard} bearer token"),
        )),
        None => Err(ConnectError::new(
            Code::Unauthenticated,
            format!("this {guard} requires an Authorization: Bearer token"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn bearer_reads_the_token_of_the_bearer_scheme_only() {
        assert_eq!(bearer("Bearer s3cret"), Some("s3cret"));
        assert_eq!(bearer("  bearer   s3cret  "), Some("s3cret"));
        assert_eq!(bearer("Basic czNjcmV0"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("s3cret"), None);
    }

    #[test]
    fn check_bearer_tells_missing_from_wrong() {
        assert!(check_bearer("s3cret", Some("Bearer s3cret"), "gateway").is_ok());
        let wrong = check_bearer("s3cret", Some("Bearer nope"), "gateway")
            .expect_err("a wrong token is refused");
        assert_eq!(wrong.code, Code::Unauthenticated);
        assert_eq!(wrong.message, "invalid gateway bearer token");
        let missing =
            check_bearer("s3cret", None, "registry").expect_err("a missing token is refused");
        assert_eq!(missing.code, Code::Unauthenticated);
        assert!(missing
            .message
            .contains("requires an Authorization: Bearer token"));
    }
}
