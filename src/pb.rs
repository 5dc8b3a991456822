//! The generated protobuf and gRPC types of `proto/pactgate/v1`. Only the `rpc` module converts
//! between these and the domain types.
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("pactgate.v1");

/// The file descriptor set of `proto/`, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/pactgate_descriptor.bin"));
