//! The end-to-end demo: an in-process issuer, the axum and the actix orders services,
//! and a client calling both with good and bad tokens. Exits 0 when every answer is
//! the expected one.

#[tokio::main]
async fn main() {
    match examples::demo::run().await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(err) => {
            eprintln!("demo: {err}");
            std::process::exit(2);
        }
    }
}
