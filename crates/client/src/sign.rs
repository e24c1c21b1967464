//! SigV4 signing with the AWS SDK's signer (`aws_sigv4`).

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

/// Signing failed; the SDK's message says why.
#[derive(Debug, thiserror::Error)]
#[error("signing a request: {0}")]
pub struct SignError(String);

/// Signs requests for one access key and region.
pub struct Signer {
    identity: Identity,
    region: String,
}

impl Signer {
    /// A signer for the key pair in `region`.
    pub fn new(access_key_id: &str, secret_access_key: &str, region: &str) -> Self {
        let credentials = Credentials::new(access_key_id, secret_access_key, None, None, "berth");
        Self { identity: credentials.into(), region: region.to_string() }
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The headers (`x-amz-date`, `authorization`) that sign a request for `service` (`ecs`,
    /// `logs`) with `headers` and `body`.
    ///
    /// `uri` is the full request URI; `headers` are the headers to cover (the signer adds
    /// `host` from `uri` when it is absent).
    pub fn sign(
        &self,
        service: &str,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<(&'static str, String)>, SignError> {
        let err = |e: &dyn std::fmt::Display| SignError(e.to_string());
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| err(&e))?
            .into();
        let request = SignableRequest::new(method, uri, headers.iter().copied(), SignableBody::Bytes(body))
            .map_err(|e| err(&e))?;
        let (instructions, _signature) = sign(request, &params).map_err(|e| err(&e))?.into_parts();
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
        let headers = signer.sign("ecs", "POST", "http://127.0.0.1:9270/", &[("x-amz-target", "X.Y")], b"{}").unwrap();
        let names: Vec<_> = headers.iter().map(|(n, _)| *n).collect();
        assert!(names.contains(&"x-amz-date"));
        let auth = &headers.iter().find(|(n, _)| *n == "authorization").unwrap().1;
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "{auth}");
        assert!(auth.contains("/us-east-1/ecs/aws4_request"), "{auth}");
        assert!(auth.contains("SignedHeaders=host;x-amz-date;x-amz-target"), "{auth}");
    }
}
