//! Secrets on a real store: versions and labels, ids, scheduled deletion, and
//! GetTaskSecrets authorized as the task's execution role.

use std::sync::Arc;

use berth_api::agent::GetTaskSecretsRequest;
use berth_api::model::{ContainerDefinition, CreateClusterRequest, RepositoryCredentials, Secret, TaskDefinition};
use berth_api::secrets_model::{
    CreateSecretRequest, DeleteSecretRequest, GetSecretValueRequest, PutSecretValueRequest,
};
use berth_api::ErrorKind;

use super::{api, candidates, task};
use crate::records;
use crate::state::{Call, State};
use crate::task_roles::tests::{call, put_role_with_policy, put_task, state, ACCOUNT, INSTANCE};

async fn create(state: &Arc<State>, name: &str, value: &str) -> String {
    let req = CreateSecretRequest { name: Some(name.into()), secret_string: Some(value.into()), ..Default::default() };
    api::create(Arc::clone(state), call(), req).await.expect("created").arn.expect("an ARN")
}

async fn get(state: &Arc<State>, id: &str, stage: Option<&str>) -> Result<String, berth_api::ApiError> {
    let req = GetSecretValueRequest {
        secret_id: Some(id.into()),
        version_stage: stage.map(Into::into),
        ..Default::default()
    };
    Ok(api::get_value(Arc::clone(state), call(), req).await?.secret_string.unwrap_or_default())
}

#[test]
fn ids_name_candidates_most_specific_first() {
    assert_eq!(candidates("db"), ["db"]);
    assert_eq!(candidates("arn:aws:secretsmanager:r:1:secret:app/db-AbCdEf"), ["app/db", "app/db-AbCdEf"]);
    assert_eq!(candidates("arn:aws:secretsmanager:r:1:secret:db"), ["db"]);
}

#[tokio::test]
async fn values_rotate_through_current_and_previous() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state(&dir);
    let arn = create(&state, "db", "v1").await;
    for value in ["v2", "v3"] {
        let req = PutSecretValueRequest {
            secret_id: Some(arn.clone()),
            secret_string: Some(value.into()),
            ..Default::default()
        };
        api::put_value(Arc::clone(&state), call(), req).await.expect("put");
    }
    assert_eq!(get(&state, "db", None).await.expect("current"), "v3");
    assert_eq!(get(&state, &arn, Some("AWSPREVIOUS")).await.expect("previous"), "v2");
    let (secret, _) = super::find(&state, "db").await.expect("found");
    assert_eq!(secret.versions.len(), 2, "v1, left without a label, is dropped");
    let e = get(&state, &format!("{arn}x"), None).await.expect_err("another ARN");
    assert_eq!(e.kind, ErrorKind::ResourceNotFound);
}

#[tokio::test]
async fn a_lapsed_deletion_frees_the_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state(&dir);
    create(&state, "old", "v").await;
    let del = DeleteSecretRequest { secret_id: Some("old".into()), ..Default::default() };
    api::delete(Arc::clone(&state), call(), del).await.expect("scheduled");
    assert_eq!(get(&state, "old", None).await.expect_err("scheduled").kind, ErrorKind::InvalidRequest);
    records::update::<super::SecretRecord, _>(&*state.store, &super::key("old"), |s| {
        let mut s = s.expect("stored");
        s.deletion_date = Some(super::now() - 1.0);
        Ok(records::Decision::Write(s, ()))
    })
    .await
    .expect("aged");
    assert_eq!(get(&state, "old", None).await.expect_err("gone").kind, ErrorKind::ResourceNotFound);
    create(&state, "old", "new").await;
    assert_eq!(get(&state, "old", None).await.expect("recreated"), "new");
}

/// Stores task `id` on the instance, running `containers` with execution role `role`.
async fn put_secret_task(state: &State, id: &str, role: &str, containers: Vec<ContainerDefinition>) {
    let definition = TaskDefinition {
        execution_role_arn: Some(format!("arn:aws:iam::{ACCOUNT}:role/{role}")),
        container_definitions: Some(containers),
        ..Default::default()
    };
    put_task(state, id, definition, INSTANCE, "PENDING", false).await;
}

