//! Generate the gRPC client and server code from proto/fjord.proto.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../../proto/fjord.proto";
    println!("cargo:rerun-if-changed={proto}");
    tonic_prost_build::configure()
        // Record batches and snapshots stay `Bytes`: decoded without a copy.
        .bytes(".")
        .compile_protos(&[proto], &["../../proto"])
        .map_err(|e| {
            format!(
                "compiling {proto} failed (protoc missing? apt-get install protobuf-compiler): {e}"
            )
        })?;
    Ok(())
}
