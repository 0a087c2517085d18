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
//! Run `cargo test -p conformance --test attacks -- --nocapture` to see the case tables.
//!
//! One module per family: `algorithms`, `signatures`, `encoding`, `claims`, `transport`;
//! the forging helpers are in `forge`, the harness (services, expectations) in `common`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
mod forge;

mod algorithms;
mod claims;
mod encoding;
mod signatures;
mod transport;

use std::sync::Arc;

use auth_core::testkit::{TestIssuer, TestKey, sign_raw};
use auth_core::{Algorithm, RejectReason as R, TypPolicy};
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{Attack, Env, Raw, b64, bearer, header_for, malformed, no_bearer, now, raw, request, rss_kib, token};
use examples::demo::AUDIENCE;
use serde_json::{Value, json};

use forge::*;
