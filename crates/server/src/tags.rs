//! TagResource, UntagResource and ListTagsForResource, with ECS's tag limits.
//!
//! Tags live inside the record of the resource they belong to, so tagging is one CAS
//! write of that record.

use std::sync::Arc;

use berth_api::model::{
    Cluster, ContainerInstance, ListTagsForResourceRequest, ListTagsForResourceResponse, Tag, TagResourceRequest,
    TagResourceResponse, UntagResourceRequest, UntagResourceResponse,
};
use berth_api::{ApiError, Arn, ErrorKind, ResourceKind};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::records::{self, Decision};
use crate::state::{Call, State};
use crate::{clusters, container_instances, task_definitions, tasks};

/// ECS's limit of user tags per resource.
const MAX_TAGS: usize = 50;

/// A stored record that carries the tags of its resource.
pub trait Tagged: Serialize + DeserializeOwned {
    /// The resource's tags.
    fn tags_mut(&mut self) -> &mut Option<Vec<Tag>>;
    /// Refuses resources that can no longer be tagged (deleted clusters).
    fn check_taggable(&self) -> Result<(), ApiError> {
        Ok(())
    }
}

impl Tagged for tasks::Stored {
    fn tags_mut(&mut self) -> &mut Option<Vec<Tag>> {
        &mut self.task.tags
    }
}

impl Tagged for ContainerInstance {
    fn tags_mut(&mut self) -> &mut Option<Vec<Tag>> {
        &mut self.tags
    }
}

impl Tagged for Cluster {
    fn tags_mut(&mut self) -> &mut Option<Vec<Tag>> {
        &mut self.tags
    }

    fn check_taggable(&self) -> Result<(), ApiError> {
        if self.status.as_deref() == Some("ACTIVE") {
            Ok(())
        } else {
            Err(ApiError::invalid("The specified cluster is inactive. Specify an active cluster and try again."))
        }
    }
}

/// Checks tags against ECS's rules: key 1-128 and value 0-256 characters of letters,
/// numbers, spaces and `_ . : / = + - @`; `aws:` is reserved; at most 50.
pub fn validate(tags: &[Tag]) -> Result<(), ApiError> {
    if tags.len() > MAX_TAGS {
        return Err(too_many());
    }
    for tag in tags {
        let key = tag.key.as_deref().unwrap_or_default();
        let value = tag.value.as_deref().unwrap_or_default();
        check_text("key", key, 1, 128)?;
        check_text("value", value, 0, 256)?;
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(ApiError::invalid(format!(
                "Tag key '{key}' is invalid: keys with the prefix 'aws:' are reserved for AWS use."
            )));
        }
    }
    Ok(())
}

fn too_many() -> ApiError {
    ApiError::invalid(format!("A resource can have at most {MAX_TAGS} tags."))
}

fn check_text(what: &str, s: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let len = s.chars().count();
    if len < min || len > max {
        return Err(ApiError::invalid(format!(
            "Tag {what} '{s}' is invalid: it must be {min} to {max} characters long."
        )));
    }
    let allowed = |c: char| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c);
    if let Some(bad) = s.chars().find(|c| !allowed(*c)) {
        return Err(ApiError::invalid(format!(
            "Tag {what} '{s}' contains the character '{bad}'; tags may contain letters, numbers, spaces and _ . : / = + - @."
        )));
    }
    Ok(())
}

fn resource_not_found() -> ApiError {
    ApiError::new(ErrorKind::ResourceNotFound, "The specified resource could not be found.")
}

fn parse_arn(arn: &str) -> Result<Arn, ApiError> {
    Arn::parse(arn).ok_or_else(|| ApiError::invalid(format!("The ARN '{arn}' is not a valid ECS resource ARN.")))
}

/// Where the tags of a resource are stored.
enum Target {
    Cluster(String),
    TaskDefinition(String),
    ContainerInstance(String),
    Task(String),
}

