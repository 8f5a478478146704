//! A TCP proxy on loopback between the pool and the server, which a test can cut: the client
//! side of every connection open at that moment is closed, while the server side stays open
//! for a while, so a statement in flight runs on and commits with nobody to read its reply.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The proxy; dropping it stops accepting connections.
pub struct Proxy {
    address: SocketAddr,
    /// The generation of connections: a cut moves it on, and connections of older
    /// generations close their client side.
    generation: watch::Sender<u64>,
    /// While `true`, new connections wait before they reach the server.
    paused: Arc<watch::Sender<bool>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a proxy");
        let address = listener.local_addr().expect("proxy address");
        let (generation, _) = watch::channel(0_u64);
        let paused = Arc::new(watch::channel(false).0);
        let accept = tokio::spawn({
            let generation = generation.clone();
            let paused = Arc::clone(&paused);
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let cut = generation.subscribe();
                    let mut resumed = paused.subscribe();
                    tokio::spawn(async move {
                        while *resumed.borrow_and_update() {
                            if resumed.changed().await.is_err() {
                                return;
                            }
                        }
                        pump(client, upstream, cut).await;
                    });
                }
            }
        });
        Self {
            address,
            generation,
            paused,
            accept,
        }
    }

    /// The `postgres://` URL of the proxy, for the database named by `url`.
    pub fn url(&self, url: &str) -> String {
        let options: sqlx::postgres::PgConnectOptions = url.parse().expect("DATABASE_URL");
        let user = options.get_username();
        let database = options.get_database().unwrap_or("postgres");
        format!("postgres://{user}@{}/{database}", self.address)
    }

    /// Closes the client side of every connection open now.
    pub fn cut(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// New connections wait (`true`) or go through (`false`).
    pub fn pause(&self, paused: bool) {
        self.paused.send_replace(paused);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn pump(mut client: TcpStream, upstream: SocketAddr, mut cut: watch::Receiver<u64>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    cut.mark_unchanged();
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cut.changed() => {
            drop(client);
            // The server's side stays open: the statement in flight runs to its end.
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    }
}
