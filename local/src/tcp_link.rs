//! A TCP relay to a local service that can be cut and restored: while cut, new connections are
//! refused and open ones are closed, as when the service is stopped, yet the service keeps its
//! state. The local stack reaches its local AWS through one, so a soak can take "AWS" away for a
//! few seconds without losing the queues and tables behind it.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

/// Open connections, so that cutting the link can close them.
type Connections = Arc<Mutex<Vec<AbortHandle>>>;

/// A running relay on 127.0.0.1; closed when dropped.
pub struct TcpLink {
    port: u16,
    upstream: u16,
    accepting: Mutex<Option<JoinHandle<()>>>,
    connections: Connections,
}

fn guard<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl TcpLink {
    /// Starts relaying a free local port to `127.0.0.1:upstream`.
    pub async fn start(upstream: u16) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let link = Self {
            port: listener.local_addr()?.port(),
            upstream,
            accepting: Mutex::new(None),
            connections: Connections::default(),
        };
        link.accept_on(listener);
        Ok(link)
    }

    /// `http://127.0.0.1:<port>`, the address to give clients.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Whether the link is cut.
    pub fn is_cut(&self) -> bool {
        guard(&self.accepting).is_none()
    }

    /// Stops accepting (connections are refused) and closes every open connection.
    pub fn cut(&self) {
        if let Some(task) = guard(&self.accepting).take() {
            task.abort();
        }
        for connection in guard(&self.connections).drain(..) {
            connection.abort();
        }
    }

    /// Accepts again on the same port.
    pub async fn restore(&self) -> io::Result<()> {
        if !self.is_cut() {
            return Ok(());
        }
        // The aborted accept task drops its listener when the runtime next polls it.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(error) if tries < 100 => {
                    tries += 1;
                    tracing::debug!(%error, "port not free yet");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => return Err(error),
            }
        };
        self.accept_on(listener);
        Ok(())
    }

    fn accept_on(&self, listener: TcpListener) {
        let (upstream, connections) = (self.upstream, Arc::clone(&self.connections));
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let relay = tokio::spawn(relay(inbound, upstream));
                let mut open = guard(&connections);
                open.retain(|c| !c.is_finished());
                open.push(relay.abort_handle());
            }
        });
        *guard(&self.accepting) = Some(task);
    }
}

impl Drop for TcpLink {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Copies both ways until either side closes, then closes both: a client that hangs up mid-request
/// (a timeout) leaves no half-open connection holding the service.
async fn relay(inbound: TcpStream, upstream: u16) {
    let Ok(outbound) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let (mut client_read, mut client_write) = inbound.into_split();
    let (mut service_read, mut service_write) = outbound.into_split();
    tokio::select! {
        _ = tokio::io::copy(&mut client_read, &mut service_write) => {}
        _ = tokio::io::copy(&mut service_read, &mut client_write) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An upstream that answers every connection's first read with `pong` and keeps a count.
    async fn echo() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4];
                    while stream.read_exact(&mut buf).await.is_ok() {
                        if stream.write_all(b"pong").await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        port
    }

    async fn ping(stream: &mut TcpStream) -> io::Result<[u8; 4]> {
        stream.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).await?;
        Ok(buf)
    }

    #[tokio::test]
    async fn relays_refuses_while_cut_and_resumes_on_the_same_port() {
        let link = TcpLink::start(echo().await).await.unwrap();
        let address = ("127.0.0.1", link.port);
        let mut open = TcpStream::connect(address).await.unwrap();
        assert_eq!(&ping(&mut open).await.unwrap(), b"pong");

        link.cut();
        assert!(link.is_cut());
        assert!(
            ping(&mut open).await.is_err(),
            "an open connection is closed"
        );
        // The accept task is gone once the runtime has run the abort; then connecting is refused.
        let mut refused = false;
        for _ in 0..100 {
            if TcpStream::connect(address).await.is_err() {
                refused = true;
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(refused, "new connections are refused while cut");

        link.restore().await.unwrap();
        assert!(!link.is_cut());
        let mut again = TcpStream::connect(address).await.unwrap();
        assert_eq!(&ping(&mut again).await.unwrap(), b"pong");
    }
}
