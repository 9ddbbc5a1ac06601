//! Opening Redis connections the same way everywhere: over TLS when the URL is `rediss://` (with the course's CA
//! and, for mutual TLS, a client certificate), reconnecting managers, no response timeout on the connections that
//! block, and an endpoint name (without the password) for error messages.

use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError};

/// A Redis and how to reach it: its URL (`redis://` or `rediss://`, with the ACL user and password) and, for TLS,
/// the CA certificate to trust (none: the system's) and the client certificate and key for mutual TLS.
///
/// The files are read each time a connection is made, so certificates rotated on disk are used from the next
/// reconnection on, without a restart.
#[derive(Clone, Default)]
pub struct RedisTarget {
    url: String,
    ca_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it holds the password.
        f.debug_struct("RedisTarget")
            .field("endpoint", &endpoint_of(&self.url))
            .field("tls", &self.is_tls())
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .finish()
    }
}

impl From<&str> for RedisTarget {
    fn from(url: &str) -> Self {
        RedisTarget {
            url: url.to_string(),
            ..Default::default()
        }
    }
}

impl From<&String> for RedisTarget {
    fn from(url: &String) -> Self {
        RedisTarget::from(url.as_str())
    }
}

impl From<&RedisTarget> for RedisTarget {
    fn from(target: &RedisTarget) -> Self {
        target.clone()
    }
}

impl RedisTarget {
    /// The Redis at `url`, trusting `ca_file` (PEM) and presenting `client_cert` and `client_key` (PEM) when set.
    pub fn new(
        url: &str,
        ca_file: Option<&Path>,
        client_cert: Option<&Path>,
        client_key: Option<&Path>,
    ) -> RedisTarget {
        RedisTarget {
            url: url.to_string(),
            ca_file: ca_file.map(Path::to_path_buf),
            client_cert: client_cert.map(Path::to_path_buf),
            client_key: client_key.map(Path::to_path_buf),
        }
    }

    /// The events' Redis of a config (`events.redis_url`, `events.ca_file`, `events.client_cert`,
    /// `events.client_key`).
    pub fn events(config: &rai_common::Config) -> RedisTarget {
        Self::with_events_tls(config, &config.events.redis_url)
    }

    /// The queue's Redis of a config (`queue.redis_url`, or the events' Redis), with the events' TLS files.
    pub fn queue(config: &rai_common::Config) -> RedisTarget {
        Self::with_events_tls(config, config.queue_redis_url())
    }

    fn with_events_tls(config: &rai_common::Config, url: &str) -> RedisTarget {
        let e = &config.events;
        RedisTarget::new(
            url,
            e.ca_file.as_deref(),
            e.client_cert.as_deref(),
            e.client_key.as_deref(),
        )
    }

    /// The URL, with its credentials: never log it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `host:port`, for messages.
    pub fn endpoint(&self) -> String {
        endpoint_of(&self.url)
    }

    /// Whether Redis is on this machine's loopback (plain text there crosses no network).
    pub fn is_local(&self) -> bool {
        redis::IntoConnectionInfo::into_connection_info(self.url.as_str())
            .ok()
            .is_some_and(|info| match info.addr() {
                redis::ConnectionAddr::Tcp(host, _)
                | redis::ConnectionAddr::TcpTls { host, .. } => {
                    rai_common::config::is_loopback_host(host)
                }
                _ => true,
            })
    }

    /// Whether connections are TLS (`rediss://`).
    pub fn is_tls(&self) -> bool {
        self.url.starts_with("rediss://")
    }

    /// The user the URL logs in as (`default` when it names none).
    pub fn user(&self) -> String {
        redis::IntoConnectionInfo::into_connection_info(self.url.as_str())
            .ok()
            .and_then(|i| i.redis_settings().username().map(str::to_string))
            .unwrap_or_else(|| "default".into())
    }

