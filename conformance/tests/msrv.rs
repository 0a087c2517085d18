//! The declared `rust-version` holds for the dependencies too: the workspace resolver
//! (`resolver = "3"`) prefers versions that support it, and this test fails when the lock
//! file holds a package that asks for a newer Rust (a manual `cargo update --precise`, or a
//! dependency that left no compatible version). No second toolchain is needed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
fn no_locked_package_needs_a_newer_rust_than_the_workspace_declares() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let ours = version(env!("CARGO_PKG_RUST_VERSION"));
    assert!(ours >= (1, 85, 0), "edition 2024 needs 1.85; declared {ours:?}");
    let packages = metadata["packages"].as_array().expect("a package list");
    assert!(packages.len() > 100, "the whole dependency graph is listed");
    let newer: Vec<String> = packages
        .iter()
        .filter_map(|p| {
            let wanted = p["rust_version"].as_str()?;
            (version(wanted) > ours).then(|| format!("{} {} needs {wanted}", p["name"], p["version"]))
        })
        .collect();
    assert!(newer.is_empty(), "rust-version {} is declared, but: {newer:?}", env!("CARGO_PKG_RUST_VERSION"));
}
