//! The first-party resource service principals every tenant has — Microsoft Graph and Office
//! 365 Exchange Online — with the permissions exgate uses: app roles (application permissions)
//! and OAuth2 permission scopes (delegated), under Microsoft's real IDs where known, so a
//! client that resolves permissions by name from the resource's service principal gets the
//! IDs it would get from Entra.

use super::seed::{GRAPH, OUTLOOK};

/// Microsoft's own tenant: `appOwnerOrganizationId` of first-party apps.
pub(crate) const MICROSOFT_TENANT: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";

/// One permission of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Permission {
    pub id: &'static str,
    pub value: &'static str,
    pub display: &'static str,
}

/// A delegated permission and whether only an admin may consent to it (`type` `Admin`/`User`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scope {
    pub permission: Permission,
    pub admin: bool,
}

/// A first-party resource (API) with its service principal's permissions.
#[derive(Debug)]
pub(crate) struct Resource {
    pub app_id: &'static str,
    pub display_name: &'static str,
    /// The resource URI scopes name it by (`https://graph.microsoft.com`).
    pub uri: &'static str,
    pub app_roles: &'static [Permission],
    pub scopes: &'static [Scope],
}

const fn p(id: &'static str, value: &'static str, display: &'static str) -> Permission {
    Permission { id, value, display }
}

const fn admin(id: &'static str, value: &'static str, display: &'static str) -> Scope {
    Scope {
        permission: p(id, value, display),
        admin: true,
    }
}

const fn user(id: &'static str, value: &'static str, display: &'static str) -> Scope {
    Scope {
        permission: p(id, value, display),
        admin: false,
    }
}

