//! Claim faults (`iss`, `aud`, `exp`, `nbf`, `iat`, `crit`, `b64`, `typ`), validly
//! signed; and the look-alikes accepted on purpose.

use super::*;

/// `iss`, `aud`, `exp`, `nbf`, `iat`, `crit`, `b64` and `typ` faults, validly signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_faults() {
    let env = Env::start(TestIssuer::start().await.unwrap()).await;
    let issuer = env.idp.issuer().to_owned();
    let t = || env.token();
    let mut cases = Vec::new();
    const ISS: &str = "RFC 7519 §4.1.1, RFC 9068 §4: iss is one string, exactly the configured issuer";
    for (name, value, reason) in [
        ("iss array with the issuer", json!([issuer]), R::InvalidClaim),
        ("iss array with two issuers", json!([issuer, "https://evil.example"]), R::InvalidClaim),
        ("iss null", Value::Null, R::InvalidClaim),
        ("iss number", json!(1), R::InvalidClaim),
        ("iss object", json!({"iss": issuer}), R::InvalidClaim),
        ("iss empty", json!(""), R::UnknownIssuer),
        ("iss of another issuer", json!("https://evil.example"), R::UnknownIssuer),
        ("iss with a trailing slash", json!(format!("{issuer}/")), R::UnknownIssuer),
        ("iss in upper case", json!(issuer.to_uppercase()), R::UnknownIssuer),
        ("iss with a path suffix", json!(format!("{issuer}/evil")), R::UnknownIssuer),
        ("iss via localhost", json!(issuer.replace("127.0.0.1", "localhost")), R::UnknownIssuer),
    ] {
        cases.push(token(name, ISS, t().claim("iss", value).sign(), reason));
    }
    cases.push(token("iss missing", ISS, t().without_claim("iss").sign(), R::MissingClaim));
    const AUD: &str = "RFC 7519 §4.1.3, RFC 9068 §4: aud required, a string or non-empty string array naming us";
    for (name, value, reason) in [
        ("aud null", Value::Null, R::InvalidClaim),
        ("aud empty array", json!([]), R::InvalidClaim),
        ("aud number", json!(1), R::InvalidClaim),
        ("aud object", json!({"aud": AUDIENCE}), R::InvalidClaim),
        ("aud array with a non-string", json!([AUDIENCE, 1]), R::InvalidClaim),
        ("aud nested array", json!([[AUDIENCE]]), R::InvalidClaim),
        ("aud empty string", json!(""), R::InvalidAudience),
        ("aud of another API", json!("billing-api"), R::InvalidAudience),
        ("aud array of other APIs", json!(["billing-api", "users-api"]), R::InvalidAudience),
        ("aud prefix", json!("orders"), R::InvalidAudience),
        ("aud in upper case", json!(AUDIENCE.to_uppercase()), R::InvalidAudience),
        ("aud with a space", json!(format!("{AUDIENCE} ")), R::InvalidAudience),
        ("aud is the issuer", json!(issuer), R::InvalidAudience),
    ] {
        cases.push(token(name, AUD, t().audience(value).sign(), reason));
    }
    cases.push(token("aud missing", AUD, t().without_claim("aud").sign(), R::MissingClaim));
    const TIME: &str = "RFC 7519 §4.1.4-4.1.6, RFC 9068 §4: exp required, in the future; nbf, iat not in the future";
    cases.push(token("exp missing", TIME, t().without_claim("exp").sign(), R::MissingClaim));
    cases.push(token("exp one hour ago", TIME, t().expires_in(-3600).sign(), R::Expired));
    cases.push(token("exp just past the 60 s leeway", TIME, t().expires_in(-61).sign(), R::Expired));
    cases.push(token("exp 0 (the epoch)", TIME, t().claim("exp", 0).sign(), R::Expired));
    cases.push(token("nbf in one hour", TIME, t().claim("nbf", now() + 3600).sign(), R::NotYetValid));
    cases.push(token("nbf past the leeway", TIME, t().claim("nbf", now() + 120).sign(), R::NotYetValid));
    cases.push(token("iat in one hour", TIME, t().claim("iat", now() + 3600).sign(), R::IssuedInFuture));
    cases.push(token("iat in year 9999", TIME, t().claim("iat", 253_402_300_000i64).sign(), R::IssuedInFuture));
    const CRIT: &str = "RFC 7515 §4.1.11: a crit extension not understood MUST be rejected; RFC 7797 §6: b64";
    for (name, header) in [
        ("crit with an unknown extension", vec![("crit", json!(["urn:x:unknown"])), ("urn:x:unknown", json!(1))]),
        ("crit naming exp", vec![("crit", json!(["exp"])), ("exp", json!(now() + 60))]),
        ("crit empty array", vec![("crit", json!([]))]),
        ("crit not an array", vec![("crit", json!("b64"))]),
        ("crit null", vec![("crit", Value::Null)]),
        ("b64 false with crit", vec![("b64", json!(false)), ("crit", json!(["b64"]))]),
        ("b64 false without crit", vec![("b64", json!(false))]),
        ("b64 as the string \"false\"", vec![("b64", json!("false"))]),
        ("b64 null", vec![("b64", Value::Null)]),
    ] {
        let mut builder = t();
        for (member, value) in header {
            builder = builder.header(member, value);
        }
        cases.push(token(name, CRIT, builder.sign(), R::UnsupportedCriticalHeader));
    }
    const TYP: &str = "RFC 8725 §3.11, RFC 9068 §2.1: explicit typing keeps other JWT kinds out";
    for typ in ["logout+jwt", "dpop+jwt", "secevent+jwt", "id_token", "JOSE", "JWS", "at+jwt+x", ""] {
        cases.push(token(format!("typ {typ:?} (default policy)"), TYP, t().header("typ", typ).sign(), R::InvalidType));
    }
    for (name, value) in [("number", json!(1)), ("null", Value::Null), ("array", json!(["at+jwt"]))] {
        cases.push(token(format!("typ {name}"), TYP, t().header("typ", value).sign(), R::Malformed));
    }
    env.assert_all("claims", &cases).await;

    // Accepted on purpose (controls for the rules above).
    env.assert_accepted("aud array containing us", &t().audience(json!(["billing-api", AUDIENCE])).sign()).await;
    env.assert_accepted("exp within the leeway", &t().expires_in(-30).sign()).await;
    env.assert_accepted("nbf and iat within the leeway", &t().claim("nbf", now() + 30).claim("iat", now() + 30).sign())
        .await;
    env.assert_accepted("b64 true", &t().header("b64", true).sign()).await;
    for typ in ["JWT", "jwt", "application/jwt", "AT+JWT", "application/at+jwt"] {
        env.assert_accepted(typ, &t().header("typ", typ).sign()).await;
    }
    env.assert_accepted("no typ (default policy)", &t().without_header("typ").sign()).await;
}

