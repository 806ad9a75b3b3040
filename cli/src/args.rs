//! The command line, as clap definitions. Parsing only: no logic here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "exgate",
    version,
    about = "Connect scripts and mail clients to Microsoft Exchange through Entra ID",
    propagate_version = true
)]
pub(crate) struct Cli {
    /// Read this configuration file after the system and user files.
    #[arg(long, global = true, value_name = "FILE", env = "EXGATE_CONFIG")]
    pub(crate) config: Option<PathBuf>,

    /// Log more to stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Add, inspect, change and remove connections to Exchange.
    #[command(subcommand)]
    Connection(Box<ConnectionCommand>),
    /// Sign a user in on an oauth2-delegated connection and link their mailbox.
    Login(LoginArgs),
    /// Remove a linked account and its tokens.
    Logout {
        #[command(flatten)]
        target: AccountArgs,
    },
    /// The linked accounts ("known users") of a connection.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Print an access token, and nothing else, on stdout (for msmtp/mutt/aerc `passwordeval`).
    Token {
        #[command(flatten)]
        target: AccountArgs,
        /// The API the token is for.
        #[arg(long, default_value = "graph", value_name = "graph|ews|imap|pop|smtp")]
        resource: String,
    },
    /// Read, send, move, delete and export mail.
    #[command(subcommand)]
    Mail(MailCommand),
    /// Events, invitations and free/busy.
    #[command(subcommand)]
    Calendar(CalendarCommand),
    /// The mailbox's contacts.
    #[command(subcommand)]
    Contacts(ContactsCommand),
    /// Print the mailbox's changes as they happen, one line (or JSON object) per event, until
    /// Ctrl-C.
    Watch(WatchArgs),
    /// The local IMAP/POP/SMTP bridge for software that only knows passwords: `exgate bridge`
    /// serves it; `exgate bridge user add` lets a mailbox use it.
    Bridge(BridgeArgs),
    /// Plan an app registration for what exgate will do and print exactly what to do; with the
    /// app's IDs and credential (or --register) create the connections and test them.
    Setup(Box<SetupArgs>),
    /// Register the app in Entra ID through Microsoft Graph as an administrator, or rotate its
    /// secret.
    #[command(subcommand)]
    App(Box<AppCommand>),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConnectionCommand {
    /// Add a connection. Secrets are read from a file, stdin or a prompt, never from arguments.
    #[command(after_help = ADD_EXAMPLES)]
    Add {
        name: String,
        #[command(flatten)]
        settings: ConnectionArgs,
        #[command(flatten)]
        secrets: SecretArgs,
        /// Exchange Server: find the EWS URL by autodiscover for this address, signing in with
        /// the connection's --auth basic or ntlm account; each attempt is printed.
        #[arg(long, value_name = "ADDRESS", conflicts_with = "ews_url")]
        autodiscover: Option<String>,
        /// With --autodiscover: a host outside the address's domain that may receive the
        /// credentials (a hosted Exchange you confirmed); repeat for more.
        #[arg(long = "trust-host", value_name = "HOST", requires = "autodiscover")]
        trust_hosts: Vec<String>,
    },
    /// List connections.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one connection; secrets are shown only as set or not set.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
        /// Also read the credential's expiry from the app's registration in Microsoft Graph
        /// (needs Application.Read.All, or Application.ReadWrite.OwnedBy as an owner of itself);
        /// a date given with --credential-expires still wins.
        #[arg(long)]
        from_graph: bool,
    },
    /// Change the given settings of a connection and keep the rest.
    Edit {
        name: String,
        #[command(flatten)]
        settings: ConnectionArgs,
        #[command(flatten)]
        secrets: SecretArgs,
        /// Remove the client secret or certificate, making the app a public client.
        #[arg(long, conflicts_with_all = ["client_secret_file", "ask_client_secret", "certificate"])]
        remove_credential: bool,
        /// Forget the credential's expiry date (a certificate's own still counts).
        #[arg(long, conflicts_with = "credential_expires")]
        clear_credential_expires: bool,
    },
    /// Remove a connection with its linked accounts.
    Remove { name: String },
    /// Test a connection step by step: identity provider, credentials, token claims, mailbox;
    /// Exchange Server with basic or ntlm: EWS endpoint, authentication, mailbox, mailbox access.
    #[command(after_help = TEST_HELP)]
    Test {
        name: String,
        /// The account of a delegated connection (default: its only account).
        #[arg(long, short = 'a')]
        account: Option<String>,
        /// The mailbox to read (default: the account's own; app-only connections have none).
        #[arg(long, short = 'm')]
        mailbox: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

const TEST_HELP: &str = "\
Each step is a real probe, or says why it was skipped. Exit code 0 only when every step ran and
passed; 1 when a step failed or was skipped.

Examples:
  exgate connection test contoso-app --mailbox adele@contoso.com
  exgate connection test contoso --account adele@contoso.com --json";

const ADD_EXAMPLES: &str = "\
Examples:
  Exchange Online, users sign in (public client):
    exgate connection add contoso --tenant contoso.onmicrosoft.com \\
      --auth oauth2-delegated --client-id 11111111-2222-3333-4444-555555555555
  Exchange Online, app-only with a secret kept in a file:
    exgate connection add contoso-app --tenant 72f988bf-86f1-41af-91ab-2d7cd011db47 \\
      --auth oauth2-app-only --client-id 11111111-2222-3333-4444-555555555555 \\
      --client-secret-file /run/secrets/exgate-client-secret
  Exchange Server, EWS URL found by autodiscover:
    exgate connection add onprem --autodiscover svc-exgate@contoso.com \\
      --auth ntlm --username 'CONTOSO\\svc-exgate' --password-file /run/secrets/exgate-password
  Exchange Server with NTLM, password typed at a prompt:
    exgate connection add onprem --ews-url https://mail.contoso.com/EWS/Exchange.asmx \\
      --auth ntlm --username 'CONTOSO\\svc-exgate' --ask-password";

// Non-secret settings of a connection; each maps to one field of the configuration file.
// (Plain comments on flattened structs: clap would take a doc comment as the about-text of
// every subcommand that flattens the struct and has none of its own.)
/// How `mail send` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ViaArg {
    Smtp,
}

#[derive(Debug, Args)]
pub(crate) struct ConnectionArgs {
    /// `online` (Exchange Online) or `server` (Exchange Server); inferred from --tenant or --ews-url.
    #[arg(long)]
    pub(crate) target: Option<String>,
    /// Microsoft cloud of the tenant: global, usgov or china.
    #[arg(long)]
    pub(crate) cloud: Option<String>,
    /// Directory (tenant) ID, a verified domain, `organizations` or `common`.
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    /// Exchange Server version: 2010sp2, 2013, 2013sp1, 2016, 2019 or se.
    #[arg(long)]
    pub(crate) server_version: Option<String>,
    /// Exchange Server's EWS URL, such as https://mail.contoso.com/EWS/Exchange.asmx.
    #[arg(long)]
    pub(crate) ews_url: Option<String>,
    /// Which API reads: auto, graph, ews, imap or pop (imap/pop: Exchange Online with OAuth2).
    #[arg(long)]
    pub(crate) backend: Option<String>,
    /// Which protocol sends: auto (the backend's own; SMTP for imap/pop), graph, ews or smtp.
    #[arg(long)]
    pub(crate) send: Option<String>,
    /// IMAP server: imaps://host:993, or imap://host:143 with STARTTLS (default: Exchange Online's).
    #[arg(long, value_name = "URL")]
    pub(crate) imap_url: Option<String>,
    /// POP3 server: pop3s://host:995, or pop3://host:110 with STLS (default: Exchange Online's).
    #[arg(long, value_name = "URL")]
    pub(crate) pop_url: Option<String>,
    /// SMTP submission server: smtp://host:587 with STARTTLS, or smtps://host:465 (default:
    /// Exchange Online's).
    #[arg(long, value_name = "URL")]
    pub(crate) smtp_url: Option<String>,
    /// oauth2-delegated, oauth2-app-only, basic or ntlm.
    #[arg(long)]
    pub(crate) auth: Option<String>,
    /// Client ID: the app registration's Application (client) ID (a GUID) for Entra ID, or
    /// the client ID a custom authority issued.
    #[arg(long)]
    pub(crate) client_id: Option<String>,
    /// Default sign-in flow for oauth2-delegated: authorization-code, device-code or password.
    #[arg(long)]
    pub(crate) flow: Option<String>,
    /// Redirect URI registered for the app (default: http://localhost for the CLI).
    #[arg(long)]
    pub(crate) redirect_uri: Option<String>,
    /// A delegated scope to request instead of the defaults; repeat for more.
    #[arg(long = "scope", value_name = "SCOPE")]
    pub(crate) scopes: Vec<String>,
    /// Where the gateway may send a user's browser after a sign-in an application started (its
    /// `return_url` must be at or below one of these); repeat for more.
    #[arg(long = "return-url", value_name = "URL")]
    pub(crate) return_urls: Vec<String>,
    /// Discovery URL of a custom OIDC authority (AD FS, Keycloak).
    #[arg(long)]
    pub(crate) authority: Option<String>,
    /// With a custom authority: the RFC 8707 resource indicator (absolute URI) to send with
    /// every authorization and token request.
    #[arg(long, value_name = "URI")]
    pub(crate) resource: Option<String>,
    /// User name for basic or ntlm (user@contoso.com or DOMAIN\user).
    #[arg(long)]
    pub(crate) username: Option<String>,
    /// When the client secret (or certificate, or password) expires: YYYY-MM-DD or RFC 3339;
    /// exgate warns 30, 14, 7 and 1 days ahead. A certificate's own expiry is read from it.
    #[arg(long, value_name = "DATE")]
    pub(crate) credential_expires: Option<String>,
}

// Where secrets come from. `-` as a file means standard input.
#[derive(Debug, Args)]
pub(crate) struct SecretArgs {
    /// Read the client secret's value from FILE (`-` for stdin).
    #[arg(long, value_name = "FILE", conflicts_with = "ask_client_secret")]
    pub(crate) client_secret_file: Option<PathBuf>,
    /// Prompt for the client secret's value.
    #[arg(long)]
    pub(crate) ask_client_secret: bool,
    /// PEM file with the app's certificate (and its private key, unless --private-key is given).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["client_secret_file", "ask_client_secret"])]
    pub(crate) certificate: Option<PathBuf>,
    /// PEM file with the certificate's private key.
    #[arg(long, value_name = "FILE", requires = "certificate")]
    pub(crate) private_key: Option<PathBuf>,
    /// Read the basic/ntlm password from FILE (`-` for stdin).
    #[arg(long, value_name = "FILE", conflicts_with = "ask_password")]
    pub(crate) password_file: Option<PathBuf>,
    /// Prompt for the basic/ntlm password.
    #[arg(long)]
    pub(crate) ask_password: bool,
}

// Which connection and account a command is about.
#[derive(Debug, Args)]
pub(crate) struct AccountArgs {
    /// The connection (default: the only one there is).
    #[arg(long, short = 'c', env = "EXGATE_CONNECTION")]
    pub(crate) connection: Option<String>,
    /// The account (default: the connection's only account).
    #[arg(long, short = 'a', env = "EXGATE_ACCOUNT")]
    pub(crate) account: Option<String>,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("method").args(["browser", "device_code", "manual", "password"]))]
