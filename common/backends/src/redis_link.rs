//! Opening Redis connections the same way everywhere: reconnecting managers, no response timeout on the
//! connections that block, and an endpoint name (without the password) for error messages.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// `host:port` of a Redis URL, without credentials, for messages.
pub fn endpoint_of(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let host = rest.rsplit('@').next().unwrap_or(rest);
    host.split('/').next().unwrap_or(host).to_string()
}

/// A reconnecting connection. `blocking` connections have no response timeout, for `XREADGROUP BLOCK` and the
/// like (the default 500 ms would cut every blocking read short).
pub async fn manager(url: &str, blocking: bool) -> Result<ConnectionManager, redis::RedisError> {
    let client = redis::Client::open(url)?;
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
