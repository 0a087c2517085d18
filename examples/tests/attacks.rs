//! The attack and malformed-input suite, run through both adapters over loopback HTTP.
//!
//! Every case is sent to the axum and the actix orders service (`GET /orders`, which
//! needs `orders:read`) and must get, from both alike: the expected 4xx (400
//! `invalid_request` for a malformed `Authorization` header, 401 `invalid_token` for a
//! bad token) with a `Bearer` `WWW-Authenticate` challenge and a JSON body, the expected
//! rejection reason counted once per adapter in the validator's metrics, no echo of the
//! token, never a 5xx, an answer within 10 s, and the service still accepting a valid
//! token afterwards. Each case names the RFC section or CVE that makes it a rejection.
//!
//! Apart from the attacks, the `controls` in each test show that the same keys and
//! claims are accepted when untouched, so a rejection is caused by the fault under
//! test. `accepted_on_purpose` lists the look-alikes that are accepted by design.
//! Header values the HTTP servers refuse themselves (over their own size limits, or
//! not valid HTTP) get the framework's 4xx or a closed connection; see `size_faults`
//! and `http_level_faults`.
//!
//! Run `cargo test -p examples --test attacks -- --nocapture` to see the case tables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use auth_core::testkit::{TestIssuer, TestKey, sign_raw};
use auth_core::{Algorithm, RejectReason as R, TypPolicy};
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{Attack, Env, Raw, b64, bearer, header_for, malformed, no_bearer, now, raw, request, rss_kib, token};
use examples::demo::AUDIENCE;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------
// Helpers: encodings an attacker would try.

fn der_len(len: usize) -> Vec<u8> {
    if len < 128 {
        return vec![len as u8];
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    let mut out = vec![0x80 | (bytes.len() - skip) as u8];
    out.extend_from_slice(&bytes[skip..]);
    out
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    [vec![tag], der_len(content.len()), content.to_vec()].concat()
}

/// A DER INTEGER from unsigned big-endian bytes.
fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let skip = bytes.iter().take_while(|&&b| b == 0).count().min(bytes.len() - 1);
    let mut v = bytes[skip..].to_vec();
    if v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    der(0x02, &v)
}

/// `SubjectPublicKeyInfo` around a PKCS#1 `RSAPublicKey`.
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    let rsa_encryption = der(0x06, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]);
    let algorithm = der(0x30, &[rsa_encryption, vec![0x05, 0x00]].concat());
    let bits = der(0x03, &[&[0u8][..], pkcs1].concat());
    der(0x30, &[algorithm, bits].concat())
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// A fixed-size ECDSA signature `r || s` as the ASN.1 DER `ECDSA-Sig-Value` (X9.62).
fn ecdsa_der(fixed: &[u8]) -> Vec<u8> {
    let (r, s) = fixed.split_at(fixed.len() / 2);
    der(0x30, &[der_uint(r), der_uint(s)].concat())
}

/// `a + b` over little-endian 32-byte integers (no overflow for the values used).
fn add_le(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    out
}

/// `a - b` over big-endian integers of equal length, `a >= b`.
fn sub_be(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; a.len()];
    let mut borrow = 0i16;
    for i in (0..a.len()).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = d as u8;
    }
    out
}

/// The order of Ed25519's base point, little-endian (RFC 8032 §5.1).
const ED25519_L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// The order n of P-256, big-endian.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa,
    0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

