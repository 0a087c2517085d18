//! The example services (`examples`: the axum and the actix `orders` service) against a
//! real third-party OpenID provider (panva/oidc-provider 9, under Node.js, over loopback
//! HTTP). Project issue 6.
//!
//! - The real binaries `axum_service` and `actix_service`, configured by environment
//!   variables exactly as the README shows (only the issuer URL, with and without a
//!   trailing slash, and the audience): client-credentials tokens for every signing
//!   algorithm are accepted; a token for another API is 401; a missing scope is 403
//!   `insufficient_scope`; a missing `AUTH_AUDIENCE` stops start-up with one line.
//! - The same routers in-process (`examples::axum_app`, `examples::actix_app`, served by
//!   `examples::demo`), with a validator tuned for test-sized timings (the binaries use
//!   the defaults: 60 s leeway, 30 s unknown-kid cooldown, 10 min refresh): an expired
//!   short-lived token is 401; key rotation on the running provider (new kid accepted on
//!   its first request with one JWKS fetch; a dropped key's tokens refused after the next
//!   refresh); provider stopped (cached keys keep serving) and restarted (recovery
//!   without restarting the service).
//!
//! The binaries are built by the test itself (`cargo build -p examples --bin ...`, quick
//! when they are up to date), because a test of one package cannot depend on another
//! package's binaries. Every spawned process is killed when its guard drops (also on
//! panic), and dies by itself if the test process dies (it watches a pipe).
//!
//! Like `oidc_provider.rs`, these tests fail (never pass by skipping) when Node.js or the
//! npm install is missing, unless `AUTH_SKIP_INTEROP=1` is set, which CI never does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use auth_core::{Issuer, Validator, ValidatorBuilder};
use base64::Engine as _;
use examples::demo::get_orders as send_get_orders;
use examples::demo::{Answer, Case, RunningService, call, start_actix, start_axum};
use interop_tests::{
    Api, BILLING_CLIENT, IssuedCertificate, MTLS_BOUND_CLIENT, ORDERS_CLIENT, Provider, ProviderOptions, READER_CLIENT,
    SHORT_LIVED_CLIENT, SigningAlg, TestCa, TokenRequest, start_or_skip, start_or_skip_with, unix_now,
};
use reqwest::Method;
use serde_json::Value;

/// Starts the provider, or returns from the test when the developer opted out.
macro_rules! provider {
    ($name:literal) => {
        match start_or_skip($name) {
            Some(provider) => provider,
            None => return,
        }
    };
}

const AUDIENCE: &str = "orders-api";
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

// ---- requests -------------------------------------------------------------------------

fn orders(alg: SigningAlg) -> TokenRequest {
    TokenRequest::new(ORDERS_CLIENT, Api::Orders, "orders:read orders:write").alg(alg)
}

