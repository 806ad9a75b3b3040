//! Autodiscover of the mock EWS (POX, SOAP GetUserSettings, Exchange Online's JSON), its
//! redirect switches and the record of credentials sent, and EWS over TLS.

mod ews_support;

use ews_support::*;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::Seed;
use exgate_testkit::entra::seed::*;
use exgate_testkit::ews::EwsSwitchChange;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn inbox() -> String {
    find_items(&dfid("inbox"), "IdOnly", "", "")
}

#[tokio::test]
async fn basic_over_tls_and_autodiscover_names_the_https_url() {
    let m = MockMicrosoft::start_tls(Seed::contoso()).await.unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(m.ca_pem().unwrap().as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
    let mut ews = Ews::basic(&m, ADELE, ADELE_PASSWORD);
    ews.client = client.clone();
    assert!(ews.url.starts_with("https://127.0.0.1:"));
    ews.call(&inbox()).await.ok();
    let text = client
        .post(m.autodiscover_url())
        .basic_auth(ADELE, Some(ADELE_PASSWORD))
        .body(pox(ADELE))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(&format!("<EwsUrl>{}</EwsUrl>", m.ews_url())));
    assert!(text.contains("<SSL>On</SSL>"));
    validate_all(&[&ews]);
}

fn pox(address: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>{address}</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>"#
    )
}

#[tokio::test]
async fn autodiscover_answers_the_ews_url_and_redirects_that_clients_must_not_follow_with_credentials()
 {
    let m = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let hostile = MockMicrosoft::start(Seed::contoso()).await.unwrap();
    let client = http();
    let post = |url: String, body: String, creds: bool| {
        let req = client
            .post(url)
            .header("content-type", "text/xml")
            .body(body);
        if creds {
            req.basic_auth(ADELE, Some(ADELE_PASSWORD))
        } else {
            req
        }
    };
    let r = post(m.autodiscover_url(), pox(ADELE), false)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let text = post(m.autodiscover_url(), pox(ADELE), true)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(&format!("<EwsUrl>{}</EwsUrl>", m.ews_url())),
        "{text}"
    );
    assert!(text.contains("<Type>EXCH</Type>") && text.contains("<Type>EXPR</Type>"));
    assert!(text.contains("<Action>settings</Action>"));
    let unknown = post(
        m.autodiscover_url(),
        pox("ghost@contoso.onmicrosoft.com"),
        true,
    )
    .send()
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(unknown.contains("<ErrorCode>500</ErrorCode>"));

    let soap = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:a="http://schemas.microsoft.com/exchange/2010/Autodiscover" xmlns:wsa="http://www.w3.org/2005/08/addressing" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header><a:RequestedServerVersion>Exchange2013</a:RequestedServerVersion><wsa:Action>http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings</wsa:Action></soap:Header><soap:Body><a:GetUserSettingsRequestMessage><a:Request><a:Users><a:User><a:Mailbox>{ADELE}</a:Mailbox></a:User></a:Users><a:RequestedSettings><a:Setting>ExternalEwsUrl</a:Setting><a:Setting>InternalEwsUrl</a:Setting><a:Setting>UserDisplayName</a:Setting></a:RequestedSettings></a:Request></a:GetUserSettingsRequestMessage></soap:Body></soap:Envelope>"#
    );
    let svc = format!("{}/autodiscover/autodiscover.svc", m.base_url());
    let text = post(svc.clone(), soap.clone(), true)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(&format!(
            "<Name>ExternalEwsUrl</Name><Value>{}</Value>",
            m.ews_url()
        )),
        "{text}"
    );
    assert!(text.contains(&format!("<Value>{ADELE_NAME}</Value>")));
    let json_url = format!(
        "{}/autodiscover/autodiscover.json/v1.0/{ADELE}?Protocol=EWS",
        m.base_url()
    );
    let json: Value = client
        .get(&json_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json, json!({"Protocol": "EWS", "Url": m.ews_url()}));

    // The switch: every answer redirects to a hostile, plain-HTTP autodiscover URL.
    let hostile_url = hostile.autodiscover_url();
    assert!(hostile_url.starts_with("http://"));
    let changed: Value = client
        .post(format!("{}/_mock/ews", m.base_url()))
        .body(json!({"autodiscover_redirect": {"kind": "url", "url": hostile_url}}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(changed["autodiscover_redirect"]["kind"], "url");
    let text = post(m.autodiscover_url(), pox(ADELE), true)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("<Action>redirectUrl</Action>"));
    let target = all_between(&text, "<RedirectUrl>", "</RedirectUrl>")[0].clone();
    assert_eq!(target, hostile_url);
    let text = post(svc, soap, true)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("<ErrorCode>RedirectUrl</ErrorCode>"));
    let r = client.get(&json_url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    // A careful client follows an unvalidated http:// redirect without credentials (and then
    // stops at the 401); the hostile host saw no Authorization header from it.
    let r = post(target.clone(), pox(ADELE), false)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let seen = hostile.autodiscover_requests();
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].authorization);
    // A careless one leaks them, and the record shows it.
    post(target, pox(ADELE), true).send().await.unwrap();
    assert!(hostile.autodiscover_requests()[1].authorization);
    assert!(
        m.autodiscover_requests()
            .iter()
            .filter(|r| r.authorization)
            .count()
            >= 4
    );

    // redirectAddr: ask again for another address.
    m.change_ews_switches(&EwsSwitchChange {
        autodiscover_redirect: Some(Some(exgate_testkit::ews::AutodiscoverRedirect::Address {
            address: MEGAN.into(),
        })),
        ..EwsSwitchChange::default()
    })
    .unwrap();
    let text = post(m.autodiscover_url(), pox(ADELE), true)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(&format!(
        "<Action>redirectAddr</Action><RedirectAddr>{MEGAN}</RedirectAddr>"
    )));
}
