//! How `exgate` behaves at a terminal and in pipelines: closed pipes, help texts, hints that run
//! as printed, headless sign-in, debug logging.

use crate::util::Env;

/// The delegated connection `contoso` with Adele signed in.
async fn adele(env: &Env) {
    env.add_public("contoso", "authorization-code").await;
    env.mock
        .set_auto_approve(Some(exgate_testkit::entra::seed::ADELE));
    env.browser_login(&["-c", "contoso"]).await.ok();
}

fn quiet_success(run: &crate::util::Run) {
    assert_eq!(run.out.status.code(), Some(0), "{}", run.dump());
    assert!(
        !run.stderr().contains("Broken pipe") && !run.stderr().contains("panicked"),
        "{}",
        run.dump()
    );
}

#[tokio::test]
async fn a_closed_pipe_ends_quietly_with_exit_0() {
    let env = Env::new().await;
    // Completion scripts used to panic (exit 101) when stdout was closed.
    for shell in ["bash", "zsh", "fish"] {
        let run = env.run_with_closed_stdout(&["completions", shell]).await;
        quiet_success(&run);
        assert!(run.stderr().trim().is_empty(), "{}", run.dump());
    }
    // Commands that print tables and JSON used to say "exgate: Broken pipe" and exit 1.
    adele(&env).await;
    for args in [
        &["mail", "list", "-c", "contoso"][..],
        &["mail", "list", "-c", "contoso", "--json"][..],
        &["connection", "list"][..],
        &["accounts", "list", "-c", "contoso", "--json"][..],
        &["token", "-c", "contoso"][..],
    ] {
        let run = env.run_with_closed_stdout(args).await;
        quiet_success(&run);
        assert!(!run.stderr().contains("exgate:"), "{}", run.dump());
    }
}

/// The subcommands a `--help` lists under "Commands:", with their one-line descriptions.
fn commands(help: &str) -> Vec<(String, String)> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| {
            let l = l.trim();
            let (name, about) = l.split_once(' ').unwrap_or((l, ""));
            (name != "help").then(|| (name.to_owned(), about.trim().to_owned()))
        })
        .collect()
}

#[tokio::test]
async fn every_subcommand_has_its_own_about_line() {
    let env = Env::new().await;
    // Doc comments of flattened argument structs once became the about-text of every subcommand
    // without one of its own.
    let leaked = [
        "Which mailbox",
        "Which connection and account",
        "Non-secret settings",
        "Where secrets come from",
    ];
    for group in ["mail", "calendar", "contacts", "connection", "accounts"] {
        let help = env.run(&[group, "--help"]).await.ok().stdout();
        let subs = commands(&help);
        assert!(subs.len() >= 3, "{group}: {help}");
        for (i, (name, about)) in subs.iter().enumerate() {
            assert!(
                !about.is_empty(),
                "{group} {name} has no description:\n{help}"
            );
            assert!(
                !leaked.iter().any(|l| about.contains(l)),
                "{group} {name}: {about}"
            );
            assert!(
                subs[..i].iter().all(|(_, other)| other != about),
                "{group}: two subcommands described as {about:?}:\n{help}"
            );
            let own = env.run(&[group, name, "--help"]).await.ok().stdout();
            let first = own.lines().next().unwrap_or_default();
            assert_eq!(first, about, "{group} {name} --help:\n{own}");
            assert!(
                !leaked
                    .iter()
                    .any(|l| own.lines().take(2).any(|x| x.contains(l))),
                "{group} {name} --help:\n{own}"
            );
        }
    }
}

/// The command between the backticks of `hint: … \`exgate …\``, as words (no quoting needed
/// for the names these tests use).
fn hinted_command(stderr: &str, starting: &str) -> Vec<String> {
    let hint = stderr
        .lines()
        .find(|l| l.starts_with("hint: "))
        .unwrap_or_else(|| panic!("no hint in {stderr}"));
    let start = hint
        .find(&format!("`{starting}"))
        .unwrap_or_else(|| panic!("no `{starting}…` in {hint}"));
    let rest = &hint[start + 1..];
    let command = &rest[..rest.find('`').unwrap()];
    command.split_whitespace().map(str::to_owned).collect()
}

