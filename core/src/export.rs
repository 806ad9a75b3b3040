//! Exporting a mailbox (or one folder) as `.eml` files, resumable, one folder per mail folder.
//!
//! Layout: `<dir>/<folder name>/<received, UTC>_<hash of the ID>.eml`, folders 0700 and files
//! 0600 (mail is private), and `<dir>/manifest.json`, which names each exported message's file
//! so a resumed run knows what it has even when a folder was renamed meanwhile.
//!
//! Messages are fetched in batches (the backend's `mime_many`); every message a batch could not
//! deliver is then fetched alone, streamed to its file, and retried a few times. A failure is
//! never its neighbours': the run ends with every failure listed and everything else exported.
//! Files are written under a temporary name and renamed, so a file is complete or absent.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt as _;
use tokio::task::JoinSet;

use crate::Error;
use crate::mailbox::{
    Folder, FolderRef, Mail, MailboxError, MailboxRef, MessageQuery, MessageSummary,
};

/// Messages fetched per request batch.
const CHUNK: usize = 20;
/// Batches fetched or being written at once: twice the per-mailbox concurrency limit (which
/// the governor keeps), so that while some batches are written to disk others wait for the
/// governor's next slot, and no part of the mailbox's allowance passes unused.
const IN_FLIGHT: usize = 8;
/// Page size when listing.
const LIST_PAGE: u32 = 1000;
/// How often a message that failed in its batch is fetched alone.
const ALONE_ATTEMPTS: u32 = 3;
/// The manifest's name, beside the folders.
pub const MANIFEST: &str = "manifest.json";

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

/// What an export wrote, kept beside it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    /// Message ID → file, relative to the export folder.
    messages: BTreeMap<String, String>,
}

/// The file a message is exported to, within its folder.
pub fn file_name(summary: &MessageSummary) -> String {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let when = summary
        .received_at
        .and_then(|t| t.to_offset(time::UtcOffset::UTC).format(&fmt).ok())
        .unwrap_or_else(|| "undated".into());
    format!("{when}_{}.eml", short_hash(&summary.id))
}

fn short_hash(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A folder's name as one safe path component: no separators, no control characters, no
/// leading dot (so never `.` or `..`), at most 100 characters.
fn folder_dir_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .take(100)
        .collect();
    out = out.trim().to_owned();
    if out.starts_with('.') {
        out.replace_range(0..1, "_");
    }
    if out.is_empty() {
        "folder".to_owned()
    } else {
        out
    }
}

/// Folder ID → its directory name, unique among the export's folders.
fn folder_dirs(folders: &[Folder]) -> HashMap<String, String> {
    let mut used = HashSet::new();
    let mut out = HashMap::new();
    for f in folders {
        let mut name = folder_dir_name(&f.name);
        if !used.insert(name.to_lowercase()) {
            name = format!("{name}_{}", &short_hash(&f.id)[..8]);
            used.insert(name.to_lowercase());
        }
        out.insert(f.id.clone(), name);
    }
    out
}

/// Where a file is written before it is renamed into place: beside it, its whole name plus
/// `.part`, so no other file's name is taken.
fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".part");
    path.with_file_name(name)
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> Error {
    MailboxError::Sink(format!("{what} {}: {e}", path.display())).into()
}

fn private_dir(path: &Path) -> Result<(), Error> {
    crate::secret::create_private_dir(path).map_err(|e| io_error("cannot create", path, &e))
}

async fn create_private_file(path: &Path) -> Result<tokio::fs::File, Error> {
    tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .await
        .map_err(|e| io_error("cannot create", path, &e))
}

/// [`write_atomically`] on a blocking thread's time: a private file (0600), complete or absent.
fn write_atomically_blocking(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = part_path(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io_error("cannot create", &tmp, &e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("cannot write", &tmp, &e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_error("cannot rename", &tmp, &e))
}

async fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = part_path(path);
    let mut file = create_private_file(&tmp).await?;
    file.write_all(bytes)
        .await
        .map_err(|e| io_error("cannot write", &tmp, &e))?;
    file.sync_all()
        .await
        .map_err(|e| io_error("cannot write", &tmp, &e))?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| io_error("cannot rename", &tmp, &e))
}

