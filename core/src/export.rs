//! Exporting a folder as `.eml` files, resumable.
//!
//! Each message becomes `<received, UTC>_<hash of its ID>.eml`, written to a temporary name and
//! renamed, so a file either is complete or does not exist. A second run skips what exists: an
//! interrupted export resumes where it stopped, and nothing is written twice.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use crate::Error;
use crate::mailbox::{
    FolderRef, MailboxBackend, MailboxError, MailboxRef, MessageQuery, MessageSummary,
};

/// Messages fetched per request batch.
const CHUNK: usize = 20;
/// Batches in flight at once (the per-mailbox concurrency limit).
const IN_FLIGHT: usize = 4;
/// Page size when listing the folder.
const LIST_PAGE: u32 = 1000;

/// Where an export stands, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportProgress {
    pub total: usize,
    /// Written by this run.
    pub exported: usize,
    /// Already there from an earlier run.
    pub skipped: usize,
    pub failed: usize,
}

#[derive(Debug, Default)]
pub struct ExportReport {
    pub exported: usize,
    pub skipped: usize,
    /// Messages that could not be exported, with why.
    pub failed: Vec<(String, String)>,
}

/// The file a message is exported to.
pub fn file_name(summary: &MessageSummary) -> String {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let when = summary
        .received_at
        .and_then(|t| t.to_offset(time::UtcOffset::UTC).format(&fmt).ok())
        .unwrap_or_else(|| "undated".into());
    let digest = Sha256::digest(summary.id.as_bytes());
    let hash: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{when}_{hash}.eml")
}

async fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("eml.part");
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, path).await
}

/// Exports every message of `folder` (every folder when `None`) into `dir`, calling `progress`
/// as it goes.
pub async fn export_folder(
    backend: Arc<dyn MailboxBackend>,
    mailbox: &MailboxRef,
    folder: Option<&FolderRef>,
    dir: &Path,
    progress: &(dyn Fn(ExportProgress) + Send + Sync),
) -> Result<ExportReport, Error> {
    tokio::fs::create_dir_all(dir).await.map_err(|e| {
        MailboxError::Invalid(format!(
            "the export folder {} cannot be created: {e}",
            dir.display()
        ))
    })?;

    let query = MessageQuery {
        folder: folder.cloned(),
        page_size: LIST_PAGE,
        ..MessageQuery::default()
    };
    let mut all = Vec::new();
    let mut page = backend.messages(mailbox, &query, None).await?;
    loop {
        all.append(&mut page.items);
        match page.next.take() {
            Some(next) => page = backend.messages(mailbox, &query, Some(&next)).await?,
            None => break,
        }
    }

    let mut report = ExportReport::default();
    let mut todo: Vec<(String, PathBuf)> = Vec::new();
    for m in &all {
        let path = dir.join(file_name(m));
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            report.skipped += 1;
        } else {
            todo.push((m.id.clone(), path));
        }
    }
    let total = all.len();
    let snapshot = |r: &ExportReport| ExportProgress {
        total,
        exported: r.exported,
        skipped: r.skipped,
        failed: r.failed.len(),
    };
    progress(snapshot(&report));

    let mut chunks = todo
        .chunks(CHUNK)
        .map(<[_]>::to_vec)
        .collect::<Vec<_>>()
        .into_iter();
    let mut running: JoinSet<Vec<(String, Result<(), String>)>> = JoinSet::new();
    let spawn = |running: &mut JoinSet<_>, chunk: Vec<(String, PathBuf)>| {
        let backend = Arc::clone(&backend);
        let mailbox = mailbox.clone();
        running.spawn(async move {
            let ids: Vec<String> = chunk.iter().map(|(id, _)| id.clone()).collect();
            match backend.mime_many(&mailbox, &ids).await {
                Ok(results) => {
                    let mut out = Vec::with_capacity(chunk.len());
                    for ((id, path), result) in chunk.into_iter().zip(results) {
                        let written = match result {
                            Ok(bytes) => write_atomically(&path, &bytes)
                                .await
                                .map_err(|e| format!("{}: {e}", path.display())),
                            Err(e) => Err(e.to_string()),
                        };
                        out.push((id, written));
                    }
                    out
                }
                Err(e) => chunk
                    .into_iter()
                    .map(|(id, _)| (id, Err(e.to_string())))
                    .collect(),
            }
        });
    };
    for chunk in chunks.by_ref().take(IN_FLIGHT) {
        spawn(&mut running, chunk);
    }
    while let Some(done) = running.join_next().await {
        let done =
            done.map_err(|e| MailboxError::Protocol(format!("an export task failed: {e}")))?;
        for (id, result) in done {
            match result {
                Ok(()) => report.exported += 1,
                Err(why) => report.failed.push((id, why)),
            }
        }
        progress(snapshot(&report));
        if let Some(chunk) = chunks.next() {
            spawn(&mut running, chunk);
        }
    }
    Ok(report)
}
