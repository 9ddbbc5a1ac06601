//! Serving the gateway: TLS (rustls) when `gateway.tls_cert` and `gateway.tls_key` are set; plain HTTP only on a
//! loopback address, where nothing crosses a network. The bound address is logged as
//! `gateway listening on URL` (port 0 picks a free port; tests read the URL from that line).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::{Gateway, StartError};

/// How long open connections (event streams, uploads) get to finish once the gateway is told to stop.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A gateway that is serving.
pub struct Listening {
    /// `https://host:port` or `http://127.0.0.1:port`.
    pub url: String,
    pub addr: SocketAddr,
    /// Ends when the gateway stopped.
    pub task: JoinHandle<()>,
}

async fn resolve(listen: &str) -> Result<SocketAddr, StartError> {
    tokio::net::lookup_host(listen)
        .await
        .map_err(|source| StartError::ListenAddress {
            listen: listen.to_string(),
            source,
        })?
        .next()
        .ok_or_else(|| StartError::NoAddress {
            listen: listen.to_string(),
        })
}

/// The modification times of the certificate and key files.
fn modified(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Option<(std::time::SystemTime, std::time::SystemTime)> {
    let at = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((at(cert)?, at(key)?))
}

/// Serves a renewed certificate without a restart: when the certificate or key file changes (certbot, a course's
/// own CA), new connections get the new one; open ones keep theirs. A renewal that does not load is logged, and
/// the old certificate stays in use.
fn watch_certificate(
    tls: axum_server::tls_rustls::RustlsConfig,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    every: Duration,
) {
    tokio::spawn(async move {
        let mut seen = modified(&cert, &key);
        loop {
            tokio::time::sleep(every).await;
            let now = modified(&cert, &key);
            if now.is_none() || now == seen {
                continue;
            }
            // Both files may be mid-write: wait a moment, then load the pair.
            tokio::time::sleep(Duration::from_millis(500)).await;
            match tls.reload_from_pem_file(&cert, &key).await {
                Ok(()) => {
                    seen = modified(&cert, &key);
                    tracing::info!(cert = %cert.display(), "serving the renewed TLS certificate");
                }
                Err(e) => tracing::error!(
                    cert = %cert.display(),
                    error = %e,
                    "the renewed TLS certificate does not load; still serving the previous one"
                ),
            }
        }
    });
}

/// Binds `gateway.listen` and serves until `stop` completes.
pub async fn serve(
    gateway: Arc<Gateway>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<Listening, StartError> {
    let config = &gateway.config.gateway;
    let listen = config.listen.clone().ok_or(StartError::NoListen)?;
    let wanted = resolve(&listen).await?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (None, None) => None,
        _ => return Err(StartError::HalfTls),
    };
    if tls.is_none() && !wanted.ip().is_loopback() {
        return Err(StartError::PlainBeyondLoopback { addr: wanted });
    }
    let bound = |source| StartError::Bind {
        addr: wanted,
        source,
    };
    let listener = std::net::TcpListener::bind(wanted).map_err(bound)?;
    listener.set_nonblocking(true).map_err(bound)?;
    let addr = listener.local_addr().map_err(bound)?;
    let app = gateway.clone().router();
    let (url, task) = match tls {
        Some((cert, key)) => {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .map_err(|source| StartError::Tls {
                    cert: cert.clone(),
                    key: key.clone(),
                    source,
                })?;
            watch_certificate(
                tls.clone(),
                cert.clone(),
                key.clone(),
                config
                    .tls_check_every
                    .as_duration()
                    .max(Duration::from_millis(100)),
            );
            let handle = axum_server::Handle::new();
            // TCP_NODELAY: rustls may write a response's head and body as separate records, and with Nagle on the
            // second would wait for the client's delayed ACK (up to 40 ms on Linux). Event streams want each line
            // sent when it is written.
            let server = axum_server::from_tcp_rustls(listener, tls)
                .map_err(bound)?
                .map(|tls| tls.acceptor(axum_server::accept::NoDelayAcceptor::new()))
                .handle(handle.clone())
                .serve(app.into_make_service());
            let task = tokio::spawn(async move {
                tokio::spawn(async move {
                    stop.await;
                    handle.graceful_shutdown(Some(STOP_GRACE));
                });
                if let Err(e) = server.await {
                    tracing::error!(error = %e, "the gateway stopped serving");
                }
            });
            let host = if addr.ip().is_unspecified() {
                "localhost".to_string()
            } else {
                addr.ip().to_string()
            };
            (format!("https://{host}:{}", addr.port()), task)
        }
        None => {
            let listener = tokio::net::TcpListener::from_std(listener).map_err(bound)?;
            let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
            let server = axum::serve(listener, app).with_graceful_shutdown(async move {
                stop.await;
                let _ = stopped_tx.send(());
            });
            let task = tokio::spawn(async move {
                let grace = async {
                    let _ = stopped_rx.await;
                    tokio::time::sleep(STOP_GRACE).await;
                };
                tokio::select! {
                    served = server => if let Err(e) = served {
                        tracing::error!(error = %e, "the gateway stopped serving");
                    },
                    () = grace => {}
                }
            });
            (format!("http://{addr}"), task)
        }
    };
    super::sweep::start(&gateway);
    tracing::info!("gateway listening on {url}");
    Ok(Listening { url, addr, task })
}
