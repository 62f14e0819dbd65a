//! This project's unofficial secure-channel messages (`.rs.clearskies.srp.*`).
//!
//! rustls has no TLS-SRP, so peers run SRP-6a (RFC 5054 2048-bit group, SHA-256) inside TLS
//! 1.3 before `core.greeting`, with proofs bound to the TLS exporter. Big numbers travel as
//! lower-case hex. See `docs/protocol-decisions.md`.

use serde::{Deserialize, Serialize};

/// Step 1, client → server: who I am and my public ephemeral value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// `clearskies:1:<access ID or key ID>`.
    pub username: String,
    /// Client public value A, hex.
    pub a: String,
}

/// Step 2, server → client: salt and server public value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// Salt, hex.
    pub salt: String,
    /// Server public value B, hex.
    pub b: String,
}

/// Step 3, client → server: the client's proof M1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// M1, hex.
    pub m1: String,
}

/// Step 4, server → client: the server's proof M2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verify {
    /// M2, hex.
    pub m2: String,
}

/// Authentication refused; the connection closes after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Error {
    /// Human-readable reason (deliberately vague: it never says whether an ID exists).
    #[serde(default)]
    pub message: String,
}
