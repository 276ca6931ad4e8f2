//! Compiles KNE's topology schema (`proto/kne/topo.proto`) with protox (pure Rust, no system
//! `protoc`): Rust types for the parsed file, and the encoded descriptors that the text-format and
//! YAML readers need to know the fields by name.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = "proto/kne/topo.proto";
    println!("cargo:rerun-if-changed={file}");
    let fds = protox::compile([file], ["proto/kne"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("kne_topo.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .compile_fds(fds)?;
    Ok(())
}
