//! The action, resource and condition keys of an ECS request, as the ECS service
//! authorization reference defines them where berth can compute them from the request
//! alone (no store reads): cluster ARN for cluster-scoped calls, task definition for
//! RunTask, task for StopTask, the resource for tag calls, else `*`. A cluster's tags are
//! read (one store read) only for callers whose policies test `aws:ResourceTag/...`.

use berth_api::model::{Cluster, Tag};
use berth_api::protocol::SECRETS_SIGNING_NAME;
use berth_api::{ApiError, Arn, ErrorKind, ResourceKind};
use berth_iam::Request;
use serde_json::{Map, Value};

use super::authorize::{check, wants_resource_tags, Denied};
use crate::clusters;
use crate::records::{self, RecordError};
use crate::state::{Call, State};

/// Authorizes a JSON-protocol call before its handler runs: `service` is the SigV4 service
/// it is signed for (`ecs`, `logs` or `secretsmanager`, also the action's prefix) and `target` its
/// `X-Amz-Target`.
pub async fn authorize(state: &State, call: &Call, service: &str, target: &str, body: &[u8]) -> Result<(), ApiError> {
    if call.principal == state.iam.root_arn {
        return Ok(());
    }
    let operation = target.rsplit('.').next().unwrap_or(target);
    let action = format!("{service}:{operation}");
    let input = serde_json::from_slice::<Map<String, Value>>(body).unwrap_or_default();
    let scope = Scope { account: &state.account, region: &call.region, input: &input };
    let (cluster, resources) = if service == "ecs" {
        let cluster = scope.cluster(operation);
        let resources = scope.resources(operation, cluster.as_deref());
        (cluster, resources)
    } else if service == SECRETS_SIGNING_NAME {
        let id = scope.str("SecretId").or_else(|| scope.str("Name"));
        (None, vec![crate::secrets::resource(state, &call.region, id).await])
    } else {
        (None, vec![scope.log_group()])
    };
    let wants_tags = wants_resource_tags(state, &call.principal).await?;
    for resource in resources {
        let tags = if wants_tags { resource_tags(state, &resource).await? } else { Vec::new() };
        let mut request = Request::new(&action, resource);
        if let Some(c) = &cluster {
            request = request.with("ecs:cluster", c);
        }
        for tag in tags {
            let key = format!("aws:ResourceTag/{}", tag.key.unwrap_or_default());
            request = request.with(&key, tag.value.unwrap_or_default());
        }
        if let Err(Denied(message)) = check(state, &call.principal, request).await? {
            return Err(ApiError::new(ErrorKind::AccessDenied, message));
        }
    }
    Ok(())
}

/// The tags of `resource` when it is a cluster of this account (the resource berth can
/// read tags of in one lookup); none otherwise.
async fn resource_tags(state: &State, resource: &str) -> Result<Vec<Tag>, RecordError> {
    let Some(arn) = Arn::parse(resource).filter(|a| a.kind == ResourceKind::Cluster && a.account == state.account)
    else {
        return Ok(Vec::new());
    };
    let cluster = records::get::<Cluster>(&*state.store, &clusters::key(&arn.id)).await?;
    Ok(cluster.and_then(|(c, _)| c.tags).unwrap_or_default())
}

/// Operations scoped to a cluster that default to `default` when none is named.
const CLUSTER_SCOPED: &[&str] = &[
    "RunTask",
    "StartTask",
    "StopTask",
    "ListTasks",
    "DescribeTasks",
    "ListContainerInstances",
    "DescribeContainerInstances",
    "DeregisterContainerInstance",
    "UpdateContainerInstancesState",
    "RegisterContainerInstance",
    "PutAttributes",
    "DeleteAttributes",
    "ListAttributes",
    "ListServices",
    "ListServiceDeployments",
    "CreateService",
    "UpdateService",
    "DeleteService",
    "DescribeServices",
    "DescribeClusters",
];

/// What an ECS request's resources are computed from.
struct Scope<'a> {
    account: &'a str,
    region: &'a str,
    input: &'a Map<String, Value>,
}

