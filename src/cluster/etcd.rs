//! A small etcd v3 client over etcd's JSON gateway (`/v3/...`, served by
//! etcd ≥ 3.4) on the HTTP client already in the tree: KV (get, range,
//! put, delete), transactions (compare on mod/create revision, version or
//! value; put, delete and range operations), watches from a revision, and
//! leases (grant, keep-alive, revoke).
//!
//! Owns only the wire format (base64 keys and values, 64-bit integers as
//! JSON strings) and the choice of endpoint; it never retries a call and
//! keeps no state about what is stored (the cluster session and any other
//! user own that). Nothing the store sends may panic: every field is
//! checked, and a key that is not UTF-8 is skipped.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

/// How long a unary call (not a watch) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting to an etcd endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Keys per request when reading a prefix (see [`Etcd::range_prefix`]).
const RANGE_PAGE: usize = 500;
/// Largest watch message buffered while incomplete (etcd's own request
/// limit is 1.5 MiB; a batch of events can be larger, but not unboundedly).
const MAX_WATCH_BUFFER: usize = 64 * 1024 * 1024;

/// Why a call to etcd failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EtcdError {
    /// No endpoint could be reached (or the connection broke).
    #[error("etcd unreachable ({endpoint}): {message}")]
    Unreachable {
        /// The endpoint tried last.
        endpoint: String,
        /// What went wrong.
        message: String,
    },
    /// etcd answered with an error.
    #[error("etcd refused {path}: {message}")]
    Refused {
        /// The gateway path called.
        path: &'static str,
        /// etcd's message.
        message: String,
    },
    /// The reply is not what the gateway sends.
    #[error("etcd reply to {path} not understood: {message}")]
    Malformed {
        /// The gateway path called.
        path: &'static str,
        /// What was wrong with it.
        message: String,
    },
    /// The lease is gone (expired or revoked).
    #[error("lease {0} expired")]
    LeaseExpired(i64),
    /// A watch's start revision was compacted away: read everything again.
    #[error("watch start revision compacted (oldest kept: {0})")]
    Compacted(i64),
}

/// One key and its value as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyValue {
    /// The key (UTF-8; other keys are skipped).
    pub key: String,
    /// The value's bytes.
    pub value: Vec<u8>,
    /// Revision of the last change of this key.
    pub mod_revision: i64,
    /// Revision at which the key was created.
    pub create_revision: i64,
    /// Number of changes since it was created (1 after the first put).
    pub version: i64,
    /// The lease the key is attached to (0: none).
    pub lease: i64,
}

/// What a transaction compares a key's state with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareTarget {
    /// Revision of the key's last change (0: the key does not exist).
    ModRevision(i64),
    /// Revision of the key's creation (0: the key does not exist).
    CreateRevision(i64),
    /// Number of changes since creation (0: the key does not exist).
    Version(i64),
    /// The value.
    Value(Vec<u8>),
}

/// How a compared key's state must relate to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareResult {
    /// Equal to it.
    Equal,
    /// Not equal to it.
    NotEqual,
    /// Greater than it.
    Greater,
    /// Less than it.
    Less,
}

/// One condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    /// The key compared.
    pub key: String,
    /// The relation.
    pub result: CompareResult,
    /// What its state is compared with.
    pub target: CompareTarget,
}

impl Compare {
    /// `key` was last changed at `mod_revision` (0: does not exist).
    pub fn unchanged_since(key: impl Into<String>, mod_revision: i64) -> Self {
        Compare {
            key: key.into(),
            result: CompareResult::Equal,
            target: CompareTarget::ModRevision(mod_revision),
        }
    }

    /// `key` does not exist.
    pub fn absent(key: impl Into<String>) -> Self {
        Compare {
            key: key.into(),
            result: CompareResult::Equal,
            target: CompareTarget::Version(0),
        }
    }
}

/// One operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    /// Write a key (attached to `lease` when non-zero).
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// The lease, or 0.
        lease: i64,
    },
    /// Delete one key.
    Delete {
        /// The key.
        key: String,
    },
    /// Delete every key under a prefix.
    DeletePrefix {
        /// The prefix.
        prefix: String,
    },
    /// Read one key.
    Get {
        /// The key.
        key: String,
    },
    /// Read every key under a prefix.
    GetPrefix {
        /// The prefix.
        prefix: String,
    },
}

