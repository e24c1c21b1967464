//! ListServiceDeployments, DescribeServiceDeployments, DescribeServiceRevisions and
//! StopServiceDeployment, answered from each service's [`History`](super::history::History).

use std::collections::hash_map::Entry as Slot;
use std::collections::HashMap;
use std::sync::Arc;

use berth_api::model::{
    DescribeServiceDeploymentsRequest, DescribeServiceDeploymentsResponse, DescribeServiceRevisionsRequest,
    DescribeServiceRevisionsResponse, Failure, ListServiceDeploymentsRequest, ListServiceDeploymentsResponse,
    ServiceDeploymentStatus, StopServiceDeploymentRequest, StopServiceDeploymentResponse,
    StopServiceDeploymentStopType,
};
use berth_api::{ApiError, Arn, ErrorKind, ResourceKind};

use super::history::{self, Entry};
use super::{controller, key, name_of, not_found, Stored, ACTIVE};
use crate::clusters;
use crate::pagination::Page;
use crate::records::{self, Decision};
use crate::state::{Call, State};

/// The most ARNs one Describe call takes.
const DESCRIBE_MAX: usize = 20;
/// Why a stop request rolls back, as the new deployment's rollout reason gives it.
const STOP_REQUESTED: &str = "Service deployment stopped by StopServiceDeployment";

/// `(cluster, service, id)` of `arn:aws:ecs:R:A:KIND/CLUSTER/SERVICE/ID`.
fn parse(arn: &str, kind: ResourceKind) -> Option<(String, String, String)> {
    let arn = Arn::parse(arn).filter(|a| a.kind == kind)?;
    let mut parts = arn.id.split('/');
    let (cluster, service, id) = (parts.next()?, parts.next()?, parts.next()?);
    let valid = parts.next().is_none() && ![cluster, service, id].contains(&"");
    valid.then(|| (cluster.to_string(), service.to_string(), id.to_string()))
}

fn deployment_not_found() -> ApiError {
    ApiError::new(ErrorKind::ServiceDeploymentNotFound, "The service deployment does not exist.")
}

