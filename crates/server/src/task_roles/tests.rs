//! The role check and GetTaskCredentials on a real store; the helpers serve the other
//! agent-channel tests too.

use std::sync::Arc;

use berth_api::agent::GetTaskCredentialsRequest;
use berth_api::model::{CreateClusterRequest, Task, TaskDefinition, TaskOverride};
use berth_api::{ApiError, ErrorKind};
use berth_store::{Expect, SqliteStore, Txn};

use super::{check, get_credentials};
use crate::credentials::KeyRing;
use crate::state::{Call, State};
use crate::{records, tasks};

pub(crate) const ACCOUNT: &str = "123456789012";
pub(crate) const INSTANCE: &str = "arn:aws:ecs:us-east-1:123456789012:container-instance/c/abc123";

pub(crate) fn state(dir: &tempfile::TempDir) -> Arc<State> {
    let store = Arc::new(SqliteStore::open(&dir.path().join("berth.db")).expect("store opens"));
    Arc::new(State::new(store, ACCOUNT.into(), KeyRing::default(), "http://127.0.0.1:1".into()))
}

pub(crate) fn call() -> Call {
    Call { region: "us-east-1".into(), principal: format!("arn:aws:iam::{ACCOUNT}:root") }
}

fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

/// Stores role `name` trusting `service`, as CreateRole would.
async fn put_role(state: &State, name: &str, service: &str) {
    put_role_with_policy(state, name, service, None).await;
}

/// Stores role `name` trusting `service`, with `policy` as its inline policy `p` if given.
pub(crate) async fn put_role_with_policy(state: &State, name: &str, service: &str, policy: Option<&str>) {
    let inline = policy.map_or_else(|| serde_json::json!({}), |p| serde_json::json!({ "p": p }));
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Principal":{{"Service":"{service}"}},"Action":"sts:AssumeRole"}}}}"#
    );
    let role = serde_json::json!({
        "name": name, "id": "AROAEXAMPLE0000000001", "arn": role_arn(name), "path": "/",
        "createDate": "2026-12-01T00:00:00Z", "assumeRolePolicyDocument": trust, "description": null,
        "maxSessionDuration": 3600, "tags": [], "permissions": {"inline": inline, "attached": []}
    });
    let txn = Txn::new().put(format!("iam/role/{}", name.to_ascii_lowercase()), role.to_string(), Expect::Absent);
    state.store.commit(txn).await.expect("role stored");
}

fn definition(role: Option<String>) -> TaskDefinition {
    TaskDefinition { task_role_arn: role, ..Default::default() }
}

/// Asserts that the check refused `role` with ECS's message.
fn refused(result: Result<(), ApiError>, role: &str) {
    let e = result.expect_err(role);
    assert_eq!(e.kind, ErrorKind::Client, "{role}");
    assert!(e.message.starts_with(&format!("ECS was unable to assume the role '{role}'")), "{}", e.message);
}

#[tokio::test]
async fn only_roles_that_trust_ecs_tasks_pass() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state(&dir);
    put_role(&state, "app", "ecs-tasks.amazonaws.com").await;
    put_role(&state, "vm", "ec2.amazonaws.com").await;
    check(&state, &definition(None), None).await.expect("no role");
    check(&state, &definition(Some(role_arn("app"))), None).await.expect("trusted role");
    for bad in [role_arn("vm"), role_arn("missing"), "not-an-arn".to_string()] {
        refused(check(&state, &definition(Some(bad.clone())), None).await, &bad);
    }
    let overrides = TaskOverride { task_role_arn: Some(role_arn("vm")), ..Default::default() };
    refused(check(&state, &definition(Some(role_arn("app"))), Some(&overrides)).await, &role_arn("vm"));
}

