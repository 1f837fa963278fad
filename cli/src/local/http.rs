//! The receiver's routes on a local HTTP port: each request is handed to the receiver's handler
//! as the `lambda_http::Request` API Gateway would have delivered, and its answer sent back.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use lambda_http::RequestExt;

use super::counters::Counters;

/// Largest body read from a client; the receiver enforces its own, smaller, limit.
const READ_LIMIT: usize = 10 * 1024 * 1024;

/// Serves until the task is aborted.
pub async fn serve(
    listener: tokio::net::TcpListener,
    deps: Arc<receiver::Deps>,
    counters: Arc<Counters>,
) {
    let app = axum::Router::new().fallback(move |request: Request| {
        let (deps, counters) = (Arc::clone(&deps), Arc::clone(&counters));
        async move { answer(request, &deps, &counters).await }
    });
    let _ = axum::serve(listener, app).await;
}

async fn answer(request: Request, deps: &receiver::Deps, counters: &Counters) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, READ_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => return plain(413, "body too large"),
    };
    let path = parts.uri.path().to_owned();
    let target = format!(
        "http://localhost{}",
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut builder = http::Request::builder().method(parts.method).uri(target);
    for (name, value) in &parts.headers {
        builder = builder.header(name, value);
    }
    let body = match String::from_utf8(bytes.to_vec()) {
        Ok(text) if !text.is_empty() => lambda_http::Body::Text(text),
        Ok(_) => lambda_http::Body::Empty,
        Err(raw) => lambda_http::Body::Binary(raw.into_bytes()),
    };
    let Ok(lambda_request) = builder.body(body) else {
        return plain(400, "malformed request");
    };
    let response = receiver::handle(lambda_request.with_raw_http_path(path), deps).await;
    let status = response.status().as_u16();
    if let Ok(mut answers) = counters.answers.lock() {
        *answers.entry(status).or_default() += 1;
    }
    let (parts, body) = response.into_parts();
    let bytes = match body {
        lambda_http::Body::Text(text) => text.into_bytes(),
        lambda_http::Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    };
    Response::from_parts(parts, Body::from(bytes))
}

fn plain(status: u16, text: &'static str) -> Response {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    response
}
