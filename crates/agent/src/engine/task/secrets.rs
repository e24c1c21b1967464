//! A task's Secrets Manager references: resolved by the server as the task's execution
//! role (`BerthAgentV1.GetTaskSecrets`) before its images are pulled, kept in memory only,
//! and used for the pulls (`repositoryCredentials`, over `--registry-auth`) and the
//! containers' environment (`secrets`).

use std::time::Duration;

use berth_api::agent::{needs_secrets, GetTaskSecrets, GetTaskSecretsRequest, GetTaskSecretsResponse};
use berth_client::ClientError;
use berth_runtime::images::RegistryAuth;

use super::{Run, Shared};

/// How often a call that did not reach the server (or failed in it) is tried, as ECS's
/// agent retries its Secrets Manager calls; a refusal (4xx) is final at once.
const ATTEMPTS: u32 = 5;

/// ECS's prefix for a task that could not get its secrets (the server records
/// TaskFailedToStart).
const SECRETS_FAILED: &str = "ResourceInitializationError: unable to pull secrets or registry auth";

impl Run {
    /// Fetches the secrets of the containers yet to start; nothing when none has any.
    pub(super) async fn fetch_secrets(&mut self) -> Result<(), String> {
        let wanted = self.containers().iter().any(|c| {
            let started = self.record.containers.get(c.name.as_deref().unwrap_or_default()).is_some_and(|r| r.started);
            !started && needs_secrets(c)
        });
        if !wanted {
            return Ok(());
        }
        let request = GetTaskSecretsRequest {
            cluster: Some(self.shared.cluster.clone()),
            container_instance: self.shared.instance.get().cloned(),
            task: Some(self.arn.clone()),
        };
        let answer = fetch(&self.shared, &request).await.map_err(|e| match e {
            ClientError::Api { message, .. } => format!(
                "{SECRETS_FAILED}: execution resource retrieval failed: unable to retrieve secret from asm: {message}"
            ),
            other => format!("{SECRETS_FAILED}: {other}"),
        })?;
        self.secrets = answer.containers.into_iter().map(|c| (c.container_name.clone(), c)).collect();
        Ok(())
    }

    /// The pull credentials `repositoryCredentials` gave the container, if any.
    pub(super) fn registry_auth(&self, container: &str) -> Option<RegistryAuth> {
        let (username, password) = self.secrets.get(container)?.registry_credentials.clone()?;
        Some(RegistryAuth { username, password })
    }
}

/// GetTaskSecrets, tried again after a transport failure or a server fault.
async fn fetch(shared: &Shared, request: &GetTaskSecretsRequest) -> Result<GetTaskSecretsResponse, ClientError> {
    let mut delay = Duration::from_millis(200);
    for _ in 1..ATTEMPTS {
        match shared.client.call::<GetTaskSecrets>(request).await {
            Err(e) if e.is_transient() => {
                tracing::warn!(task = request.task.as_deref().unwrap_or_default(), error = %e, "fetching the task's secrets; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
    shared.client.call::<GetTaskSecrets>(request).await
}
