//! Algorithm attacks: `alg: none`, key confusion, algorithm swaps and mis-cased names;
//! key-injection headers (`jwk`, `jku`, `x5u`, `x5c`); `kid` abuse.

use super::*;

/// `alg: none`, HMAC with the RSA public key (key confusion), PS/RS swaps between keys
/// pinned to one, EdDSA/ES mix-ups, unknown and mis-cased algorithm names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn algorithm_attacks() {
    let keys = vec![
        TestKey::generate(Algorithm::RS256, "rs"),
        TestKey::generate(Algorithm::PS256, "ps"),
        TestKey::generate(Algorithm::ES256, "es256"),
        TestKey::generate(Algorithm::ES384, "es384"),
        TestKey::generate(Algorithm::EdDSA, "ed"),
    ];
    let idp = TestIssuer::with_keys(keys).await.unwrap();
    let key = |kid: &str| idp.key(kid).unwrap();
    // The published set: each key pinned to its algorithm, plus the RSA keys re-tagged
    // (same material, the other padding's alg) and an ES256 key without `alg`.
    let retag = |kid: &str, new_kid: &str, alg: Option<&str>| {
        let mut jwk = key(kid).public_jwk();
        jwk["kid"] = new_kid.into();
        match alg {
            Some(alg) => jwk["alg"] = alg.into(),
            None => drop(jwk.as_object_mut().unwrap().remove("alg")),
        }
        jwk
    };
    let mut published: Vec<Value> = ["rs", "ps", "es256", "es384", "ed"].iter().map(|k| key(k).public_jwk()).collect();
    published.push(retag("ps", "ps-as-rs", Some("RS256")));
    published.push(retag("rs", "rs-as-ps", Some("PS256")));
    published.push(retag("es256", "es256-noalg", None));
    idp.set_jwks_body(Some(("application/json", json!({ "keys": published }).to_string().into_bytes())));
    let env = Env::start(idp).await;
    let claims = env.claims_json();
    let idp = &env.idp;
    let key = |kid: &str| idp.key(kid).unwrap();

    // Controls: every key verifies its own, untouched tokens.
    for kid in ["rs", "ps", "es256", "es384", "ed"] {
        env.assert_accepted(kid, &env.sign_raw(kid, &header_for(&key(kid)), &claims)).await;
    }
    let header = |alg: &str, kid: &str| format!(r#"{{"alg":"{alg}","kid":"{kid}","typ":"at+jwt"}}"#);
    let es_noalg = sign_raw(Some(&*key("es256")), &header("ES256", "es256-noalg"), &claims);
    env.assert_accepted("es256-noalg", &es_noalg).await;

    let mut cases: Vec<Attack> = Vec::new();
    const NONE: &str = "RFC 8725 §2.1, §3.1; RFC 7518 §3.6: an unsecured JWS is never an access token";
    let rs_sig = |input: &str| key("rs").sign(input.as_bytes());
    for spelling in casings("none") {
        for kid in [Some("rs"), None] {
            let header = match kid {
                Some(kid) => format!(r#"{{"alg":"{spelling}","kid":"{kid}","typ":"at+jwt"}}"#),
                None => format!(r#"{{"alg":"{spelling}"}}"#),
            };
            let unsigned = sign_raw(None, &header, &claims);
            let kid_note = if kid.is_some() { "kid" } else { "no kid" };
            cases.push(token(format!("alg {spelling:?}, {kid_note}, no signature"), NONE, &unsigned, R::Malformed));
            let input = unsigned.trim_end_matches('.');
            let signed = format!("{input}.{}", b64(rs_sig(input)));
            cases.push(token(
                format!("alg {spelling:?}, {kid_note}, RS256 signature"),
                NONE,
                &signed,
                R::UnsupportedAlgorithm,
            ));
        }
    }
    for (name, alg) in
        [("escaped", r"\u006eone"), ("padded", " none"), ("empty", ""), ("null-terminated", r"none\u0000")]
    {
        let t = env.sign_raw("rs", &format!(r#"{{"alg":"{alg}","kid":"rs"}}"#), &claims);
        cases.push(token(format!("alg none {name}"), NONE, &t, R::UnsupportedAlgorithm));
    }

    // HMAC keyed with the public key, in every common encoding.
    const CONFUSION: &str =
        "RFC 8725 §3.1; CVE-2015-9235, CVE-2016-10555: an HMAC keyed with a public key proves nothing";
    let pkcs1 = key("rs").public_key_bytes();
    let spki = rsa_spki(&pkcs1);
    // Our SPKI is what an attacker downloads: aws-lc parses it as the same RSA key.
    aws_lc_rs::rsa::PublicEncryptingKey::from_der(&spki).expect("a well-formed SubjectPublicKeyInfo");
    let jwk = key("rs").public_jwk();
    let n = jwk["n"].as_str().unwrap().to_owned();
    let n_bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&n).unwrap();
    let spki_pem = pem("PUBLIC KEY", &spki);
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("PEM SPKI", spki_pem.clone().into_bytes()),
        ("PEM SPKI without final newline", spki_pem.trim_end().as_bytes().to_vec()),
        ("PEM SPKI CRLF", spki_pem.replace('\n', "\r\n").into_bytes()),
        ("PEM PKCS#1", pem("RSA PUBLIC KEY", &pkcs1).into_bytes()),
        ("DER SPKI", spki.clone()),
        ("DER PKCS#1", pkcs1.clone()),
        ("JWK n (bytes)", n_bytes),
        ("JWK n (base64url text)", n.into_bytes()),
        ("JWK JSON", jwk.to_string().into_bytes()),
    ];
    for alg in ["HS256", "HS384", "HS512"] {
        for (encoding, secret) in &secrets {
            let t = hmac_token(alg, Some("rs"), secret, &claims);
            cases.push(token(
                format!("{alg} keyed with the RSA key as {encoding}"),
                CONFUSION,
                &t,
                R::UnsupportedAlgorithm,
            ));
        }
        let t = hmac_token(alg, None, &spki_pem.clone().into_bytes(), &claims);
        cases.push(token(format!("{alg} keyed with PEM SPKI, no kid"), CONFUSION, &t, R::UnsupportedAlgorithm));
    }
    for kid in ["es256", "ed"] {
        let t = hmac_token("HS256", Some(kid), &key(kid).public_key_bytes(), &claims);
        cases.push(token(format!("HS256 keyed with the {kid} public key"), CONFUSION, &t, R::UnsupportedAlgorithm));
        let t = hmac_token("HS256", Some(kid), key(kid).public_jwk()["x"].as_str().unwrap().as_bytes(), &claims);
        cases.push(token(format!("HS256 keyed with the {kid} JWK x"), CONFUSION, &t, R::UnsupportedAlgorithm));
    }

    // An algorithm that does not fit the key named by kid: rejected before any
    // signature check, even when the signature is genuinely valid for the claimed alg.
    const BINDING: &str = "RFC 8725 §3.1, RFC 7517 §4.4: the key's alg (and type/curve) binds the token's alg";
    let signed =
        |kid_signing: &str, alg: &str, kid: &str| sign_raw(Some(&*key(kid_signing)), &header(alg, kid), &claims);
    for (name, t) in [
        ("PS256 (valid PSS signature) with RS256-pinned key", signed("ps", "PS256", "ps-as-rs")),
        ("RS256 (valid PKCS#1 signature) with PS256-pinned key", signed("rs", "RS256", "rs-as-ps")),
        ("PS256 with the RS256 key", signed("rs", "PS256", "rs")),
        ("RS256 with the PS256 key", signed("ps", "RS256", "ps")),
        ("RS384 with the RS256 key", signed("rs", "RS384", "rs")),
        ("PS512 with the PS256 key", signed("ps", "PS512", "ps")),
        ("ES256 with the Ed25519 key", signed("ed", "ES256", "ed")),
        ("EdDSA with the ES256 key", signed("es256", "EdDSA", "es256")),
        ("EdDSA with the ES256 key without alg", signed("es256", "EdDSA", "es256-noalg")),
        ("ES384 with the ES256 key", signed("es256", "ES384", "es256")),
        ("ES384 with the P-256 key without alg", signed("es256", "ES384", "es256-noalg")),
        ("ES256 with the ES384 key", signed("es384", "ES256", "es384")),
        ("ES256 with the RS256 key", signed("rs", "ES256", "rs")),
        ("RS256 with the ES256 key", signed("es256", "RS256", "es256")),
        ("RS256 with the Ed25519 key", signed("ed", "RS256", "ed")),
        ("EdDSA with the RS256 key", signed("rs", "EdDSA", "rs")),
    ] {
        cases.push(token(name, BINDING, &t, R::KeyAlgorithmMismatch));
    }
    // The padding is part of the algorithm: PSS bytes under an RS256 alg do not verify.
    cases.push(token(
        "RS256 header, PSS signature, RS256-pinned key (same material)",
        "RFC 7518 §3.3 vs §3.5: PKCS#1 v1.5 and PSS are distinct algorithms",
        signed("ps", "RS256", "ps-as-rs"),
        R::InvalidSignature,
    ));
    const UNKNOWN_ALG: &str = "RFC 7515 §4.1.1: alg is case-sensitive; unknown or unimplemented algorithms fail";
    for alg in ["rs256", "Rs256", "RS256 ", "ES512", "ES256K", "Ed25519", "Ed448", "RSA-OAEP", "dir", "HS256", "RS1"] {
        let t = env.sign_raw("rs", &header(alg, "rs"), &claims);
        cases.push(token(format!("alg {alg:?}"), UNKNOWN_ALG, &t, R::UnsupportedAlgorithm));
    }
    for (name, alg_json) in [("number", "256"), ("null", "null"), ("array", r#"["RS256"]"#), ("object", r#"{"n":1}"#)] {
        let t = env.sign_raw("rs", &format!(r#"{{"alg":{alg_json},"kid":"rs"}}"#), &claims);
        cases.push(token(format!("alg is a {name}"), UNKNOWN_ALG, &t, R::UnsupportedAlgorithm));
    }
    let t = env.sign_raw("rs", r#"{"kid":"rs","typ":"at+jwt"}"#, &claims);
    cases.push(token("alg missing", "RFC 7515 §4.1.1: alg MUST be present", &t, R::Malformed));

    env.assert_all("algorithm", &cases).await;
}

/// `jwk`, `jku`, `x5u`, `x5c` naming an attacker key or URL: never used, never fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_injection_headers() {
    let env = Env::start(TestIssuer::start().await.unwrap()).await;
    let attacker = TestIssuer::start().await.unwrap();
    // The attacker's key has the issuer's kid too, and is published at the attacker URL.
    let attacker_key = attacker.key("rs256-1").unwrap();
    let claims = env.claims_json();
    let fetches_before = env.idp.jwks_fetches();
    let x5c = STANDARD.encode(rsa_spki(&attacker_key.public_key_bytes()));
    let injections: Vec<(&str, Value)> = vec![
        ("jwk", attacker_key.public_jwk()),
        ("jku", attacker.jwks_url().into()),
        ("jku", attacker.discovery_url().into()),
        ("jku", format!("{}/jwks", env.idp.issuer()).replace("127.0.0.1", "localhost").into()),
        ("x5u", attacker.jwks_url().into()),
        ("x5u", attacker.discovery_url().into()),
        ("x5c", json!([x5c])),
    ];
    const WHY: &str =
        "RFC 8725 §3.10 (SSRF via jku/x5u), CVE-2018-0114 (embedded jwk): keys come only from the configured issuer";
    let mut cases = Vec::new();
    for (member, value) in &injections {
        for (kid_note, kid, reason) in [
            ("issuer's kid", Some("rs256-1"), R::InvalidSignature),
            ("attacker kid", Some("attacker"), R::UnknownKey),
            ("no kid", None, R::InvalidSignature),
        ] {
            let mut header = json!({"alg": "RS256", "typ": "at+jwt"});
            header[*member] = value.clone();
            if let Some(kid) = kid {
                header["kid"] = kid.into();
            }
            let t = sign_raw(Some(&*attacker_key), &header.to_string(), &claims);
            cases.push(token(format!("{member}={}, {kid_note}", short(value)), WHY, &t, reason));
        }
    }
    // Everything at once.
    let all = json!({"alg": "RS256", "kid": "rs256-1", "jwk": attacker_key.public_jwk(), "jku": attacker.jwks_url(),
                     "x5u": attacker.jwks_url(), "x5c": [x5c], "x5t": "AAAA", "x5t#S256": "AAAA"});
    let t = sign_raw(Some(&*attacker_key), &all.to_string(), &claims);
    cases.push(token("jwk+jku+x5u+x5c+x5t together", WHY, &t, R::InvalidSignature));
    env.assert_all("key injection", &cases).await;

    assert_eq!(attacker.jwks_fetches(), 0, "the attacker's JWKS URL was fetched");
    assert_eq!(attacker.discovery_fetches(), 0, "the attacker's discovery URL was fetched");
    // Unknown kids may cause one refresh from the real issuer, and only within the cooldown.
    assert!(env.idp.jwks_fetches() - fetches_before <= 1, "{}", env.idp.jwks_fetches() - fetches_before);
    println!(
        "[key injection] attacker URL hits: jwks={} discovery={}",
        attacker.jwks_fetches(),
        attacker.discovery_fetches()
    );
}

fn short(value: &Value) -> String {
    let s = value.to_string();
    if s.len() > 40 { format!("{}…", &s[..40]) } else { s }
}

/// `kid`: unknown, empty, very long, path traversal, injection-looking, non-string.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kid_abuse() {
    let env = Env::start(TestIssuer::start().await.unwrap()).await;
    let fetches_before = env.idp.jwks_fetches();
    const LOOKUP: &str = "RFC 7515 §4.1.4, RFC 8725 §3.10: kid is an opaque lookup key, never a path, query or URL";
    let mut cases = Vec::new();
    let long = "k".repeat(5_000);
    let kids: Vec<(&str, String)> = vec![
        ("unknown", "no-such-key".into()),
        ("empty", String::new()),
        ("5,000 characters", long.clone()),
        ("case variant", "RS256-1".into()),
        ("trailing space", "rs256-1 ".into()),
        ("prefix", "rs256".into()),
        ("path traversal", "../../../../../../etc/passwd".into()),
        ("absolute path", "/dev/random".into()),
        ("encoded traversal", "..%2F..%2F..%2Fetc%2Fpasswd".into()),
        ("windows path", r"..\..\windows\win.ini".into()),
        ("file URL", "file:///etc/passwd".into()),
        ("http URL", "http://127.0.0.1:1/jwks".into()),
        ("SQL injection", "x' OR '1'='1".into()),
        ("SQL statement", "1; DROP TABLE keys;--".into()),
        ("SQL union", "' UNION SELECT 'secret' --".into()),
        ("NoSQL operator as text", r#"{"$ne":null}"#.into()),
        ("LDAP filter", "*)(uid=*))(|(uid=*".into()),
        ("template", "${jndi:ldap://127.0.0.1:1/a}".into()),
        ("NUL byte", "rs256-1\u{0}".into()),
        ("newline", "rs256-1\nrs256-1".into()),
        ("unicode look-alike", "rs256\u{2010}1".into()),
    ];
    for (name, kid) in &kids {
        let t = env.token().header("kid", kid.as_str()).sign();
        cases.push(token(format!("kid {name}"), LOOKUP, &t, R::UnknownKey));
    }
    const TYPE: &str = "RFC 7515 §4.1.4: kid is a string; another JSON type is malformed, never coerced";
    for (name, kid) in [
        ("number", json!(1)),
        ("null", Value::Null),
        ("true", json!(true)),
        ("array with the real kid", json!(["rs256-1"])),
        ("NoSQL operator object", json!({"$ne": null})),
        ("NoSQL regex object", json!({"$regex": ".*"})),
    ] {
        let t = env.token().header("kid", kid).sign();
        cases.push(token(format!("kid {name}"), TYPE, &t, R::Malformed));
    }
    let t = env.token().header("kid", "k".repeat(13_000)).sign();
    cases.push(token("kid of 13,000 characters (token over 16 KiB)", "size cap before decoding", &t, R::TooLarge));
    // Two kid members: the JSON parser refuses, it does not pick one.
    let key = env.idp.key("rs256-1").unwrap();
    let t = sign_raw(Some(&*key), r#"{"alg":"RS256","kid":"nope","kid":"rs256-1"}"#, &env.claims_json());
    cases.push(token("two kid members", "RFC 7515 §4: header parameter names MUST be unique", &t, R::Malformed));
    env.assert_all("kid", &cases).await;
    let fetched = env.idp.jwks_fetches() - fetches_before;
    assert!(fetched <= 1, "{} unknown kids caused {fetched} JWKS fetches within one cooldown", kids.len());
    println!("[kid] JWKS fetches caused by {} unknown kids: {fetched}", kids.len());
}
