//! `exgate mail | calendar | contacts`: parse, call the mailbox backend, render.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use anyhow::Context as _;
use exgate_core::export::{self, ExportProgress};
use exgate_core::mailbox::{
    AttendeeKind, Backend, Body, BodyKind, ContactDraft, Event, EventDraft, EventTime, FolderRef,
    Importance, MailboxRef, MessageQuery, NewAttachment, NewMessage, Recipient, ShowAs, TimeZone,
};
use exgate_core::model::{EmailAddress, InvalidInput, Principal};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use crate::args::{
    CalendarCommand, ContactArgs, ContactsCommand, EventArgs, ImportanceArg, MailCommand,
    MailboxArgs,
};
use crate::connection::shell_quote;
use crate::{Context, UsageError};

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

fn invalid(field: &'static str, message: String) -> anyhow::Error {
    exgate_core::Error::from(InvalidInput::new(field, message)).into()
}

/// An address typed on the command line, checked.
fn address(field: &'static str, s: &str) -> anyhow::Result<Recipient> {
    s.parse::<EmailAddress>()
        .map(|a| Recipient::address(a.as_str()))
        .map_err(|e| invalid(field, e.0))
}

fn addresses(field: &'static str, list: &[String]) -> anyhow::Result<Vec<Recipient>> {
    list.iter().map(|s| address(field, s)).collect()
}

/// `YYYY-MM-DD` (midnight UTC), `YYYY-MM-DDTHH:MM[:SS]` (UTC) or RFC 3339.
fn instant(field: &'static str, s: &str) -> anyhow::Result<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    if let Ok(t) = local(s) {
        return Ok(t.assume_utc());
    }
    Err(invalid(
        field,
        format!("`{s}` is not a date or time; use YYYY-MM-DD, YYYY-MM-DDTHH:MM or RFC 3339"),
    ))
}

fn local(s: &str) -> Result<PrimitiveDateTime, time::error::Parse> {
    let date_only = time::macros::format_description!("[year]-[month]-[day]");
    let minutes = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let seconds =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    PrimitiveDateTime::parse(s, seconds)
        .or_else(|_| PrimitiveDateTime::parse(s, minutes))
        .or_else(|_| Date::parse(s, date_only).map(|d| d.midnight()))
}

fn event_time(field: &'static str, s: &str, tz: TimeZone) -> anyhow::Result<EventTime> {
    let t = local(s).map_err(|_| {
        invalid(
            field,
            format!(
                "`{s}` is not a local time; use YYYY-MM-DDTHH:MM (or YYYY-MM-DD with --all-day)"
            ),
        )
    })?;
    Ok(EventTime::new(t, tz))
}

/// `--tz`: an IANA or Windows zone name.
fn time_zone(name: &str) -> anyhow::Result<TimeZone> {
    TimeZone::parse(name).map_err(|e| invalid("tz", e.to_string()))
}

/// The range of `--from`/`--to`: default today (UTC) for a week.
fn range(from: Option<&str>, to: Option<&str>) -> anyhow::Result<(OffsetDateTime, OffsetDateTime)> {
    let start = match from {
        Some(s) => instant("from", s)?,
        None => OffsetDateTime::now_utc().date().midnight().assume_utc(),
    };
    let end = match to {
        Some(s) => instant("to", s)?,
        None => start + time::Duration::days(7),
    };
    if end <= start {
        return Err(invalid(
            "to",
            "the end of the range is not after its start".into(),
        ));
    }
    Ok((start, end))
}

/// The command that lists the next page: this one, as it was run (a page token continues only
/// the mailbox, folder and filters it came from), with `--page TOKEN` instead of any given.
fn next_page_command(token: &str) -> String {
    let mut words = vec!["exgate".to_owned()];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--page" {
            args.next();
        } else if !arg.starts_with("--page=") {
            words.push(shell_quote(&arg));
        }
    }
    words.push("--page".into());
    words.push(shell_quote(token));
    words.join(" ")
}

