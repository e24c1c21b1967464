//! The HTTP front: AWS JSON 1.1 on `POST /`, SigV4 on every request, and ECS-shaped errors.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use berth_api::protocol::JSON_CONTENT_TYPE;
use berth_api::{ApiError, ErrorKind};

use crate::auth::{self, AuthError};
use crate::credentials::SessionError;
use crate::operations::Operations;
use crate::state::{Call, State};

/// The largest request body accepted: a full PutLogEvents batch (1 MiB of messages in
/// 10,000 events) with its JSON framing and escapes; ECS bodies stay far below it.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

#[derive(Clone)]
struct App {
    state: Arc<State>,
    ops: Arc<Operations>,
}

/// The router serving every ECS operation at `/`.
pub fn router(state: Arc<State>, ops: Operations) -> Router {
    Router::new().fallback(handle).with_state(App { state, ops: Arc::new(ops) })
}

async fn handle(AxumState(app): AxumState<App>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let result = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) if is_query_protocol(&headers, &uri) => {
            return crate::iam::serve(&app.state, &method, &uri, &headers, &body).await
        }
        Ok(body) => serve(&app, &method, &uri, &headers, &body).await,
        Err(_) => Err(ApiError::new(
            ErrorKind::RequestEntityTooLarge,
            format!("Request Entity Too Large: the body exceeds {MAX_BODY_BYTES} bytes."),
        )),
    };
    respond(result, &request_id)
}

async fn serve(app: &App, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Result<Vec<u8>, ApiError> {
    let (call, service) = authenticate(&app.state, method, uri, headers, body)?;
    let target = target(method, headers)?;
    let signing_name = app.ops.signing_name(target).ok_or_else(|| unknown_operation(target))?;
    if service != signing_name {
        return Err(ApiError::new(
            ErrorKind::InvalidSignature,
            format!("Credential should be scoped to correct service: '{signing_name}'. "),
        ));
    }
    let fut =
        app.ops.call(target, Arc::clone(&app.state), call.clone(), body).ok_or_else(|| unknown_operation(target))?;
    crate::iam::ecs::authorize(&app.state, &call, signing_name, target, body).await?;
    fut.await
}

/// IAM and STS speak the query protocol: a form-encoded body (or an `Action` in the
/// query string), and no `X-Amz-Target`.
fn is_query_protocol(headers: &HeaderMap, uri: &Uri) -> bool {
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let action_in_query = uri.query().is_some_and(|q| q.split('&').any(|p| p.starts_with("Action=")));
    (form || action_in_query) && !headers.contains_key("x-amz-target")
}

/// Verifies the signature and the key's session: the caller, and the service the
/// request is signed for.
pub fn authenticate(
    state: &State,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Call, String), ApiError> {
    let req = auth::Request {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or_default(),
        headers,
        body,
    };
    let now = chrono::Utc::now();
    let caller = auth::verify(&req, now, |id| state.keys.secret(id)).map_err(auth_error)?;
    let principal = state
        .keys
        .check_session(&caller.access_key_id, caller.session_token.as_deref(), now.timestamp())
        .map_err(|e| {
        let kind = match e {
            SessionError::InvalidToken => ErrorKind::UnrecognizedClient,
            SessionError::Expired => ErrorKind::ExpiredToken,
        };
        ApiError::new(kind, e.to_string())
    })?;
    Ok((Call { region: caller.region, principal }, caller.service))
}

/// The `X-Amz-Target` of a POST; the operation table decides whether it is served.
fn target<'a>(method: &Method, headers: &'a HeaderMap) -> Result<&'a str, ApiError> {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if method == Method::POST && !target.is_empty() {
        Ok(target)
    } else {
        Err(unknown_operation(target))
    }
}

fn unknown_operation(target: &str) -> ApiError {
    ApiError::new(ErrorKind::UnknownOperation, format!("Operation {target} is not supported by this endpoint."))
}

fn auth_error(e: AuthError) -> ApiError {
    let kind = match e.error_type() {
        "MissingAuthenticationTokenException" => ErrorKind::MissingAuthenticationToken,
        "IncompleteSignatureException" => ErrorKind::IncompleteSignature,
        "UnrecognizedClientException" => ErrorKind::UnrecognizedClient,
        "AccessDeniedException" => ErrorKind::AccessDenied,
        _ => ErrorKind::InvalidSignature,
    };
    ApiError::new(kind, e.to_string())
}

fn respond(result: Result<Vec<u8>, ApiError>, request_id: &str) -> Response {
    let (status, body, error_type) = match result {
        Ok(body) => (StatusCode::OK, body, None),
        Err(e) => {
            if e.kind == ErrorKind::Server {
                tracing::error!(request_id, error = %e.message, "request failed");
            }
            let status = StatusCode::from_u16(e.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = if e.kind == ErrorKind::Server {
                ApiError::server("An internal error occurred; see the server log for the request id.").body()
            } else {
                e.body()
            };
            (status, body.to_string().into_bytes(), Some(e.kind.type_name()))
        }
    };
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert("content-type", HeaderValue::from_static(JSON_CONTENT_TYPE));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", id);
    }
    if let Some(t) = error_type {
        h.insert("x-amzn-errortype", HeaderValue::from_static(t));
    }
    response
}
