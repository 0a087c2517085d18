//! Test signing keys, generated with aws-lc-rs.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::algorithm::Algorithm;

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private key with its `kid` and algorithm; publishes its public JWK.
pub struct TestKey {
    kid: String,
    alg: Algorithm,
    pair: Pair,
    publish_alg: bool,
}

impl TestKey {
    /// Generates a key for `alg` (RSA keys are 2048 bits).
    ///
    /// # Panics
    /// If the system random generator fails (test code only).
    pub fn generate(alg: Algorithm, kid: &str) -> TestKey {
        Self::try_generate(alg, kid, KeySize::Rsa2048).expect("key generation")
    }

    /// Generates an RSA key of `bits` (2048, 3072, 4096 or 8192).
    ///
    /// # Panics
    /// If `bits` is not one of those, or if generation fails.
    pub fn generate_rsa(alg: Algorithm, kid: &str, bits: usize) -> TestKey {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            8192 => KeySize::Rsa8192,
            _ => panic!("unsupported RSA size {bits}"),
        };
        Self::try_generate(alg, kid, size).expect("key generation")
    }

    fn try_generate(alg: Algorithm, kid: &str, size: KeySize) -> Result<TestKey, aws_lc_rs::error::Unspecified> {
        let pair = match alg {
            Algorithm::ES256 => Pair::Ec(EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)?),
            Algorithm::ES384 => Pair::Ec(EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING)?),
            Algorithm::EdDSA => Pair::Ed(Ed25519KeyPair::generate()?),
            _ => Pair::Rsa(RsaKeyPair::generate(size)?),
        };
        Ok(TestKey { kid: kid.to_owned(), alg, pair, publish_alg: true })
    }

    /// Leave `alg` out of the published JWK (the key then fits every algorithm of its type).
    pub fn without_jwk_alg(mut self) -> TestKey {
        self.publish_alg = false;
        self
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The public JWK: `kty`, `kid`, `use: sig`, `alg` and the key parameters.
    pub fn public_jwk(&self) -> Value {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let mut jwk = match &self.pair {
            Pair::Rsa(pair) => {
                let c = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                json!({ "kty": "RSA", "n": b64(&c.n), "e": b64(&c.e) })
            }
            Pair::Ec(pair) => {
                let point = pair.public_key().as_ref();
                let half = (point.len() - 1) / 2;
                let crv = if half == 32 { "P-256" } else { "P-384" };
                json!({ "kty": "EC", "crv": crv, "x": b64(&point[1..=half]), "y": b64(&point[half + 1..]) })
            }
            Pair::Ed(pair) => json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref()) }),
        };
        jwk["kid"] = self.kid.clone().into();
        jwk["use"] = "sig".into();
        if self.publish_alg {
            jwk["alg"] = self.alg.as_str().into();
        }
        jwk
    }

    /// The public key as a DER `SubjectPublicKeyInfo`/raw bytes, for attack tests
    /// (e.g. an HMAC "signed" with the public key).
    pub fn public_key_bytes(&self) -> Vec<u8> {
        match &self.pair {
            Pair::Rsa(pair) => pair.public_key().as_ref().to_vec(),
            Pair::Ec(pair) => pair.public_key().as_ref().to_vec(),
            Pair::Ed(pair) => pair.public_key().as_ref().to_vec(),
        }
    }

    /// The private key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), for a client that
    /// signs with it (`private_key_jwt`).
    ///
    /// # Panics
    /// If the key cannot be serialized (test code only).
    pub fn private_key_pem(&self) -> String {
        use aws_lc_rs::encoding::AsDer as _;
        let der: Vec<u8> = match &self.pair {
            Pair::Rsa(pair) => pair.as_der().expect("PKCS#8").as_ref().to_vec(),
            Pair::Ec(pair) => pair.to_pkcs8v1().expect("PKCS#8").as_ref().to_vec(),
            Pair::Ed(pair) => pair.to_pkcs8v1().expect("PKCS#8").as_ref().to_vec(),
        };
        pem::encode(&pem::Pem::new("PRIVATE KEY", der))
    }

    /// Signs `message` the JWS way for this key's algorithm.
    ///
    /// # Panics
    /// If signing fails (test code only).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Rsa(pair) => {
                let padding: &'static dyn signature::RsaEncoding = match self.alg {
                    Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
                    Algorithm::PS256 => &signature::RSA_PSS_SHA256,
                    Algorithm::PS384 => &signature::RSA_PSS_SHA384,
                    Algorithm::PS512 => &signature::RSA_PSS_SHA512,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut out = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &rng, message, &mut out).expect("RSA signing");
                out
            }
            Pair::Ec(pair) => pair.sign(&rng, message).expect("ECDSA signing").as_ref().to_vec(),
            Pair::Ed(pair) => pair.sign(message).as_ref().to_vec(),
        }
    }
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}
