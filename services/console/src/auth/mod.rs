//! The deployed console's access check.
//!
//! When the `WORKMESH_CONSOLE_TOKEN` var (or secret) is set, every route but
//! the mesh's own (`/workmesh.v1.*`: health) and the login form needs the
//! token: as `Authorization: Bearer <token>` (OTLP exporters, scripts, the
//! API) or, for a browser, the session cookie the login form sets
//! (`HttpOnly`, `SameSite=Strict`, `Secure` over HTTPS). Unset (locally)
//! the console is open.
//!
//! The cookie is not the token: it is `<expiry>.<mac>`, the expiry in Unix
//! seconds ([`SESSION_SECONDS`] after sign-in) and the mac
//! HMAC-SHA256(key = token, `workmesh-console-session:<expiry>`) in hex. A
//! leaked cookie therefore opens the console only until it expires, and
//! changing the token ends every session at once.
//!
//! Tokens and macs are compared in constant time, so response timing tells
//! nothing about how much of a guess was right.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The var holding the token.
pub const TOKEN_VAR: &str = "WORKMESH_CONSOLE_TOKEN";
/// The session cookie's name.
pub const COOKIE: &str = "workmesh_console";
/// How long a sign-in lasts: 12 hours.
pub const SESSION_SECONDS: u64 = 12 * 3600;
/// What the session mac signs, before the expiry.
const SESSION_CONTEXT: &str = "workmesh-console-session:";

pub use workmesh::auth::{bearer, constant_time_eq};

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

fn session_mac(token: &str, expiry: u64) -> Hmac<Sha256> {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(SESSION_CONTEXT.as_bytes());
    mac.update(expiry.to_string().as_bytes());
    mac
}

/// A session cookie's value for `token`, valid until `expiry` (Unix
/// seconds).
pub fn session_value(token: &str, expiry: u64) -> String {
    let mac = session_mac(token, expiry).finalize().into_bytes();
    format!("{expiry}.{}", hex(&mac))
}

/// Whether a session cookie's value was made with `token` and has not
/// expired at `now_s` (Unix seconds).
pub fn valid_session(token: &str, value: &str, now_s: u64) -> bool {
    let Some((expiry, mac)) = value.split_once('.') else {
        return false;
    };
    let Some(expiry) = expiry
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| expiry.parse::<u64>().ok())
        .flatten()
    else {
        return false;
    };
    let Some(mac) = unhex(mac) else {
        return false;
    };
    // The mac is checked whatever the expiry (constant time, in the hmac
    // crate), and the expiry after.
    let genuine = session_mac(token, expiry).verify_slice(&mac).is_ok();
    genuine & (now_s < expiry)
}

/// Whether a request may pass at `now_s` (Unix seconds): no token
/// configured, or the bearer token holds it, or the session cookie was
/// made with it and is unexpired.
pub fn authorized(
    token: Option<&str>,
    authorization: Option<&str>,
    cookies: Option<&str>,
    now_s: u64,
) -> bool {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return true;
    };
    let by_header = authorization
        .and_then(bearer)
        .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()));
    let by_cookie = cookies
        .and_then(|c| cookie(c, COOKIE))
        .is_some_and(|value| valid_session(token, value, now_s));
    // Both are evaluated: which one matched must not show in the timing.
    by_header | by_cookie
}

/// The `Set-Cookie` value that signs a browser in at `now_s` (Unix
/// seconds), for [`SESSION_SECONDS`].
pub fn session_cookie(token: &str, now_s: u64, secure: bool) -> String {
    format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}{}",
        session_value(token, now_s.saturating_add(SESSION_SECONDS)),
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
mod tests;