#[tokio::test]
async fn the_execution_role_is_checked_as_the_task_role_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state(&dir);
    put_role(&state, "app", "ecs-tasks.amazonaws.com").await;
    put_role(&state, "exec", "ecs-tasks.amazonaws.com").await;
    put_role(&state, "svc", "ecs.amazonaws.com").await;
    let both =
        |exec: &str| TaskDefinition { execution_role_arn: Some(role_arn(exec)), ..definition(Some(role_arn("app"))) };
    check(&state, &both("exec"), None).await.expect("trusted roles");
    for bad in ["svc", "missing"] {
        refused(check(&state, &both(bad), None).await, &role_arn(bad));
    }
    let overrides = |exec: &str| TaskOverride { execution_role_arn: Some(exec.to_string()), ..Default::default() };
    refused(check(&state, &both("exec"), Some(&overrides(&role_arn("svc")))).await, &role_arn("svc"));
    check(&state, &both("svc"), Some(&overrides(&role_arn("exec")))).await.expect("the override replaces it");
    check(&state, &both("svc"), Some(&overrides(""))).await.expect("an empty override means none");
}

/// Stores task `id` of cluster `c` placed on `instance`: as its container instance, or for a
/// Fargate task (`fargate`) as the pool instance that holds its reservation.
pub(crate) async fn put_task(
    state: &State,
    id: &str,
    definition: TaskDefinition,
    instance: &str,
    status: &str,
    fargate: bool,
) {
    let task = Task {
        task_arn: Some(format!("arn:aws:ecs:us-east-1:{ACCOUNT}:task/c/{id}")),
        container_instance_arn: (!fargate).then(|| instance.into()),
        last_status: Some(status.into()),
        ..Default::default()
    };
    let capacity = fargate.then(|| instance.into());
    let stored = tasks::Stored { task, definition, reservation: Default::default(), capacity, network: None };
    let txn = Txn::new().put(tasks::key("c", id), records::encode(&stored).expect("encodes"), Expect::Absent);
    state.store.commit(txn).await.expect("task stored");
}

fn request(task: &str, instance: &str) -> GetTaskCredentialsRequest {
    GetTaskCredentialsRequest {
        cluster: Some("c".into()),
        container_instance: Some(instance.into()),
        task: Some(task.into()),
    }
}

#[tokio::test]
async fn credentials_go_only_to_the_agent_of_the_tasks_instance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state(&dir);
    let create = CreateClusterRequest { cluster_name: Some("c".into()), ..Default::default() };
    crate::clusters::create(Arc::clone(&state), call(), create).await.expect("cluster");
    put_role(&state, "app", "ecs-tasks.amazonaws.com").await;
    put_role(&state, "exec", "ecs-tasks.amazonaws.com").await;
    let with_exec = |role| TaskDefinition { execution_role_arn: Some(role_arn("exec")), ..definition(role) };
    put_task(&state, "t1", with_exec(Some(role_arn("app"))), INSTANCE, "RUNNING", false).await;
    put_task(&state, "t2", definition(Some(role_arn("app"))), INSTANCE, "STOPPED", false).await;
    put_task(&state, "t3", with_exec(None), INSTANCE, "RUNNING", false).await;
    put_task(&state, "f1", definition(Some(role_arn("app"))), INSTANCE, "RUNNING", true).await;
    let creds = get_credentials(Arc::clone(&state), call(), request("t1", "abc123")).await.expect("credentials");
    assert_eq!(creds.role_arn, role_arn("app"), "the task role's, never the execution role's");
    let fargate = get_credentials(Arc::clone(&state), call(), request("f1", "abc123")).await;
    assert_eq!(fargate.expect("a Fargate task's credentials go to its pool instance").role_arn, role_arn("app"));
    assert!(creds.access_key_id.starts_with("ASIA") && !creds.session_token.is_empty());
    assert!(state.keys.secret(&creds.access_key_id).is_some(), "the server accepts them");
    for (task, instance) in [("t1", "other"), ("f1", "other"), ("t2", "abc123"), ("t3", "abc123"), ("t9", "abc123")] {
        let e = get_credentials(Arc::clone(&state), call(), request(task, instance)).await.expect_err(task);
        assert_eq!(e.kind, ErrorKind::InvalidParameter, "{task} on {instance}: {}", e.message);
    }
    let session = Call { principal: format!("arn:aws:sts::{ACCOUNT}:assumed-role/app/t1"), ..call() };
    let e = get_credentials(Arc::clone(&state), session, request("t1", "abc123")).await.expect_err("a role session");
    assert_eq!(e.kind, ErrorKind::AccessDenied, "{}", e.message);
}
