//! The mock EWS over the wire, as a SOAP client sees it: raw SOAP 1.1 over reqwest on
//! 127.0.0.1, every answer validated against Microsoft's EWS schema.

mod ews_support;

use ews_support::*;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::Seed;
use exgate_testkit::entra::seed::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn adele(m: &MockMicrosoft) -> Ews {
    Ews::basic(m, ADELE, ADELE_PASSWORD)
}

#[tokio::test]
async fn folders_are_found_by_distinguished_name_and_id() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let ews = adele(&m).await;
    let deep = ews
        .call(&format!(
            r#"<m:FindFolder Traversal="Deep"><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:ParentFolderIds>{}</m:ParentFolderIds></m:FindFolder>"#,
            dfid("msgfolderroot")
        ))
        .await;
    deep.ok();
    let names = deep.texts("DisplayName");
    for wanted in [
        "Inbox",
        "Drafts",
        "Sent Items",
        "Deleted Items",
        "Projects",
        "Calendar",
        "Contacts",
    ] {
        assert!(names.iter().any(|n| n == wanted), "{wanted} in {names:?}");
    }
    assert!(deep.text.contains("<t:CalendarFolder>") && deep.text.contains("<t:ContactsFolder>"));
    let inbox = ews
        .call(&format!(
            r#"<m:GetFolder><m:FolderShape><t:BaseShape>AllProperties</t:BaseShape></m:FolderShape><m:FolderIds>{}</m:FolderIds></m:GetFolder>"#,
            dfid("inbox")
        ))
        .await;
    inbox.ok();
    assert_eq!(inbox.texts("TotalCount"), ["12"]);
    assert_eq!(inbox.texts("UnreadCount"), ["6"]);
    let id = inbox.attrs("FolderId", "Id")[0].clone();
    let again = ews
        .call(&format!(
            r#"<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds><t:FolderId Id="{id}"/><t:FolderId Id="bm9wZQ=="/><t:DistinguishedFolderId Id="tasks"/></m:FolderIds></m:GetFolder>"#
        ))
        .await;
    assert_eq!(
        again.codes(),
        ["NoError", "ErrorInvalidIdMalformed", "ErrorFolderNotFound"]
    );
    let sync = ews
        .call(r#"<m:SyncFolderHierarchy><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape></m:SyncFolderHierarchy>"#)
        .await;
    sync.ok();
    let state = sync.texts("SyncState")[0].clone();
    assert!(sync.count("<t:Create>") >= 9);
    let again = ews
        .call(&format!(
            r#"<m:SyncFolderHierarchy><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:SyncState>{state}</m:SyncState></m:SyncFolderHierarchy>"#
        ))
        .await;
    again.ok();
    assert_eq!(again.count("<t:Create>"), 0);
    validate_all(&[&ews]);
}

