//! Per-user caps on what a gateway holds open for a student: live event streams and upload bodies (issue 26).
//!
//! Each costs the gateway a connection and a buffer for as long as the student keeps it open, so one student's
//! script must not take them all. A [`UserSlots`] counts each user's open ones in this process; a slot is given back
//! when its [`Slot`] is dropped, which is when the stream or the upload ends however it ends. The count is per
//! gateway: a course with two gateways lets a student hold at most twice the cap, which bounds each gateway's cost,
//! the thing the cap protects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;

use crate::ApiError;

/// How many of one kind of thing each user has open, and the most they may.
#[derive(Debug)]
pub struct UserSlots {
    /// What is counted, as the refusal says it: "live event streams".
    what: &'static str,
    max: u32,
    open: Arc<Mutex<HashMap<String, u32>>>,
}

/// One open thing of one user; dropping it gives the slot back.
#[derive(Debug)]
pub struct Slot {
    user: String,
    open: Arc<Mutex<HashMap<String, u32>>>,
}

impl UserSlots {
    /// Slots of `what`, at most `max` per user (0: no cap).
    pub fn new(what: &'static str, max: u32) -> UserSlots {
        UserSlots {
            what,
            max,
            open: Arc::default(),
        }
    }

    /// A slot for `user`, or a 429 that says how many they hold and what to do.
    pub fn take(&self, user: &str) -> Result<Slot, ApiError> {
        let mut open = self.open.lock().expect("slot counts are never poisoned");
        let n = open.entry(user.to_string()).or_default();
        if self.max > 0 && *n >= self.max {
            crate::metrics::metrics().refused("per-user");
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "you have {n} {} open at this gateway, the most one student may; close one (end a `rai logs -f` \
                     or a dashboard tab, or let an upload finish) and try again",
                    self.what
                ),
            ));
        }
        *n += 1;
        Ok(Slot {
            user: user.to_string(),
            open: self.open.clone(),
        })
    }

    /// How many `user` holds now.
    #[cfg(test)]
    fn held(&self, user: &str) -> u32 {
        self.open.lock().unwrap().get(user).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("slot counts are never poisoned");
        if let Some(n) = open.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_at_most_max_and_a_dropped_slot_comes_back() {
        let slots = UserSlots::new("live event streams", 2);
        let a = slots.take("ana").unwrap();
        let _b = slots.take("ana").unwrap();
        let refused = slots.take("ana").unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            refused.message.contains("2 live event streams"),
            "{}",
            refused.message
        );
        // Another student is not affected.
        let _c = slots.take("ben").unwrap();
        drop(a);
        assert_eq!(slots.held("ana"), 1);
        let _d = slots.take("ana").unwrap();
        assert_eq!(slots.held("ana"), 2);
    }

    #[test]
    fn zero_is_no_cap() {
        let slots = UserSlots::new("uploads", 0);
        let held: Vec<_> = (0..100).map(|_| slots.take("ana").unwrap()).collect();
        assert_eq!(slots.held("ana"), 100);
        drop(held);
        assert_eq!(slots.held("ana"), 0);
    }
}
