//! `BerthAgentV1.GetTaskSecrets`: a task's container `secrets` and `repositoryCredentials`,
//! read as its execution role, for the agent of its instance only.
//!
//! # Behavior
//! - Each reference is authorized as a session of the task's execution role
//!   (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/TASK`): its policies must allow
//!   `secretsmanager:GetSecretValue` on the secret's ARN, as ECS's agent needs when it
//!   calls Secrets Manager with the execution role's credentials. The role is never
//!   assumed: no credentials are issued, so nothing but this answer carries the values.
//! - `valueFrom` is a Secrets Manager ARN, optionally followed by `:json-key:version-stage:
//!   version-id` (each part may be empty), as ECS reads it; `credentialsParameter` is a
//!   secret's ARN or name whose value is `{"username": ..., "password": ...}`.
//! - A failure answers the first reference that failed, in the words ECS's agent uses
//!   after its `unable to retrieve secret from asm:` prefix; the agent stops the task with
//!   it.

use std::sync::Arc;

use berth_api::agent::{needs_secrets, ContainerSecrets, GetTaskSecretsRequest, GetTaskSecretsResponse};
use berth_api::model::{ContainerDefinition, Secret};
use berth_api::task_definition::execution_role;
use berth_api::{ApiError, ErrorKind};
use berth_iam::Request;

use super::{find_live, SecretRecord};
use crate::iam::{check, Denied};
use crate::state::{Call, State};
use crate::task_roles::placed_task;

/// GetTaskSecrets: every container's secrets, resolved as the task's execution role.
pub async fn get(
    state: Arc<State>,
    call: Call,
    req: GetTaskSecretsRequest,
) -> Result<GetTaskSecretsResponse, ApiError> {
    let (task_id, stored) = placed_task(&state, &call, &req, "GetTaskSecrets").await?;
    let containers: Vec<&ContainerDefinition> =
        stored.definition.container_definitions.iter().flatten().filter(|c| needs_secrets(c)).collect();
    if containers.is_empty() {
        return Ok(GetTaskSecretsResponse::default());
    }
    let role = execution_role(&stored.definition, stored.task.overrides.as_ref())
        .ok_or_else(|| ApiError::invalid("The task has secrets or repositoryCredentials but no executionRoleArn."))?;
    let reader = Reader { state: &state, region: &call.region, session: session(&state.account, role, &task_id) };
    let mut out = Vec::new();
    for c in containers {
        out.push(reader.container(c).await?);
    }
    Ok(GetTaskSecretsResponse { containers: out })
}

/// The principal of the execution role's session for the task.
fn session(account: &str, role_arn: &str, task_id: &str) -> String {
    let name = role_arn.rsplit('/').next().unwrap_or(role_arn);
    format!("arn:aws:sts::{account}:assumed-role/{name}/{task_id}")
}

/// A `valueFrom`: the secret's ARN and which part of which version it picks.
#[derive(Debug, PartialEq, Eq)]
struct Reference<'a> {
    arn: &'a str,
    json_key: Option<&'a str>,
    stage: Option<&'a str>,
    version: Option<&'a str>,
}

impl<'a> Reference<'a> {
    /// Reads `arn:aws:secretsmanager:R:A:secret:NAME[:json-key:stage:version]`; none for
    /// anything else (an SSM parameter, which berth does not serve).
    fn parse(value_from: &'a str) -> Option<Self> {
        let mut fields = value_from.splitn(8, ':');
        let head: Vec<&str> = fields.by_ref().take(7).collect();
        if head.len() != 7 || head[0] != "arn" || head[2] != "secretsmanager" || head[5] != "secret" {
            return None;
        }
        let arn = value_from.get(..head.iter().map(|f| f.len() + 1).sum::<usize>() - 1)?;
        let mut rest = fields.next().unwrap_or_default().split(':');
        let mut part = || rest.next().filter(|p| !p.is_empty());
        Some(Self { arn, json_key: part(), stage: part(), version: part() })
    }
}

/// Reads secrets as one execution-role session.
struct Reader<'a> {
    state: &'a State,
    /// The task's region, for a secret named by name.
    region: &'a str,
    session: String,
}

