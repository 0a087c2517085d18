//! The server side of the HTTP load bench (`benches/load/run.sh`): a trivial `GET /`
//! (body `hello`) on axum or actix-web, behind no auth, this library (token cache on or
//! off), or a minimal hand-written `jsonwebtoken::decode` layer; plus open `GET /rss`
//! (VmRSS in KiB) and `GET /stats` (RSS, cached tokens, counters).
//!
//! ```sh
//! load_server --framework axum|actix --auth off|cache|nocache|jsonwebtoken --workers 1 \
//!     --bind 127.0.0.1:8090 --jwks jwks.json --issuer https://issuer.example --audience bench-api \
//!     [--cache-capacity 10000]
//! ```
//!
//! Every auth mode does the same work on top of the signature: iss, aud and exp checked,
//! scope `bench` required, the claims made available to the handler. The key set is static
//! (no network). The handler itself ignores the caller, so the modes differ only in the
//! authentication.

// A bench tool: bad flags or a failed start-up are reported by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use auth_core::{Issuer, Validator};
use futures_util::future::{Either, Ready, ready};
use serde::Deserialize;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Framework {
    Axum,
    Actix,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Auth {
    Off,
    Cache,
    NoCache,
    Jsonwebtoken,
}

struct Args {
    framework: Framework,
    auth: Auth,
    workers: usize,
    bind: SocketAddr,
    jwks: String,
    issuer: String,
    audience: String,
    cache_capacity: u64,
}

fn args() -> Args {
    let mut framework = Framework::Axum;
    let mut auth = Auth::Off;
    let mut workers = 1;
    let mut bind = SocketAddr::from(([127, 0, 0, 1], 8090));
    let (mut jwks, mut issuer, mut audience) = (None, "https://issuer.example".to_owned(), "bench-api".to_owned());
    let mut cache_capacity = 10_000;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--framework" => {
                framework = match value.as_str() {
                    "axum" => Framework::Axum,
                    "actix" => Framework::Actix,
                    _ => panic!("--framework axum|actix"),
                }
            }
            "--auth" => {
                auth = match value.as_str() {
                    "off" => Auth::Off,
                    "cache" => Auth::Cache,
                    "nocache" => Auth::NoCache,
                    "jsonwebtoken" => Auth::Jsonwebtoken,
                    _ => panic!("--auth off|cache|nocache|jsonwebtoken"),
                }
            }
            "--workers" => workers = value.parse().expect("--workers N"),
            "--bind" => bind = value.parse().expect("--bind ADDR:PORT"),
            "--jwks" => jwks = Some(value),
            "--issuer" => issuer = value,
            "--audience" => audience = value,
            "--cache-capacity" => cache_capacity = value.parse().expect("--cache-capacity N"),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(bind.ip().is_loopback(), "--bind must be a loopback address");
    let jwks = jwks.expect("--jwks FILE is required");
    Args { framework, auth, workers: workers.max(1), bind, jwks, issuer, audience, cache_capacity }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn stats(validator: Option<&Validator>) -> String {
    let rss = rss_kib();
    match validator {
        Some(v) => {
            let m = v.metrics();
            format!(
                "rss_kib={rss} cached_tokens={} accepted={} cache_hits={}\n",
                v.cached_tokens(),
                m.accepted,
                m.cache_hits
            )
        }
        None => format!("rss_kib={rss}\n"),
    }
}

/// The claims the handler may read; the same shape for the jsonwebtoken layer and the peer.
#[derive(Debug, Clone, Deserialize)]
struct BenchClaims {
    #[serde(default)]
    scope: String,
    #[allow(dead_code)] // read by nobody, decoded like a real service would
    #[serde(default)]
    sub: Option<String>,
}

/// The hand-written floor: `jsonwebtoken::decode` with one pre-loaded key, iss/aud/exp
/// required and checked, scope `bench`, claims stored for the handler.
struct Jwt {
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
}

impl Jwt {
    fn new(jwks: &str, issuer: &str, audience: &str) -> Jwt {
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(jwks).expect("jwks.json");
        let key = jsonwebtoken::DecodingKey::from_jwk(&set.keys[0]).expect("first JWK");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        Jwt { key, validation }
    }

    fn check(&self, authorization: Option<&[u8]>) -> Option<BenchClaims> {
        let token = authorization?.strip_prefix(b"Bearer ")?;
        let token = std::str::from_utf8(token).ok()?;
        let data = jsonwebtoken::decode::<BenchClaims>(token, &self.key, &self.validation).ok()?;
        data.claims.scope.split(' ').any(|s| s == "bench").then_some(data.claims)
    }
}

// ---- axum ----

#[derive(Clone)]
struct JwtLayer(Arc<Jwt>);

impl<S> tower_layer::Layer<S> for JwtLayer {
    type Service = JwtService<S>;
    fn layer(&self, inner: S) -> JwtService<S> {
        JwtService { jwt: self.0.clone(), inner }
    }
}

#[derive(Clone)]
struct JwtService<S> {
    jwt: Arc<Jwt>,
    inner: S,
}

impl<S> tower_service::Service<axum::extract::Request> for JwtService<S>
where
    S: tower_service::Service<axum::extract::Request, Response = axum::response::Response>,
{
    type Response = axum::response::Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<axum::response::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: axum::extract::Request) -> Self::Future {
        let header = req.headers().get(http::header::AUTHORIZATION).map(http::HeaderValue::as_bytes);
        match self.jwt.check(header) {
            Some(claims) => {
                req.extensions_mut().insert(claims);
                Either::Left(self.inner.call(req))
            }
            None => {
                use axum::response::IntoResponse as _;
                Either::Right(ready(Ok(http::StatusCode::UNAUTHORIZED.into_response())))
            }
        }
    }
}

