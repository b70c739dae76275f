//! The first write failure since the last successful commit, for health checks and messages.

use std::sync::Mutex;

#[derive(Debug, Default)]
pub(crate) struct WriteHealth {
    first_failure: Mutex<Option<String>>,
}

impl WriteHealth {
    /// Keeps `why` unless an earlier failure is already kept.
    pub fn note(&self, why: &str) {
        self.first_failure.lock().expect("write health").get_or_insert_with(|| why.to_owned());
    }

    /// A write succeeded.
    pub fn clear(&self) {
        *self.first_failure.lock().expect("write health") = None;
    }

    pub fn failure(&self) -> Option<String> {
        self.first_failure.lock().expect("write health").clone()
    }
}
