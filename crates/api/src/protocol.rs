//! Reading an operation's input from an AWS JSON 1.1 body, with the errors AWS gives.

use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorKind};
use crate::validate::{Validate, Validator};

/// The `X-Amz-Target` prefix of every ECS operation.
pub const ECS_TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";

/// The SigV4 service name ECS requests are signed for.
pub const ECS_SIGNING_NAME: &str = "ecs";

/// The `X-Amz-Target` prefix of every CloudWatch Logs operation.
pub const LOGS_TARGET_PREFIX: &str = "Logs_20140328.";

/// The SigV4 service name CloudWatch Logs requests are signed for.
pub const LOGS_SIGNING_NAME: &str = "logs";

/// The `X-Amz-Target` prefix of every Secrets Manager operation.
pub const SECRETS_TARGET_PREFIX: &str = "secretsmanager.";

/// The SigV4 service name Secrets Manager requests are signed for.
pub const SECRETS_SIGNING_NAME: &str = "secretsmanager";

/// The content type of AWS JSON 1.1 requests and answers.
pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Parses and validates `body` as `T`.
///
/// Malformed JSON and wrong member types are `SerializationException` (as AWS answers);
/// a value outside an enum or a violated model constraint is `InvalidParameterException`;
/// a missing required member is ECS's `ClientException` ("Family can not be blank.").
/// Both name the member path. An empty body reads as `{}`.
pub fn parse_input<T: DeserializeOwned + Validate>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(de).map_err(|e| deserialize_error(&e))?;
    Validator::check(&value)?;
    Ok(value)
}

fn deserialize_error(e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.inner();
    if inner.is_data() {
        let msg = inner.to_string();
        let detail = msg.split(" at line ").next().unwrap_or(&msg);
        if detail.starts_with("unknown variant") {
            let value = detail.split('`').nth(1).unwrap_or_default();
            let allowed = detail.split("expected ").nth(1).unwrap_or_default().replace('`', "");
            return ApiError::invalid(format!(
                "1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                allowed.replace("one of ", "").replace(" or ", " ")
            ));
        }
        return ApiError::new(ErrorKind::Serialization, format!("Unable to parse member '{path}': {detail}"));
    }
    ApiError::new(ErrorKind::Serialization, format!("Unable to parse request body as JSON: {inner}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ListTasksRequest, RegisterTaskDefinitionRequest, RunTaskRequest};

    #[test]
    fn malformed_json_is_a_serialization_error() {
        let e = parse_input::<ListTasksRequest>(b"{\"cluster\":").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Serialization);
    }

    #[test]
    fn wrong_type_names_the_member() {
        let e = parse_input::<RunTaskRequest>(br#"{"taskDefinition":"x","count":"three"}"#).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Serialization);
        assert!(e.message.contains("'count'"), "{}", e.message);
    }

    #[test]
    fn unknown_enum_value_is_invalid_parameter() {
        let e = parse_input::<ListTasksRequest>(br#"{"desiredStatus":"DANCING"}"#).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidParameter);
        assert!(e.message.contains("'desiredStatus'") && e.message.contains("DANCING"), "{}", e.message);
        assert!(e.message.contains("RUNNING"), "{}", e.message);
    }

    #[test]
    fn unknown_members_are_ignored_and_null_is_absent() {
        let r: ListTasksRequest = parse_input(br#"{"cluster":null,"somethingNew":1}"#).unwrap();
        assert_eq!(r.cluster, None);
    }

    #[test]
    fn empty_body_reads_as_empty_object() {
        assert!(parse_input::<ListTasksRequest>(b"").is_ok());
        let e = parse_input::<RegisterTaskDefinitionRequest>(b"").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Client);
    }

    #[test]
    fn every_member_round_trips() {
        let body = br#"{"family":"web","containerDefinitions":[{"name":"a","image":"busybox","futureMember":1,
            "healthCheck":{"command":["CMD","true"],"interval":5},"linuxParameters":{"capabilities":{"add":["NET_ADMIN"]}}}],
            "runtimePlatform":{"operatingSystemFamily":"LINUX","cpuArchitecture":"X86_64"},"pidMode":"task","ephemeralStorage":{"sizeInGiB":30}}"#;
        let r: RegisterTaskDefinitionRequest = parse_input(body).unwrap();
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back["containerDefinitions"][0]["linuxParameters"]["capabilities"]["add"][0], "NET_ADMIN");
        assert_eq!(back["runtimePlatform"]["cpuArchitecture"], "X86_64");
        assert_eq!(back["ephemeralStorage"]["sizeInGiB"], 30);
        assert!(back["containerDefinitions"][0].get("futureMember").is_none());
    }
}
