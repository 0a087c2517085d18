//! Mints the key set and tokens for the HTTP load bench (`benches/load/run.sh`).
//!
//! ```sh
//! load_tokens --out DIR --count 100000 --issuer https://issuer.example --audience bench-api
//! ```
//!
//! Writes `DIR/jwks.json` (one RS256 key, kid `k1`), `DIR/tokens.txt` (`--count` distinct
//! tokens, one a line: iss, aud, sub, client_id, scope `bench orders:read`, iat, exp in
//! 2 h, a unique jti) and `DIR/minted_at` (unix seconds, so the script can reuse a fresh
//! set). RS256 signing is about 1 ms a token, so the work is spread over every core.

// A bench tool: a failure to write a file or sign is reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use auth_core::Algorithm;
use auth_core::testkit::{TestKey, sign_raw};

fn main() {
    let mut out = PathBuf::from("target/load");
    let mut count = 100_000usize;
    let mut issuer = "https://issuer.example".to_owned();
    let mut audience = "bench-api".to_owned();
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => out = value.into(),
            "--count" => count = value.parse().expect("--count"),
            "--issuer" => issuer = value,
            "--audience" => audience = value,
            "--threads" => threads = value.parse().expect("--threads"),
            other => panic!("unknown flag {other} (--out, --count, --issuer, --audience, --threads)"),
        }
    }
    std::fs::create_dir_all(&out).expect("create --out");
    let started = std::time::Instant::now();
    let key = TestKey::generate(Algorithm::RS256, "k1");
    let jwks = serde_json::json!({ "keys": [key.public_jwk()] }).to_string();
    std::fs::write(out.join("jwks.json"), &jwks).expect("write jwks.json");

    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let header = r#"{"alg":"RS256","typ":"at+jwt","kid":"k1"}"#;
    // A per-run prefix keeps jti (and so every token) distinct across runs too.
    let run = now.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let threads = threads.clamp(1, 64);
    let chunk = count.div_ceil(threads);
    let parts: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (key, issuer, audience) = (&key, &issuer, &audience);
                scope.spawn(move || {
                    let range = (t * chunk)..((t + 1) * chunk).min(count);
                    range
                        .map(|i| {
                            let claims = serde_json::json!({
                                "iss": issuer, "aud": audience, "sub": format!("client-{}", i % 1000),
                                "client_id": format!("client-{}", i % 1000), "scope": "bench orders:read",
                                "iat": now, "exp": now + 7200, "jti": format!("{run:016x}-{i:08x}"),
                            });
                            sign_raw(Some(key), header, &claims.to_string())
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("signing thread")).collect()
    });
    let mut file = std::io::BufWriter::new(std::fs::File::create(out.join("tokens.txt")).expect("tokens.txt"));
    for token in parts.iter().flatten() {
        writeln!(file, "{token}").expect("write token");
    }
    file.flush().expect("flush tokens.txt");
    std::fs::write(out.join("minted_at"), format!("{now}\n")).expect("write minted_at");
    let len = parts.iter().flatten().next().map_or(0, String::len);
    println!(
        "load_tokens: {count} tokens ({len} bytes each) and jwks.json in {} ({threads} threads, {:.1} s)",
        out.display(),
        started.elapsed().as_secs_f64()
    );
}
