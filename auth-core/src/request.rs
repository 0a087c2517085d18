//! What an adapter tells the core about a request. Adapters fill it in and never
//! interpret it; every decision about its contents is made in the core.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::certificate::{self, ClientCertificate, TrustedProxies};
use crate::warn_budget::WarnBudget;

/// Header lookup by name.
///
/// Implemented here for [`http::HeaderMap`] (tower, hyper, axum, tonic); `auth-actix`
/// implements it for actix-web's header map. Names are ASCII lower-case.
pub trait Headers {
    /// Every value of the header `name`, in the order received.
    fn values<'h>(&'h self, name: &'static str) -> impl Iterator<Item = &'h [u8]> + 'h;
}

impl Headers for http::HeaderMap {
    fn values<'h>(&'h self, name: &'static str) -> impl Iterator<Item = &'h [u8]> + 'h {
        // The constant skips parsing the name (about 240 instructions) on every request.
        let values = match name {
            "authorization" => self.get_all(http::header::AUTHORIZATION),
            other => self.get_all(other),
        };
        values.iter().map(http::HeaderValue::as_bytes)
    }
}

/// One request, as the core sees it: method, target, headers, and what the connection
/// knows (the peer's address; the client certificate's thumbprint, computed once per
/// connection). Built by the adapters; fields are added without breaking anyone.
///
/// ```
/// use auth_core::RequestContext;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("authorization", "Bearer abc.def.ghi".parse().unwrap());
/// let request = RequestContext::new("GET", "/orders?page=2", &headers)
///     .peer_addr("127.0.0.1:50000".parse().unwrap());
/// assert_eq!(request.query(), Some("page=2"));
/// ```
#[non_exhaustive]
pub struct RequestContext<'a, H: ?Sized> {
    method: &'a str,
    target: &'a str,
    original_target: Option<&'a str>,
    headers: &'a H,
    peer_addr: Option<SocketAddr>,
    client_certificate: Option<&'a Arc<ClientCertificate>>,
}

impl<'a, H: Headers + ?Sized> RequestContext<'a, H> {
    /// A request with its method, its target as received (path and query), and headers.
    pub fn new(method: &'a str, target: &'a str, headers: &'a H) -> Self {
        RequestContext { method, target, original_target: None, headers, peer_addr: None, client_certificate: None }
    }

    /// The target before a router rewrote it (axum's `OriginalUri` under `Router::nest`).
    pub fn original_target(mut self, target: &'a str) -> Self {
        self.original_target = Some(target);
        self
    }

    /// The socket peer. Unknown means untrusted (no forwarded header is believed).
    pub fn peer_addr(mut self, addr: SocketAddr) -> Self {
        self.peer_addr = Some(addr);
        self
    }

    /// The connection's client certificate (read once per connection, see
    /// [`ClientCertificate::from_der`]): it wins over any forwarded-certificate header.
    pub fn client_certificate(mut self, certificate: &'a Arc<ClientCertificate>) -> Self {
        self.client_certificate = Some(certificate);
        self
    }

    /// The method.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The target as the client sent it: the original one when a router rewrote it.
    pub fn target(&self) -> &'a str {
        self.original_target.unwrap_or(self.target)
    }

    /// The query string of the target, if any.
    pub fn query(&self) -> Option<&'a str> {
        self.target.split_once('?').map(|(_, query)| query)
    }

    /// Every value of a header.
    pub fn header_values(&self, name: &'static str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers.values(name)
    }

    /// The socket peer, when known.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer_addr
    }

    /// The connection's client certificate, when there is one.
    pub fn connection_certificate(&self) -> Option<&'a Arc<ClientCertificate>> {
        self.client_certificate
    }
}

impl<H: ?Sized> fmt::Debug for RequestContext<'_, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Headers may carry credentials: only the request line and the connection facts.
        f.debug_struct("RequestContext")
            .field("method", &self.method)
            .field("path", &self.target.split_once('?').map_or(self.target, |(path, _)| path))
            .field("peer_addr", &self.peer_addr)
            .field("client_certificate", &self.client_certificate.is_some())
            .finish_non_exhaustive()
    }
}

/// The request's certificate: the connection's own wins over any header; a forwarded
/// one is believed only from a trusted proxy (from anyone else it is ignored and logged
/// at `warn`, at a bounded rate). With no trusted proxy configured, the headers are not
/// read.
pub(crate) fn presented_certificate<H: Headers + ?Sized>(
    request: &RequestContext<'_, H>,
    trusted: &TrustedProxies,
    budget: &WarnBudget,
) -> Option<Arc<ClientCertificate>> {
    if let Some(certificate) = request.connection_certificate() {
        return Some(certificate.clone());
    }
    // No proxy is trusted: forwarded headers are not read at all (a request without a
    // certificate pays nothing for the feature).
    if trusted.is_empty() {
        return None;
    }
    let client_cert = request.header_values("client-cert").next();
    let xfcc = request.header_values("x-forwarded-client-cert").next();
    if client_cert.is_none() && xfcc.is_none() {
        return None;
    }
    let peer = request.peer();
    if !peer.is_some_and(|p| trusted.contains(p.ip())) {
        if budget.allow() {
            tracing::warn!(
                target: crate::LOG_TARGET,
                peer = ?peer,
                "a forwarded client certificate header from an address that is not a trusted proxy: ignored"
            );
        }
        return None;
    }
    let parsed = match (client_cert, xfcc) {
        (Some(value), _) => certificate::from_client_cert_header(value),
        (None, Some(value)) => certificate::from_xfcc_header(value),
        (None, None) => return None,
    };
    match parsed {
        Ok(certificate) => Some(Arc::new(certificate)),
        Err(err) => {
            if budget.allow() {
                tracing::warn!(target: crate::LOG_TARGET, peer = ?peer, error = %err, "forwarded client certificate ignored");
            }
            None
        }
    }
}
