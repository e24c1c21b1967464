//! Every request to `169.254.170.2` that is not an endpoint goes, unchanged (headers,
//! signature and all), to the berth server: a container's SDK calls berth at
//! `http://169.254.170.2`, and the server verifies its SigV4 signature as usual.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::{error, App};

/// The relay's client and where it sends.
pub(super) struct Relay {
    client: Client<HttpConnector, Body>,
    server: String,
}

impl Relay {
    /// A relay to `server` (`http://HOST:PORT`); `None` for another scheme.
    pub(super) fn new(server: &str) -> Option<Self> {
        let server = server.trim_end_matches('/');
        server
            .starts_with("http://")
            .then(|| Self { client: Client::builder(TokioExecutor::new()).build_http(), server: server.to_string() })
    }
}

pub(super) async fn handle(State(app): State<App>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = format!("{}{path}", app.relay.server).parse::<Uri>() else {
        return error(StatusCode::BAD_REQUEST, "InvalidRequest", "unusable request path");
    };
    parts.uri = uri;
    match app.relay.client.request(Request::from_parts(parts, body)).await {
        Ok(answer) => answer.map(Body::new).into_response(),
        Err(e) => error(StatusCode::BAD_GATEWAY, "ServerUnreachable", &format!("the berth server: {e}")),
    }
}
