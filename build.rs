//! Compiles `proto/` with protox (pure Rust, no system protoc) into the `pb` module's code and a
//! file descriptor set for gRPC server reflection.

use prost::Message;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/pactgate/v1/signals.proto",
        "proto/pactgate/v1/exchange.proto",
        "proto/pactgate/v1/clock.proto",
        "proto/pactgate/v1/audit.proto",
        "proto/pactgate/v1/pseudonymiser.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(protos, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("pactgate_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // These carry a raw pupil id: `pb` gives them a Debug that leaves the id out.
        .skip_debug([
            "pactgate.v1.SignalRecord",
            "pactgate.v1.AccessReportRequest",
        ])
        .compile_fds(fds)?;
    Ok(())
}