struct Opened {
    backend: Backend,
    mailbox: MailboxRef,
    json: bool,
}

async fn open(ctx: &Context, on: &MailboxArgs) -> anyhow::Result<Opened> {
    open_with(ctx, on, false).await
}

/// `via_smtp`: the backend's mail sends over SMTP whatever the connection says.
async fn open_with(ctx: &Context, on: &MailboxArgs, via_smtp: bool) -> anyhow::Result<Opened> {
    let account = on
        .target
        .account
        .as_deref()
        .map(|a| a.parse::<Principal>().map_err(|e| invalid("account", e.0)))
        .transpose()?;
    let connection = on.target.connection.as_deref();
    let backend = if via_smtp {
        ctx.mailboxes
            .open_via_smtp(connection, account.as_ref())
            .await?
    } else {
        ctx.mailboxes.open(connection, account.as_ref()).await?
    };
    let mailbox = match &on.mailbox {
        Some(m) => MailboxRef::User(
            m.parse::<EmailAddress>()
                .map_err(|e| invalid("mailbox", e.0))?
                .as_str()
                .to_owned(),
        ),
        None => MailboxRef::Me,
    };
    Ok(Opened {
        backend,
        mailbox,
        json: on.json,
    })
}

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn when(t: Option<OffsetDateTime>) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    t.and_then(|t| t.format(fmt).ok())
        .unwrap_or_else(|| "-".into())
}

fn who(r: Option<&Recipient>) -> String {
    r.map(|r| r.name.clone().unwrap_or_else(|| r.address.clone()))
        .unwrap_or_else(|| "-".into())
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!(
            "{}…",
            s.chars().take(n.saturating_sub(1)).collect::<String>()
        )
    }
}

/// Text from an HTML body, for the terminal.
fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&nbsp;", " ")
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

fn read_body(body: Option<&str>, file: Option<&Path>) -> anyhow::Result<String> {
    if let Some(b) = body {
        return Ok(b.to_owned());
    }
    match file {
        Some(p) if p == Path::new("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the body from standard input")?;
            Ok(s)
        }
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| usage(format!("the body file {} cannot be read: {e}", p.display()))),
        None if !std::io::stdin().is_terminal() => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the body from standard input")?;
            Ok(s)
        }
        None => Ok(String::new()),
    }
}