fn target(arn: &str) -> Result<Target, ApiError> {
    let arn = parse_arn(arn)?;
    match arn.kind {
        ResourceKind::Cluster => Ok(Target::Cluster(clusters::key(&arn.id))),
        ResourceKind::TaskDefinition => {
            task_definitions::key_for_id(&arn.id).map(Target::TaskDefinition).ok_or_else(resource_not_found)
        }
        ResourceKind::ContainerInstance => arn
            .id
            .split_once('/')
            .map(|(cluster, id)| Target::ContainerInstance(container_instances::key(cluster, id)))
            .ok_or_else(resource_not_found),
        ResourceKind::Task => arn
            .id
            .split_once('/')
            .map(|(cluster, id)| Target::Task(tasks::key(cluster, id)))
            .ok_or_else(resource_not_found),
        _ => Err(resource_not_found()),
    }
}

async fn read_tags(state: &State, arn: &str) -> Result<Vec<Tag>, ApiError> {
    match target(arn)? {
        Target::Cluster(key) => read_record::<Cluster>(state, &key, ApiError::cluster_not_found).await,
        Target::TaskDefinition(key) => read_record::<task_definitions::Stored>(state, &key, resource_not_found).await,
        Target::ContainerInstance(key) => read_record::<ContainerInstance>(state, &key, resource_not_found).await,
        Target::Task(key) => read_record::<tasks::Stored>(state, &key, resource_not_found).await,
    }
}

async fn read_record<T: Tagged>(state: &State, key: &str, missing: fn() -> ApiError) -> Result<Vec<Tag>, ApiError> {
    match records::get::<T>(&*state.store, key).await? {
        Some((mut r, _)) => {
            r.check_taggable()?;
            Ok(r.tags_mut().take().unwrap_or_default())
        }
        None => Err(missing()),
    }
}

async fn edit_tags(state: &State, arn: &str, edit: impl FnMut(&mut Vec<Tag>)) -> Result<(), ApiError> {
    match target(arn)? {
        Target::Cluster(key) => edit_record::<Cluster>(state, &key, edit, ApiError::cluster_not_found).await,
        Target::TaskDefinition(key) => {
            edit_record::<task_definitions::Stored>(state, &key, edit, resource_not_found).await
        }
        Target::ContainerInstance(key) => edit_record::<ContainerInstance>(state, &key, edit, resource_not_found).await,
        Target::Task(key) => edit_record::<tasks::Stored>(state, &key, edit, resource_not_found).await,
    }
}

async fn edit_record<T: Tagged>(
    state: &State,
    key: &str,
    mut edit: impl FnMut(&mut Vec<Tag>),
    missing: fn() -> ApiError,
) -> Result<(), ApiError> {
    records::update(&*state.store, key, |current: Option<T>| match current {
        Some(mut record) => {
            record.check_taggable()?;
            let tags = record.tags_mut().get_or_insert_with(Vec::new);
            edit(tags);
            if tags.len() > MAX_TAGS {
                return Err(too_many());
            }
            Ok(Decision::Write(record, ()))
        }
        None => Err(missing()),
    })
    .await
}

/// TagResource: adds tags, replacing the values of keys already present.
pub async fn tag(state: Arc<State>, _call: Call, req: TagResourceRequest) -> Result<TagResourceResponse, ApiError> {
    let new = req.tags.unwrap_or_default();
    validate(&new)?;
    edit_tags(&state, req.resource_arn.as_deref().unwrap_or_default(), |tags| {
        for t in &new {
            match tags.iter_mut().find(|o| o.key == t.key) {
                Some(o) => o.value = t.value.clone(),
                None => tags.push(t.clone()),
            }
        }
    })
    .await?;
    Ok(TagResourceResponse {})
}

/// UntagResource: removes the named keys; keys not present are ignored.
pub async fn untag(
    state: Arc<State>,
    _call: Call,
    req: UntagResourceRequest,
) -> Result<UntagResourceResponse, ApiError> {
    let keys = req.tag_keys.unwrap_or_default();
    edit_tags(&state, req.resource_arn.as_deref().unwrap_or_default(), |tags| {
        tags.retain(|t| !keys.iter().any(|k| Some(k) == t.key.as_ref()));
    })
    .await?;
    Ok(UntagResourceResponse {})
}

/// ListTagsForResource.
pub async fn list(
    state: Arc<State>,
    _call: Call,
    req: ListTagsForResourceRequest,
) -> Result<ListTagsForResourceResponse, ApiError> {
    let tags = read_tags(&state, req.resource_arn.as_deref().unwrap_or_default()).await?;
    Ok(ListTagsForResourceResponse { tags: Some(tags) })
}
