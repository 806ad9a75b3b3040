//! Python's standard library as a third, independent client: imaplib (XOAUTH2 and LOGIN),
//! poplib (USER/PASS, STLS) and smtplib (STARTTLS, AUTH XOAUTH2), run with `python3`.

use std::process::Command;

use exgate_testkit::entra::seed::*;

use crate::support::*;

const SCRIPT: &str = r#"
import base64, imaplib, poplib, smtplib, ssl, sys
from email.message import EmailMessage

imap_url, imap_plain_url, pop_plain_url, smtp_url, ca, token, adele, password, megan = sys.argv[1:]
hostport = lambda url: (url.split("://")[1].rsplit(":", 1)[0], int(url.rsplit(":", 1)[1]))
ctx = ssl.create_default_context(cafile=ca)

# IMAP over implicit TLS with XOAUTH2 (imaplib sends AUTHENTICATE, then the response).
host, port = hostport(imap_url)
imap = imaplib.IMAP4_SSL(host, port, ssl_context=ctx)
auth = f"user={megan}\x01auth=Bearer {token}\x01\x01".encode()
typ, _ = imap.authenticate("XOAUTH2", lambda _: auth)
assert typ == "OK", typ
typ, data = imap.select("INBOX")
assert typ == "OK" and int(data[0]) > 0, data
typ, data = imap.uid("SEARCH", None, "ALL")
uids = data[0].split()
typ, data = imap.uid("FETCH", uids[0], "(RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
assert typ == "OK" and b"Subject:" in data[0][1], data
imap.logout()

# IMAP on the plain port: STARTTLS, then LOGIN with the seeded password.
host, port = hostport(imap_plain_url)
imap = imaplib.IMAP4(host, port)
assert "LOGINDISABLED" in imap.capabilities
imap.starttls(ssl_context=ctx)
typ, _ = imap.login(adele, password)
assert typ == "OK", typ
imap.logout()

# POP3: STLS, USER/PASS, STAT, RETR, QUIT.
host, port = hostport(pop_plain_url)
pop = poplib.POP3(host, port)
pop.stls(context=ctx)
pop.user(adele)
pop.pass_(password)
count, size = pop.stat()
assert count > 0 and size > 0, (count, size)
resp, lines, octets = pop.retr(1)
assert resp.startswith(b"+OK") and lines, resp
pop.quit()

# SMTP submission: STARTTLS, AUTH XOAUTH2 (initial response), send.
host, port = hostport(smtp_url)
smtp = smtplib.SMTP(host, port)
smtp.ehlo()
smtp.starttls(context=ctx)
smtp.ehlo()
code, _ = smtp.docmd("AUTH", "XOAUTH2 " + base64.b64encode(auth).decode())
assert code == 235, code
msg = EmailMessage()
msg["From"] = megan
msg["To"] = adele
msg["Subject"] = "from python"
msg.set_content("sent by smtplib\n.dot line\n")
smtp.send_message(msg)
smtp.quit()
print("python ok")
"#;

#[tokio::test]
async fn pythons_imaplib_poplib_and_smtplib_work_against_the_mock() {
    let m = mock().await;
    let token = app_token(&m).await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("clients.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, m.mail_ca_pem()).unwrap();
    let args = [
        script.to_str().unwrap().to_string(),
        m.imap_url(),
        m.imap_starttls_url(),
        m.pop_stls_url(),
        m.smtp_url(),
        ca.to_str().unwrap().to_string(),
        token,
        ADELE.to_string(),
        ADELE_PASSWORD.to_string(),
        MEGAN.to_string(),
    ];
    // The clients block; run them off the runtime that serves the mock.
    let out = tokio::task::spawn_blocking(move || Command::new("python3").args(args).output())
        .await
        .unwrap()
        .expect("python3 runs (Debian's python3 is part of the test environment)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stdout.trim(), "python ok");
    assert_eq!(m.delivered(ADELE).last().unwrap().1, "from python");
}
