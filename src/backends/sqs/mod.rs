//! Task queues on Amazon SQS (feature `sqs`): SQS's JSON protocol over a blocking HTTP
//! client (ureq), each request signed with SigV4 ([`sigv4`], our `hmac` and `sha2`). Opened
//! with [`connect`](crate::connect)`("sqs://sqs.us-east-1.amazonaws.com")` (HTTPS), or
//! `sqs+http://127.0.0.1:PORT` for a local stand-in such as moto's server. The credentials
//! come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) or
//! [`Secrets`](crate::Secrets); the region from the host name, `AWS_REGION` or
//! `AWS_DEFAULT_REGION`.
//!
//! SQS holds task queues only: counters, dicts, values and locks are refused with a clear
//! error (use a manager or Redis for them).

pub(crate) mod sigv4;
mod tasks;

pub(crate) use tasks::SqsTasks;

use std::time::{Duration, SystemTime};

use serde_json::Value as Json;

use crate::error::{Error, Phase, RemoteError, RemoteErrorKind, Result};

/// How long one request may take, beyond a long poll's own wait.
const TIMEOUT: Duration = Duration::from_secs(10);

/// An SQS endpoint and the credentials to sign for it.
pub(crate) struct SqsStore {
    agent: ureq::Agent,
    /// `https://host` or `http://host:port`.
    endpoint: String,
    host: String,
    region: String,
    credentials: sigv4::Credentials,
}

impl std::fmt::Debug for SqsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsStore")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// The region an AWS host name names (`sqs.eu-west-1.amazonaws.com`).
fn region_of(host: &str) -> Option<String> {
    let mut parts = host.split('.');
    match (parts.next(), parts.next()) {
        (Some("sqs"), Some(region)) if host.ends_with(".amazonaws.com") => Some(region.into()),
        _ => None,
    }
}

impl SqsStore {
    /// Opens the endpoint `url` names (`sqs://host` or `sqs+http://host:port`), with these
    /// credentials. Nothing is sent until a queue is opened.
    pub(crate) fn open(url: &str, credentials: sigv4::Credentials) -> Result<SqsStore> {
        let (scheme, rest) = url.split_once("://").expect("checked by connect");
        let host = rest.trim_end_matches('/').to_string();
        if host.is_empty() || host.contains('/') {
            return Err(Error::Config(format!(
                "{url:?}: an SQS URL names an endpoint only (sqs://HOST or sqs+http://HOST:PORT)"
            )));
        }
        let endpoint = match scheme {
            "sqs+http" => format!("http://{host}"),
            _ => format!("https://{host}"),
        };
        let region = region_of(&host)
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".into());
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT + Duration::from_secs(20)))
            .build()
            .into();
        Ok(SqsStore {
            agent,
            endpoint,
            host,
            region,
            credentials,
        })
    }

    /// Sends `AmazonSQS.<action>` with `body`; its JSON answer, or the error SQS gave.
    pub(crate) fn call(&self, action: &str, body: &Json) -> Result<Json> {
        let body = serde_json::to_vec(body).map_err(|e| Error::Codec(e.to_string()))?;
        let target = format!("AmazonSQS.{action}");
        let headers = sigv4::headers(
            &self.credentials,
            &self.region,
            &self.host,
            &target,
            &body,
            SystemTime::now(),
        );
        let mut request = self.agent.post(&self.endpoint);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let mut response = request
            .send(&body[..])
            .map_err(|e| self.transport_error(e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| self.transport_error(e))?;
        let json: Json = if text.trim().is_empty() {
            Json::Object(Default::default())
        } else {
            serde_json::from_str(&text).map_err(|e| {
                Error::Protocol(format!(
                    "SQS at {} answered {action} with no JSON: {e}",
                    self.endpoint
                ))
            })?
        };
        if status >= 400 {
            return Err(self.refusal(action, status, &json));
        }
        Ok(json)
    }

    fn transport_error(&self, e: ureq::Error) -> Error {
        match e {
            ureq::Error::Timeout(_) => Error::Timeout(Phase::Call),
            ureq::Error::Io(io) => Error::Io(std::io::Error::new(
                io.kind(),
                format!("SQS at {}: {io}", self.endpoint),
            )),
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
                Error::Io(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    format!("SQS at {}: {e}", self.endpoint),
                ))
            }
            other => Error::Io(std::io::Error::other(format!(
                "SQS at {}: {other}",
                self.endpoint
            ))),
        }
    }

    /// SQS's error answer as ours: a refused signature or key is an authentication error,
    /// the rest a remote error of the kind that fits.
    fn refusal(&self, action: &str, status: u16, json: &Json) -> Error {
        let kind = json["__type"].as_str().unwrap_or("");
        let kind = kind.rsplit('#').next().unwrap_or(kind);
        let message = json["message"]
            .as_str()
            .or_else(|| json["Message"].as_str())
            .unwrap_or("");
        let text = format!("SQS {action}: {kind} ({status}) {message}");
        match kind {
            "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "UnrecognizedClientException"
            | "AccessDenied"
            | "AccessDeniedException"
            | "MissingAuthenticationToken" => Error::Authentication(text),
            "ReceiptHandleIsInvalid" | "InvalidParameterValue" if action == "DeleteMessage" => {
                Error::Remote(RemoteError::new(RemoteErrorKind::LeaseExpired, text))
            }
            _ => Error::Remote(RemoteError::new(RemoteErrorKind::Storage, text)),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn regions_come_from_aws_host_names() {
        assert_eq!(
            super::region_of("sqs.eu-west-1.amazonaws.com").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(super::region_of("127.0.0.1:4566"), None);
    }
}
