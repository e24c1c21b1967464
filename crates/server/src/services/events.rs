//! Service events as ECS words them: newest first, the 100 latest kept, and a message equal
//! to the newest one not repeated (ECS suppresses duplicates until the cause changes).

use berth_api::model::{Service, ServiceEvent};

use crate::state::now;

/// ECS keeps this many events per service.
const MAX_EVENTS: usize = 100;

/// Adds `message` as the newest event of `service`, unless it repeats the newest one.
pub fn push(service: &mut Service, message: String) {
    let events = service.events.get_or_insert_with(Vec::new);
    if events.first().and_then(|e| e.message.as_deref()) == Some(message.as_str()) {
        return;
    }
    let event =
        ServiceEvent { id: Some(uuid::Uuid::new_v4().to_string()), created_at: Some(now()), message: Some(message) };
    events.insert(0, event);
    events.truncate(MAX_EVENTS);
}

/// `(service NAME) has started N tasks: (task ID) (task ID).`
pub fn started(service: &str, task_ids: &[String]) -> String {
    format!("(service {service}) has started {} tasks: {}.", task_ids.len(), listed("task", task_ids))
}

/// `(service NAME) has stopped N running tasks: (task ID).`
pub fn stopped(service: &str, task_ids: &[String]) -> String {
    format!("(service {service}) has stopped {} running tasks: {}.", task_ids.len(), listed("task", task_ids))
}

/// `(service NAME) has reached a steady state.`
pub fn steady(service: &str) -> String {
    format!("(service {service}) has reached a steady state.")
}

/// `(service NAME) (deployment ID) deployment completed.`
pub fn deployment_completed(service: &str, deployment: &str) -> String {
    format!("(service {service}) (deployment {deployment}) deployment completed.")
}

/// `(service NAME) (deployment ID) deployment failed: tasks failed to start.`
pub fn deployment_failed(service: &str, deployment: &str) -> String {
    format!("(service {service}) (deployment {deployment}) deployment failed: tasks failed to start.")
}

/// `(service NAME) rolling back to deployment ID.`
pub fn rolling_back(service: &str, deployment: &str) -> String {
    format!("(service {service}) rolling back to deployment {deployment}.")
}

/// `(service NAME) (task ID) failed container health checks.`
pub fn unhealthy(service: &str, task_id: &str) -> String {
    format!("(service {service}) (task {task_id}) failed container health checks.")
}

/// The crash-loop event, once per episode of back-off.
pub fn throttled(service: &str) -> String {
    format!(
        "(service {service}) is unable to consistently start tasks successfully. For more information, see the Troubleshooting section of the Amazon ECS Developer Guide."
    )
}

/// A placement that found no instance, with ECS's reason for the closest match.
pub fn unplaceable(service: &str, instance_id: Option<&str>, reason: &str) -> String {
    let head = format!(
        "(service {service}) was unable to place a task because no container instance met all of its requirements."
    );
    let tail = "For more information, see the Troubleshooting section of the Amazon ECS Developer Guide.";
    match instance_id {
        None => format!("{head} Reason: {reason}"),
        Some(id) => {
            let why = match reason {
                "RESOURCE:MEMORY" => "has insufficient memory available.".to_string(),
                "RESOURCE:CPU" => "has insufficient CPU units available.".to_string(),
                r if r.starts_with("RESOURCE:PORTS") => "is already using a port required by your task.".to_string(),
                r => format!("encountered error \"{r}\"."),
            };
            format!("{head} The closest matching (container-instance {id}) {why} {tail}")
        }
    }
}

fn listed(kind: &str, ids: &[String]) -> String {
    ids.iter().map(|id| format!("({kind} {id})")).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_capped_and_without_repeats() {
        let mut s = Service::default();
        for i in 0..120 {
            push(&mut s, format!("m{i}"));
        }
        push(&mut s, "m119".into());
        let events = s.events.unwrap_or_default();
        assert_eq!(events.len(), 100);
        assert_eq!(events[0].message.as_deref(), Some("m119"));
        assert_eq!(events[99].message.as_deref(), Some("m20"));
    }

    #[test]
    fn messages_read_like_ecs() {
        assert_eq!(started("web", &["a".into(), "b".into()]), "(service web) has started 2 tasks: (task a) (task b).");
        assert_eq!(steady("web"), "(service web) has reached a steady state.");
        assert_eq!(
            deployment_failed("web", "ecs-svc/1"),
            "(service web) (deployment ecs-svc/1) deployment failed: tasks failed to start."
        );
        assert!(unplaceable("web", Some("i1"), "RESOURCE:MEMORY")
            .contains("(container-instance i1) has insufficient memory"));
    }
}