#[tokio::test]
async fn find_item_pages_filters_and_sorts_the_inbox() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let ews = adele(&m).await;
    let page = |offset: usize| {
        find_items(
            &dfid("inbox"),
            "Default",
            &format!(
                r#"<m:IndexedPageItemView MaxEntriesReturned="5" Offset="{offset}" BasePoint="Beginning"/>"#
            ),
            "",
        )
    };
    let first = ews.call(&page(0)).await;
    first.ok();
    assert_eq!(first.count("<t:Message>"), 5);
    assert!(
        first.text.contains(
            r#"IndexedPagingOffset="5" TotalItemsInView="12" IncludesLastItemInRange="false""#
        ),
        "{}",
        first.text
    );
    let last = ews.call(&page(10)).await;
    assert_eq!(last.count("<t:Message>"), 2);
    assert!(last.text.contains(r#"IncludesLastItemInRange="true""#));
    let mut seen: Vec<String> = Vec::new();
    for offset in [0, 5, 10] {
        seen.extend(ews.call(&page(offset)).await.attrs("ItemId", "Id"));
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 12, "pages overlap or miss items");

    let restricted = |r: &str| {
        find_items(
            &dfid("inbox"),
            "Default",
            "",
            &format!("<m:Restriction>{r}</m:Restriction>"),
        )
    };
    let unread = ews
        .call(&restricted(r#"<t:IsEqualTo><t:FieldURI FieldURI="message:IsRead"/><t:FieldURIOrConstant><t:Constant Value="false"/></t:FieldURIOrConstant></t:IsEqualTo>"#))
        .await;
    unread.ok();
    assert_eq!(unread.count("<t:Message>"), 6);
    assert!(unread.texts("IsRead").iter().all(|r| r == "false"));
    let subject = ews
        .call(&restricted(r#"<t:Contains ContainmentMode="Substring" ContainmentComparison="IgnoreCase"><t:FieldURI FieldURI="item:Subject"/><t:Constant Value="BUDGET"/></t:Contains>"#))
        .await;
    subject.ok();
    let subjects = subject.texts("Subject");
    assert!(
        !subjects.is_empty() && subjects.iter().all(|s| s.to_lowercase().contains("budget")),
        "{subjects:?}"
    );
    let all = ews
        .call(&find_items(&dfid("inbox"), "Default", "", ""))
        .await;
    let received = all.texts("DateTimeReceived");
    let mut sorted = received.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(received, sorted, "newest first by default");
    let (lo, hi) = (sorted[8].clone(), sorted[3].clone());
    let range = ews
        .call(&restricted(&format!(r#"<t:And><t:IsGreaterThanOrEqualTo><t:FieldURI FieldURI="item:DateTimeReceived"/><t:FieldURIOrConstant><t:Constant Value="{lo}"/></t:FieldURIOrConstant></t:IsGreaterThanOrEqualTo><t:IsLessThan><t:FieldURI FieldURI="item:DateTimeReceived"/><t:FieldURIOrConstant><t:Constant Value="{hi}"/></t:FieldURIOrConstant></t:IsLessThan></t:And>"#)))
        .await;
    range.ok();
    assert_eq!(range.count("<t:Message>"), 5);
    let from = ews
        .call(&restricted(r#"<t:Contains ContainmentMode="Substring" ContainmentComparison="IgnoreCase"><t:FieldURI FieldURI="message:From"/><t:Constant Value="megan@"/></t:Contains>"#))
        .await;
    from.ok();
    let senders = all_between(&from.text, "<t:From><t:Mailbox><t:Name>", "</t:Name>");
    assert!(
        !senders.is_empty() && senders.iter().all(|s| s == MEGAN_NAME),
        "{senders:?}"
    );
    // The sender's SMTP address as a MAPI property (PR_SENDER_SMTP_ADDRESS), as clients
    // search it: the same messages.
    let by_tag = ews
        .call(&restricted(r#"<t:Contains ContainmentMode="Substring" ContainmentComparison="IgnoreCase"><t:ExtendedFieldURI PropertyTag="0x5D01" PropertyType="String"/><t:Constant Value="MEGAN@contoso.onmicrosoft.com"/></t:Contains>"#))
        .await;
    by_tag.ok();
    assert_eq!(by_tag.attrs("ItemId", "Id"), from.attrs("ItemId", "Id"));
    let unknown_tag = ews
        .call(&restricted(r#"<t:Exists><t:ExtendedFieldURI PropertyTag="0x1234" PropertyType="String"/></t:Exists>"#))
        .await;
    assert_eq!(unknown_tag.codes(), ["ErrorUnsupportedPathForQuery"]);
    let ascending = ews
        .call(&find_items(&dfid("inbox"), "IdOnly", "", r#"<m:SortOrder><t:FieldOrder Order="Ascending"><t:FieldURI FieldURI="item:Subject"/></t:FieldOrder></m:SortOrder>"#).replace("<t:BaseShape>IdOnly</t:BaseShape>", r#"<t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="item:Subject"/></t:AdditionalProperties>"#))
        .await;
    ascending.ok();
    let subjects = ascending.texts("Subject");
    let mut sorted = subjects.clone();
    sorted.sort_by_key(|s| s.to_lowercase());
    assert_eq!(subjects, sorted);
    assert_eq!(
        ascending.count("<t:DateTimeReceived>"),
        0,
        "IdOnly plus Subject only"
    );
    let bad = ews
        .call(&restricted(r#"<t:IsEqualTo><t:FieldURI FieldURI="item:WebClientReadFormQueryString"/><t:FieldURIOrConstant><t:Constant Value="x"/></t:FieldURIOrConstant></t:IsEqualTo>"#))
        .await;
    assert_eq!(bad.codes(), ["ErrorUnsupportedPathForQuery"]);
    validate_all(&[&ews]);
}

#[tokio::test]
async fn get_item_answers_each_shape_body_type_mime_and_attachment() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let ews = adele(&m).await;
    let all = ews
        .call(&find_items(&dfid("inbox"), "Default", "", ""))
        .await;
    let ids = all.attrs("ItemId", "Id");
    let with_attachments: Vec<String> = all_between(&all.text, "<t:Message>", "</t:Message>")
        .into_iter()
        .filter(|m| m.contains("<t:HasAttachments>true"))
        .map(|m| attrs(&m, "ItemId", "Id")[0].clone())
        .collect();
    assert!(!with_attachments.is_empty());
    let id = &with_attachments[0];
    let id_only = ews
        .call(&get_item(id, "<t:BaseShape>IdOnly</t:BaseShape>"))
        .await;
    id_only.ok();
    assert!(!id_only.text.contains("<t:Subject>"));
    let html = ews
        .call(&get_item(
            id,
            "<t:BaseShape>Default</t:BaseShape><t:BodyType>HTML</t:BodyType>",
        ))
        .await;
    html.ok();
    assert_eq!(html.attrs("Body", "BodyType"), ["HTML"]);
    let text = ews
        .call(&get_item(
            id,
            "<t:BaseShape>Default</t:BaseShape><t:BodyType>Text</t:BodyType>",
        ))
        .await;
    assert_eq!(text.attrs("Body", "BodyType"), ["Text"]);
    assert!(
        !all_between(
            &text.text,
            r#"<t:Body BodyType="Text" IsTruncated="false">"#,
            "</t:Body>"
        )[0]
        .contains("<p>")
    );
    let full = ews
        .call(&get_item(id, r#"<t:BaseShape>AllProperties</t:BaseShape><t:IncludeMimeContent>true</t:IncludeMimeContent><t:AdditionalProperties><t:FieldURI FieldURI="item:InternetMessageHeaders"/></t:AdditionalProperties>"#))
        .await;
    full.ok();
    let mime = all_between(
        &full.text,
        r#"<t:MimeContent CharacterSet="UTF-8">"#,
        "</t:MimeContent>",
    );
    let mime =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &mime[0]).unwrap();
    let parsed = mail_parser::MessageParser::default().parse(&mime).unwrap();
    assert_eq!(parsed.subject().unwrap(), full.texts("Subject")[0]);
    assert!(full.text.contains("<t:InternetMessageHeader HeaderName="));
    let attachment = full.attrs("AttachmentId", "Id")[0].clone();
    let got = ews
        .call(&format!(r#"<m:GetAttachment><m:AttachmentIds><t:AttachmentId Id="{attachment}"/></m:AttachmentIds></m:GetAttachment>"#))
        .await;
    got.ok();
    assert!(!got.texts("Content")[0].is_empty());
    // Malformed and unknown IDs, and a folder ID where an item ID belongs.
    let unknown = {
        let mut raw =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &ids[0]).unwrap();
        // The sequence number sits after the magic and the kind byte.
        raw[10] ^= 0x7f;
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, raw)
    };
    let bad = ews
        .call(&format!(
            r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:ItemIds><t:ItemId Id="not an id"/><t:ItemId Id="{unknown}"/><t:ItemId Id="{}"/></m:ItemIds></m:GetItem>"#,
            ids[1]
        ))
        .await;
    assert_eq!(
        bad.codes(),
        ["ErrorInvalidIdMalformed", "ErrorItemNotFound", "NoError"]
    );
    validate_all(&[&ews]);
}

#[tokio::test]
async fn mail_sent_over_ews_is_seen_over_graph_and_mail_sent_over_graph_over_ews() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let ews = adele(&m).await;
    ews.call(&create_message(
        "SendAndSaveCopy",
        "From EWS to Megan",
        &[MEGAN],
        "hello over SOAP",
    ))
    .await
    .ok();
    assert_eq!(m.delivered(MEGAN).len(), 1);
    let sent = ews
        .call(&find_items(&dfid("sentitems"), "Default", "", ""))
        .await;
    assert!(
        sent.texts("Subject")
            .contains(&"From EWS to Megan".to_string())
    );

    let token = {
        let body: Value = http()
            .post(m.token_endpoint(TENANT_ID))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", DAEMON_APP),
                ("client_secret", DAEMON_APP_SECRET),
                ("scope", "https://graph.microsoft.com/.default"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["access_token"].as_str().unwrap().to_string()
    };
    let graph: Value = http()
        .get(format!(
            "{}/users/{MEGAN}/mailFolders/inbox/messages?$top=50",
            m.graph_url()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let subjects: Vec<&str> = graph["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["subject"].as_str())
        .collect();
    assert!(subjects.contains(&"From EWS to Megan"), "{subjects:?}");

    let status = http()
        .post(format!("{}/users/{MEGAN}/sendMail", m.graph_url()))
        .bearer_auth(&token)
        .json(&json!({"message": {"subject": "From Graph to Adele", "body": {"contentType": "Text", "content": "hi"}, "toRecipients": [{"emailAddress": {"address": ADELE}}]}}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::ACCEPTED);
    let found = ews
        .call(&find_items(
            &dfid("inbox"),
            "Default",
            "",
            r#"<m:Restriction><t:IsEqualTo><t:FieldURI FieldURI="item:Subject"/><t:FieldURIOrConstant><t:Constant Value="From Graph to Adele"/></t:FieldURIOrConstant></t:IsEqualTo></m:Restriction>"#,
        ))
        .await;
    found.ok();
    assert_eq!(found.count("<t:Message>"), 1);
    assert_eq!(found.texts("IsRead"), ["false"]);
    validate_all(&[&ews]);
}

#[tokio::test]
async fn drafts_are_updated_sent_replied_forwarded_moved_deleted_and_synced() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let ews = adele(&m).await;
    let sync = |state: Option<&str>| {
        let state = state
            .map(|s| format!("<m:SyncState>{s}</m:SyncState>"))
            .unwrap_or_default();
        format!(
            r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:SyncFolderId>{}</m:SyncFolderId>{state}<m:MaxChangesReturned>5</m:MaxChangesReturned></m:SyncFolderItems>"#,
            dfid("inbox")
        )
    };
    // The inbox synced from scratch in pages of 5.
    let mut state = None;
    let mut created = 0;
    loop {
        let r = ews.call(&sync(state.as_deref())).await;
        r.ok();
        created += r.count("<t:Create>");
        state = Some(r.texts("SyncState")[0].clone());
        if r.texts("IncludesLastItemInRange") == ["true"] {
            break;
        }
        assert_eq!(r.count("<t:Create>"), 5);
    }
    assert_eq!(created, 12);

    let draft = ews
        .call(&create_message("SaveOnly", "Draft one", &[MEGAN], "first"))
        .await;
    draft.ok();
    let id = draft.attrs("ItemId", "Id")[0].clone();
    let key = draft.attrs("ItemId", "ChangeKey")[0].clone();
    let drafts = ews
        .call(&find_items(&dfid("drafts"), "Default", "", ""))
        .await;
    assert!(drafts.texts("Subject").contains(&"Draft one".to_string()));
    let update = |key: &str, resolution: &str| {
        format!(
            r#"<m:UpdateItem MessageDisposition="SaveOnly" ConflictResolution="{resolution}"><m:ItemChanges><t:ItemChange><t:ItemId Id="{id}" ChangeKey="{key}"/><t:Updates><t:SetItemField><t:FieldURI FieldURI="item:Subject"/><t:Message><t:Subject>Draft two</t:Subject></t:Message></t:SetItemField><t:SetItemField><t:FieldURI FieldURI="item:Body"/><t:Message><t:Body BodyType="HTML">&lt;b&gt;second&lt;/b&gt;</t:Body></t:Message></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#
        )
    };
    let updated = ews.call(&update(&key, "NeverOverwrite")).await;
    updated.ok();
    let new_key = updated.attrs("ItemId", "ChangeKey")[0].clone();
    assert_ne!(new_key, key);
    let stale = ews.call(&update(&key, "NeverOverwrite")).await;
    assert_eq!(stale.codes(), ["ErrorIrresolvableConflict"]);
    ews.call(&update(&key, "AutoResolve")).await.ok();
    ews.call(&update(&key, "AlwaysOverwrite")).await.ok();
    let attached = ews
        .call(&format!(
            r#"<m:CreateAttachment><m:ParentItemId Id="{id}"/><m:Attachments><t:FileAttachment><t:Name>notes.txt</t:Name><t:ContentType>text/plain</t:ContentType><t:Content>aGVsbG8=</t:Content></t:FileAttachment></m:Attachments></m:CreateAttachment>"#
        ))
        .await;
    attached.ok();
    let got = ews
        .call(&get_item(&id, "<t:BaseShape>Default</t:BaseShape>"))
        .await;
    assert_eq!(got.texts("Subject"), ["Draft two"]);
    assert_eq!(got.attrs("Body", "BodyType"), ["HTML"]);
    assert_eq!(got.texts("HasAttachments"), ["true"]);
    ews.call(&format!(
        r#"<m:SendItem SaveItemToFolder="true"><m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds><m:SavedItemFolderId>{}</m:SavedItemFolderId></m:SendItem>"#,
        dfid("sentitems")
    ))
    .await
    .ok();
    assert_eq!(
        m.delivered(MEGAN).last().map(|(_, s)| s.as_str()),
        Some("Draft two")
    );
    let gone = ews
        .call(&get_item(&id, "<t:BaseShape>IdOnly</t:BaseShape>"))
        .await;
    assert_eq!(gone.codes(), ["ErrorItemNotFound"]);

    // Reply, reply all and forward a message of the inbox.
    let inbox = ews
        .call(&find_items(&dfid("inbox"), "Default", "", ""))
        .await;
    let original = inbox.attrs("ItemId", "Id")[0].clone();
    let original_subject = inbox.texts("Subject")[0].clone();
    for (tag, extra) in [
        ("ReplyToItem", String::new()),
        ("ReplyAllToItem", String::new()),
        (
            "ForwardItem",
            format!(
                "<t:ToRecipients><t:Mailbox><t:EmailAddress>{MEGAN}</t:EmailAddress></t:Mailbox></t:ToRecipients>"
            ),
        ),
    ] {
        ews.call(&format!(
            r#"<m:CreateItem MessageDisposition="SendAndSaveCopy"><m:Items><t:{tag}>{extra}<t:ReferenceItemId Id="{original}"/><t:NewBodyContent BodyType="Text">my answer</t:NewBodyContent></t:{tag}></m:Items></m:CreateItem>"#
        ))
        .await
        .ok();
    }
    let subjects: Vec<String> = m.submitted(ADELE).into_iter().map(|(_, s)| s).collect();
    assert!(
        subjects.contains(&format!("RE: {original_subject}")),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&format!("FW: {original_subject}")),
        "{subjects:?}"
    );
    let missing_disposition = ews
        .call(r#"<m:CreateItem><m:Items><t:Message><t:Subject>x</t:Subject></t:Message></m:Items></m:CreateItem>"#)
        .await;
    assert_eq!(
        missing_disposition.codes(),
        ["ErrorMessageDispositionRequired"]
    );
    let no_recipients = ews
        .call(&create_message("SendOnly", "nobody", &[], "x"))
        .await;
    assert_eq!(no_recipients.codes(), ["ErrorInvalidRecipients"]);

    // Mark read, move to Deleted Items, delete for good; the sync sees each change.
    let mark = ews
        .call(&format!(
            r#"<m:UpdateItem MessageDisposition="SaveOnly" ConflictResolution="AutoResolve"><m:ItemChanges><t:ItemChange><t:ItemId Id="{original}"/><t:Updates><t:SetItemField><t:FieldURI FieldURI="message:IsRead"/><t:Message><t:IsRead>true</t:IsRead></t:Message></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#
        ))
        .await;
    mark.ok();
    let after_mark = ews.call(&sync(state.as_deref())).await;
    after_mark.ok();
    assert_eq!(after_mark.count("<t:Update>"), 1, "{}", after_mark.text);
    let state = after_mark.texts("SyncState")[0].clone();
    let moved = ews
        .call(&format!(
            r#"<m:MoveItem><m:ToFolderId>{}</m:ToFolderId><m:ItemIds><t:ItemId Id="{original}"/></m:ItemIds></m:MoveItem>"#,
            dfid("deleteditems")
        ))
        .await;
    moved.ok();
    let moved_id = moved.attrs("ItemId", "Id")[0].clone();
    assert_ne!(moved_id, original);
    let after_move = ews.call(&sync(Some(&state))).await;
    assert_eq!(after_move.count("<t:Delete>"), 1);
    ews.call(&format!(
        r#"<m:DeleteItem DeleteType="HardDelete"><m:ItemIds><t:ItemId Id="{moved_id}"/></m:ItemIds></m:DeleteItem>"#
    ))
    .await
    .ok();
    let deleted = ews
        .call(&find_items(&dfid("deleteditems"), "IdOnly", "", ""))
        .await;
    assert!(!deleted.attrs("ItemId", "Id").contains(&moved_id));
    let bad_state = ews.call(&sync(Some("Ym9ndXM="))).await;
    assert_eq!(bad_state.codes(), ["ErrorInvalidSyncStateData"]);
    validate_all(&[&ews]);
}

#[tokio::test]
async fn contacts_are_created_updated_found_and_names_resolved() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let ews = adele(&m).await;
    let sync = |state: &str| {
        format!(
            r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:SyncFolderId>{}</m:SyncFolderId><m:SyncState>{state}</m:SyncState><m:MaxChangesReturned>2</m:MaxChangesReturned></m:SyncFolderItems>"#,
            dfid("contacts")
        )
    };
    let mut state = String::new();
    let mut seeded = 0;
    let mut seeded_ids = Vec::new();
    loop {
        let r = ews.call(&sync(&state)).await;
        r.ok();
        seeded += r.count("<t:Create>");
        seeded_ids.extend(r.attrs("ItemId", "Id"));
        state = r.texts("SyncState")[0].clone();
        if r.texts("IncludesLastItemInRange") == ["true"] {
            break;
        }
    }
    assert!(seeded >= 4, "{seeded}");
    let created = ews
        .call(&format!(
            r#"<m:CreateItem><m:SavedItemFolderId>{}</m:SavedItemFolderId><m:Items><t:Contact><t:GivenName>Zoe</t:GivenName><t:CompanyName>Fabrikam</t:CompanyName><t:EmailAddresses><t:Entry Key="EmailAddress1">zoe@fabrikam.example</t:Entry></t:EmailAddresses><t:PhoneNumbers><t:Entry Key="MobilePhone">+1 555 0100</t:Entry></t:PhoneNumbers><t:Surname>Zimmer</t:Surname></t:Contact></m:Items></m:CreateItem>"#,
            dfid("contacts")
        ))
        .await;
    created.ok();
    let id = created.attrs("ItemId", "Id")[0].clone();
    ews.call(&format!(
        r#"<m:UpdateItem ConflictResolution="AutoResolve"><m:ItemChanges><t:ItemChange><t:ItemId Id="{id}"/><t:Updates><t:SetItemField><t:FieldURI FieldURI="contacts:JobTitle"/><t:Contact><t:JobTitle>Buyer</t:JobTitle></t:Contact></t:SetItemField><t:SetItemField><t:IndexedFieldURI FieldURI="contacts:PhoneNumber" FieldIndex="BusinessPhone"/><t:Contact><t:PhoneNumbers><t:Entry Key="BusinessPhone">+1 555 0199</t:Entry></t:PhoneNumbers></t:Contact></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#
    ))
    .await
    .ok();
    let all = ews
        .call(&find_items(
            &dfid("contacts"),
            "AllProperties",
            r#"<m:IndexedPageItemView MaxEntriesReturned="50" Offset="0" BasePoint="Beginning"/>"#,
            "",
        ))
        .await;
    all.ok();
    assert!(all.texts("DisplayName").contains(&"Zoe Zimmer".to_string()));
    assert!(all.texts("JobTitle").contains(&"Buyer".to_string()));
    assert!(
        all.text
            .contains(r#"<t:Entry Key="BusinessPhone">+1 555 0199</t:Entry>"#)
    );
    let fabrikam = ews
        .call(&find_items(
            &dfid("contacts"),
            "Default",
            "",
            r#"<m:Restriction><t:Contains ContainmentMode="Substring" ContainmentComparison="IgnoreCase"><t:FieldURI FieldURI="contacts:CompanyName"/><t:Constant Value="fabrikam"/></t:Contains></m:Restriction>"#,
        ))
        .await;
    fabrikam.ok();
    assert!(
        fabrikam
            .texts("DisplayName")
            .contains(&"Zoe Zimmer".to_string())
    );
    let companies = fabrikam.texts("CompanyName");
    assert!(companies.len() < all.texts("DisplayName").len());
    assert!(
        companies
            .iter()
            .all(|c| c.to_lowercase().contains("fabrikam")),
        "{companies:?}"
    );
    let by_surname = ews
        .call(&find_items(
            &dfid("contacts"),
            "Default",
            "",
            r#"<m:SortOrder><t:FieldOrder Order="Descending"><t:FieldURI FieldURI="contacts:Surname"/></t:FieldOrder></m:SortOrder>"#,
        ))
        .await;
    by_surname.ok();
    let names = by_surname.texts("Surname");
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| std::cmp::Reverse(n.to_lowercase()));
    assert_eq!(names, sorted);
    let resolve = |name: &str| {
        format!(
            r#"<m:ResolveNames ReturnFullContactData="true" SearchScope="ActiveDirectoryContacts"><m:UnresolvedEntry>{name}</m:UnresolvedEntry></m:ResolveNames>"#
        )
    };
    let megan = ews.call(&resolve("megan")).await;
    megan.ok();
    assert_eq!(megan.texts("EmailAddress"), [MEGAN]);
    let zoe = ews.call(&resolve("zoe")).await;
    zoe.ok();
    assert!(zoe.text.contains("<t:Contact>"));
    let nobody = ews.call(&resolve("xyzzy")).await;
    assert_eq!(nobody.codes(), ["ErrorNameResolutionNoResults"]);
    ews.call(
        r#"<m:CreateItem><m:Items><t:Contact><t:GivenName>Zoey</t:GivenName><t:EmailAddresses><t:Entry Key="EmailAddress1">zoey@fabrikam.example</t:Entry></t:EmailAddresses></t:Contact></m:Items></m:CreateItem>"#,
    )
    .await
    .ok();
    let many = ews.call(&resolve("zoe")).await;
    assert!(many.text.contains(r#"ResponseClass="Warning""#));
    ews.call(&format!(
        r#"<m:DeleteItem DeleteType="HardDelete"><m:ItemIds><t:ItemId Id="{id}"/></m:ItemIds></m:DeleteItem>"#
    ))
    .await
    .ok();
    // Since the first sync: Zoe came, changed and went (never seen: nothing), Zoey came (one
    // create), a seeded contact went (one delete).
    ews.call(&format!(
        r#"<m:DeleteItem DeleteType="HardDelete"><m:ItemIds><t:ItemId Id="{}"/></m:ItemIds></m:DeleteItem>"#,
        seeded_ids[0]
    ))
    .await
    .ok();
    let r = ews.call(&sync(&state)).await;
    r.ok();
    assert_eq!(r.count("<t:Delete>"), 1, "{}", r.text);
    assert_eq!(r.attrs("ItemId", "Id")[0], seeded_ids[0]);
    assert_eq!(r.count("<t:Create>"), 1, "{}", r.text);
    let state = r.texts("SyncState")[0].clone();
    let r = ews.call(&sync(&state)).await;
    r.ok();
    assert_eq!(
        r.count("<t:Delete>") + r.count("<t:Create>") + r.count("<t:Update>"),
        0
    );
    validate_all(&[&ews]);
}

#[tokio::test]
async fn a_large_generated_mailbox_syncs_and_pages_completely() {
    use exgate_testkit::graph::fixtures::{FixtureSpec, generate};
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let mut spec = FixtureSpec::new(MEGAN);
    spec.messages = 3000;
    spec.contacts = 30;
    m.load_mailbox(generate(spec)).unwrap();
    let ews = Ews::basic(&m, MEGAN, MEGAN_PASSWORD);
    let folder = ews
        .call(&format!(
            r#"<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds>{}</m:FolderIds></m:GetFolder>"#,
            dfid("inbox")
        ))
        .await;
    let total: usize = folder.texts("TotalCount")[0].parse().unwrap();
    assert!(total > 1000, "{total}");
    let mut state = String::new();
    let mut ids = std::collections::HashSet::new();
    loop {
        let r = ews
            .call(&format!(
                r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:SyncFolderId>{}</m:SyncFolderId><m:SyncState>{state}</m:SyncState><m:MaxChangesReturned>512</m:MaxChangesReturned></m:SyncFolderItems>"#,
                dfid("inbox")
            ))
            .await;
        r.ok();
        ids.extend(r.attrs("ItemId", "Id"));
        state = r.texts("SyncState")[0].clone();
        if r.texts("IncludesLastItemInRange") == ["true"] {
            break;
        }
    }
    assert_eq!(ids.len(), total);
    let mut paged = std::collections::HashSet::new();
    let mut offset = 0;
    loop {
        let r = ews
            .call(&find_items(
                &dfid("inbox"),
                "IdOnly",
                &format!(r#"<m:IndexedPageItemView MaxEntriesReturned="1000" Offset="{offset}" BasePoint="Beginning"/>"#),
                "",
            ))
            .await;
        r.ok();
        let page = r.attrs("ItemId", "Id");
        offset += page.len();
        paged.extend(page);
        if r.text.contains(r#"IncludesLastItemInRange="true""#) {
            break;
        }
    }
    assert_eq!(paged, ids);
    validate_all(&[&ews]);
}