/// `typ` when the issuer requires RFC 9068 access tokens (`at+jwt`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typ_required_at_jwt() {
    let env = Env::with(
        TestIssuer::start().await.unwrap(),
        |issuer| issuer.typ_policy(TypPolicy::RequireAccessToken),
        |builder| builder,
    )
    .await;
    const TYP: &str = "RFC 9068 §2.1, §4: the typ header MUST be at+jwt (application/at+jwt)";
    let mut cases = Vec::new();
    for typ in ["JWT", "jwt", "application/jwt", "at+jwt ", " at+jwt", "at-jwt", "at+jwt;x=1", "secevent+jwt", ""] {
        cases.push(token(format!("typ {typ:?}"), TYP, env.token().header("typ", typ).sign(), R::InvalidType));
    }
    cases.push(token("typ missing", TYP, env.token().without_header("typ").sign(), R::InvalidType));
    cases.push(token(
        "typ in cty instead",
        TYP,
        env.token().without_header("typ").header("cty", "at+jwt").sign(),
        R::InvalidType,
    ));
    env.assert_all("typ at+jwt", &cases).await;
    for typ in ["at+jwt", "application/at+jwt", "AT+JWT", "Application/AT+JWT"] {
        env.assert_accepted(typ, &env.token().header("typ", typ).sign()).await;
    }
}

