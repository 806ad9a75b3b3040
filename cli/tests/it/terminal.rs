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
