//! A minimal blocking HTTP/1.1 client for `gslb reload`, `gslb explain`,
//! `gslb override` and `gslb weight`: one request on one connection
//! (`Connection: close`), no TLS (the API is plain HTTP).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long `gslb reload` waits (a reload with large databases takes time).
const TIMEOUT: Duration = Duration::from_secs(60);
/// Largest reply read.
const REPLY_LIMIT: u64 = 4 * 1024 * 1024;

/// A reply: status code and body text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Body (lossy UTF-8).
    pub body: String,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, writing or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The reply is not HTTP.
    #[error("malformed reply: {0:?}")]
    Malformed(String),
}

/// POSTs an empty body to `path`, with a bearer token when given.
///
/// # Errors
/// The server cannot be reached or answers something that is not HTTP.
pub fn post(addr: SocketAddr, path: &str, token: Option<&str>) -> Result<Reply, ClientError> {
    request(addr, "POST", path, token, "")
}

/// POSTs a JSON `body` to `path`, with a bearer token when given.
///
/// # Errors
/// The server cannot be reached or answers something that is not HTTP.
pub fn post_json(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Result<Reply, ClientError> {
    request(addr, "POST", path, token, body)
}

/// GETs `path` (a read-only call: no token).
///
/// # Errors
/// The server cannot be reached or answers something that is not HTTP.
pub fn get(addr: SocketAddr, path: &str) -> Result<Reply, ClientError> {
    request(addr, "GET", path, None, "")
}

/// One request; `body` (JSON) is sent when not empty.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Result<Reply, ClientError> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}{content_type}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    stream.take(REPLY_LIMIT).read_to_end(&mut raw)?;
    parse_reply(&raw)
}

/// Parses a complete HTTP/1.1 reply (Content-Length or chunked body).
fn parse_reply(raw: &[u8]) -> Result<Reply, ClientError> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| ClientError::Malformed(text.chars().take(80).collect()))?;
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| ClientError::Malformed(head.chars().take(80).collect()))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(Reply { status, body })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 {
            break;
        }
        let Some(chunk) = rest.get(..size) else {
            out.push_str(rest);
            break;
        };
        out.push_str(chunk);
        body = rest.get(size..).unwrap_or("").trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse() {
        let reply =
            parse_reply(b"HTTP/1.1 422 Unprocessable\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!(
            reply,
            Reply {
                status: 422,
                body: "{}".into()
            }
        );
        let chunked = parse_reply(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(chunked.body, "abcde");
        assert!(parse_reply(b"garbage").is_err());
    }
}