/// Writes `content` to `path` as it arrives: a private file (0600), complete or absent.
pub async fn save(content: crate::mailbox::ByteStream, path: &Path) -> Result<u64, Error> {
    let tmp = part_path(path);
    let mut file = create_private_file(&tmp).await?;
    let written = content.copy_to(&mut file).await?;
    file.sync_all()
        .await
        .map_err(|e| io_error("cannot write", &tmp, &e))?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| io_error("cannot rename", &tmp, &e))?;
    Ok(written)
}

/// Fetches one message alone, streamed to its file.
async fn fetch_alone(
    mail: &dyn Mail,
    mailbox: &MailboxRef,
    id: &str,
    path: &Path,
) -> Result<(), Error> {
    save(mail.mime(mailbox, id).await?, path).await.map(drop)
}

/// Lists every message of the query, refusing a server that repeats itself.
async fn list_all(
    mail: &dyn Mail,
    mailbox: &MailboxRef,
    query: &MessageQuery,
) -> Result<Vec<MessageSummary>, Error> {
    let mut all = Vec::new();
    let mut seen = HashSet::new();
    let mut page = mail.messages(mailbox, query, None).await?;
    loop {
        let before = seen.len();
        for m in page.items.drain(..) {
            if seen.insert(m.id.clone()) {
                all.push(m);
            }
        }
        match page.next.take() {
            Some(_) if seen.len() == before => {
                return Err(MailboxError::Protocol(
                    "the server answered a page of messages it had already listed; stopped instead of looping (a server fault: try again later)".into(),
                )
                .into());
            }
            Some(next) => page = mail.messages(mailbox, query, Some(&next)).await?,
            None => return Ok(all),
        }
    }
}

/// A message to fetch: its ID, its file, and that file relative to the export folder.
type Todo = (String, PathBuf, String);

/// The messages of `all` an export still has to fetch (ID, file, file relative to `dir`),
/// creating each folder's directory once; those already there (by the manifest, or a file of
/// their name) count as skipped. Blocking: it checks the file system for every message.
fn plan(
    dir: &Path,
    all: &[MessageSummary],
    dirs: &HashMap<String, String>,
    mut manifest: Manifest,
) -> Result<(Manifest, ExportReport, Vec<Todo>), Error> {
    let mut report = ExportReport::default();
    let mut todo = Vec::new();
    let mut created = HashSet::new();
    for m in all {
        if let Some(done) = manifest.messages.get(&m.id)
            && dir.join(done).exists()
        {
            report.skipped += 1;
            continue;
        }
        let sub = m
            .folder_id
            .as_ref()
            .and_then(|f| dirs.get(f).cloned())
            .or_else(|| {
                m.folder_id
                    .as_ref()
                    .map(|f| format!("folder_{}", short_hash(f)))
            })
            .unwrap_or_else(|| "unfiled".to_owned());
        if !created.contains(&sub) {
            private_dir(&dir.join(&sub))?;
            created.insert(sub.clone());
        }
        let relative = format!("{sub}/{}", file_name(m));
        let path = dir.join(&relative);
        if path.exists() {
            manifest.messages.insert(m.id.clone(), relative);
            report.skipped += 1;
        } else {
            todo.push((m.id.clone(), path, relative));
        }
    }
    Ok((manifest, report, todo))
}

