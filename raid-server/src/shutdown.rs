//! Signals: the first SIGTERM or SIGINT asks the worker to drain; a second one asks it to stop at once. SIGHUP asks
//! it to reload the account registry.

use tokio::sync::watch;

/// How far along shutdown is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Running,
    /// Stop leasing; let running jobs finish within the grace period.
    Drain,
    /// Hand running jobs back now.
    Now,
}

/// Listens for SIGTERM/SIGINT (and SIGHUP) and reports the phase and reload requests through watch channels.
pub fn listen() -> (watch::Receiver<Phase>, watch::Receiver<u64>) {
    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    let (hup_tx, hup_rx) = watch::channel(0u64);
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            tracing::error!("cannot listen for signals");
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
                _ = hup.recv() => {
                    hup_tx.send_modify(|n| *n += 1);
                    continue;
                }
            }
            let next = match *phase_tx.borrow() {
                Phase::Running => Phase::Drain,
                _ => Phase::Now,
            };
            tracing::warn!(?next, "signal received");
            let _ = phase_tx.send(next);
        }
    });
    (phase_rx, hup_rx)
}
