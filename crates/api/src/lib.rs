//! ECS wire types, errors, ARNs and input validation for berth. No I/O.
//!
//! The types in [`model`] are generated at build time from botocore's ECS model, vendored
//! under `model/` (see `model/PIN.md`), so every operation and member that real clients send
//! is accepted and round-trips. Handlers add ECS's semantic rules on top (see
//! [`task_definition`]).

pub mod agent;
pub mod arn;
pub mod error;
pub mod protocol;
pub mod query;
pub mod task_definition;
pub mod validate;

pub use arn::{Arn, ResourceKind};
pub use error::{ApiError, ErrorKind};

/// Epoch seconds, as AWS JSON 1.1 puts timestamps on the wire.
pub type Timestamp = f64;

/// Ties an operation's wire name to its input and output shapes.
pub trait Operation {
    /// The `X-Amz-Target` prefix: ECS's, unless the operation is berth's own.
    const TARGET_PREFIX: &'static str = protocol::ECS_TARGET_PREFIX;
    /// The SigV4 service name requests for it are signed for.
    const SIGNING_NAME: &'static str = protocol::ECS_SIGNING_NAME;
    /// The name after the prefix in `X-Amz-Target`.
    const NAME: &'static str;
    /// The request shape.
    type Input: serde::de::DeserializeOwned + validate::Validate + Send + 'static;
    /// The response shape.
    type Output: serde::Serialize + Send + 'static;
}

/// The generated shapes of the ECS API (structures, enums, operations).
#[allow(clippy::all, missing_docs)]
pub mod model {
    include!(concat!(env!("OUT_DIR"), "/model.rs"));
}

/// The generated shapes of the CloudWatch Logs API (`model/logs-2014-03-28.json.gz`).
#[allow(clippy::all, missing_docs)]
pub mod logs_model {
    include!(concat!(env!("OUT_DIR"), "/logs_model.rs"));
}

/// The generated shapes of the Secrets Manager API (`model/secretsmanager-2017-10-17.json.gz`).
#[allow(clippy::all, missing_docs)]
pub mod secrets_model {
    include!(concat!(env!("OUT_DIR"), "/secrets_model.rs"));
}

/// The output of an operation the model gives none (CreateLogGroup): `{}` on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Empty {}
