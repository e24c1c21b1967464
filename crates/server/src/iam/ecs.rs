//! The action, resource and condition keys of an ECS request, as the ECS service
//! authorization reference defines them where berth can compute them from the request
//! alone (no store reads): cluster ARN for cluster-scoped calls, task definition for
//! RunTask, task for StopTask, the resource for tag calls, else `*`.

use berth_api::{ApiError, ErrorKind};
use berth_iam::Request;
use serde_json::{Map, Value};

use super::authorize::{check, Denied};
use crate::state::{Call, State};

/// Authorizes an ECS call (`target` is its `X-Amz-Target`) before its handler runs.
pub async fn authorize(state: &State, call: &Call, target: &str, body: &[u8]) -> Result<(), ApiError> {
    if call.principal == state.iam.root_arn {
        return Ok(());
    }
    let operation = target.rsplit('.').next().unwrap_or(target);
    let action = format!("ecs:{operation}");
    let input = serde_json::from_slice::<Map<String, Value>>(body).unwrap_or_default();
    let scope = Scope { state, call, input: &input };
    let cluster = scope.cluster(operation);
    for resource in scope.resources(operation, cluster.as_deref()) {
        let mut request = Request::new(&action, resource);
        if let Some(c) = &cluster {
            request = request.with("ecs:cluster", c);
        }
        if let Err(Denied(message)) = check(state, &call.principal, request).await? {
            return Err(ApiError::new(ErrorKind::AccessDenied, message));
        }
    }
    Ok(())
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
    "CreateService",
    "UpdateService",
    "DeleteService",
    "DescribeServices",
    "DescribeClusters",
];

struct Scope<'a> {
    state: &'a State,
    call: &'a Call,
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
            format!("arn:aws:ecs:{}:{}:{kind}/{ident}", self.call.region, self.state.account)
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
