//! `exgate-mock`: runs the mock Entra ID, Microsoft Graph and EWS until SIGINT or SIGTERM, or
//! (`exgate-mock fixtures …`) writes a generated mailbox to a file.
//!
//! When ready it prints one JSON line on stdout with its URLs, the seeded tenants and their
//! test credentials, so scripts and tests can wait for it and find it.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use axum::Router;
use axum::routing::get;
use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{EntraSwitchChange, Seed};
use exgate_testkit::ews::{
    AutodiscoverRedirect, EwsSwitchChange, EwsThrottlePolicy, ServerVersion,
};
use exgate_testkit::faults::{FaultPlan, FaultRule};
use exgate_testkit::graph::fixtures::{FixtureSpec, add_large_attachments, generate};
use exgate_testkit::graph::{MailboxContent, ThrottlePolicy};
use exgate_testkit::mailproto::{MailSwitchChange, ServicePrincipalSwitch};
use exgate_testkit::oidc::{IdTokenFault, OidcSwitchChange};
use serde_json::{Value, json};

const USAGE: &str = "usage: exgate-mock [--listen IP:PORT] [--tls [--ca-out PATH]] [--seed FILE] \
                     [--token-lifetime SECS] [--refresh-in SECS] [--strict-rotation] \
                     [--revoke-consent CLIENT_ID]... [--require-mfa UPN]... \
                     [--public-client-flows CLIENT_ID=on|off]... [--auto-approve UPN] \
                     [--mailboxes FILE]... [--throttle-scale N] [--fault SPEC]... [--chaos SPEC]... \
                     [--faults FILE] [--generic-oidc [--oidc-id-token-fault KIND]] \
                     [--ews-version VERSION] [--ews-throttle SPEC] \
                     [--ews-busy-in-response] [--ews-block-apps] [--ews-allow-app CLIENT_ID]... \
                     [--ews-auth SCHEMES] [--ews-no-streaming] [--ews-drop-notifications] \
                     [--autodiscover-redirect-addr ADDRESS | --autodiscover-redirect-url URL] \
                     [--mail-ca-out PATH] [--imap-disabled MAILBOX]... [--pop-disabled MAILBOX]... \
                     [--smtp-auth-disabled MAILBOX]... [--smtp-auth-disabled-tenant] \
                     [--security-defaults] [--sp-unregistered CLIENT_ID]... \
                     [--sp-full-access CLIENT_ID=MAILBOX[,MAILBOX...]]... \
                     [--imap-connection-limit N] [--mail-idle-timeout SECS] [--mail-max-size BYTES]
       exgate-mock fixtures --mailbox ADDRESS --out FILE [--messages N] [--attachment-every N] \
                     [--events-years N] [--contacts N] [--seed N] [--large-every N --large-size BYTES]
  --listen IP:PORT        where to listen (default 127.0.0.1:0, a free port)
  --tls                   serve HTTPS with a certificate from a fresh test CA
  --ca-out PATH           write that CA's certificate (PEM) to PATH (default: a temporary file)
  --seed FILE             the directory to serve, as JSON (default: the contoso seed)
  --token-lifetime SECS   lifetime of issued tokens (default 3600)
  --refresh-in SECS       add \"refresh_in\": SECS to token answers
  --strict-rotation       a refresh spends the refresh token it used (AADSTS70008 on reuse);
                          by default it stays valid, as in Entra
  --revoke-consent CLIENT_ID
                          the app's consent is revoked (AADSTS65001, no roles); repeatable
  --require-mfa UPN       the user must use MFA (password and refresh grants: AADSTS50076);
                          repeatable
  --public-client-flows CLIENT_ID=on|off
                          the app's \"Allow public client flows\" (off: AADSTS7000218 for
                          device code and password grants without a credential); repeatable
  Entra's switches can be read and changed at run time: GET/POST {base}/_mock/entra
  --auto-approve UPN      /authorize signs this user in without showing the form
  --mailboxes FILE        mailbox content (one mailbox or a list, e.g. from `fixtures`) that
                          replaces the seeded content of those mailboxes; repeatable
  --throttle-scale N      enforce Outlook throttling on Graph: 4 concurrent requests and
                          10,000 requests per 600/N seconds, scaled down by N (1 = Microsoft's)
  --fault SPEC            inject a fault into the next matching requests; repeatable. SPEC is
                          KIND[=VALUE][,times=N][,method=M][,path=P][,prefix=P][,service=graph|entra|ews]
                          KIND: 429[=RETRY-AFTER] 503[=RETRY-AFTER] 504 reset reset_after delay=MS
                          json_array truncated_json not_mime repeat_next_link
  --chaos SPEC            random faults: P,seed=N,mix=KIND[=VALUE][*WEIGHT]+...[,method=M][,path=P]...
                          e.g. 0.2,seed=7,mix=429=1*3+503+reset; repeatable
  --faults FILE           fault rules as JSON (what POST /_mock/faults takes)
  The plan can be read, extended and cleared at run time: GET/POST/DELETE {base}/_mock/faults
EWS is served at {base}/EWS/Exchange.asmx (SOAP 1.1; Basic, NTLM or an Entra bearer token),
autodiscover at {base}/autodiscover/autodiscover.xml (POX), …/autodiscover.svc (SOAP) and
…/autodiscover.json/v1.0/ADDRESS?Protocol=EWS; fault rules take service=ews (path
/EWS/Exchange.asmx/OPERATION).
  --ews-version VERSION   the Exchange EWS presents: Exchange2010_SP2, Exchange2013, Exchange2016,
                          Exchange2019 (default), ExchangeSE or Online
  --ews-throttle SPEC     EWS throttling per mailbox: `default` (27 concurrent, 1,000 requests a
                          minute) or CONCURRENCY,BUDGET,WINDOW_SECS; past it ErrorServerBusy
                          with BackOffMilliseconds, or ErrorExceededConnectionCount
  --ews-busy-in-response  answer ErrorServerBusy inside a 200 response message instead of a
                          500 SOAP fault (Exchange sends both)
  --ews-block-apps        Exchange Online's block: bearer tokens of apps not allow-listed get 403
  --ews-allow-app CLIENT_ID
                          allow-list an app while blocked; repeatable
  --ews-auth SCHEMES      the enabled schemes, comma-separated: basic,ntlm,bearer (default all)
  --ews-no-streaming      no streaming notifications, as Exchange 2010 before SP1 (pull works)
  --ews-drop-notifications
                          open GetStreamingEvents streams swallow their notifications
  --autodiscover-redirect-addr ADDRESS
                          autodiscover answers a redirect to another address
  --autodiscover-redirect-url URL
                          autodiscover answers a redirect to URL (hostile ones too, http://)
  EWS's switches can be read and changed at run time: GET/POST {base}/_mock/ews
  --generic-oidc          also serve a standards-following OpenID provider (not Entra) under
                          {base}/oidc: issuer {base}/oidc, clients exgate-portal (public) and
                          exgate-service (secret in the ready line), resource
                          https://api.contoso.test; --auto-approve applies to it too
  --oidc-id-token-fault KIND
                          its ID tokens are faulty: wrong_nonce wrong_audience wrong_issuer
                          expired bad_signature unsigned
  Its switches can be read and changed at run time: GET/POST {base}/_mock/oidc
IMAP, POP and SMTP are served on their own 127.0.0.1 ports (ready line: imap_url (implicit
TLS, like 993), imap_starttls_url (like 143), pop_url (995), pop_stls_url (110), smtp_url
(submission with STARTTLS, 587), smtps_url (465), mail_ca_cert); XOAUTH2 is checked as
Exchange Online checks it, PLAIN/LOGIN/USER take the seeded passwords (bridge tests).
  --mail-ca-out PATH      write the mail servers' CA certificate (PEM) to PATH (default: the
                          --tls CA file when --tls, else a temporary file)
  --imap-disabled MAILBOX Set-CASMailbox -ImapEnabled $false; repeatable
  --pop-disabled MAILBOX  Set-CASMailbox -PopEnabled $false; repeatable
  --smtp-auth-disabled MAILBOX
                          Set-CASMailbox -SmtpClientAuthenticationDisabled $true (535 5.7.139);
                          repeatable
  --smtp-auth-disabled-tenant
                          SMTP AUTH disabled for the organization (535 5.7.139 … Tenant)
  --security-defaults     Entra security defaults on: SMTP AUTH with a password is blocked
  --sp-unregistered CLIENT_ID
                          the app's service principal is not registered in Exchange
                          (no New-ServicePrincipal): app-only XOAUTH2 fails; repeatable
  --sp-full-access CLIENT_ID=MAILBOX[,MAILBOX...]
                          the mailboxes the app's service principal has FullAccess on
                          (replaces the seeded list; empty after = for none); repeatable
  --imap-connection-limit N
                          IMAP sessions per mailbox (default 20, Exchange Online's)
  --mail-idle-timeout SECS
                          drop silent mail connections after SECS (default 1800)
  --mail-max-size BYTES   the largest message SMTP and APPEND take (default 157286400)
  The mail switches can be read and changed at run time: GET/POST {base}/_mock/mail
Graph's change notifications (subscriptions; drop, delay, expire, lifecycle) can be read and
changed at run time: GET/POST {base}/_mock/graph

fixtures: writes a generated mailbox (JSON) for --mailboxes
  --mailbox ADDRESS       whose mailbox it is (required)
  --out FILE              where to write it (required)
  --messages N            messages across Inbox and three subfolders (default 20000)
  --attachment-every N    every N-th message has 1-3 attachments (default 10, 0 = none)
  --events-years N        calendar years of events from 2026 (default 1)
  --contacts N            contacts (default 200)
  --seed N                generator seed (default 1): the same seed gives the same file
  --large-every N         every N-th message gets one more attachment of --large-size bytes,
                          generated when loaded (the file stays small; default 0 = none)
  --large-size BYTES      size of those attachments (default 20971520, 20 MiB)";

#[derive(Debug)]
struct Args {
    listen: SocketAddr,
    tls: bool,
    ca_out: Option<PathBuf>,
    seed: Option<PathBuf>,
    entra: EntraSwitchChange,
    auto_approve: Option<String>,
    mailboxes: Vec<PathBuf>,
    throttle_scale: Option<u32>,
    faults: FaultPlan,
    ews: EwsSwitchChange,
    generic_oidc: bool,
    oidc_id_token_fault: Option<String>,
    mail_ca_out: Option<PathBuf>,
    mail: MailSwitchChange,
}

/// What the command line asks for.
#[derive(Debug)]
enum Command {
    Serve(Box<Args>),
    Fixtures {
        spec: FixtureSpec,
        large: (usize, u64),
        out: PathBuf,
    },
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> anyhow::Result<T> {
    v.parse()
        .map_err(|_| anyhow::anyhow!("{flag} `{v}` is not a number\n{USAGE}"))
}

fn parse_command(argv: Vec<String>) -> anyhow::Result<Command> {
    if argv.first().map(String::as_str) != Some("fixtures") {
        return parse_args(argv).map(|a| Command::Serve(Box::new(a)));
    }
    let mut args = argv.into_iter().skip(1);
    let mut mailbox = None;
    let mut out = None;
    let mut spec = FixtureSpec::new("");
    let mut large = (0usize, 20 * 1024 * 1024u64);
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--mailbox" => mailbox = Some(value("--mailbox")?),
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--messages" => spec.messages = number("--messages", &value("--messages")?)?,
            "--attachment-every" => {
                spec.attachment_every =
                    number("--attachment-every", &value("--attachment-every")?)?;
            }
            "--events-years" => {
                spec.events_years = number("--events-years", &value("--events-years")?)?;
            }
            "--contacts" => spec.contacts = number("--contacts", &value("--contacts")?)?,
            "--seed" => spec.seed = number("--seed", &value("--seed")?)?,
            "--large-every" => large.0 = number("--large-every", &value("--large-every")?)?,
            "--large-size" => large.1 = number("--large-size", &value("--large-size")?)?,
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    let mailbox = mailbox.with_context(|| format!("fixtures needs --mailbox\n{USAGE}"))?;
    if !mailbox.contains('@') {
        bail!("--mailbox `{mailbox}` is not an SMTP address");
    }
    let out = out.with_context(|| format!("fixtures needs --out\n{USAGE}"))?;
    if spec.events_years > 50 {
        bail!("--events-years must be at most 50");
    }
    if large.1 > 1 << 30 {
        bail!("--large-size must be at most 1 GiB");
    }
    spec.mailbox = mailbox;
    Ok(Command::Fixtures { spec, large, out })
}

fn parse_args(argv: Vec<String>) -> anyhow::Result<Args> {
    let mut args = argv.into_iter();
    let mut parsed = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        tls: false,
        ca_out: None,
        seed: None,
        entra: EntraSwitchChange::default(),
        auto_approve: None,
        mailboxes: Vec::new(),
        throttle_scale: None,
        faults: FaultPlan::default(),
        ews: EwsSwitchChange::default(),
        generic_oidc: false,
        oidc_id_token_fault: None,
        mail_ca_out: None,
        mail: MailSwitchChange::default(),
    };
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                parsed.listen = v
                    .parse()
                    .with_context(|| format!("`{v}` is not IP:PORT\n{USAGE}"))?;
            }
            "--tls" => parsed.tls = true,
            "--ca-out" => parsed.ca_out = Some(PathBuf::from(value("--ca-out")?)),
            "--seed" => parsed.seed = Some(PathBuf::from(value("--seed")?)),
            "--token-lifetime" => {
                let v = value("--token-lifetime")?;
                let secs: u64 = v.parse().with_context(|| {
                    format!("--token-lifetime `{v}` is not a number of seconds\n{USAGE}")
                })?;
                if secs == 0 {
                    bail!("--token-lifetime must be at least 1 second\n{USAGE}");
                }
                parsed.entra.token_lifetime = Some(secs);
            }
            "--refresh-in" => {
                let v = value("--refresh-in")?;
                let secs: u64 = number("--refresh-in", &v)?;
                if secs == 0 {
                    bail!("--refresh-in must be at least 1 second\n{USAGE}");
                }
                parsed.entra.refresh_in = Some(secs);
            }
            "--strict-rotation" => parsed.entra.strict_rotation = Some(true),
            "--revoke-consent" => parsed
                .entra
                .consent_revoked
                .get_or_insert_default()
                .push(value("--revoke-consent")?),
            "--require-mfa" => parsed
                .entra
                .mfa_required
                .get_or_insert_default()
                .push(value("--require-mfa")?),
            "--public-client-flows" => {
                let v = value("--public-client-flows")?;
                let (id, enabled) = match v.rsplit_once('=') {
                    Some((id, "on")) => (id, true),
                    Some((id, "off")) => (id, false),
                    _ => bail!("--public-client-flows `{v}` is not CLIENT_ID=on|off\n{USAGE}"),
                };
                parsed
                    .entra
                    .public_client_flows
                    .insert(id.to_string(), enabled);
            }
            "--auto-approve" => parsed.auto_approve = Some(value("--auto-approve")?),
            "--mailboxes" => parsed.mailboxes.push(PathBuf::from(value("--mailboxes")?)),
            "--throttle-scale" => {
                let v = value("--throttle-scale")?;
                let scale: u32 = number("--throttle-scale", &v)?;
                if scale == 0 {
                    bail!("--throttle-scale must be at least 1\n{USAGE}");
                }
                parsed.throttle_scale = Some(scale);
            }
            "--fault" => {
                let v = value("--fault")?;
                let rule = FaultRule::parse_flag(&v).with_context(|| format!("--fault `{v}`"))?;
                parsed.faults.rules.push(rule);
            }
            "--chaos" => {
                let v = value("--chaos")?;
                let rule =
                    FaultRule::parse_chaos_flag(&v).with_context(|| format!("--chaos `{v}`"))?;
                parsed.faults.rules.push(rule);
            }
            "--faults" => {
                let path = PathBuf::from(value("--faults")?);
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read the fault file {}", path.display()))?;
                let plan = FaultPlan::from_json(&text)
                    .with_context(|| format!("the fault file {} is unusable", path.display()))?;
                parsed.faults.rules.extend(plan.rules);
            }
            "--ews-version" => {
                let v = value("--ews-version")?;
                parsed.ews.version = Some(
                    ServerVersion::parse(&v)
                        .map_err(|e| anyhow::anyhow!("--ews-version: {e}\n{USAGE}"))?,
                );
            }
            "--ews-throttle" => {
                let v = value("--ews-throttle")?;
                let policy = if v == "default" {
                    EwsThrottlePolicy::exchange_default()
                } else {
                    let parts: Vec<&str> = v.split(',').map(str::trim).collect();
                    let [c, b, w] = parts[..] else {
                        bail!(
                            "--ews-throttle `{v}` is neither `default` nor CONCURRENCY,BUDGET,WINDOW_SECS\n{USAGE}"
                        );
                    };
                    EwsThrottlePolicy {
                        max_concurrency: number("--ews-throttle", c)?,
                        budget: number("--ews-throttle", b)?,
                        window_secs: number("--ews-throttle", w)?,
                    }
                };
                parsed.ews.throttling = Some(Some(policy));
            }
            "--ews-block-apps" => parsed.ews.block_apps = Some(true),
            "--ews-busy-in-response" => parsed.ews.busy_in_response = Some(true),
            "--ews-no-streaming" => parsed.ews.streaming = Some(false),
            "--ews-drop-notifications" => parsed.ews.drop_notifications = Some(true),
            "--ews-allow-app" => parsed
                .ews
                .allowed_apps
                .get_or_insert_default()
                .push(value("--ews-allow-app")?),
            "--ews-auth" => {
                let v = value("--ews-auth")?;
                let (mut basic, mut ntlm, mut bearer) = (false, false, false);
                for scheme in v.split(',').map(str::trim) {
                    match scheme.to_ascii_lowercase().as_str() {
                        "basic" => basic = true,
                        "ntlm" => ntlm = true,
                        "bearer" => bearer = true,
                        other => {
                            bail!("--ews-auth: `{other}` is none of basic, ntlm, bearer\n{USAGE}")
                        }
                    }
                }
                parsed.ews.basic = Some(basic);
                parsed.ews.ntlm = Some(ntlm);
                parsed.ews.bearer = Some(bearer);
            }
            "--autodiscover-redirect-addr" => {
                parsed.ews.autodiscover_redirect = Some(Some(AutodiscoverRedirect::Address {
                    address: value("--autodiscover-redirect-addr")?,
                }));
            }
            "--autodiscover-redirect-url" => {
                parsed.ews.autodiscover_redirect = Some(Some(AutodiscoverRedirect::Url {
                    url: value("--autodiscover-redirect-url")?,
                }));
            }
            "--generic-oidc" => parsed.generic_oidc = true,
            "--oidc-id-token-fault" => {
                let v = value("--oidc-id-token-fault")?;
                if IdTokenFault::parse(&v).is_none() {
                    bail!("--oidc-id-token-fault `{v}` is not a known fault\n{USAGE}");
                }
                parsed.oidc_id_token_fault = Some(v);
            }
            "--mail-ca-out" => parsed.mail_ca_out = Some(PathBuf::from(value("--mail-ca-out")?)),
            "--imap-disabled" => {
                parsed
                    .mail
                    .imap_enabled
                    .insert(value("--imap-disabled")?, false);
            }
            "--pop-disabled" => {
                parsed
                    .mail
                    .pop_enabled
                    .insert(value("--pop-disabled")?, false);
            }
            "--smtp-auth-disabled" => {
                parsed
                    .mail
                    .smtp_client_auth
                    .insert(value("--smtp-auth-disabled")?, false);
            }
            "--smtp-auth-disabled-tenant" => parsed.mail.smtp_client_auth_tenant = Some(false),
            "--security-defaults" => parsed.mail.security_defaults = Some(true),
            "--sp-unregistered" => {
                let id = value("--sp-unregistered")?;
                parsed
                    .mail
                    .service_principals
                    .entry(id)
                    .or_insert(ServicePrincipalSwitch {
                        registered: None,
                        full_access: None,
                    })
                    .registered = Some(false);
            }
            "--sp-full-access" => {
                let v = value("--sp-full-access")?;
                let Some((id, mailboxes)) = v.split_once('=') else {
                    bail!("--sp-full-access `{v}` is not CLIENT_ID=MAILBOX[,MAILBOX...]\n{USAGE}");
                };
                let mailboxes: Vec<String> = mailboxes
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect();
                parsed
                    .mail
                    .service_principals
                    .entry(id.to_string())
                    .or_insert(ServicePrincipalSwitch {
                        registered: None,
                        full_access: None,
                    })
                    .full_access = Some(mailboxes);
            }
            "--imap-connection-limit" => {
                let v = value("--imap-connection-limit")?;
                parsed.mail.imap_connection_limit = Some(number("--imap-connection-limit", &v)?);
            }
            "--mail-idle-timeout" => {
                let v = value("--mail-idle-timeout")?;
                parsed.mail.idle_timeout_secs = Some(number("--mail-idle-timeout", &v)?);
            }
            "--mail-max-size" => {
                let v = value("--mail-max-size")?;
                parsed.mail.max_message_size = Some(number("--mail-max-size", &v)?);
            }
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    // Checked now, so a bad value exits 2 before anything starts.
    parsed
        .ews
        .apply(&Default::default())
        .map_err(|e| anyhow::anyhow!("{e}\n{USAGE}"))?;
    if parsed.oidc_id_token_fault.is_some() && !parsed.generic_oidc {
        bail!("--oidc-id-token-fault only makes sense with --generic-oidc\n{USAGE}");
    }
    if parsed.ca_out.is_some() && !parsed.tls {
        bail!("--ca-out only makes sense with --tls\n{USAGE}");
    }
    Ok(parsed)
}

/// Reads every `--mailboxes` file and checks that its mailboxes exist in the seed.
fn load_mailboxes(args: &Args, seed: &Seed) -> anyhow::Result<Vec<MailboxContent>> {
    let mut all = Vec::new();
    for path in &args.mailboxes {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the mailbox file {}", path.display()))?;
        let contents = MailboxContent::list_from_json(&text)
            .map_err(|e| anyhow::anyhow!("the mailbox file {} is unusable: {e}", path.display()))?;
        for content in contents {
            let known = seed.tenants.iter().any(|t| {
                t.users
                    .iter()
                    .any(|u| u.upn.eq_ignore_ascii_case(&content.mailbox))
                    || t.shared_mailboxes
                        .iter()
                        .any(|s| s.address.eq_ignore_ascii_case(&content.mailbox))
            });
            if !known {
                bail!(
                    "the mailbox file {} has content for `{}`, which is neither a seeded user nor a shared mailbox",
                    path.display(),
                    content.mailbox
                );
            }
            content.validate().with_context(|| {
                format!(
                    "the mailbox file {} is unusable ({})",
                    path.display(),
                    content.mailbox
                )
            })?;
            all.push(content);
        }
    }
    Ok(all)
}

fn load_seed(args: &Args) -> anyhow::Result<Seed> {
    let seed = match &args.seed {
        None => Seed::contoso(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the seed file {}", path.display()))?;
            Seed::from_json(&text)
                .with_context(|| format!("the seed file {} is unusable", path.display()))?
        }
    };
    if let Some(upn) = &args.auto_approve {
        let known = seed
            .tenants
            .iter()
            .flat_map(|t| &t.users)
            .any(|u| u.upn.eq_ignore_ascii_case(upn));
        if !known {
            bail!("--auto-approve `{upn}`: no seeded tenant has this user");
        }
    }
    let apps: Vec<&str> = seed
        .tenants
        .iter()
        .flat_map(|t| &t.apps)
        .map(|a| a.client_id.as_str())
        .collect();
    let client_ids = args
        .entra
        .consent_revoked
        .iter()
        .flatten()
        .map(|id| ("--revoke-consent", id))
        .chain(
            args.entra
                .public_client_flows
                .keys()
                .map(|id| ("--public-client-flows", id)),
        );
    for (flag, id) in client_ids {
        if !apps.iter().any(|a| a.eq_ignore_ascii_case(id)) {
            bail!("{flag} `{id}`: no seeded tenant has this app");
        }
    }
    for upn in args.entra.mfa_required.iter().flatten() {
        let known = seed
            .tenants
            .iter()
            .flat_map(|t| &t.users)
            .any(|u| u.upn.eq_ignore_ascii_case(upn));
        if !known {
            bail!("--require-mfa `{upn}`: no seeded tenant has this user");
        }
    }
    Ok(seed)
}

fn ready_line(
    mock: &MockMicrosoft,
    seed: &Seed,
    ca_cert: Option<&PathBuf>,
    mail_ca_cert: &std::path::Path,
) -> Value {
    let base = mock.base_url();
    let first = seed
        .tenants
        .first()
        .map(|t| t.id.clone())
        .unwrap_or_default();
    let tenants: Vec<Value> = seed
        .tenants
        .iter()
        .map(|t| {
            json!({
                "id": t.id,
                "domain": t.domain,
                "users": t.users.iter().map(|u| json!({"upn": u.upn, "password": u.password})).collect::<Vec<_>>(),
                "apps": t.apps.iter().map(|a| json!({
                    "client_id": a.client_id,
                    "name": a.name,
                    "public_client": a.public_client,
                    "secret": a.secrets.first().map(|s| s.value.clone()),
                })).collect::<Vec<_>>(),
                "shared_mailboxes": t.shared_mailboxes.iter().map(|s| json!({
                    "address": s.address,
                    "display_name": s.display_name,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let provider = mock.oidc();
    let oidc = provider.is_enabled().then(|| {
        json!({
            "issuer": provider.issuer(),
            "discovery_url": provider.discovery_url(),
            "clients": provider.clients(),
            "resource": exgate_testkit::oidc::RESOURCE,
        })
    });
    json!({
        "ready": true,
        "base_url": base,
        "graph_url": mock.graph_url(),
        "ews_url": mock.ews_url(),
        "exchange_admin_url": mock.exchange_admin_url(),
        "autodiscover_url": mock.autodiscover_url(),
        "entra": {
            "authority": mock.authority(&first),
            "discovery_url": mock.discovery_url(&first),
        },
        "ca_cert": ca_cert.map(|p| p.display().to_string()),
        "imap_url": mock.imap_url(),
        "imap_starttls_url": mock.imap_starttls_url(),
        "pop_url": mock.pop_url(),
        "pop_stls_url": mock.pop_stls_url(),
        "smtp_url": mock.smtp_url(),
        "smtps_url": mock.smtps_url(),
        "mail_ca_cert": mail_ca_cert.display().to_string(),
        "tenants": tenants,
        "oidc": oidc,
    })
}

async fn run(args: Args, seed: Seed, mailboxes: Vec<MailboxContent>) -> anyhow::Result<()> {
    let health = Router::new().route("/healthz", get(|| async { "ok" }));
    let mock = MockMicrosoft::bind(args.listen, seed.clone(), args.tls, health)
        .await
        .with_context(|| format!("cannot serve on {}", args.listen))?;
    for content in mailboxes {
        let mailbox = content.mailbox.clone();
        mock.load_mailbox(content)
            .with_context(|| format!("cannot load the content of {mailbox}"))?;
    }
    if let Some(scale) = args.throttle_scale {
        mock.set_graph_throttling(Some(ThrottlePolicy::scaled(scale)));
    }
    mock.add_faults(args.faults.clone())
        .context("cannot install the fault rules")?;
    mock.change_entra_switches(&args.entra)
        .map_err(anyhow::Error::msg)
        .context("cannot set Entra's switches")?;
    mock.change_ews_switches(&args.ews)
        .map_err(anyhow::Error::msg)
        .context("cannot set EWS's switches")?;
    if let Some(upn) = &args.auto_approve {
        mock.set_auto_approve(Some(upn));
    }
    if args.generic_oidc {
        mock.enable_generic_oidc();
        mock.oidc()
            .change_switches(&OidcSwitchChange {
                auto_approve: args.auto_approve.clone(),
                id_token_fault: args.oidc_id_token_fault.clone(),
                ..OidcSwitchChange::default()
            })
            .map_err(anyhow::Error::msg)
            .context("cannot set the generic OIDC provider's switches")?;
    }
    mock.change_mail_switches(&args.mail)
        .map_err(anyhow::Error::msg)
        .context("cannot set the mail servers' switches")?;
    // The temporary directory lives as long as the process.
    let temp_dir = tempfile::Builder::new()
        .prefix("exgate-mock-")
        .tempdir()
        .context("cannot create a temporary directory for the CA certificates")?;
    let ca_cert = match mock.ca_pem() {
        None => None,
        Some(pem) => {
            let path = args
                .ca_out
                .clone()
                .unwrap_or_else(|| temp_dir.path().join("ca.pem"));
            write_private(&path, &pem).with_context(|| {
                format!("cannot write the CA certificate to {}", path.display())
            })?;
            Some(path)
        }
    };
    // The mail servers chain to the same CA when serving HTTPS.
    let mail_ca_cert = match (&args.mail_ca_out, &ca_cert) {
        (None, Some(path)) => path.clone(),
        (out, _) => {
            let path = out
                .clone()
                .unwrap_or_else(|| temp_dir.path().join("mail-ca.pem"));
            write_private(&path, &mock.mail_ca_pem()).with_context(|| {
                format!("cannot write the mail CA certificate to {}", path.display())
            })?;
            path
        }
    };
    // Listen for signals before announcing readiness: a caller may stop us right away.
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    println!(
        "{}",
        ready_line(&mock, &seed, ca_cert.as_ref(), &mail_ca_cert)
    );
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    mock.shutdown().await;
    Ok(())
}

/// Writes `text` to a file only its owner may read or write (0600).
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

fn write_fixtures(spec: FixtureSpec, large: (usize, u64), out: &PathBuf) -> anyhow::Result<()> {
    let mut content = generate(spec);
    add_large_attachments(&mut content, large.0, large.1);
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    serde_json::to_writer(&mut writer, &content)
        .with_context(|| format!("cannot write {}", out.display()))?;
    use std::io::Write as _;
    writer
        .flush()
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

fn main() -> ExitCode {
    // A problem with the command line, the seed or a mailbox file: exit code 2, before
    // anything starts.
    let command = match parse_command(std::env::args().skip(1).collect()) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("exgate-mock: {e:#}");
            return ExitCode::from(2);
        }
    };
    let args = match command {
        Command::Fixtures { spec, large, out } => {
            return match write_fixtures(spec, large, &out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("exgate-mock: {e:#}");
                    ExitCode::from(1)
                }
            };
        }
        Command::Serve(args) => *args,
    };
    let prepared = load_seed(&args)
        .and_then(|seed| load_mailboxes(&args, &seed).map(|mailboxes| (seed, mailboxes)));
    let (seed, mailboxes) = match prepared {
        Ok(ready) => ready,
        Err(e) => {
            eprintln!("exgate-mock: {e:#}");
            return ExitCode::from(2);
        }
    };
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(args, seed, mailboxes)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("exgate-mock: {e:#}");
            ExitCode::from(1)
        }
    }
}
