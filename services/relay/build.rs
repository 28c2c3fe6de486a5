//! Compiles proto/fascicolo/v1 (the contract the Fascicolo del Cittadino implements) with
//! protox: incasso's client, and the server trait the fake Fascicolo of the tests implements.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs: a build script reused from another checkout must not look
    // there.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let fds = protox::compile(["fascicolo/v1/payment_history.proto"], [&root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    println!(
        "cargo:rerun-if-changed={}",
        root.join("fascicolo").display()
    );
    Ok(())
}