/// What a transaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnResult {
    /// Whether every comparison held (the `success` operations ran; else
    /// the `failure` ones).
    pub succeeded: bool,
    /// The store's revision after it.
    pub revision: i64,
    /// Per operation that ran, in order: the keys read (empty for puts
    /// and deletes).
    pub reads: Vec<Vec<KeyValue>>,
}

/// The result of reading a prefix.
#[derive(Debug, Clone, Default)]
pub struct RangeResult {
    /// The keys, in key order.
    pub kvs: Vec<KeyValue>,
    /// The store's revision when it was read: watch from `revision + 1`.
    pub revision: i64,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key was written.
    Put(KeyValue),
    /// A key was deleted (or its lease expired).
    Delete {
        /// The key.
        key: String,
        /// Revision of the deletion.
        mod_revision: i64,
    },
}

impl WatchEvent {
    /// The revision of the change.
    pub fn revision(&self) -> i64 {
        match self {
            WatchEvent::Put(kv) => kv.mod_revision,
            WatchEvent::Delete { mod_revision, .. } => *mod_revision,
        }
    }
}

/// A client for a list of etcd endpoints; calls go to the endpoint that
/// answered last and move on to the next when it cannot be reached.
#[derive(Debug)]
pub struct Etcd {
    endpoints: Vec<String>,
    current: AtomicUsize,
    http: reqwest::Client,
}

impl Etcd {
    /// A client for `endpoints` (`http://host:port`, no path).
    ///
    /// # Errors
    /// The HTTP client cannot be built, or no endpoint is given.
    pub fn new(endpoints: &[String]) -> Result<Self, EtcdError> {
        if endpoints.is_empty() {
            return Err(EtcdError::Unreachable {
                endpoint: String::new(),
                message: "no etcd endpoint configured".into(),
            });
        }
        // reqwest is built without a TLS provider of its own.
        crate::health::ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            // Endpoints are http:// (checked with `[cluster]`): no
            // certificate store to load and keep.
            .tls_certs_only([])
            .build()
            .map_err(|err| EtcdError::Unreachable {
                endpoint: endpoints[0].clone(),
                message: format!("building the HTTP client: {err}"),
            })?;
        Ok(Self {
            endpoints: endpoints
                .iter()
                .map(|e| e.trim_end_matches('/').to_string())
                .collect(),
            current: AtomicUsize::new(0),
            http,
        })
    }

    /// Grants a lease of `ttl` (whole seconds, at least 1); returns its id.
    ///
    /// # Errors
    /// etcd is unreachable or refuses.
    pub async fn grant_lease(&self, ttl: Duration) -> Result<i64, EtcdError> {
        const PATH: &str = "/v3/lease/grant";
        let reply = self
            .call(PATH, json!({"TTL": ttl.as_secs().max(1).to_string()}))
            .await?;
        int_field(&reply, "ID").ok_or_else(|| malformed(PATH, "no lease ID"))
    }

    /// Renews a lease once; returns the TTL etcd granted.
    ///
    /// # Errors
    /// [`EtcdError::LeaseExpired`] when the lease is gone; otherwise etcd
    /// is unreachable or refuses.
    pub async fn keep_alive(&self, lease: i64) -> Result<Duration, EtcdError> {
        const PATH: &str = "/v3/lease/keepalive";
        let reply = self.call(PATH, json!({"ID": lease.to_string()})).await?;
        // A lease that is gone comes back with no (zero) TTL.
        match reply.get("result").and_then(|r| int_field(r, "TTL")) {
            Some(ttl) if ttl > 0 => Ok(Duration::from_secs(ttl.unsigned_abs())),
            _ => Err(EtcdError::LeaseExpired(lease)),
        }
    }

    /// Revokes a lease (its keys vanish at once).
    ///
    /// # Errors
    /// etcd is unreachable or refuses.
    pub async fn revoke_lease(&self, lease: i64) -> Result<(), EtcdError> {
        self.call("/v3/lease/revoke", json!({"ID": lease.to_string()}))
            .await
            .map(drop)
    }

    /// Writes `key` (attached to `lease` when non-zero); returns the revision.
    ///
    /// # Errors
    /// etcd is unreachable or refuses (e.g. the lease expired).
    pub async fn put(&self, key: &str, value: &[u8], lease: i64) -> Result<i64, EtcdError> {
        const PATH: &str = "/v3/kv/put";
        let mut body = json!({"key": BASE64.encode(key), "value": BASE64.encode(value)});
        if lease != 0 {
            body["lease"] = json!(lease.to_string());
        }
        let reply = self.call(PATH, body).await?;
        header_revision(&reply).ok_or_else(|| malformed(PATH, "no header revision"))
    }

