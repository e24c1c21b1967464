//! The role check and GetTaskCredentials on a real store.

use std::sync::Arc;

use berth_api::agent::GetTaskCredentialsRequest;
use berth_api::model::{CreateClusterRequest, Task, TaskDefinition, TaskOverride};
use berth_api::ErrorKind;
use berth_store::{Expect, SqliteStore, Txn};

use super::{check, get_credentials};
use crate::credentials::KeyRing;
use crate::state::{Call, State};
use crate::{records, tasks};

const ACCOUNT: &str = "123456789012";
const INSTANCE: &str = "arn:aws:ecs:us-east-1:123456789012:container-instance/c/abc123";

fn state(dir: &tempfile::TempDir) -> Arc<State> {
    let store = Arc::new(SqliteStore::open(&dir.path().join("berth.db")).expect("store opens"));
    Arc::new(State::new(store, ACCOUNT.into(), KeyRing::default(), "http://127.0.0.1:1".into()))
}

fn call() -> Call {
    Call { region: "us-east-1".into(), principal: format!("arn:aws:iam::{ACCOUNT}:root") }
}

fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

/// Stores role `name` trusting `service`, as CreateRole would.
async fn put_role(state: &State, name: &str, service: &str) {
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Principal":{{"Service":"{service}"}},"Action":"sts:AssumeRole"}}}}"#
    );
    let role = serde_json::json!({
        "name": name, "id": "AROAEXAMPLE0000000001", "arn": role_arn(name), "path": "/",
        "createDate": "2026-12-01T00:00:00Z", "assumeRolePolicyDocument": trust, "description": null,
        "maxSessionDuration": 3600, "tags": [], "permissions": {"inline": {}, "attached": []}
    });
    let txn = Txn::new().put(format!("iam/role/{}", name.to_ascii_lowercase()), role.to_string(), Expect::Absent);
    state.store.commit(txn).await.expect("role stored");
}

fn definition(role: Option<String>) -> TaskDefinition {
    TaskDefinition { task_role_arn: role, ..Default::default() }
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
        let e = check(&state, &definition(Some(bad.clone())), None).await.expect_err("refused");
        assert_eq!(e.kind, ErrorKind::Client, "{bad}");
        assert!(e.message.starts_with(&format!("ECS was unable to assume the role '{bad}'")), "{}", e.message);
    }
    let overrides = TaskOverride { task_role_arn: Some(role_arn("vm")), ..Default::default() };
    check(&state, &definition(Some(role_arn("app"))), Some(&overrides)).await.expect_err("the override is checked");
}

/// Stores task `id` of cluster `c` placed on `instance`: as its container instance, or for a
/// Fargate task (`fargate`) as the pool instance that holds its reservation.
async fn put_task(state: &State, id: &str, role: Option<String>, instance: &str, status: &str, fargate: bool) {
    let task = Task {
        task_arn: Some(format!("arn:aws:ecs:us-east-1:{ACCOUNT}:task/c/{id}")),
        container_instance_arn: (!fargate).then(|| instance.into()),
        last_status: Some(status.into()),
        ..Default::default()
    };
    let stored = tasks::Stored {
        task,
        definition: definition(role),
        reservation: Default::default(),
        capacity: fargate.then(|| instance.into()),
        network: None,
    };
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
    put_task(&state, "t1", Some(role_arn("app")), INSTANCE, "RUNNING", false).await;
    put_task(&state, "t2", Some(role_arn("app")), INSTANCE, "STOPPED", false).await;
    put_task(&state, "t3", None, INSTANCE, "RUNNING", false).await;
    put_task(&state, "f1", Some(role_arn("app")), INSTANCE, "RUNNING", true).await;
    let creds = get_credentials(Arc::clone(&state), call(), request("t1", "abc123")).await.expect("credentials");
    assert_eq!(creds.role_arn, role_arn("app"));
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