/// Exports every message of `folder` (every folder when `None`) into `dir`, calling `progress`
/// as it goes.
pub async fn export_folder(
    mail: Arc<dyn Mail>,
    mailbox: &MailboxRef,
    folder: Option<&FolderRef>,
    dir: &Path,
    progress: &(dyn Fn(ExportProgress) + Send + Sync),
) -> Result<ExportReport, Error> {
    private_dir(dir)?;
    let manifest_path = dir.join(MANIFEST);
    let manifest: Manifest = match tokio::fs::read(&manifest_path).await {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            MailboxError::Invalid(format!(
                "{} is not an exgate export manifest ({e}); export into an empty folder",
                manifest_path.display()
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest {
            version: 1,
            ..Manifest::default()
        },
        Err(e) => return Err(io_error("cannot read", &manifest_path, &e)),
    };

    let dirs = folder_dirs(&mail.folders(mailbox).await?);
    let query = MessageQuery {
        folder: folder.cloned(),
        page_size: LIST_PAGE,
        ..MessageQuery::default()
    };
    let all = list_all(mail.as_ref(), mailbox, &query).await?;

    // What is left to do, found on one blocking thread (a file system check per message, each
    // folder's directory created once).
    let total = all.len();
    let (mut manifest, mut report, todo) = {
        let dir = dir.to_owned();
        tokio::task::spawn_blocking(move || plan(&dir, &all, &dirs, manifest))
            .await
            .map_err(|e| MailboxError::Protocol(format!("an export task failed: {e}")))??
    };
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
    type Done = Vec<(String, String, Result<(), String>)>;
    let mut running: JoinSet<Done> = JoinSet::new();
    let spawn = |running: &mut JoinSet<Done>, chunk: Vec<(String, PathBuf, String)>| {
        let mail = Arc::clone(&mail);
        let mailbox = mailbox.clone();
        running.spawn(async move {
            let ids: Vec<String> = chunk.iter().map(|(id, _, _)| id.clone()).collect();
            let results = match mail.mime_many(&mailbox, &ids).await {
                Ok(r) => r.into_iter().map(Some).collect(),
                Err(_) => (0..chunk.len()).map(|_| None).collect::<Vec<_>>(),
            };
            // The batch's files are written on one blocking thread, one after the other.
            let paths: Vec<PathBuf> = chunk.iter().map(|(_, path, _)| path.clone()).collect();
            let count = paths.len();
            let written: Vec<Result<(), Error>> = tokio::task::spawn_blocking(move || {
                paths
                    .iter()
                    .zip(results)
                    .map(|(path, batched)| match batched {
                        Some(Ok(bytes)) => write_atomically_blocking(path, &bytes),
                        Some(Err(e)) => Err(e),
                        None => Err(MailboxError::Protocol("its batch failed".into()).into()),
                    })
                    .collect()
            })
            .await
            .unwrap_or_else(|e| {
                (0..count)
                    .map(|_| {
                        Err(MailboxError::Sink(format!("writing the batch failed: {e}")).into())
                    })
                    .collect()
            });
            let mut out = Vec::with_capacity(chunk.len());
            for ((id, path, relative), mut result) in chunk.into_iter().zip(written) {
                // Whatever failed in the batch is fetched alone, streamed, a few times.
                let mut attempt = 0;
                while let Err(e) = &result {
                    attempt += 1;
                    if attempt > ALONE_ATTEMPTS
                        || matches!(e, Error::Mailbox(MailboxError::Sink(_)))
                    {
                        break;
                    }
                    tracing::debug!(message = %id, attempt, error = %e, "fetching a message alone");
                    if attempt > 1 {
                        tokio::time::sleep(crate::pipeline::backoff(attempt)).await;
                    }
                    result = fetch_alone(mail.as_ref(), &mailbox, &id, &path).await;
                }
                out.push((id, relative, result.map_err(|e| e.to_string())));
            }
            out
        });
    };
    for chunk in chunks.by_ref().take(IN_FLIGHT) {
        spawn(&mut running, chunk);
    }
    while let Some(done) = running.join_next().await {
        let done =
            done.map_err(|e| MailboxError::Protocol(format!("an export task failed: {e}")))?;
        for (id, relative, result) in done {
            match result {
                Ok(()) => {
                    report.exported += 1;
                    manifest.messages.insert(id, relative);
                }
                Err(why) => report.failed.push((id, why)),
            }
        }
        progress(snapshot(&report));
        if let Some(chunk) = chunks.next() {
            spawn(&mut running, chunk);
        }
    }
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| MailboxError::Protocol(format!("the manifest cannot be written: {e}")))?;
    write_atomically(&manifest_path, &json).await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_become_one_safe_component() {
        assert_eq!(folder_dir_name("Inbox"), "Inbox");
        assert_eq!(folder_dir_name("a/b\\c"), "a_b_c");
        assert_eq!(folder_dir_name(".."), "_.");
        assert_eq!(folder_dir_name("."), "_");
        assert_eq!(folder_dir_name("  "), "folder");
        assert_eq!(folder_dir_name("x\u{0}y\n"), "x_y_");
        let f = |id: &str, name: &str| Folder {
            id: id.into(),
            name: name.into(),
            parent_id: None,
            unread: 0,
            total: 0,
            children: 0,
        };
        let dirs = folder_dirs(&[f("1", "Reports"), f("2", "reports"), f("3", "Inbox")]);
        assert_eq!(dirs["1"], "Reports");
        assert!(dirs["2"].starts_with("reports_"), "{}", dirs["2"]);
        assert_eq!(dirs["3"], "Inbox");
    }
}
