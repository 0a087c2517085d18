//! Load-bench peer: `GET /` behind jwt-authorizer 0.15 on axum 0.7, configured like the
//! workspace's `load_server` (same JWKS file, issuer, audience, scope `bench`, worker
//! count), plus an open `GET /rss`.
//!
//! ```sh
//! cargo build --release --manifest-path benches/peer-jwt-authorizer/Cargo.toml
//! peer-jwt-authorizer --bind 127.0.0.1:8090 --jwks jwks.json --issuer https://issuer.example \
//!     --audience bench-api --workers 1
//! ```
//!
//! Not a member of the workspace (its own `[workspace]` table, and in the root's
//! `exclude`): the workspace build and CI never compile it.

use std::net::SocketAddr;

use axum::routing::get;
use axum::Router;
use jwt_authorizer::{IntoLayer, JwtAuthorizer, Validation};
use serde::Deserialize;

/// The claims the route needs: the scope, as our layer and the jsonwebtoken layer check it.
#[derive(Debug, Clone, Deserialize)]
struct Claims {
    #[serde(default)]
    scope: String,
}

struct Args {
    bind: SocketAddr,
    jwks: String,
    issuer: String,
    audience: String,
    workers: usize,
}

fn args() -> Result<Args, String> {
    let mut bind = SocketAddr::from(([127, 0, 0, 1], 8090));
    let (mut jwks, mut issuer, mut audience, mut workers) = (None, None, None, 1);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--bind" => bind = value()?.parse().map_err(|e| format!("--bind: {e}"))?,
            "--jwks" => jwks = Some(value()?),
            "--issuer" => issuer = Some(value()?),
            "--audience" => audience = Some(value()?),
            "--workers" => workers = value()?.parse().map_err(|e| format!("--workers: {e}"))?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if !bind.ip().is_loopback() {
        return Err("--bind must be a loopback address".into());
    }
    Ok(Args {
        bind,
        jwks: jwks.ok_or("--jwks FILE is required")?,
        issuer: issuer.ok_or("--issuer is required")?,
        audience: audience.ok_or("--audience is required")?,
        workers,
    })
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args = match args() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("peer-jwt-authorizer: {err}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(args.workers).enable_all().build();
    let result = match runtime {
        Ok(rt) => rt.block_on(serve(args)),
        Err(e) => Err(e.to_string()),
    };
    if let Err(err) = result {
        eprintln!("peer-jwt-authorizer: {err}");
        std::process::exit(1);
    }
}

async fn serve(args: Args) -> Result<(), String> {
    let jwks = std::fs::read_to_string(&args.jwks).map_err(|e| format!("{}: {e}", args.jwks))?;
    // Static key set, no refresh, no network: iss, aud, exp (default) validated.
    let authorizer = JwtAuthorizer::<Claims>::from_jwks_text(&jwks)
        .validation(Validation::new().iss(&[&args.issuer]).aud(&[&args.audience]))
        .check(|claims: &Claims| claims.scope.split(' ').any(|s| s == "bench"))
        .build()
        .await
        .map_err(|e| format!("jwt-authorizer: {e}"))?;
    let app = Router::new()
        .route("/", get(|| async { "hello" }))
        .layer(authorizer.into_layer())
        .route("/rss", get(|| async { format!("{}\n", rss_kib()) }));
    let listener = tokio::net::TcpListener::bind(args.bind).await.map_err(|e| format!("{}: {e}", args.bind))?;
    println!("peer-jwt-authorizer listening on http://{} (workers {})", args.bind, args.workers);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}
