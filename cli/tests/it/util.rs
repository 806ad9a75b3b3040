//! Running the real `exgate` binary in an isolated home against the mock Microsoft cloud.
//! On failure each check prints the command, its exit code, stdout and stderr.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use exgate_testkit::MockMicrosoft;
use exgate_testkit::entra::{Seed, seed};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// How long a child may take to print the line a test waits for.
pub(crate) const WAIT: Duration = Duration::from_secs(60);

pub(crate) struct Env {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) mock: MockMicrosoft,
}

pub(crate) struct Run {
    pub(crate) cmd: String,
    pub(crate) out: Output,
}

impl Run {
    pub(crate) fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    pub(crate) fn dump(&self) -> String {
        format!(
            "command: {}\nexit: {:?}\n--- stdout\n{}--- stderr\n{}",
            self.cmd,
            self.out.status.code(),
            self.stdout(),
            self.stderr()
        )
    }
    pub(crate) fn ok(self) -> Self {
        assert_eq!(self.out.status.code(), Some(0), "{}", self.dump());
        self
    }
    pub(crate) fn fails(self, code: i32, needles: &[&str]) -> Self {
        assert_eq!(self.out.status.code(), Some(code), "{}", self.dump());
        for needle in needles {
            assert!(
                self.stderr().contains(needle),
                "missing {needle:?}\n{}",
                self.dump()
            );
        }
        self
    }
}

/// A child whose stderr is read line by line.
pub(crate) struct Running {
    pub(crate) child: Child,
    stderr: tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
    seen: Vec<String>,
    cmd: String,
}

impl Running {
    pub(crate) async fn line_with(&mut self, needle: &str) -> String {
        loop {
            let line = tokio::time::timeout(WAIT, self.stderr.next_line()).await;
            match line {
                Ok(Ok(Some(line))) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                other => panic!(
                    "{}: no line with {needle:?} ({other:?}); stderr so far: {:#?}",
                    self.cmd, self.seen
                ),
            }
        }
    }

    pub(crate) async fn finish(mut self) -> Run {
        let mut rest = Vec::new();
        while let Ok(Ok(Some(line))) = tokio::time::timeout(WAIT, self.stderr.next_line()).await {
            rest.push(line);
        }
        let mut out = tokio::time::timeout(WAIT, self.child.wait_with_output())
            .await
            .expect("child hangs")
            .unwrap();
        let mut stderr = self.seen.join("\n");
        stderr.push('\n');
        stderr.push_str(&rest.join("\n"));
        out.stderr = stderr.into_bytes();
        Run { cmd: self.cmd, out }
    }
}

impl Env {
    pub(crate) async fn new() -> Self {
        Self::with_seed(Seed::contoso()).await
    }

