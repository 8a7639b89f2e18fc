use super::*;
use crate::identity::Identity;
use http::header::COOKIE;

const SECRET_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SECRET_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn codec(secrets: &[&str]) -> SessionCodec {
    let config = SessionConfig {
        secrets: secrets.iter().map(|s| s.to_string()).collect(),
        ..SessionConfig::default()
    };
    SessionCodec::new(&config).unwrap()
}

fn alice(groups: usize) -> Identity {
    Identity {
        subject: "alice".into(),
        email: Some("alice@example.com".into()),
        email_verified: true,
        groups: (0..groups)
            .map(|i| format!("group-{i:05}-{}", "x".repeat(24)))
            .collect(),
        provider: "test".into(),
        ..Identity::default()
    }
}

/// Turns `Set-Cookie` values into the `Cookie` header a browser would send back.
fn browser_sends(set_cookies: &[HeaderValue]) -> HeaderMap {
    let pairs: Vec<String> = set_cookies
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .filter(|v| !v.contains("Max-Age=0"))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .collect();
    let mut headers = HeaderMap::new();
    if !pairs.is_empty() {
        headers.insert(COOKIE, pairs.join("; ").parse().unwrap());
    }
    headers
}

fn cookie_header(pairs: &[(&str, &str)]) -> HeaderMap {
    let text: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
    let mut headers = HeaderMap::new();
    headers.insert(COOKIE, text.join("; ").parse().unwrap());
    headers
}

#[test]
fn sealed_session_round_trips() {
    let codec = codec(&[SECRET_A]);
    let session = codec.new_session(
        alice(2),
        Some(ProviderTokens {
            access_token: "at".into(),
            refresh_token: Some("rt".into()),
            id_token: None,
            access_expires_at: Some(now_secs() + 300),
        }),
    );
    let set = codec.seal(&session, true, &HeaderMap::new()).unwrap();
    assert_eq!(set.len(), 1);
    let text = set[0].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(text.contains(attribute), "{attribute} missing in {text}");
    }
    assert_eq!(codec.open(&browser_sends(&set)).as_deref(), Some(&session));
}

#[test]
fn plain_http_cookie_is_not_secure() {
    let codec = codec(&[SECRET_A]);
    let set = codec
        .seal(&codec.new_session(alice(0), None), false, &HeaderMap::new())
        .unwrap();
    assert!(!set[0].to_str().unwrap().contains("Secure"));
}

#[test]
fn old_secret_still_opens_and_new_secret_seals() {
    let old = codec(&[SECRET_A]);
    let rotated = codec(&[SECRET_B, SECRET_A]);
    let only_new = codec(&[SECRET_B]);
    let session = old.new_session(alice(1), None);
    let by_old = browser_sends(&old.seal(&session, false, &HeaderMap::new()).unwrap());
    assert_eq!(rotated.open(&by_old).as_deref(), Some(&session));
    let by_rotated = browser_sends(&rotated.seal(&session, false, &HeaderMap::new()).unwrap());
    assert_eq!(only_new.open(&by_rotated).as_deref(), Some(&session));
    assert_eq!(old.open(&by_rotated), None);
}

#[test]
fn tampered_truncated_and_foreign_cookies_open_to_none() {
    let codec = codec(&[SECRET_A]);
    let session = codec.new_session(alice(1), None);
    let set = codec.seal(&session, false, &HeaderMap::new()).unwrap();
    let value = set[0]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();

    let mut flipped = value.clone().into_bytes();
    let middle = flipped.len() / 2;
    flipped[middle] = if flipped[middle] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let foreign = self::codec(&[SECRET_B])
        .seal(&session, false, &HeaderMap::new())
        .unwrap();
    let foreign_value = foreign[0]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();

    let cases: [(&str, String); 6] = [
        ("tampered", flipped),
        ("truncated", value[..value.len() - 5].to_owned()),
        ("half", value[..value.len() / 2].to_owned()),
        ("empty", String::new()),
        ("not base64", "%%%***".into()),
        ("foreign secret", foreign_value),
    ];
    for (name, bad) in cases {
        assert_eq!(
            codec.open(&cookie_header(&[("_portcullis", &bad)])),
            None,
            "{name}"
        );
    }
}

