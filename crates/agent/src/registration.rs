//! Registering the host as a container instance, keeping its identity across restarts.

use std::path::PathBuf;
use std::time::Duration;

use berth_api::model::{ops, CreateClusterRequest, RegisterContainerInstanceRequest, VersionInfo};
use berth_client::{ClientError, EcsClient};

use crate::config::AgentConfig;
use crate::{host, AgentError};

fn identity_file(config: &AgentConfig) -> PathBuf {
    config.data_dir.join("instance-arn")
}

/// Registers (again, with the saved ARN, after a restart) and saves the instance ARN.
/// Retries while the server is unreachable; a refusal is final. Like the ECS agent, it
/// creates the `default` cluster when that is the one it joins.
pub async fn register(config: &AgentConfig, client: &EcsClient) -> Result<String, AgentError> {
    if config.cluster == "default" {
        let create = CreateClusterRequest { cluster_name: Some("default".into()), ..Default::default() };
        retrying(|| client.call::<ops::CreateCluster>(&create)).await?;
    }
    let path = identity_file(config);
    let saved = std::fs::read_to_string(&path).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let request = RegisterContainerInstanceRequest {
        cluster: Some(config.cluster.clone()),
        total_resources: Some(host::resources()),
        version_info: Some(VersionInfo {
            agent_version: Some(env!("CARGO_PKG_VERSION").into()),
            agent_hash: None,
            docker_version: Some("runc".into()),
        }),
        container_instance_arn: saved,
        attributes: Some(host::attributes(&config.availability_zone, &config.attributes)),
        ..Default::default()
    };
    let answer = retrying(|| client.call::<ops::RegisterContainerInstance>(&request)).await?;
    let arn = answer.container_instance.and_then(|i| i.container_instance_arn).unwrap_or_default();
    std::fs::write(&path, &arn).map_err(|source| AgentError::Io { path, source })?;
    Ok(arn)
}

/// Calls until the server answers; an answer that is an error is final.
async fn retrying<T, F, Fut>(mut call: F) -> Result<T, AgentError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    loop {
        match call().await {
            Ok(answer) => return Ok(answer),
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "server unreachable; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(AgentError::Registration(e)),
        }
    }
}
