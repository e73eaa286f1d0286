use bytes::Bytes;
use http::Response;

use crate::config::CodeSet;
use crate::ConnectError;

/// Decides which outcomes count against a target's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classify {
    failure_codes: CodeSet,
}

impl Classify {
    pub fn new(failure_codes: CodeSet) -> Self {
        Classify { failure_codes }
    }

    /// True when the outcome is a failure of the target (not of the caller).
    pub fn is_failure(&self, outcome: &Result<Response<Bytes>, ConnectError>) -> bool {
        match outcome {
            Ok(_) => false,
            Err(e) => self.failure_codes.contains(e.code),
        }
    }
}
