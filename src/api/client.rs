//! The HTTP client of `gslb reload`, `gslb explain`, `gslb override` and
//! `gslb weight`: one request to the admin API (plain HTTP, no proxy), made
//! with `reqwest` on a runtime of its own (the commands are not async).

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;

/// How long `gslb reload` waits (a reload with large databases takes time).
const TIMEOUT: Duration = Duration::from_secs(60);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest reply read.
const REPLY_LIMIT: usize = 4 * 1024 * 1024;

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
    /// The client's runtime could not start.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Connecting, sending or reading the reply failed.
    #[error("{}", crate::health::error_chain(.0))]
    Http(#[from] reqwest::Error),
}

/// POSTs an empty body to `path`, with a bearer token when given.
///
/// # Errors
/// The server cannot be reached or the exchange fails.
pub fn post(addr: SocketAddr, path: &str, token: Option<&str>) -> Result<Reply, ClientError> {
    request(addr, Method::POST, path, token, "")
}

/// POSTs a JSON `body` to `path`, with a bearer token when given.
///
/// # Errors
/// The server cannot be reached or the exchange fails.
pub fn post_json(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Result<Reply, ClientError> {
    request(addr, Method::POST, path, token, body)
}

/// GETs `path` (a read-only call: no token).
///
/// # Errors
/// The server cannot be reached or the exchange fails.
pub fn get(addr: SocketAddr, path: &str) -> Result<Reply, ClientError> {
    request(addr, Method::GET, path, None, "")
}

/// One request; `body` (JSON) is sent when not empty.
fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Result<Reply, ClientError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        crate::health::ensure_crypto_provider();
        let client = reqwest::Client::builder()
            // The admin API is asked directly, never through a proxy.
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TIMEOUT)
            .build()?;
        let mut request = client.request(method, format!("http://{addr}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if !body.is_empty() {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let mut response = request.send().await?;
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            let room = REPLY_LIMIT - bytes.len();
            bytes.extend(chunk.iter().take(room));
            if bytes.len() == REPLY_LIMIT {
                break;
            }
        }
        Ok(Reply {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    })
}