fn case(name: &'static str, method: Method, token: Option<&str>, expect: u16) -> Case {
    Case {
        name,
        method,
        path: "/orders",
        authorization: token.map(|t| vec![format!("Bearer {t}")]).unwrap_or_default(),
        expect,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap()
}

/// Sends `case` to `service`, asserts the status and, for a refusal, the RFC 6750 challenge.
async fn expect(client: &reqwest::Client, service: &str, base: &str, case: &Case) -> Answer {
    let answer = call(client, base, case).await.unwrap_or_else(|e| panic!("{service}: {}: {e}", case.name));
    assert_eq!(answer.status, case.expect, "{service}: {}: {answer:?}", case.name);
    let challenge = answer.challenge.as_deref().unwrap_or("");
    match answer.status {
        200 | 201 => assert!(answer.challenge.is_none(), "{service}: {}: {answer:?}", case.name),
        401 if case.authorization.is_empty() => assert_eq!(challenge, "Bearer", "{service}: {}", case.name),
        401 => assert!(challenge.contains(r#"error="invalid_token""#), "{service}: {}: {challenge}", case.name),
        403 => assert!(challenge.contains(r#"error="insufficient_scope""#), "{service}: {}: {challenge}", case.name),
        _ => {}
    }
    answer
}

// ---- the real binaries ------------------------------------------------------------------

/// Paths of the freshly built `axum_service` and `actix_service`.
struct Binaries {
    axum: PathBuf,
    actix: PathBuf,
}

/// Builds the two service binaries once per test process (`cargo build -p examples`),
/// and returns their paths as cargo reports them. Cargo finds them up to date after the
/// workspace build unless the feature set differs (then it builds that variant once).
fn binaries() -> &'static Binaries {
    static BUILT: OnceLock<Result<Binaries, String>> = OnceLock::new();
    match BUILT.get_or_init(build_binaries) {
        Ok(binaries) => binaries,
        Err(err) => panic!("cannot build the example services: {err}"),
    }
}

fn build_binaries() -> Result<Binaries, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut command = Command::new(cargo);
    command
        .current_dir(&workspace)
        .args(["build", "--locked", "-p", "examples", "--bin", "axum_service", "--bin", "actix_service"])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"));
    // Same profile as this test binary (target/<profile>/deps/<test>).
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    if exe.parent().and_then(Path::parent).and_then(Path::file_name).is_some_and(|p| p == "release") {
        command.arg("--release");
    }
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    let stdout = read_to_end_on_thread(child.stdout.take());
    let stderr = read_to_end_on_thread(child.stderr.take());
    let status = wait_with_deadline(&mut child, BUILD_TIMEOUT)
        .ok_or_else(|| format!("`cargo build -p examples` did not finish within {BUILD_TIMEOUT:?}"))?;
    let (stdout, stderr) = (stdout.join().unwrap_or_default(), stderr.join().unwrap_or_default());
    if !status.success() {
        return Err(format!("`cargo build -p examples` failed ({status}):\n{stderr}"));
    }
    let mut axum = None;
    let mut actix = None;
    let mut rebuilt = 0;
    for line in stdout.lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        rebuilt += usize::from(message["fresh"] == false);
        let path = message["executable"].as_str().map(PathBuf::from);
        match message["target"]["name"].as_str() {
            Some("axum_service") => axum = path,
            Some("actix_service") => actix = path,
            _ => {}
        }
    }
    eprintln!("example services built in {:?} ({rebuilt} crates compiled): {axum:?}, {actix:?}", started.elapsed());
    match (axum, actix) {
        (Some(axum), Some(actix)) => Ok(Binaries { axum, actix }),
        _ => Err(format!("cargo reported no executables:\n{stdout}")),
    }
}

fn read_to_end_on_thread<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The environment of a service: nothing from the developer's shell leaks in.
fn service_command(binary: &Path) -> Command {
    let mut command = Command::new(binary);
    clean_env(&mut command);
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

fn clean_env(command: &mut Command) {
    for var in [
        "AUTH_ISSUER",
        "AUTH_AUDIENCE",
        "AUTH_JWKS_URL",
        "BIND_ADDR",
        "AUTH_CERT_BINDING",
        "AUTH_TRUSTED_PROXIES",
        "AUTH_TLS_CERT",
        "AUTH_TLS_KEY",
        "AUTH_TLS_CLIENT_CA",
        "AUTH_CA_CERT",
        "BILLING_URL",
    ] {
        command.env_remove(var);
    }
}

/// A running example-service binary; killed when dropped.
struct ServiceProcess {
    name: &'static str,
    base: String,
    child: Child,
    /// Closing it makes the watchdog kill the service (also when this process dies).
    lifeline: Option<ChildStdin>,
    log: Arc<Mutex<Vec<String>>>,
}

impl ServiceProcess {
    /// Starts `binary` with `AUTH_ISSUER=issuer`, `AUTH_AUDIENCE=orders-api` and a free
    /// loopback `BIND_ADDR`, and waits until `GET /health` answers.
    async fn start(name: &'static str, binary: &Path, issuer: &str) -> ServiceProcess {
        Self::start_with(name, binary, issuer, &[], &client()).await
    }

    /// [`start`](Self::start) with more variables; `client` checks readiness (over https
    /// when `AUTH_TLS_CERT` is among them).
    async fn start_with(
        name: &'static str,
        binary: &Path,
        issuer: &str,
        env: &[(&str, &str)],
        client: &reqwest::Client,
    ) -> ServiceProcess {
        let scheme = if env.iter().any(|(k, _)| *k == "AUTH_TLS_CERT") { "https" } else { "http" };
        let mut last_error = String::new();
        // The free port could be taken between probing and binding: try a few.
        for _ in 0..3 {
            let port = free_port();
            let mut command = watched(binary);
            command
                .env("AUTH_ISSUER", issuer)
                .env("AUTH_AUDIENCE", AUDIENCE)
                .env("BIND_ADDR", format!("127.0.0.1:{port}"))
                .envs(env.iter().copied());
            let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let lifeline = child.stdin.take();
            let log = Arc::new(Mutex::new(Vec::new()));
            forward(name, child.stdout.take(), &log);
            forward(name, child.stderr.take(), &log);
            let base = format!("{scheme}://127.0.0.1:{port}");
            let mut service = ServiceProcess { name, base, child, lifeline, log };
            match service.wait_ready(client).await {
                Ok(()) => return service,
                Err(err) => last_error = err,
            }
            if !last_error.contains("BIND_ADDR") {
                break;
            }
        }
        panic!("{name} did not start: {last_error}");
    }

    async fn wait_ready(&mut self, client: &reqwest::Client) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100)); // let the readers collect the reason
                return Err(format!("exited ({status}): {}", self.log.lock().unwrap().join("\n")));
            }
            if let Ok(response) = client.get(format!("{}/health", self.base)).send().await
                && response.status() == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("/health not answering within {READY_TIMEOUT:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        drop(self.lifeline.take()); // the watchdog kills the service and exits
        if wait_with_deadline(&mut self.child, Duration::from_secs(5)).is_none() {
            eprintln!("{}: had to be killed", self.name);
        }
    }
}

