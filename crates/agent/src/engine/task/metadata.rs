//! What the task metadata endpoint v4 shows of a running task, published on every change
//! of its record.

use std::collections::BTreeMap;
use std::net::IpAddr;

use berth_api::model::{ContainerDefinition, NetworkMode};
use berth_runtime::network::Mode;

use super::Run;
use crate::endpoints::{ContainerMetadata, Limits, Network, TaskMetadata};
use crate::engine::spec;

fn iso(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn iso_secs(epoch: f64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis((epoch * 1000.0) as i64).map(iso)
}

impl Run {
    /// Publishes the task's metadata, address and tags to the task endpoints.
    pub(super) fn publish(&self) {
        let metadata = self.metadata();
        let network = self.record.network.as_ref();
        let own_address = network.filter(|n| matches!(n.mode, Mode::Bridge | Mode::Awsvpc));
        let address =
            own_address.and_then(|n| n.ipv4.as_deref()).and_then(|ip| ip.split('/').next()?.parse::<IpAddr>().ok());
        let tags = self.task.tags.clone().unwrap_or_default();
        self.shared.endpoints.update(&self.id, |v| {
            v.metadata = metadata;
            v.address = address;
            v.credentials_id.clone_from(&self.record.credentials_id);
            v.tags = tags;
        });
    }

    fn metadata(&self) -> TaskMetadata {
        let cpu = self.cpu.as_deref().and_then(|c| c.parse::<f64>().ok()).map(|units| units / 1024.0);
        let memory = self.memory.as_deref().and_then(|m| m.parse::<i64>().ok());
        TaskMetadata {
            cluster: self.task.cluster_arn.clone().unwrap_or_default(),
            task_arn: self.arn.clone(),
            family: self.def.family.clone().unwrap_or_default(),
            revision: self.def.revision.unwrap_or_default().to_string(),
            desired_status: self.desired_status.clone(),
            known_status: self.known_status.clone(),
            limits: (cpu.is_some() || memory.is_some()).then_some(Limits { cpu, memory }),
            pull_started_at: self.pull_started_at.and_then(iso_secs),
            pull_stopped_at: self.pull_stopped_at.and_then(iso_secs),
            availability_zone: self.task.availability_zone.clone().unwrap_or_default(),
            launch_type: self.task.launch_type.map_or("EC2", |l| l.as_str()).to_string(),
            containers: self.containers().iter().map(|c| self.container_metadata(c)).collect(),
            ephemeral_storage_metrics: None,
            task_tags: None,
        }
    }

    fn container_metadata(&self, c: &ContainerDefinition) -> ContainerMetadata {
        let name = c.name.clone().unwrap_or_default();
        let id = spec::container_id(&self.id, &name);
        let r = self.record.containers.get(&name).cloned().unwrap_or_default();
        let known = match (&r.exit, r.started) {
            (Some(_), _) => "STOPPED",
            (None, true) => "RUNNING",
            (None, false) => "PENDING",
        };
        let mut labels: BTreeMap<String, String> = c.docker_labels.clone().unwrap_or_default().into_iter().collect();
        for (k, v) in [
            ("cluster", self.task.cluster_arn.clone().unwrap_or_default()),
            ("container-name", name.clone()),
            ("task-arn", self.arn.clone()),
            ("task-definition-family", self.def.family.clone().unwrap_or_default()),
            ("task-definition-version", self.def.revision.unwrap_or_default().to_string()),
        ] {
            labels.insert(format!("com.amazonaws.ecs.{k}"), v);
        }
        let log = c.log_configuration.as_ref();
        let arn = self.task.containers.iter().flatten().find(|t| t.name.as_deref() == Some(&name));
        ContainerMetadata {
            docker_id: id.clone(),
            name,
            docker_name: id,
            image: c.image.clone().unwrap_or_default(),
            image_id: self.images.get(c.name.as_deref().unwrap_or_default()).map(|i| i.id.clone()).unwrap_or_default(),
            labels,
            desired_status: self.desired_status.clone(),
            known_status: known.to_string(),
            limits: Limits { cpu: Some(f64::from(c.cpu.unwrap_or(0))), memory: c.memory.map(i64::from) },
            created_at: r.created_at.clone(),
            started_at: r.started_at.clone(),
            finished_at: r.exit.as_ref().map(|e| iso(e.finished_at)),
            exit_code: r.exit.as_ref().and_then(|e| e.code),
            kind: "NORMAL".into(),
            log_driver: log.and_then(|l| l.log_driver).map(|d| d.as_str().to_string()),
            log_options: log.and_then(|l| l.options.clone()).map(|o| o.into_iter().collect()),
            container_arn: arn.and_then(|t| t.container_arn.clone()).unwrap_or_default(),
            networks: self.networks(),
            snapshotter: "overlayfs".into(),
        }
    }

    fn networks(&self) -> Vec<Network> {
        let Some(n) = self.record.network.as_ref() else { return Vec::new() };
        let awsvpc = self.mode() == NetworkMode::Awsvpc;
        vec![Network {
            network_mode: n.mode.as_str().to_string(),
            ipv4_addresses: n.ipv4.iter().filter_map(|ip| ip.split('/').next().map(String::from)).collect(),
            attachment_index: awsvpc.then_some(0),
            mac_address: n.mac.clone().filter(|_| awsvpc),
            ipv4_subnet_cidr_block: awsvpc.then(|| self.shared.networks.config().subnet.clone()),
            subnet_gateway_ipv4_address: n.gateway.clone().filter(|_| awsvpc),
        }]
    }
}