impl Reader<'_> {
    async fn container(&self, c: &ContainerDefinition) -> Result<ContainerSecrets, ApiError> {
        let mut environment = Vec::new();
        for Secret { name, value_from } in c.secrets.iter().flatten() {
            let value_from = value_from.as_deref().unwrap_or_default();
            let reference = Reference::parse(value_from).ok_or_else(|| {
                ApiError::new(
                    ErrorKind::UnsupportedFeature,
                    format!("{value_from} is not a Secrets Manager secret ARN; berth does not serve SSM parameters"),
                )
            })?;
            environment.push((name.clone().unwrap_or_default(), self.value(&reference).await?));
        }
        let registry_credentials =
            match c.repository_credentials.as_ref().and_then(|r| r.credentials_parameter.as_deref()) {
                Some(id) => Some(self.registry_credentials(id).await?),
                None => None,
            };
        Ok(ContainerSecrets { container_name: c.name.clone().unwrap_or_default(), environment, registry_credentials })
    }

    /// The secret `id` names, when the session may read it.
    async fn secret(&self, id: &str) -> Result<SecretRecord, ApiError> {
        let resource = super::resource(self.state, self.region, Some(id)).await;
        let request = Request::new("secretsmanager:GetSecretValue", resource);
        if let Err(Denied(message)) = check(self.state, &self.session, request).await? {
            return Err(fetch_error(id, ApiError::new(ErrorKind::AccessDenied, message)));
        }
        find_live(self.state, id).await.map_err(|e| fetch_error(id, e))
    }

    /// What a `valueFrom` picks: the string value, or one key of it read as a JSON object.
    async fn value(&self, r: &Reference<'_>) -> Result<String, ApiError> {
        let secret = self.secret(r.arn).await?;
        let version = secret.version(r.version, r.stage).map_err(|e| fetch_error(r.arn, e))?;
        let value = version.string.clone().unwrap_or_default();
        let Some(key) = r.json_key else { return Ok(value) };
        let invalid = || {
            ApiError::new(
                ErrorKind::InvalidRequest,
                format!("retrieved secret from Secrets Manager did not contain json key {key}"),
            )
        };
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&value).map_err(|_| invalid())?;
        match object.get(key) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(other) => Ok(other.to_string()),
            None => Err(invalid()),
        }
    }

    /// The `{"username", "password"}` of a `credentialsParameter`.
    async fn registry_credentials(&self, id: &str) -> Result<(String, String), ApiError> {
        let secret = self.secret(id).await?;
        let value = secret.version(None, None).map_err(|e| fetch_error(id, e))?.string.clone().unwrap_or_default();
        #[derive(serde::Deserialize)]
        struct Login {
            username: String,
            password: String,
        }
        let login: Login = serde_json::from_str(&value).map_err(|_| {
            ApiError::new(
                ErrorKind::InvalidRequest,
                format!(
                    "the secret {id} given as repositoryCredentials is not a JSON object with a \"username\" and a \"password\""
                ),
            )
        })?;
        Ok((login.username, login.password))
    }
}

/// ECS's agent's wording for a secret it could not read.
fn fetch_error(id: &str, e: ApiError) -> ApiError {
    let message = format!("failed to fetch secret {id} from secrets manager: {}: {}", e.kind.type_name(), e.message);
    ApiError::new(e.kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_from_reads_as_ecs_does() {
        let arn = "arn:aws:secretsmanager:us-east-1:1:secret:db-AbCdEf";
        assert_eq!(Reference::parse(arn), Some(Reference { arn, json_key: None, stage: None, version: None }));
        let keyed = format!("{arn}:password::");
        assert_eq!(
            Reference::parse(&keyed),
            Some(Reference { arn, json_key: Some("password"), stage: None, version: None })
        );
        let full = format!("{arn}:k:AWSPREVIOUS:v1");
        assert_eq!(
            Reference::parse(&full),
            Some(Reference { arn, json_key: Some("k"), stage: Some("AWSPREVIOUS"), version: Some("v1") })
        );
        assert_eq!(Reference::parse("arn:aws:ssm:us-east-1:1:parameter/db"), None);
        assert_eq!(Reference::parse("db-password"), None);
    }

    #[test]
    fn the_session_is_the_execution_roles() {
        assert_eq!(session("1", "arn:aws:iam::1:role/path/exec", "t1"), "arn:aws:sts::1:assumed-role/exec/t1");
    }
}
