//! The mock EWS's answers against Microsoft's schema, broadly: every seeded item of two
//! mailboxes in every shape and body type, and the error message of each operation.

mod ews_support;

use ews_support::*;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::Seed;
use exgate_testkit::entra::seed::*;
use reqwest::StatusCode;

#[tokio::test]
async fn every_seeded_item_in_every_shape_and_the_error_paths_are_schema_valid() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let mut clients = Vec::new();
    for (user, password) in [(ADELE, ADELE_PASSWORD), (MEGAN, MEGAN_PASSWORD)] {
        let ews = Ews::basic(&m, user, password);
        for folder in [
            "inbox",
            "drafts",
            "sentitems",
            "deleteditems",
            "calendar",
            "contacts",
        ] {
            for shape in ["IdOnly", "Default", "AllProperties"] {
                let r = ews.call(&find_items(&dfid(folder), shape, "", "")).await;
                r.ok();
                if shape != "AllProperties" {
                    continue;
                }
                for id in r.attrs("ItemId", "Id") {
                    for body_type in ["Best", "HTML", "Text"] {
                        ews.call(&get_item(
                            &id,
                            &format!("<t:BaseShape>AllProperties</t:BaseShape><t:BodyType>{body_type}</t:BodyType><t:IncludeMimeContent>true</t:IncludeMimeContent>"),
                        ))
                        .await
                        .ok();
                    }
                }
            }
        }
        let view = ews
            .call(&format!(
                r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape></m:ItemShape><m:CalendarView StartDate="2026-10-01T00:00:00Z" EndDate="2027-01-01T00:00:00Z" MaxEntriesReturned="3"/><m:ParentFolderIds>{}</m:ParentFolderIds></m:FindItem>"#,
                dfid("calendar")
            ))
            .await;
        view.ok();
        clients.push(ews);
    }
    let ews = &clients[0];
    let inbox = ews
        .call(&find_items(&dfid("inbox"), "IdOnly", "", ""))
        .await;
    let id = inbox.attrs("ItemId", "Id")[0].clone();
    let calendar = ews
        .call(&find_items(&dfid("calendar"), "IdOnly", "", ""))
        .await;
    let event = calendar.attrs("ItemId", "Id")[0].clone();
    // Error answers of every operation that has its own response message.
    let bad = "WEdFV1MxTQAAAAAAAAP/AAAAAAAAAAAdYWRlbGVAY29udG9zby5vbm1pY3Jvc29mdC5jb20=";
    for (body, code) in [
        (
            format!(
                r#"<m:GetAttachment><m:AttachmentIds><t:AttachmentId Id="{id}"/></m:AttachmentIds></m:GetAttachment>"#
            ),
            "ErrorInvalidIdMalformed",
        ),
        (
            format!(
                r#"<m:CreateAttachment><m:ParentItemId Id="{event}"/><m:Attachments><t:FileAttachment><t:Name>a</t:Name><t:Content>YQ==</t:Content></t:FileAttachment></m:Attachments></m:CreateAttachment>"#
            ),
            "ErrorInvalidOperation",
        ),
        (
            format!(
                r#"<m:CopyItem><m:ToFolderId>{}</m:ToFolderId><m:ItemIds><t:ItemId Id="{bad}"/></m:ItemIds></m:CopyItem>"#,
                dfid("drafts")
            ),
            "ErrorItemNotFound",
        ),
        (
            format!(
                r#"<m:MoveItem><m:ToFolderId>{}</m:ToFolderId><m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:MoveItem>"#,
                dfid("calendar")
            ),
            "ErrorFolderNotFound",
        ),
        (
            format!(
                r#"<m:DeleteItem DeleteType="HardDelete"><m:ItemIds><t:ItemId Id="{bad}"/></m:ItemIds></m:DeleteItem>"#
            ),
            "ErrorItemNotFound",
        ),
        (
            format!(
                r#"<m:SendItem SaveItemToFolder="false"><m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:SendItem>"#
            ),
            "ErrorInvalidItemForOperationSendItem",
        ),
        (
            format!(
                r#"<m:UpdateItem ConflictResolution="AutoResolve"><m:ItemChanges><t:ItemChange><t:ItemId Id="{id}"/><t:Updates><t:SetItemField><t:FieldURI FieldURI="item:DateTimeSent"/><t:Message><t:DateTimeSent>2026-01-01T00:00:00Z</t:DateTimeSent></t:Message></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#
            ),
            "ErrorInvalidPropertySet",
        ),
        (
            format!(
                r#"<m:FindFolder Traversal="Shallow"><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:ParentFolderIds>{}</m:ParentFolderIds></m:FindFolder>"#,
                dfid_of("inbox", "ghost@contoso.onmicrosoft.com")
            ),
            "ErrorNonExistentMailbox",
        ),
        (
            r#"<m:SyncFolderHierarchy><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:SyncState>bm9wZQ==</m:SyncState></m:SyncFolderHierarchy>"#.to_string(),
            "ErrorInvalidSyncStateData",
        ),
        (
            format!(
                r#"<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId>{}</m:SavedItemFolderId><m:Items><t:CalendarItem><t:Subject>x</t:Subject><t:Start>2026-11-02T08:00:00Z</t:Start><t:End>2026-11-02T09:00:00Z</t:End></t:CalendarItem></m:Items></m:CreateItem>"#,
                dfid("inbox")
            ),
            "ErrorCannotCreateCalendarItemInNonCalendarFolder",
        ),
    ] {
        let r = ews.call(&body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.codes(), [code], "{body}");
    }
    let sync = ews
        .call(r#"<m:SyncFolderHierarchy><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape></m:SyncFolderHierarchy>"#)
        .await;
    sync.ok();
    let refs: Vec<&Ews> = clients.iter().collect();
    validate_all(&refs);
}