pub(crate) struct LoginArgs {
    #[command(flatten)]
    pub(crate) target: AccountArgs,
    /// Sign in in a browser that returns to a listener on this machine (authorization code + PKCE).
    #[arg(long)]
    pub(crate) browser: bool,
    /// Sign in on another device with a code (for SSH sessions and machines without a browser).
    #[arg(long)]
    pub(crate) device_code: bool,
    /// Sign in in any browser, then paste the address it ends on.
    #[arg(long)]
    pub(crate) manual: bool,
    /// Sign in with a user name and password (legacy; fails under MFA).
    #[arg(long)]
    pub(crate) password: bool,
    /// The user name for --password (prompted for when missing).
    #[arg(long, requires = "password")]
    pub(crate) username: Option<String>,
    /// Read the password for --password from FILE (`-` for stdin); prompted for when missing.
    #[arg(long, value_name = "FILE", requires = "password")]
    pub(crate) password_file: Option<std::path::PathBuf>,
    /// Suggest this user name on the sign-in page.
    #[arg(long)]
    pub(crate) login_hint: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AccountsCommand {
    /// List accounts, optionally those whose principal or mailbox contains TEXT.
    List {
        #[arg(long, short = 'c', env = "EXGATE_CONNECTION")]
        connection: Option<String>,
        #[arg(long, value_name = "TEXT")]
        filter: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one account.
    Show {
        principal: String,
        #[arg(long, short = 'c', env = "EXGATE_CONNECTION")]
        connection: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Forget an account's tokens; the user must sign in again.
    Reset {
        principal: String,
        #[arg(long, short = 'c', env = "EXGATE_CONNECTION")]
        connection: Option<String>,
    },
    /// Forget the tokens of every account of the connection.
    ResetAll {
        #[arg(long, short = 'c', env = "EXGATE_CONNECTION")]
        connection: Option<String>,
    },
}

// Which mailbox a mail, calendar or contacts command acts on.
#[derive(Debug, Args)]
pub(crate) struct MailboxArgs {
    #[command(flatten)]
    pub(crate) target: AccountArgs,
    /// Another user's or a shared mailbox (default: the signed-in user's own; required app-only).
    #[arg(long, short = 'm', env = "EXGATE_MAILBOX")]
    pub(crate) mailbox: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = false)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum MailCommand {
    /// List messages, newest first.
    List {
        #[command(flatten)]
        on: MailboxArgs,
        /// inbox, drafts, sent-items, deleted-items, archive, junk-email, or a folder ID (default: inbox).
        #[arg(long, default_value = "inbox")]
        folder: String,
        #[arg(long)]
        unread: bool,
        /// Only from this address.
        #[arg(long)]
        from: Option<String>,
        /// Only received on or after this date (YYYY-MM-DD or RFC 3339).
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        with_attachments: bool,
        /// Messages per page.
        #[arg(long, default_value_t = 25)]
        limit: u32,
        /// The page token a previous list printed.
        #[arg(long)]
        page: Option<String>,
    },
    /// List the mailbox's folders.
    Folders {
        #[command(flatten)]
        on: MailboxArgs,
    },
    /// Show a message.
    Show {
        id: String,
        #[command(flatten)]
        on: MailboxArgs,
        /// Ask the server for the body as plain text.
        #[arg(long, conflicts_with = "html")]
        text: bool,
        /// Ask the server for the body as HTML.
        #[arg(long)]
        html: bool,
        /// Save the message's file attachments into DIR.
        #[arg(long, value_name = "DIR")]
        save_attachments: Option<std::path::PathBuf>,
    },
    /// Send a message. The body is read from --body, --body-file, or standard input.
    Send {
        #[command(flatten)]
        on: MailboxArgs,
        #[arg(long, required = true)]
        to: Vec<String>,
        #[arg(long)]
        cc: Vec<String>,
        #[arg(long)]
        bcc: Vec<String>,
        #[arg(long, default_value = "")]
        subject: String,
        #[arg(long, conflicts_with = "body_file")]
        body: Option<String>,
        /// Read the body from FILE (`-` for stdin).
        #[arg(long, value_name = "FILE")]
        body_file: Option<std::path::PathBuf>,
        /// The body is HTML.
        #[arg(long)]
        html: bool,
        /// Attach FILE; repeat for more.
        #[arg(long, value_name = "FILE")]
        attach: Vec<std::path::PathBuf>,
        /// Send as this (shared) mailbox; needs Send As on it.
        #[arg(long)]
        from: Option<String>,
        /// Do not keep a copy in Sent Items.
        #[arg(long)]
        no_save: bool,
        #[arg(long, value_enum, default_value = "normal")]
        importance: ImportanceArg,
        /// Send over SMTP with XOAUTH2 (Exchange Online) instead of the connection's own way;
        /// app-only connections name the sending mailbox with --mailbox.
        #[arg(long, value_enum)]
        via: Option<ViaArg>,
    },
    /// Reply to a message.
    Reply {
        id: String,
        #[command(flatten)]
        on: MailboxArgs,
        #[arg(long, default_value = "")]
        comment: String,
        /// Reply to all recipients.
        #[arg(long)]
        all: bool,
    },
    /// Forward a message.
    Forward {
        id: String,
        #[command(flatten)]
        on: MailboxArgs,
        #[arg(long, required = true)]
        to: Vec<String>,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Move a message to another folder; prints its new ID.
    Move {
        id: String,
        #[command(flatten)]
        on: MailboxArgs,
        /// inbox, archive, deleted-items, … or a folder ID.
        #[arg(long = "to")]
        folder: String,
    },
    /// Delete a message (it goes to Deleted Items).
    Delete {
        id: String,
        #[command(flatten)]
        on: MailboxArgs,
    },
    /// Mark a message read or unread.
    Mark {
        id: String,
        #[command(flatten)]
        on: MailboxArgs,
        #[arg(long, conflicts_with = "unread", required_unless_present = "unread")]
        read: bool,
        #[arg(long)]
        unread: bool,
    },
    /// Export a folder (or `--folder all`: the whole mailbox) as .eml files into DIR; run it
    /// again to resume.
    Export {
        #[command(flatten)]
        on: MailboxArgs,
        /// A folder, or `all`.
        #[arg(long, default_value = "inbox")]
        folder: String,
        #[arg(long, value_name = "DIR")]
        out: std::path::PathBuf,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum ImportanceArg {
    Low,
    Normal,
    High,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CalendarCommand {
    /// Events in a range, recurrences expanded.
    List {
        #[command(flatten)]
        on: MailboxArgs,
        /// Start (YYYY-MM-DD or RFC 3339; default: today).
        #[arg(long)]
        from: Option<String>,
        /// End (default: 7 days after the start).
        #[arg(long)]
        to: Option<String>,
        /// Show times in this zone (IANA or Windows name; default UTC).
        #[arg(long)]
        tz: Option<String>,
    },
    /// Create an event; attendees get an invitation.
    Create {
        #[command(flatten)]
        on: MailboxArgs,
        #[command(flatten)]
        event: EventArgs,
    },
    /// Change an event.
    Update {
        id: String,
        #[command(flatten)]
        on: MailboxArgs,
        #[command(flatten)]
        event: EventArgs,
    },
    /// Delete an event.
    Delete {
        id: String,
        #[command(flatten)]
        on: MailboxArgs,
    },
    /// Free/busy of one or more mailboxes.
    Freebusy {
        #[command(flatten)]
        on: MailboxArgs,
        /// A mailbox to look up; repeat for more.
        #[arg(long, required = true)]
        who: Vec<String>,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        /// Minutes per slot.
        #[arg(long, default_value_t = 30)]
        interval: u32,
    },
}

#[derive(Debug, Args)]
pub(crate) struct EventArgs {
    #[arg(long)]
    pub(crate) subject: Option<String>,
    /// Start, local to --tz (YYYY-MM-DDTHH:MM, or YYYY-MM-DD with --all-day).
    #[arg(long)]
    pub(crate) start: Option<String>,
    #[arg(long)]
    pub(crate) end: Option<String>,
    /// The zone of --start and --end (IANA or Windows name; default UTC).
    #[arg(long)]
    pub(crate) tz: Option<String>,
    #[arg(long)]
    pub(crate) all_day: bool,
    #[arg(long)]
    pub(crate) location: Option<String>,
    #[arg(long)]
    pub(crate) body: Option<String>,
    /// A required attendee; repeat for more.
    #[arg(long)]
    pub(crate) attendee: Vec<String>,
    /// An optional attendee; repeat for more.
    #[arg(long)]
    pub(crate) optional: Vec<String>,
    /// Make it an online (Teams) meeting.
    #[arg(long)]
    pub(crate) online: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ContactsCommand {
    /// List contacts, a page at a time.
    List {
        #[command(flatten)]
        on: MailboxArgs,
        #[arg(long)]
        page: Option<String>,
    },
    /// Show a contact.
    Show {
        id: String,
        #[command(flatten)]
        on: MailboxArgs,
    },
    /// Create a contact; prints its ID.
    Create {
        #[command(flatten)]
        on: MailboxArgs,
        #[command(flatten)]
        contact: ContactArgs,
    },
    /// Change the given fields of a contact and keep the rest.
    Update {
        id: String,
        #[command(flatten)]
        on: MailboxArgs,
        #[command(flatten)]
        contact: ContactArgs,
    },
    /// Delete a contact.
    Delete {
        id: String,
        #[command(flatten)]
        on: MailboxArgs,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ContactArgs {
    /// Display name.
    #[arg(long)]
    pub(crate) name: Option<String>,
    #[arg(long)]
    pub(crate) given_name: Option<String>,
    #[arg(long)]
    pub(crate) surname: Option<String>,
    /// An email address; repeat for more (replaces the existing ones on update).
    #[arg(long)]
    pub(crate) email: Vec<String>,
    /// A business phone; repeat for more.
    #[arg(long)]
    pub(crate) phone: Vec<String>,
    #[arg(long)]
    pub(crate) mobile: Option<String>,
    #[arg(long)]
    pub(crate) company: Option<String>,
    #[arg(long)]
    pub(crate) job_title: Option<String>,
}

#[derive(Debug, Args)]
#[command(after_help = WATCH_HELP)]
pub(crate) struct WatchArgs {
    #[command(flatten)]
    pub(crate) target: AccountArgs,
    /// Another user's or a shared mailbox (default: the signed-in user's own; required app-only).
    #[arg(long, short = 'm', env = "EXGATE_MAILBOX")]
    pub(crate) mailbox: Option<String>,
    /// A mail folder to watch: inbox, sent-items, archive, … or a folder ID; repeat for more
    /// (default: inbox, unless only --calendar is given).
    #[arg(long = "folder", value_name = "FOLDER")]
    pub(crate) folders: Vec<String>,
    /// Watch the events of the default calendar (Graph and EWS connections).
    #[arg(long)]
    pub(crate) calendar: bool,
    /// Print each event as one JSON object per line.
    #[arg(long)]
    pub(crate) json: bool,
    /// Seconds between two looks at a mailbox whose protocol cannot tell of changes (Microsoft
    /// Graph from the command line, POP).
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub(crate) interval: u64,
}

const WATCH_HELP: &str = "\
Events start when the command starts: what the mailbox holds then is not reported. Nothing is
written to exgate's store.

How changes are found: Microsoft Graph pushes notifications only to a public URL, which the
command line has none of, so a Graph mailbox is looked at every --interval seconds (the gateway,
exgate-server, with a public URL, is told by Graph instead); IMAP is told by IDLE and EWS by
streaming notifications, and looks anyway every 5 minutes (or every --interval if longer); POP
is looked at every --interval seconds.

Each line is `TIME TYPE FOLDER ITEM-ID` (moves add `from FOLDER ITEM-ID`), such as
  2026-12-02T10:00:00Z message.created inbox AAMkAGI2…
TYPE is message.created|updated|deleted|moved or event.created|updated|deleted; the ITEM-ID is
what `exgate mail show` and `exgate calendar update` take. With --json, each line is the event
as webhooks receive it: {\"id\", \"seq\", \"type\", \"folder\", \"item_id\", \"detected_at\", …}.
Ctrl-C or SIGTERM stops it (exit code 0).

Examples:
  exgate watch
  exgate watch -c contoso-app -m helpdesk@contoso.com --folder inbox --folder archive --json
  exgate watch --calendar --interval 60
  exgate watch --json | jq -r --unbuffered 'select(.type == \"message.created\") | .item_id'";

#[derive(Debug, clap::Args)]
#[command(after_help = BRIDGE_EXAMPLES)]
pub(crate) struct BridgeArgs {
    #[command(subcommand)]
    pub(crate) command: Option<BridgeCommand>,
}

const BRIDGE_EXAMPLES: &str = "Examples:
  exgate bridge user add helpdesk@contoso.com --connection helpdesk
  exgate bridge                      # IMAP on 127.0.0.1:1143, POP on 1110, SMTP on 1587
  exgate bridge user list
  exgate bridge user remove helpdesk@contoso.com";

#[derive(Debug, Subcommand)]
pub(crate) enum BridgeCommand {
    /// Who may sign in to the bridge with a local password.
    #[command(subcommand)]
    User(BridgeUserCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum BridgeUserCommand {
    /// Let a mailbox be read and sent from through the bridge; prints its local password once.
    Add {
        /// The mailbox, which is also the user name the client signs in with.
        mailbox: String,
        /// The connection to Exchange Online (default: the only one).
        #[arg(long, short = 'c', env = "EXGATE_CONNECTION")]
        connection: Option<String>,
        /// Delegated connections: the signed-in account that acts (default: the mailbox's own).
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List bridge users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a bridge user; its local password stops working at once.
    Remove { mailbox: String },
}

// What the app will do (`exgate setup`, `exgate app register`).
#[derive(Debug, Args)]
pub(crate) struct NeedsArgs {
    /// The app registration's name and the start of the connections' names.
    #[arg(long, default_value = "exgate")]
    pub(crate) name: String,
    /// Who signs in: portal (users through the gateway), cli (a person), mail-client (through
    /// `exgate token`), service (app-only); repeat for more.
    #[arg(long = "who", value_name = "WHO")]
    pub(crate) who: Vec<String>,
    /// graph, ews, imap, pop or smtp; repeat for more.
    #[arg(long = "protocol", value_name = "PROTOCOL")]
    pub(crate) protocols: Vec<String>,
    /// Directory (tenant) ID or a verified domain.
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    /// Microsoft cloud: global, usgov or china.
    #[arg(long)]
    pub(crate) cloud: Option<String>,
    /// The mailboxes are on Exchange Server on premises (EWS with a service account).
    #[arg(long)]
    pub(crate) server: bool,
    /// The gateway's public URL (for --who portal), such as https://exgate.contoso.com.
    #[arg(long, value_name = "URL")]
    pub(crate) public_url: Option<String>,
    /// A mailbox the service may reach; repeat for more.
    #[arg(long = "mailbox", value_name = "ADDRESS")]
    pub(crate) mailboxes: Vec<String>,
    /// Limit app-only Graph and EWS to the mailboxes with RBAC for Applications.
    #[arg(long)]
    pub(crate) rbac: bool,
    /// Signed-in users also open shared mailboxes.
    #[arg(long)]
    pub(crate) shared_mailboxes: bool,
    /// secret or certificate.
    #[arg(long, default_value = "secret")]
    pub(crate) credential: String,
    /// The credential's lifetime in months (1 to 24).
    #[arg(long, default_value_t = 12)]
    pub(crate) months: u32,
    /// Exchange Server: the service account that impersonates (CONTOSO\\svc-exgate).
    #[arg(long)]
    pub(crate) service_account: Option<String>,
}

// How `exgate app register` signs in and what it may do.
#[derive(Debug, Args)]
pub(crate) struct RegisterOptions {
    /// List the Graph requests a first registration sends, and send nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// The public client the administrator signs in with (default: Microsoft Graph Command
    /// Line Tools, 14d82eec-204b-4c2f-b7e8-296a70dab67e).
    #[arg(long, value_name = "CLIENT_ID")]
    pub(crate) admin_client_id: Option<String>,
    /// Also run the Exchange Online part (New-ServicePrincipal, Add-MailboxPermission, RBAC)
    /// through Exchange's admin API, with a second sign-in; otherwise it is printed.
    #[arg(long)]
    pub(crate) exchange: bool,
    /// Add a new secret or certificate even when the connections hold one.
    #[arg(long)]
    pub(crate) new_credential: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SetupArgs {
    #[command(flatten)]
    pub(crate) needs: NeedsArgs,
    /// Print the plan as JSON and do nothing else.
    #[arg(long)]
    pub(crate) json: bool,
    /// The registered app's Application (client) ID: create the connections with it.
    #[arg(long, conflicts_with = "register")]
    pub(crate) client_id: Option<String>,
    /// Read the app's client secret value from FILE (`-` for stdin).
    #[arg(long, value_name = "FILE", requires = "client_id")]
    pub(crate) client_secret_file: Option<PathBuf>,
    /// PEM file with the app's certificate (and its key, unless --private-key is given).
    #[arg(
        long,
        value_name = "FILE",
        requires = "client_id",
        conflicts_with = "client_secret_file"
    )]
    pub(crate) certificate: Option<PathBuf>,
    /// PEM file with the certificate's private key.
    #[arg(long, value_name = "FILE", requires = "certificate")]
    pub(crate) private_key: Option<PathBuf>,
    /// Register the app now through Graph (`exgate app register`), then create the connections.
    #[arg(long)]
    pub(crate) register: bool,
    #[command(flatten)]
    pub(crate) options: RegisterOptions,
}

// Parsed once per run and already boxed in `Command`: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum AppCommand {
    /// Create or update the app registration, its consent and the connections, then test them.
    Register {
        #[command(flatten)]
        needs: NeedsArgs,
        #[command(flatten)]
        options: RegisterOptions,
    },
    /// Add a new client secret, store and test it, then remove the old one.
    RotateSecret {
        /// The connection whose secret to replace (every connection of the app gets the new one).
        connection: String,
        /// The new secret's lifetime in months (1 to 24).
        #[arg(long, default_value_t = 12)]
        months: u32,
        /// The public client the administrator signs in with.
        #[arg(long, value_name = "CLIENT_ID")]
        admin_client_id: Option<String>,
    },
}
