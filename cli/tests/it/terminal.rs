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
