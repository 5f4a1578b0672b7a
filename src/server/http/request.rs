//! An HTTP/1.1 request head, parsed sans IO under limits: the whole head within
//! [`MAX_HEAD`] bytes (a 1 GiB header is refused after 16 KiB), no body but a small form.

/// The most bytes of a request head (request line and headers).
pub(crate) const MAX_HEAD: usize = 16 * 1024;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) method: String,
    /// The path without its query.
    pub(crate) path: String,
    pub(crate) query: String,
    /// Header names lowercased.
    pub(crate) headers: Vec<(String, String)>,
}

/// Why a head was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not HTTP/1.x, or malformed.
    Malformed(&'static str),
    /// Over [`MAX_HEAD`].
    TooLarge,
}

impl Request {
    /// The value of header `name` (lowercase), if present.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of query parameter `name`, if present (no percent-decoding: tokens are hex).
    pub(crate) fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// The value of cookie `name`, if sent.
    pub(crate) fn cookie(&self, name: &str) -> Option<&str> {
        self.header("cookie")?
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// Parses a head from `buffer` if it holds a complete one: `Ok(None)` means more bytes are
/// needed. Returns the request and the length of its head.
pub(crate) fn parse(buffer: &[u8]) -> Result<Option<(Request, usize)>, Refusal> {
    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buffer.len() > MAX_HEAD {
            Err(Refusal::TooLarge)
        } else {
            Ok(None)
        };
    };
    if end > MAX_HEAD {
        return Err(Refusal::TooLarge);
    }
    let head = std::str::from_utf8(&buffer[..end]).map_err(|_| Refusal::Malformed("not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().ok_or(Refusal::Malformed("no request line"))?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed(
            "a request line is METHOD TARGET VERSION",
        ));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(Refusal::Malformed("only HTTP/1.x is spoken here"));
    }
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Refusal::Malformed("a method is upper-case letters"));
    }
    if !target.starts_with('/') {
        return Err(Refusal::Malformed("a target is a path"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or(Refusal::Malformed("a header is NAME: VALUE"))?;
        if name.is_empty() || name.contains(' ') {
            return Err(Refusal::Malformed("a header name has no spaces"));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(Some((
        Request {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            headers,
        },
        end + 4,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_parses_once_complete() {
        let text = b"GET /metrics?token=ab&x=1 HTTP/1.1\r\nHost: h\r\nCookie: a=1; monogusa_token=cd\r\n\r\nrest";
        assert_eq!(parse(&text[..20]), Ok(None));
        let (request, used) = parse(text).unwrap().unwrap();
        assert_eq!(used, text.len() - 4);
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("GET", "/metrics")
        );
        assert_eq!(request.query_param("token"), Some("ab"));
        assert_eq!(request.header("host"), Some("h"));
        assert_eq!(request.cookie("monogusa_token"), Some("cd"));
    }

    #[test]
    fn garbage_and_oversize_heads_are_refused() {
        assert!(matches!(
            parse(b"\x16\x03\x01 TLS\r\n\r\n"),
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(
            parse(b"GET / SPDY/3\r\n\r\n"),
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(
            parse(b"get / HTTP/1.1\r\n\r\n"),
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nNo colon\r\n\r\n"),
            Err(Refusal::Malformed(_))
        ));
        let huge = vec![b'a'; MAX_HEAD + 1];
        assert_eq!(parse(&huge), Err(Refusal::TooLarge));
    }
}