fn hmac_token(alg: &str, kid: Option<&str>, secret: &[u8], claims: &str) -> String {
    let header = match kid {
        Some(kid) => format!(r#"{{"alg":"{alg}","kid":"{kid}","typ":"at+jwt"}}"#),
        None => format!(r#"{{"alg":"{alg}","typ":"at+jwt"}}"#),
    };
    let input = format!("{}.{}", b64(header), b64(claims));
    let algorithm = match alg {
        "HS256" => hmac::HMAC_SHA256,
        "HS384" => hmac::HMAC_SHA384,
        _ => hmac::HMAC_SHA512,
    };
    let tag = hmac::sign(&hmac::Key::new(algorithm, secret), input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

/// `header.payload.signature` of a compact token.
fn parts(token: &str) -> (&str, &str, &str) {
    let mut it = token.split('.');
    (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
}

/// Replaces the signature of `token` with `signature` (raw bytes).
fn with_signature(token: &str, signature: &[u8]) -> String {
    let (h, p, _) = parts(token);
    format!("{h}.{p}.{}", b64(signature))
}

fn signature_of(token: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts(token).2).unwrap()
}

/// Every upper/lower-case spelling of `word`.
fn casings(word: &str) -> Vec<String> {
    let chars: Vec<char> = word.chars().collect();
    (0..1u32 << chars.len())
        .map(|mask| {
            chars
                .iter()
                .enumerate()
                .map(|(i, c)| if mask & (1 << i) != 0 { c.to_ascii_uppercase() } else { *c })
                .collect()
        })
        .collect()
}

// ---------------------------------------------------------------------------------

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

/// Empty, truncated, borrowed, zero (CVE-2022-21449), DER-encoded, malleated and
/// tampered signatures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_faults() {
    let keys = vec![
        TestKey::generate(Algorithm::ES384, "es384"),
        TestKey::generate(Algorithm::EdDSA, "ed"),
        TestKey::generate(Algorithm::ES256, "es256"),
        TestKey::generate(Algorithm::RS256, "rs"),
    ];
    let env = Env::start(TestIssuer::with_keys(keys).await.unwrap()).await;
    let key = |kid: &str| env.idp.key(kid).unwrap();
    let by = |kid: &str| env.token().key(key(kid)).sign();
    let (rs, es, es384, ed) = (by("rs"), by("es256"), by("es384"), by("ed"));
    for (name, t) in [("rs", &rs), ("es256", &es), ("es384", &es384), ("ed", &ed)] {
        env.assert_accepted(name, t).await;
    }
    const SIG: &str = "RFC 7515 §5.2 step 8: the signature must verify over header.payload";
    let mut cases = Vec::new();
    let (h, p, s) = parts(&rs);
    cases.push(token(
        "empty signature segment",
        "RFC 7515 §7.1: three non-empty segments",
        format!("{h}.{p}."),
        R::Malformed,
    ));
    let rs_sig = signature_of(&rs);
    cases.push(token("RSA signature truncated to half", SIG, with_signature(&rs, &rs_sig[..128]), R::InvalidSignature));
    cases.push(token("RSA signature minus one byte", SIG, with_signature(&rs, &rs_sig[..255]), R::InvalidSignature));
    cases.push(token(
        "RSA signature plus a zero byte",
        SIG,
        with_signature(&rs, &[&rs_sig[..], &[0]].concat()),
        R::InvalidSignature,
    ));
    cases.push(token(
        "RSA signature with a leading zero byte",
        SIG,
        with_signature(&rs, &[&[0], &rs_sig[..]].concat()),
        R::InvalidSignature,
    ));
    cases.push(token("RSA signature all zero", SIG, with_signature(&rs, &[0; 256]), R::InvalidSignature));
    cases.push(token("one zero byte", SIG, with_signature(&rs, &[0]), R::InvalidSignature));
    cases.push(token(
        "signature base64 with stray trailing bits",
        "RFC 7515 §2 / RFC 4648 §3.5: canonical base64url only",
        format!("{h}.{p}.{}", &s[..s.len() - 1]),
        R::Malformed,
    ));
    let other = env.token().key(key("rs")).claim("sub", "other").sign();
    cases.push(token("another token's signature", SIG, format!("{h}.{p}.{}", parts(&other).2), R::InvalidSignature));
    cases.push(token(
        "another key's signature (ES256 on RS256)",
        SIG,
        format!("{h}.{p}.{}", parts(&es).2),
        R::InvalidSignature,
    ));
    // Tampering with the original signature kept.
    let evil_claims: Value = {
        let mut c: Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
        c["scope"] = "orders:read orders:write admin".into();
        c["sub"] = "admin".into();
        c
    };
    cases.push(token(
        "tampered payload (scope, sub), original signature",
        SIG,
        format!("{h}.{}.{s}", b64(evil_claims.to_string())),
        R::InvalidSignature,
    ));
    let mut evil_header: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
    evil_header["typ"] = "JWT".into();
    cases.push(token(
        "tampered header (typ), original signature",
        SIG,
        format!("{}.{p}.{s}", b64(evil_header.to_string())),
        R::InvalidSignature,
    ));
    cases.push(token(
        "tampered header (whitespace), original signature",
        SIG,
        format!("{}.{p}.{s}", b64(format!(" {evil_header}"))),
        R::InvalidSignature,
    ));
    let exp_plus_one = {
        let mut c: Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
        c["exp"] = (c["exp"].as_i64().unwrap() + 86_400).into();
        c
    };
    cases.push(token(
        "tampered exp (+1 day), original signature",
        SIG,
        format!("{h}.{}.{s}", b64(exp_plus_one.to_string())),
        R::InvalidSignature,
    ));

    // ECDSA.
    const PSYCHIC: &str = "CVE-2022-21449 (psychic signatures): r and s must be in [1, n-1]";
    cases.push(token("ES256 r=s=0", PSYCHIC, with_signature(&es, &[0; 64]), R::InvalidSignature));
    cases.push(token("ES384 r=s=0", PSYCHIC, with_signature(&es384, &[0; 96]), R::InvalidSignature));
    cases.push(token("ES256 r=s=n", PSYCHIC, with_signature(&es, &[P256_N, P256_N].concat()), R::InvalidSignature));
    let es_sig = signature_of(&es);
    let mut r_only = es_sig.clone();
    r_only[32..].fill(0);
    cases.push(token("ES256 valid r, s=0", PSYCHIC, with_signature(&es, &r_only), R::InvalidSignature));
    cases.push(token("ES256 all 0xff", PSYCHIC, with_signature(&es, &[0xff; 64]), R::InvalidSignature));
    let es_der = ecdsa_der(&es_sig);
    // The DER form is a genuinely valid ECDSA signature over the same input...
    let public = key("es256").public_key_bytes();
    let (eh, ep, _) = parts(&es);
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1, &public)
        .verify(format!("{eh}.{ep}").as_bytes(), &es_der)
        .expect("the DER signature verifies as ASN.1");
    // ...but JWS ECDSA signatures are the fixed-size R || S (RFC 7518 §3.4).
    const FIXED: &str = "RFC 7518 §3.4: ECDSA signatures are R || S, fixed size, never DER";
    cases.push(token("ES256 DER-encoded (valid) signature", FIXED, with_signature(&es, &es_der), R::InvalidSignature));
    cases.push(token(
        "ES384 DER-encoded (valid) signature",
        FIXED,
        with_signature(&es384, &ecdsa_der(&signature_of(&es384))),
        R::InvalidSignature,
    ));
    cases.push(token(
        "ES256 signature truncated to 63 bytes",
        FIXED,
        with_signature(&es, &es_sig[..63]),
        R::InvalidSignature,
    ));
    cases.push(token(
        "ES256 signature padded to 65 bytes",
        FIXED,
        with_signature(&es, &[&es_sig[..], &[0]].concat()),
        R::InvalidSignature,
    ));
    cases.push(token(
        "ES256 r and s swapped",
        SIG,
        with_signature(&es, &[&es_sig[32..], &es_sig[..32]].concat()),
        R::InvalidSignature,
    ));

    // EdDSA.
    let ed_sig = signature_of(&ed);
    cases.push(token("Ed25519 all zero", SIG, with_signature(&ed, &[0; 64]), R::InvalidSignature));
    let malleated = [&ed_sig[..32], &add_le(&ed_sig[32..], &ED25519_L)[..]].concat();
    cases.push(token(
        "Ed25519 S + L (malleated)",
        "RFC 8032 §5.1.7: S must be < L",
        with_signature(&ed, &malleated),
        R::InvalidSignature,
    ));
    cases.push(token("Ed25519 signature truncated", SIG, with_signature(&ed, &ed_sig[..32]), R::InvalidSignature));
    env.assert_all("signature", &cases).await;

    // Accepted on purpose: the high-S twin (r, n - s) of a valid ECDSA signature is a
    // valid signature of the same token (RFC 7518 requires no low-S form). A bearer
    // can already replay their token, so a second spelling of it grants nothing.
    let high_s = [&es_sig[..32], &sub_be(&P256_N, &es_sig[32..])[..]].concat();
    env.assert_accepted("ES256 high-S twin", &with_signature(&es, &high_s)).await;
    println!("[signature] accepted on purpose: ES256 (r, n-s) twin of a valid signature");
}

/// Shape and JSON faults: padding, alphabet, whitespace, segment counts, non-JSON,
/// duplicate members, deep nesting, unicode escapes, out-of-range numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoding_faults() {
    let env = Env::start(TestIssuer::start().await.unwrap()).await;
    let issuer = env.idp.issuer().to_owned();
    let claims = env.claims_json();
    let good_header = r#"{"alg":"RS256","kid":"rs256-1","typ":"at+jwt"}"#;
    let signed = |header: &str, claims: &str| env.sign_raw("rs256-1", header, claims);
    let valid = signed(good_header, &claims);
    env.assert_accepted("raw-signed control", &valid).await;
    let (h, p, s) = parts(&valid);
    let mut cases = Vec::new();

    const B64: &str = "RFC 7515 §2, §7.1: base64url without padding; RFC 6750 §2.1 b64token";
    cases.push(token("padding '=' after the signature", B64, format!("{valid}="), R::Malformed));
    cases.push(token("padding '==' after the signature", B64, format!("{valid}=="), R::Malformed));
    cases.push(malformed("padding '=' after the header segment", B64, bearer(format!("{h}=.{p}.{s}"))));
    cases.push(malformed("padding '=' after the payload segment", B64, bearer(format!("{h}.{p}=.{s}"))));
    let standard = valid.replace('-', "+").replace('_', "/");
    assert_ne!(standard, valid, "the token has '-' or '_' to translate");
    cases.push(token("standard base64 alphabet (+ and /)", B64, &standard, R::Malformed));
    let std_header = format!("{}.{p}.{s}", STANDARD.encode(good_header));
    cases.push(malformed("standard-alphabet padded header", B64, bearer(&std_header)));
    const WS: &str = "RFC 6750 §2.1: b64token has no whitespace; RFC 7515 §7.1: no whitespace in compact form";
    cases.push(malformed("space inside the token", WS, bearer(format!("{h}. {p}.{s}"))));
    cases.push(malformed("tab inside the token", WS, bearer(format!("{h}.{p}\t.{s}"))));
    cases.push(malformed("two tokens separated by a space", WS, bearer(format!("{valid} {valid}"))));
    cases.push(malformed("tab between scheme and token", WS, vec![format!("Bearer\t{valid}")]));
    cases.push(malformed("token then a comma-separated parameter", WS, bearer(format!("{valid}, realm=\"x\""))));
    cases.push(malformed("non-ASCII (UTF-8) inside the token", WS, bearer(format!("{h}.{p}é.{s}"))));
    const MERGED: &str = "RFC 9110 §5.3: a proxy may merge two fields into one; RFC 6750 §2: one token per request";
    cases.push(request(
        "two Bearer credentials merged into one field",
        MERGED,
        bearer(format!("{valid}, Bearer {valid}")),
    ));
    cases.push(request("merged, lowercase second scheme", MERGED, bearer(format!("{valid},bearer {valid}"))));
    const SCHEME: &str = "RFC 6750 §3.1: another scheme is no bearer token: 401, bare challenge";
    cases.push(no_bearer("the token without a scheme", SCHEME, vec![valid.clone()]));
    cases.push(no_bearer("scheme Token", SCHEME, vec![format!("Token {valid}")]));
    cases.push(no_bearer("scheme Bearer- (a look-alike)", SCHEME, vec![format!("Bearer-{valid}")]));

    const SEGMENTS: &str = "RFC 7515 §7.1: exactly three segments (5 is JWE, RFC 7516 §7.1, never accepted)";
    cases.push(token("2 segments", SEGMENTS, format!("{h}.{p}"), R::Malformed));
    cases.push(token("1 segment", SEGMENTS, h, R::Malformed));
    cases.push(token("4 segments", SEGMENTS, format!("{valid}.{s}"), R::Malformed));
    let jwe_header = b64(r#"{"alg":"RSA-OAEP","enc":"A256GCM","kid":"rs256-1"}"#);
    cases.push(token(
        "5 segments (JWE-shaped)",
        SEGMENTS,
        format!("{jwe_header}.{s}.{}.{p}.{}", b64([7u8; 12]), b64([1u8; 16])),
        R::Malformed,
    ));
    cases.push(token(
        "5 segments, JWE header with dir",
        SEGMENTS,
        format!("{}..{}.{p}.{}", b64(r#"{"alg":"dir","enc":"A128GCM"}"#), b64([7u8; 12]), b64([1u8; 16])),
        R::Malformed,
    ));
    cases.push(token("empty header segment", SEGMENTS, format!(".{p}.{s}"), R::Malformed));
    cases.push(token("empty payload segment", SEGMENTS, format!("{h}..{s}"), R::Malformed));
    cases.push(token("only dots", SEGMENTS, "..", R::Malformed));
    cases.push(token("three empty segments plus one", SEGMENTS, "...", R::Malformed));
    cases.push(token(
        "8,000 dots",
        "CVE-2025-30204: a token full of dots is refused at the third",
        ".".repeat(8_000),
        R::Malformed,
    ));

    const JSON_OBJECT: &str = "RFC 7515 §4, RFC 7519 §7.2 step 3/10: header and claims are JSON objects (RFC 8259)";
    for (name, header) in [
        ("not JSON", "hello".to_owned()),
        ("JSON array", r#"["RS256","rs256-1"]"#.to_owned()),
        ("JSON string", r#""RS256""#.to_owned()),
        ("JSON number", "256".to_owned()),
        ("JSON null", "null".to_owned()),
        ("JSON true", "true".to_owned()),
        ("empty", String::new()),
        ("trailing garbage", format!("{good_header}x")),
        ("two objects", format!("{good_header}{good_header}")),
        ("byte-order mark", format!("\u{feff}{good_header}")),
        ("comment", r#"{"alg":"RS256",/*x*/"kid":"rs256-1"}"#.to_owned()),
        ("single quotes", "{'alg':'RS256','kid':'rs256-1'}".to_owned()),
        ("trailing comma", r#"{"alg":"RS256","kid":"rs256-1",}"#.to_owned()),
        ("unterminated", r#"{"alg":"RS256","kid":"rs256-1""#.to_owned()),
    ] {
        let t = if header.is_empty() { format!(".{p}.{s}") } else { signed(&header, &claims) };
        cases.push(token(format!("header {name}"), JSON_OBJECT, &t, R::Malformed));
    }
    let not_utf8 = format!("{}.{p}.{s}", b64([0xff, 0xfe, b'{', b'}']));
    cases.push(token("header not UTF-8", "RFC 7515 §5.2 step 3: UTF-8 JSON", &not_utf8, R::Malformed));
    let header_b64 = format!("{}.{p}.{s}", b64(h));
    cases.push(token("header base64-encoded twice", JSON_OBJECT, &header_b64, R::Malformed));
    for (name, body) in [
        ("not JSON", "hello".to_owned()),
        ("JSON array", format!("[{claims}]")),
        ("JSON string", format!("{:?}", claims)),
        ("JSON null", "null".to_owned()),
        ("number", "1".to_owned()),
        ("trailing garbage", format!("{claims} x")),
        ("byte-order mark", format!("\u{feff}{claims}")),
    ] {
        cases.push(token(format!("claims {name}"), JSON_OBJECT, signed(good_header, &body), R::Malformed));
    }
    let bad_utf8 = sign_raw_bytes(&env, good_header.as_bytes(), &[b'{', 0xc3, 0x28, b'}']);
    cases.push(token("claims not UTF-8", "RFC 7519 §7.2 step 10: UTF-8 JSON", &bad_utf8, R::Malformed));

    const DUP: &str = "RFC 7515 §4, RFC 7519 §4: member names MUST be unique; parsers must reject or take the last";
    let dup_claims = |extra: &str| claims.replacen('{', &format!("{{{extra},"), 1);
    for (name, header) in [
        ("alg (RS256 then none)", r#"{"alg":"RS256","alg":"none","kid":"rs256-1"}"#),
        ("alg (none then RS256)", r#"{"alg":"none","alg":"RS256","kid":"rs256-1"}"#),
        ("alg (RS256 twice)", r#"{"alg":"RS256","alg":"RS256","kid":"rs256-1"}"#),
        ("alg, one escaped", r#"{"alg":"RS256","\u0061lg":"none","kid":"rs256-1"}"#),
        ("kid", r#"{"alg":"RS256","kid":"rs256-1","kid":"rs256-1"}"#),
        ("typ", r#"{"alg":"RS256","kid":"rs256-1","typ":"at+jwt","typ":"JWT"}"#),
        ("crit", r#"{"alg":"RS256","kid":"rs256-1","crit":["x"],"crit":["x"]}"#),
    ] {
        cases.push(token(format!("duplicate header {name}"), DUP, signed(header, &claims), R::Malformed));
    }
    for (name, extra) in [
        ("iss (other first)", r#""iss":"https://evil.example""#.to_owned()),
        ("iss (same twice)", format!(r#""iss":"{issuer}""#)),
        ("iss, one escaped", r#""\u0069ss":"https://evil.example""#.to_owned()),
        ("aud (other first)", r#""aud":"billing-api""#.to_owned()),
        ("aud (array and string)", format!(r#""aud":["{AUDIENCE}"]"#)),
        ("exp", r#""exp":4102444800"#.to_owned()),
        ("scope", r#""scope":"orders:read orders:write""#.to_owned()),
        ("sub", r#""sub":"admin""#.to_owned()),
        ("nbf", r#""nbf":0,"nbf":0"#.to_owned()),
    ] {
        cases.push(token(
            format!("duplicate claim {name}"),
            DUP,
            signed(good_header, &dup_claims(&extra)),
            R::Malformed,
        ));
    }

    const NESTING: &str = "CVE-2025-53864 (nested JSON): no recursion on hostile input, bounded by the size cap";
    let depth = 2_500;
    let nest = |open: &str, close: &str| format!("{}{}", open.repeat(depth), close.repeat(depth));
    let attacker = Arc::new(TestKey::generate(Algorithm::RS256, "rs256-1"));
    let attacker_signed = |header: &str, claims: &str| sign_raw(Some(&*attacker), header, claims);
    let nested_header = format!(r#"{{"alg":"RS256","kid":"rs256-1","x":{}}}"#, nest("[", "]"));
    cases.push(token(
        "header member nested 2,500 deep (forged)",
        NESTING,
        attacker_signed(&nested_header, &claims),
        R::InvalidSignature,
    ));
    let nested_obj = format!(r#"{{"alg":"RS256","kid":"rs256-1","x":{}1{}}}"#, r#"{"a":"#.repeat(700), "}".repeat(700));
    cases.push(token(
        "header member nested 700 objects deep (forged)",
        NESTING,
        attacker_signed(&nested_obj, &claims),
        R::InvalidSignature,
    ));
    cases.push(token("header is 2,500 nested arrays", NESTING, signed(&nest("[", "]"), &claims), R::Malformed));
    let nested_claim = claims.replacen('{', &format!(r#"{{"x":{},"#, nest("[", "]")), 1);
    cases.push(token(
        "claim nested 2,500 deep (forged)",
        NESTING,
        attacker_signed(good_header, &nested_claim),
        R::InvalidSignature,
    ));
    let nested_aud = claims.replace(&format!(r#""aud":"{AUDIENCE}""#), &format!(r#""aud":{}"#, nest("[", "]")));
    cases.push(token("aud nested 2,500 deep", NESTING, signed(good_header, &nested_aud), R::InvalidClaim));
    let nested_iss = claims.replace(&format!(r#""iss":"{issuer}""#), &format!(r#""iss":{}"#, nest("[", "]")));
    cases.push(token("iss nested 2,500 deep", NESTING, signed(good_header, &nested_iss), R::InvalidClaim));
    cases.push(token("claims are 2,500 nested arrays", NESTING, signed(good_header, &nest("[", "]")), R::Malformed));
    let unbalanced = format!(r#"{{"alg":"RS256","kid":"rs256-1","x":{}}}"#, "[".repeat(depth));
    cases.push(token("header with 2,500 unclosed arrays", NESTING, signed(&unbalanced, &claims), R::Malformed));

    const ESCAPES: &str = "RFC 8259 §7-8: escapes decode first; the decoded string is compared exactly";
    let replace_claim = |from: &str, to: &str| {
        assert!(claims.contains(from), "{from}");
        claims.replace(from, to)
    };
    let iss_member = format!(r#""iss":"{issuer}""#);
    let aud_member = format!(r#""aud":"{AUDIENCE}""#);
    for (name, header) in [
        ("alg none spelled with escapes", r#"{"alg":"\u006e\u006f\u006e\u0065","kid":"rs256-1"}"#),
        ("alg with an escaped NUL", r#"{"alg":"RS256\u0000","kid":"rs256-1"}"#),
    ] {
        cases.push(token(name, ESCAPES, signed(header, &claims), R::UnsupportedAlgorithm));
    }
    for (name, header) in [
        ("kid with a lone surrogate", r#"{"alg":"RS256","kid":"\ud800"}"#),
        ("kid with an invalid escape", r#"{"alg":"RS256","kid":"\x41"}"#),
        ("alg with a truncated escape", r#"{"alg":"RS25\u36"}"#),
    ] {
        cases.push(token(name, "RFC 8259 §7-8: invalid escapes are not JSON", signed(header, &claims), R::Malformed));
    }
    for (name, from, to, reason) in [
        (
            "iss with a Cyrillic look-alike",
            iss_member.clone(),
            iss_member.replace("http", "htt\\u0440"),
            R::UnknownIssuer,
        ),
        (
            "iss with an escaped NUL suffix",
            iss_member.clone(),
            iss_member.replace(&issuer, &format!("{issuer}\\u0000")),
            R::UnknownIssuer,
        ),
        (
            "iss with a zero-width space",
            iss_member.clone(),
            iss_member.replace(&issuer, &format!("{issuer}\\u200b")),
            R::UnknownIssuer,
        ),
        (
            "aud with a zero-width space",
            aud_member.clone(),
            aud_member.replace(AUDIENCE, "orders-api\\u200b"),
            R::InvalidAudience,
        ),
        ("aud with a non-breaking hyphen", aud_member.clone(), aud_member.replace('-', "\\u2011"), R::InvalidAudience),
        ("aud fullwidth", aud_member.clone(), r#""aud":"\uff4frders-api""#.to_owned(), R::InvalidAudience),
    ] {
        cases.push(token(name, ESCAPES, signed(good_header, &replace_claim(&from, &to)), reason));
    }
    let lone = replace_claim(&aud_member, r#""aud":"orders-api\udc00""#);
    cases.push(token(
        "aud with a lone low surrogate",
        "RFC 8259 §8.2: not valid Unicode",
        signed(good_header, &lone),
        R::InvalidClaim,
    ));

    const NUMERIC: &str = "RFC 7519 §2, §4.1.4: NumericDate is a JSON number of seconds; out of range is hostile";
    let claims_exp = |v: &str| claims.replacen(&exp_member_of(&claims), &format!(r#""exp":{v}"#), 1);
    for (name, value, reason) in [
        ("exp in year 10000", "253402300800".to_owned(), R::InvalidClaim),
        ("exp i64::MAX", i64::MAX.to_string(), R::InvalidClaim),
        ("exp u64::MAX + 1", "18446744073709551616".to_owned(), R::InvalidClaim),
        ("exp 1e300", "1e300".to_owned(), R::InvalidClaim),
        ("exp 1e400 (beyond f64)", "1e400".to_owned(), R::InvalidClaim),
        ("exp negative", "-1".to_owned(), R::InvalidClaim),
        ("exp i64::MIN", i64::MIN.to_string(), R::InvalidClaim),
        ("exp negative float", "-1.5".to_owned(), R::InvalidClaim),
        ("exp as a string (CVE-2026-25537)", format!("\"{}\"", now() + 300), R::InvalidClaim),
        ("exp true", "true".to_owned(), R::InvalidClaim),
        ("exp null", "null".to_owned(), R::InvalidClaim),
        ("exp array", format!("[{}]", now() + 300), R::InvalidClaim),
        ("exp object", format!(r#"{{"$gt":{}}}"#, now()), R::InvalidClaim),
        ("exp -0 (zero: expired)", "-0".to_owned(), R::Expired),
        ("exp 0.5 (expired)", "0.5".to_owned(), R::Expired),
        ("exp leading zeros", format!("0{}", now() + 300), R::Malformed),
        ("exp hex", "0x7fffffff".to_owned(), R::Malformed),
        ("exp NaN", "NaN".to_owned(), R::Malformed),
        ("exp Infinity", "Infinity".to_owned(), R::Malformed),
        ("exp +1", format!("+{}", now() + 300), R::Malformed),
    ] {
        cases.push(token(name, NUMERIC, signed(good_header, &claims_exp(&value)), reason));
    }
    for (name, member, reason) in [
        ("nbf in year 10000", r#""nbf":253402300800"#, R::InvalidClaim),
        ("nbf negative", r#""nbf":-1"#, R::InvalidClaim),
        ("nbf as a string", r#""nbf":"0""#, R::InvalidClaim),
        ("nbf null", r#""nbf":null"#, R::InvalidClaim),
        ("iat 1e300", r#""iat":1e300"#, R::InvalidClaim),
        ("iat as a string", r#""iat":"0""#, R::InvalidClaim),
    ] {
        cases.push(token(
            name,
            NUMERIC,
            signed(
                good_header,
                &claims.replacen('{', &format!("{{{member},"), 1).replace(&iat_member_of(&claims), "\"_\":0"),
            ),
            reason,
        ));
    }
    env.assert_all("encoding", &cases).await;
}

fn exp_member_of(claims: &str) -> String {
    let start = claims.find("\"exp\":").unwrap();
    let end = claims[start..].find([',', '}']).unwrap() + start;
    claims[start..end].to_owned()
}

fn iat_member_of(claims: &str) -> String {
    let start = claims.find("\"iat\":").unwrap();
    let end = claims[start..].find([',', '}']).unwrap() + start;
    claims[start..end].to_owned()
}

/// `sign_raw` over raw bytes (for payloads that are not UTF-8).
fn sign_raw_bytes(env: &Env, header: &[u8], claims: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let signature = env.idp.key("rs256-1").unwrap().sign(input.as_bytes());
    format!("{input}.{}", b64(signature))
}

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
