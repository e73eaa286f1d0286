//! The deployed console's access check.
//!
//! When the `WORKMESH_CONSOLE_TOKEN` var (or secret) is set, every route but
//! the mesh's own (`/workmesh.v1.*`: health) and the login form needs the
//! token: as `Authorization: Bearer <token>` (OTLP exporters, scripts, the
//! API) or, for a browser, in the session cookie the login form sets
//! (`HttpOnly`, `SameSite=Strict`, `Secure` over HTTPS; its value is the
//! token in hex). Unset (locally) the console is open.
//!
//! Tokens are compared in constant time, so response timing tells nothing
//! about how much of a guess was right.

/// The var holding the token.
pub const TOKEN_VAR: &str = "WORKMESH_CONSOLE_TOKEN";
/// The session cookie's name.
pub const COOKIE: &str = "workmesh_console";

/// Equal bytes, in time that depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A cookie's value from a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Whether a request may pass: no token configured, or the bearer token or
/// the session cookie holds it.
pub fn authorized(token: Option<&str>, authorization: Option<&str>, cookies: Option<&str>) -> bool {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return true;
    };
    let by_header = authorization
        .and_then(bearer)
        .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()));
    let by_cookie = cookies
        .and_then(|c| cookie(c, COOKIE))
        .and_then(unhex)
        .is_some_and(|given| constant_time_eq(&given, token.as_bytes()));
    // Both are evaluated: which one matched must not show in the timing.
    by_header | by_cookie
}

/// The `Set-Cookie` value that signs a browser in.
pub fn session_cookie(token: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200{}",
        hex(token.as_bytes()),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that signs a browser out.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The `token` field of an `application/x-www-form-urlencoded` body.
pub fn form_token(body: &str) -> Option<String> {
    body.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == "token").then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => match bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(decoded) => {
                    out.push(decoded);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn no_token_means_open() {
        assert!(authorized(None, None, None));
        assert!(authorized(Some(""), None, None));
    }

    #[test]
    fn bearer_header_or_cookie_must_match_exactly() {
        let token = Some("s3cret");
        assert!(!authorized(token, None, None));
        assert!(authorized(token, Some("Bearer s3cret"), None));
        assert!(authorized(token, Some("bearer  s3cret "), None));
        assert!(!authorized(token, Some("Bearer s3cre"), None));
        assert!(!authorized(token, Some("Bearer s3cret2"), None));
        assert!(!authorized(token, Some("Basic s3cret"), None));
        assert!(!authorized(token, Some("s3cret"), None));
        let set = session_cookie("s3cret", false);
        let value = set.split(';').next().unwrap();
        assert!(authorized(token, None, Some(&format!("a=b; {value}"))));
        assert!(!authorized(
            token,
            None,
            Some("workmesh_console=73336372657")
        ));
        assert!(!authorized(token, None, Some("workmesh_console=zz")));
        assert!(!authorized(token, None, Some("other=733363726574")));
        // A bad header does not spoil a good cookie.
        assert!(authorized(token, Some("Bearer nope"), Some(value)));
    }

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn cookies_are_http_only_and_strict() {
        let set = session_cookie("t", true);
        assert!(set.starts_with("workmesh_console=74;"));
        for part in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
            assert!(set.contains(part), "{set}");
        }
        assert!(!session_cookie("t", false).contains("Secure"));
        assert!(clear_cookie().contains("Max-Age=0"));
    }

    #[test]
    fn form_tokens_are_percent_decoded() {
        assert_eq!(form_token("token=a%2Bb+c%25").as_deref(), Some("a+b c%"));
        assert_eq!(form_token("x=1&token=t").as_deref(), Some("t"));
        assert_eq!(form_token("x=1"), None);
        assert_eq!(form_token("token=%zz").as_deref(), Some("%zz"));
    }
}
