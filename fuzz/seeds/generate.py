#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/seeds/<target>/ (deterministic; re-run after
changing it). Signatures here are random bytes: the fuzz targets generate their keys
per process, and `signed_token` signs inside the target."""
import base64
import json
import os
import random
import shutil

random.seed(20260601)
HERE = os.path.dirname(os.path.abspath(__file__))
ISS = "https://issuer.example"
FAR = 4102444800  # 2100-01-01


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rand(n):
    return bytes(random.getrandbits(8) for _ in range(n))


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def claims(**extra):
    c = {"iss": ISS, "sub": "svc", "client_id": "svc", "aud": "api", "iat": 1700000000, "exp": FAR,
         "jti": "0123456789abcdef", "scope": "orders:read orders:write"}
    c.update(extra)
    return json.dumps({k: v for k, v in c.items() if v is not None}, separators=(",", ":"))


HEADERS = {
    "rs": '{"alg":"RS256","typ":"at+jwt","kid":"rs"}',
    "ps": '{"alg":"PS256","typ":"at+jwt","kid":"ps"}',
    "es": '{"alg":"ES256","typ":"at+jwt","kid":"es"}',
    "ed": '{"alg":"EdDSA","typ":"at+jwt","kid":"ed"}',
}
SIG_LEN = {"rs": 256, "ps": 256, "es": 64, "ed": 64}

CLAIM_VARIANTS = {
    "plain": claims(),
    "aud_list": claims(aud=["other", "api"]),
    "scp": claims(scope=None, scp=["orders:read", "orders:write"]),
    "scp_str": claims(scope=None, scp="a b"),
    "nbf": claims(nbf=1700000000),
    "nbf_null": claims(nbf=None) [:-1] + ',"nbf":null}',
    "exp_str": claims(exp=str(FAR)),
    "exp_float": claims(exp=4102444800.5),
    "exp_past": claims(exp=1000),
    "iat_future": claims(iat=FAR),
    "no_exp": claims(exp=None),
    "dup_iss": '{"iss":"%s","iss":"https://evil.example","aud":"api","exp":%d}' % (ISS, FAR),
    "nested": '{"iss":"%s","aud":"api","exp":%d,"x":%s%s}' % (ISS, FAR, "[" * 64, "]" * 64),
    "array": '["%s"]' % ISS,
    "unicode": claims(sub="\u00e9\u2603", iss="https://issuer.exampl\u0065"),
}

# --- validate_token: whole tokens (random signatures)
for kid, header in HEADERS.items():
    for name, c in CLAIM_VARIANTS.items():
        if name in ("plain", "aud_list", "scp", "nested", "exp_str") or kid == "rs":
            write("validate_token", f"{kid}_{name}", f"{b64(header)}.{b64(c)}.{b64(rand(SIG_LEN[kid]))}")
odd_headers = {
    "none": '{"alg":"none"}',
    "hs256": '{"alg":"HS256","kid":"rs"}',
    "crit": '{"alg":"RS256","kid":"rs","crit":["exp"],"exp":1}',
    "b64": '{"alg":"RS256","kid":"rs","b64":false}',
    "nokid": '{"alg":"ES256"}',
    "jwk": '{"alg":"RS256","jwk":{"kty":"RSA","n":"AQAB","e":"AQAB"}}',
    "typ_jwt": '{"alg":"RS256","kid":"rs","typ":"JWT"}',
    "kid_num": '{"alg":"RS256","kid":7}',
    "escaped_alg": '{"alg":"\\u0052S256","kid":"rs"}',
    "dup_alg": '{"alg":"RS256","alg":"none"}',
}
for name, header in odd_headers.items():
    write("validate_token", f"hdr_{name}", f"{b64(header)}.{b64(claims())}.{b64(rand(256))}")
for name, tok in {
    "dots": "...", "two": "a.b", "four": "a.b.c.d", "padded": "YQ==.YQ==.YQ==", "std_alphabet": "a+/b.c.d",
    "empty_seg": "a..c", "space": "a .b.c", "trailing_bits": "YR.YR.YR",
}.items():
    write("validate_token", f"shape_{name}", tok)

# --- signed_token: selector, header 0xFF claims [0xFF ops]
for i, (kid, header) in enumerate(HEADERS.items()):
    for name, c in CLAIM_VARIANTS.items():
        if name in ("plain", "aud_list", "scp", "nbf") or kid == "es":
            write("signed_token", f"{kid}_{name}", bytes([i]) + header.encode() + b"\xff" + c.encode())
    # the same, plus mutations: flip in the header, payload, signature; insert; delete
    ops = bytes([0x00, 3, ord("B"), 0x00, 90, ord("x"), 0x3f, 0xff, ord("A"), 0x80, 10, ord("."), 0xc0, 40, 0])
    write("signed_token", f"{kid}_mutated", bytes([i]) + header.encode() + b"\xff" + claims().encode() + b"\xff" + ops)
write("signed_token", "nokid", bytes([3]) + b'{"alg":"EdDSA"}' + b"\xff" + claims().encode())
write("signed_token", "wrong_key", bytes([2]) + HEADERS["rs"].encode() + b"\xff" + claims().encode())

# --- parse_jwks
def rsa_n(bits):
    n = bytearray(rand(bits // 8))
    n[0] |= 0x80
    return b64(bytes(n))


keys = {
    "rsa": {"kty": "RSA", "kid": "r", "use": "sig", "alg": "RS256", "n": rsa_n(2048), "e": "AQAB"},
    "rsa_noalg": {"kty": "RSA", "kid": "r2", "n": rsa_n(3072), "e": "AQAB"},
    "rsa_small": {"kty": "RSA", "kid": "r3", "n": rsa_n(1024), "e": "AQAB"},
    "rsa_oaep": {"kty": "RSA", "kid": "r4", "use": "enc", "alg": "RSA-OAEP", "n": rsa_n(2048), "e": "AQAB"},
    "rsa_priv": {"kty": "RSA", "kid": "r5", "n": rsa_n(2048), "e": "AQAB", "d": "AQAB"},
    "p256": {"kty": "EC", "kid": "e", "crv": "P-256", "x": b64(rand(32)), "y": b64(rand(32)), "alg": "ES256"},
    "p384": {"kty": "EC", "kid": "e3", "crv": "P-384", "x": b64(rand(48)), "y": b64(rand(48))},
    "p521": {"kty": "EC", "kid": "e5", "crv": "P-521", "x": b64(rand(66)), "y": b64(rand(66))},
    "ed": {"kty": "OKP", "kid": "o", "crv": "Ed25519", "x": b64(rand(32)), "key_ops": ["verify"]},
    "oct": {"kty": "oct", "kid": "h", "k": b64(rand(32))},
}
for name, key in keys.items():
    write("parse_jwks", f"one_{name}", json.dumps({"keys": [key]}))
write("parse_jwks", "all", json.dumps({"keys": list(keys.values())}, indent=1))
write("parse_jwks", "junk_entries", '{"keys":["junk",1,null,{},[],{"kty":5},%s]}' % json.dumps(keys["p256"]))
write("parse_jwks", "padded_b64", json.dumps({"keys": [dict(keys["ed"], x=b64(rand(32)) + "=")]}))
write("parse_jwks", "not_object", '[{"keys":[]}]')
write("parse_jwks", "keys_object", '{"keys":{}}')
write("parse_jwks", "dup_kid", json.dumps({"keys": [keys["p256"], dict(keys["p256"], x=b64(rand(32)))]}))

# --- bearer_header: flags, then headers and query split at \n
def bearer(name, flags, *parts):
    write("bearer_header", name, bytes([flags]) + b"\n".join(p if isinstance(p, bytes) else p.encode() for p in parts))


tok = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln"
bearer("one", 0b0100, f"Bearer {tok}")
bearer("lower_spaces", 0b0100, f"bearer   {tok}  ")
bearer("padded", 0b0100, "Bearer abc==")
bearer("basic", 0b0100, "Basic dXNlcjpwYXNz")
bearer("two", 0b1000, f"Bearer {tok}", f"Bearer {tok}")
bearer("comma", 0b0100, f"Bearer {tok}, Bearer {tok}")
bearer("non_utf8", 0b0100, b"Bearer \xff\xfe")
bearer("query_on", 0b0011, f"x=1&access_token={tok}")
bearer("query_off", 0b0010, f"access_token={tok}")
bearer("query_dup", 0b0011, "access_token=a&access_token=b")
bearer("query_and_header", 0b0111, f"Bearer {tok}", f"access_token={tok}")
bearer("query_pct", 0b0011, "access_token=a%20b")
bearer("none", 0b0000)