    /// Deletes `key`.
    ///
    /// # Errors
    /// etcd is unreachable or refuses.
    pub async fn delete(&self, key: &str) -> Result<(), EtcdError> {
        self.call("/v3/kv/deleterange", json!({"key": BASE64.encode(key)}))
            .await
            .map(drop)
    }

    /// Reads one key.
    ///
    /// # Errors
    /// etcd is unreachable or refuses.
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>, EtcdError> {
        const PATH: &str = "/v3/kv/range";
        let reply = self.call(PATH, json!({"key": BASE64.encode(key)})).await?;
        Ok(parse_kvs(&reply).into_iter().next())
    }

    /// Reads every key under `prefix`, and the revision it was read at.
    /// Large prefixes are read in pages of [`RANGE_PAGE`] keys, all at the
    /// first page's revision (one consistent view), so no reply holds the
    /// whole prefix however many members and endpoints write there.
    ///
    /// # Errors
    /// etcd is unreachable or refuses (also when that revision is
    /// compacted away between pages: read again).
    pub async fn range_prefix(&self, prefix: &str) -> Result<RangeResult, EtcdError> {
        const PATH: &str = "/v3/kv/range";
        let range_end = BASE64.encode(prefix_end(prefix));
        let mut start = prefix.as_bytes().to_vec();
        let mut result = RangeResult::default();
        loop {
            let mut body = json!({
                "key": BASE64.encode(&start),
                "range_end": range_end,
                "limit": RANGE_PAGE.to_string(),
            });
            if result.revision != 0 {
                body["revision"] = json!(result.revision.to_string());
            }
            let reply = self.call(PATH, body).await?;
            if result.revision == 0 {
                result.revision =
                    header_revision(&reply).ok_or_else(|| malformed(PATH, "no revision"))?;
            }
            result.kvs.extend(parse_kvs(&reply));
            // The next page starts just after the last key of this one
            // (raw bytes: a key that is not UTF-8 is skipped, not re-read).
            let last = reply
                .get("kvs")
                .and_then(Value::as_array)
                .and_then(|kvs| kvs.last())
                .and_then(|kv| kv.get("key")?.as_str())
                .and_then(|key| BASE64.decode(key).ok());
            match (reply.get("more").and_then(Value::as_bool), last) {
                (Some(true), Some(mut last)) => {
                    last.push(0);
                    start = last;
                }
                _ => return Ok(result),
            }
        }
    }

    /// Writes `key` only if it was last changed at `mod_revision` (0: only
    /// if it does not exist). Returns whether it was written.
    ///
    /// # Errors
    /// etcd is unreachable or refuses.
    pub async fn put_if_unchanged(
        &self,
        key: &str,
        value: &[u8],
        mod_revision: i64,
    ) -> Result<bool, EtcdError> {
        let result = self
            .txn(
                &[Compare::unchanged_since(key, mod_revision)],
                &[TxnOp::Put {
                    key: key.to_string(),
                    value: value.to_vec(),
                    lease: 0,
                }],
                &[],
            )
            .await?;
        Ok(result.succeeded)
    }

