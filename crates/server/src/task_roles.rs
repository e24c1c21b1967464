//! Task roles: the role check at RunTask, StartTask and CreateService, and
//! `BerthAgentV1.GetTaskCredentials`, through which an agent obtains the temporary
//! credentials of a task role for a task placed on its own instance.
//!
//! # Behavior
//! - A `taskRoleArn` and an `executionRoleArn` (each the definition's, or the overrides')
//!   must name an existing role whose trust policy allows the service principal
//!   `ecs-tasks.amazonaws.com`; otherwise the call fails with ECS's `ClientException` "ECS was
//!   unable to assume the role ...", which ECS gives for either role.
//! - Credentials are only ever issued for the task role: the execution role is checked but
//!   never assumed (the agent pulls images and ships logs with its own key), so no container
//!   can obtain its credentials.
//! - Credentials are issued (and stored) by `iam::sts::issue_role_credentials` as session
//!   `<task id>` of the role, so calls made with them are authorized by the role's policies.
//! - Only a task that is not STOPPED and is placed on the asking instance gets credentials,
//!   and never for a role session (a task's own credentials, even with `ecs:*`, cannot fetch
//!   another task's): agents sign with their own keys.

use std::sync::Arc;

use berth_api::agent::{GetTaskCredentialsRequest, GetTaskCredentialsResponse};
use berth_api::model::{TaskDefinition, TaskOverride};
use berth_api::task_definition::{execution_role, task_role};
use berth_api::{ApiError, ErrorKind};

use crate::iam::sts::{self, IssueError, Trustee};
use crate::records;
use crate::state::{Call, State};
use crate::{clusters, container_instances, tasks};

/// The service principal a task role must trust.
pub const ECS_TASKS: &str = "ecs-tasks.amazonaws.com";

/// How long task-role credentials live (AWS's default session length); the agent
/// refreshes them at half their lifetime.
const LIFETIME_SECONDS: i64 = 3600;

/// ECS's refusal of a role it cannot assume for a task.
fn unable_to_assume(role: &str) -> ApiError {
    ApiError::client(format!(
        "ECS was unable to assume the role '{role}' that was provided for this task. Please verify that the role being passed has the proper trust relationship and permissions and that your IAM user has permissions to pass this role."
    ))
}

/// Refuses a task role or execution role that does not exist or does not trust
/// `ecs-tasks.amazonaws.com`.
pub async fn check(state: &State, def: &TaskDefinition, overrides: Option<&TaskOverride>) -> Result<(), ApiError> {
    for role in [task_role(def, overrides), execution_role(def, overrides)].into_iter().flatten() {
        match sts::trusted_role(state, role, Trustee { principals: &[], service: Some(ECS_TASKS) }).await {
            Ok(_) => {}
            Err(IssueError::Record(e)) => return Err(e.into()),
            Err(_) => return Err(unable_to_assume(role)),
        }
    }
    Ok(())
}

/// GetTaskCredentials: a fresh session of the task's role, for the agent of its instance.
pub async fn get_credentials(
    state: Arc<State>,
    call: Call,
    req: GetTaskCredentialsRequest,
) -> Result<GetTaskCredentialsResponse, ApiError> {
    let (task_id, stored) = placed_task(&state, &call, &req, "GetTaskCredentials").await?;
    let role = task_role(&stored.definition, stored.task.overrides.as_ref())
        .ok_or_else(|| ApiError::invalid("The referenced task has no task role."))?
        .to_string();
    let trustee = Trustee { principals: &[], service: Some(ECS_TASKS) };
    let creds =
        sts::issue_role_credentials(&state, &role, &task_id, LIFETIME_SECONDS, trustee).await.map_err(|e| match e {
            IssueError::Record(e) => ApiError::from(e),
            _ => unable_to_assume(&role),
        })?;
    Ok(GetTaskCredentialsResponse {
        role_arn: role,
        access_key_id: creds.access_key_id,
        secret_access_key: creds.secret_access_key,
        session_token: creds.session_token,
        expiration: creds.expiration.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    })
}

/// The task a BerthAgentV1 request names (id and record), when it is not STOPPED and is
/// placed on the asking agent's instance; never for a role session (a task's own
/// credentials, even with `ecs:*`, cannot reach another task's): agents sign with their
/// own keys.
pub(crate) async fn placed_task(
    state: &State,
    call: &Call,
    req: &GetTaskCredentialsRequest,
    operation: &str,
) -> Result<(String, tasks::Stored), ApiError> {
    let cluster = clusters::require_active_name(state, req.cluster.as_deref()).await?;
    let task_id = berth_api::arn::resource_id(req.task.as_deref().unwrap_or_default()).to_string();
    if call.principal.starts_with(&format!("arn:aws:sts::{}:assumed-role/", state.account)) {
        return Err(ApiError::new(
            ErrorKind::AccessDenied,
            format!(
                "User: {} is not authorized to perform: ecs:{operation} on resource: {}",
                call.principal,
                req.task.as_deref().unwrap_or_default()
            ),
        ));
    }
    let instance = container_instances::id_of(req.container_instance.as_deref().unwrap_or_default());
    let not_found = || ApiError::invalid("The referenced task was not found.");
    let (stored, _) =
        records::get::<tasks::Stored>(&*state.store, &tasks::key(&cluster, &task_id)).await?.ok_or_else(not_found)?;
    // A Fargate task's instance is the pool's one that holds its reservation.
    let placed_here = stored.placed_on(&cluster).map(|(_, arn)| container_instances::id_of(arn)) == Some(instance);
    if !placed_here || stored.task.last_status.as_deref() == Some("STOPPED") {
        return Err(not_found());
    }
    Ok((task_id, stored))
}

#[cfg(test)]
pub(crate) mod tests;
