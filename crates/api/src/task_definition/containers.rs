//! The family and the identity of each container: names, images, uniqueness, essentials.

use std::collections::HashSet;

use super::{client, name_of};
use crate::model::ContainerDefinition;
use crate::ApiError;

/// The most containers ECS allows in one task definition.
const MAX_CONTAINERS: usize = 10;

/// The longest family or container name ECS allows.
const MAX_NAME_LEN: usize = 255;

/// The longest image reference (before any `@digest`) ECS allows.
const MAX_IMAGE_LEN: usize = 255;

/// Checks a task definition family: 1-255 letters, numbers, hyphens and underscores.
pub fn validate_family(family: &str) -> Result<(), ApiError> {
    if family.is_empty() {
        return Err(client("Family can not be blank."));
    }
    if family.len() > MAX_NAME_LEN {
        return Err(client(format!("Family must be no longer than {MAX_NAME_LEN} characters.")));
    }
    if !is_name(family) {
        return Err(client("Family contains invalid characters."));
    }
    Ok(())
}

/// The container list must hold 1 to 10 definitions.
pub(super) fn check_list(containers: &[ContainerDefinition]) -> Result<(), ApiError> {
    if containers.is_empty() {
        return Err(client("Container list cannot be empty."));
    }
    if containers.len() > MAX_CONTAINERS {
        return Err(client("Too many containers."));
    }
    Ok(())
}

/// Every container is named and has an image; names are unique; one container is essential.
pub(super) fn check(containers: &[ContainerDefinition]) -> Result<(), ApiError> {
    containers.iter().try_for_each(check_identity)?;
    check_unique_names(containers)?;
    check_essential(containers)
}

/// A container's name and image.
fn check_identity(container: &ContainerDefinition) -> Result<(), ApiError> {
    match container.name.as_deref() {
        None | Some("") => return Err(client("Container.name should not be null or empty.")),
        Some(name) if name.len() > MAX_NAME_LEN || !is_name(name) => {
            return Err(client("Container.name contains invalid characters."))
        }
        Some(_) => {}
    }
    match container.image.as_deref() {
        None | Some("") => Err(client("Container.image should not be null or empty.")),
        Some(image) if !is_image(image) => Err(client("Container.image contains invalid characters.")),
        Some(_) => Ok(()),
    }
}

/// Two containers with one name could not be told apart by links, dependencies or overrides.
fn check_unique_names(containers: &[ContainerDefinition]) -> Result<(), ApiError> {
    let mut seen = HashSet::new();
    if containers.iter().all(|c| seen.insert(name_of(c))) {
        Ok(())
    } else {
        Err(client("Container names must be unique within a Task Definition."))
    }
}

/// A task stops when its essential containers stop, so it needs at least one.
/// `essential` defaults to true.
fn check_essential(containers: &[ContainerDefinition]) -> Result<(), ApiError> {
    if containers.iter().any(|c| c.essential != Some(false)) {
        Ok(())
    } else {
        Err(client("Task definition doesn't have any essential container."))
    }
}

/// Letters, numbers, hyphens and underscores only.
fn is_name(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An image reference as ECS documents it: up to 255 letters, numbers, hyphens, underscores,
/// colons, periods, forward slashes and number signs, optionally followed by
/// `@sha256:` and 64 hexadecimal digits.
fn is_image(image: &str) -> bool {
    let (reference, digest) = match image.split_once('@') {
        Some((reference, digest)) => (reference, Some(digest)),
        None => (image, None),
    };
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-_:./#".contains(&b);
    let reference_ok = !reference.is_empty() && reference.len() <= MAX_IMAGE_LEN && reference.bytes().all(allowed);
    reference_ok && digest.is_none_or(is_sha256_digest)
}

/// `sha256:` followed by exactly 64 hexadecimal digits, the only digest ECS accepts.
fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}