#[tokio::test]
async fn hints_repeat_the_connection_and_account_and_run_as_printed() {
    use exgate_testkit::entra::seed;
    let env = Env::new().await;
    // Two connections: a hint without -c would not run.
    env.add_public("contoso", "authorization-code").await;
    env.add_public("other", "authorization-code").await;
    env.mock.set_auto_approve(Some(seed::ADELE));
    // Tokens this short-lived are never reused: every `exgate token` refreshes.
    env.mock.set_token_lifetime(5);
    env.browser_login(&["-c", "contoso"]).await.ok();

    // An account that must sign in again: the hint names its connection and account…
    env.mock.revoke_refresh_tokens(seed::ADELE);
    let run = env
        .run(&["token", "-c", "contoso", "-a", seed::ADELE])
        .await
        .fails(3, &[]);
    let login = hinted_command(&run.stderr(), "exgate login");
    assert_eq!(
        login,
        ["exgate", "login", "-c", "contoso", "-a", seed::ADELE],
        "{}",
        run.dump()
    );
    // …and runs as printed.
    let args: Vec<&str> = login[2..].iter().map(String::as_str).collect();
    env.browser_login(&args).await.ok();
    env.run(&["token", "-c", "contoso", "-a", seed::ADELE])
        .await
        .ok();

    // No account yet on `other`: the hint says which connection to sign in on.
    let run = env.run(&["token", "-c", "other"]).await.fails(3, &[]);
    assert_eq!(
        hinted_command(&run.stderr(), "exgate login"),
        ["exgate", "login", "-c", "other"],
        "{}",
        run.dump()
    );
    let listed = env
        .run(&["accounts", "list", "-c", "other"])
        .await
        .ok()
        .stdout();
    assert!(listed.contains("`exgate login -c other`"), "{listed}");

    // A fix that edits the connection names it instead of a placeholder.
    env.add_app_only("wrong", seed::WEB_APP_SECRET).await;
    let run = env.run(&["token", "-c", "wrong"]).await.fails(1, &[]);
    assert_eq!(
        hinted_command(&run.stderr(), "exgate connection edit")[..4],
        ["exgate", "connection", "edit", "wrong"],
        "{}",
        run.dump()
    );
    assert!(!run.stderr().contains("NAME"), "{}", run.dump());
}

#[tokio::test]
async fn the_password_flow_warning_is_printed_once() {
    use exgate_testkit::entra::seed;
    let env = Env::new().await;
    env.add_public("contoso", "password").await;
    let run = env
        .run_with_stdin(
            &[
                "login",
                "--password",
                "--username",
                seed::ADELE,
                "--password-file",
                "-",
            ],
            seed::ADELE_PASSWORD,
        )
        .await
        .ok();
    assert_eq!(
        run.stderr().matches("the password flow is legacy").count(),
        1,
        "{}",
        run.dump()
    );
}

/// `exgate login` where no browser opens: it says at once how else to sign in (with the same
/// -c/-a), and still finishes when the redirect comes from a browser elsewhere.
async fn headless_login(env: &Env, vars: &[(&str, Option<&str>)], reason: &str) {
    use exgate_testkit::entra::seed;
    let mut login = env.spawn_with_env(&["login", "-c", "contoso", "-a", seed::ADELE], vars);
    let url = login
        .line_with("/oauth2/v2.0/authorize?")
        .await
        .trim()
        .to_owned();
    login.line_with(reason).await;
    let manual = login.line_with("--manual").await;
    assert!(
        manual.contains(&format!(
            "exgate login -c contoso -a {} --manual",
            seed::ADELE
        )),
        "{manual}"
    );
    let device = login.line_with("--device-code").await;
    assert!(
        device.contains(&format!(
            "exgate login -c contoso -a {} --device-code",
            seed::ADELE
        )),
        "{device}"
    );
    login.line_with("Still waiting").await;
    // A browser on another machine finishes the sign-in.
    let redirect = env.browser(&url).await;
    let page = reqwest::get(&redirect).await.unwrap().text().await.unwrap();
    assert!(page.contains("Signed in"), "{page}");
    let run = login.finish().await.ok();
    assert!(run.stdout().contains("signed in as"), "{}", run.dump());
}

#[tokio::test]
async fn a_headless_login_says_at_once_how_to_continue() {
    use exgate_testkit::entra::seed;
    let env = Env::new().await;
    env.add_public("contoso", "authorization-code").await;
    env.mock.set_auto_approve(Some(seed::ADELE));
    // No graphical session and no BROWSER (the test environment has no DISPLAY).
    headless_login(&env, &[("BROWSER", None)], "no browser could be opened").await;
    // A browser opener that fails.
    headless_login(
        &env,
        &[("BROWSER", Some("false"))],
        "the browser opener failed",
    )
    .await;
}

