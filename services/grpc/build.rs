//! Compiles proto/incasso/v1 with protox (pure Rust, no system protoc) and keeps the
//! descriptor set for gRPC reflection.
use prost::Message;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs, not baked in when it is compiled: a build script binary
    // reused from another checkout (a shared target directory) must not look there.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "incasso/v1/common.proto",
        "incasso/v1/notice_service.proto",
        "incasso/v1/ledger_service.proto",
        "incasso/v1/receipt_service.proto",
        "incasso/v1/citizen_payments_service.proto",
        "incasso/v1/reconciliation.proto",
    ];
    let fds = protox::compile(files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("incasso_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
