//! The SOAP envelope every request travels in: `t:RequestServerVersion`, optional
//! `t:ExchangeImpersonation` and `t:TimeZoneContext`, and the one operation in `soap:Body`.
//! Also the folder and item IDs requests name, and how a delegate's mailbox is named.

use time::OffsetDateTime;

use super::xml::Writer;
use crate::mailbox::{FolderRef, MailboxRef, TimeZone, WellKnownFolder};
use crate::model::ServerVersion;

/// The schema level a request asks for (`RequestServerVersion`). Microsoft documents
/// `Exchange2016` as the newest value, used for Exchange 2016, 2019, Subscription Edition and
/// Exchange Online alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RequestVersion {
    Exchange2010Sp2,
    Exchange2013,
    Exchange2013Sp1,
    Exchange2016,
}

impl RequestVersion {
    pub const ALL: [Self; 4] = [
        Self::Exchange2010Sp2,
        Self::Exchange2013,
        Self::Exchange2013Sp1,
        Self::Exchange2016,
    ];

    /// Exchange Online's.
    pub const ONLINE: Self = Self::Exchange2016;

    /// As the schema spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exchange2010Sp2 => "Exchange2010_SP2",
            Self::Exchange2013 => "Exchange2013",
            Self::Exchange2013Sp1 => "Exchange2013_SP1",
            Self::Exchange2016 => "Exchange2016",
        }
    }

    /// Whether properties that came with Exchange 2013 (`item:Preview`, `item:Flag`) exist.
    pub fn has_2013_properties(self) -> bool {
        self >= Self::Exchange2013
    }
}

impl From<ServerVersion> for RequestVersion {
    fn from(v: ServerVersion) -> Self {
        match v {
            ServerVersion::Exchange2010Sp2 => Self::Exchange2010Sp2,
            ServerVersion::Exchange2013 => Self::Exchange2013,
            ServerVersion::Exchange2013Sp1 => Self::Exchange2013Sp1,
            ServerVersion::Exchange2016
            | ServerVersion::Exchange2019
            | ServerVersion::SubscriptionEdition => Self::Exchange2016,
        }
    }
}

/// Who `ExchangeImpersonation` acts as (`ConnectingSID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectingSid {
    PrimarySmtpAddress(String),
    PrincipalName(String),
    Sid(String),
    SmtpAddress(String),
}

/// How a request reaches its mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MailboxAccess {
    /// The authenticated account's own mailbox.
    #[default]
    Own,
    /// Another mailbox the account has rights on: distinguished folders name it in
    /// `DistinguishedFolderId/Mailbox`.
    Delegate(String),
    /// Act as another user (`ExchangeImpersonation`; ApplicationImpersonation on premises,
    /// `full_access_as_app` app-only in Exchange Online).
    Impersonate(ConnectingSid),
}

/// What every request carries besides its operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub version: RequestVersion,
    pub access: MailboxAccess,
    /// `TimeZoneContext`: the zone the server uses for local times (calendar views, all-day
    /// events). Left out when the zone has no Windows name.
    pub time_zone: Option<TimeZone>,
}

impl RequestContext {
    pub fn new(version: RequestVersion) -> Self {
        Self {
            version,
            access: MailboxAccess::Own,
            time_zone: None,
        }
    }

    /// The context for a neutral mailbox: `Me` is the account's own; another address is
    /// reached by impersonation when `impersonate`, otherwise as a delegate.
    pub fn for_mailbox(version: RequestVersion, mailbox: &MailboxRef, impersonate: bool) -> Self {
        let access = match mailbox {
            MailboxRef::Me => MailboxAccess::Own,
            MailboxRef::User(u) if impersonate => {
                MailboxAccess::Impersonate(ConnectingSid::PrimarySmtpAddress(u.clone()))
            }
            MailboxRef::User(u) => MailboxAccess::Delegate(u.clone()),
        };
        Self {
            version,
            access,
            time_zone: None,
        }
    }

    pub fn with_time_zone(mut self, zone: TimeZone) -> Self {
        self.time_zone = Some(zone);
        self
    }

    /// The address for the `X-AnchorMailbox` HTTP header, which routes a request to the
    /// mailbox's server.
    pub fn anchor_mailbox(&self) -> Option<&str> {
        match &self.access {
            MailboxAccess::Own => None,
            MailboxAccess::Delegate(a) => Some(a),
            MailboxAccess::Impersonate(
                ConnectingSid::PrimarySmtpAddress(a)
                | ConnectingSid::SmtpAddress(a)
                | ConnectingSid::PrincipalName(a),
            ) => Some(a),
            MailboxAccess::Impersonate(ConnectingSid::Sid(_)) => None,
        }
    }
}

/// An EWS request: an operation that becomes a complete SOAP 1.1 envelope.
pub trait EwsRequest {
    /// The operation's name (`FindItem`); its answer is `m:<name>Response`.
    fn operation(&self) -> &'static str;
    /// The whole envelope, as the body of an HTTP POST to `/EWS/Exchange.asmx`.
    fn to_xml(&self, ctx: &RequestContext) -> String;
}