/// Microsoft Graph (`00000003-0000-0000-c000-000000000000`).
pub(crate) static MICROSOFT_GRAPH: Resource = Resource {
    app_id: "00000003-0000-0000-c000-000000000000",
    display_name: "Microsoft Graph",
    uri: GRAPH,
    app_roles: &[
        p(
            "810c84a8-4a9e-49e6-bf7d-12d183f40d01",
            "Mail.Read",
            "Read mail in all mailboxes",
        ),
        p(
            "693c5e45-0940-467d-9b8a-1022fb9d42ef",
            "Mail.ReadBasic.All",
            "Read basic mail in all mailboxes",
        ),
        p(
            "6be147d2-ea4f-4b5a-a3fa-3eab6f3c140a",
            "Mail.ReadBasic",
            "Read basic mail in all mailboxes",
        ),
        p(
            "e2a3a72e-5f79-4c64-b1b1-878b674786c9",
            "Mail.ReadWrite",
            "Read and write mail in all mailboxes",
        ),
        p(
            "b633e1c5-b582-4048-a93e-9f11b44c7e96",
            "Mail.Send",
            "Send mail as any user",
        ),
        p(
            "798ee544-9d2d-430c-a058-570e29e34338",
            "Calendars.Read",
            "Read calendars in all mailboxes",
        ),
        p(
            "ef54d2bf-783f-4e0f-bca1-3210c0444d99",
            "Calendars.ReadWrite",
            "Read and write calendars in all mailboxes",
        ),
        p(
            "089fe4d0-434a-44c5-8827-41ba8a0b17f5",
            "Contacts.Read",
            "Read contacts in all mailboxes",
        ),
        p(
            "6918b873-d17a-4dc1-b314-35f528134491",
            "Contacts.ReadWrite",
            "Read and write contacts in all mailboxes",
        ),
        p(
            "97235f07-e226-4f63-ace3-39588e11d3a1",
            "User.ReadBasic.All",
            "Read all users' basic profiles",
        ),
        p(
            "df021288-bdef-4463-88db-98f22de89214",
            "User.Read.All",
            "Read all users' full profiles",
        ),
        p(
            "7ab1d382-f21e-4acd-a863-ba3e13f7da61",
            "Directory.Read.All",
            "Read directory data",
        ),
        p(
            "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30",
            "Application.Read.All",
            "Read all applications",
        ),
        p(
            "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9",
            "Application.ReadWrite.All",
            "Read and write all applications",
        ),
        p(
            "06b708a9-e830-4db3-a914-8e69da51d44f",
            "AppRoleAssignment.ReadWrite.All",
            "Manage app permission grants and app role assignments",
        ),
        p(
            "8e8e4742-1d95-4f68-9d56-6ee75648c72a",
            "DelegatedPermissionGrant.ReadWrite.All",
            "Manage all delegated permission grants",
        ),
    ],
    scopes: &[
        user(
            "37f7f235-527c-4136-accd-4a02d197296e",
            "openid",
            "Sign users in",
        ),
        user(
            "14dad69e-099b-42c9-810b-d002981feec1",
            "profile",
            "View users' basic profile",
        ),
        user(
            "64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0",
            "email",
            "View users' email address",
        ),
        user(
            "7427e0e9-2fba-42fe-b0c0-848c9e6a8182",
            "offline_access",
            "Maintain access to data you have given it access to",
        ),
        user(
            "e1fe6dd8-ba31-4d61-89e7-88639da4683d",
            "User.Read",
            "Sign in and read user profile",
        ),
        user(
            "b340eb25-3456-403f-be2f-af7a0d370277",
            "User.ReadBasic.All",
            "Read all users' basic profiles",
        ),
        admin(
            "a154be20-db9c-4678-8ab7-66f6cc099a59",
            "User.Read.All",
            "Read all users' full profiles",
        ),
        user(
            "a4b8392a-d8d1-4954-a029-8e668a39a170",
            "Mail.ReadBasic",
            "Read user basic mail",
        ),
        user(
            "570282fd-fa5c-430d-a7fd-fc8dc98a9dca",
            "Mail.Read",
            "Read user mail",
        ),
        user(
            "024d486e-b451-40bb-833d-3e66d98c5c73",
            "Mail.ReadWrite",
            "Read and write access to user mail",
        ),
        user(
            "e383f46e-2787-4529-855e-0e479a3ffac0",
            "Mail.Send",
            "Send mail as a user",
        ),
        user(
            "7b9103a5-4610-446b-9670-80643382c1fa",
            "Mail.Read.Shared",
            "Read user and shared mail",
        ),
        user(
            "5df07973-7d5d-46ed-9847-1271055cbd51",
            "Mail.ReadWrite.Shared",
            "Read and write user and shared mail",
        ),
        user(
            "a367ab51-6b49-43bf-a716-a1fb06d2a174",
            "Mail.Send.Shared",
            "Send mail on behalf of others",
        ),
        user(
            "465a38f9-76ea-45b9-9f34-9e8b0d4b0b42",
            "Calendars.Read",
            "Read user calendars",
        ),
        user(
            "1ec239c2-d7c9-4623-a91a-a9775856bb36",
            "Calendars.ReadWrite",
            "Have full access to user calendars",
        ),
        user(
            "2b9c4092-424d-4249-948d-b43879977640",
            "Calendars.Read.Shared",
            "Read user and shared calendars",
        ),
        user(
            "12466101-c9b8-439a-8589-dd09ee67e8e9",
            "Calendars.ReadWrite.Shared",
            "Read and write user and shared calendars",
        ),
        user(
            "ff74d97f-43af-4b68-9f2a-b77ee6968c5d",
            "Contacts.Read",
            "Read user contacts",
        ),
        user(
            "d56682ec-c09e-4743-aaf4-1a3aac4caa21",
            "Contacts.ReadWrite",
            "Have full access to user contacts",
        ),
        user(
            "242b9d9e-ed24-4d09-9a52-f43769beb9d4",
            "Contacts.Read.Shared",
            "Read user and shared contacts",
        ),
        user(
            "afb6c84b-06be-49af-80bb-8f3f77004eab",
            "Contacts.ReadWrite.Shared",
            "Read and write user and shared contacts",
        ),
        admin(
            "06da0dbc-49e2-44d2-8312-53f166ab848a",
            "Directory.Read.All",
            "Read directory data",
        ),
        admin(
            "c79f8feb-a9db-4090-85f9-90d820caa0eb",
            "Application.Read.All",
            "Read applications",
        ),
        admin(
            "bdfbf15f-ee85-4955-8675-146e8e5296b5",
            "Application.ReadWrite.All",
            "Read and write all applications",
        ),
        admin(
            "84bccea3-f856-4a8a-967b-dbe0a3d53a64",
            "AppRoleAssignment.ReadWrite.All",
            "Manage app permission grants and app role assignments",
        ),
        admin(
            "41ce6ca6-6826-4807-84f1-1c82854f7ee5",
            "DelegatedPermissionGrant.ReadWrite.All",
            "Manage all delegated permission grants",
        ),
    ],
};

