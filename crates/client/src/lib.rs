//! A client of the berth API that signs every request with the AWS SDK's own SigV4 signer.
//!
//! The agent uses it to talk to the server as any AWS client would; the benches and the
//! Rust integration tests use it too, so there is one way to call berth from Rust.

mod ecs;
mod sign;

pub use ecs::{ClientError, EcsClient, Prepared, Reply, DEFAULT_TIMEOUT};
pub use sign::{SignError, Signer};