fn request(task: &str) -> GetTaskSecretsRequest {
    GetTaskSecretsRequest {
        cluster: Some("c".into()),
        container_instance: Some("abc123".into()),
        task: Some(task.into()),
    }
}

#[tokio::test]
async fn task_secrets_are_read_as_the_execution_role() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state(&dir);
    let cluster = CreateClusterRequest { cluster_name: Some("c".into()), ..Default::default() };
    crate::clusters::create(Arc::clone(&state), call(), cluster).await.expect("cluster");
    let db = create(&state, "app/db", r#"{"password":"pw","port":5432}"#).await;
    create(&state, "app/login", r#"{"username":"u","password":"p"}"#).await;
    let other = create(&state, "other/token", "t").await;
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"arn:aws:secretsmanager:*:*:secret:app/*"}]}"#;
    put_role_with_policy(&state, "reader", "ecs-tasks.amazonaws.com", Some(policy)).await;
    let secret = |name: &str, value_from: String| Secret { name: Some(name.into()), value_from: Some(value_from) };
    let app = ContainerDefinition {
        name: Some("app".into()),
        secrets: Some(vec![secret("PW", format!("{db}:password::")), secret("PORT", format!("{db}:port::"))]),
        repository_credentials: Some(RepositoryCredentials { credentials_parameter: Some("app/login".into()) }),
        ..Default::default()
    };
    let plain = ContainerDefinition { name: Some("plain".into()), ..Default::default() };
    put_secret_task(&state, "t1", "reader", vec![app.clone(), plain]).await;
    let out = task::get(Arc::clone(&state), call(), request("t1")).await.expect("resolved");
    assert_eq!(out.containers.len(), 1, "only containers that have secrets: {out:?}");
    let c = &out.containers[0];
    assert_eq!(c.environment, [("PW".to_string(), "pw".to_string()), ("PORT".to_string(), "5432".to_string())]);
    assert_eq!(c.registry_credentials, Some(("u".to_string(), "p".to_string())));
    assert!(!format!("{out:?}").contains("pw"), "Debug never shows values");

    let denied = ContainerDefinition { secrets: Some(vec![secret("T", other.clone())]), ..app.clone() };
    put_secret_task(&state, "t2", "reader", vec![denied]).await;
    let e = task::get(Arc::clone(&state), call(), request("t2")).await.expect_err("not allowed");
    assert_eq!(e.kind, ErrorKind::AccessDenied);
    assert!(e.message.contains(&format!("failed to fetch secret {other}")), "{}", e.message);
    assert!(e.message.contains("assumed-role/reader/t2"), "{}", e.message);

    let missing_key = ContainerDefinition { secrets: Some(vec![secret("X", format!("{db}:nope::"))]), ..app.clone() };
    put_secret_task(&state, "t3", "reader", vec![missing_key]).await;
    let e = task::get(Arc::clone(&state), call(), request("t3")).await.expect_err("no such key");
    assert!(e.message.contains("did not contain json key nope"), "{}", e.message);

    let ssm =
        ContainerDefinition { secrets: Some(vec![secret("P", "arn:aws:ssm:us-east-1:1:parameter/p".into())]), ..app };
    put_secret_task(&state, "t4", "reader", vec![ssm]).await;
    let e = task::get(Arc::clone(&state), call(), request("t4")).await.expect_err("ssm");
    assert_eq!(e.kind, ErrorKind::UnsupportedFeature);

    let session = Call { principal: format!("arn:aws:sts::{ACCOUNT}:assumed-role/reader/t1"), ..call() };
    let e = task::get(Arc::clone(&state), session, request("t1")).await.expect_err("a role session");
    assert_eq!(e.kind, ErrorKind::AccessDenied);
}