#[test]
fn value_sealed_under_another_cookie_name_does_not_open() {
    let codec = codec(&[SECRET_A]);
    let session = codec.new_session(alice(0), None);
    let sealed = codec
        .seal_value(SESSION_PURPOSE, "_other", &session)
        .unwrap();
    assert_eq!(
        codec.open(&cookie_header(&[("_portcullis", &sealed)])),
        None
    );
}

#[test]
fn expired_session_opens_to_none() {
    let codec = codec(&[SECRET_A]);
    let mut session = codec.new_session(alice(0), None);
    session.expires_at = now_secs() - 1;
    let sealed = codec
        .seal_value(SESSION_PURPOSE, "_portcullis", &session)
        .unwrap();
    assert_eq!(
        codec.open(&cookie_header(&[("_portcullis", &sealed)])),
        None
    );
}

#[test]
fn large_group_list_is_chunked_and_reassembled() {
    let codec = codec(&[SECRET_A]);
    let session = codec.new_session(alice(300), None);
    let set = codec.seal(&session, true, &HeaderMap::new()).unwrap();
    assert!(set.len() >= 3, "expected several chunks, got {}", set.len());
    for (index, value) in set.iter().enumerate() {
        let text = value.to_str().unwrap();
        assert!(text.starts_with(&format!("_portcullis_{index}=")), "{text}");
        assert!(text.len() < 4096);
    }
    assert_eq!(codec.open(&browser_sends(&set)).as_deref(), Some(&session));
}

#[test]
fn missing_chunk_opens_to_none() {
    let codec = codec(&[SECRET_A]);
    let set = codec
        .seal(
            &codec.new_session(alice(300), None),
            true,
            &HeaderMap::new(),
        )
        .unwrap();
    let without_second: Vec<HeaderValue> = set
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, v)| v.clone())
        .collect();
    assert_eq!(codec.open(&browser_sends(&without_second)), None);
}

#[test]
fn stale_chunks_are_cleared_when_the_session_shrinks() {
    let codec = codec(&[SECRET_A]);
    let big = codec
        .seal(
            &codec.new_session(alice(300), None),
            true,
            &HeaderMap::new(),
        )
        .unwrap();
    let request = browser_sends(&big);
    let small = codec
        .seal(&codec.new_session(alice(1), None), true, &request)
        .unwrap();
    let texts: Vec<&str> = small.iter().map(|v| v.to_str().unwrap()).collect();
    assert!(texts[0].starts_with("_portcullis=") && !texts[0].contains("Max-Age=0"));
    for index in 0..big.len() {
        assert!(
            texts.iter().any(
                |t| t.starts_with(&format!("_portcullis_{index}=;")) && t.contains("Max-Age=0")
            ),
            "chunk {index} not cleared: {texts:?}"
        );
    }
}

#[test]
fn single_cookie_is_cleared_when_the_session_grows_into_chunks() {
    let codec = codec(&[SECRET_A]);
    let small = browser_sends(
        &codec
            .seal(&codec.new_session(alice(1), None), true, &HeaderMap::new())
            .unwrap(),
    );
    let big = codec
        .seal(&codec.new_session(alice(300), None), true, &small)
        .unwrap();
    assert!(
        big.iter()
            .any(|v| v.to_str().unwrap().starts_with("_portcullis=;"))
    );
}

#[test]
fn clear_expires_the_cookie_and_all_chunks() {
    let codec = codec(&[SECRET_A]);
    let big = codec
        .seal(
            &codec.new_session(alice(300), None),
            true,
            &HeaderMap::new(),
        )
        .unwrap();
    let cleared = codec.clear(&browser_sends(&big));
    assert_eq!(cleared.len(), big.len() + 1);
    assert!(
        cleared
            .iter()
            .all(|v| v.to_str().unwrap().contains("Max-Age=0"))
    );
}

#[test]
fn short_secret_is_rejected() {
    let config = SessionConfig {
        secrets: vec!["short".into()],
        ..SessionConfig::default()
    };
    assert!(matches!(
        SessionCodec::new(&config),
        Err(SessionError::WeakSecret { index: 0, len: 5 })
    ));
}

