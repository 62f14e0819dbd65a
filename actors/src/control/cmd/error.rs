//! The control socket's errors: a machine-readable [`ErrorCode`] and a human message.

use serde::{Deserialize, Serialize};

macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $code:literal,)*) => {
        /// The `error` of a failed command (snake_case on the wire). Clients compare it, so
        /// an existing code never changes; new ones may be added.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as the wire spells it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }
        }
    };
}

error_codes! {
    /// More than one peer's ID starts with the prefix given.
    AmbiguousPeer = "ambiguous_peer",
    /// The directory is shared already.
    AlreadyShared = "already_shared",
    /// An access-ID prefix matches more than one code.
    AmbiguousCode = "ambiguous_code",
    /// Not a valid access code.
    BadCode = "bad_code",
    /// A username without a password (or the other way round), or credentials and a code.
    BadCredentials = "bad_credentials",
    /// `expires_in` is not a number of seconds.
    BadExpiry = "bad_expiry",
    /// `inject_fault` with an unknown fault.
    BadFault = "bad_fault",
    /// `file` is not a path in the share.
    BadFile = "bad_file",
    /// `keys` are not what `export_keys` gives, or do not fit.
    BadKeys = "bad_keys",
    /// An unknown access mode.
    BadMode = "bad_mode",
    /// A web interface password too short or too long.
    BadPassword = "bad_password",
    /// `path` is not absolute.
    BadPath = "bad_path",
    /// `peer` is not `HOST:PORT`.
    BadPeer = "bad_peer",
    /// `offset`/`length` outside the file.
    BadRange = "bad_range",
    /// A bad subtree or exclude pattern.
    BadSelection = "bad_selection",
    /// A setting's value does not fit.
    BadValue = "bad_value",
    /// `config.toml` could not be written.
    CannotSave = "cannot_save",
    /// The peer refused the access code.
    CodeRefused = "code_refused",
    /// The directory is (or holds) the data directory.
    DataDirectory = "data_directory",
    /// The index failed.
    DatabaseError = "database_error",
    /// A bug or an unexpected failure inside the daemon.
    Internal = "internal",
    /// A file operation failed.
    IoError = "io_error",
    /// A command line over the limit (the connection closes).
    LineTooLong = "line_too_long",
    /// No `code` (or `username` and `password`).
    MissingCode = "missing_code",
    /// No `config` object.
    MissingConfig = "missing_config",
    /// No `file`.
    MissingFile = "missing_file",
    /// No `key` (or `value`).
    MissingKey = "missing_key",
    /// No `path`.
    MissingPath = "missing_path",
    /// The setting takes effect at the next start.
    NeedsRestart = "needs_restart",
    /// Files are not served over HTTP (no loopback metrics address).
    NoHttp = "no_http",
    /// The share has no keys for this.
    NoKeys = "no_keys",
    /// No peer could be reached.
    NoPeer = "no_peer",
    /// Discovery found no peer in time.
    NoPeerFound = "no_peer_found",
    /// No such access code.
    NoSuchCode = "no_such_code",
    /// No connected peer has that ID.
    NoSuchPeer = "no_such_peer",
    /// No such file in the share.
    NoSuchFile = "no_such_file",
    /// No kept version matches.
    NoSuchVersion = "no_such_version",
    /// Nothing to inject the fault into.
    NoTarget = "no_target",
    /// The path is not a directory.
    NotADirectory = "not_a_directory",
    /// The path is not shared.
    NotShared = "not_shared",
    /// Only a read-only share has local changes to revert.
    NotReadOnly = "not_read_only",
    /// Not a command this daemon knows, or not a command at all.
    NotUnderstood = "not_understood",
    /// The directory overlaps a share.
    OverlappingShare = "overlapping_share",
    /// The peer closed the connection.
    PeerClosed = "peer_closed",
    /// The OS random number generator failed.
    RandomFailed = "random_failed",
    /// A file stream broke off (framed `read_file`).
    StreamFailed = "stream_failed",
    /// Too many attempts: the peer throttles us.
    Throttled = "throttled",
    /// The peer did not answer in time.
    Timeout = "timeout",
    /// TLS could not be set up.
    TlsUnavailable = "tls_unavailable",
    /// The daemon is shutting down or restarting a component.
    Unavailable = "unavailable",
    /// There is no such setting.
    UnknownKey = "unknown_key",
    /// The peer could not be reached.
    Unreachable = "unreachable",
    /// The access mode is not supported here.
    UnsupportedMode = "unsupported_mode",
    /// The custom username is taken.
    UsernameTaken = "username_taken",
}

impl ErrorCode {
    /// The code spelled `code`, if there is one.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == code)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for ErrorCode {
    /// For codes still named as text (`share::registry::RegistryError::code`, `share::read`):
    /// every one of them is a variant; an unknown one is a bug, reported as [`ErrorCode::Internal`].
    fn from(code: &str) -> Self {
        let known = ErrorCode::from_code(code);
        debug_assert!(known.is_some(), "{code:?} is not an ErrorCode");
        known.unwrap_or(ErrorCode::Internal)
    }
}

/// A failed command, as the control socket reports it: `{"error": code, "message": text}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandError {
    /// Machine-readable code.
    pub error: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

impl CommandError {
    /// A new error.
    pub fn new(error: impl Into<ErrorCode>, message: impl Into<String>) -> Self {
        CommandError { error: error.into(), message: message.into() }
    }

    /// The daemon cannot answer now.
    pub fn unavailable() -> Self {
        CommandError::new(ErrorCode::Unavailable, "the daemon is shutting down or restarting a component; try again")
    }

    /// Not a command this daemon knows.
    pub fn not_understood(message: impl Into<String>) -> Self {
        CommandError::new(ErrorCode::NotUnderstood, message)
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.error)
    }
}

impl std::error::Error for CommandError {}

impl From<crate::share::registry::RegistryError> for CommandError {
    fn from(e: crate::share::registry::RegistryError) -> Self {
        CommandError::new(e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_on_the_wire() {
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            assert_eq!(ErrorCode::from_code(code.as_str()), Some(*code));
            assert_eq!(serde_json::from_value::<ErrorCode>(code.as_str().into()).unwrap(), *code);
        }
        // Codes still named as text where they are made (`share::registry`, `share::read`).
        for code in [
            "not_a_directory",
            "already_shared",
            "overlapping_share",
            "data_directory",
            "not_shared",
            "io_error",
            "database_error",
            "random_failed",
            "bad_keys",
            "unsupported_mode",
            "username_taken",
            "no_such_code",
            "ambiguous_code",
            "bad_file",
            "internal",
            "no_such_file",
            "bad_range",
        ] {
            assert_eq!(ErrorCode::from(code).as_str(), code);
        }
        let e = CommandError::new(ErrorCode::NotADirectory, "x");
        assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"error":"not_a_directory","message":"x"}"#);
    }
}
