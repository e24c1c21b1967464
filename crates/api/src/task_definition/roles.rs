//! Features the agent can only serve with the task execution role: secrets and private
//! registry credentials are fetched with it, whatever the launch type.

use super::{client, has_items, Spec};
use crate::ApiError;

/// Secrets and registry credentials need `executionRoleArn`.
pub(super) fn check(spec: &Spec<'_>) -> Result<(), ApiError> {
    if spec.execution_role().is_some() {
        return Ok(());
    }
    let has_secrets = spec.containers.iter().any(|c| has_items(c.secrets.as_deref()));
    if has_secrets {
        return Err(client(
            "When you are specifying container secrets, you must also specify a value for 'executionRoleArn'.",
        ));
    }
    if spec.containers.iter().any(|c| c.repository_credentials.is_some()) {
        return Err(client(
            "Private repository authentication requires that the task definition specify a value for executionRoleArn.",
        ));
    }
    Ok(())
}
