//! Signature faults: empty, truncated, zero (CVE-2022-21449), DER-encoded, malleated
//! and tampered signatures.

use super::*;

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
