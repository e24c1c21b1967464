//! ECS-shaped errors: the `__type` and `message` that AWS JSON 1.1 clients read.
//!
//! Libraries return their own `thiserror` enums; the server maps each of them once, at the
//! HTTP edge, into an [`ApiError`].

use std::fmt;

/// The error types berth answers with. `type_name` is the wire `__type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A request or a resource use is not valid for the caller.
    Client,
    /// A parameter is invalid.
    InvalidParameter,
    /// The caller may not do this.
    AccessDenied,
    /// The named cluster does not exist.
    ClusterNotFound,
    /// The cluster still has services.
    ClusterContainsServices,
    /// The cluster still has tasks.
    ClusterContainsTasks,
    /// The cluster still has container instances.
    ClusterContainsContainerInstances,
    /// A limit would be exceeded.
    LimitExceeded,
    /// Too many custom attributes on a resource.
    AttributeLimitExceeded,
    /// The target of an attribute does not exist.
    TargetNotFound,
    /// The resource is in use.
    ResourceInUse,
    /// The resource does not exist.
    ResourceNotFound,
    /// The resource already exists (CloudWatch Logs).
    ResourceAlreadyExists,
    /// A resource of that name already exists (Secrets Manager).
    ResourceExists,
    /// The request is not valid for the resource's state (Secrets Manager).
    InvalidRequest,
    /// The service does not exist.
    ServiceNotFound,
    /// The service is not active.
    ServiceNotActive,
    /// The service deployment does not exist.
    ServiceDeploymentNotFound,
    /// A feature berth does not offer in this configuration.
    UnsupportedFeature,
    /// A conflicting change happened at the same time.
    Conflict,
    /// The operation is not one the endpoint knows.
    UnknownOperation,
    /// The body could not be read as the operation's input.
    Serialization,
    /// The request carried no signature.
    MissingAuthenticationToken,
    /// The signature is malformed.
    IncompleteSignature,
    /// The signature does not match, or is expired.
    InvalidSignature,
    /// The access key is not known.
    UnrecognizedClient,
    /// The temporary credentials have expired.
    ExpiredToken,
    /// The request body is larger than the endpoint accepts (HTTP 413).
    RequestEntityTooLarge,
    /// berth failed; the only kind answered with HTTP 500.
    Server,
}

impl ErrorKind {
    /// The wire `__type`.
    pub const fn type_name(self) -> &'static str {
        match self {
            Self::Client => "ClientException",
            Self::InvalidParameter => "InvalidParameterException",
            Self::AccessDenied => "AccessDeniedException",
            Self::ClusterNotFound => "ClusterNotFoundException",
            Self::ClusterContainsServices => "ClusterContainsServicesException",
            Self::ClusterContainsTasks => "ClusterContainsTasksException",
            Self::ClusterContainsContainerInstances => "ClusterContainsContainerInstancesException",
            Self::LimitExceeded => "LimitExceededException",
            Self::AttributeLimitExceeded => "AttributeLimitExceededException",
            Self::TargetNotFound => "TargetNotFoundException",
            Self::ResourceInUse => "ResourceInUseException",
            Self::ResourceNotFound => "ResourceNotFoundException",
            Self::ResourceAlreadyExists => "ResourceAlreadyExistsException",
            Self::ResourceExists => "ResourceExistsException",
            Self::InvalidRequest => "InvalidRequestException",
            Self::ServiceNotFound => "ServiceNotFoundException",
            Self::ServiceNotActive => "ServiceNotActiveException",
            Self::ServiceDeploymentNotFound => "ServiceDeploymentNotFoundException",
            Self::UnsupportedFeature => "UnsupportedFeatureException",
            Self::Conflict => "ConflictException",
            Self::UnknownOperation => "UnknownOperationException",
            Self::Serialization => "SerializationException",
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::IncompleteSignature => "IncompleteSignatureException",
            Self::InvalidSignature => "InvalidSignatureException",
            Self::UnrecognizedClient => "UnrecognizedClientException",
            Self::ExpiredToken => "ExpiredTokenException",
            Self::RequestEntityTooLarge => "RequestEntityTooLargeException",
            Self::Server => "ServerException",
        }
    }

    /// HTTP status: 500 only for server faults, as ECS does.
    pub const fn status(self) -> u16 {
        match self {
            Self::Server => 500,
            Self::RequestEntityTooLarge => 413,
            _ => 400,
        }
    }
}

/// An error answered to a client: a type and an ECS-style message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ApiError {
    /// What kind of error.
    pub kind: ErrorKind,
    /// The message, in ECS's wording where ECS has one.
    pub message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.type_name(), self.message)
    }
}

impl ApiError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }

    /// `InvalidParameterException`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameter, message)
    }

    /// `ClientException`.
    pub fn client(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Client, message)
    }

    /// `ClusterNotFoundException` with ECS's message.
    pub fn cluster_not_found() -> Self {
        Self::new(ErrorKind::ClusterNotFound, "Cluster not found.")
    }

    /// `ServerException`; the message is logged by the caller, not leaked.
    pub fn server(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Server, message)
    }

    /// The JSON body AWS clients parse.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "__type": self.kind.type_name(), "message": self.message })
    }
}
