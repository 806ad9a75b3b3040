use std::collections::HashMap;
use std::sync::Mutex;

use super::*;

/// Answers by URL; records every request and whether it carried credentials.
#[derive(Default)]
struct Fake {
    replies: HashMap<String, Reply>,
    sent: Mutex<Vec<(String, bool, String)>>,
}

impl Fake {
    fn answer(mut self, url: &str, status: u16, body: &str) -> Self {
        self.replies.insert(
            url.to_owned(),
            Reply {
                status,
                location: None,
                body: body.as_bytes().to_vec(),
            },
        );
        self
    }

    fn redirect(mut self, url: &str, to: &str) -> Self {
        self.replies.insert(
            url.to_owned(),
            Reply {
                status: 302,
                location: Some(to.to_owned()),
                body: Vec::new(),
            },
        );
        self
    }

    /// Hosts that received credentials.
    fn credentialed_hosts(&self) -> Vec<String> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, auth, _)| *auth)
            .map(|(url, _, _)| Url::parse(url).unwrap().host_str().unwrap().to_owned())
            .collect()
    }

    fn bodies(&self) -> Vec<String> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, b)| b.clone())
            .collect()
    }
}

#[async_trait]
impl Transport for Fake {
    async fn post(
        &self,
        url: &Url,
        _content_type: &str,
        body: String,
        authenticate: bool,
    ) -> Result<Reply, String> {
        self.sent
            .lock()
            .unwrap()
            .push((url.to_string(), authenticate, body));
        self.replies
            .get(url.as_str())
            .cloned()
            .ok_or_else(|| "connection refused".to_owned())
    }

    async fn get(&self, url: &Url) -> Result<Reply, String> {
        self.sent
            .lock()
            .unwrap()
            .push((url.to_string(), false, String::new()));
        self.replies
            .get(url.as_str())
            .cloned()
            .ok_or_else(|| "connection refused".to_owned())
    }
}

fn pox_settings(ews: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">
    <User><DisplayName>Adele Vance</DisplayName></User>
    <Account>
      <AccountType>email</AccountType>
      <Action>settings</Action>
      <Protocol><Type>EXCH</Type><EwsUrl>https://mail-int.contoso.com/EWS/Exchange.asmx</EwsUrl></Protocol>
      <Protocol><Type>EXPR</Type><EwsUrl>{ews}</EwsUrl></Protocol>
    </Account>
  </Response>
</Autodiscover>"#
    )
}

fn pox_action(action: &str, element: &str, value: &str) -> String {
    format!(
        r#"<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">
    <Account><Action>{action}</Action><{element}>{value}</{element}></Account>
  </Response>
</Autodiscover>"#
    )
}

fn soap_settings(external: &str) -> String {
    format!(
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:a="http://www.w3.org/2005/08/addressing">
  <s:Header><h:ServerVersionInfo xmlns:h="http://schemas.microsoft.com/exchange/2010/Autodiscover"><h:MajorVersion>15</h:MajorVersion></h:ServerVersionInfo></s:Header>
  <s:Body>
    <GetUserSettingsResponseMessage xmlns="http://schemas.microsoft.com/exchange/2010/Autodiscover">
      <Response xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
        <ErrorCode>NoError</ErrorCode><ErrorMessage/>
        <UserResponses><UserResponse>
          <ErrorCode>NoError</ErrorCode><ErrorMessage>No error.</ErrorMessage>
          <UserSettings>
            <UserSetting i:type="StringSetting"><Name>InternalEwsUrl</Name><Value>https://mail-int.contoso.com/EWS/Exchange.asmx</Value></UserSetting>
            <UserSetting i:type="StringSetting"><Name>ExternalEwsUrl</Name><Value>{external}</Value></UserSetting>
          </UserSettings>
        </UserResponse></UserResponses>
      </Response>
    </GetUserSettingsResponseMessage>
  </s:Body>
</s:Envelope>"#
    )
}

const EWS: &str = "https://mail.contoso.com/EWS/Exchange.asmx";

#[tokio::test]
async fn pox_at_the_domain_answers_first_and_the_external_url_is_preferred() {
    let fake = Fake::default().answer(
        "https://contoso.com/autodiscover/autodiscover.xml",
        200,
        &pox_settings(EWS),
    );
    let found = discover(&fake, "adele@contoso.com", &Options::default())
        .await
        .unwrap();
    assert_eq!(found.ews_url.as_str(), EWS);
    assert_eq!(found.address, "adele@contoso.com");
    assert_eq!(found.attempts.len(), 1);
    let body = &fake.bodies()[0];
    assert!(
        body.contains("<EMailAddress>adele@contoso.com</EMailAddress>"),
        "{body}"
    );
}

