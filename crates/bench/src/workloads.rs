//! What each phase sends: request bodies and the [`Workload`]s that pick them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{Context, Result};
use bytes::Bytes;
use serde_json::{json, Value};

use crate::client::{Rng, Workload};

/// A realistic task definition (about 1.5 KB of JSON): a web container and a proxy sidecar,
/// with port mappings, environment, health checks and log configuration.
pub fn task_definition(family: &str, build: usize, account: &str, region: &str) -> Value {
    let log = |prefix: &str| {
        json!({
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": "/berth/bench/shop",
                "awslogs-region": region,
                "awslogs-stream-prefix": prefix
            }
        })
    };
    json!({
        "family": family,
        "taskRoleArn": format!("arn:aws:iam::{account}:role/shop-web-task"),
        "executionRoleArn": format!("arn:aws:iam::{account}:role/ecsTaskExecutionRole"),
        "networkMode": "bridge",
        "requiresCompatibilities": ["EC2"],
        "cpu": "512",
        "memory": "1024",
        "containerDefinitions": [
            {
                "name": "web",
                "image": format!("registry.internal:5000/shop/web:1.4.{build}"),
                "cpu": 384,
                "memory": 768,
                "essential": true,
                "portMappings": [
                    {"containerPort": 8080, "hostPort": 0, "protocol": "tcp"},
                    {"containerPort": 9090, "hostPort": 0, "protocol": "tcp"}
                ],
                "environment": [
                    {"name": "APP_ENV", "value": "production"},
                    {"name": "LOG_LEVEL", "value": "info"},
                    {"name": "DB_HOST", "value": "db.shop.internal"},
                    {"name": "DB_POOL_SIZE", "value": "16"},
                    {"name": "CACHE_URL", "value": "redis://cache.shop.internal:6379/0"},
                    {"name": "BUILD", "value": build.to_string()}
                ],
                "healthCheck": {
                    "command": ["CMD-SHELL", "wget -q -O /dev/null http://localhost:8080/healthz || exit 1"],
                    "interval": 30,
                    "timeout": 5,
                    "retries": 3,
                    "startPeriod": 15
                },
                "logConfiguration": log("web"),
                "ulimits": [{"name": "nofile", "softLimit": 4096, "hardLimit": 8192}],
                "dockerLabels": {"com.example.team": "shop", "com.example.tier": "frontend"}
            },
            {
                "name": "proxy",
                "image": "registry.internal:5000/shop/proxy:2.1.0",
                "cpu": 128,
                "memory": 256,
                "essential": true,
                "links": ["web"],
                "portMappings": [{"containerPort": 80, "hostPort": 0, "protocol": "tcp"}],
                "environment": [
                    {"name": "UPSTREAM", "value": "http://web:8080"},
                    {"name": "WORKERS", "value": "2"}
                ],
                "healthCheck": {
                    "command": ["CMD-SHELL", "wget -q -O /dev/null http://localhost/ready || exit 1"],
                    "interval": 15,
                    "timeout": 3,
                    "retries": 2
                },
                "logConfiguration": log("proxy")
            }
        ],
        "tags": [{"key": "team", "value": "shop"}, {"key": "bench", "value": "berth-bench"}]
    })
}

fn body(v: &Value) -> Bytes {
    Bytes::from(v.to_string())
}

/// Whether `haystack` contains `needle`: a cheap sanity check of a reply's shape.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Registers `total` revisions round-robin over `families`, and keeps the `family:revision`
/// of every one registered.
pub struct Register {
    families: Vec<String>,
    total: usize,
    account: String,
    region: String,
    issued: AtomicUsize,
    registered: Mutex<Vec<String>>,
}

impl Register {
    /// A workload of `total` registrations.
    pub fn new(families: Vec<String>, total: usize, account: &str, region: &str) -> Self {
        Self {
            families,
            total,
            account: account.to_string(),
            region: region.to_string(),
            issued: AtomicUsize::new(0),
            registered: Mutex::new(Vec::with_capacity(total)),
        }
    }

