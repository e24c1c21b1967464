//! `GET /v2/credentials/<id>`: a task role's credentials in the JSON the AWS SDKs' container
//! credential providers read.

use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::{error, json, peer, AppState, Container, Peer};

/// What the SDKs read (`AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration`, `RoleArn`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Credentials {
    pub role_arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub token: String,
    /// ISO 8601, UTC.
    pub expiration: String,
}

impl From<berth_api::agent::GetTaskCredentialsResponse> for Credentials {
    fn from(r: berth_api::agent::GetTaskCredentialsResponse) -> Self {
        Self {
            role_arn: r.role_arn,
            access_key_id: r.access_key_id,
            secret_access_key: r.secret_access_key,
            token: r.session_token,
            expiration: r.expiration,
        }
    }
}

/// The credentials of the task whose id this is, to that task only. An unknown id and a
/// request from another address get the same answer, so ids cannot be probed.
pub(super) async fn handle(axum::extract::State(app): AppState, from: Peer, id: Container) -> Response {
    let found = app.registry.find(peer(from), |v| v.credentials_id.as_deref() == Some(id.0.as_str()));
    match found.and_then(|v| v.credentials) {
        Some(creds) => json(StatusCode::OK, &creds),
        None => error(StatusCode::BAD_REQUEST, "InvalidIdInRequest", "CredentialsV2Request: Credentials not found"),
    }
}
