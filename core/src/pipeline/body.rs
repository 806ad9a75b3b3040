//! Answer bodies: read whole within a limit, or streamed chunk by chunk.

use std::fmt;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt as _};

use crate::governor::Permit;
use crate::mailbox::MailboxError;

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    TooLarge { limit: u64 },
    Transport(String),
}

impl ReadError {
    pub(crate) fn is_transport(&self) -> bool {
        matches!(self, Self::Transport(_))
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { limit } => write!(f, "the answer is larger than {limit} bytes"),
            Self::Transport(m) => f.write_str(m),
        }
    }
}

impl From<ReadError> for MailboxError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::TooLarge { limit } => Self::TooLarge { limit },
            ReadError::Transport(m) => Self::Transport(format!("the answer broke off: {m}")),
        }
    }
}

impl From<ReadError> for super::Failure {
    fn from(e: ReadError) -> Self {
        MailboxError::from(e).into()
    }
}

/// Reads a whole body. With `strict`, a body over `limit` is an error; without, it is cut at
/// `limit` (for failure answers, whose first part explains them).
pub(crate) async fn read_whole(
    mut resp: reqwest::Response,
    limit: u64,
    strict: bool,
) -> Result<Bytes, ReadError> {
    if strict && resp.content_length().is_some_and(|n| n > limit) {
        return Err(ReadError::TooLarge { limit });
    }
    let capacity = resp.content_length().unwrap_or(0).min(limit).min(1 << 20);
    let mut body = BytesMut::with_capacity(usize::try_from(capacity).unwrap_or(0));
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ReadError::Transport(super::transport_message(e)))?
    {
        if body.len() as u64 + chunk.len() as u64 > limit {
            if strict {
                return Err(ReadError::TooLarge { limit });
            }
            let room = usize::try_from(limit).unwrap_or(usize::MAX) - body.len();
            body.extend_from_slice(&chunk[..room.min(chunk.len())]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

enum Source {
    Http(reqwest::Response),
    Memory(Option<Bytes>),
}

/// A body read as it arrives, never more than its limit. Holds the request's governor slot
/// while it lives.
pub struct ByteStream {
    source: Source,
    limit: u64,
    read: u64,
    length: Option<u64>,
    _permit: Option<Permit>,
}

impl fmt::Debug for ByteStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteStream")
            .field("limit", &self.limit)
            .field("read", &self.read)
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

impl ByteStream {
    pub(crate) fn http(resp: reqwest::Response, limit: u64, permit: Option<Permit>) -> Self {
        Self {
            length: resp.content_length(),
            source: Source::Http(resp),
            limit,
            read: 0,
            _permit: permit,
        }
    }

    /// A body that is already in memory (protocols that deliver items whole).
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            length: Some(bytes.len() as u64),
            source: Source::Memory(Some(bytes)),
            limit: u64::MAX,
            read: 0,
            _permit: None,
        }
    }

    /// The length the server announced, if it did.
    pub fn length(&self) -> Option<u64> {
        self.length
    }

    /// The next piece of the body; `None` at its end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, MailboxError> {
        if self.length.is_some_and(|n| n > self.limit) {
            return Err(MailboxError::TooLarge { limit: self.limit });
        }
        let chunk = match &mut self.source {
            Source::Http(resp) => resp.chunk().await.map_err(|e| {
                MailboxError::Transport(format!(
                    "the answer broke off: {}",
                    super::transport_message(e)
                ))
            })?,
            Source::Memory(bytes) => bytes.take(),
        };
        if let Some(c) = &chunk {
            self.read += c.len() as u64;
            if self.read > self.limit {
                return Err(MailboxError::TooLarge { limit: self.limit });
            }
        }
        Ok(chunk)
    }

    /// Reads the rest into memory (within the limit).
    pub async fn into_bytes(mut self) -> Result<Vec<u8>, MailboxError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.next_chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Writes the rest to `sink`; returns how many bytes were written.
    pub async fn copy_to<W: AsyncWrite + Unpin + ?Sized>(
        mut self,
        sink: &mut W,
    ) -> Result<u64, MailboxError> {
        let mut written = 0;
        while let Some(chunk) = self.next_chunk().await? {
            sink.write_all(&chunk)
                .await
                .map_err(|e| MailboxError::Sink(e.to_string()))?;
            written += chunk.len() as u64;
        }
        sink.flush()
            .await
            .map_err(|e| MailboxError::Sink(e.to_string()))?;
        Ok(written)
    }
}
