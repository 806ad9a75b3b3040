//! IMAP IDLE (RFC 2177) as a [`Listen`]er for change notifications: one session per watched
//! folder, each IDLE restarted every [`IDLE_PERIOD`]; any untagged data the server sends while
//! idling (EXISTS, EXPUNGE, FETCH of flags) is a [`Signal::Changed`] of that folder. What
//! changed is found by the watch's sync, not here.

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{IDLE_PERIOD, ImapFail, ImapMailbox, open_folder, session};
use crate::Error;
use crate::mailbox::{MailboxError, MailboxRef};
use crate::notify::{Listen, Listener, Signal, Watched};

/// Signals of every folder's session; an error ends the listener.
#[derive(Debug)]
struct IdleListener {
    signals: mpsc::Receiver<Result<Signal, Error>>,
    _sessions: JoinSet<()>,
}

#[async_trait]
impl Listener for IdleListener {
    async fn next(&mut self) -> Result<Signal, Error> {
        match self.signals.recv().await {
            Some(signal) => signal,
            None => Err(MailboxError::Transport("IMAP: every IDLE session ended".into()).into()),
        }
    }
}

#[async_trait]
impl Listen for ImapMailbox {
    async fn listen(
        &self,
        mailbox: &MailboxRef,
        watched: &[Watched],
    ) -> Result<Box<dyn Listener>, Error> {
        let (tx, rx) = mpsc::channel(16);
        let mut sessions = JoinSet::new();
        for w in watched {
            let Watched::Mail { folder } = w else {
                return Err(
                    MailboxError::Unsupported("IMAP has no calendar to listen to".into()).into(),
                );
            };
            let idle = self.idle_session(mailbox, folder).await?;
            let (tx, w) = (tx.clone(), w.clone());
            sessions.spawn(async move {
                let outcome = idle.run(&tx, &w).await;
                let _ = tx.send(Err(outcome)).await;
            });
        }
        Ok(Box::new(IdleListener {
            signals: rx,
            _sessions: sessions,
        }))
    }
}

/// One folder's session, selected, with the mailbox's governor permit it holds while it idles.
struct IdleSession {
    session: session::ImapSession,
    url: String,
    _permit: crate::governor::Permit,
}

impl ImapMailbox {
    async fn idle_session(
        &self,
        mailbox: &MailboxRef,
        folder: &crate::mailbox::FolderRef,
    ) -> Result<IdleSession, Error> {
        let key = self.key(mailbox)?;
        let s = &self.settings;
        let name = self.resolve(mailbox, folder).await?;
        let permit = s
            .governor
            .acquire_within(&key, 1, s.limits.max_wait)
            .await
            .map_err(|left| MailboxError::Throttled { retry_after: left })?;
        let user = self.user(mailbox)?;
        let mut conn = session::open(
            &s.connector,
            &s.url,
            s.credentials.as_ref(),
            user,
            &s.connection,
        )
        .await?;
        if !conn.caps.idle {
            return Err(MailboxError::Unsupported(format!(
                "{} does not offer IDLE; the watch is polled instead",
                s.url
            ))
            .into());
        }
        let url = s.url.to_string();
        open_folder(&mut conn, &name, false)
            .await
            .map_err(|e| match e {
                ImapFail::Answer(e) => e,
                ImapFail::Broken(why) => {
                    MailboxError::Transport(format!("IMAP {url}: selecting the folder: {why}"))
                        .into()
                }
            })?;
        Ok(IdleSession {
            session: conn.session,
            url,
            _permit: permit,
        })
    }
}

impl IdleSession {
    /// Idles until the connection breaks; answers why it ended.
    async fn run(mut self, tx: &mpsc::Sender<Result<Signal, Error>>, w: &Watched) -> Error {
        let broken = |why: String| -> Error {
            MailboxError::Transport(format!("IMAP {}: idling: {why}", self.url)).into()
        };
        loop {
            let mut idle = self.session.idle();
            if let Err(e) = idle.init().await {
                return broken(e.to_string());
            }
            let seen = {
                let (wait, _stop) = idle.wait_with_timeout(IDLE_PERIOD);
                match tokio::time::timeout(IDLE_PERIOD, wait).await {
                    Ok(Ok(async_imap::extensions::idle::IdleResponse::NewData(_))) => true,
                    Ok(Ok(_)) | Err(_) => false,
                    Ok(Err(e)) => return broken(e.to_string()),
                }
            };
            self.session = match idle.done().await {
                Ok(s) => s,
                Err(e) => return broken(e.to_string()),
            };
            session::drain(&mut self.session);
            if seen && tx.send(Ok(Signal::Changed(Some(w.clone())))).await.is_err() {
                // The listener was dropped.
                let _ = self.session.logout().await;
                return MailboxError::Transport("IMAP: the listener was dropped".into()).into();
            }
        }
    }
}
