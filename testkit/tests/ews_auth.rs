//! The mock EWS's gates as a client meets them: Basic, bearer and NTLM (a real NTLM client,
//! sspi, over one keep-alive connection), impersonation, delegate access, EWSEnabled, the
//! Exchange Online app block, server versions, throttling, injected faults, the admin
//! endpoint and autodiscover with hostile redirects. Every SOAP answer is schema-validated.

mod ews_support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ews_support::*;
use exgate_testkit::entra::Seed;
use exgate_testkit::entra::seed::*;
use exgate_testkit::ews::{EwsSwitchChange, EwsThrottlePolicy, ServerVersion};
use exgate_testkit::{ExchangeSettings, FaultKind, FaultRule, MockMicrosoft, Service};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn inbox_of(mailbox: &str) -> String {
    find_items(&dfid_of("inbox", mailbox), "IdOnly", "", "")
}

fn inbox() -> String {
    find_items(&dfid("inbox"), "IdOnly", "", "")
}

#[tokio::test]
async fn requests_without_or_with_wrong_credentials_get_401_offering_the_enabled_schemes() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let anonymous = Ews::new(&m, Cred::None);
    let r = anonymous.call(&inbox()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let offered = r.header_all("www-authenticate");
    assert!(offered.contains(&"NTLM".to_string()), "{offered:?}");
    assert!(offered.contains(&"Negotiate".to_string()));
    assert!(offered.contains(&"Basic realm=\"127.0.0.1\"".to_string()));
    assert!(offered.iter().any(|o| o.starts_with("Bearer ")));
    let wrong = Ews::basic(&m, ADELE, "not her password");
    assert_eq!(wrong.call(&inbox()).await.status, StatusCode::UNAUTHORIZED);
    let by_name = Ews::basic(&m, "CONTOSO\\adele", ADELE_PASSWORD);
    by_name.call(&inbox()).await.ok();

    // Basic switched off from the admin endpoint: not offered, not accepted.
    let switched: Value = http()
        .post(format!("{}/_mock/ews", m.base_url()))
        .body(r#"{"basic": false}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(switched["basic"], json!(false));
    let r = by_name.call(&inbox()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        !r.header_all("www-authenticate")
            .iter()
            .any(|o| o.starts_with("Basic"))
    );
    let refused = http()
        .post(format!("{}/_mock/ews", m.base_url()))
        .body(r#"{"version": "Exchange2003"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    validate_all(&[&by_name]);
}

/// The three legs of NTLM over one connection, with sspi's NTLM client.
async fn ntlm_call(
    m: &MockMicrosoft,
    user: &str,
    password: &str,
    body: &str,
) -> (StatusCode, String, reqwest::Client) {
    ntlm_call_as(m, "NTLM", user, password, body).await
}

/// The handshake with the scheme word `scheme` (`NTLM`, or `Negotiate` carrying raw NTLM).
async fn ntlm_call_as(
    m: &MockMicrosoft,
    scheme: &str,
    user: &str,
    password: &str,
    body: &str,
) -> (StatusCode, String, reqwest::Client) {
    use sspi::{
        AuthIdentity, BufferType, ClientRequestFlags, CredentialUse, DataRepresentation, Ntlm,
        SecurityBuffer, Sspi, SspiImpl, Username,
    };
    let client = reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = m.ews_url();
    let post = |auth: Option<String>| {
        let mut req = client
            .post(&url)
            .header("content-type", "text/xml; charset=utf-8")
            .body(envelope("", body));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req
    };
    // Leg 0: the server says which schemes it takes.
    let first = post(None).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::UNAUTHORIZED);
    assert!(
        first
            .headers()
            .get_all("www-authenticate")
            .iter()
            .any(|v| v == "NTLM")
    );
    let _ = first.bytes().await.unwrap();

    let mut ntlm = Ntlm::new();
    let identity = AuthIdentity {
        username: Username::new(user, Some("CONTOSO")).unwrap(),
        password: password.to_string().into(),
    };
    let mut creds = ntlm
        .acquire_credentials_handle()
        .with_credential_use(CredentialUse::Outbound)
        .with_auth_data(&identity)
        .execute(&mut ntlm)
        .unwrap();
    let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
    let mut builder = ntlm
        .initialize_security_context()
        .with_credentials_handle(&mut creds.credentials_handle)
        .with_context_requirements(ClientRequestFlags::ALLOCATE_MEMORY)
        .with_target_data_representation(DataRepresentation::Native)
        .with_target_name("HTTP/127.0.0.1")
        .with_output(&mut output);
    ntlm.initialize_security_context_impl(&mut builder)
        .unwrap()
        .resolve_to_result()
        .unwrap();
    let negotiate = STANDARD.encode(&output[0].buffer);
    // Leg 1: NEGOTIATE, answered by a CHALLENGE.
    let second = post(Some(format!("{scheme} {negotiate}")))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::UNAUTHORIZED);
    let challenge = second
        .headers()
        .get_all("www-authenticate")
        .iter()
        .find_map(|v| {
            v.to_str()
                .ok()?
                .strip_prefix(&format!("{scheme} "))
                .map(str::to_string)
        })
        .expect("an NTLM challenge");
    let _ = second.bytes().await.unwrap();
    let mut input = vec![SecurityBuffer::new(
        STANDARD.decode(challenge).unwrap(),
        BufferType::Token,
    )];
    let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
    let mut builder = ntlm
        .initialize_security_context()
        .with_credentials_handle(&mut creds.credentials_handle)
        .with_context_requirements(ClientRequestFlags::ALLOCATE_MEMORY)
        .with_target_data_representation(DataRepresentation::Native)
        .with_target_name("HTTP/127.0.0.1")
        .with_input(&mut input)
        .with_output(&mut output);
    ntlm.initialize_security_context_impl(&mut builder)
        .unwrap()
        .resolve_to_result()
        .unwrap();
    // Leg 2: AUTHENTICATE on the same connection, with the request.
    let third = post(Some(format!(
        "{scheme} {}",
        STANDARD.encode(&output[0].buffer)
    )))
    .send()
    .await
    .unwrap();
    let status = third.status();
    let text = third.text().await.unwrap();
    (status, text, client)
}

