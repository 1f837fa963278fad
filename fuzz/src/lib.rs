//! Input format shared by the fuzz targets, kept textual so that seeds can be written by hand.
//!
//! ```text
//! https://relay.example.com/webhooks/genesys      <- first line: the URL (auth targets only)
//! content-type: application/json                  <- `name: value` lines (headers or attributes)
//! x-hub-signature-256: sha256=...
//!                                                 <- the first empty line ends the head
//! {"topicName": ...}                              <- everything after it: the body, byte for byte
//! ```
//!
//! An input without an empty line is all head (auth targets) or all body ([`Sections::split`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

/// The head lines and the body of an input.
#[derive(Debug, Clone, Copy)]
pub struct Sections<'a> {
    /// Lines before the first empty line, without their line endings.
    pub head: &'a [u8],
    /// Bytes after the first empty line.
    pub body: &'a [u8],
}

impl<'a> Sections<'a> {
    /// Splits at the first `\n\n` (or `\n\r\n`); without one, everything is the body.
    pub fn split(data: &'a [u8]) -> Self {
        match find_blank_line(data) {
            Some((head_end, body_start)) => Self {
                head: &data[..head_end],
                body: &data[body_start..],
            },
            None => Self {
                head: &[],
                body: data,
            },
        }
    }

    /// Like [`Sections::split`], but an input without an empty line is all head.
    pub fn split_head_first(data: &'a [u8]) -> Self {
        match find_blank_line(data) {
            Some(_) => Self::split(data),
            None => Self {
                head: data,
                body: &[],
            },
        }
    }

    /// The head's lines, with a trailing `\r` removed.
    pub fn lines(&self) -> impl Iterator<Item = &'a [u8]> {
        let head = self.head;
        head.split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
    }

    /// Head lines as `(name, value)`: split at the first `:`, value without leading blanks.
    /// Lines without a colon are skipped.
    pub fn fields(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        self.lines().filter_map(|line| {
            let colon = line.iter().position(|b| *b == b':')?;
            let value = &line[colon + 1..];
            let start = value
                .iter()
                .position(|b| *b != b' ' && *b != b'\t')
                .unwrap_or(value.len());
            Some((&line[..colon], &value[start..]))
        })
    }
}

/// End of the head and start of the body around the first empty line.
fn find_blank_line(data: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while let Some(offset) = data[i..].iter().position(|b| *b == b'\n') {
        let nl = i + offset;
        let rest = &data[nl + 1..];
        if rest.starts_with(b"\n") {
            return Some((nl, nl + 2));
        }
        if rest.starts_with(b"\r\n") {
            return Some((nl, nl + 3));
        }
        i = nl + 1;
    }
    None
}

/// A fuzzed inbound request: URL line, header lines, body.
#[derive(Debug, Clone)]
pub struct Request {
    /// The first line, lossily decoded.
    pub url: String,
    /// Every header line that is a valid header name and value (repeats are appended).
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
    /// The pseudo-header `@now: <unix seconds>`, for schemes that check a timestamp.
    pub now: Option<i64>,
}

impl Request {
    /// Reads the input format above.
    pub fn parse(data: &[u8]) -> Self {
        let sections = Sections::split_head_first(data);
        let mut lines = sections.head.split(|b| *b == b'\n');
        let url_line = lines.next().unwrap_or_default();
        let url_line = url_line.strip_suffix(b"\r").unwrap_or(url_line);
        let url = String::from_utf8_lossy(url_line).into_owned();
        let rest_start = (url_line.len() + 1).min(sections.head.len());
        let rest = Sections {
            head: &sections.head[rest_start..],
            body: sections.body,
        };
        let mut headers = HeaderMap::new();
        let mut now = None;
        for (name, value) in rest.fields() {
            if name == b"@now" {
                now = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok());
                continue;
            }
            if let (Ok(name), Ok(value)) =
                (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
            {
                headers.append(name, value);
            }
        }
        Self {
            url,
            headers,
            body: sections.body.to_vec(),
            now,
        }
    }

    /// The headers with `name` set to `value` alone (replacing any fuzzed values).
    pub fn headers_with(&self, name: &HeaderName, value: &str) -> HeaderMap {
        let mut headers = self.headers.clone();
        headers.insert(
            name.clone(),
            HeaderValue::from_str(value).expect("generated header value"),
        );
        headers
    }
}

/// `secs` after (or before, when negative) the Unix epoch; `None` when `SystemTime` cannot hold it.
pub fn system_time(secs: i64) -> Option<SystemTime> {
    let magnitude = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_format() {
        let req = Request::parse(
            b"https://h/x?a=1\r\ncontent-type: text/plain\nbad header: x\n@now: -5\nx-a:b\n\nbody\n\nmore",
        );
        assert_eq!(req.url, "https://h/x?a=1");
        assert_eq!(req.headers.get("content-type").unwrap(), "text/plain");
        assert_eq!(req.headers.get("x-a").unwrap(), "b");
        assert_eq!(req.headers.len(), 2);
        assert_eq!(req.now, Some(-5));
        assert_eq!(req.body, b"body\n\nmore");
    }

    #[test]
    fn no_blank_line() {
        assert_eq!(Sections::split(b"{}\n").body, b"{}\n");
        let req = Request::parse(b"u\nx-a: 1");
        assert_eq!(req.url, "u");
        assert_eq!(req.headers.get("x-a").unwrap(), "1");
        assert!(req.body.is_empty());
        assert_eq!(Request::parse(b"").url, "");
    }

    #[test]
    fn system_time_bounds() {
        assert_eq!(system_time(0), Some(UNIX_EPOCH));
        assert!(system_time(-1).is_some());
        let _ = system_time(i64::MIN);
        let _ = system_time(i64::MAX);
    }
}
