//! A downstream HTTP service receiving forwarded events: records every request and answers
//! what each path is scripted to (200 when nothing is scripted), or holds the answer back for
//! good, as a hung service would ([`Reply::Hold`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

use super::server::{self, lock, Served};

/// A scripted answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// This status, with a short text body.
    Status(u16),
    /// 429 or 503 with `Retry-After: secs`.
    RetryAfter {
        /// The status.
        status: u16,
        /// Seconds for the header.
        secs: u64,
    },
    /// No answer at all: the request is recorded and the connection left open until the client
    /// gives up or the service stops, so a test of timeouts does not depend on how long a wait
    /// lasts.
    Hold,
}

/// The status recorded for a request that was held and never answered.
pub const HELD: u16 = 0;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The path.
    pub path: String,
    /// Headers, lower-cased names.
    pub headers: HashMap<String, String>,
    /// The raw body.
    pub body: Vec<u8>,
    /// The status answered, or [`HELD`].
    pub status: u16,
    /// When it arrived, to place it against a key the endpoint switched meanwhile.
    pub at: std::time::Instant,
}

#[derive(Default)]
struct Inner {
    scripts: HashMap<String, VecDeque<Reply>>,
    always: HashMap<String, u16>,
    /// Per path, the share of requests answered 503 and the generator that draws them.
    faults: HashMap<String, (f64, fastrand::Rng)>,
    received: Vec<Received>,
}

type Shared = Arc<Mutex<Inner>>;

/// A running downstream service on 127.0.0.1; stopped when dropped.
pub struct Downstream {
    shared: Shared,
    served: Served,
}

impl Downstream {
    /// Starts the service on a free port.
    pub async fn start() -> Self {
        let (listener, port) = server::bind().await;
        let shared: Shared = Arc::default();
        let app = Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&shared));
        Self {
            shared,
            served: server::serve(listener, port, app),
        }
    }

    /// The URL of `path` on this service.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.served.base_url)
    }

    /// Answers the next requests to `path` with these replies, in order.
    pub fn script(&self, path: &str, replies: Vec<Reply>) {
        lock(&self.shared)
            .scripts
            .entry(path.to_owned())
            .or_default()
            .extend(replies);
    }

    /// Answers every request to `path` with `status` from now on.
    pub fn always(&self, path: &str, status: u16) {
        lock(&self.shared).always.insert(path.to_owned(), status);
    }

    /// Answers 503 to a share of the requests to `path` that nothing scripted, drawn from `seed`:
    /// an endpoint that fails now and then, the same way in every run with that seed.
    pub fn set_faults(&self, path: &str, share: f64, seed: u64) {
        lock(&self.shared).faults.insert(
            path.to_owned(),
            (share.clamp(0.0, 1.0), fastrand::Rng::with_seed(seed)),
        );
    }

    /// Everything received on `path`.
    pub fn received(&self, path: &str) -> Vec<Received> {
        lock(&self.shared)
            .received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

async fn receive(
    State(shared): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (status, retry_after) = record(&shared, uri, &headers, &body);
    if status == HELD {
        return std::future::pending().await;
    }
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match retry_after {
        Some(secs) => (code, [("retry-after", secs.to_string())], "later").into_response(),
        None => (code, "ok").into_response(),
    }
}

/// Records the request and picks its answer: the status (or [`HELD`]) and any Retry-After.
fn record(shared: &Shared, uri: Uri, headers: &HeaderMap, body: &Bytes) -> (u16, Option<u64>) {
    let path = uri.path().to_owned();
    let mut inner = lock(shared);
    let fault = |inner: &mut Inner| {
        let (share, rng) = inner.faults.get_mut(&path)?;
        (rng.f64() < *share).then_some(Reply::Status(503))
    };
    let reply = match inner.scripts.get_mut(&path).and_then(VecDeque::pop_front) {
        Some(reply) => reply,
        None => fault(&mut inner)
            .or_else(|| inner.always.get(&path).map(|s| Reply::Status(*s)))
            .unwrap_or(Reply::Status(200)),
    };
    let (status, retry_after) = match reply {
        Reply::Status(status) => (status, None),
        Reply::RetryAfter { status, secs } => (status, Some(secs)),
        Reply::Hold => (HELD, None),
    };
    inner.received.push(Received {
        path,
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        body: body.to_vec(),
        status,
        at: std::time::Instant::now(),
    });
    (status, retry_after)
}
