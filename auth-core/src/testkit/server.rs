//! The issuer's HTTP server (hyper, HTTP/1.1) and its misbehaviours.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::{IssuedCertificate, Outage, Shared, TestCa};

type Body = BoxBody<Bytes, Infallible>;

pub(crate) struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tls: Option<Arc<rustls::ServerConfig>>,
    tasks: Mutex<Option<JoinSet<()>>>,
}

/// The leaf certificate a client presented on its connection, if any (DER).
pub(crate) type PeerCertificate = Option<Arc<Vec<u8>>>;

/// The https issuer's TLS: its certificate, and client certificates from `ca` requested
/// but not required.
pub(crate) fn tls_config(ca: &TestCa, server: &IssuedCertificate) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let ca_der = CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).map_err(|e| e.to_string())?;
    roots.add(ca_der).map_err(|e| e.to_string())?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).map_err(|e| e.to_string())?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![CertificateDer::from(server.der.clone())], key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}

impl std::error::Error for Refused {}

impl Server {
    pub(crate) fn start(listener: TcpListener, shared: Arc<Shared>, tls: Option<Arc<rustls::ServerConfig>>) -> Server {
        let addr = listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let server = Server { addr, shared, tls, tasks: Mutex::new(None) };
        server.run(listener);
        server
    }

    fn run(&self, listener: TcpListener) {
        let mut tasks = JoinSet::new();
        let shared = self.shared.clone();
        let tls = self.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                let tls = tls.clone();
                connections.spawn(async move {
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let service = hyper::service::service_fn(move |req| handle(shared.clone(), req, None));
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                        Some(acceptor) => {
                            // A failed handshake (a certificate from another CA) ends the connection.
                            let Ok(stream) = acceptor.accept(stream).await else { return };
                            let peer: PeerCertificate = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|chain| chain.first())
                                .map(|leaf| Arc::new(leaf.to_vec()));
                            let service =
                                hyper::service::service_fn(move |req| handle(shared.clone(), req, peer.clone()));
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
                while connections.try_join_next().is_some() {}
            }
        });
        *self.tasks.lock().unwrap_or_else(|p| p.into_inner()) = Some(tasks);
    }

    /// Closes the listener and every open connection.
    pub(crate) fn stop(&self) -> std::io::Result<()> {
        // Dropping the JoinSet aborts the accept loop, which owns the listener and the
        // connection tasks.
        drop(self.tasks.lock().unwrap_or_else(|p| p.into_inner()).take());
        Ok(())
    }

    /// Listens again on the same address, if stopped.
    pub(crate) async fn resume(&self) -> std::io::Result<()> {
        if self.tasks.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.addr).await?;
        self.run(listener);
        Ok(())
    }
}

/// The answer an outage makes instead of the real one (`None`: answer normally, after
/// the delay of a slow outage).
async fn misbehave(outage: Option<Outage>) -> Option<Result<Response<Body>, Refused>> {
    match outage? {
        Outage::Refuse => Some(Err(Refused)),
        Outage::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            Some(Ok(full(status, "application/json", "{}")))
        }
        Outage::Garbage => Some(Ok(full(StatusCode::OK, "application/json", "<html>not json"))),
        Outage::Slow(delay) => {
            tokio::time::sleep(delay).await;
            None
        }
        Outage::Stall => {
            let first =
                futures_util::stream::iter([Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"{\"keys\":[")))]);
            let never = futures_util::stream::pending();
            let mut response =
                Response::new(BodyExt::boxed(StreamBody::new(futures_util::StreamExt::chain(first, never))));
            response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
            Some(Ok(response))
        }
    }
}

/// The largest token request body read.
const MAX_TOKEN_REQUEST: usize = 64 * 1024;

