//! Reads this crate's Cargo.lock and exposes the resolved `libp2p` and `libp2p-kad`
//! versions to the binary as `RS2P_LIBP2P_VERSIONS`, so the report names what was built.

use std::path::Path;

fn locked_version(lock: &str, name: &str) -> Option<String> {
    let mut current: Option<&str> = None;
    for line in lock.lines() {
        let line = line.trim();
        if line == "[[package]]" {
            current = None;
        } else if let Some(v) = line.strip_prefix("name = ") {
            current = Some(v.trim_matches('"'));
        } else if let Some(v) = line.strip_prefix("version = ") {
            if current == Some(name) {
                return Some(v.trim_matches('"').to_string());
            }
        }
    }
    None
}

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let lock_path = Path::new(&dir).join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock_path.display());
    println!("cargo:rerun-if-changed=build.rs");
    let lock = std::fs::read_to_string(&lock_path).expect("Cargo.lock must exist next to Cargo.toml");
    let libp2p = locked_version(&lock, "libp2p").expect("libp2p is not in Cargo.lock");
    let kad = locked_version(&lock, "libp2p-kad").expect("libp2p-kad is not in Cargo.lock");
    println!("cargo:rustc-env=RS2P_LIBP2P_VERSIONS=libp2p {libp2p}, libp2p-kad {kad}");
}
