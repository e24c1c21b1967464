//! ECS resource ARNs: `arn:aws:ecs:REGION:ACCOUNT:TYPE/ID`.

use std::fmt;

/// The ECS resource types berth names in ARNs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// `cluster/NAME`
    Cluster,
    /// `task-definition/FAMILY:REVISION`
    TaskDefinition,
    /// `container-instance/CLUSTER/ID`
    ContainerInstance,
    /// `task/CLUSTER/ID`
    Task,
    /// `service/CLUSTER/NAME`
    Service,
    /// `capacity-provider/NAME`
    CapacityProvider,
    /// `task-set/CLUSTER/SERVICE/ID`
    TaskSet,
    /// `container/CLUSTER/TASK/ID`
    Container,
    /// `service-deployment/CLUSTER/SERVICE/ID`
    ServiceDeployment,
    /// `service-revision/CLUSTER/SERVICE/ID`
    ServiceRevision,
}

impl ResourceKind {
    /// The resource type as it appears in the ARN.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Cluster => "cluster",
            Self::TaskDefinition => "task-definition",
            Self::ContainerInstance => "container-instance",
            Self::Task => "task",
            Self::Service => "service",
            Self::CapacityProvider => "capacity-provider",
            Self::TaskSet => "task-set",
            Self::Container => "container",
            Self::ServiceDeployment => "service-deployment",
            Self::ServiceRevision => "service-revision",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Self::Cluster,
            Self::TaskDefinition,
            Self::ContainerInstance,
            Self::Task,
            Self::Service,
            Self::CapacityProvider,
            Self::TaskSet,
            Self::Container,
            Self::ServiceDeployment,
            Self::ServiceRevision,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A parsed ECS ARN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Arn {
    /// The region part.
    pub region: String,
    /// The account part.
    pub account: String,
    /// The resource type.
    pub kind: ResourceKind,
    /// Everything after `TYPE/`.
    pub id: String,
}

impl Arn {
    /// An ARN for `kind` with resource id `id`.
    pub fn new(region: &str, account: &str, kind: ResourceKind, id: impl Into<String>) -> Self {
        Self { region: region.to_string(), account: account.to_string(), kind, id: id.into() }
    }

    /// Parses `arn:aws:ecs:REGION:ACCOUNT:TYPE/ID`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.splitn(6, ':');
        let (arn, partition, service) = (parts.next()?, parts.next()?, parts.next()?);
        if arn != "arn" || !partition.starts_with("aws") || service != "ecs" {
            return None;
        }
        let (region, account, resource) = (parts.next()?, parts.next()?, parts.next()?);
        let (kind, id) = resource.split_once('/')?;
        if region.is_empty() || account.is_empty() || id.is_empty() {
            return None;
        }
        Some(Self::new(region, account, ResourceKind::parse(kind)?, id))
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "arn:aws:ecs:{}:{}:{}/{}", self.region, self.account, self.kind.as_str(), self.id)
    }
}

/// The id a request means by `ident`: the last path segment of an ARN, or `ident` itself.
pub fn resource_id(ident: &str) -> &str {
    match ident.strip_prefix("arn:") {
        Some(_) => ident.rsplit('/').next().unwrap_or(ident),
        None => ident,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for s in [
            "arn:aws:ecs:us-east-1:123456789012:cluster/default",
            "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:3",
            "arn:aws:ecs:us-east-1:123456789012:task/default/0123456789abcdef",
            "arn:aws:ecs:us-east-1:123456789012:service-deployment/web/api/r9i43YFjvgF_xlg7m2eJ1r",
            "arn:aws:ecs:us-east-1:123456789012:service-revision/web/api/4980306466373577095",
        ] {
            assert_eq!(Arn::parse(s).map(|a| a.to_string()).as_deref(), Some(s));
        }
    }

    #[test]
    fn resource_ids_come_from_arns_or_stand_alone() {
        assert_eq!(resource_id("arn:aws:ecs:us-east-1:1:task/c/abc"), "abc");
        assert_eq!(resource_id("abc"), "abc");
    }

    #[test]
    fn rejects_non_ecs() {
        for s in [
            "",
            "arn:aws:s3:::bucket",
            "arn:aws:ecs:us-east-1:1:widget/x",
            "arn:aws:ecs:us-east-1:1:cluster/",
            "cluster/x",
        ] {
            assert_eq!(Arn::parse(s), None, "{s}");
        }
    }
}
