#![allow(clippy::unwrap_used)]

use super::*;

const NOW: u64 = 1_800_000_000;

/// The `name=value` part of a `Set-Cookie`.
fn pair(set_cookie: &str) -> &str {
    set_cookie.split(';').next().unwrap()
}

#[test]
fn no_token_means_open() {
    assert!(authorized(None, None, None, NOW));
    assert!(authorized(Some(""), None, None, NOW));
}

#[test]
fn bearer_header_or_cookie_must_match_exactly() {
    let token = Some("s3cret");
    assert!(!authorized(token, None, None, NOW));
    assert!(authorized(token, Some("Bearer s3cret"), None, NOW));
    assert!(authorized(token, Some("bearer  s3cret "), None, NOW));
    assert!(!authorized(token, Some("Bearer s3cre"), None, NOW));
    assert!(!authorized(token, Some("Bearer s3cret2"), None, NOW));
    assert!(!authorized(token, Some("Basic s3cret"), None, NOW));
    assert!(!authorized(token, Some("s3cret"), None, NOW));
    let set = session_cookie("s3cret", NOW, false);
    let value = pair(&set);
    assert!(authorized(token, None, Some(&format!("a=b; {value}")), NOW));
    assert!(!authorized(token, None, Some("workmesh_console=zz"), NOW));
    let other_name = value.replace(COOKIE, "other");
    assert!(!authorized(token, None, Some(&other_name), NOW));
    // A bad header does not spoil a good cookie.
    assert!(authorized(token, Some("Bearer nope"), Some(value), NOW));
}

#[test]
fn the_cookie_is_not_the_token() {
    let set = session_cookie("s3cret", NOW, false);
    let value = pair(&set).trim_start_matches("workmesh_console=");
    assert!(!value.contains("s3cret"));
    assert!(!value.contains(&hex(b"s3cret")));
    // The raw token (or its hex, the old cookie) is no session.
    assert!(!authorized(
        Some("s3cret"),
        None,
        Some("workmesh_console=s3cret"),
        NOW
    ));
    assert!(!authorized(
        Some("s3cret"),
        None,
        Some(&format!("workmesh_console={}", hex(b"s3cret"))),
        NOW
    ));
}

#[test]
fn sessions_are_valid_until_they_expire() {
    let expiry = NOW + SESSION_SECONDS;
    let value = session_value("t", expiry);
    assert_eq!(value.split_once('.').unwrap().0, expiry.to_string());
    assert_eq!(value.len(), expiry.to_string().len() + 1 + 64, "{value}");
    assert!(valid_session("t", &value, NOW));
    assert!(valid_session("t", &value, expiry - 1));
    assert!(!valid_session("t", &value, expiry), "expired");
    assert!(!valid_session("t", &value, expiry + 1), "expired");
    let set = session_cookie("t", NOW, false);
    assert!(set.contains(&format!("={value};")), "{set}");
    assert!(set.contains("Max-Age=43200"), "{set}");
}

#[test]
fn tampered_sessions_are_refused() {
    let expiry = NOW + SESSION_SECONDS;
    let value = session_value("t", expiry);
    let (_, mac) = value.split_once('.').unwrap();
    // A later expiry with the old mac.
    assert!(!valid_session(
        "t",
        &format!("{}.{mac}", expiry + 3600),
        NOW
    ));
    // One hex digit of the mac changed.
    let last = mac.chars().last().unwrap();
    let flipped = if last == '0' { '1' } else { '0' };
    let tampered = format!("{expiry}.{}{flipped}", &mac[..mac.len() - 1]);
    assert!(!valid_session("t", &tampered, NOW));
    // Shapes that are no session at all.
    for bad in [
        "",
        ".",
        &format!("{expiry}"),
        &format!("{expiry}."),
        &format!(".{mac}"),
        &format!("+{expiry}.{mac}"),
        &format!("{expiry}.{}", &mac[..62]),
        &format!("{expiry}.{mac}00"),
        &format!("{expiry}.{}zz", &mac[..62]),
        &format!("99999999999999999999999.{mac}"),
    ] {
        assert!(!valid_session("t", bad, NOW), "{bad:?}");
    }
}

#[test]
fn the_mac_is_hmac_sha256_of_the_expiry() {
    // Computed independently (Python's hmac and hashlib).
    assert_eq!(
        session_value("s3cret", 1_800_043_200),
        "1800043200.0674d64e96c87328b63a2eebcf9911fe02b90f96512f685d183f62afc6bca749"
    );
}

#[test]
fn another_token_invalidates_every_session() {
    let value = session_value("old-token", NOW + SESSION_SECONDS);
    assert!(valid_session("old-token", &value, NOW));
    assert!(!valid_session("new-token", &value, NOW));
    assert!(!authorized(
        Some("new-token"),
        None,
        Some(&format!("{COOKIE}={value}")),
        NOW
    ));
}
#[test]
fn cookies_are_http_only_and_strict() {
    let set = session_cookie("t", NOW, true);
    assert!(set.starts_with("workmesh_console="));
    for part in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!session_cookie("t", NOW, false).contains("Secure"));
    assert!(clear_cookie().contains("Max-Age=0"));
}

#[test]
fn form_tokens_are_percent_decoded() {
    assert_eq!(form_token("token=a%2Bb+c%25").as_deref(), Some("a+b c%"));
    assert_eq!(form_token("x=1&token=t").as_deref(), Some("t"));
    assert_eq!(form_token("x=1"), None);
    assert_eq!(form_token("token=%zz").as_deref(), Some("%zz"));
}
