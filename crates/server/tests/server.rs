//! The server end to end over real HTTP, signed by the AWS SDK's signer: typed calls,
//! authentication failures, concurrent registration, and a restart on the same data dir.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use berth_api::model::{
    ops, ContainerDefinition, CreateClusterRequest, DescribeTaskDefinitionRequest, ListClustersRequest,
    RegisterTaskDefinitionRequest,
};
use berth_client::{ClientError, EcsClient, Signer};
use berth_server::{Config, RunningServer};

async fn start(dir: &Path) -> RunningServer {
    let config = Config {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        account_id: "123456789012".into(),
        region: "us-east-1".into(),
        write_profile: false,
        services: Default::default(),
    };
    RunningServer::start(config).await.unwrap()
}

fn admin(dir: &Path) -> (String, String) {
    let creds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("admin-credentials.json")).unwrap()).unwrap();
    (creds["accessKeyId"].as_str().unwrap().into(), creds["secretAccessKey"].as_str().unwrap().into())
}

fn client(server: &RunningServer, key: &str, secret: &str) -> EcsClient {
    EcsClient::new(&server.endpoint, Signer::new(key, secret, "us-east-1"), 16).unwrap()
}

fn definition(family: &str) -> RegisterTaskDefinitionRequest {
    RegisterTaskDefinitionRequest {
        family: Some(family.into()),
        container_definitions: Some(vec![ContainerDefinition {
            name: Some("app".into()),
            image: Some("busybox".into()),
            memory: Some(64),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn api_error_type(e: ClientError) -> String {
    match e {
        ClientError::Api { error_type, .. } => error_type,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn registrations_survive_a_restart_and_revisions_continue() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let (key, secret) = admin(dir.path());
    let ecs = client(&server, &key, &secret);
    let created = ecs.call::<ops::CreateCluster>(&CreateClusterRequest::default()).await.unwrap();
    assert_eq!(created.cluster.unwrap().cluster_name.as_deref(), Some("default"));
    let first = ecs.call::<ops::RegisterTaskDefinition>(&definition("web")).await.unwrap();
    assert_eq!(first.task_definition.unwrap().revision, Some(1));
    server.stop().await.unwrap();

    let server = start(dir.path()).await;
    assert_eq!(admin(dir.path()), (key.clone(), secret.clone()), "the administrator key is kept");
    let ecs = client(&server, &key, &secret);
    let clusters = ecs.call::<ops::ListClusters>(&ListClustersRequest::default()).await.unwrap();
    assert_eq!(clusters.cluster_arns.unwrap(), vec!["arn:aws:ecs:us-east-1:123456789012:cluster/default"]);
    let second = ecs.call::<ops::RegisterTaskDefinition>(&definition("web")).await.unwrap();
    assert_eq!(second.task_definition.unwrap().revision, Some(2));
    let described = ecs
        .call::<ops::DescribeTaskDefinition>(&DescribeTaskDefinitionRequest {
            task_definition: Some("web:1".into()),
            include: None,
        })
        .await
        .unwrap();
    assert_eq!(described.task_definition.unwrap().family.as_deref(), Some("web"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_registrations_in_one_family_get_distinct_contiguous_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let (key, secret) = admin(dir.path());
    let ecs = Arc::new(client(&server, &key, &secret));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let ecs = Arc::clone(&ecs);
            tokio::spawn(async move {
                let out = ecs.call::<ops::RegisterTaskDefinition>(&definition("busy")).await.unwrap();
                out.task_definition.unwrap().revision.unwrap()
            })
        })
        .collect();
    let mut revisions = BTreeSet::new();
    for t in tasks {
        assert!(revisions.insert(t.await.unwrap()), "a revision was handed out twice");
    }
    assert_eq!(revisions, (1..=64).collect());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_credentials_get_the_aws_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let (key, _) = admin(dir.path());
    let wrong_secret = client(&server, &key, "not-the-secret");
    let e = wrong_secret.call::<ops::ListClusters>(&ListClustersRequest::default()).await.unwrap_err();
    assert_eq!(api_error_type(e), "InvalidSignatureException");
    let unknown = client(&server, "AKIAUNKNOWNUNKNOWN00", "x");
    let e = unknown.call::<ops::ListClusters>(&ListClustersRequest::default()).await.unwrap_err();
    assert_eq!(api_error_type(e), "UnrecognizedClientException");
    server.stop().await.unwrap();
}
