//! Generates the Rust types for `proto/user_events.proto`.
//!
//! protox parses the schema in pure Rust, so the build needs no `protoc` binary;
//! prost-build then writes the types into `OUT_DIR`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let schema = "proto/user_events.proto";
    println!("cargo:rerun-if-changed={schema}");
    let descriptors = protox::compile([schema], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