    /// Runs a transaction: when every comparison holds, the `success`
    /// operations, else the `failure` ones, all at one revision.
    ///
    /// # Errors
    /// etcd is unreachable or refuses (e.g. a put names an expired lease,
    /// or the request is over etcd's size limit, 1.5 MiB by default).
    pub async fn txn(
        &self,
        compare: &[Compare],
        success: &[TxnOp],
        failure: &[TxnOp],
    ) -> Result<TxnResult, EtcdError> {
        const PATH: &str = "/v3/kv/txn";
        let body = json!({
            "compare": compare.iter().map(compare_json).collect::<Vec<_>>(),
            "success": success.iter().map(op_json).collect::<Vec<_>>(),
            "failure": failure.iter().map(op_json).collect::<Vec<_>>(),
        });
        let reply = self.call(PATH, body).await?;
        let revision = header_revision(&reply).ok_or_else(|| malformed(PATH, "no revision"))?;
        // proto3 JSON leaves out `succeeded` when it is false.
        let succeeded = reply
            .get("succeeded")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let reads = reply
            .get("responses")
            .and_then(Value::as_array)
            .map(|responses| {
                responses
                    .iter()
                    .map(|r| r.get("response_range").map(parse_kvs).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        Ok(TxnResult {
            succeeded,
            revision,
            reads,
        })
    }

    /// Deletes every key under `prefix`; returns how many were deleted.
    ///
    /// # Errors
    /// etcd is unreachable or refuses.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<i64, EtcdError> {
        let reply = self
            .call(
                "/v3/kv/deleterange",
                json!({"key": BASE64.encode(prefix), "range_end": BASE64.encode(prefix_end(prefix))}),
            )
            .await?;
        Ok(int_field(&reply, "deleted").unwrap_or(0))
    }

    /// Starts watching one key from `start_revision`.
    ///
    /// # Errors
    /// As [`Etcd::watch_prefix`].
    pub async fn watch_key(&self, key: &str, start_revision: i64) -> Result<Watch, EtcdError> {
        self.watch(json!({"create_request": {
            "key": BASE64.encode(key),
            "start_revision": start_revision.to_string(),
        }}))
        .await
    }

    /// Starts watching every key under `prefix` from `start_revision`.
    ///
    /// # Errors
    /// etcd is unreachable or refuses; [`EtcdError::Compacted`] when the
    /// revision is no longer kept.
    pub async fn watch_prefix(
        &self,
        prefix: &str,
        start_revision: i64,
    ) -> Result<Watch, EtcdError> {
        self.watch(json!({"create_request": {
            "key": BASE64.encode(prefix),
            "range_end": BASE64.encode(prefix_end(prefix)),
            "start_revision": start_revision.to_string(),
        }}))
        .await
    }

    async fn watch(&self, body: Value) -> Result<Watch, EtcdError> {
        let (endpoint, response) = self.send("/v3/watch", &body, None).await?;
        if !response.status().is_success() {
            return Err(EtcdError::Refused {
                path: "/v3/watch",
                message: format!("HTTP {}", response.status()),
            });
        }
        Ok(Watch {
            endpoint,
            response,
            buffer: Vec::new(),
            ready: VecDeque::new(),
        })
    }

    /// POSTs `body` to `path` and returns the JSON reply.
    async fn call(&self, path: &'static str, body: Value) -> Result<Value, EtcdError> {
        let (endpoint, response) = self.send(path, &body, Some(CALL_TIMEOUT)).await?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|err| unreachable(&endpoint, &err))?;
        let reply: Value = serde_json::from_slice(&bytes)
            .map_err(|err| malformed(path, format!("{err} (HTTP {status})")))?;
        if let Some(message) = reply.get("error").or_else(|| reply.get("message")) {
            return Err(EtcdError::Refused {
                path,
                message: message.as_str().unwrap_or("error").to_string(),
            });
        }
        if !status.is_success() {
            return Err(EtcdError::Refused {
                path,
                message: format!("HTTP {status}"),
            });
        }
        Ok(reply)
    }

    /// Sends a request to the current endpoint, moving on to the others in
    /// turn when one cannot be reached.
    async fn send(
        &self,
        path: &str,
        body: &Value,
        timeout: Option<Duration>,
    ) -> Result<(String, reqwest::Response), EtcdError> {
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for step in 0..self.endpoints.len() {
            let index = (start + step) % self.endpoints.len();
            let endpoint = &self.endpoints[index];
            let mut request = self
                .http
                .post(format!("{endpoint}{path}"))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
            if let Some(timeout) = timeout {
                request = request.timeout(timeout);
            }
            match request.send().await {
                Ok(response) => {
                    self.current.store(index, Ordering::Relaxed);
                    return Ok((endpoint.clone(), response));
                }
                Err(err) => last = Some(unreachable(endpoint, &err)),
            }
        }
        Err(last.unwrap_or_else(|| EtcdError::Unreachable {
            endpoint: String::new(),
            message: "no etcd endpoint configured".into(),
        }))
    }
}

/// An open watch: batches of events in revision order.
#[derive(Debug)]
pub struct Watch {
    endpoint: String,
    response: reqwest::Response,
    buffer: Vec<u8>,
    ready: VecDeque<Vec<WatchEvent>>,
}

impl Watch {
    /// The next batch of events (never empty).
    ///
    /// # Errors
    /// The stream broke or etcd closed it ([`EtcdError::Unreachable`]),
    /// the watch was cancelled because its start revision was compacted
    /// ([`EtcdError::Compacted`]), or etcd sent something unreadable.
    pub async fn next(&mut self) -> Result<Vec<WatchEvent>, EtcdError> {
        const PATH: &str = "/v3/watch";
        loop {
            if let Some(batch) = self.ready.pop_front() {
                return Ok(batch);
            }
            let chunk = self
                .response
                .chunk()
                .await
                .map_err(|err| unreachable(&self.endpoint, &err))?;
            let Some(chunk) = chunk else {
                return Err(EtcdError::Unreachable {
                    endpoint: self.endpoint.clone(),
                    message: "watch stream closed".into(),
                });
            };
            self.buffer.extend_from_slice(&chunk);
            if self.buffer.len() > MAX_WATCH_BUFFER {
                return Err(malformed(PATH, "watch message too large"));
            }
            // The gateway writes one JSON object per message; a chunk may
            // hold several, or part of one.
            let mut consumed = 0;
            let mut stream =
                serde_json::Deserializer::from_slice(&self.buffer).into_iter::<Value>();
            loop {
                match stream.next() {
                    Some(Ok(message)) => {
                        consumed = stream.byte_offset();
                        if let Some(batch) = parse_watch_message(&message)? {
                            self.ready.push_back(batch);
                        }
                    }
                    Some(Err(err)) if err.is_eof() => break,
                    Some(Err(err)) => return Err(malformed(PATH, err.to_string())),
                    None => break,
                }
            }
            self.buffer.drain(..consumed);
        }
    }
}

/// One watch message: `Some(events)`, `None` for messages without events
/// (created, progress), or the cancellation as an error.
fn parse_watch_message(message: &Value) -> Result<Option<Vec<WatchEvent>>, EtcdError> {
    const PATH: &str = "/v3/watch";
    if let Some(error) = message.get("error") {
        return Err(EtcdError::Refused {
            path: PATH,
            message: error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("watch error")
                .to_string(),
        });
    }
    let Some(result) = message.get("result") else {
        return Err(malformed(PATH, "message without result"));
    };
    if let Some(compacted) = int_field(result, "compact_revision").filter(|r| *r > 0) {
        return Err(EtcdError::Compacted(compacted));
    }
    if result.get("canceled").and_then(Value::as_bool) == Some(true) {
        return Err(EtcdError::Refused {
            path: PATH,
            message: result
                .get("cancel_reason")
                .and_then(Value::as_str)
                .unwrap_or("watch cancelled")
                .to_string(),
        });
    }
    let Some(events) = result.get("events").and_then(Value::as_array) else {
        return Ok(None);
    };
    let batch: Vec<WatchEvent> = events
        .iter()
        .filter_map(|event| {
            let kv = parse_kv(event.get("kv")?)?;
            // The event type is omitted for PUT (the enum's zero value).
            match event.get("type").and_then(Value::as_str) {
                Some("DELETE") => Some(WatchEvent::Delete {
                    key: kv.key,
                    mod_revision: kv.mod_revision,
                }),
                _ => Some(WatchEvent::Put(kv)),
            }
        })
        .collect();
    Ok((!batch.is_empty()).then_some(batch))
}

fn compare_json(compare: &Compare) -> Value {
    let result = match compare.result {
        CompareResult::Equal => "EQUAL",
        CompareResult::NotEqual => "NOT_EQUAL",
        CompareResult::Greater => "GREATER",
        CompareResult::Less => "LESS",
    };
    let mut body = json!({"key": BASE64.encode(&compare.key), "result": result});
    let (target, field, value) = match &compare.target {
        CompareTarget::ModRevision(r) => ("MOD", "mod_revision", json!(r.to_string())),
        CompareTarget::CreateRevision(r) => ("CREATE", "create_revision", json!(r.to_string())),
        CompareTarget::Version(v) => ("VERSION", "version", json!(v.to_string())),
        CompareTarget::Value(v) => ("VALUE", "value", json!(BASE64.encode(v))),
    };
    body["target"] = json!(target);
    body[field] = value;
    body
}

fn op_json(op: &TxnOp) -> Value {
    match op {
        TxnOp::Put { key, value, lease } => {
            let mut put = json!({"key": BASE64.encode(key), "value": BASE64.encode(value)});
            if *lease != 0 {
                put["lease"] = json!(lease.to_string());
            }
            json!({"request_put": put})
        }
        TxnOp::Delete { key } => json!({"request_delete_range": {"key": BASE64.encode(key)}}),
        TxnOp::DeletePrefix { prefix } => json!({"request_delete_range": {
            "key": BASE64.encode(prefix), "range_end": BASE64.encode(prefix_end(prefix))}}),
        TxnOp::Get { key } => json!({"request_range": {"key": BASE64.encode(key)}}),
        TxnOp::GetPrefix { prefix } => json!({"request_range": {
            "key": BASE64.encode(prefix), "range_end": BASE64.encode(prefix_end(prefix))}}),
    }
}

/// The key just after every key starting with `prefix` (etcd's range end).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff: to the end of the key space.
    vec![0]
}

