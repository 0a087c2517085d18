//! The end-to-end demo, and the helpers the cross-adapter tests share with it: start
//! the test-kit issuer, the axum and the actix service on loopback, call them, compare.

use std::net::SocketAddr;
use std::sync::Arc;

use auth_core::Validator;
use auth_core::client::{ClientAuth, TokenSource, TokenTarget};
use auth_core::testkit::{TestClient, TestIssuer};

use crate::billing::BillingClient;

/// A running service under test.
#[derive(Debug)]
pub struct RunningService {
    /// `axum` or `actix`.
    pub name: &'static str,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

/// Serves the axum example on a loopback port (on the current tokio runtime).
pub async fn start_axum(validator: &Validator) -> Result<RunningService, String> {
    start_axum_with_billing(validator, None).await
}

/// [`start_axum`] with the invoice route calling the billing service through `billing`.
pub async fn start_axum_with_billing(
    validator: &Validator,
    billing: Option<BillingClient>,
) -> Result<RunningService, String> {
    let app = crate::axum_app::router_with_billing(validator, billing).map_err(|e| e.to_string())?;
    serve_axum(app, None).await
}

/// [`start_axum`] over HTTPS with `tls` (for example with client certificates requested:
/// `auth_core::tls_server_config`); the base is `https://127.0.0.1:PORT`.
pub async fn start_axum_tls(validator: &Validator, tls: Arc<rustls::ServerConfig>) -> Result<RunningService, String> {
    let app = crate::axum_app::router(validator).map_err(|e| e.to_string())?;
    serve_axum(app, Some(tls)).await
}

async fn serve_axum(app: axum::Router, tls: Option<Arc<rustls::ServerConfig>>) -> Result<RunningService, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(err) = crate::axum_app::serve(listener, app, tls).await {
            eprintln!("axum service stopped: {err}");
        }
    });
    Ok(RunningService { name: "axum", base: format!("{scheme}://{addr}") })
}

/// Serves the actix example on a loopback port, on a thread of its own (actix-web runs
/// its own single-threaded runtimes). It lives until the process exits.
pub fn start_actix(validator: &Validator) -> Result<RunningService, String> {
    start_actix_with_billing(validator, None)
}

/// [`start_actix`] with the invoice route calling the billing service through `billing`.
pub fn start_actix_with_billing(
    validator: &Validator,
    billing: Option<BillingClient>,
) -> Result<RunningService, String> {
    let routes = crate::actix_app::routes_with_billing(validator, billing).map_err(|e| e.to_string())?;
    serve_actix(routes, None)
}

/// [`start_actix`] over HTTPS with `tls` (client certificates read by
/// `auth_actix::client_certificate`); the base is `https://127.0.0.1:PORT`.
pub fn start_actix_tls(validator: &Validator, tls: Arc<rustls::ServerConfig>) -> Result<RunningService, String> {
    let routes = crate::actix_app::routes(validator).map_err(|e| e.to_string())?;
    serve_actix(routes, Some(tls))
}

fn serve_actix<R>(routes: R, tls: Option<Arc<rustls::ServerConfig>>) -> Result<RunningService, String>
where
    R: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
{
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (tx, rx) = std::sync::mpsc::channel::<Result<SocketAddr, String>>();
    std::thread::spawn(move || {
        let system = actix_web::rt::System::new();
        system.block_on(async move {
            let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
            let server = match crate::actix_app::server(routes, loopback, tls.as_deref(), Some(1), false) {
                Ok((server, addrs)) => {
                    let _ = tx.send(addrs.first().copied().ok_or_else(|| "no address".to_string()));
                    server
                }
                Err(err) => {
                    let _ = tx.send(Err(err.to_string()));
                    return;
                }
            };
            let _ = server.await;
        });
    });
    let addr = rx.recv().map_err(|e| e.to_string())??;
    Ok(RunningService { name: "actix", base: format!("{scheme}://{addr}") })
}