fn attachment(path: &Path) -> anyhow::Result<NewAttachment> {
    let content = std::fs::read(path).map_err(|e| {
        usage(format!(
            "the attachment {} cannot be read: {e}",
            path.display()
        ))
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "attachment".into());
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let content_type = match ext.as_str() {
        "pdf" => "application/pdf",
        "txt" | "log" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "zip" => "application/zip",
        "json" => "application/json",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _ => "application/octet-stream",
    };
    Ok(NewAttachment {
        name,
        content_type: content_type.into(),
        content: content.into(),
    })
}

/// A progress bar on a terminal, a line now and then elsewhere.
fn progress_printer() -> impl Fn(ExportProgress) + Send + Sync {
    let tty = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    move |p: ExportProgress| {
        let done = p.exported + p.skipped + p.failed;
        let rate = p.exported as f64 / started.elapsed().as_secs_f64().max(0.001);
        let mut err = std::io::stderr().lock();
        if tty {
            let width = 30;
            let filled = (done * width)
                .checked_div(p.total)
                .unwrap_or(width)
                .min(width);
            let _ = write!(
                err,
                "\r[{}{}] {done}/{} ({} skipped, {} failed) {rate:.0} msg/s ",
                "#".repeat(filled),
                ".".repeat(width - filled),
                p.total,
                p.skipped,
                p.failed
            );
            if done == p.total {
                let _ = writeln!(err);
            }
        } else if done == p.total || done % 1000 < 20 {
            let _ = writeln!(
                err,
                "exported {done}/{} ({} skipped, {} failed)",
                p.total, p.skipped, p.failed
            );
        }
    }
}

pub(crate) async fn mail(ctx: &Context, cmd: &MailCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        MailCommand::List {
            on,
            folder,
            unread,
            from,
            since,
            with_attachments,
            limit,
            page,
        } => {
            let o = open(ctx, on).await?;
            let query = MessageQuery {
                folder: Some(FolderRef::parse(folder)),
                unread_only: *unread,
                from: from
                    .as_deref()
                    .map(|f| address("from", f))
                    .transpose()?
                    .map(|r| r.address),
                since: since.as_deref().map(|s| instant("since", s)).transpose()?,
                with_attachments: *with_attachments,
                page_size: *limit,
            };
            let page = o
                .backend
                .mail()?
                .messages(&o.mailbox, &query, page.as_deref())
                .await?;
            if o.json {
                #[derive(Serialize)]
                struct View<'a> {
                    messages: &'a [exgate_core::mailbox::MessageSummary],
                    next_page: Option<&'a str>,
                }
                return print_json(&View {
                    messages: &page.items,
                    next_page: page.next.as_deref(),
                });
            }
            if page.items.is_empty() {
                writeln!(out, "no messages")?;
            }
            for m in &page.items {
                let marks = format!(
                    "{}{}",
                    if m.is_read { ' ' } else { '*' },
                    if m.has_attachments { '@' } else { ' ' }
                );
                writeln!(
                    out,
                    "{marks} {}  {:<24}  {:<50}  {}",
                    when(m.received_at),
                    clip(&who(m.from.as_ref()), 24),
                    clip(&m.subject, 50),
                    m.id
                )?;
            }
            if let Some(next) = &page.next {
                writeln!(std::io::stderr(), "more: {}", next_page_command(next))?;
            }
        }
        MailCommand::Folders { on } => {
            let o = open(ctx, on).await?;
            let folders = o.backend.mail()?.folders(&o.mailbox).await?;
            if o.json {
                return print_json(&folders);
            }
            for f in &folders {
                writeln!(
                    out,
                    "{:<30} {:>6} unread {:>7} total  {}",
                    f.name, f.unread, f.total, f.id
                )?;
            }
        }
        MailCommand::Show {
            id,
            on,
            text,
            html,
            save_attachments,
        } => {
            let o = open(ctx, on).await?;
            let kind = if *text {
                Some(BodyKind::Text)
            } else if *html {
                Some(BodyKind::Html)
            } else {
                None
            };
            let m = o.backend.mail()?.message(&o.mailbox, id, kind).await?;
            if let Some(dir) = save_attachments {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                for a in m.attachments.iter().filter(|a| !a.is_inline) {
                    let download = o.backend.mail()?.attachment(&o.mailbox, id, &a.id).await?;
                    let name = Path::new(&a.name)
                        .file_name()
                        .map(|n| n.to_owned())
                        .unwrap_or_else(|| "attachment".into());
                    export::save(download.content, &dir.join(&name)).await?;
                    writeln!(std::io::stderr(), "saved {}", dir.join(name).display())?;
                }
            }
            if o.json {
                return print_json(&m);
            }
            let list = |rs: &[Recipient]| {
                rs.iter()
                    .map(|r| r.address.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            writeln!(
                out,
                "From:    {}",
                m.summary
                    .from
                    .as_ref()
                    .map(|r| r.address.as_str())
                    .unwrap_or("-")
            )?;
            writeln!(out, "To:      {}", list(&m.to))?;
            if !m.cc.is_empty() {
                writeln!(out, "Cc:      {}", list(&m.cc))?;
            }
            writeln!(out, "Date:    {}", when(m.summary.received_at))?;
            writeln!(out, "Subject: {}", m.summary.subject)?;
            for a in &m.attachments {
                writeln!(
                    out,
                    "Attach:  {} ({} bytes{})",
                    a.name,
                    a.size,
                    if a.is_inline { ", inline" } else { "" }
                )?;
            }
            writeln!(out)?;
            let body = match (m.body.kind, html) {
                (BodyKind::Html, false) => strip_html(&m.body.content),
                _ => m.body.content.clone(),
            };
            writeln!(out, "{}", body.trim_end())?;
        }
        MailCommand::Send {
            on,
            to,
            cc,
            bcc,
            subject,
            body,
            body_file,
            html,
            attach,
            from,
            no_save,
            importance,
            via,
        } => {
            let o = open_with(ctx, on, via.is_some()).await?;
            let content = read_body(body.as_deref(), body_file.as_deref())?;
            let message = NewMessage {
                to: addresses("to", to)?,
                cc: addresses("cc", cc)?,
                bcc: addresses("bcc", bcc)?,
                subject: subject.clone(),
                body: if *html {
                    Body::html(content)
                } else {
                    Body::text(content)
                },
                attachments: attach
                    .iter()
                    .map(|p| attachment(p))
                    .collect::<anyhow::Result<_>>()?,
                importance: match importance {
                    ImportanceArg::Low => Importance::Low,
                    ImportanceArg::Normal => Importance::Normal,
                    ImportanceArg::High => Importance::High,
                },
                from: from.as_deref().map(|f| address("from", f)).transpose()?,
                save_to_sent: !no_save,
            };
            o.backend.mail()?.send(&o.mailbox, &message).await?;
            writeln!(
                out,
                "sent to {}",
                message
                    .to
                    .iter()
                    .map(|r| r.address.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
        }
        MailCommand::Reply {
            id,
            on,
            comment,
            all,
        } => {
            let o = open(ctx, on).await?;
            o.backend
                .mail()?
                .reply(&o.mailbox, id, comment, *all)
                .await?;
            writeln!(out, "replied")?;
        }
        MailCommand::Forward {
            id,
            on,
            to,
            comment,
        } => {
            let o = open(ctx, on).await?;
            o.backend
                .mail()?
                .forward(&o.mailbox, id, &addresses("to", to)?, comment)
                .await?;
            writeln!(out, "forwarded")?;
        }
        MailCommand::Move { id, on, folder } => {
            let o = open(ctx, on).await?;
            let new_id = o
                .backend
                .mail()?
                .move_message(&o.mailbox, id, &FolderRef::parse(folder))
                .await?;
            writeln!(out, "{new_id}")?;
        }
        MailCommand::Delete { id, on } => {
            let o = open(ctx, on).await?;
            o.backend.mail()?.delete_message(&o.mailbox, id).await?;
            writeln!(out, "deleted")?;
        }
        MailCommand::Mark { id, on, read, .. } => {
            let o = open(ctx, on).await?;
            o.backend.mail()?.set_read(&o.mailbox, id, *read).await?;
            writeln!(out, "marked {}", if *read { "read" } else { "unread" })?;
        }
        MailCommand::Export {
            on,
            folder,
            out: dir,
        } => {
            let o = open(ctx, on).await?;
            let printer = progress_printer();
            let folder = (folder != "all").then(|| FolderRef::parse(folder));
            let report = export::export_folder(
                o.backend.mail_handle()?,
                &o.mailbox,
                folder.as_ref(),
                dir,
                &printer,
            )
            .await?;
            for (id, why) in &report.failed {
                writeln!(std::io::stderr(), "failed: {id}: {why}")?;
            }
            writeln!(
                out,
                "exported {} message(s) to {} ({} already there, {} failed)",
                report.exported,
                dir.display(),
                report.skipped,
                report.failed.len()
            )?;
            if !report.failed.is_empty() {
                return Err(anyhow::anyhow!(
                    "{} message(s) could not be exported; run the same command again to retry them",
                    report.failed.len()
                ));
            }
        }
    }
    Ok(())
}

fn event_draft(e: &EventArgs) -> anyhow::Result<EventDraft> {
    let tz =
        e.tz.as_deref()
            .map(time_zone)
            .transpose()?
            .unwrap_or(TimeZone::UTC);
    let mut attendees: Vec<(Recipient, AttendeeKind)> = Vec::new();
    for a in &e.attendee {
        attendees.push((address("attendee", a)?, AttendeeKind::Required));
    }
    for a in &e.optional {
        attendees.push((address("optional", a)?, AttendeeKind::Optional));
    }
    Ok(EventDraft {
        subject: e.subject.clone(),
        start: e
            .start
            .as_deref()
            .map(|s| event_time("start", s, tz))
            .transpose()?,
        end: e
            .end
            .as_deref()
            .map(|s| event_time("end", s, tz))
            .transpose()?,
        is_all_day: e.all_day.then_some(true),
        location: e.location.clone(),
        body: e.body.clone().map(Body::text),
        attendees: (!attendees.is_empty()).then_some(attendees),
        recurrence: None,
        online_meeting: e.online.then_some(true),
    })
}

fn print_events(out: &mut impl Write, events: &[Event]) -> anyhow::Result<()> {
    if events.is_empty() {
        writeln!(out, "no events")?;
    }
    for e in events {
        let start = e
            .start
            .date_time
            .format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]"
            ))
            .unwrap_or_default();
        let end = e
            .end
            .date_time
            .format(time::macros::format_description!("[hour]:[minute]"))
            .unwrap_or_default();
        let mark = match e.kind {
            exgate_core::mailbox::EventKind::Occurrence => "↻",
            exgate_core::mailbox::EventKind::Exception => "↻*",
            _ => "",
        };
        let day = if e.is_all_day {
            "all day".to_owned()
        } else {
            format!("{start}-{end}")
        };
        writeln!(
            out,
            "{day:<22} {:<40} {:<20} {mark} {}",
            clip(&e.subject, 40),
            clip(e.location.as_deref().unwrap_or(""), 20),
            e.id
        )?;
    }
    Ok(())
}