#[test]
fn missing_secret_falls_back_to_an_ephemeral_one() {
    let codec = SessionCodec::new(&SessionConfig::default()).unwrap();
    let session = codec.new_session(alice(0), None);
    let set = codec.seal(&session, false, &HeaderMap::new()).unwrap();
    assert_eq!(codec.open(&browser_sends(&set)).as_deref(), Some(&session));
}

#[test]
fn refresh_is_due_only_near_expiry_with_a_refresh_token() {
    let codec = codec(&[SECRET_A]);
    let tokens = |refresh: bool, in_secs: u64| ProviderTokens {
        access_token: "at".into(),
        refresh_token: refresh.then(|| "rt".into()),
        id_token: None,
        access_expires_at: Some(now_secs() + in_secs),
    };
    assert!(codec.needs_refresh(&codec.new_session(alice(0), Some(tokens(true, 10)))));
    assert!(!codec.needs_refresh(&codec.new_session(alice(0), Some(tokens(true, 3600)))));
    assert!(!codec.needs_refresh(&codec.new_session(alice(0), Some(tokens(false, 10)))));
    assert!(!codec.needs_refresh(&codec.new_session(alice(0), None)));
}

#[test]
fn durations_parse_with_units() {
    use std::time::Duration;
    let cases = [
        ("90", Some(90)),
        ("45s", Some(45)),
        ("15m", Some(900)),
        ("12h", Some(43200)),
        ("7d", Some(604800)),
        ("1w", None),
        ("", None),
        ("h", None),
    ];
    for (text, want) in cases {
        assert_eq!(
            config::parse_duration(text),
            want.map(Duration::from_secs),
            "{text}"
        );
    }
}

#[test]
fn debug_output_redacts_tokens() {
    let tokens = ProviderTokens {
        access_token: "secret-at".into(),
        refresh_token: Some("secret-rt".into()),
        id_token: Some("secret-id".into()),
        access_expires_at: None,
    };
    assert!(!format!("{tokens:?}").contains("secret-"));
}

#[test]
fn session_too_large_for_cookies_is_an_error() {
    let codec = codec(&[SECRET_A]);
    let session = codec.new_session(alice(3000), None);
    assert!(matches!(
        codec.seal(&session, true, &HeaderMap::new()),
        Err(SessionError::TooLarge { .. })
    ));
}

#[test]
fn opened_cookies_are_remembered_exactly_and_still_expire() {
    let codec = codec(&[SECRET_A]);
    let session = codec.new_session(alice(1), None);
    let sealed = codec
        .seal_value(SESSION_PURPOSE, "_portcullis", &session)
        .unwrap();
    let request = cookie_header(&[("_portcullis", &sealed)]);
    assert_eq!(codec.open(&request).as_deref(), Some(&session));
    assert_eq!(codec.opened.len(), 1);
    assert_eq!(codec.open(&request).as_deref(), Some(&session));

    // One byte changed is another value: decrypted, refused and not remembered.
    let mut flipped = sealed.clone().into_bytes();
    let middle = flipped.len() / 2;
    flipped[middle] = if flipped[middle] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    assert_eq!(
        codec.open(&cookie_header(&[("_portcullis", &flipped)])),
        None
    );
    assert_eq!(codec.opened.len(), 1);

    // Expiry is checked on every use, remembered or not.
    let mut expired = session;
    expired.expires_at = now_secs() - 1;
    codec
        .opened
        .remember(sealed.as_bytes(), &std::sync::Arc::new(expired));
    assert_eq!(codec.open(&request), None);
}

#[test]
fn first_of_two_same_named_cookies_is_the_one_read() {
    let codec = codec(&[SECRET_A]);
    let first = codec.new_session(alice(0), None);
    let second = codec.new_session(alice(1), None);
    let sealed = |session: &Session| {
        codec
            .seal_value(SESSION_PURPOSE, "_portcullis", session)
            .unwrap()
    };
    let (a, b) = (sealed(&first), sealed(&second));
    let headers = cookie_header(&[("_portcullis", &a), ("_portcullis", &b)]);
    assert_eq!(codec.open(&headers).as_deref(), Some(&first));
}
