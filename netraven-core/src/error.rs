//! The one error type that crosses every NetRaven trait boundary.
//!
//! An [`Error`] carries a [`ErrorKind`] (what went wrong, in words a caller can branch on), a
//! human message with context, an optional source, and — derived from the kind — whether a retry
//! can help. Retry logic reads [`Error::is_retryable`] and nothing else.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A boxed error source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used throughout NetRaven.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is.
///
/// The kinds double as the `error_kind` recorded on a failed device result, so they serialise
/// as stable snake_case strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The requested object does not exist.
    NotFound,
    /// The object already exists or conflicts with another (unique key).
    Conflict,
    /// The input was rejected (validation, parse).
    InvalidInput,
    /// A device or service refused the credentials.
    Auth,
    /// No usable credential was left for a device.
    NoCredentials,
    /// The device's SSH host key did not match the pinned key, or none was pinned under `strict`.
    HostKey,
    /// A deadline passed.
    Timeout,
    /// The TCP connection could not be opened or was dropped.
    Connection,
    /// The device answered something the driver could not understand (prompt, protocol).
    Protocol,
    /// A command was rejected by the device.
    Command,
    /// A backing service (database, Redis, git) is unavailable right now.
    Unavailable,
    /// Normalisation or redaction failed; nothing was stored (fails closed).
    Redaction,
    /// A stale holder tried to act on a lease that a newer attempt owns.
    Stale,
    /// The operation was cancelled (shutdown).
    Cancelled,
    /// Encryption or decryption failed (wrong key, tampered ciphertext).
    Crypto,
    /// A bug or an unexpected state.
    Internal,
    /// A device sent more output than allowed (per command, or in one line); nothing of it is
    /// kept.
    TooLarge,
    /// A task was delivered again after an attempt had already started working on the device
    /// (a command job): it is recorded instead of being executed a second time.
    Interrupted,
    /// The device's address is outside the allowed networks (`security.allowed_networks`):
    /// nothing was sent to it.
    AddressRefused,
    /// The device's zone had no live worker for the zone timeout: nobody could reach it.
    NoWorker,
}

impl ErrorKind {
    /// Whether an operation that failed with this kind may succeed when tried again later.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Timeout | ErrorKind::Connection | ErrorKind::Unavailable
        )
    }

    /// The stable snake_case name of this kind (as recorded in results and logs).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Auth => "auth",
            ErrorKind::NoCredentials => "no_credentials",
            ErrorKind::HostKey => "host_key",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Command => "command",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Redaction => "redaction",
            ErrorKind::Stale => "stale",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Crypto => "crypto",
            ErrorKind::Internal => "internal",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::AddressRefused => "address_refused",
            ErrorKind::NoWorker => "no_worker",
        }
    }

    /// Parses the name produced by [`ErrorKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A NetRaven error: a kind, a message with context, and an optional source.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<BoxError>,
    untrusted_host: bool,
}

impl Error {
    /// Creates an error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
            untrusted_host: false,
        }
    }

    /// Marks a failure (an `auth` rejection) as coming from a device not trusted yet: its host
    /// key was first seen during this connection, or is not verified at all. The engine then
    /// tries no further credential on it in the same attempt, so a server posing as a device
    /// collects at most one.
    pub fn on_untrusted_host(mut self) -> Self {
        self.untrusted_host = true;
        self
    }

    /// Whether the failure came from a device not trusted yet (see [`Error::on_untrusted_host`]).
    pub fn is_on_untrusted_host(&self) -> bool {
        self.untrusted_host
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message (without the kind prefix).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether trying again later may help.
    pub fn is_retryable(&self) -> bool {
        // A rejection by a device not trusted yet stops its attempt after one new candidate;
        // the next attempt may offer the next one.
        self.kind.is_retryable() || (self.kind == ErrorKind::Auth && self.untrusted_host)
    }

    /// Shorthand for [`ErrorKind::NotFound`].
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotFound, what)
    }
    /// Shorthand for [`ErrorKind::Conflict`].
    pub fn conflict(what: impl Into<String>) -> Self {
        Error::new(ErrorKind::Conflict, what)
    }
    /// Shorthand for [`ErrorKind::InvalidInput`].
    pub fn invalid(what: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, what)
    }
    /// Shorthand for [`ErrorKind::Internal`].
    pub fn internal(what: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, what)
    }
    /// Shorthand for [`ErrorKind::Unavailable`].
    pub fn unavailable(what: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unavailable, what)
    }
    /// Shorthand for [`ErrorKind::Stale`].
    pub fn stale(what: impl Into<String>) -> Self {
        Error::new(ErrorKind::Stale, what)
    }
    /// Shorthand for [`ErrorKind::Timeout`].
    pub fn timeout(what: impl Into<String>) -> Self {
        Error::new(ErrorKind::Timeout, what)
    }

    /// Prefixes the message with context, keeping kind and source.
    pub fn context(mut self, ctx: impl fmt::Display) -> Self {
        self.message = format!("{ctx}: {}", self.message);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_kinds_are_transient_ones() {
        assert!(Error::timeout("x").is_retryable());
        assert!(Error::new(ErrorKind::Connection, "x").is_retryable());
        assert!(!Error::new(ErrorKind::Auth, "x").is_retryable());
        assert!(!Error::new(ErrorKind::HostKey, "x").is_retryable());
    }

    #[test]
    fn kind_names_round_trip() {
        for k in [
            ErrorKind::NoCredentials,
            ErrorKind::HostKey,
            ErrorKind::Timeout,
            ErrorKind::TooLarge,
            ErrorKind::Interrupted,
            ErrorKind::AddressRefused,
        ] {
            assert_eq!(ErrorKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(ErrorKind::parse("nope"), None);
    }
}