#[tokio::test]
async fn a_declared_connection_named_like_a_stored_one_is_reported() {
    use exgate_testkit::entra::seed;
    let env = Env::new().await;
    // Stored first, with an account…
    env.add_public("prod", "authorization-code").await;
    env.mock.set_auto_approve(Some(seed::ADELE));
    env.browser_login(&["-c", "prod"]).await.ok();
    // …then declared in the configuration file under the same name.
    let config = env.dir.path().join("config/exgate/exgate.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "[connections.prod]\ntenant = \"{}\"\nauth = \"oauth2-delegated\"\nclient_id = \"{}\"\n",
        seed::TENANT_DOMAIN,
        seed::PUBLIC_APP
    ));
    let config = env.write("config/exgate/exgate.toml", &text);
    let warning = format!(
        "warning: connection `prod` is declared in {} and also stored",
        config.display()
    );

    // Listing shows both and warns; show warns too.
    let listed = env.run(&["connection", "list"]).await.ok();
    assert!(listed.stderr().contains(&warning), "{}", listed.dump());
    assert_eq!(
        listed.stdout().matches("prod").count(),
        2,
        "{}",
        listed.dump()
    );
    let shown = env.run(&["connection", "show", "prod"]).await.ok();
    assert!(shown.stderr().contains(&warning), "{}", shown.dump());

    // Using the name is an error that says what to do; nothing is guessed.
    env.run(&["token", "-c", "prod"]).await.fails(
        1,
        &[
            "exgate will not guess which one is meant",
            "`exgate connection remove prod`",
        ],
    );
    env.run(&["accounts", "list"])
        .await
        .fails(1, &["also stored"]);

    // Removing the stored one ends the clash; the declared one is then used.
    env.run(&["connection", "remove", "prod"]).await.ok();
    let listed = env.run(&["connection", "list"]).await.ok();
    assert!(!listed.stderr().contains("warning"), "{}", listed.dump());
    assert_eq!(
        listed.stdout().matches("prod").count(),
        1,
        "{}",
        listed.dump()
    );
}

#[tokio::test]
async fn a_private_key_that_does_not_match_its_certificate_is_refused_at_add() {
    use exgate_testkit::entra::seed;
    let env = Env::new().await;
    let cert = env.write("app.crt", exgate_testkit::fixtures::APP_CERT_PEM);
    let other = env.write(
        "other.key",
        include_str!("../../../core/tests/fixtures/other.key"),
    );
    let run = env
        .run(&[
            "connection",
            "add",
            "daemon",
            "--tenant",
            seed::TENANT_DOMAIN,
            "--auth",
            "oauth2-app-only",
            "--client-id",
            seed::DAEMON_APP,
            "--certificate",
            cert.to_str().unwrap(),
            "--private-key",
            other.to_str().unwrap(),
        ])
        .await
        .fails(2, &["the private key does not belong to the certificate"]);
    assert!(!run.stderr().contains("PRIVATE KEY"), "{}", run.dump());
    let listed = env.run(&["connection", "list"]).await.ok().stdout();
    assert!(listed.contains("no connections yet"), "{listed}");
    assert_eq!(env.mock.token_requests(), 0, "nothing reached Entra");
}

#[tokio::test]
async fn exgate_token_past_the_refresh_point_prints_a_new_token() {
    use exgate_testkit::entra::{Fault, seed};
    let env = Env::new().await;
    env.add_public("contoso", "authorization-code").await;
    env.mock.set_auto_approve(Some(seed::ADELE));
    // Every token is due for refresh as soon as it is issued (Entra's `refresh_in`), and lives
    // an hour.
    env.mock.set_refresh_in(Some(0));
    let started = time::OffsetDateTime::now_utc().unix_timestamp();
    env.browser_login(&["-c", "contoso"]).await.ok();
    // Tokens issued from now on carry an `iat` at least ten minutes after the sign-in's.
    env.mock.advance_clock(std::time::Duration::from_secs(600));

    let requests = env.mock.token_requests();
    let printed = env.run(&["token", "-c", "contoso"]).await.ok().stdout();
    let iat = crate::util::jwt_claims(&printed)["iat"].as_i64().unwrap();
    assert!(
        iat >= started + 600,
        "a token issued by a refresh in this process, not the stored one (iat {iat}, sign-in at {started})"
    );
    assert_eq!(env.mock.token_requests(), requests + 1);

    // The identity provider fails: the still-valid token is printed, with a warning.
    env.mock
        .fail_token_requests(Fault::ServerError { status: 503 }, 1);
    let run = env.run(&["token", "-c", "contoso"]).await.ok();
    assert_eq!(run.stdout(), printed, "{}", run.dump());
    assert!(
        run.stderr()
            .contains("token refresh failed; using the current token"),
        "{}",
        run.dump()
    );
    assert_eq!(env.mock.token_requests(), requests + 2);
}

#[tokio::test]
async fn login_completes_with_debug_and_trace_logging() {
    use exgate_testkit::entra::seed;
    let env = Env::new().await;
    env.add_public("contoso", "device-code").await;
    env.mock.set_device_code_interval(0);
    // The login once held the stderr lock across awaits while a SQLite worker thread blocked
    // writing its debug line: a deadlock exactly when debugging was turned on.
    for (args, vars) in [
        (&["login", "--device-code", "-vvv"][..], &[][..]),
        (
            &["login", "--device-code"][..],
            &[("EXGATE_LOG", Some("debug"))][..],
        ),
    ] {
        let mut running = env.spawn_with_env(args, vars);
        let line = running.line_with("enter the code").await;
        let code = line
            .split("enter the code ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches('.')
            .to_owned();
        env.mock.approve_device_code(&code, seed::ADELE).unwrap();
        let run = running.finish().await.ok();
        assert!(
            run.stdout()
                .starts_with(&format!("signed in as {}", seed::ADELE)),
            "{}",
            run.dump()
        );
        assert!(run.stderr().contains("DEBUG"), "{}", run.dump());
    }
}