    /// The `family:revision` of every revision registered so far.
    pub fn registered(&self) -> Vec<String> {
        self.registered.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Workload for Register {
    fn next(&self, _rng: &mut Rng) -> Option<(&'static str, Bytes)> {
        let i = self.issued.fetch_add(1, Ordering::Relaxed);
        if i >= self.total {
            return None;
        }
        let family = &self.families[i % self.families.len()];
        Some(("RegisterTaskDefinition", body(&task_definition(family, i, &self.account, &self.region))))
    }

    fn accept(&self, reply: &[u8]) -> Result<()> {
        let v: Value = serde_json::from_slice(reply).context("reply is not JSON")?;
        let td = &v["taskDefinition"];
        let family = td["family"].as_str().context("reply has no taskDefinition.family")?;
        let revision = td["revision"].as_i64().context("reply has no taskDefinition.revision")?;
        if let Ok(mut r) = self.registered.lock() {
            r.push(format!("{family}:{revision}"));
        }
        Ok(())
    }
}

/// DescribeTaskDefinition of random registered revisions.
pub struct DescribeTaskDefinition {
    /// `family:revision` references to pick from.
    pub references: Vec<String>,
}

impl Workload for DescribeTaskDefinition {
    fn next(&self, rng: &mut Rng) -> Option<(&'static str, Bytes)> {
        let reference = self.references.get(rng.below(self.references.len().max(1)))?;
        Some(("DescribeTaskDefinition", body(&json!({ "taskDefinition": reference }))))
    }

    fn accept(&self, reply: &[u8]) -> Result<()> {
        anyhow::ensure!(contains(reply, b"\"taskDefinitionArn\""), "reply has no taskDefinitionArn");
        Ok(())
    }
}

/// ListTaskDefinitions: half with a random family's prefix, half the default first page;
/// independently, half sorted DESC.
pub struct ListTaskDefinitions {
    /// Families to use as prefixes.
    pub families: Vec<String>,
}

impl Workload for ListTaskDefinitions {
    fn next(&self, rng: &mut Rng) -> Option<(&'static str, Bytes)> {
        let mut req = json!({});
        if rng.coin() {
            req["familyPrefix"] = json!(self.families.get(rng.below(self.families.len().max(1)))?);
        }
        if rng.coin() {
            req["sort"] = json!("DESC");
        }
        Some(("ListTaskDefinitions", body(&req)))
    }

    fn accept(&self, reply: &[u8]) -> Result<()> {
        anyhow::ensure!(contains(reply, b"\"taskDefinitionArns\""), "reply has no taskDefinitionArns");
        Ok(())
    }
}

/// The CreateCluster request for one of the bench's clusters.
pub fn create_cluster(name: &str) -> Value {
    json!({
        "clusterName": name,
        "tags": [{"key": "team", "value": "shop"}, {"key": "bench", "value": "berth-bench"}],
        "settings": [{"name": "containerInsights", "value": "enabled"}]
    })
}

/// DescribeClusters of one to three random clusters; half the time with
/// `include: [SETTINGS, TAGS, STATISTICS]`.
pub struct DescribeClusters {
    /// Cluster names to pick from.
    pub names: Vec<String>,
}

impl Workload for DescribeClusters {
    fn next(&self, rng: &mut Rng) -> Option<(&'static str, Bytes)> {
        let n = self.names.len();
        if n == 0 {
            return None;
        }
        // Consecutive names from a random start, so that no name repeats in one call.
        let (first, count) = (rng.below(n), 1 + rng.below(3.min(n)));
        let clusters: Vec<_> = (0..count).map(|k| &self.names[(first + k) % n]).collect();
        let mut req = json!({ "clusters": clusters });
        if rng.coin() {
            req["include"] = json!(["SETTINGS", "TAGS", "STATISTICS"]);
        }
        Some(("DescribeClusters", body(&req)))
    }

    fn accept(&self, reply: &[u8]) -> Result<()> {
        anyhow::ensure!(contains(reply, b"\"clusterArn\""), "reply has no clusterArn");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_definition_is_about_one_and_a_half_kb() {
        let len = task_definition("bench-0123abcd-042", 9_999, "123456789012", "us-east-1").to_string().len();
        assert!((1_300..=1_900).contains(&len), "{len} bytes");
    }

    #[test]
    fn register_issues_exactly_total_round_robin() {
        let w = Register::new(vec!["a".into(), "b".into()], 3, "123456789012", "us-east-1");
        let mut rng = Rng::new(0);
        let families: Vec<_> = std::iter::from_fn(|| w.next(&mut rng))
            .map(|(_, b)| serde_json::from_slice::<Value>(&b).unwrap()["family"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(families, ["a", "b", "a"]);
        w.accept(br#"{"taskDefinition":{"family":"a","revision":7}}"#).unwrap();
        assert!(w.accept(br#"{"taskDefinition":{}}"#).is_err());
        assert_eq!(w.registered(), ["a:7"]);
    }

    #[test]
    fn describe_clusters_picks_distinct_names() {
        let w = DescribeClusters { names: (0..10).map(|i| format!("c{i}")).collect() };
        let mut rng = Rng::new(1);
        for _ in 0..200 {
            let (_, b) = w.next(&mut rng).unwrap();
            let v: Value = serde_json::from_slice(&b).unwrap();
            let mut names: Vec<_> = v["clusters"].as_array().unwrap().iter().map(|n| n.to_string()).collect();
            assert!((1..=3).contains(&names.len()));
            names.dedup();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), v["clusters"].as_array().unwrap().len());
        }
    }

    #[test]
    fn list_mixes_prefix_and_sort() {
        let w = ListTaskDefinitions { families: vec!["f".into()] };
        let mut rng = Rng::new(2);
        let reqs: Vec<Value> =
            (0..200).map(|_| serde_json::from_slice(&w.next(&mut rng).unwrap().1).unwrap()).collect();
        assert!(reqs.iter().any(|r| r.get("familyPrefix").is_some()));
        assert!(reqs.iter().any(|r| r.get("familyPrefix").is_none()));
        assert!(reqs.iter().any(|r| r["sort"] == "DESC"));
        assert!(reqs.iter().any(|r| r.get("sort").is_none()));
    }
}