async fn serve_axum(args: &Args, validator: Option<Validator>) {
    use axum::Router;
    use axum::routing::get;
    let hello = Router::new().route("/", get(|| async { "hello" }));
    let hello = match args.auth {
        Auth::Off => hello,
        Auth::Cache | Auth::NoCache => {
            let v = validator.as_ref().expect("validator");
            hello.route_layer(auth_tower::AuthLayer::require_scopes(v, ["bench"]).expect("layer"))
        }
        Auth::Jsonwebtoken => {
            let jwks = std::fs::read_to_string(&args.jwks).expect("--jwks");
            hello.route_layer(JwtLayer(Arc::new(Jwt::new(&jwks, &args.issuer, &args.audience))))
        }
    };
    let app = hello
        .route("/rss", get(|| async { format!("{}\n", rss_kib()) }))
        .route("/stats", get(move || async move { stats(validator.as_ref()) }));
    let listener = tokio::net::TcpListener::bind(args.bind).await.expect("bind");
    println!("load_server axum auth={:?} workers={} on http://{}", args.auth, args.workers, args.bind);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .expect("serve");
}

// ---- actix-web ----

async fn actix_jwt(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::HttpMessage as _;
    let jwt = req.app_data::<actix_web::web::Data<Jwt>>().expect("Jwt app data").clone();
    let header = req.headers().get(actix_web::http::header::AUTHORIZATION).map(|v| v.as_bytes());
    match jwt.check(header) {
        Some(claims) => {
            req.extensions_mut().insert(claims);
            Ok(next.call(req).await?.map_into_left_body())
        }
        None => Ok(req.into_response(actix_web::HttpResponse::Unauthorized().finish()).map_into_right_body()),
    }
}

fn serve_actix(args: &Args, validator: Option<Validator>) {
    use actix_web::{App, HttpServer, web};
    let auth = args.auth;
    let policy = validator.as_ref().map(|v| {
        auth_actix::AuthMiddleware::new(
            auth_core::AccessPolicy::new(v.clone()).require_scopes(["bench"]).expect("policy"),
        )
    });
    let jwt = (auth == Auth::Jsonwebtoken).then(|| {
        let jwks = std::fs::read_to_string(&args.jwks).expect("--jwks");
        web::Data::new(Jwt::new(&jwks, &args.issuer, &args.audience))
    });
    let server = HttpServer::new(move || {
        let (policy, jwt, validator) = (policy.clone(), jwt.clone(), validator.clone());
        let mut app = App::new()
            .route("/rss", web::get().to(|| async { format!("{}\n", rss_kib()) }))
            .route("/stats", web::get().to(move || std::future::ready(stats(validator.as_ref()))));
        if let Some(jwt) = &jwt {
            app = app.app_data(jwt.clone());
        }
        app.configure(move |cfg| {
            let hello = web::resource("/").route(web::get().to(|| async { "hello" }));
            match (auth, policy, jwt.is_some()) {
                (Auth::Cache | Auth::NoCache, Some(policy), _) => cfg.service(hello.wrap(policy)),
                (Auth::Jsonwebtoken, _, true) => cfg.service(hello.wrap(actix_web::middleware::from_fn(actix_jwt))),
                _ => cfg.service(hello),
            };
        })
    })
    .workers(args.workers)
    .bind(args.bind)
    .expect("bind");
    println!("load_server actix auth={:?} workers={} on http://{}", args.auth, args.workers, args.bind);
    actix_web::rt::System::new().block_on(server.run()).expect("serve");
}

fn main() {
    let args = args();
    // With --all-features jsonwebtoken has both backends; pick aws-lc-rs (the same crypto
    // as auth-core's default) so the floor is measured like-for-like.
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let validator = match args.auth {
        Auth::Cache | Auth::NoCache => {
            let jwks = std::fs::read_to_string(&args.jwks).expect("--jwks");
            let capacity = if args.auth == Auth::Cache { args.cache_capacity } else { 0 };
            Some(
                Validator::builder()
                    .issuer(Issuer::static_jwks(&args.issuer, jwks).audience(&args.audience))
                    .token_cache_capacity(capacity)
                    .build()
                    .expect("validator"),
            )
        }
        Auth::Off | Auth::Jsonwebtoken => None,
    };
    match args.framework {
        Framework::Axum => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(args.workers)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(serve_axum(&args, validator));
        }
        Framework::Actix => serve_actix(&args, validator),
    }
}