/// One request of the demo.
#[derive(Debug)]
pub struct Case {
    /// What is being tried.
    pub name: &'static str,
    /// `GET` or `POST`.
    pub method: reqwest::Method,
    /// The path, e.g. `/orders`.
    pub path: &'static str,
    /// Raw `Authorization` header values to send.
    pub authorization: Vec<String>,
    /// The status the service must answer.
    pub expect: u16,
}

/// What a service answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The `WWW-Authenticate` header, if any.
    pub challenge: Option<String>,
    /// The body, as text.
    pub body: String,
}

/// Sends `case` to `base`.
pub async fn call(client: &reqwest::Client, base: &str, case: &Case) -> Result<Answer, String> {
    let mut request = client.request(case.method.clone(), format!("{base}{}", case.path));
    for value in &case.authorization {
        request = request.header(reqwest::header::AUTHORIZATION, value);
    }
    answer(request).await
}

/// `GET {base}/orders` with `token`, and a `Client-Cert` header (RFC 9440) when given, as
/// a proxy that terminated the caller's TLS sends it.
pub async fn get_orders(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    client_cert: Option<&str>,
) -> Result<Answer, String> {
    let mut request = client.get(format!("{base}/orders")).bearer_auth(token);
    if let Some(value) = client_cert {
        request = request.header("client-cert", value);
    }
    answer(request).await
}

async fn answer(request: reqwest::RequestBuilder) -> Result<Answer, String> {
    let response = request.send().await.map_err(|e| format!("{e:?}"))?;
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let body = response.text().await.map_err(|e| e.to_string())?;
    Ok(Answer { status, challenge, body })
}

fn bearer(token: String) -> Vec<String> {
    vec![format!("Bearer {token}")]
}

/// The demo's requests: a valid token, one lacking the scope, an expired one, a forged
/// one (signed by a key the issuer never published, with the issuer's `kid`), none.
pub fn demo_cases(idp: &TestIssuer, audience: &str) -> Vec<Case> {
    let forger = std::sync::Arc::new(auth_core::testkit::TestKey::generate(auth_core::Algorithm::RS256, "rs256-1"));
    let token = || idp.token().audience(audience);
    let reader = token().scope("orders:read").sign();
    vec![
        Case {
            name: "valid token, GET /orders",
            method: reqwest::Method::GET,
            path: "/orders",
            authorization: bearer(reader.clone()),
            expect: 200,
        },
        Case {
            name: "valid token with orders:write, POST /orders",
            method: reqwest::Method::POST,
            path: "/orders",
            authorization: bearer(token().scope("orders:read orders:write").sign()),
            expect: 201,
        },
        Case {
            name: "token lacking orders:write, POST /orders",
            method: reqwest::Method::POST,
            path: "/orders",
            authorization: bearer(reader),
            expect: 403,
        },
        Case {
            name: "expired token",
            method: reqwest::Method::GET,
            path: "/orders",
            authorization: bearer(token().scope("orders:read").expires_in(-3600).sign()),
            expect: 401,
        },
        Case {
            name: "forged token (attacker key, issuer kid)",
            method: reqwest::Method::GET,
            path: "/orders",
            authorization: bearer(token().key(forger).scope("orders:read").sign()),
            expect: 401,
        },
        Case { name: "no token", method: reqwest::Method::GET, path: "/orders", authorization: vec![], expect: 401 },
        Case {
            name: "health (open)",
            method: reqwest::Method::GET,
            path: "/health",
            authorization: vec![],
            expect: 200,
        },
    ]
}

/// Why a service answered as it did, in a few words: the challenge's error and
/// description, or the body for a success.
pub fn explain(answer: &Answer) -> String {
    match &answer.challenge {
        Some(challenge) => {
            let description = challenge.split("error_description=\"").nth(1).and_then(|rest| rest.split('"').next());
            match description {
                Some(d) => d.to_owned(),
                None => "no credentials (challenge only)".to_owned(),
            }
        }
        None => answer.body.chars().take(60).collect(),
    }
}

/// The audience of the example services in the demo.
pub const AUDIENCE: &str = "orders-api";

/// The billing stand-in's resource (its tokens' audience) in the demo and the tests.
pub const BILLING_RESOURCE: &str = "https://billing.test";