/// Echoes a service's output to the test's stderr, and keeps it for failure messages.
fn forward<R: Read + Send + 'static>(name: &'static str, pipe: Option<R>, log: &Arc<Mutex<Vec<String>>>) {
    let (Some(pipe), log) = (pipe, log.clone()) else { return };
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            eprintln!("[{name}] {line}");
            log.lock().unwrap().push(line);
        }
    });
}

/// The service under a watchdog: `sh` runs it and kills it as soon as its stdin closes,
/// which happens when the guard drops or when this test process dies in any way.
#[cfg(unix)]
fn watched(binary: &Path) -> Command {
    // fd 3 keeps the pipe: a background job's stdin is /dev/null in a non-interactive sh.
    const WATCHDOG: &str = r#"exec 3<&0 0</dev/null
"$0" 3<&- &
service=$!
{ cat <&3; kill -KILL "$service"; } >/dev/null 2>&1 &
exec 3<&-
wait "$service" 2>/dev/null"#;
    let mut command = Command::new("sh");
    command.arg("-c").arg(WATCHDOG).arg(binary);
    clean_env(&mut command);
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

/// Without `sh`, the guard kills the service directly (on panic too, not on abort).
#[cfg(not(unix))]
fn watched(binary: &Path) -> Command {
    service_command(binary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_binaries_configured_by_issuer_url_accept_every_algorithm_and_refuse_audience_and_scope() {
    let idp =
        provider!("service_binaries_configured_by_issuer_url_accept_every_algorithm_and_refuse_audience_and_scope");
    let binaries = binaries();
    let issuer = idp.issuer().to_owned();
    assert!(!issuer.ends_with('/'));
    // Both binaries, each with the issuer as the provider writes it and with a trailing
    // slash (operators type it either way): four processes, one table.
    let services = [
        ServiceProcess::start("axum_service", &binaries.axum, &issuer).await,
        ServiceProcess::start("actix_service", &binaries.actix, &issuer).await,
        ServiceProcess::start("axum_service (issuer/)", &binaries.axum, &format!("{issuer}/")).await,
        ServiceProcess::start("actix_service (issuer/)", &binaries.actix, &format!("{issuer}/")).await,
    ];

    let mut cases = Vec::new();
    for alg in SigningAlg::ALL {
        let minted = idp.access_token(&orders(alg)).await.unwrap();
        assert_eq!(interop_tests::decode_unverified(&minted).0["alg"], alg.as_str());
        let reader =
            idp.access_token(&TokenRequest::new(READER_CLIENT, Api::Orders, "orders:read").alg(alg)).await.unwrap();
        let billing =
            idp.access_token(&TokenRequest::new(BILLING_CLIENT, Api::Billing, "billing:read").alg(alg)).await.unwrap();
        assert_eq!(interop_tests::decode_unverified(&billing).1["aud"], "billing-api");
        cases.push((alg, case("orders-client, GET /orders", Method::GET, Some(&minted), 200)));
        cases.push((alg, case("orders-client, POST /orders", Method::POST, Some(&minted), 201)));
        cases.push((alg, case("reader-client, GET /orders", Method::GET, Some(&reader), 200)));
        cases.push((alg, case("reader-client (no orders:write), POST /orders", Method::POST, Some(&reader), 403)));
        cases.push((alg, case("billing-api token, GET /orders", Method::GET, Some(&billing), 401)));
    }

    let client = client();
    for (alg, case) in &cases {
        let mut answers = Vec::new();
        for service in &services {
            let answer = expect(&client, service.name, &service.base, case).await;
            match case.expect {
                200 | 201 => {
                    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
                    let client_id = if case.name.starts_with("reader") { READER_CLIENT.id } else { ORDERS_CLIENT.id };
                    assert_eq!(body["caller"], client_id, "{}: {alg} {}", service.name, case.name);
                }
                403 => {
                    let challenge = answer.challenge.as_deref().unwrap();
                    assert!(challenge.contains(r#"scope="orders:write""#), "{}: {challenge}", service.name);
                }
                401 => {
                    let challenge = answer.challenge.as_deref().unwrap();
                    assert!(challenge.contains("not meant for this audience"), "{}: {challenge}", service.name);
                }
                _ => unreachable!(),
            }
            answers.push(answer);
        }
        // One library decision, two frameworks: every answer is the same, byte for byte.
        assert!(answers.windows(2).all(|w| w[0] == w[1]), "{alg} {}: the services differ: {answers:#?}", case.name);
        eprintln!("{alg:<5} {:<48} -> {} from all four", case.name, case.expect);
    }
    for service in &services {
        expect(&client, service.name, &service.base, &case("no token", Method::GET, None, 401)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_binaries_without_audience_refuse_to_start_naming_the_variable() {
    // No provider needed: start-up must fail before any network I/O.
    let binaries = binaries();
    for (name, binary) in [("axum_service", &binaries.axum), ("actix_service", &binaries.actix)] {
        for audience in [None, Some("  ")] {
            let port = free_port();
            let mut command = service_command(binary);
            command.env("AUTH_ISSUER", "http://127.0.0.1:9/").env("BIND_ADDR", format!("127.0.0.1:{port}"));
            if let Some(audience) = audience {
                command.env("AUTH_AUDIENCE", audience);
            }
            let mut child = command.spawn().unwrap();
            let stdout = read_to_end_on_thread(child.stdout.take());
            let stderr = read_to_end_on_thread(child.stderr.take());
            let status = wait_with_deadline(&mut child, Duration::from_secs(10))
                .unwrap_or_else(|| panic!("{name} with AUTH_AUDIENCE={audience:?} kept running"));
            let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
            eprintln!("{name} with AUTH_AUDIENCE={audience:?}: {status}, stderr: {stderr:?}");
            assert!(!status.success(), "{name}: {status}");
            assert_eq!(stderr.trim_end().lines().count(), 1, "{name}: one line: {stderr:?}");
            assert!(stderr.contains("AUTH_AUDIENCE"), "{name}: names the variable: {stderr:?}");
            assert!(stdout.is_empty(), "{name}: it never listened: {stdout:?}");
            assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "{name}: nothing on the port");
        }
    }
}

// ---- the same routers in-process, with test-sized timings ------------------------------

/// A validator configured with nothing but the issuer URL (OIDC discovery).
fn discovery(idp: &Provider) -> ValidatorBuilder {
    Validator::builder().issuer(Issuer::discovery(idp.issuer()).audience(AUDIENCE))
}

/// The axum or the actix example service, in-process, with its own validator.
async fn serve(which: &str, validator: &Validator) -> RunningService {
    match which {
        "axum" => start_axum(validator).await.unwrap(),
        "actix" => start_actix(validator).unwrap(),
        other => unreachable!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_short_lived_token_is_401_through_both_services() {
    let idp = provider!("expired_short_lived_token_is_401_through_both_services");
    // No leeway (the binaries have the default 60 s), so that expiry is observable quickly.
    let validator = Validator::builder()
        .issuer(Issuer::discovery(idp.issuer()).audience(AUDIENCE).leeway(Duration::ZERO))
        .build()
        .unwrap();
    let services = [serve("axum", &validator).await, serve("actix", &validator).await];
    let token = idp.access_token(&TokenRequest::new(SHORT_LIVED_CLIENT, Api::Orders, "orders:read")).await.unwrap();
    let exp = interop_tests::decode_unverified(&token).1["exp"].as_u64().unwrap();
    let client = client();
    for service in &services {
        expect(&client, service.name, &service.base, &case("short-lived token", Method::GET, Some(&token), 200)).await;
    }
    // `exp` is the first instant the token is no longer valid; wait until just past it.
    tokio::time::sleep(Duration::from_secs((exp + 1).saturating_sub(unix_now())) + Duration::from_millis(100)).await;
    let mut answers = Vec::new();
    for service in &services {
        let expired = case("expired short-lived token", Method::GET, Some(&token), 401);
        let answer = expect(&client, service.name, &service.base, &expired).await;
        assert!(answer.challenge.as_deref().unwrap().contains("expired"), "{}: {answer:?}", service.name);
        answers.push(answer);
    }
    assert_eq!(answers[0], answers[1]);
    assert!(validator.metrics().cache_hits >= 1, "the verified-token cache answered, and did not outlive exp");
}

/// Key rotation on the running provider, through one service with its own validator.
async fn rotation_through(which: &'static str, alg: SigningAlg) {
    let idp = match start_or_skip(&format!("key_rotation_through_the_{which}_service")) {
        Some(idp) => idp,
        None => return,
    };
    let validator = discovery(&idp)
        .refresh_interval(Duration::from_millis(500), Duration::from_secs(3600), Duration::from_secs(2))
        .unknown_kid_cooldown(Duration::from_millis(300))
        .build()
        .unwrap();
    let service = serve(which, &validator).await;
    let client = client();
    let get = |token: String, status: u16| {
        let (client, base) = (client.clone(), service.base.clone());
        async move { expect(&client, which, &base, &case("GET /orders", Method::GET, Some(&token), status)).await }
    };

    let old_kid = idp.keys().await.unwrap().active(alg).unwrap().to_owned();
    let old = idp.access_token(&orders(alg)).await.unwrap();
    get(old.clone(), 200).await;
    assert_eq!(validator.metrics().jwks_fetches, 1);
    tokio::time::sleep(Duration::from_millis(350)).await; // past the unknown-kid cooldown

    // A new key on the running provider: accepted on its first request, one JWKS fetch,
    // the service untouched.
    let new_kid = idp.rotate(alg).await.unwrap();
    let new = idp.access_token(&orders(alg)).await.unwrap();
    assert_eq!(interop_tests::decode_unverified(&new).0["kid"], new_kid.as_str());
    let before = validator.metrics().jwks_fetches;
    get(new.clone(), 200).await;
    assert_eq!(validator.metrics().jwks_fetches - before, 1, "{which}: one JWKS fetch for the new kid");
    get(old.clone(), 200).await; // still published

    // The old key leaves the JWKS: its tokens are refused once the key set is refreshed
    // (here: at its 2 s lifetime).
    idp.drop_key(&old_kid).await.unwrap();
    let dropped_at = Instant::now();
    let answer = loop {
        let answer = call(&client, &service.base, &case("old key", Method::GET, Some(&old), 401)).await.unwrap();
        if answer.status != 200 {
            break answer;
        }
        assert!(dropped_at.elapsed() < Duration::from_secs(6), "{which}: the dropped key still validates after 6 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("{which}: old-key token refused {:?} after the key was dropped: {answer:?}", dropped_at.elapsed());
    assert_eq!(answer.status, 401, "{which}: {answer:?}");
    let challenge = answer.challenge.as_deref().unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#) && challenge.contains("signing key is not known"),
        "{challenge}"
    );
    get(new, 200).await;
    let m = validator.metrics();
    assert!(m.jwks_fetches <= 6, "{which}: bounded refetching: {m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_through_the_axum_service() {
    rotation_through("axum", SigningAlg::ES256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_through_the_actix_service() {
    rotation_through("actix", SigningAlg::RS256).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_outage_and_restart_through_both_services() {
    let mut idp = provider!("provider_outage_and_restart_through_both_services");
    let tuned = |idp: &Provider| {
        discovery(idp)
            .refresh_interval(Duration::from_millis(500), Duration::from_secs(3600), Duration::from_secs(1))
            .unknown_kid_cooldown(Duration::from_millis(300))
            .max_stale(Duration::from_secs(3600))
            .token_cache_capacity(0) // only the key cache may answer
            .build()
            .unwrap()
    };
    let validators = [tuned(&idp), tuned(&idp)];
    let services = [serve("axum", &validators[0]).await, serve("actix", &validators[1]).await];
    let client = client();
    let rs = idp.access_token(&orders(SigningAlg::RS256)).await.unwrap();
    let ed = idp.access_token(&orders(SigningAlg::EdDSA)).await.unwrap();
    for s in &services {
        expect(&client, s.name, &s.base, &case("RS256", Method::GET, Some(&rs), 200)).await;
    }

    // Provider down: tokens signed by cached keys keep working, past the key set's lifetime.
    idp.stop();
    assert!(!idp.is_running());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for s in &services {
        expect(&client, s.name, &s.base, &case("RS256, provider down", Method::GET, Some(&rs), 200)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await; // the background refresh fails
    for s in &services {
        expect(&client, s.name, &s.base, &case("RS256, provider down", Method::GET, Some(&rs), 200)).await;
        expect(&client, s.name, &s.base, &case("EdDSA never seen, provider down", Method::POST, Some(&ed), 201)).await;
    }
    for (s, v) in services.iter().zip(&validators) {
        let m = v.metrics();
        assert!(m.refresh_failures >= 1 && m.stale_served >= 1, "{}: {m:?}", s.name);
    }
    // A service started during the outage answers 503 (keys unavailable), not 401.
    let late = tuned(&idp);
    let late_services = [serve("axum", &late).await, serve("actix", &late).await];
    for s in &late_services {
        let answer =
            expect(&client, s.name, &s.base, &case("started during outage", Method::GET, Some(&rs), 503)).await;
        assert!(answer.challenge.as_deref().unwrap().contains("temporarily unavailable"), "{}: {answer:?}", s.name);
    }

    // Restarted on the same port, then a key the services never saw: recovered, nothing
    // restarted on the services' side.
    idp.restart().unwrap();
    let new_kid = idp.rotate(SigningAlg::RS256).await.unwrap();
    let new = idp.access_token(&orders(SigningAlg::RS256)).await.unwrap();
    assert_eq!(interop_tests::decode_unverified(&new).0["kid"], new_kid.as_str());
    tokio::time::sleep(Duration::from_millis(350)).await; // past the cooldown of the failed attempts
    for s in services.iter().chain(&late_services) {
        expect(&client, s.name, &s.base, &case("new RS256 key after restart", Method::GET, Some(&new), 200)).await;
        expect(&client, s.name, &s.base, &case("RS256 after restart", Method::GET, Some(&rs), 200)).await;
        expect(&client, s.name, &s.base, &case("EdDSA after restart", Method::GET, Some(&ed), 200)).await;
    }
    assert!(late.is_ready());
}

// ---- certificate-bound tokens (RFC 8705) through the real binaries ----------------------

/// The URI SAN of the bound caller's certificate.
const WORKLOAD_SPIFFE_ID: &str = "spiffe://interop.test/ns/orders/sa/caller";

/// A folder of PEM files for the services' variables, removed on drop.
struct PemFiles(PathBuf);

impl PemFiles {
    fn new(tag: &str) -> PemFiles {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let dir = std::env::temp_dir().join(format!("interop-services-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        PemFiles(dir)
    }

    fn write(&self, name: &str, contents: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_string_lossy().into_owned()
    }
}

impl Drop for PemFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The https provider, and a token it bound to `caller`'s certificate (asked for by
/// `mtls-bound-client` over mutual TLS at the token endpoint's mTLS alias).
struct Bound {
    ca: TestCa,
    idp: Provider,
    caller: IssuedCertificate,
    other: IssuedCertificate,
    token: String,
    files: PemFiles,
    /// The CA's PEM file: the issuer's CA (`AUTH_CA_CERT`) and the services' client CA.
    ca_file: String,
}

async fn bound(test: &str) -> Option<Bound> {
    let ca = TestCa::new("interop services CA").unwrap();
    let idp = start_or_skip_with(test, ProviderOptions::new().https(&ca).unwrap())?;
    let caller = ca.workload_certificate("bound-caller", WORKLOAD_SPIFFE_ID).unwrap();
    let other = ca.client_certificate("another-caller").unwrap();
    let request = TokenRequest::new(MTLS_BOUND_CLIENT, Api::Orders, "orders:read");
    let minted = idp.token_over_mtls(&request, &caller).await.unwrap_or_else(|e| panic!("bound token: {e}"));
    let (_, claims) = minted.decoded();
    assert_eq!(claims["cnf"]["x5t#S256"], caller.thumbprint(), "the provider bound the token: {claims}");
    assert_eq!(claims["client_id"], MTLS_BOUND_CLIENT.id, "{claims}");
    // Without a client certificate the provider refuses to issue one.
    let err = idp.token(&request).await.unwrap_err();
    assert!(matches!(err, interop_tests::HarnessError::TokenRefused { .. }), "{err}");
    let files = PemFiles::new("bound");
    let ca_file = files.write("ca.pem", ca.cert_pem());
    Some(Bound { ca, idp, caller, other, token: minted.access_token, files, ca_file })
}

impl Bound {
    /// A client trusting the CA (the services' server certificates), presenting `identity`.
    fn client(&self, identity: Option<&IssuedCertificate>) -> reqwest::Client {
        let root = reqwest::Certificate::from_pem(self.ca.cert_pem().as_bytes()).unwrap();
        let mut builder = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).tls_certs_only([root]);
        if let Some(cert) = identity {
            let pem = format!("{}\n{}", cert.cert_pem, cert.key_pem);
            builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        builder.build().unwrap()
    }

    /// Both binaries with `env` (plus `AUTH_CA_CERT`: they fetch keys from the https provider).
    async fn services(&self, label: &str, env: &[(&str, &str)], ready: &reqwest::Client) -> [ServiceProcess; 2] {
        let mut env = env.to_vec();
        env.push(("AUTH_CA_CERT", &self.ca_file));
        let binaries = binaries();
        let (axum, actix) = match label {
            "https" => ("axum_service (https)", "actix_service (https)"),
            "trusted proxy" => ("axum_service (trusted proxy)", "actix_service (trusted proxy)"),
            _ => ("axum_service (untrusted)", "actix_service (untrusted)"),
        };
        [
            ServiceProcess::start_with(axum, &binaries.axum, self.idp.issuer(), &env, ready).await,
            ServiceProcess::start_with(actix, &binaries.actix, self.idp.issuer(), &env, ready).await,
        ]
    }
}

/// `GET /orders` with `token`, and a `Client-Cert` header (RFC 9440) when given.
async fn get_orders(client: &reqwest::Client, base: &str, token: &str, client_cert: Option<&str>) -> Answer {
    send_get_orders(client, base, token, client_cert).await.unwrap_or_else(|e| panic!("{base}: {e}"))
}

/// Both services answer `status` alike (a 401 with `invalid_token`); the body of a 200.
async fn both(name: &str, services: &[ServiceProcess; 2], send: impl AsyncFn(&str) -> Answer, status: u16) -> Value {
    let mut answers = Vec::new();
    for service in services {
        let answer = send(&service.base).await;
        assert_eq!(answer.status, status, "{}: {name}: {answer:?}", service.name);
        if status == 401 {
            let challenge = answer.challenge.as_deref().unwrap_or("");
            assert!(challenge.contains(r#"error="invalid_token""#), "{}: {name}: {challenge}", service.name);
        }
        answers.push(answer);
    }
    assert_eq!(answers[0], answers[1], "{name}: the services differ");
    eprintln!("{name:<64} -> {status} from both");
    if status == 200 { serde_json::from_str(&answers[0].body).unwrap() } else { Value::Null }
}

fn client_cert_header(cert: &IssuedCertificate) -> String {
    format!(":{}:", base64::engine::general_purpose::STANDARD.encode(&cert.der))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_bound_tokens_through_both_service_binaries_over_https() {
    let Some(b) = bound("certificate_bound_tokens_through_both_service_binaries_over_https").await else { return };
    let server = b.ca.server_certificate().unwrap();
    let (cert, key) = (b.files.write("server.pem", &server.cert_pem), b.files.write("server-key.pem", &server.key_pem));
    let env = [("AUTH_TLS_CERT", cert.as_str()), ("AUTH_TLS_KEY", key.as_str()), ("AUTH_TLS_CLIENT_CA", &b.ca_file)];
    let anonymous = b.client(None);
    let services = b.services("https", &env, &anonymous).await;
    assert!(services.iter().all(|s| s.base.starts_with("https://")));
    let (caller, other) = (b.client(Some(&b.caller)), b.client(Some(&b.other)));
    let token = b.token.as_str();

    let body =
        both("bound token, its certificate", &services, async |base| get_orders(&caller, base, token, None).await, 200)
            .await;
    assert_eq!(body["caller"], MTLS_BOUND_CLIENT.id, "{body}");
    assert_eq!(body["spiffe_id"], WORKLOAD_SPIFFE_ID, "{body}");
    both(
        "bound token, another client's certificate",
        &services,
        async |base| get_orders(&other, base, token, None).await,
        401,
    )
    .await;
    both("bound token, no certificate", &services, async |base| get_orders(&anonymous, base, token, None).await, 401)
        .await;
    // The token is cached now: still refused with another certificate.
    both(
        "bound token (cached), another certificate again",
        &services,
        async |base| get_orders(&other, base, token, None).await,
        401,
    )
    .await;

    // An unbound token from the same provider passes without a certificate (if-present).
    let reader = b.idp.access_token(&TokenRequest::new(READER_CLIENT, Api::Orders, "orders:read")).await.unwrap();
    let body = both(
        "unbound token, no certificate",
        &services,
        async |base| get_orders(&anonymous, base, &reader, None).await,
        200,
    )
    .await;
    assert_eq!(body["caller"], READER_CLIENT.id, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_bound_tokens_through_a_client_cert_header_only_from_trusted_proxies() {
    let Some(b) = bound("certificate_bound_tokens_through_a_client_cert_header_only_from_trusted_proxies").await else {
        return;
    };
    let plain = client();
    let token = b.token.as_str();
    let (caller, other) = (client_cert_header(&b.caller), client_cert_header(&b.other));

    // Plain HTTP behind a TLS-terminating proxy on loopback, which forwards the certificate.
    let trusted = b.services("trusted proxy", &[("AUTH_TRUSTED_PROXIES", "127.0.0.1/32")], &plain).await;
    let body = both(
        "trusted proxy: Client-Cert of the bound certificate",
        &trusted,
        async |base| get_orders(&plain, base, token, Some(&caller)).await,
        200,
    )
    .await;
    assert_eq!(body["spiffe_id"], WORKLOAD_SPIFFE_ID, "{body}");
    both(
        "trusted proxy: Client-Cert of another certificate",
        &trusted,
        async |base| get_orders(&plain, base, token, Some(&other)).await,
        401,
    )
    .await;
    both("trusted proxy: no Client-Cert", &trusted, async |base| get_orders(&plain, base, token, None).await, 401)
        .await;
    drop(trusted);

    // The same header from an address that is not a trusted proxy: ignored.
    let untrusted = b.services("untrusted", &[("AUTH_TRUSTED_PROXIES", "10.0.0.0/8")], &plain).await;
    both(
        "untrusted address: Client-Cert of the bound certificate",
        &untrusted,
        async |base| get_orders(&plain, base, token, Some(&caller)).await,
        401,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_binaries_with_a_partial_tls_set_refuse_to_start_naming_the_variable() {
    // No provider needed: start-up must fail before any network I/O.
    let binaries = binaries();
    let files = PemFiles::new("partial-tls");
    let pem = files.write("any.pem", "unused");
    for (name, binary) in [("axum_service", &binaries.axum), ("actix_service", &binaries.actix)] {
        for (set, named) in [
            (vec![("AUTH_TLS_CERT", pem.as_str())], "AUTH_TLS_KEY"),
            (vec![("AUTH_TLS_KEY", pem.as_str())], "AUTH_TLS_CERT"),
            (vec![("AUTH_TLS_CLIENT_CA", pem.as_str())], "AUTH_TLS_CLIENT_CA"),
            (vec![("AUTH_CERT_BINDING", "strict")], "AUTH_CERT_BINDING"),
        ] {
            let port = free_port();
            let mut command = service_command(binary);
            command
                .env("AUTH_ISSUER", "http://127.0.0.1:9/")
                .env("AUTH_AUDIENCE", AUDIENCE)
                .env("BIND_ADDR", format!("127.0.0.1:{port}"))
                .envs(set.iter().copied());
            let mut child = command.spawn().unwrap();
            let stderr = read_to_end_on_thread(child.stderr.take());
            let status = wait_with_deadline(&mut child, Duration::from_secs(10))
                .unwrap_or_else(|| panic!("{name} with {set:?} kept running"));
            let stderr = stderr.join().unwrap();
            assert!(!status.success(), "{name} with {set:?}: {status}");
            assert_eq!(stderr.trim_end().lines().count(), 1, "{name}: one line: {stderr:?}");
            assert!(stderr.contains(named), "{name} with {set:?}: names {named}: {stderr:?}");
        }
    }
}