impl Scope<'_> {
    fn str(&self, member: &str) -> Option<&str> {
        self.input.get(member).and_then(Value::as_str)
    }

    fn strs(&self, member: &str) -> Vec<&str> {
        self.input
            .get(member)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// `arn:aws:ecs:REGION:ACCOUNT:KIND/ID`, or `ident` itself when it is an ARN already.
    fn arn(&self, kind: &str, ident: &str) -> String {
        if ident.starts_with("arn:") {
            ident.to_owned()
        } else {
            format!("arn:aws:ecs:{}:{}:{kind}/{ident}", self.region, self.account)
        }
    }

    /// The cluster ARN the call is scoped to, if any.
    fn cluster(&self, operation: &str) -> Option<String> {
        match self.str("cluster") {
            Some(c) => Some(self.arn("cluster", c)),
            None if CLUSTER_SCOPED.contains(&operation) && operation != "DescribeClusters" => {
                Some(self.arn("cluster", "default"))
            }
            None => None,
        }
    }

    /// A Logs call's resource: the ARN of the log group it names, else `*`.
    fn log_group(&self) -> String {
        match self.str("logGroupName") {
            Some(g) => format!("arn:aws:logs:{}:{}:log-group:{g}:*", self.region, self.account),
            None => self.str("logGroupIdentifier").map_or_else(|| "*".to_owned(), str::to_owned),
        }
    }

    /// The name part of a cluster ARN, for task and service ARNs under it.
    fn cluster_name(cluster: Option<&str>) -> &str {
        cluster.and_then(|c| c.rsplit('/').next()).unwrap_or("default")
    }

    /// The resources the call acts on; each must be allowed.
    fn resources(&self, operation: &str, cluster: Option<&str>) -> Vec<String> {
        let under_cluster = |kind: &str, id: &str| self.arn(kind, &format!("{}/{id}", Self::cluster_name(cluster)));
        let list = |member: &str, f: &dyn Fn(&str) -> String| self.strs(member).into_iter().map(f).collect::<Vec<_>>();
        let found = match operation {
            "DescribeClusters" => {
                let named = list("clusters", &|c| self.arn("cluster", c));
                if named.is_empty() {
                    vec![self.arn("cluster", "default")]
                } else {
                    named
                }
            }
            "RunTask" | "StartTask" | "DescribeTaskDefinition" | "DeregisterTaskDefinition" => {
                self.str("taskDefinition").map(|t| self.arn("task-definition", t)).into_iter().collect()
            }
            "DeleteTaskDefinitions" => list("taskDefinitions", &|t| self.arn("task-definition", t)),
            "StopTask" => self.str("task").map(|t| under_cluster("task", t)).into_iter().collect(),
            "DescribeTasks" => list("tasks", &|t| under_cluster("task", t)),
            "CreateService" => self.str("serviceName").map(|s| under_cluster("service", s)).into_iter().collect(),
            "UpdateService" | "DeleteService" => {
                self.str("service").map(|s| under_cluster("service", s)).into_iter().collect()
            }
            "DescribeServices" => list("services", &|s| under_cluster("service", s)),
            "TagResource" | "UntagResource" | "ListTagsForResource" => {
                self.str("resourceArn").map(str::to_owned).into_iter().collect()
            }
            _ => cluster.map(str::to_owned).into_iter().collect(),
        };
        if found.is_empty() {
            vec!["*".to_owned()]
        } else {
            found
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(operation: &str, input: Value) -> (Option<String>, Vec<String>) {
        let Value::Object(input) = input else { panic!("an object") };
        let scope = Scope { account: "1", region: "eu-west-1", input: &input };
        let cluster = scope.cluster(operation);
        let resources = scope.resources(operation, cluster.as_deref());
        (cluster, resources)
    }

    #[test]
    fn cluster_scoped_calls_name_the_cluster_and_default_to_default() {
        let x = "arn:aws:ecs:eu-west-1:1:cluster/x".to_owned();
        assert_eq!(resources("DeleteCluster", serde_json::json!({"cluster": "x"})), (Some(x.clone()), vec![x.clone()]));
        assert_eq!(resources("ListTasks", serde_json::json!({"cluster": x})), (Some(x.clone()), vec![x]));
        let default = "arn:aws:ecs:eu-west-1:1:cluster/default".to_owned();
        assert_eq!(resources("ListContainerInstances", serde_json::json!({})), (Some(default.clone()), vec![default]));
        assert_eq!(resources("ListClusters", serde_json::json!({})), (None, vec!["*".to_owned()]));
    }

    #[test]
    fn task_and_definition_calls_name_their_resources() {
        let (cluster, r) = resources("RunTask", serde_json::json!({"cluster": "c", "taskDefinition": "web:3"}));
        assert_eq!(cluster.as_deref(), Some("arn:aws:ecs:eu-west-1:1:cluster/c"));
        assert_eq!(r, ["arn:aws:ecs:eu-west-1:1:task-definition/web:3"]);
        let (_, r) = resources("StopTask", serde_json::json!({"cluster": "c", "task": "abc"}));
        assert_eq!(r, ["arn:aws:ecs:eu-west-1:1:task/c/abc"]);
        let (_, r) =
            resources("DescribeClusters", serde_json::json!({"clusters": ["a", "arn:aws:ecs:eu-west-1:1:cluster/b"]}));
        assert_eq!(r, ["arn:aws:ecs:eu-west-1:1:cluster/a", "arn:aws:ecs:eu-west-1:1:cluster/b"]);
        let (_, r) = resources("TagResource", serde_json::json!({"resourceArn": "arn:aws:ecs:eu-west-1:1:cluster/t"}));
        assert_eq!(r, ["arn:aws:ecs:eu-west-1:1:cluster/t"]);
        let (_, r) = resources("RegisterTaskDefinition", serde_json::json!({"family": "f"}));
        assert_eq!(r, ["*"]);
    }
}
