//! Transport faults: sizes around the 16 KiB cap and beyond the servers' own limits,
//! header values that are not valid HTTP.

use super::*;

/// Size faults: tokens and header values just over our 16 KiB cap, 100 KiB and 1 MiB.
/// Just over the cap and at 100 KiB our code answers (401 `too_large` before any
/// decoding, 401 malformed, or a bare 401 for a non-Bearer value). At 1 MiB, both HTTP servers refuse the
/// request head themselves (hyper past ~400 KiB, actix past 128 KiB): 431 or a closed
/// connection, without our challenge. Memory stays flat over repeated attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_faults() {
    let env = Env::start(TestIssuer::start().await.unwrap()).await;
    const SIZE: &str = "size cap (16 KiB) before any base64/JSON work: CVE-2025-30204, CVE-2025-53864 class";
    let just_over = env.token().claim("pad", "x".repeat(12_000)).sign();
    assert!(just_over.len() > 16 * 1024 && just_over.len() < 17 * 1024, "{}", just_over.len());
    let kib100 = 100 * 1024;
    let cases = vec![
        token("token just over 16 KiB (validly signed)", SIZE, &just_over, R::TooLarge),
        token("16,385 base64url characters", SIZE, "a".repeat(16 * 1024 + 1), R::TooLarge),
        token("16,500 dots", SIZE, ".".repeat(16_500), R::TooLarge),
        token(
            "100 KiB token-shaped",
            SIZE,
            format!("{}.{}.{}", "a".repeat(kib100 / 2), "b".repeat(kib100 / 2), "c"),
            R::TooLarge,
        ),
        token("100 KiB of dots", SIZE, ".".repeat(kib100), R::TooLarge),
        no_bearer(
            "100 KiB Basic credentials",
            "RFC 6750 §2.1: only Bearer",
            vec![format!("Basic {}", "a".repeat(kib100))],
        ),
        malformed(
            "100 KiB after Bearer with spaces",
            "RFC 6750 §2.1: b64token",
            vec![format!("Bearer {}", "a b".repeat(kib100 / 3))],
        ),
    ];
    env.assert_all("size", &cases).await;

    // 1 MiB header values: the servers refuse them before our code runs.
    let mib = 1024 * 1024;
    let many_headers = format!("\r\nAuthorization: Bearer {}", env.valid).repeat(200).into_bytes();
    let huge: Vec<(&str, Vec<u8>)> = vec![
        (
            "1 MiB bearer token",
            format!("GET /orders HTTP/1.1\r\nAuthorization: Bearer {}", "a".repeat(mib)).into_bytes(),
        ),
        ("1 MiB of dots", format!("GET /orders HTTP/1.1\r\nAuthorization: Bearer {}", ".".repeat(mib)).into_bytes()),
        ("1 MiB Basic value", format!("GET /orders HTTP/1.1\r\nAuthorization: Basic {}", "a".repeat(mib)).into_bytes()),
        (
            "1 MiB other header",
            format!("GET /orders HTTP/1.1\r\nAuthorization: Bearer {}\r\nX-Pad: {}", env.valid, "a".repeat(mib))
                .into_bytes(),
        ),
        ("200 Authorization headers", [&b"GET /orders HTTP/1.1"[..], &many_headers].concat()),
    ];
    let rss_before = rss_kib();
    for round in 0..10 {
        for (name, head) in &huge {
            for service in &env.services {
                let outcome = raw(&service.base, head).await;
                match &outcome {
                    Raw::Answered { status, .. } => {
                        assert!((400..500).contains(status), "{name}: {} answered {outcome:?}", service.name)
                    }
                    Raw::Closed(_) => {}
                }
                if round == 0 {
                    println!("[size] {name:<28} {:<6} {outcome:?}", service.name);
                }
            }
        }
        for service in &env.services {
            let outcome = raw(
                &service.base,
                format!("GET /orders HTTP/1.1\r\nAuthorization: Bearer {}", "a".repeat(kib100)).as_bytes(),
            )
            .await;
            assert!(
                matches!(outcome, Raw::Answered { status: 401, challenge: Some(_) }),
                "{}: {outcome:?}",
                service.name
            );
        }
        env.assert_alive().await;
    }
    let rss_after = rss_kib();
    let grown = rss_after.saturating_sub(rss_before);
    println!(
        "[size] VmRSS before {rss_before} KiB; after 10 rounds of {} huge and one 100 KiB request per service: \
         {rss_after} KiB (+{grown} KiB)",
        huge.len()
    );
    // 10 rounds × 5 requests × 2 services ≈ 100 MiB sent: a leak of any of it would show.
    assert!(grown < 48 * 1024, "memory grew by {grown} KiB");
}

