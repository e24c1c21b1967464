//! Authorization against a real store: the root bypass, users' policies, the cache and
//! its invalidation. `authorization_cost` is the figure in docs/PERFORMANCE.md.

use std::sync::Arc;
use std::time::Instant;

use berth_store::SqliteStore;

use super::entities::{self, Entity, Permissions, User};
use super::{ecs, Iam};
use crate::credentials::KeyRing;
use crate::state::{Call, State};

const ACCOUNT: &str = "123456789012";

fn state(dir: &tempfile::TempDir) -> Arc<State> {
    let store = Arc::new(SqliteStore::open(&dir.path().join("berth.db")).expect("store opens"));
    Arc::new(State::new(store, ACCOUNT.into(), KeyRing::default(), "http://127.0.0.1:1".into()))
}

async fn put_user(state: &State, name: &str, inline: &[&str]) -> Call {
    let arn = entities::arn(ACCOUNT, "user", "/", name);
    let permissions = Permissions {
        inline: inline.iter().enumerate().map(|(i, d)| (format!("p{i}"), (*d).to_owned())).collect(),
        attached: Vec::new(),
    };
    let user = User {
        name: name.into(),
        id: entities::new_id("AIDA"),
        arn: arn.clone(),
        path: "/".into(),
        create_date: entities::iso_now(),
        tags: Vec::new(),
        permissions,
    };
    let key = User::key(name);
    if crate::records::get::<User>(&*state.store, &key).await.expect("read").is_some() {
        entities::update::<User>(
            &*state.store,
            &key,
            || User::missing(name),
            |u| {
                u.permissions = user.permissions.clone();
                Ok(())
            },
        )
        .await
        .expect("update");
    } else {
        entities::create(&*state.store, &key, &user, || User::missing(name)).await.expect("create");
    }
    state.iam.authorizer.invalidate();
    Call { region: "us-east-1".into(), principal: arn }
}

const DELETE_CLUSTER: &str = "AmazonEC2ContainerServiceV20141113.DeleteCluster";
const LIST_CLUSTERS: &str = "AmazonEC2ContainerServiceV20141113.ListClusters";
const LIST_ONLY: &str =
    r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecs:ListClusters","Resource":"*"}}"#;

#[tokio::test]
async fn root_is_allowed_and_users_get_their_policies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state(&dir);
    let root = Call { region: "us-east-1".into(), principal: Iam::new(ACCOUNT).root_arn };
    assert!(ecs::authorize(&state, &root, "ecs", DELETE_CLUSTER, br#"{"cluster":"x"}"#).await.is_ok());

    let bob = put_user(&state, "bob", &[LIST_ONLY]).await;
    assert!(ecs::authorize(&state, &bob, "ecs", LIST_CLUSTERS, b"{}").await.is_ok());
    let denied = ecs::authorize(&state, &bob, "ecs", DELETE_CLUSTER, br#"{"cluster":"x"}"#).await.expect_err("denied");
    assert_eq!(denied.kind, berth_api::ErrorKind::AccessDenied);
    assert_eq!(
        denied.message,
        "User: arn:aws:iam::123456789012:user/bob is not authorized to perform: ecs:DeleteCluster on resource: \
         arn:aws:ecs:us-east-1:123456789012:cluster/x because no identity-based policy allows the ecs:DeleteCluster action"
    );

    // A policy change is seen by the next call: the cache was invalidated.
    put_user(&state, "bob", &[]).await;
    assert!(ecs::authorize(&state, &bob, "ecs", LIST_CLUSTERS, b"{}").await.is_err());

    let nobody = Call { region: "us-east-1".into(), principal: "arn:aws:iam::999999999999:user/x".into() };
    assert!(ecs::authorize(&state, &nobody, "ecs", LIST_CLUSTERS, b"{}").await.is_err());
}

/// Prints the cost of authorizing one ECS call: root, and a user with a cached policy set.
/// `cargo test -p berth-server --release authorization_cost -- --ignored --nocapture`
#[tokio::test]
#[ignore = "a benchmark: prints figures"]
async fn authorization_cost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = state(&dir);
    let many: Vec<String> = (0..20)
        .map(|i| {
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":["ecs:Describe*","ecs:List*"],"Resource":"arn:aws:ecs:*:*:cluster/team{i}-*"}},{{"Effect":"Deny","Action":"ecs:Delete*","Resource":"*","Condition":{{"StringLike":{{"ecs:cluster":"*prod*"}}}}}}]}}"#
            )
        })
        .collect();
    let docs: Vec<&str> = many.iter().map(String::as_str).collect();
    let root = Call { region: "us-east-1".into(), principal: state.iam.root_arn.clone() };
    let user = put_user(&state, "bench", &docs[..9]).await;
    let body = br#"{"clusters":["team3-a","team7-b"]}"#;
    let target = "AmazonEC2ContainerServiceV20141113.DescribeClusters";
    for (label, call) in [("root (no evaluation)", &root), ("user, 9 policies / 18 statements, cached", &user)] {
        let n = 200_000u32;
        let start = Instant::now();
        for _ in 0..n {
            assert!(ecs::authorize(&state, call, "ecs", target, body).await.is_ok());
        }
        let per = start.elapsed() / n;
        println!("authorize DescribeClusters (2 clusters) as {label}: {per:?} per call");
    }
}
