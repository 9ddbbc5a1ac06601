//! Serving the gateway: TLS (rustls) when `gateway.tls_cert` and `gateway.tls_key` are set; plain HTTP only on a
//! loopback address, where nothing crosses a network. The bound address is logged as
//! `gateway listening on URL` (port 0 picks a free port; tests read the URL from that line).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::task::JoinHandle;

use super::Gateway;

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

async fn resolve(listen: &str) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host(listen)
        .await
        .with_context(|| format!("gateway.listen {listen:?} is not host:port"))?
        .next()
        .with_context(|| format!("gateway.listen {listen:?} names no address"))
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
) -> anyhow::Result<Listening> {
    let config = &gateway.config.gateway;
    let listen = config
        .listen
        .clone()
        .context("gateway.listen is not set; give the address to serve on, such as 0.0.0.0:8443")?;
    let wanted = resolve(&listen).await?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (None, None) => None,
        _ => bail!("set both gateway.tls_cert and gateway.tls_key, or neither"),
    };
    if tls.is_none() && !wanted.ip().is_loopback() {
        bail!(
            "gateway.listen is {wanted}, not a loopback address, and no TLS certificate is set: students' keys \
             would sign requests anyone on the network can read; set gateway.tls_cert and gateway.tls_key \
             (or listen on 127.0.0.1)"
        );
    }
    let listener = std::net::TcpListener::bind(wanted)
        .with_context(|| format!("cannot listen on {wanted}"))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let app = gateway.clone().router();
    let (url, task) = match tls {
        Some((cert, key)) => {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .with_context(|| {
                    format!(
                        "cannot load the gateway's TLS certificate {} and key {}",
                        cert.display(),
                        key.display()
                    )
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
            let server = axum_server::from_tcp_rustls(listener, tls)?
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
            let listener = tokio::net::TcpListener::from_std(listener)?;
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
