//! systemd integration: `Type=notify` readiness and the watchdog. Outside systemd these do nothing.

/// Tells systemd the worker is ready.
pub fn ready() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
}

/// Tells systemd the worker is stopping.
pub fn stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}

/// Pets the watchdog (from the heartbeat loop, so a stuck worker is restarted).
pub fn watchdog() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
}