#[tokio::test]
async fn soap_at_the_autodiscover_host_after_the_domain_fails() {
    let fake = Fake::default()
        .answer("https://contoso.com/autodiscover/autodiscover.xml", 500, "")
        .answer(
            "https://autodiscover.contoso.com/autodiscover/autodiscover.xml",
            200,
            "<html>not xml</html>",
        )
        .answer(
            "https://autodiscover.contoso.com/autodiscover/autodiscover.svc",
            200,
            &soap_settings(EWS),
        );
    let found = discover(&fake, "adele@contoso.com", &Options::default())
        .await
        .unwrap();
    assert_eq!(found.ews_url.as_str(), EWS);
    let outcomes: Vec<_> = found.attempts.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes.len(), 4, "{outcomes:?}");
    assert!(outcomes[0].contains("500"), "{outcomes:?}");
    assert!(outcomes[1].contains("unreachable"), "{outcomes:?}");
    assert!(outcomes[2].contains("not POX"), "{outcomes:?}");
    let soap = fake.bodies().pop().unwrap();
    assert!(
        soap.contains("<a:Mailbox>adele@contoso.com</a:Mailbox>"),
        "{soap}"
    );
    assert!(soap.contains("ExternalEwsUrl"), "{soap}");
}

#[tokio::test]
async fn a_redirect_to_another_address_is_followed_with_the_same_rule_for_credentials() {
    // Within the domain: followed.
    let fake = Fake::default()
        .answer(
            "https://contoso.com/autodiscover/autodiscover.xml",
            200,
            &pox_action("redirectAddr", "RedirectAddr", "adele@eu.contoso.com"),
        )
        .answer(
            "https://eu.contoso.com/autodiscover/autodiscover.xml",
            200,
            &pox_settings("https://mail.eu.contoso.com/EWS/Exchange.asmx"),
        );
    let found = discover(&fake, "adele@contoso.com", &Options::default())
        .await
        .unwrap();
    assert_eq!(found.address, "adele@eu.contoso.com");
    assert_eq!(found.ews_url.host_str(), Some("mail.eu.contoso.com"));

    // To another domain: stopped before any credential goes there, with the host named.
    let fake = Fake::default().answer(
        "https://contoso.com/autodiscover/autodiscover.xml",
        200,
        &pox_action("redirectAddr", "RedirectAddr", "adele@fabrikam.example"),
    );
    let err = discover(&fake, "adele@contoso.com", &Options::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AutodiscoverError::UntrustedHost { host, .. } if host == "fabrikam.example"),
        "{err}"
    );
    assert_eq!(fake.credentialed_hosts(), ["contoso.com"]);
}

#[tokio::test]
async fn the_http_redirect_method_never_leads_credentials_to_an_unconfirmed_host() {
    let redirect = "http://autodiscover.contoso.com/autodiscover/autodiscover.xml";
    let hostile = "https://autodiscover.evil.example/autodiscover/autodiscover.xml";
    let fake = Fake::default().redirect(redirect, hostile).answer(
        hostile,
        200,
        &pox_settings("https://evil.example/EWS/Exchange.asmx"),
    );
    let err = discover(&fake, "adele@contoso.com", &Options::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AutodiscoverError::UntrustedHost { host, .. } if host == "autodiscover.evil.example"),
        "{err}"
    );
    assert!(
        err.to_string().contains("autodiscover.evil.example"),
        "{err}"
    );
    assert!(
        !fake.credentialed_hosts().iter().any(|h| h.contains("evil")),
        "{:?}",
        fake.credentialed_hosts()
    );
    // The redirect GET itself carried none.
    let sent = fake.sent.lock().unwrap().clone();
    assert!(sent.iter().any(|(u, auth, _)| u == redirect && !auth));

    // A redirect to plain http is refused even within the domain.
    let fake = Fake::default().redirect(
        redirect,
        "http://mail.contoso.com/autodiscover/autodiscover.xml",
    );
    let err = discover(&fake, "adele@contoso.com", &Options::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, AutodiscoverError::UntrustedHost { .. }),
        "{err}"
    );

    // Confirmed by a person: followed.
    let fake = Fake::default()
        .redirect(
            redirect,
            "https://autodiscover.hosted.example/autodiscover/autodiscover.xml",
        )
        .answer(
            "https://autodiscover.hosted.example/autodiscover/autodiscover.xml",
            200,
            &pox_settings("https://ews.hosted.example/EWS/Exchange.asmx"),
        );
    let options = Options {
        trusted_hosts: vec![
            "autodiscover.hosted.example".into(),
            "ews.hosted.example".into(),
        ],
        ..Options::default()
    };
    let found = discover(&fake, "adele@contoso.com", &options)
        .await
        .unwrap();
    assert_eq!(found.ews_url.host_str(), Some("ews.hosted.example"));
}

#[tokio::test]
async fn an_ews_url_outside_the_domain_or_not_https_is_not_taken() {
    for ews in [
        "https://ews.evil.example/EWS/Exchange.asmx",
        "http://mail.contoso.com/EWS/Exchange.asmx",
        "https://user:pw@mail.contoso.com/EWS/Exchange.asmx",
        "https://mail.contoso.com.evil.example/EWS/Exchange.asmx",
    ] {
        let fake = Fake::default().answer(
            "https://contoso.com/autodiscover/autodiscover.xml",
            200,
            &pox_settings(ews),
        );
        let err = discover(&fake, "adele@contoso.com", &Options::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, AutodiscoverError::UntrustedHost { .. }),
            "{ews}: {err}"
        );
    }
}