async fn token(shared: Arc<Shared>, req: Request<Incoming>, peer: PeerCertificate) -> Result<Response<Body>, Refused> {
    shared.token_hits.fetch_add(1, Ordering::SeqCst);
    if req.method() != http::Method::POST {
        return Ok(full(StatusCode::METHOD_NOT_ALLOWED, "application/json", "{}"));
    }
    let outage = {
        let state = shared.state();
        state.token_outage.clone().or_else(|| state.outage.clone())
    };
    if let Some(answer) = misbehave(outage).await {
        return answer;
    }
    let authorization = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let path = req.uri().path().to_owned();
    let limited = http_body_util::Limited::new(req.into_body(), MAX_TOKEN_REQUEST);
    let Ok(body) = limited.collect().await.map(|b| b.to_bytes()) else {
        return Ok(full(StatusCode::PAYLOAD_TOO_LARGE, "application/json", "{}"));
    };
    let (status, json) = super::token_endpoint::answer(&shared, &path, authorization.as_deref(), &body, peer);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = full(status, "application/json", json.to_string());
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok(response)
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>, peer: PeerCertificate) -> Result<Response<Body>, Refused> {
    let path = req.uri().path().to_owned();
    // `/jwks-moved` serves the same keys, as a same-origin redirect target.
    let moved = path == "/jwks-moved";
    let is_jwks = path == "/jwks" || moved;
    let is_discovery = path == "/.well-known/openid-configuration" || path == "/.well-known/oauth-authorization-server";
    if path == "/token" || (shared.tls && path == "/mtls/token") {
        return token(shared, req, peer).await;
    }
    if is_jwks {
        shared.jwks_hits.fetch_add(1, Ordering::SeqCst);
    } else if is_discovery {
        shared.discovery_hits.fetch_add(1, Ordering::SeqCst);
    }
    let outage = shared.state().outage.clone();
    if let Some(answer) = misbehave(outage).await {
        return answer;
    }
    if is_discovery {
        let state = shared.state();
        let issuer = state.discovery_issuer.clone().unwrap_or_else(|| shared.issuer.clone());
        let mut doc = json!({
            "issuer": issuer,
            "jwks_uri": format!("{}/jwks", shared.issuer),
            "token_endpoint": format!("{}/token", shared.issuer),
            "id_token_signing_alg_values_supported": ["RS256", "PS256", "ES256", "ES384", "EdDSA"],
        });
        if shared.tls {
            doc["mtls_endpoint_aliases"] = json!({ "token_endpoint": format!("{}/mtls/token", shared.issuer) });
            doc["tls_client_certificate_bound_access_tokens"] = true.into();
        }
        if let (Some(document), Some(members)) = (doc.as_object_mut(), state.discovery_members.as_ref()) {
            for (name, value) in members.as_object().into_iter().flatten() {
                match value {
                    Value::Null => drop(document.remove(name)),
                    value => drop(document.insert(name.clone(), value.clone())),
                }
            }
        }
        return Ok(full(StatusCode::OK, "application/json", doc.to_string()));
    }
    if !is_jwks {
        return Ok(full(StatusCode::NOT_FOUND, "application/json", "{}"));
    }
    let state = shared.state();
    if let Some(location) =
        state.jwks_redirect.as_ref().filter(|_| !moved).and_then(|l| header::HeaderValue::from_str(l).ok())
    {
        let mut response = full(StatusCode::FOUND, "text/plain", Bytes::new());
        response.headers_mut().insert(header::LOCATION, location);
        return Ok(response);
    }
    if let Some((content_type, body)) = &state.jwks_override {
        return Ok(full(StatusCode::OK, content_type, body.clone()));
    }
    let body = state.jwks().to_string();
    let etag = state.etag.then(|| {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        body.hash(&mut hasher);
        format!("\"{:016x}\"", hasher.finish())
    });
    let matches = etag.as_ref().is_some_and(|etag| {
        req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str())
    });
    let mut response = if matches {
        full(StatusCode::NOT_MODIFIED, "application/json", Bytes::new())
    } else {
        full(StatusCode::OK, "application/json", body)
    };
    if let Some(etag) = etag.and_then(|e| e.parse().ok()) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    if let Some(cc) = state.cache_control.as_ref().and_then(|cc| cc.parse().ok()) {
        response.headers_mut().insert(header::CACHE_CONTROL, cc);
    }
    Ok(response)
}