pub(crate) async fn calendar(ctx: &Context, cmd: &CalendarCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        CalendarCommand::List { on, from, to, tz } => {
            let (start, end) = range(from.as_deref(), to.as_deref())?;
            let tz = tz.as_deref().map(time_zone).transpose()?;
            let o = open(ctx, on).await?;
            let events = o
                .backend
                .calendar()?
                .events(&o.mailbox, start, end, tz.as_ref())
                .await?;
            if o.json {
                return print_json(&events);
            }
            print_events(&mut out, &events)?;
        }
        CalendarCommand::Create { on, event } => {
            let draft = event_draft(event)?;
            if draft.subject.is_none() || draft.start.is_none() || draft.end.is_none() {
                return Err(usage("a new event needs --subject, --start and --end"));
            }
            let o = open(ctx, on).await?;
            let created = o
                .backend
                .calendar()?
                .create_event(&o.mailbox, &draft)
                .await?;
            if o.json {
                return print_json(&created);
            }
            writeln!(out, "created {}", created.id)?;
        }
        CalendarCommand::Update { id, on, event } => {
            let draft = event_draft(event)?;
            if draft == EventDraft::default() {
                return Err(usage(
                    "nothing to change: give --subject, --start, --end, --location, … to change",
                ));
            }
            let o = open(ctx, on).await?;
            let updated = o
                .backend
                .calendar()?
                .update_event(&o.mailbox, id, &draft)
                .await?;
            if o.json {
                return print_json(&updated);
            }
            writeln!(out, "updated {}", updated.id)?;
        }
        CalendarCommand::Delete { id, on } => {
            let o = open(ctx, on).await?;
            o.backend.calendar()?.delete_event(&o.mailbox, id).await?;
            writeln!(out, "deleted")?;
        }
        CalendarCommand::Freebusy {
            on,
            who,
            from,
            to,
            interval,
        } => {
            let o = open(ctx, on).await?;
            let (start, end) = range(from.as_deref(), to.as_deref())?;
            let who: Vec<String> = addresses("who", who)?
                .into_iter()
                .map(|r| r.address)
                .collect();
            let answers = o
                .backend
                .availability()?
                .free_busy(&o.mailbox, &who, start, end, *interval)
                .await?;
            if o.json {
                return print_json(&answers);
            }
            writeln!(
                out,
                "one character per {interval} minutes from {}: . free  t tentative  B busy  O out of office  w elsewhere  ? unknown",
                when(Some(start))
            )?;
            for fb in &answers {
                let view: String = fb
                    .view
                    .iter()
                    .map(|s| match s {
                        ShowAs::Free => '.',
                        ShowAs::Tentative => 't',
                        ShowAs::Busy => 'B',
                        ShowAs::OutOfOffice => 'O',
                        ShowAs::WorkingElsewhere => 'w',
                        ShowAs::Unknown => '?',
                    })
                    .collect();
                match &fb.error {
                    Some(e) => writeln!(out, "{:<32} {e}", fb.mailbox)?,
                    None => writeln!(out, "{:<32} {view}", fb.mailbox)?,
                }
            }
        }
    }
    Ok(())
}