/// The orders services' client id at the issuer in the demo and the tests.
pub const ORDERS_CLIENT_ID: &str = "orders-service";

/// The demo's invoice requests: `GET /orders/{id}/invoice` with a token that has
/// `orders:read` (the service then calls the billing stand-in with its own token, or with
/// `?as=caller` with one exchanged for the caller's).
pub fn invoice_cases(idp: &TestIssuer, audience: &str) -> Vec<Case> {
    let reader = idp.token().audience(audience).scope("orders:read").sign();
    vec![
        Case {
            name: "GET /orders/42/invoice (calls billing)",
            method: reqwest::Method::GET,
            path: "/orders/42/invoice",
            authorization: bearer(reader.clone()),
            expect: 200,
        },
        Case {
            name: "GET /orders/42/invoice?as=caller (exchange)",
            method: reqwest::Method::GET,
            path: "/orders/42/invoice?as=caller",
            authorization: bearer(reader.clone()),
            expect: 200,
        },
        Case {
            name: "GET /orders/42/invoice?as=admin",
            method: reqwest::Method::GET,
            path: "/orders/42/invoice?as=admin",
            authorization: bearer(reader.clone()),
            expect: 400,
        },
        Case {
            name: "GET /orders/4x/invoice (id not digits)",
            method: reqwest::Method::GET,
            path: "/orders/4x/invoice",
            authorization: bearer(reader),
            expect: 404,
        },
    ]
}