/// Writes the envelope around `body`.
pub(super) fn envelope(ctx: &RequestContext, body: impl FnOnce(&mut Writer)) -> String {
    let mut w = Writer::with_capacity(1024);
    w.raw(concat!(
        r#"<?xml version="1.0" encoding="utf-8"?>"#,
        r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/""#,
        r#" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types""#,
        r#" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">"#,
        "<soap:Header>"
    ));
    w.empty(
        "t:RequestServerVersion",
        &[("Version", ctx.version.as_str())],
    );
    if let MailboxAccess::Impersonate(sid) = &ctx.access {
        w.open("t:ExchangeImpersonation", &[]);
        w.open("t:ConnectingSID", &[]);
        match sid {
            ConnectingSid::PrincipalName(v) => w.leaf("t:PrincipalName", v),
            ConnectingSid::Sid(v) => w.leaf("t:SID", v),
            ConnectingSid::PrimarySmtpAddress(v) => w.leaf("t:PrimarySmtpAddress", v),
            ConnectingSid::SmtpAddress(v) => w.leaf("t:SmtpAddress", v),
        }
        w.close("t:ConnectingSID");
        w.close("t:ExchangeImpersonation");
    }
    if let Some(id) = ctx.time_zone.as_ref().and_then(TimeZone::windows) {
        w.open("t:TimeZoneContext", &[]);
        w.empty("t:TimeZoneDefinition", &[("Id", id)]);
        w.close("t:TimeZoneContext");
    }
    w.raw("</soap:Header><soap:Body>");
    body(&mut w);
    w.raw("</soap:Body></soap:Envelope>");
    w.finish()
}

/// Implements [`EwsRequest`] for types with `fn write(&self, w, ctx)`.
macro_rules! ews_request {
    ($($ty:ty => $name:literal),* $(,)?) => {
        $(
            impl $crate::ews::wire::EwsRequest for $ty {
                fn operation(&self) -> &'static str {
                    $name
                }
                fn to_xml(&self, ctx: &$crate::ews::wire::RequestContext) -> String {
                    $crate::ews::wire::envelope::envelope(ctx, |w| self.write(w, ctx))
                }
            }
        )*
    };
}
pub(super) use ews_request;

/// The folders EWS knows by name (`DistinguishedFolderId`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DistinguishedFolder {
    Inbox,
    Drafts,
    SentItems,
    DeletedItems,
    JunkEmail,
    Outbox,
    Calendar,
    Contacts,
    /// The top of the folders a person sees ("Top of Information Store").
    MsgFolderRoot,
    Root,
    /// The top of the online archive mailbox.
    ArchiveMsgFolderRoot,
}

impl DistinguishedFolder {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbox => "inbox",
            Self::Drafts => "drafts",
            Self::SentItems => "sentitems",
            Self::DeletedItems => "deleteditems",
            Self::JunkEmail => "junkemail",
            Self::Outbox => "outbox",
            Self::Calendar => "calendar",
            Self::Contacts => "contacts",
            Self::MsgFolderRoot => "msgfolderroot",
            Self::Root => "root",
            Self::ArchiveMsgFolderRoot => "archivemsgfolderroot",
        }
    }

    /// EWS's name for a neutral well-known folder. The mailbox's `Archive` folder has no
    /// distinguished ID in EWS (only the online archive does): find it by name under
    /// [`DistinguishedFolder::MsgFolderRoot`] ([`super::FindFolders::named`]).
    pub fn from_well_known(f: WellKnownFolder) -> Option<Self> {
        match f {
            WellKnownFolder::Inbox => Some(Self::Inbox),
            WellKnownFolder::Drafts => Some(Self::Drafts),
            WellKnownFolder::SentItems => Some(Self::SentItems),
            WellKnownFolder::DeletedItems => Some(Self::DeletedItems),
            WellKnownFolder::JunkEmail => Some(Self::JunkEmail),
            WellKnownFolder::Outbox => Some(Self::Outbox),
            WellKnownFolder::Archive => None,
        }
    }
}

/// A folder a request names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FolderSpec {
    Distinguished(DistinguishedFolder),
    Id(String),
}

impl FolderSpec {
    /// The EWS folder for a neutral one; `None` for the Archive folder (see
    /// [`DistinguishedFolder::from_well_known`]).
    pub fn from_ref(f: &FolderRef) -> Option<Self> {
        match f {
            FolderRef::WellKnown(w) => {
                DistinguishedFolder::from_well_known(*w).map(Self::Distinguished)
            }
            FolderRef::Id(id) => Some(Self::Id(id.clone())),
        }
    }

    /// Writes `t:DistinguishedFolderId` (with the delegate's mailbox) or `t:FolderId`.
    pub(super) fn write(&self, w: &mut Writer, ctx: &RequestContext) {
        match self {
            Self::Distinguished(d) => match &ctx.access {
                MailboxAccess::Delegate(address) => {
                    w.open("t:DistinguishedFolderId", &[("Id", d.as_str())]);
                    w.open("t:Mailbox", &[]);
                    w.leaf("t:EmailAddress", address);
                    w.close("t:Mailbox");
                    w.close("t:DistinguishedFolderId");
                }
                _ => w.empty("t:DistinguishedFolderId", &[("Id", d.as_str())]),
            },
            Self::Id(id) => w.empty("t:FolderId", &[("Id", id)]),
        }
    }
}

impl From<DistinguishedFolder> for FolderSpec {
    fn from(d: DistinguishedFolder) -> Self {
        Self::Distinguished(d)
    }
}

/// An item's ID and, when known, its change key (which makes a write fail if the item changed).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ItemId {
    pub id: String,
    pub change_key: Option<String>,
}

impl ItemId {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            change_key: None,
        }
    }

    /// Writes `<t:ItemId Id=".." ChangeKey=".."/>` under the element name given.
    pub(super) fn write_as(&self, w: &mut Writer, name: &'static str) {
        match &self.change_key {
            Some(ck) => w.empty(name, &[("Id", &self.id), ("ChangeKey", ck)]),
            None => w.empty(name, &[("Id", &self.id)]),
        }
    }

    pub(super) fn write(&self, w: &mut Writer) {
        self.write_as(w, "t:ItemId");
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`: an instant as EWS takes it.
pub(super) fn utc(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `YYYY-MM-DD`.
pub(super) fn date(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}