fn contact_draft(c: &ContactArgs) -> anyhow::Result<ContactDraft> {
    Ok(ContactDraft {
        display_name: c.name.clone(),
        given_name: c.given_name.clone(),
        surname: c.surname.clone(),
        emails: if c.email.is_empty() {
            None
        } else {
            Some(addresses("email", &c.email)?)
        },
        business_phones: (!c.phone.is_empty()).then(|| c.phone.clone()),
        mobile_phone: c.mobile.clone(),
        company: c.company.clone(),
        job_title: c.job_title.clone(),
    })
}

pub(crate) async fn contacts(ctx: &Context, cmd: &ContactsCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        ContactsCommand::List { on, page } => {
            let o = open(ctx, on).await?;
            let page = o
                .backend
                .contacts()?
                .contacts(&o.mailbox, page.as_deref())
                .await?;
            if o.json {
                return print_json(&page.items);
            }
            for c in &page.items {
                let email = c.emails.first().map(|e| e.address.as_str()).unwrap_or("-");
                writeln!(
                    out,
                    "{:<28} {:<34} {:<20} {}",
                    clip(&c.display_name, 28),
                    email,
                    clip(c.company.as_deref().unwrap_or(""), 20),
                    c.id
                )?;
            }
            if let Some(next) = &page.next {
                writeln!(std::io::stderr(), "more: {}", next_page_command(next))?;
            }
        }
        ContactsCommand::Show { id, on } => {
            let o = open(ctx, on).await?;
            let c = o.backend.contacts()?.contact(&o.mailbox, id).await?;
            if o.json {
                return print_json(&c);
            }
            writeln!(out, "name:     {}", c.display_name)?;
            for e in &c.emails {
                writeln!(out, "email:    {}", e.address)?;
            }
            for p in &c.business_phones {
                writeln!(out, "phone:    {p}")?;
            }
            if let Some(m) = &c.mobile_phone {
                writeln!(out, "mobile:   {m}")?;
            }
            if let Some(x) = &c.company {
                writeln!(out, "company:  {x}")?;
            }
            if let Some(x) = &c.job_title {
                writeln!(out, "title:    {x}")?;
            }
        }
        ContactsCommand::Create { on, contact } => {
            let o = open(ctx, on).await?;
            let created = o
                .backend
                .contacts()?
                .create_contact(&o.mailbox, &contact_draft(contact)?)
                .await?;
            if o.json {
                return print_json(&created);
            }
            writeln!(out, "created {}", created.id)?;
        }
        ContactsCommand::Update { id, on, contact } => {
            let o = open(ctx, on).await?;
            let draft = contact_draft(contact)?;
            if draft == ContactDraft::default() {
                return Err(usage(
                    "nothing to change: give --name, --email, --phone, … to change",
                ));
            }
            let updated = o
                .backend
                .contacts()?
                .update_contact(&o.mailbox, id, &draft)
                .await?;
            if o.json {
                return print_json(&updated);
            }
            writeln!(out, "updated {}", updated.id)?;
        }
        ContactsCommand::Delete { id, on } => {
            let o = open(ctx, on).await?;
            o.backend.contacts()?.delete_contact(&o.mailbox, id).await?;
            writeln!(out, "deleted")?;
        }
    }
    Ok(())
}
