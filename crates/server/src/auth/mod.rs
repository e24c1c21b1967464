//! Authentication at the HTTP edge.
//!
//! - [`sigv4`]: verifies that a request is signed with AWS Signature Version 4, the way
//!   ECS's own endpoints do, so the AWS CLI, boto3 and every AWS SDK work unchanged.
//! - [`profile`]: writes an AWS CLI / boto3 profile that points those clients at berth.
//!
//! Authorization (IAM policies) is a separate step that starts from the [`Caller`] that
//! [`verify`] returns.

pub mod profile;
pub mod sigv4;

pub use profile::{write_cli_profile, write_cli_profile_to, CliProfile, ProfileError, ProfilePaths};
pub use sigv4::{verify, AuthError, Caller, Request};
