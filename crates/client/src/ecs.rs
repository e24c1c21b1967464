//! Signed AWS JSON 1.1 calls to one berth endpoint over keep-alive HTTP/1.1.

use std::time::Duration;

use berth_api::protocol::{ECS_SIGNING_NAME, ECS_TARGET_PREFIX, JSON_CONTENT_TYPE};
use berth_api::Operation;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::sign::{SignError, Signer};

/// A call that did not answer what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint is not an `http://HOST:PORT` URL.
    #[error("endpoint {0:?} is not an http://HOST:PORT URL")]
    Endpoint(String),
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The request could not be sent or its answer read.
    #[error("{op}: {detail}")]
    Transport { op: String, detail: String },
    /// The server answered an ECS error.
    #[error("{op}: {error_type}: {message} (HTTP {status})")]
    Api { op: String, status: u16, error_type: String, message: String },
    /// A body was not the expected JSON.
    #[error("{op}: {source}")]
    Json { op: String, source: serde_json::Error },
}

impl ClientError {
    /// Whether the same call may succeed later: the server was unreachable or failed
    /// (5xx). A refusal (4xx) or a malformed answer is final.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transport { .. } | Self::Api { status: 500.., .. })
    }
}

/// How long a call may take before it fails: longer than the agent channel's long poll,
/// short enough that a server that vanished without a reset is noticed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A keep-alive HTTP/1.1 client for one berth endpoint, signing every request.
pub struct EcsClient {
    http: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
    uri: Uri,
    uri_text: String,
    host: String,
    signer: Signer,
}

/// A request ready to send: built and signed.
pub type Prepared = Request<Full<Bytes>>;

/// The status and body of a reply.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The whole body.
    pub body: Bytes,
}

impl EcsClient {
    /// A client for `endpoint` (`http://HOST:PORT`) keeping up to `connections` idle connections.
    pub fn new(endpoint: &str, signer: Signer, connections: usize) -> Result<Self, ClientError> {
        let uri_text = format!("{}/", endpoint.trim_end_matches('/'));
        let bad = || ClientError::Endpoint(endpoint.to_string());
        let uri: Uri = uri_text.parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("http") {
            return Err(bad());
        }
        let host = uri.authority().ok_or_else(bad)?.to_string();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_keepalive(Some(Duration::from_secs(30)));
        let http = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(connections).build(connector);
        Ok(Self { http, timeout: DEFAULT_TIMEOUT, uri, uri_text, host, signer })
    }

    /// Builds and signs a call of ECS operation `op` with JSON `body`.
    pub fn prepare(&self, op: &str, body: Bytes) -> Result<Prepared, ClientError> {
        self.prepare_target(&format!("{ECS_TARGET_PREFIX}{op}"), ECS_SIGNING_NAME, body)
    }

    /// Builds and signs (for `service`) a call with `X-Amz-Target: target`.
    fn prepare_target(&self, target: &str, service: &str, body: Bytes) -> Result<Prepared, ClientError> {
        let signed = [("host", self.host.as_str()), ("content-type", JSON_CONTENT_TYPE), ("x-amz-target", target)];
        let auth = self.signer.sign(service, "POST", &self.uri_text, &signed, &body)?;
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(HOST, &self.host)
            .header(CONTENT_TYPE, JSON_CONTENT_TYPE)
            .header("x-amz-target", target);
        for (name, value) in auth {
            req = req.header(name, value);
        }
        req.body(Full::new(body)).map_err(|e| ClientError::Transport { op: target.to_string(), detail: e.to_string() })
    }

    /// Sends a prepared call and reads the whole reply.
    pub async fn send(&self, req: Prepared) -> Result<Reply, ClientError> {
        let op = req.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let transport = |detail: String| ClientError::Transport { op: op.clone(), detail };
        let exchange = async {
            let resp = self.http.request(req).await.map_err(|e| transport(e.to_string()))?;
            let status = resp.status();
            let body = resp.into_body().collect().await.map_err(|e| transport(e.to_string()))?.to_bytes();
            Ok(Reply { status, body })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| Err(transport(format!("no answer within {:?}", self.timeout))))
    }

    /// Calls `op` with a raw JSON body; anything but HTTP 200 is [`ClientError::Api`].
    pub async fn call_json(&self, op: &str, body: &serde_json::Value) -> Result<serde_json::Value, ClientError> {
        let reply = self.send(self.prepare(op, Bytes::from(body.to_string()))?).await?;
        decode(op, reply)
    }

    /// Calls operation `O` with typed input and output.
    pub async fn call<O: Operation>(&self, input: &O::Input) -> Result<O::Output, ClientError>
    where
        O::Input: serde::Serialize,
        O::Output: serde::de::DeserializeOwned,
    {
        let json = |source| ClientError::Json { op: O::NAME.to_string(), source };
        let body = serde_json::to_vec(input).map_err(json)?;
        let target = format!("{}{}", O::TARGET_PREFIX, O::NAME);
        let reply = self.send(self.prepare_target(&target, O::SIGNING_NAME, Bytes::from(body))?).await?;
        serde_json::from_value(decode(O::NAME, reply)?).map_err(json)
    }
}

fn decode(op: &str, reply: Reply) -> Result<serde_json::Value, ClientError> {
    let json = |source| ClientError::Json { op: op.to_string(), source };
    if reply.status == StatusCode::OK {
        return serde_json::from_slice(&reply.body).map_err(json);
    }
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    let text = |k: &str| body.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    Err(ClientError::Api {
        op: op.to_string(),
        status: reply.status.as_u16(),
        error_type: text("__type"),
        message: text("message"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_must_be_http() {
        let signer = || Signer::new("a", "b", "us-east-1");
        assert!(EcsClient::new("https://127.0.0.1:1", signer(), 1).is_err());
        let c = EcsClient::new("http://127.0.0.1:9270/", signer(), 1).unwrap();
        assert_eq!(c.uri_text, "http://127.0.0.1:9270/");
        assert_eq!(c.host, "127.0.0.1:9270");
    }

    #[test]
    fn errors_carry_the_ecs_type_and_message() {
        let reply = Reply {
            status: StatusCode::BAD_REQUEST,
            body: Bytes::from_static(br#"{"__type":"ClientException","message":"Family can not be blank."}"#),
        };
        match decode("RegisterTaskDefinition", reply) {
            Err(ClientError::Api { error_type, message, status, .. }) => {
                assert_eq!(
                    (error_type.as_str(), message.as_str(), status),
                    ("ClientException", "Family can not be blank.", 400)
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
