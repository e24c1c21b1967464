//! A task role's credentials: fetched from the server (`BerthAgentV1.GetTaskCredentials`)
//! before the containers start, served by the task endpoints, and fetched again at half
//! their remaining lifetime, so the SDKs in the containers always find unexpired ones.

use std::sync::Arc;
use std::time::Duration;

use berth_api::agent::{GetTaskCredentials, GetTaskCredentialsRequest, GetTaskCredentialsResponse};
use berth_client::ClientError;

use super::{report, Run, Shared};

/// The shortest wait between two fetches.
const MIN_REFRESH: Duration = Duration::from_secs(1);

impl Run {
    /// Gives the task its credentials id and first credentials, and starts refreshing them;
    /// nothing for a task without a task role.
    pub(super) async fn start_credentials(&mut self) -> Result<(), String> {
        if berth_api::task_definition::task_role(&self.def, self.task.overrides.as_ref()).is_none() {
            return Ok(());
        }
        if self.record.credentials_id.is_none() {
            self.record.credentials_id = Some(uuid::Uuid::new_v4().to_string());
            self.save();
        }
        let first = fetch(&self.shared, &self.arn)
            .await
            .map_err(|e| format!("ResourceInitializationError: unable to get the task role credentials: {e}"))?;
        let expiration = expiry(&first);
        self.shared.endpoints.update(&self.id, |v| v.credentials = Some(first.into()));
        let (shared, arn, id) = (Arc::clone(&self.shared), self.arn.clone(), self.id.clone());
        self.refresher = Some(tokio::spawn(refresh(shared, arn, id, expiration)));
        Ok(())
    }
}

fn expiry(c: &GetTaskCredentialsResponse) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(&c.expiration).map_or_else(|_| chrono::Utc::now(), |t| t.to_utc())
}

/// A fresh session of the task's role, asked for in the name of this agent's instance.
async fn fetch(shared: &Shared, task_arn: &str) -> Result<GetTaskCredentialsResponse, ClientError> {
    let request = GetTaskCredentialsRequest {
        // The task's own cluster: a Fargate capacity's agent serves every user cluster.
        cluster: Some(report::cluster_of(shared, task_arn)),
        container_instance: shared.instance.get().cloned(),
        task: Some(task_arn.to_string()),
    };
    shared.client.call::<GetTaskCredentials>(&request).await
}

/// Fetches new credentials at half the remaining lifetime of the current ones, until aborted.
async fn refresh(shared: Arc<Shared>, arn: String, id: String, mut expiration: chrono::DateTime<chrono::Utc>) {
    loop {
        let left = (expiration - chrono::Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep((left / 2).max(MIN_REFRESH)).await;
        match fetch(&shared, &arn).await {
            Ok(c) => {
                expiration = expiry(&c);
                shared.endpoints.update(&id, |v| v.credentials = Some(c.into()));
            }
            Err(e) => tracing::warn!(task = %arn, error = %e, "refreshing the task role credentials failed; retrying"),
        }
    }
}