/// Look-alikes accepted by design, each with its reason (listed in the report).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_on_purpose() {
    let env = Env::start(TestIssuer::start().await.unwrap()).await;
    let issuer = env.idp.issuer().to_owned();
    let claims = env.claims_json();
    let signed = |header: &str, claims: &str| env.sign_raw("rs256-1", header, claims);
    let good_header = r#"{"alg":"RS256","kid":"rs256-1","typ":"at+jwt"}"#;
    let accepted: Vec<(&str, &str, String)> = vec![
        (
            "escaped alg/kid/iss/aud spelling the same strings",
            "RFC 8259 §7: \\u0052 is R; JSON string equality is on decoded text",
            signed(
                r#"{"\u0061lg":"\u0052S256","kid":"rs256\u002d1","typ":"at\u002bjwt"}"#,
                &claims.replace(&issuer, &issuer.replace('/', "\\/")).replace(AUDIENCE, "orders\\u002dapi"),
            ),
        ),
        (
            "fractional exp in range",
            "RFC 7519 §2: NumericDate may be non-integer",
            signed(good_header, &claims.replacen(&exp_member_of(&claims), &format!(r#""exp":{}.75"#, now() + 300), 1)),
        ),
        (
            "exp written with an exponent",
            "RFC 8259 §6: 1.7e9 is a number",
            signed(good_header, &claims.replacen(&exp_member_of(&claims), &format!(r#""exp":{}e0"#, now() + 300), 1)),
        ),
        (
            "JSON whitespace around members",
            "RFC 8259 §2: insignificant whitespace",
            signed(" {\n\t\"alg\" : \"RS256\" , \"kid\":\"rs256-1\" }\r\n", &format!("\n{claims}\n")),
        ),
        (
            "unknown header members (x5t, cty, custom)",
            "RFC 7515 §4: unknown non-crit parameters are ignored",
            signed(r#"{"alg":"RS256","kid":"rs256-1","x5t":"AAAA","cty":"x","custom":{"a":[1]}}"#, &claims),
        ),
        (
            "duplicate unknown claim",
            "not read by the library; an app reading it through a serde struct gets serde's duplicate-field error",
            signed(good_header, &claims.replacen('{', r#"{"tenant":"a","tenant":"b","#, 1)),
        ),
        (
            "deeply nested custom claim, validly signed",
            "the issuer signed it; depth bounded by the size cap, skipped without recursion",
            signed(
                good_header,
                &claims.replacen('{', &format!(r#"{{"x":{}{},"#, "[".repeat(2_500), "]".repeat(2_500)), 1),
            ),
        ),
        (
            "scope as scp array (Entra/Okta style)",
            "RFC 9068 §2.2.3 / common scp claim",
            env.token().without_claim("scope").claim("scp", json!(["orders:read"])).sign(),
        ),
    ];
    for (name, why, t) in &accepted {
        env.assert_accepted(name, t).await;
        println!("[accepted] {name:<52} {why}");
    }
    // Several spaces after the scheme, and a lower-case scheme (RFC 6750 §2.1 1*SP;
    // RFC 9110 §11.1: the scheme is case-insensitive).
    for value in [format!("Bearer   {}", env.valid), format!("bEaReR {}", env.valid)] {
        for service in &env.services {
            let answer = env.send(&service.base, std::slice::from_ref(&value)).await.unwrap();
            assert_eq!(answer.status, 200, "{value:.20}: {answer:?}");
        }
    }
    println!(
        "[accepted] {:<52} RFC 6750 §2.1 (1*SP), RFC 9110 §11.1 (case-insensitive scheme)",
        "spaces / scheme casing"
    );
}