#[tokio::test]
async fn redirects_end_after_the_hop_limit() {
    let fake = Fake::default()
        .answer(
            "https://contoso.com/autodiscover/autodiscover.xml",
            200,
            &pox_action(
                "redirectUrl",
                "RedirectUrl",
                "https://a.contoso.com/autodiscover/autodiscover.xml",
            ),
        )
        .answer(
            "https://a.contoso.com/autodiscover/autodiscover.xml",
            200,
            &pox_action(
                "redirectUrl",
                "RedirectUrl",
                "https://contoso.com/autodiscover/autodiscover.xml",
            ),
        );
    let err = discover(&fake, "adele@contoso.com", &Options::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, AutodiscoverError::TooManyHops { .. }),
        "{err}"
    );
    assert!(fake.sent.lock().unwrap().len() <= MAX_HOPS + 2);
}

#[tokio::test]
async fn exchange_online_json_is_asked_without_credentials_last() {
    let fake = Fake::default().answer(
        "https://outlook.office365.com/autodiscover/autodiscover.json/v1.0/adele@contoso.com?Protocol=EWS",
        200,
        r#"{"Protocol":"EWS","Url":"https://outlook.office365.com/EWS/Exchange.asmx"}"#,
    );
    let options = Options {
        online_root: Some(Url::parse("https://outlook.office365.com").unwrap()),
        trusted_hosts: vec!["outlook.office365.com".into()],
        ..Options::default()
    };
    let found = discover(&fake, "adele@contoso.com", &options)
        .await
        .unwrap();
    assert_eq!(found.ews_url.host_str(), Some("outlook.office365.com"));
    assert!(
        !fake
            .credentialed_hosts()
            .contains(&"outlook.office365.com".to_owned())
    );
}

#[tokio::test]
async fn nothing_found_lists_what_was_tried_and_bad_addresses_are_refused() {
    let fake = Fake::default().answer(
        "https://contoso.com/autodiscover/autodiscover.xml",
        200,
        r#"<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"><Response><Error><ErrorCode>500</ErrorCode><Message>The email address can't be found.</Message></Error></Response></Autodiscover>"#,
    );
    let err = discover(&fake, "nobody@contoso.com", &Options::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("can't be found"), "{text}");
    assert_eq!(err.attempts().len(), 5, "{text}");
    for bad in [
        "no-at-sign",
        "a@",
        "@contoso.com",
        "a@evil.example/x",
        "a@..",
    ] {
        assert!(matches!(
            discover(&fake, bad, &Options::default()).await,
            Err(AutodiscoverError::BadAddress(_))
        ));
    }
}

#[test]
fn hostile_answers_never_panic() {
    for body in [
        &b""[..],
        b"<",
        b"<Autodiscover>",
        b"<Autodiscover><Response><Account><Action>settings</Action></Account></Response></Autodiscover>",
        b"\xff\xfe",
        b"<a>&unknown;</a>",
    ] {
        assert!(matches!(parse_pox(body), Answer::Failed(_)));
        assert!(matches!(parse_soap(body), Answer::Failed(_)));
    }
    let deep = "<a>".repeat(1000);
    assert!(matches!(parse_pox(deep.as_bytes()), Answer::Failed(_)));
}

#[tokio::test]
async fn a_configured_endpoint_replaces_the_candidates_and_only_its_origin_is_trusted() {
    let endpoint = "http://127.0.0.1:1000/autodiscover/autodiscover.xml";
    let options = Options {
        endpoint: Some(Url::parse(endpoint).unwrap()),
        ..Options::default()
    };
    let fake = Fake::default().answer(
        endpoint,
        200,
        &pox_settings("http://127.0.0.1:1000/EWS/Exchange.asmx"),
    );
    let found = discover(&fake, "adele@contoso.com", &options)
        .await
        .unwrap();
    assert_eq!(
        found.ews_url.as_str(),
        "http://127.0.0.1:1000/EWS/Exchange.asmx"
    );
    let sent = fake.sent.lock().unwrap().clone();
    assert!(
        sent.iter()
            .all(|(u, _, _)| u.starts_with("http://127.0.0.1:1000/")),
        "{sent:?}"
    );

    // Another port of the same host is another origin: not trusted, nothing sent there.
    let fake = Fake::default().answer(
        endpoint,
        200,
        &pox_action(
            "redirectUrl",
            "RedirectUrl",
            "http://127.0.0.1:2000/autodiscover/autodiscover.xml",
        ),
    );
    let err = discover(&fake, "adele@contoso.com", &options)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AutodiscoverError::UntrustedHost { host, .. } if host == "http://127.0.0.1:2000"),
        "{err}"
    );
    assert!(err.to_string().contains("--trust-host"), "{err}");
    let sent = fake.sent.lock().unwrap().clone();
    assert!(
        !sent.iter().any(|(u, _, _)| u.contains(":2000")),
        "{sent:?}"
    );
}
