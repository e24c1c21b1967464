//! Model-driven input validation: required members and the model's length and range
//! constraints.
//!
//! ECS validates required members in its handlers: a missing one is a `ClientException`
//! such as "Family can not be blank.". Constraint violations are reported in the form AWS
//! services use ("1 validation error detected: Value at 'tags.1.member.key' failed to
//! satisfy constraint: ...") as `InvalidParameterException`.

use crate::error::ApiError;

/// Implemented (by generated code) for every structure in the model.
pub trait Validate {
    /// Records every violation below `self` into `v`.
    fn validate(&self, v: &mut Validator);
}

/// Collects violations with the member path at which each was found.
#[derive(Debug, Default)]
pub struct Validator {
    path: Vec<String>,
    missing: Vec<String>,
    errors: Vec<String>,
}

/// A string that is not one of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Value '{value}' failed to satisfy constraint: Member must satisfy enum value set: [{}]", allowed.join(", "))]
pub struct UnknownEnumValue {
    /// What was given.
    pub value: String,
    /// What the enum accepts.
    pub allowed: &'static [&'static str],
}

impl Validator {
    /// Validates `value` from the top.
    pub fn check<T: Validate + ?Sized>(value: &T) -> Result<(), ApiError> {
        let mut v = Self::default();
        value.validate(&mut v);
        v.finish()
    }

    /// Runs `f` one member deeper.
    pub fn enter(&mut self, member: &str, f: impl FnOnce(&mut Self)) {
        self.path.push(member.to_string());
        f(self);
        self.path.pop();
    }

    /// Runs `f` for list element `index` (AWS numbers them from 1).
    pub fn enter_index(&mut self, index: usize, f: impl FnOnce(&mut Self)) {
        self.enter(&format!("{}.member", index + 1), f);
    }

    /// Runs `f` for the map value under `key`.
    pub fn enter_key(&mut self, key: &str, f: impl FnOnce(&mut Self)) {
        self.enter(key, f);
    }

    /// A required member is absent.
    pub fn missing(&mut self, member: &str) {
        let at = self.at(Some(member));
        self.missing.push(at);
    }

    /// Checks a string's or collection's length.
    pub fn length(&mut self, len: usize, min: Option<i64>, max: Option<i64>) {
        let len = i64::try_from(len).unwrap_or(i64::MAX);
        self.bounded(len, min, max, "have length");
    }

    /// Checks an integer's range.
    pub fn range(&mut self, value: i64, min: Option<i64>, max: Option<i64>) {
        self.bounded(value, min, max, "have value");
    }

    /// Checks a double's range.
    pub fn range_f64(&mut self, value: f64, min: Option<f64>, max: Option<f64>) {
        if min.is_some_and(|m| value < m) || max.is_some_and(|m| value > m) {
            let at = self.at(None);
            self.errors.push(format!(
                "Value '{value}' at '{at}' failed to satisfy constraint: Member must have value between {} and {}",
                min.unwrap_or(f64::MIN),
                max.unwrap_or(f64::MAX)
            ));
        }
    }

    fn bounded(&mut self, value: i64, min: Option<i64>, max: Option<i64>, what: &str) {
        let at = self.at(None);
        if let Some(min) = min.filter(|m| value < *m) {
            self.errors.push(format!(
                "Value at '{at}' failed to satisfy constraint: Member must {what} greater than or equal to {min}"
            ));
        } else if let Some(max) = max.filter(|m| value > *m) {
            self.errors.push(format!(
                "Value at '{at}' failed to satisfy constraint: Member must {what} less than or equal to {max}"
            ));
        }
    }

    fn at(&self, member: Option<&str>) -> String {
        let mut p = self.path.join(".");
        if let Some(m) = member {
            if !p.is_empty() {
                p.push('.');
            }
            p.push_str(m);
        }
        p
    }

    /// The first missing member as ECS words it, else the AWS-style summary of every
    /// constraint violation.
    pub fn finish(self) -> Result<(), ApiError> {
        if let Some(first) = self.missing.first() {
            return Err(ApiError::client(format!("{} can not be blank.", capitalize(first))));
        }
        match self.errors.len() {
            0 => Ok(()),
            n => Err(ApiError::invalid(format!(
                "{n} validation error{} detected: {}",
                if n == 1 { "" } else { "s" },
                self.errors.join("; ")
            ))),
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;
    use crate::model::{ContainerDefinition, ContainerDependency, RegisterTaskDefinitionRequest, Tag};

    #[test]
    fn required_members_are_named_with_their_path() {
        let req = RegisterTaskDefinitionRequest::default();
        let err = Validator::check(&req).unwrap_err();
        assert_eq!(err, ApiError::client("Family can not be blank."));
    }

    #[test]
    fn nested_constraints_carry_list_positions() {
        let req = RegisterTaskDefinitionRequest {
            family: Some("web".into()),
            container_definitions: Some(vec![ContainerDefinition {
                depends_on: Some(vec![ContainerDependency::default()]),
                ..Default::default()
            }]),
            tags: Some(vec![Tag { key: Some(String::new()), value: None }]),
            ..Default::default()
        };
        let err = Validator::check(&req).unwrap_err();
        assert_eq!(err.message, "ContainerDefinitions.1.member.dependsOn.1.member.containerName can not be blank.");
        let req = RegisterTaskDefinitionRequest {
            family: Some("web".into()),
            container_definitions: Some(vec![ContainerDefinition::default()]),
            tags: Some(vec![Tag { key: Some(String::new()), value: None }]),
            ..Default::default()
        };
        let err = Validator::check(&req).unwrap_err().message;
        assert!(err.starts_with("1 validation error detected: Value at 'tags.1.member.key'"), "{err}");
        assert!(err.contains("greater than or equal to 1"), "{err}");
    }

    #[test]
    fn a_valid_request_passes() {
        let req = RegisterTaskDefinitionRequest {
            family: Some("web".into()),
            container_definitions: Some(vec![ContainerDefinition::default()]),
            ..Default::default()
        };
        assert_eq!(Validator::check(&req), Ok(()));
    }
}
