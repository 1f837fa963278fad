//! What every fake shares: a loopback listener on a free port, the server task (stopped when
//! dropped), and its state behind a mutex that a failed test cannot poison for the next.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::Request;
use axum::http::header::{CONNECTION, HOST, TRANSFER_ENCODING};
use axum::middleware::{self, Next};
use axum::response::Response;

/// A server task serving on 127.0.0.1; aborted when dropped.
pub struct Served {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A listener on a free loopback port, and that port.
pub async fn bind() -> (tokio::net::TcpListener, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let port = listener.local_addr().expect("local address").port();
    (listener, port)
}

/// Serves `app` on `listener` until dropped.
pub fn serve(listener: tokio::net::TcpListener, port: u16, app: axum::Router) -> Served {
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Served {
        base_url: format!("http://127.0.0.1:{port}"),
        task,
    }
}

/// A wait before every answer of a fake, as a service across a network would make; it can be
/// changed while the fake serves. None by default.
#[derive(Debug, Clone, Default)]
pub struct Latency(Arc<Mutex<Duration>>);

impl Latency {
    /// Makes every answer from now on wait `latency` first; `Duration::ZERO` answers at once.
    pub fn set(&self, latency: Duration) {
        *lock(&self.0) = latency;
    }

    /// `app` with every answer, refusals included, waiting the current latency first.
    pub fn apply<S: Clone + Send + Sync + 'static>(&self, app: axum::Router<S>) -> axum::Router<S> {
        let latency = self.clone();
        app.layer(middleware::from_fn(move |request: Request, next: Next| {
            let wait = *lock(&latency.0);
            async move {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                next.run(request).await
            }
        }))
    }
}

/// The state, even if a panicking handler poisoned the lock.
pub fn lock<T>(shared: &Arc<Mutex<T>>) -> MutexGuard<'_, T> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A relay on 127.0.0.1 that forwards each request to `upstream` only once the one before it
/// was answered; stopped when dropped.
pub async fn one_at_a_time(upstream: &str) -> Served {
    let (listener, port) = bind().await;
    let upstream = upstream.to_owned();
    let client = reqwest::Client::new();
    let turn = Arc::new(tokio::sync::Mutex::new(()));
    let app = axum::Router::new().fallback(move |request: Request| {
        let (upstream, client, turn) = (upstream.clone(), client.clone(), Arc::clone(&turn));
        async move {
            let _turn = turn.lock().await;
            relay(&client, &upstream, request).await
        }
    });
    serve(listener, port, app)
}

/// Forwards `request` to `upstream` as it came, and its answer back; a relay that fails answers
/// 502 with the reason. A local AWS does not check the request signature, which the new Host no
/// longer matches.
pub async fn relay(client: &reqwest::Client, upstream: &str, request: Request) -> Response {
    forward(client, upstream, request)
        .await
        .unwrap_or_else(|problem| {
            let mut response = Response::new(axum::body::Body::from(problem));
            *response.status_mut() = axum::http::StatusCode::BAD_GATEWAY;
            response
        })
}

async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    request: Request,
) -> Result<Response, String> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| format!("could not read the request body: {e}"))?;
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = parts.headers;
    headers.remove(HOST);
    let answer = client
        .request(parts.method, format!("{upstream}{path}"))
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("could not relay to {upstream}: {e}"))?;
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != TRANSFER_ENCODING && name != CONNECTION {
            response = response.header(name, value);
        }
    }
    let body = answer
        .bytes()
        .await
        .map_err(|e| format!("could not read the answer of {upstream}: {e}"))?;
    response
        .body(axum::body::Body::from(body))
        .map_err(|e| format!("could not build the relayed answer: {e}"))
}