/// Header values that are not valid HTTP (CR/LF, obs-fold, NUL) are refused by the HTTP
/// servers (400, no challenge); bytes that are valid HTTP but not a Bearer credential
/// (non-UTF-8 obs-text) reach our code and get 400 `invalid_request`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_level_faults() {
    let env = Env::start(TestIssuer::start().await.unwrap()).await;
    let (h, p, s) = parts(&env.valid);
    let head = |value: &[u8]| [&b"GET /orders HTTP/1.1\r\nAuthorization: "[..], value].concat();
    let server_level: Vec<(&str, Vec<u8>)> = vec![
        ("obs-fold newline inside the token", head(format!("Bearer {h}.{p}\r\n .{s}").as_bytes())),
        ("bare LF inside the token", head(format!("Bearer {h}.{p}\n.{s}").as_bytes())),
        ("bare CR inside the token", head(format!("Bearer {h}.{p}\r.{s}").as_bytes())),
        ("NUL inside the token", head(format!("Bearer {h}.{p}\0.{s}").as_bytes())),
        ("DEL inside the token", head(format!("Bearer {h}.{p}\x7f.{s}").as_bytes())),
        (
            "header name with a space",
            format!("GET /orders HTTP/1.1\r\nAuthorization : Bearer {}", env.valid).into_bytes(),
        ),
    ];
    for (name, request) in &server_level {
        for service in &env.services {
            let outcome = raw(&service.base, request).await;
            match &outcome {
                Raw::Answered { status, .. } => {
                    assert!((400..500).contains(status), "{name}: {} {outcome:?}", service.name)
                }
                Raw::Closed(_) => {}
            }
            println!("[http] {name:<36} {:<6} {outcome:?}", service.name);
        }
        env.assert_alive().await;
    }
    // Valid HTTP, but bytes no bearer token has: a malformed token (401 invalid_token),
    // or another scheme (401, bare challenge), from both.
    let ours: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "non-UTF-8 bytes in the token",
            head(&[&b"Bearer "[..], h.as_bytes(), &[0xff, 0xfe], b".", p.as_bytes(), b".", s.as_bytes()].concat()),
            r#"Bearer error="invalid_token""#,
        ),
        ("Latin-1 scheme", head(&[&b"B\xe9arer "[..], env.valid.as_bytes()].concat()), "Bearer"),
    ];
    for (name, request, expected) in &ours {
        let mut outcomes = Vec::new();
        for service in &env.services {
            let outcome = raw(&service.base, request).await;
            println!("[http] {name:<36} {:<6} {outcome:?}", service.name);
            match &outcome {
                Raw::Answered { status: 401, challenge: Some(c) } => {
                    assert!(c.starts_with(expected) && (c.len() == 6) == (*expected == "Bearer"), "{name}: {c}")
                }
                other => panic!("{name}: {} answered {other:?}", service.name),
            }
            outcomes.push(outcome);
        }
        assert_eq!(outcomes[0], outcomes[1], "{name}: axum and actix differ");
        env.assert_alive().await;
    }
}