fn parse_kvs(reply: &Value) -> Vec<KeyValue> {
    reply
        .get("kvs")
        .and_then(Value::as_array)
        .map(|kvs| kvs.iter().filter_map(parse_kv).collect())
        .unwrap_or_default()
}

fn parse_kv(kv: &Value) -> Option<KeyValue> {
    let key = BASE64.decode(kv.get("key")?.as_str()?).ok()?;
    let value = match kv.get("value").and_then(Value::as_str) {
        Some(v) => BASE64.decode(v).ok()?,
        None => Vec::new(),
    };
    Some(KeyValue {
        key: String::from_utf8(key).ok()?,
        value,
        mod_revision: int_field(kv, "mod_revision").unwrap_or(0),
        create_revision: int_field(kv, "create_revision").unwrap_or(0),
        version: int_field(kv, "version").unwrap_or(0),
        lease: int_field(kv, "lease").unwrap_or(0),
    })
}

/// An int64 field, which the gateway writes as a JSON string.
fn int_field(value: &Value, name: &str) -> Option<i64> {
    match value.get(name)? {
        Value::String(text) => text.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn header_revision(reply: &Value) -> Option<i64> {
    int_field(reply.get("header")?, "revision")
}

fn unreachable(endpoint: &str, err: &reqwest::Error) -> EtcdError {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    EtcdError::Unreachable {
        endpoint: endpoint.to_string(),
        message,
    }
}

fn malformed(path: &'static str, message: impl Into<String>) -> EtcdError {
    EtcdError::Malformed {
        path,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end("/gslb/a"), b"/gslb/b".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }

    #[test]
    fn watch_messages_parse() {
        let created = json!({"result": {"header": {"revision": "3"}, "created": true}});
        assert_eq!(parse_watch_message(&created), Ok(None));
        let events = json!({"result": {"header": {"revision": "5"}, "events": [
            {"kv": {"key": "Zm9v", "mod_revision": "4", "value": "YmFy", "lease": "7"}},
            {"type": "DELETE", "kv": {"key": "Zm9v", "mod_revision": "5"}},
            {"kv": {"key": "!!!", "mod_revision": "6"}},
        ]}});
        assert_eq!(
            parse_watch_message(&events),
            Ok(Some(vec![
                WatchEvent::Put(KeyValue {
                    key: "foo".into(),
                    value: b"bar".to_vec(),
                    mod_revision: 4,
                    lease: 7,
                    ..KeyValue::default()
                }),
                WatchEvent::Delete {
                    key: "foo".into(),
                    mod_revision: 5
                },
            ]))
        );
        let compacted =
            json!({"result": {"header": {}, "canceled": true, "compact_revision": "3"}});
        assert_eq!(
            parse_watch_message(&compacted),
            Err(EtcdError::Compacted(3))
        );
        assert!(parse_watch_message(&json!({"nothing": 1})).is_err());
    }

    #[test]
    fn transaction_parts_are_written_as_the_gateway_reads_them() {
        assert_eq!(
            compare_json(&Compare::unchanged_since("k", 7)),
            json!({"key": "aw==", "result": "EQUAL", "target": "MOD", "mod_revision": "7"})
        );
        assert_eq!(
            compare_json(&Compare::absent("k")),
            json!({"key": "aw==", "result": "EQUAL", "target": "VERSION", "version": "0"})
        );
        assert_eq!(
            op_json(&TxnOp::Put {
                key: "k".into(),
                value: b"v".to_vec(),
                lease: 9
            }),
            json!({"request_put": {"key": "aw==", "value": "dg==", "lease": "9"}})
        );
        assert_eq!(
            op_json(&TxnOp::GetPrefix { prefix: "a".into() }),
            json!({"request_range": {"key": "YQ==", "range_end": "Yg=="}})
        );
    }
}
