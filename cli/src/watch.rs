//! `exgate watch`: a mailbox's changes as they happen. The change-notification engine runs in
//! this process over a memory store (nothing is written to exgate's store), with the
//! connection's own rights, as `exgate mail` reaches the mailbox; its first sync is the
//! baseline, so events start when the command starts.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use exgate_core::clock::SystemClock;
use exgate_core::mailbox::FolderRef;
use exgate_core::model::{Auth, EmailAddress, InvalidInput, Principal};
use exgate_core::notify::store::EventFilter;
use exgate_core::notify::{ChangeEvent, NewWatch, Notifier, NotifySettings, WatchAccess, Watched};
use exgate_core::store::{MemoryStore, Store};

use crate::Context;
use crate::args::WatchArgs;

fn invalid(field: &'static str, message: String) -> anyhow::Error {
    exgate_core::Error::from(InvalidInput::new(field, message)).into()
}

/// How often a watch whose backend tells of changes looks anyway, at least.
const SAFETY_EVERY: Duration = Duration::from_secs(300);

/// Events read from the journal at a time.
const PAGE: u32 = 100;

pub(crate) async fn run(ctx: &Context, args: &WatchArgs) -> anyhow::Result<()> {
    let account = args
        .target
        .account
        .as_deref()
        .map(|a| a.parse::<Principal>().map_err(|e| invalid("account", e.0)))
        .transpose()?;
    let mailbox = args
        .mailbox
        .as_deref()
        .map(|m| {
            m.parse::<EmailAddress>()
                .map_err(|e| invalid("mailbox", e.0))
        })
        .transpose()?;
    let conn = ctx
        .connections
        .resolve(args.target.connection.as_deref())
        .await?
        .connection;
    // Whom the watch is for: the account that acts on a delegated connection; a service
    // identity acts for no user, and the watch is named after the mailbox it reads.
    let principal = match &conn.settings.auth {
        Auth::OAuth2Delegated(_) => {
            ctx.signin
                .resolve_account(&conn, account.as_ref())
                .await?
                .principal
        }
        Auth::OAuth2AppOnly(_) | Auth::Basic(_) | Auth::Ntlm(_) => {
            let name = match (&mailbox, &conn.settings.auth) {
                (Some(m), _) => m.to_string(),
                (None, Auth::Basic(p) | Auth::Ntlm(p)) => p.username.trim().to_owned(),
                (None, _) => conn.name.to_string(),
            };
            name.parse::<Principal>()
                .map_err(|e| invalid("mailbox", e.0))?
        }
    };
    let mut watched: Vec<Watched> = args
        .folders
        .iter()
        .map(|f| Watched::Mail {
            folder: FolderRef::parse(f),
        })
        .collect();
    if args.calendar {
        watched.push(Watched::Calendar);
    }

    let interval = Duration::from_secs(args.interval);
    let settings = NotifySettings {
        // No public URL: Microsoft Graph is polled.
        public_url: None,
        poll_every: interval,
        safety_every: interval.max(SAFETY_EVERY),
        ..NotifySettings::default()
    };
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let notifier = Arc::new(
        Notifier::new(
            store,
            Arc::clone(&ctx.connections),
            Arc::clone(&ctx.mailboxes),
            Arc::new(SystemClock),
            settings,
        )
        .with_access(WatchAccess::Connection),
    );
    // Signals are caught from here on: a stop before the first event ends the command cleanly.
    let stop = stop_signals()?;
    tokio::pin!(stop);
    let mut committed = notifier.committed();
    let runner = AbortOnDrop(notifier.run());
    let row = notifier
        .create_watch(NewWatch {
            connection: conn.name.to_string(),
            principal,
            mailbox,
            watched,
            api_key: None,
        })
        .await?;
    {
        // Status, not data: on stderr.
        let what: Vec<String> = row.watched.iter().map(describe).collect();
        let whose = row
            .mailbox
            .clone()
            .unwrap_or_else(|| row.principal.to_string());
        let mut err = std::io::stderr().lock();
        writeln!(
            err,
            "exgate watch: watching {} of {whose} on connection {}; Ctrl-C stops it",
            what.join(", "),
            conn.name
        )?;
        err.flush()?;
    }

    let filter = EventFilter {
        connection: row.connection,
        principal: None,
        mailbox: None,
        kinds: Vec::new(),
    };
    let mut cursor = 0;
    let outcome = loop {
        if let Err(e) = print_new(&notifier, &filter, &mut cursor, args.json).await {
            break Err(e);
        }
        tokio::select! {
            changed = committed.changed() => {
                if changed.is_err() {
                    break Ok(());
                }
            }
            () = &mut stop => break Ok(()),
        }
    };
    drop(runner);
    notifier.shutdown().await;
    outcome
}

/// Prints the events committed after `cursor`, one line each, flushed at once.
async fn print_new(
    notifier: &Notifier,
    filter: &EventFilter,
    cursor: &mut i64,
    json: bool,
) -> anyhow::Result<()> {
    loop {
        let events = notifier
            .store()?
            .events_after(*cursor, filter, PAGE)
            .await
            .map_err(exgate_core::Error::from)?;
        let Some(last) = events.last() else {
            return Ok(());
        };
        *cursor = last.seq;
        let mut out = std::io::stdout().lock();
        for event in &events {
            if json {
                serde_json::to_writer(&mut out, event)?;
                writeln!(out)?;
            } else {
                writeln!(out, "{}", line(event))?;
            }
            out.flush()?;
        }
    }
}

/// `2026-12-02T10:00:00Z message.created inbox AAMk…` (a move adds `from FOLDER ID`).
fn line(event: &ChangeEvent) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    let when = event
        .detected_at
        .to_offset(time::UtcOffset::UTC)
        .format(fmt)
        .unwrap_or_else(|_| event.detected_at.to_string());
    let mut line = format!("{when} {} {} {}", event.kind, event.folder, event.item_id);
    if let (Some(folder), Some(id)) = (&event.previous_folder, &event.previous_item_id) {
        line.push_str(&format!(" from {folder} {id}"));
    }
    line
}

fn describe(watched: &Watched) -> String {
    match watched {
        Watched::Mail {
            folder: FolderRef::WellKnown(w),
        } => w.name().to_owned(),
        Watched::Mail {
            folder: FolderRef::Id(id),
        } => format!("folder {id}"),
        Watched::Calendar => "the calendar".into(),
    }
}

/// Ctrl-C, or SIGTERM from a service manager, listened to from the call on.
#[cfg(unix)]
fn stop_signals() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn stop_signals() -> anyhow::Result<impl Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// The engine's supervisor, stopped with the command.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
