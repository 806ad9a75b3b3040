//! The Microsoft Graph permissions each mailbox operation needs.

use crate::mailbox::{Action, Capability, Operation};

/// How the token reaches the mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// A signed-in user on their own mailbox.
    Delegated,
    /// A signed-in user on a shared or another user's mailbox.
    Shared,
    /// The app itself (app-only), on any mailbox.
    Application,
}

/// The Graph permission `op` needs with `access`: `Mail.Read`, `Calendars.ReadWrite.Shared`, …
pub(crate) fn permission(op: Operation, access: Access) -> &'static str {
    let shared = access == Access::Shared;
    match (op.capability(), op.action(), shared) {
        (Capability::Mail, Action::Read, false) => "Mail.Read",
        (Capability::Mail, Action::Read, true) => "Mail.Read.Shared",
        (Capability::Mail, Action::Write, false) => "Mail.ReadWrite",
        (Capability::Mail, Action::Write, true) => "Mail.ReadWrite.Shared",
        (Capability::Mail, Action::Send, false) => "Mail.Send",
        (Capability::Mail, Action::Send, true) => "Mail.Send.Shared",
        (Capability::Calendar, Action::Read, false) => "Calendars.Read",
        (Capability::Calendar, Action::Read, true) => "Calendars.Read.Shared",
        // Graph sends invitations with the calendar's own permission.
        (Capability::Calendar, Action::Write | Action::Send, false) => "Calendars.ReadWrite",
        (Capability::Calendar, Action::Write | Action::Send, true) => "Calendars.ReadWrite.Shared",
        (Capability::Contacts, Action::Read, false) => "Contacts.Read",
        (Capability::Contacts, Action::Read, true) => "Contacts.Read.Shared",
        (Capability::Contacts, Action::Write | Action::Send, false) => "Contacts.ReadWrite",
        (Capability::Contacts, Action::Write | Action::Send, true) => "Contacts.ReadWrite.Shared",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_names_its_permission_for_each_access() {
        let table = [
            (
                Operation::READ_MAIL,
                ["Mail.Read", "Mail.Read.Shared", "Mail.Read"],
            ),
            (
                Operation::WRITE_MAIL,
                ["Mail.ReadWrite", "Mail.ReadWrite.Shared", "Mail.ReadWrite"],
            ),
            (
                Operation::SEND_MAIL,
                ["Mail.Send", "Mail.Send.Shared", "Mail.Send"],
            ),
            (
                Operation::READ_CALENDAR,
                ["Calendars.Read", "Calendars.Read.Shared", "Calendars.Read"],
            ),
            (
                Operation::WRITE_CALENDAR,
                [
                    "Calendars.ReadWrite",
                    "Calendars.ReadWrite.Shared",
                    "Calendars.ReadWrite",
                ],
            ),
            (
                Operation::READ_CONTACTS,
                ["Contacts.Read", "Contacts.Read.Shared", "Contacts.Read"],
            ),
            (
                Operation::WRITE_CONTACTS,
                [
                    "Contacts.ReadWrite",
                    "Contacts.ReadWrite.Shared",
                    "Contacts.ReadWrite",
                ],
            ),
        ];
        assert_eq!(table.len(), Operation::ALL.len());
        for (op, [delegated, shared, application]) in table {
            assert_eq!(permission(op, Access::Delegated), delegated, "{op}");
            assert_eq!(permission(op, Access::Shared), shared, "{op}");
            assert_eq!(permission(op, Access::Application), application, "{op}");
        }
        assert_eq!(Operation::SEND_MAIL.name(), "send mail");
    }
}