/// Office 365 Exchange Online (`00000002-0000-0ff1-ce00-000000000000`): EWS, IMAP, POP, SMTP
/// and Exchange's admin API. The IDs of `Exchange.Manage`, `Exchange.ManageV2` and the
/// `Mail.*` app roles are the mock's own (stable, derived); the others are Microsoft's.
pub(crate) static EXCHANGE_ONLINE: Resource = Resource {
    app_id: "00000002-0000-0ff1-ce00-000000000000",
    display_name: "Office 365 Exchange Online",
    uri: OUTLOOK,
    app_roles: &[
        p(
            "dc890d15-9560-4a4c-9b7f-a736ec74ec40",
            "full_access_as_app",
            "Use Exchange Web Services with full access to all mailboxes",
        ),
        p(
            "5e5addcd-3e8d-4e90-baf5-964efab2b20a",
            "IMAP.AccessAsApp",
            "IMAP.AccessAsApp",
        ),
        p(
            "cb842b43-da6e-4506-86fe-bb12199c656d",
            "POP.AccessAsApp",
            "POP.AccessAsApp",
        ),
        p(
            "7146a1f0-8703-45b3-9eae-527a64c00995",
            "SMTP.SendAsApp",
            "SMTP.SendAsApp",
        ),
        p(
            "dc50a0fb-09a3-484d-be87-e023b12c6440",
            "Exchange.ManageAsApp",
            "Manage Exchange As Application",
        ),
        p(
            "6c7e2f51-0a3c-8d1e-9b4f-5a2d7c8e1f01",
            "Mail.Read",
            "Read mail in all mailboxes",
        ),
        p(
            "6c7e2f51-0a3c-8d1e-9b4f-5a2d7c8e1f02",
            "Mail.ReadWrite",
            "Read and write mail in all mailboxes",
        ),
        p(
            "6c7e2f51-0a3c-8d1e-9b4f-5a2d7c8e1f03",
            "Mail.Send",
            "Send mail as any user",
        ),
    ],
    scopes: &[
        user(
            "3b5f3d61-589b-4a3c-a359-5dd4b5ee5bd5",
            "EWS.AccessAsUser.All",
            "Access mailboxes as the signed-in user via Exchange Web Services",
        ),
        user(
            "652390e4-393a-48de-9484-05f9b1212954",
            "IMAP.AccessAsUser.All",
            "Read and write access to mailboxes via IMAP.",
        ),
        user(
            "d7b7f2d9-0f45-4ea1-9d42-e50810c06991",
            "POP.AccessAsUser.All",
            "Read and write access to mailboxes via POP.",
        ),
        user(
            "258f6531-6087-4cc4-bb90-092c5fb3ed3f",
            "SMTP.Send",
            "Send emails from mailboxes using SMTP AUTH.",
        ),
        admin(
            "6c7e2f51-0a3c-8d1e-9b4f-5a2d7c8e1f11",
            "Exchange.Manage",
            "Manage Exchange As Signed-In User",
        ),
        admin(
            "6c7e2f51-0a3c-8d1e-9b4f-5a2d7c8e1f12",
            "Exchange.ManageV2",
            "Manage Exchange As Signed-In User V2",
        ),
    ],
};

/// Every first-party resource.
pub(crate) static RESOURCES: [&Resource; 2] = [&MICROSOFT_GRAPH, &EXCHANGE_ONLINE];

/// The resource with this application ID or URI.
pub(crate) fn resource(key: &str) -> Option<&'static Resource> {
    let key = key.trim().trim_end_matches('/');
    RESOURCES
        .iter()
        .copied()
        .find(|r| r.app_id.eq_ignore_ascii_case(key) || r.uri.eq_ignore_ascii_case(key))
}

impl Resource {
    pub(crate) fn role_by_value(&self, value: &str) -> Option<&'static Permission> {
        self.app_roles
            .iter()
            .find(|r| r.value.eq_ignore_ascii_case(value))
    }

    pub(crate) fn role_by_id(&self, id: &str) -> Option<&'static Permission> {
        self.app_roles
            .iter()
            .find(|r| r.id.eq_ignore_ascii_case(id))
    }

    pub(crate) fn scope_by_value(&self, value: &str) -> Option<&'static Scope> {
        self.scopes
            .iter()
            .find(|s| s.permission.value.eq_ignore_ascii_case(value))
    }
}

/// A stable GUID derived from `key` (object IDs of seeded directory objects).
pub(crate) fn derived_id(key: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Uuid::new_v8(bytes).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_ids_are_guids_and_unique_per_resource() {
        for r in RESOURCES {
            let ids: Vec<&str> = r
                .app_roles
                .iter()
                .map(|p| p.id)
                .chain(r.scopes.iter().map(|s| s.permission.id))
                .collect();
            for id in &ids {
                assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
            }
            let mut sorted = ids.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), ids.len(), "{}", r.display_name);
        }
        assert_eq!(
            resource("https://graph.microsoft.com/")
                .and_then(|r| r.scope_by_value("application.readwrite.all"))
                .map(|s| s.permission.id),
            Some("bdfbf15f-ee85-4955-8675-146e8e5296b5")
        );
    }
}