fn status_name(status: ServiceDeploymentStatus) -> String {
    serde_json::to_value(status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// ListServiceDeployments: the service's deployments, newest first, by status and creation time.
pub async fn list_deployments(
    state: Arc<State>,
    _call: Call,
    req: ListServiceDeploymentsRequest,
) -> Result<ListServiceDeploymentsResponse, ApiError> {
    let cluster = clusters::require_active_name(&state, req.cluster.as_deref()).await?;
    let ident = req.service.filter(|s| !s.is_empty()).ok_or_else(|| ApiError::invalid("service is required."))?;
    let page = Page::from_request(req.max_results.or(Some(20)), req.next_token.as_deref(), 100)?;
    let stored = records::get::<Stored>(&*state.store, &key(&cluster, name_of(&ident))).await?.ok_or_else(not_found)?.0;
    let statuses = req.status.unwrap_or_default();
    let (before, after) = req.created_at.map_or((None, None), |c| (c.before, c.after));
    let wanted = |e: &&Entry| {
        (statuses.is_empty() || statuses.contains(&e.status))
            && before.is_none_or(|b| e.created_at < b)
            && after.is_none_or(|a| e.created_at > a)
    };
    let matching: Vec<&Entry> = stored.history.deployments.iter().filter(wanted).collect();
    let start = match &page.after {
        None => 0,
        Some(id) => {
            matching.iter().position(|e| &e.id == id).ok_or_else(|| ApiError::invalid("nextToken is not valid."))? + 1
        }
    };
    let shown: Vec<&Entry> = matching.iter().skip(start).take(page.size).copied().collect();
    let more = matching.len() > start + shown.len();
    let next_token = if more { page.next_token(shown.len(), shown.last().map(|e| e.id.as_str())) } else { None };
    let items = shown.iter().map(|e| history::brief(&stored.service, e)).collect();
    Ok(ListServiceDeploymentsResponse { service_deployments: Some(items), next_token })
}

/// The stored services the ARNs name, read once each; `None` for the ones that are not there.
async fn services_of(
    state: &State,
    arns: &[String],
    kind: ResourceKind,
) -> Result<HashMap<String, Option<Stored>>, ApiError> {
    let mut services = HashMap::new();
    for (cluster, service, _) in arns.iter().filter_map(|a| parse(a, kind)) {
        let k = key(&cluster, &service);
        if let Slot::Vacant(slot) = services.entry(k.clone()) {
            slot.insert(records::get::<Stored>(&*state.store, &k).await?.map(|(s, _)| s));
        }
    }
    Ok(services)
}

fn check_count(arns: &[String], member: &str) -> Result<(), ApiError> {
    if arns.is_empty() || arns.len() > DESCRIBE_MAX {
        return Err(ApiError::invalid(format!("{member} must name 1 to {DESCRIBE_MAX} ARNs.")));
    }
    Ok(())
}

/// Answers each ARN through `found` (the service and the id), or a MISSING failure.
async fn describe_each<T>(
    state: &State,
    arns: Vec<String>,
    kind: ResourceKind,
    mut found: impl FnMut(&Stored, &str) -> Option<T>,
) -> Result<(Vec<T>, Vec<Failure>), ApiError> {
    let services = services_of(state, &arns, kind).await?;
    let (mut items, mut failures) = (Vec::new(), Vec::new());
    for arn in arns {
        let item = parse(&arn, kind).and_then(|(cluster, service, id)| {
            let stored = services.get(&key(&cluster, &service))?.as_ref()?;
            found(stored, &id)
        });
        match item {
            Some(item) => items.push(item),
            None => failures.push(Failure { arn: Some(arn), reason: Some("MISSING".into()), detail: None }),
        }
    }
    Ok((items, failures))
}

/// DescribeServiceDeployments: up to 20 by ARN, MISSING failures for the unknown ones.
pub async fn describe_deployments(
    state: Arc<State>,
    _call: Call,
    req: DescribeServiceDeploymentsRequest,
) -> Result<DescribeServiceDeploymentsResponse, ApiError> {
    let arns = req.service_deployment_arns.unwrap_or_default();
    check_count(&arns, "serviceDeploymentArns")?;
    let (items, failures) = describe_each(&state, arns, ResourceKind::ServiceDeployment, |s, id| {
        let e = s.history.deployments.iter().find(|e| e.id == id)?;
        Some(history::full(&s.service, &s.history, e))
    })
    .await?;
    Ok(DescribeServiceDeploymentsResponse { service_deployments: Some(items), failures: Some(failures) })
}

/// DescribeServiceRevisions: up to 20 by ARN, MISSING failures for the unknown ones.
pub async fn describe_revisions(
    state: Arc<State>,
    _call: Call,
    req: DescribeServiceRevisionsRequest,
) -> Result<DescribeServiceRevisionsResponse, ApiError> {
    let arns = req.service_revision_arns.unwrap_or_default();
    check_count(&arns, "serviceRevisionArns")?;
    let (items, failures) = describe_each(&state, arns, ResourceKind::ServiceRevision, |s, id| {
        s.history.revisions.iter().find(|r| r.id == id).map(|r| history::revision(&s.service, r))
    })
    .await?;
    Ok(DescribeServiceRevisionsResponse { service_revisions: Some(items), failures: Some(failures) })
}

/// StopServiceDeployment: rolls an in-progress deployment back to the last completed one
/// (ROLLBACK, the only stop type ECS offers); a stop already under way is answered as is.
pub async fn stop_deployment(
    state: Arc<State>,
    _call: Call,
    req: StopServiceDeploymentRequest,
) -> Result<StopServiceDeploymentResponse, ApiError> {
    let arn = req.service_deployment_arn.unwrap_or_default();
    if req.stop_type == Some(StopServiceDeploymentStopType::Abort) {
        return Err(ApiError::invalid("stopType ABORT is not supported; the valid value is ROLLBACK."));
    }
    let (cluster, service, id) = parse(&arn, ResourceKind::ServiceDeployment)
        .ok_or_else(|| ApiError::invalid(format!("serviceDeploymentArn {arn:?} is not a service deployment ARN.")))?;
    records::update(&*state.store, &key(&cluster, &service), |current: Option<Stored>| {
        let mut stored = current.ok_or_else(deployment_not_found)?;
        let entry = stored.history.deployments.iter().find(|e| e.id == id).ok_or_else(deployment_not_found)?;
        let underway = matches!(
            entry.status,
            ServiceDeploymentStatus::StopRequested
                | ServiceDeploymentStatus::RollbackRequested
                | ServiceDeploymentStatus::RollbackInProgress
        );
        if underway {
            return Ok(Decision::Keep(()));
        }
        if !history::is_stoppable(entry.status) || stored.service.status.as_deref() != Some(ACTIVE) {
            return Err(ApiError::new(
                ErrorKind::Conflict,
                format!("The service deployment is {} and cannot be stopped.", status_name(entry.status)),
            ));
        }
        let deployment = entry.deployment.clone();
        let target = stored.control.last_completed.clone().filter(|d| d.id.as_deref() != Some(deployment.as_str()));
        let target = target.ok_or_else(|| {
            ApiError::new(ErrorKind::Conflict, "The service has no earlier service revision to roll back to.")
        })?;
        let name = stored.service.service_name.clone().unwrap_or_default();
        controller::roll_back(&mut stored, &name, &target, STOP_REQUESTED);
        stored.sync_history();
        Ok(Decision::Write(stored, ()))
    })
    .await?;
    controller::wake(&state);
    Ok(StopServiceDeploymentResponse { service_deployment_arn: Some(arn) })
}

#[cfg(test)]
mod tests {
    use super::{parse, ResourceKind};

    #[test]
    fn arns_name_cluster_service_and_id() {
        let arn = "arn:aws:ecs:us-east-1:123456789012:service-deployment/web/api/r9i43YFjvgF_xlg7m2eJ1r";
        assert_eq!(
            parse(arn, ResourceKind::ServiceDeployment),
            Some(("web".into(), "api".into(), "r9i43YFjvgF_xlg7m2eJ1r".into()))
        );
        assert_eq!(parse(arn, ResourceKind::ServiceRevision), None);
        for bad in
            ["", "arn:aws:ecs:us-east-1:1:service-deployment/web/api", "arn:aws:ecs:r:1:service-deployment/a/b/c/d"]
        {
            assert_eq!(parse(bad, ResourceKind::ServiceDeployment), None, "{bad}");
        }
    }
}
