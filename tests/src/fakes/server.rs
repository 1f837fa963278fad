//! What every fake shares: a loopback listener on a free port, the server task (stopped when
//! dropped), and its state behind a mutex that a failed test cannot poison for the next.

use std::sync::{Arc, Mutex, MutexGuard};

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

/// The state, even if a panicking handler poisoned the lock.
pub fn lock<T>(shared: &Arc<Mutex<T>>) -> MutexGuard<'_, T> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
