//! Files: `read_file` (streamed after its answer) and `file_url`.

use serde::{Deserialize, Serialize};

use super::{absolute_path, field, reply, After, Answer, Checked, CommandError, ErrorCode};
use crate::control::ControlTargets;
use crate::shares::messages;

/// `file_url`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Url {
    /// The loopback HTTP address.
    pub url: String,
}

/// `read_file`'s answer line; `length` bytes follow it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadHeader {
    /// The file's size.
    pub size: u64,
    /// Its contents' SHA-256, hex.
    pub sha256: String,
    /// The first byte sent.
    pub offset: u64,
    /// How many bytes follow.
    pub length: u64,
    /// `local` or `peer`.
    pub source: String,
    /// Whether the bytes come as [`Chunk`]s ending with [`End`] (absent: raw bytes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub framed: bool,
}

/// In a framed stream: this many bytes follow this line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Bytes.
    pub chunk: usize,
}

/// In a framed stream: the last line (`{"end": true}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    /// Always true.
    pub end: bool,
}

/// `file_url`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FileUrl {
    /// The share's root.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The file, relative to it.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Seconds the address stays valid.
    #[serde(default, deserialize_with = "field::present", skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<Checked<u64>>,
}

impl FileUrl {
    pub(super) async fn run(self, targets: &ControlTargets) -> Answer {
        let (path, file) = match (absolute_path(self.path.as_deref()), self.file) {
            (Ok(path), Some(file)) => (path, file),
            (Err(e), _) => return Err(e),
            (_, None) => return Err(missing_file()),
        };
        let lifetime = match self.expires_in {
            None => None,
            Some(Checked::Valid(secs)) => Some(secs),
            Some(Checked::Invalid(_)) => {
                return Err(CommandError::new(ErrorCode::BadExpiry, "\"expires_in\" must be a number of seconds"))
            }
        };
        let msg = messages::FileUrl { path, file, lifetime };
        reply(targets.file_url.send(msg).await.map(|r| r.map(|url| Url { url })))
    }
}

/// `read_file`: a file of the share (or a range), from the local copy or a peer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReadFile {
    /// The share's root.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The file, relative to it.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// First byte (default 0).
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// How many bytes (default: to the end).
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// Send the bytes as [`Chunk`]s ending with [`End`] (or an error line), so a stream that
    /// breaks off says why.
    #[serde(default, deserialize_with = "field::lenient", skip_serializing_if = "Option::is_none")]
    pub framed: Option<bool>,
}

impl ReadFile {
    pub(super) async fn run(self, targets: &ControlTargets) -> (Answer, Option<After>) {
        let (path, file) = match (absolute_path(self.path.as_deref()), self.file) {
            (Ok(path), Some(file)) => (path, file),
            (Err(e), _) => return (Err(e), None),
            (_, None) => return (Err(missing_file()), None),
        };
        let read = crate::share::messages::OpenRead { file, offset: self.offset.unwrap_or(0), length: self.length };
        match targets.read_file.send(messages::ReadFile { path, read }).await {
            Ok(Ok(r)) => {
                let framed = self.framed.unwrap_or(false);
                let header = ReadHeader {
                    size: r.size,
                    sha256: r.sha256.to_string(),
                    offset: r.offset,
                    length: r.length,
                    source: r.source.to_owned(),
                    framed,
                };
                (super::to_json(&header), Some(After::Stream(r.rx, framed)))
            }
            Ok(Err(e)) => (Err(e), None),
            Err(_) => (Err(CommandError::unavailable()), None),
        }
    }
}

fn missing_file() -> CommandError {
    CommandError::new(ErrorCode::MissingFile, "the command needs a \"file\"")
}
