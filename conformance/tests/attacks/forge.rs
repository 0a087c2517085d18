//! Forging helpers: DER and PEM by hand (for keys and signatures an attacker builds),
//! HMAC tokens, signature surgery, scalar arithmetic for malleated signatures, casings.

use super::*;

// Helpers: encodings an attacker would try.

pub(crate) fn der_len(len: usize) -> Vec<u8> {
    if len < 128 {
        return vec![len as u8];
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    let mut out = vec![0x80 | (bytes.len() - skip) as u8];
    out.extend_from_slice(&bytes[skip..]);
    out
}

pub(crate) fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    [vec![tag], der_len(content.len()), content.to_vec()].concat()
}

/// A DER INTEGER from unsigned big-endian bytes.
pub(crate) fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let skip = bytes.iter().take_while(|&&b| b == 0).count().min(bytes.len() - 1);
    let mut v = bytes[skip..].to_vec();
    if v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    der(0x02, &v)
}

/// `SubjectPublicKeyInfo` around a PKCS#1 `RSAPublicKey`.
pub(crate) fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    let rsa_encryption = der(0x06, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]);
    let algorithm = der(0x30, &[rsa_encryption, vec![0x05, 0x00]].concat());
    let bits = der(0x03, &[&[0u8][..], pkcs1].concat());
    der(0x30, &[algorithm, bits].concat())
}

pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// A fixed-size ECDSA signature `r || s` as the ASN.1 DER `ECDSA-Sig-Value` (X9.62).
pub(crate) fn ecdsa_der(fixed: &[u8]) -> Vec<u8> {
    let (r, s) = fixed.split_at(fixed.len() / 2);
    der(0x30, &[der_uint(r), der_uint(s)].concat())
}

/// `a + b` over little-endian 32-byte integers (no overflow for the values used).
pub(crate) fn add_le(a: &[u8], b: &[u8]) -> Vec<u8> {
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
pub(crate) fn sub_be(a: &[u8], b: &[u8]) -> Vec<u8> {
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
pub(crate) const ED25519_L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// The order n of P-256, big-endian.
pub(crate) const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa,
    0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

pub(crate) fn hmac_token(alg: &str, kid: Option<&str>, secret: &[u8], claims: &str) -> String {
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
pub(crate) fn parts(token: &str) -> (&str, &str, &str) {
    let mut it = token.split('.');
    (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
}

/// Replaces the signature of `token` with `signature` (raw bytes).
pub(crate) fn with_signature(token: &str, signature: &[u8]) -> String {
    let (h, p, _) = parts(token);
    format!("{h}.{p}.{}", b64(signature))
}

pub(crate) fn signature_of(token: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts(token).2).unwrap()
}

/// Every upper/lower-case spelling of `word`.
pub(crate) fn casings(word: &str) -> Vec<String> {
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

pub(crate) fn exp_member_of(claims: &str) -> String {
    let start = claims.find("\"exp\":").unwrap();
    let end = claims[start..].find([',', '}']).unwrap() + start;
    claims[start..end].to_owned()
}

pub(crate) fn iat_member_of(claims: &str) -> String {
    let start = claims.find("\"iat\":").unwrap();
    let end = claims[start..].find([',', '}']).unwrap() + start;
    claims[start..end].to_owned()
}

/// `sign_raw` over raw bytes (for payloads that are not UTF-8).
pub(crate) fn sign_raw_bytes(env: &Env, header: &[u8], claims: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let signature = env.idp.key("rs256-1").unwrap().sign(input.as_bytes());
    format!("{input}.{}", b64(signature))
}
