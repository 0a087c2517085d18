//! An authorization server's metadata document (OpenID Connect Discovery, RFC 8414):
//! fetched when first needed, checked against the configured issuer, kept until a failure
//! says it may be stale, and shared by the issuer's key source (the receiving side) and a
//! token source (the calling side) configured with it.

use std::sync::{Arc, Mutex};

use reqwest::Url;
use serde::Deserialize;

use crate::fetch::{Fetched, Fetcher};

/// One issuer's metadata: where it is, and the document once fetched.
pub(crate) struct IssuerMetadata {
    url: Url,
    /// The configured issuer identifier the document must name.
    issuer: String,
    document: Mutex<Option<Arc<MetadataDocument>>>,
}

/// The members this library reads.
#[derive(Debug, Deserialize)]
pub(crate) struct MetadataDocument {
    /// The document's exact `issuer` (tokens must carry it).
    pub(crate) issuer: String,
    pub(crate) jwks_uri: Option<String>,
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    pub(crate) token_endpoint: Option<String>,
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    pub(crate) mtls_endpoint_aliases: Option<MtlsAliases>,
}

/// RFC 8705 §5.
#[derive(Debug, Deserialize)]
pub(crate) struct MtlsAliases {
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    pub(crate) token_endpoint: Option<String>,
}

impl IssuerMetadata {
    pub(crate) fn new(url: Url, issuer: impl Into<String>) -> Arc<Self> {
        Arc::new(IssuerMetadata { url, issuer: issuer.into(), document: Mutex::new(None) })
    }

    /// Where the document is.
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    pub(crate) fn url(&self) -> &Url {
        &self.url
    }

    /// The configured issuer identifier.
    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The document, fetched if none is kept; `true` with it when this call fetched it.
    pub(crate) async fn document(&self, fetcher: &Fetcher) -> Result<(Arc<MetadataDocument>, bool), String> {
        if let Some(document) = self.slot().clone() {
            return Ok((document, false));
        }
        let body = match fetcher.get(&self.url, None).await.map_err(|e| e.to_string())? {
            Fetched::Document { body, .. } => body,
            Fetched::NotModified { .. } => return Err("unexpected 304".into()),
        };
        let document: MetadataDocument =
            serde_json::from_slice(&body).map_err(|_| "not an OpenID configuration".to_string())?;
        // RFC 8414 §3.3 / OIDC Discovery §4.3: prevents one issuer impersonating another.
        // One trailing slash of difference is tolerated (operators and providers spell the
        // URL differently); tokens are then pinned to the document's exact value.
        let bare = |s: &str| s.strip_suffix('/').unwrap_or(s).to_owned();
        if document.issuer != self.issuer {
            if bare(&document.issuer) != bare(&self.issuer) {
                return Err("the document's issuer differs from the configured issuer".into());
            }
            tracing::info!(
                issuer = %self.issuer,
                document_issuer = %document.issuer,
                "the discovery document spells the issuer with a different trailing slash; tokens must carry the document's"
            );
        }
        let document = Arc::new(document);
        *self.slot() = Some(document.clone());
        Ok((document, true))
    }

    /// The key set's URL the document names (`jwks_uri`, https unless `allow_http` or
    /// loopback), and the document's exact issuer, which tokens must carry.
    pub(crate) async fn jwks_uri(&self, fetcher: &Fetcher, allow_http: bool) -> Result<(Url, String), String> {
        let (document, _) = self.document(fetcher).await?;
        let jwks_uri = document.jwks_uri.as_deref().ok_or("the document has no jwks_uri")?;
        let url = Url::parse(jwks_uri).map_err(|_| "jwks_uri is not a URL".to_string())?;
        crate::fetch::require_https(&url, allow_http)?;
        Ok((url, document.issuer.clone()))
    }

    /// Whether a document is kept (the next [`document`](Self::document) fetches nothing).
    pub(crate) fn is_cached(&self) -> bool {
        self.slot().is_some()
    }

    /// Read the document again next time (an endpoint it named failed or moved).
    pub(crate) fn forget(&self) {
        *self.slot() = None;
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<MetadataDocument>>> {
        self.document.lock().unwrap_or_else(|p| p.into_inner())
    }
}
