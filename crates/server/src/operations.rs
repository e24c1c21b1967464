//! The table of ECS operations berth serves: name -> typed handler.
//!
//! Each handler is a plain `async fn(Arc<State>, Call, Input) -> Result<Output, ApiError>`;
//! the table owns decoding, model validation and encoding, so handlers see only typed shapes.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use berth_api::model::ops;
use berth_api::protocol::{parse_input, ECS_SIGNING_NAME};
use berth_api::{ApiError, Operation};
use berth_store::BoxFuture;

use crate::state::{Call, State};
use crate::{
    account_settings, agent_channel, capacity_providers, clusters, container_instances, logs, secrets, services, tags,
    task_definitions, task_roles, tasks,
};

type Handler = Box<dyn Fn(Arc<State>, Call, &[u8]) -> BoxFuture<'static, Result<Vec<u8>, ApiError>> + Send + Sync>;

/// Operation name -> handler, with the SigV4 service its requests must be signed for.
pub struct Operations {
    handlers: HashMap<String, (&'static str, Handler)>,
}

impl Operations {
    /// Every operation berth serves: ECS's, and the CloudWatch Logs and Secrets Manager subsets.
    pub fn ecs() -> Self {
        let mut t = Self { handlers: HashMap::new() };
        t.add::<ops::CreateCluster, _, _>(clusters::create);
        t.add::<ops::DescribeClusters, _, _>(clusters::describe);
        t.add::<ops::ListClusters, _, _>(clusters::list);
        t.add::<ops::DeleteCluster, _, _>(clusters::delete);
        t.add::<ops::UpdateCluster, _, _>(clusters::update);
        t.add::<ops::UpdateClusterSettings, _, _>(clusters::update_settings);
        t.add::<ops::PutClusterCapacityProviders, _, _>(clusters::put_capacity_providers);
        t.add::<ops::CreateCapacityProvider, _, _>(capacity_providers::create);
        t.add::<ops::UpdateCapacityProvider, _, _>(capacity_providers::update);
        t.add::<ops::DeleteCapacityProvider, _, _>(capacity_providers::delete);
        t.add::<ops::DescribeCapacityProviders, _, _>(capacity_providers::describe);
        t.add::<ops::RegisterTaskDefinition, _, _>(task_definitions::register);
        t.add::<ops::DescribeTaskDefinition, _, _>(task_definitions::describe);
        t.add::<ops::ListTaskDefinitions, _, _>(task_definitions::list);
        t.add::<ops::ListTaskDefinitionFamilies, _, _>(task_definitions::list_families);
        t.add::<ops::DeregisterTaskDefinition, _, _>(task_definitions::deregister);
        t.add::<ops::DeleteTaskDefinitions, _, _>(task_definitions::delete);
        t.add::<ops::TagResource, _, _>(tags::tag);
        t.add::<ops::UntagResource, _, _>(tags::untag);
        t.add::<ops::ListTagsForResource, _, _>(tags::list);
        t.add::<ops::RegisterContainerInstance, _, _>(container_instances::register);
        t.add::<ops::DescribeContainerInstances, _, _>(container_instances::describe);
        t.add::<ops::ListContainerInstances, _, _>(container_instances::list);
        t.add::<ops::DeregisterContainerInstance, _, _>(container_instances::deregister);
        t.add::<ops::UpdateContainerInstancesState, _, _>(container_instances::update_state);
        t.add::<ops::PutAttributes, _, _>(container_instances::put_attributes);
        t.add::<ops::DeleteAttributes, _, _>(container_instances::delete_attributes);
        t.add::<ops::ListAttributes, _, _>(container_instances::list_attributes);
        t.add::<ops::RunTask, _, _>(tasks::run);
        t.add::<ops::StartTask, _, _>(tasks::start);
        t.add::<ops::StopTask, _, _>(tasks::stop);
        t.add::<ops::DescribeTasks, _, _>(tasks::describe);
        t.add::<ops::ListTasks, _, _>(tasks::list);
        t.add::<ops::SubmitTaskStateChange, _, _>(tasks::submit_task_state_change);
        t.add::<ops::SubmitContainerStateChange, _, _>(tasks::submit_container_state_change);
        t.add::<ops::DiscoverPollEndpoint, _, _>(agent_channel::discover);
        t.add::<berth_api::agent::PollAssignments, _, _>(agent_channel::poll);
        t.add::<berth_api::agent::SubmitTaskDetails, _, _>(tasks::submit_task_details);
        t.add::<berth_api::agent::GetTaskCredentials, _, _>(task_roles::get_credentials);
        t.add::<berth_api::agent::GetTaskSecrets, _, _>(secrets::task::get);
        t.add::<ops::CreateService, _, _>(services::create);
        t.add::<ops::UpdateService, _, _>(services::update);
        t.add::<ops::DeleteService, _, _>(services::delete);
        t.add::<ops::DescribeServices, _, _>(services::describe);
        t.add::<ops::ListServices, _, _>(services::list);
        t.add::<ops::ListServiceDeployments, _, _>(services::list_deployments);
        t.add::<ops::DescribeServiceDeployments, _, _>(services::describe_deployments);
        t.add::<ops::DescribeServiceRevisions, _, _>(services::describe_revisions);
        t.add::<ops::StopServiceDeployment, _, _>(services::stop_deployment);
        t.add::<ops::GetTaskProtection, _, _>(tasks::protection::get);
        t.add::<ops::UpdateTaskProtection, _, _>(tasks::protection::update);
        t.add::<ops::PutAccountSetting, _, _>(account_settings::put);
        t.add::<ops::PutAccountSettingDefault, _, _>(account_settings::put_default);
        t.add::<ops::DeleteAccountSetting, _, _>(account_settings::delete);
        t.add::<ops::ListAccountSettings, _, _>(account_settings::list);
        logs::operations(&mut t);
        secrets::operations(&mut t);
        t
    }

    pub(crate) fn add<O, F, Fut>(&mut self, handler: F)
    where
        O: Operation,
        F: Fn(Arc<State>, Call, O::Input) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O::Output, ApiError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.handlers.insert(
            format!("{}{}", O::TARGET_PREFIX, O::NAME),
            (
                O::SIGNING_NAME,
                Box::new(move |state, call, body| {
                    let input = parse_input::<O::Input>(body);
                    let input =
                        if O::SIGNING_NAME == ECS_SIGNING_NAME { input } else { input.map_err(logs::input_error) };
                    let handler = Arc::clone(&handler);
                    Box::pin(async move {
                        let output = handler(state, call, input?).await?;
                        serde_json::to_vec(&output).map_err(|e| ApiError::server(format!("encoding {}: {e}", O::NAME)))
                    })
                }),
            ),
        );
    }

    /// The SigV4 service the operation `X-Amz-Target` names is signed for, or `None` when
    /// berth does not serve it.
    pub fn signing_name(&self, target: &str) -> Option<&'static str> {
        self.handlers.get(target).map(|(name, _)| *name)
    }

    /// Runs the operation `X-Amz-Target` names, or `None` when berth does not serve it.
    pub fn call(
        &self,
        target: &str,
        state: Arc<State>,
        call: Call,
        body: &[u8],
    ) -> Option<BoxFuture<'static, Result<Vec<u8>, ApiError>>> {
        self.handlers.get(target).map(|(_, h)| h(state, call, body))
    }
}
