//! AWS Signature Version 4 for SQS's JSON protocol (one POST to `/`), with our `hmac` and
//! `sha2`: sans IO, so it is tested against AWS's published example values.

use std::time::SystemTime;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Credentials: an access key, its secret, and a session token for temporary ones.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub(crate) access_key: String,
    pub(crate) secret: String,
    pub(crate) session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive() // never the secret
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The signing key for a day, region and service.
pub(crate) fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// `(YYYYMMDD, YYYYMMDDTHHMMSSZ)` of `time`, in UTC.
pub(crate) fn stamps(time: SystemTime) -> (String, String) {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let date = format!("{year:04}{month:02}{day:02}");
    let time = format!(
        "{date}T{:02}{:02}{:02}Z",
        rest / 3600,
        (rest / 60) % 60,
        rest % 60
    );
    (date, time)
}

/// The headers to send with `body` to `host` for `target` (`AmazonSQS.SendMessage`).
pub(crate) fn headers(
    credentials: &Credentials,
    region: &str,
    host: &str,
    target: &str,
    body: &[u8],
    now: SystemTime,
) -> Vec<(&'static str, String)> {
    const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
    let (date, amz_date) = stamps(now);
    let mut signed: Vec<(&'static str, String)> = vec![
        ("content-type", CONTENT_TYPE.to_string()),
        ("host", host.to_string()),
        ("x-amz-date", amz_date.clone()),
        ("x-amz-target", target.to_string()),
    ];
    if let Some(token) = &credentials.session_token {
        signed.push(("x-amz-security-token", token.clone()));
    }
    let names: Vec<&str> = signed.iter().map(|(k, _)| *k).collect();
    let signed_headers = names.join(";");
    let canonical_headers: String = signed
        .iter()
        .map(|(k, v)| format!("{k}:{}\n", v.trim()))
        .collect();
    let canonical_request = format!(
        "POST\n/\n\n{canonical_headers}\n{signed_headers}\n{}",
        hex(&Sha256::digest(body))
    );
    let scope = format!("{date}/{region}/sqs/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let key = signing_key(&credentials.secret, &date, region, "sqs");
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    let mut headers = signed;
    headers.retain(|(k, _)| *k != "host"); // the HTTP client sends it
    headers.push((
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.access_key
        ),
    ));
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// AWS's documented example of deriving a signing key.
    #[test]
    fn the_signing_key_matches_aws_example() {
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex(&key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn dates_are_utc_civil_dates() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_329_264_000 + 3_723);
        assert_eq!(stamps(at), ("20120215".into(), "20120215T010203Z".into()));
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(stamps(leap).0, "20000229");
    }

    #[test]
    fn a_request_is_signed_over_its_headers_and_body() {
        let credentials = Credentials {
            access_key: "AKIDEXAMPLE".into(),
            secret: "secret".into(),
            session_token: None,
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_329_264_000);
        let a = headers(
            &credentials,
            "us-east-1",
            "h",
            "AmazonSQS.SendMessage",
            b"{}",
            at,
        );
        let b = headers(
            &credentials,
            "us-east-1",
            "h",
            "AmazonSQS.SendMessage",
            b"{ }",
            at,
        );
        let auth = |h: &[(&str, String)]| {
            h.iter()
                .find(|(k, _)| *k == "authorization")
                .unwrap()
                .1
                .clone()
        };
        assert!(auth(&a).starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20120215/us-east-1/sqs/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature="
        ));
        assert_ne!(auth(&a), auth(&b), "the body is signed");
    }
}