/// Runs the demo: prints the table and returns whether every answer was as expected.
pub async fn run() -> Result<bool, String> {
    let idp = TestIssuer::start().await.map_err(|e| format!("test issuer: {e}"))?;
    let validator = Validator::builder()
        .issuer(auth_core::Issuer::discovery(idp.issuer()).audience(AUDIENCE))
        .build()
        .map_err(|e| e.to_string())?;
    // The billing stand-in, and the orders services' own credentials for it: one token
    // source (so one token) shared by both services.
    let billing_validator = Validator::builder()
        .issuer(auth_core::Issuer::discovery(idp.issuer()).audience(BILLING_RESOURCE))
        .build()
        .map_err(|e| e.to_string())?;
    let billing_base = crate::billing::start_stand_in(&billing_validator).await?;
    let secret = "demo-secret";
    idp.register_client(
        TestClient::secret(ORDERS_CLIENT_ID, secret).scopes("invoices:read").resources([BILLING_RESOURCE]),
    );
    let tokens = TokenSource::builder(ORDERS_CLIENT_ID)
        .issuer(idp.issuer())
        .client_auth(ClientAuth::client_secret_basic(secret))
        .build()
        .map_err(|e| e.to_string())?;
    let target = || TokenTarget::resource(BILLING_RESOURCE).scope("invoices:read");
    let services = [
        start_axum_with_billing(&validator, Some(BillingClient::new(&billing_base, &tokens, target())?)).await?,
        start_actix_with_billing(&validator, Some(BillingClient::new(&billing_base, &tokens, target())?))?,
    ];
    let mut cases = demo_cases(&idp, AUDIENCE);
    cases.extend(invoice_cases(&idp, AUDIENCE));
    let client = reqwest::Client::new();
    println!("issuer: {} (in-process test issuer, OIDC discovery + JWKS on loopback)", idp.issuer());
    for s in &services {
        println!("{:<6} service: {}", s.name, s.base);
    }
    println!(
        "billing stand-in: {billing_base} (GET /orders/{{id}}/invoice calls it with the service's own token; \
         with ?as=caller, with one exchanged for the caller's)"
    );
    println!();
    println!("{:<46} {:<7} {:>8} {:>4}  why", "request", "service", "expected", "got");
    println!("{}", "-".repeat(110));
    let mut all_ok = true;
    for case in &cases {
        for service in &services {
            let answer = call(&client, &service.base, case).await?;
            let ok = answer.status == case.expect;
            all_ok &= ok;
            println!(
                "{:<46} {:<7} {:>8} {:>4}  {}{}",
                case.name,
                service.name,
                case.expect,
                answer.status,
                explain(&answer),
                if ok { "" } else { "   <-- UNEXPECTED" }
            );
        }
    }
    println!();
    println!("the chain: caller -> orders -> billing (each hop with its own token)");
    let caller = idp.token().audience(AUDIENCE).scope("orders:read").sign();
    for service in &services {
        let chain = Case {
            name: "chain",
            method: reqwest::Method::GET,
            path: "/orders/7/invoice",
            authorization: bearer(caller.clone()),
            expect: 200,
        };
        let answer = call(&client, &service.base, &chain).await?;
        all_ok &= answer.status == 200;
        println!(
            "  hop 1  caller (client {}, aud {AUDIENCE}) -> {} orders  GET /orders/7/invoice  -> {}",
            auth_core::testkit::DEFAULT_CLIENT,
            service.name,
            answer.status
        );
        println!(
            "  hop 2  {} orders (client {ORDERS_CLIENT_ID}, aud {BILLING_RESOURCE}) -> billing  GET /invoices/7  -> {}",
            service.name,
            explain(&answer)
        );
    }
    println!();
    println!("the chain on the caller's behalf: caller -> orders (?as=caller) -> billing (token exchange, RFC 8693)");
    let user = "alice";
    let caller = idp.token().audience(AUDIENCE).scope("orders:read").claim("sub", user).sign();
    let as_caller = |expect| Case {
        name: "chain as caller",
        method: reqwest::Method::GET,
        path: "/orders/7/invoice?as=caller",
        authorization: bearer(caller.clone()),
        expect,
    };
    for service in &services {
        let answer = call(&client, &service.base, &as_caller(200)).await?;
        let seen: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or_default();
        let ok = answer.status == 200
            && seen == serde_json::json!({ "invoice": "7", "caller": user, "actor": ORDERS_CLIENT_ID });
        all_ok &= ok;
        println!(
            "  hop 1  caller (sub {user}, client {}, aud {AUDIENCE}) -> {} orders  GET /orders/7/invoice?as=caller  -> {}",
            auth_core::testkit::DEFAULT_CLIENT,
            service.name,
            answer.status
        );
        println!(
            "  hop 2  {} orders (exchanged: subject {user}'s token, actor its own) -> billing  GET /invoices/7/as-caller",
            service.name
        );
        println!(
            "         -> {}: billing saw sub = {}, act = {}{}",
            answer.status,
            seen["caller"].as_str().unwrap_or("?"),
            seen["actor"].as_str().unwrap_or("?"),
            if ok { "" } else { "   <-- UNEXPECTED" }
        );
    }
    // The same caller again: the exchanged token is cached per caller token.
    let before = idp.token_requests();
    let again = call(&client, &services[0].base, &as_caller(200)).await?;
    let cached = again.status == 200 && idp.token_requests() == before;
    all_ok &= cached;
    println!(
        "  again, same caller, {} orders  -> {}, new token requests: {}{}",
        services[0].name,
        again.status,
        idp.token_requests() - before,
        if cached { "" } else { "   <-- UNEXPECTED" }
    );
    println!();
    let seen = idp.seen_token_requests();
    let grants = |grant: &str| seen.iter().filter(|r| r.param("grant_type") == Some(grant)).count();
    let (own, exchanges) = (grants("client_credentials"), grants("urn:ietf:params:oauth:grant-type:token-exchange"));
    // One client-credentials token (one shared token source), and one exchange per caller
    // token per service (each service has its own exchange cache): two caller tokens.
    let counts_ok = own == 1 && exchanges == 2 * services.len() && idp.token_requests() == own + exchanges;
    all_ok &= counts_ok;
    println!("JWKS fetches by both services and the billing stand-in together: {}", idp.jwks_fetches());
    println!(
        "token requests by both services together: {} ({own} client credentials, one shared token source; \
         {exchanges} token exchanges, one per caller token per service){}",
        idp.token_requests(),
        if counts_ok { "" } else { "   <-- UNEXPECTED" }
    );
    println!("{}", if all_ok { "all answers as expected" } else { "SOME ANSWERS WERE UNEXPECTED" });
    Ok(all_ok)
}