#[tokio::test]
async fn ntlm_with_a_real_client_authenticates_one_connection_and_refuses_a_wrong_password() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let (status, text, client) = ntlm_call(&m, "adele", ADELE_PASSWORD, &inbox()).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("<m:ResponseCode>NoError</m:ResponseCode>"));
    // The connection stays authenticated, as with IIS.
    let again = client
        .post(m.ews_url())
        .header("content-type", "text/xml; charset=utf-8")
        .body(envelope("", &inbox()))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let again = again.text().await.unwrap();
    // A fresh connection is not.
    let fresh = http()
        .post(m.ews_url())
        .body(envelope("", &inbox()))
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), StatusCode::UNAUTHORIZED);
    let (status, _, _) = ntlm_call(&m, "adele", "Wrong-Passw0rd!", &inbox()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = ntlm_call(&m, "nobody", ADELE_PASSWORD, &inbox()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The same handshake under the Negotiate scheme (raw NTLM, as Windows clients fall back to).
    let (status, negotiated, _) =
        ntlm_call_as(&m, "Negotiate", "megan", MEGAN_PASSWORD, &inbox()).await;
    assert_eq!(status, StatusCode::OK, "{negotiated}");
    exgate_testkit::xsd::validate_soap(&[text, again, negotiated]).unwrap();
}

#[tokio::test]
async fn bearer_tokens_need_exchange_audience_and_app_only_needs_impersonation_and_anchor() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let delegated = Ews::new(
        &m,
        Cred::Bearer(outlook_token(&m, Some((ADELE, ADELE_PASSWORD))).await),
    );
    delegated.call(&inbox()).await.ok();
    let graph_token: Value = http()
        .post(m.token_endpoint(TENANT_ID))
        .form(&[
            ("grant_type", "password"),
            ("client_id", PUBLIC_APP),
            ("username", ADELE),
            ("password", ADELE_PASSWORD),
            ("scope", "User.Read"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let wrong_audience = delegated.with(Cred::Bearer(
        graph_token["access_token"].as_str().unwrap().into(),
    ));
    let r = wrong_audience.call(&inbox()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.header_all("www-authenticate")
            .iter()
            .any(|h| h.contains("invalid_token"))
    );

    let app_token = outlook_token(&m, None).await;
    let mut app = delegated.with(Cred::Bearer(app_token));
    let r = app.call(&inbox()).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        r.text
            .contains("a:ErrorInvalidExchangeImpersonationHeaderData"),
        "{}",
        r.text
    );
    let r = app.call_with(&impersonate(ADELE), &inbox()).await;
    assert_eq!(
        r.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "no X-AnchorMailbox"
    );
    app.anchor = Some(ADELE.into());
    app.call_with(&impersonate(ADELE), &inbox()).await.ok();
    let r = app
        .call_with(&impersonate("ghost@contoso.onmicrosoft.com"), &inbox())
        .await;
    assert!(r.text.contains("ErrorNonExistentMailbox"), "{}", r.text);
    // An application access policy limits the app to Megan.
    m.set_mailbox_scope(DAEMON_APP, Some(vec![MEGAN.into()]));
    let r = app.call_with(&impersonate(ADELE), &inbox()).await;
    assert!(
        r.text.contains("a:ErrorImpersonateUserDenied"),
        "{}",
        r.text
    );
    // Impersonating Megan does not open Adele's mailbox by naming it either.
    app.anchor = Some(MEGAN.into());
    let r = app.call_with(&impersonate(MEGAN), &inbox_of(ADELE)).await;
    assert_eq!(r.codes(), ["ErrorAccessDenied"]);
    app.call_with(&impersonate(MEGAN), &inbox()).await.ok();
    app.anchor = Some(ADELE.into());
    m.set_mailbox_scope(DAEMON_APP, None);

    // Exchange Online's block: apps not allow-listed get 403.
    m.change_ews_switches(&EwsSwitchChange {
        block_apps: Some(true),
        ..EwsSwitchChange::default()
    })
    .unwrap();
    let r = app.call_with(&impersonate(ADELE), &inbox()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(delegated.call(&inbox()).await.status, StatusCode::FORBIDDEN);
    m.change_ews_switches(&EwsSwitchChange {
        allowed_apps: Some(vec![DAEMON_APP.to_uppercase()]),
        ..EwsSwitchChange::default()
    })
    .unwrap();
    app.call_with(&impersonate(ADELE), &inbox()).await.ok();
    validate_all(&[&delegated, &app]);
}

#[tokio::test]
async fn impersonation_delegate_access_and_ews_enabled_are_enforced() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let adele = Ews::basic(&m, ADELE, ADELE_PASSWORD);
    let megan = Ews::basic(&m, MEGAN, MEGAN_PASSWORD);
    // Megan, the service account, holds ApplicationImpersonation on Adele's mailbox.
    let as_adele = megan
        .call_with(
            &impersonate(ADELE),
            &find_items(&dfid("inbox"), "IdOnly", "", ""),
        )
        .await;
    as_adele.ok();
    assert_eq!(as_adele.attrs("ItemId", "Id").len(), 12);
    let denied = adele.call_with(&impersonate(MEGAN), &inbox()).await;
    assert_eq!(denied.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(denied.text.contains("a:ErrorImpersonateUserDenied"));

    // Adele has FullAccess on Sales; Megan has not; nobody reaches a mailbox that is not there.
    let sales = adele.call(&inbox_of(SALES)).await;
    sales.ok();
    let sales_item = sales.attrs("ItemId", "Id")[0].clone();
    assert_eq!(
        megan.call(&inbox_of(SALES)).await.codes(),
        ["ErrorAccessDenied"]
    );
    assert_eq!(
        adele.call(&inbox_of(MEGAN)).await.codes(),
        ["ErrorAccessDenied"]
    );
    assert_eq!(
        adele
            .call(&inbox_of("ghost@contoso.onmicrosoft.com"))
            .await
            .codes(),
        ["ErrorNonExistentMailbox"]
    );
    // An ID of Sales's mailbox does not open it for Megan either.
    let r = megan
        .call(&get_item(&sales_item, "<t:BaseShape>IdOnly</t:BaseShape>"))
        .await;
    assert_eq!(r.codes(), ["ErrorAccessDenied"]);
    adele
        .call(&get_item(&sales_item, "<t:BaseShape>Default</t:BaseShape>"))
        .await
        .ok();
    // Sent as Sales by Adele (SendAs), saved in Sales's Sent Items.
    adele
        .call(&format!(
            r#"<m:CreateItem MessageDisposition="SendAndSaveCopy"><m:SavedItemFolderId>{}</m:SavedItemFolderId><m:Items><t:Message><t:Subject>From Sales</t:Subject><t:ToRecipients><t:Mailbox><t:EmailAddress>{MEGAN}</t:EmailAddress></t:Mailbox></t:ToRecipients><t:From><t:Mailbox><t:EmailAddress>{SALES}</t:EmailAddress></t:Mailbox></t:From></t:Message></m:Items></m:CreateItem>"#,
            dfid_of("sentitems", SALES)
        ))
        .await
        .ok();
    assert_eq!(m.submitted(SALES).len(), 1);

    // EWS switched off for Adele's mailbox: 403, as Exchange Online answers.
    let off = ExchangeSettings {
        ews_enabled: false,
        ..ExchangeSettings::default()
    };
    assert!(m.set_exchange_settings(ADELE, off));
    let r = adele.call(&inbox()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = megan.call_with(&impersonate(ADELE), &inbox()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    megan.call(&inbox()).await.ok();
    validate_all(&[&adele, &megan]);
}

#[tokio::test]
async fn the_server_version_is_switchable_and_unknown_request_versions_are_refused() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let ews = Ews::basic(&m, ADELE, ADELE_PASSWORD);
    let r = ews.call(&inbox()).await;
    assert!(
        r.text
            .contains(r#"<t:ServerVersionInfo MajorVersion="15" MinorVersion="2""#),
        "{}",
        r.text
    );
    m.set_ews_version(ServerVersion::Exchange2010Sp2);
    let r = ews.call(&inbox()).await;
    assert_eq!(
        r.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Exchange2016 asked of 2010 SP2"
    );
    assert!(r.text.contains("a:ErrorInvalidServerVersion"));
    assert!(r.text.contains(r#"MajorVersion="14""#));
    let old = envelope("", &inbox()).replace("Exchange2016", "Exchange2010_SP2");
    ews.raw(old).await.ok();
    let switched: Value = http()
        .post(format!("{}/_mock/ews", m.base_url()))
        .body(r#"{"version": "Online"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(switched["version"], "Online");
    let newest = envelope("", &inbox()).replace("Exchange2016", "V2018_01_08");
    let r = ews.raw(newest).await;
    r.ok();
    assert!(r.text.contains(r#"MinorVersion="20""#));
    let bogus = ews
        .raw(envelope("", &inbox()).replace("Exchange2016", "Exchange2099"))
        .await;
    assert!(bogus.text.contains("a:ErrorInvalidServerVersion"));
    let got: Value = http()
        .get(format!("{}/_mock/ews", m.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["version"], "Online");
    validate_all(&[&ews]);
}

#[tokio::test]
async fn throttling_answers_server_busy_with_a_back_off_until_the_window_ends() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let ews = Ews::basic(&m, ADELE, ADELE_PASSWORD);
    m.set_ews_throttling(Some(EwsThrottlePolicy {
        max_concurrency: 27,
        budget: 2,
        window_secs: 60,
    }))
    .unwrap();
    ews.call(&inbox()).await.ok();
    m.advance_clock(Duration::from_secs(15));
    ews.call(&inbox()).await.ok();
    let busy = ews.call(&inbox()).await;
    assert_eq!(busy.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(busy.text.contains("<faultcode xmlns:a=\"http://schemas.microsoft.com/exchange/services/2006/types\">a:ErrorServerBusy</faultcode>"), "{}", busy.text);
    // The mock's clock runs on from the 15 seconds it was moved: the rest of the minute.
    let back_off: u64 = all_between(&busy.text, r#"<t:Value Name="BackOffMilliseconds">"#, "<")[0]
        .parse()
        .unwrap();
    assert!((40_000..=45_000).contains(&back_off), "{back_off}");
    // The other way Exchange says it: inside a 200 answer's response message.
    m.change_ews_switches(&EwsSwitchChange {
        busy_in_response: Some(true),
        ..EwsSwitchChange::default()
    })
    .unwrap();
    let busy = ews.call(&inbox()).await;
    assert_eq!(busy.status, StatusCode::OK);
    assert_eq!(busy.codes(), ["ErrorServerBusy"]);
    assert!(
        busy.text
            .contains(r#"<m:MessageXml><t:Value Name="BackOffMilliseconds">"#),
        "{}",
        busy.text
    );
    // Another mailbox has its own budget.
    Ews::basic(&m, MEGAN, MEGAN_PASSWORD)
        .call(&inbox())
        .await
        .ok();
    m.advance_clock(Duration::from_secs(45));
    ews.call(&inbox()).await.ok();
    validate_all(&[&ews]);
}

#[tokio::test]
async fn past_the_concurrency_limit_requests_get_exceeded_connection_count() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let ews = Ews::basic(&m, ADELE, ADELE_PASSWORD);
    m.set_ews_throttling(Some(EwsThrottlePolicy {
        max_concurrency: 1,
        budget: 100,
        window_secs: 60,
    }))
    .unwrap();
    // The first request holds its slot for a while (an injected delay, taken inside the slot).
    m.add_fault(FaultRule::next(1, FaultKind::Delay { ms: 1500 }).service(Service::Ews))
        .unwrap();
    let slow = tokio::spawn({
        let url = ews.url.clone();
        async move {
            http()
                .post(url)
                .basic_auth(ADELE, Some(ADELE_PASSWORD))
                .body(envelope("", &inbox()))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    });
    while m.fault_report().count("delay") == 0 {
        tokio::task::yield_now().await;
    }
    let refused = ews.call(&inbox()).await;
    assert_eq!(refused.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        refused.text.contains("a:ErrorExceededConnectionCount"),
        "{}",
        refused.text
    );
    // Megan's mailbox has its own slots.
    Ews::basic(&m, MEGAN, MEGAN_PASSWORD)
        .call(&inbox())
        .await
        .ok();
    let slow = slow.await.unwrap();
    assert!(slow.contains("<m:ResponseCode>NoError</m:ResponseCode>"));
    ews.call(&inbox()).await.ok();
    assert_eq!(m.ews_state().max_concurrent_seen(ADELE), 2);
    ews.bodies.lock().unwrap().push(slow);
    validate_all(&[&ews]);
}

#[tokio::test]
async fn fault_rules_apply_to_ews_operations_and_malformed_requests_get_schema_faults() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let ews = Ews::basic(&m, ADELE, ADELE_PASSWORD);
    m.add_fault(
        FaultRule::next(
            1,
            FaultKind::TooManyRequests {
                retry_after: Some("5".into()),
            },
        )
        .service(Service::Ews)
        .path("/FindItem"),
    )
    .unwrap();
    let folder = format!(
        r#"<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds>{}</m:FolderIds></m:GetFolder>"#,
        dfid("inbox")
    );
    ews.call(&folder).await.ok();
    let busy = ews.call(&inbox()).await;
    assert_eq!(busy.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        busy.text
            .contains(r#"<t:Value Name="BackOffMilliseconds">5000</t:Value>"#)
    );
    ews.call(&inbox()).await.ok();
    assert_eq!(m.fault_report().count("429"), 1);

    m.add_fault(FaultRule::next(1, FaultKind::TruncatedJson).service(Service::Ews))
        .unwrap();
    let cut = ews.call(&inbox()).await;
    assert_eq!(cut.status, StatusCode::OK);
    assert!(!cut.text.ends_with("</s:Envelope>"));
    ews.bodies
        .lock()
        .unwrap()
        .retain(|b| b.ends_with("</s:Envelope>"));
    m.add_fault(FaultRule::next(1, FaultKind::Reset).service(Service::Ews))
        .unwrap();
    let reset = ews
        .client
        .post(&ews.url)
        .basic_auth(ADELE, Some(ADELE_PASSWORD))
        .body(envelope("", &inbox()))
        .send()
        .await;
    assert!(reset.is_err(), "the connection is reset");

    for bad in [
        "this is not XML".to_string(),
        "<a:Envelope xmlns:a=\"urn:other\"/>".to_string(),
        envelope("", "<m:FindItem><unclosed></m:FindItem>"),
        envelope("", "<t:FindItem/>"),
    ] {
        let r = ews.raw(bad).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(r.text.contains("a:ErrorSchemaValidation"), "{}", r.text);
    }
    let unknown = ews.call("<m:GetRooms/>").await;
    assert!(unknown.text.contains("a:ErrorInvalidRequest"));
    let missing = ews.call("<m:GetItem/>").await;
    assert!(missing.text.contains("a:ErrorSchemaValidation"));
    validate_all(&[&ews]);
}

#[tokio::test]
async fn truncated_and_garbled_requests_get_answers_never_a_dropped_connection() {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let ews = Ews::basic(&m, ADELE, ADELE_PASSWORD);
    let requests = [
        create_message("SendAndSaveCopy", "x &amp; y", &[MEGAN], "body"),
        find_items(
            &dfid("inbox"),
            "Default",
            r#"<m:IndexedPageItemView MaxEntriesReturned="18446744073709551615" Offset="18446744073709551615" BasePoint="End"/>"#,
            r#"<m:Restriction><t:And><t:IsEqualTo><t:FieldURI FieldURI="message:IsRead"/><t:FieldURIOrConstant><t:Constant Value="maybe"/></t:FieldURIOrConstant></t:IsEqualTo></t:And></m:Restriction>"#,
        ),
        format!(
            r#"<m:GetUserAvailabilityRequest><t:TimeZone><t:Bias>99999999999</t:Bias></t:TimeZone><m:MailboxDataArray><t:MailboxData><t:Email><t:Address>{ADELE}</t:Address></t:Email></t:MailboxData></m:MailboxDataArray><t:FreeBusyViewOptions><t:TimeWindow><t:StartTime>2026-01-01T00:00:00</t:StartTime><t:EndTime>2026-06-01T00:00:00</t:EndTime></t:TimeWindow></t:FreeBusyViewOptions></m:GetUserAvailabilityRequest>"#
        ),
        r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape><m:CalendarView StartDate="9999-12-01T00:00:00Z" EndDate="9999-12-31T00:00:00Z"/><m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds></m:FindItem>"#.to_string(),
    ];
    for request in &requests {
        let whole = envelope("", request);
        let mut cut = 0;
        while cut < whole.len() {
            let r = ews.raw(whole[..cut].to_string()).await;
            assert!(
                r.status == StatusCode::OK || r.status == StatusCode::INTERNAL_SERVER_ERROR,
                "{} at {cut}: {}",
                r.status,
                r.text
            );
            cut += 37;
        }
        let r = ews.raw(whole.replace('<', "<<")).await;
        assert!(r.text.contains("a:ErrorSchemaValidation"));
    }
    let far = ews.call(&requests[2]).await;
    assert!(
        far.text.contains("a:ErrorTimeIntervalTooBig"),
        "{}",
        far.text
    );
    validate_all(&[&ews]);
}