    /// A client for this Redis; its TLS files are read now.
    pub fn client(&self) -> Result<redis::Client, RedisError> {
        let tls_files =
            self.ca_file.is_some() || self.client_cert.is_some() || self.client_key.is_some();
        if !self.is_tls() {
            if tls_files {
                return Err(RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "a Redis CA or client certificate is set, but the Redis URL is not rediss://",
                    "write the URL as rediss://host:port (TLS), or remove events.ca_file, events.client_cert and \
                     events.client_key"
                        .to_string(),
                )));
            }
            return redis::Client::open(self.url.as_str());
        }
        // The process's crypto provider (aws-lc-rs), as the gateway's TLS uses; a no-op once one is installed.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let read = |what: &'static str, path: &Path| {
            std::fs::read(path).map_err(|e| {
                RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    what,
                    format!("cannot read {}: {e}", path.display()),
                ))
            })
        };
        let client_tls = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: read("events.client_cert", cert)?,
                client_key: read("events.client_key", key)?,
            }),
            (None, None) => None,
            _ => {
                return Err(RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "events.client_cert and events.client_key go together",
                    "set both for mutual TLS, or neither".to_string(),
                )));
            }
        };
        let root_cert = match &self.ca_file {
            Some(ca) => Some(read("events.ca_file", ca)?),
            None => None,
        };
        redis::Client::build_with_tls(
            self.url.as_str(),
            redis::TlsCertificates {
                client_tls,
                root_cert,
            },
        )
    }
}

/// `host:port` of a Redis URL, without credentials, for messages.
pub fn endpoint_of(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let host = rest.rsplit('@').next().unwrap_or(rest);
    host.split('/').next().unwrap_or(host).to_string()
}

/// A reconnecting connection. `blocking` connections have no response timeout, for `XREADGROUP BLOCK` and the
/// like (the default 500 ms would cut every blocking read short).
pub async fn manager(
    target: &RedisTarget,
    blocking: bool,
) -> Result<ConnectionManager, redis::RedisError> {
    let client = target.client()?;
    let response_timeout = if blocking {
        None
    } else {
        Some(Duration::from_secs(10))
    };
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(response_timeout)
        .set_number_of_retries(6)
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_with_config(client, config).await
}

/// Whether an error means the connection (not the command) failed, or the server is not ready yet (still loading
/// its data after a restart), so a retry may succeed.
pub fn is_transient(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(e.code(), Some("LOADING" | "TRYAGAIN" | "MASTERDOWN"))
}

/// How long a one-shot command keeps trying through a dropped connection or a restarting Redis before its error
/// reaches the caller.
pub const RETRY_FOR: Duration = Duration::from_secs(15);

/// Runs `op` again, with the [shared backoff](crate::retry), while it fails with a [transient](is_transient)
/// error, for up to [`RETRY_FOR`]. The connection manager reconnects by itself but fails the command that was in
/// flight; this retries it.
pub async fn retry_transient<T, F, Fut>(mut op: F) -> Result<T, redis::RedisError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, redis::RedisError>>,
{
    let mut delays = crate::retry::for_up_to(RETRY_FOR);
    loop {
        match op().await {
            Err(e) if is_transient(&e) => match delays.next() {
                Some(delay) => tokio::time::sleep(delay).await,
                None => return Err(e),
            },
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_redis_on_loopback_is_local_and_tls_is_told_by_the_scheme() {
        let t = |url: &str| super::RedisTarget::from(url);
        assert!(t("redis://127.0.0.1:6379").is_local());
        assert!(t("rediss://raid:pw@localhost:6380").is_local());
        assert!(!t("rediss://raid:pw@10.0.0.5:6380").is_local());
        assert!(t("rediss://raid:pw@10.0.0.5:6380").is_tls());
        assert!(!t("redis://redis.course.internal:6379").is_tls());
        assert_eq!(t("rediss://raid:pw@10.0.0.5:6380").user(), "raid");
    }

    #[test]
    fn endpoints_hide_passwords() {
        assert_eq!(
            super::endpoint_of("redis://user:pw@10.0.0.1:6379/0"),
            "10.0.0.1:6379"
        );
        assert_eq!(
            super::endpoint_of("redis://127.0.0.1:7000"),
            "127.0.0.1:7000"
        );
    }
}