    pub(crate) async fn with_seed(seed: Seed) -> Self {
        let mock = MockMicrosoft::start(seed).await.unwrap();
        let env = Self {
            dir: tempfile::tempdir().unwrap(),
            mock,
        };
        env.write(
            "config/exgate/exgate.toml",
            &format!(
                "[endpoints]\nauthority_host = \"{}\"\ngraph_url = \"{}\"\news_url = \"{}\"\n",
                env.mock.base_url(),
                env.mock.graph_url(),
                env.mock.ews_url()
            ),
        );
        env
    }

    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_exgate"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env("EXGATE_SYSTEM_CONFIG", self.dir.path().join("system.toml"))
            // No browser opens during tests: `true` accepts the URL and does nothing.
            .env("BROWSER", "true")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    pub(crate) async fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        let mut child = self.command(args).spawn().unwrap();
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(stdin.as_bytes()).await.unwrap();
        drop(pipe);
        let out = tokio::time::timeout(WAIT, child.wait_with_output())
            .await
            .expect("exgate hangs")
            .unwrap();
        Run {
            cmd: format!("exgate {}", args.join(" ")),
            out,
        }
    }

    pub(crate) async fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, "").await
    }

    /// Runs `exgate` with a stdout pipe whose read end is closed before the child starts, as
    /// `exgate … | head -1` leaves it once `head` has its line: every write to stdout fails
    /// with EPIPE, deterministically.
    pub(crate) async fn run_with_closed_stdout(&self, args: &[&str]) -> Run {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::null()).stdout(writer);
        let child = cmd.spawn().unwrap();
        // The parent's copy of the write end went into `cmd`; drop it so nothing holds it.
        drop(cmd);
        let out = tokio::time::timeout(WAIT, child.wait_with_output())
            .await
            .expect("exgate hangs")
            .unwrap();
        Run {
            cmd: format!("exgate {} | (closed)", args.join(" ")),
            out,
        }
    }

    /// Runs `exgate` under GNU time; answers the run and the process's peak resident memory in
    /// bytes (the kernel's own figure for that process, whatever else runs).
    pub(crate) async fn run_measured(&self, args: &[&str]) -> (Run, u64) {
        let report = self.dir.path().join("peak-rss");
        let mut cmd = self.command(args);
        let std = cmd.as_std_mut();
        let program = std.get_program().to_owned();
        let mut timed = vec![
            "-f".into(),
            "%M".into(),
            "-o".into(),
            report.clone().into_os_string(),
            program,
        ];
        timed.extend(std.get_args().map(ToOwned::to_owned));
        let mut wrapped = Command::new("/usr/bin/time");
        wrapped.args(timed).env_clear();
        for (k, v) in std.get_envs() {
            if let Some(v) = v {
                wrapped.env(k, v);
            }
        }
        wrapped
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = tokio::time::timeout(WAIT, wrapped.output())
            .await
            .expect("exgate hangs")
            .expect("GNU time runs (`cargo xtask ci` installs Debian's `time`)");
        let kib: u64 = std::fs::read_to_string(&report)
            .unwrap()
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .expect("GNU time reports the peak memory");
        (
            Run {
                cmd: format!("exgate {}", args.join(" ")),
                out,
            },
            kib * 1024,
        )
    }

    pub(crate) fn spawn(&self, args: &[&str]) -> Running {
        self.spawn_with_env(args, &[])
    }

    /// Like [`Env::spawn`], with environment variables changed: `Some` sets, `None` removes.
    pub(crate) fn spawn_with_env(&self, args: &[&str], vars: &[(&str, Option<&str>)]) -> Running {
        let mut cmd = self.command(args);
        for (name, value) in vars {
            match value {
                Some(v) => cmd.env(name, v),
                None => cmd.env_remove(name),
            };
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        Running {
            child,
            stderr,
            seen: Vec::new(),
            cmd: format!("exgate {}", args.join(" ")),
        }
    }

    pub(crate) async fn add(&self, name: &str, extra: &[&str]) {
        let mut args = vec!["connection", "add", name, "--tenant", seed::TENANT_DOMAIN];
        args.extend_from_slice(extra);
        self.run(&args).await.ok();
    }

    pub(crate) async fn add_public(&self, name: &str, flow: &str) {
        self.add(
            name,
            &[
                "--auth",
                "oauth2-delegated",
                "--client-id",
                seed::PUBLIC_APP,
                "--flow",
                flow,
            ],
        )
        .await;
    }

    pub(crate) async fn add_app_only(&self, name: &str, secret: &str) {
        let file = self.write(&format!("{name}.secret"), secret);
        self.add(
            name,
            &[
                "--auth",
                "oauth2-app-only",
                "--client-id",
                seed::DAEMON_APP,
                "--client-secret-file",
                file.to_str().unwrap(),
            ],
        )
        .await;
    }

    /// Plays the browser: follows the authorize URL (auto-approved) to the redirect, and returns
    /// the redirect's address.
    pub(crate) async fn browser(&self, authorize_url: &str) -> String {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = http.get(authorize_url).send().await.unwrap();
        assert_eq!(
            resp.status(),
            302,
            "{}",
            resp.text().await.unwrap_or_default()
        );
        resp.headers()["location"].to_str().unwrap().to_owned()
    }

    /// `exgate login` in the browser, as Adele (or whoever auto-approve names).
    pub(crate) async fn browser_login(&self, args: &[&str]) -> Run {
        self.browser_login_at("/oauth2/v2.0/authorize?", args).await
    }

    /// `exgate login` in the browser at the authorization endpoint whose URL holds `endpoint`.
    pub(crate) async fn browser_login_at(&self, endpoint: &str, args: &[&str]) -> Run {
        let mut login = vec!["login"];
        login.extend_from_slice(args);
        let mut running = self.spawn(&login);
        let url = running.line_with(endpoint).await.trim().to_owned();
        let redirect = self.browser(&url).await;
        assert!(redirect.starts_with("http://localhost:"), "{redirect}");
        let page = reqwest::get(&redirect).await.unwrap().text().await.unwrap();
        assert!(
            page.contains("Signed in") || page.contains("Sign-in failed"),
            "{page}"
        );
        running.finish().await
    }
}

pub(crate) fn jwt_claims(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = jwt.trim().split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}
