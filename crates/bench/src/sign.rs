//! SigV4 signing of ECS requests with the AWS SDK's own signer (`aws_sigv4`).

use std::time::SystemTime;

use anyhow::{Context, Result};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

/// The SigV4 service name ECS signs with.
const SERVICE: &str = "ecs";

/// Signs requests for one access key in one region.
pub struct Signer {
    identity: Identity,
    region: String,
}

impl Signer {
    /// A signer for the given key pair and region.
    pub fn new(access_key_id: &str, secret_access_key: &str, region: &str) -> Self {
        let credentials = Credentials::new(access_key_id, secret_access_key, None, None, "berth-bench");
        Self { identity: credentials.into(), region: region.to_string() }
    }

    /// The headers (`x-amz-date`, `authorization`) that sign a request with `headers` and `body`.
    ///
    /// `uri` is the full request URI; `headers` must include every header sent that should
    /// be covered by the signature (the signer adds `host` from `uri` when it is absent).
    pub fn sign(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<(&'static str, String)>> {
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .context("building SigV4 signing parameters")?
            .into();
        let request = SignableRequest::new(method, uri, headers.iter().copied(), SignableBody::Bytes(body))
            .context("preparing the request for signing")?;
        let (instructions, _signature) = sign(request, &params).context("signing")?.into_parts();
        let (headers, _params) = instructions.into_parts();
        Ok(headers.into_iter().map(|h| (h.name(), h.value().to_string())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_with_date_and_authorization() {
        let signer = Signer::new("AKIDEXAMPLE", "secret", "us-east-1");
        let headers = signer.sign("POST", "http://127.0.0.1:9270/", &[("x-amz-target", "X.Y")], b"{}").unwrap();
        let names: Vec<_> = headers.iter().map(|(n, _)| *n).collect();
        assert!(names.contains(&"x-amz-date"));
        let auth = &headers.iter().find(|(n, _)| *n == "authorization").unwrap().1;
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "{auth}");
        assert!(auth.contains("/us-east-1/ecs/aws4_request"), "{auth}");
        assert!(auth.contains("SignedHeaders=host;x-amz-date;x-amz-target"), "{auth}");
    }
}
