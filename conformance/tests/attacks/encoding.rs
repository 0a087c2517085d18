//! Encoding faults: base64url padding and alphabet, segment counts, JSON shape,
//! duplicate members, nesting, escapes, out-of-range numbers.

use super::*;

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
