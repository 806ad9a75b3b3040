//! What the gateway's process tests share (each test file uses part of it): the real
//! `exgate-server` on port 0 against the mock, and reading the mock's sign-in form.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use exgate_testkit::MockMicrosoft;

pub(crate) fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The hidden inputs of the mock's sign-in form.
pub(crate) fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" ")
        .skip(1)
        .filter_map(|tail| {
            let name = tail.split("name=\"").nth(1)?.split('"').next()?;
            let value = tail.split("value=\"").nth(1)?.split('"').next()?;
            Some((unescape(name), unescape(value)))
        })
        .collect()
}

/// The real `exgate-server` on port 0, reaching `mock` for Entra ID and Graph.
pub(crate) struct Gateway {
    pub(crate) child: Child,
    pub(crate) password: String,
    pub(crate) base: String,
    _home: tempfile::TempDir,
}

impl Gateway {
    pub(crate) fn start(mock: &MockMicrosoft) -> Self {
        Self::start_with(mock, "")
    }

    /// [`Gateway::start`] with more configuration (TOML appended to the file).
    pub(crate) fn start_with(mock: &MockMicrosoft, extra: &str) -> Self {
        let home = tempfile::tempdir().unwrap();
        let config = home.path().join("config/exgate/exgate.toml");
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        std::fs::write(
            &config,
            format!(
                "{extra}\n[endpoints]\nauthority_host = \"{}\"\ngraph_url = \"{}\"\n",
                mock.base_url(),
                mock.graph_url()
            ),
        )
        .unwrap();
        let (child, password, base) = Self::spawn(home.path());
        Self {
            child,
            password: password.expect("a first start prints the admin password"),
            base,
            _home: home,
        }
    }

    /// Kills the process (SIGKILL: nothing is finished or given back) and starts a new one on
    /// the same configuration and store.
    pub(crate) fn kill_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let (child, _, base) = Self::spawn(self._home.path());
        self.child = child;
        self.base = base;
    }

    /// Starts `exgate-server` in `home`: the process, the admin password it printed (first
    /// start only) and its base URL.
    fn spawn(home: &std::path::Path) -> (Child, Option<String>, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_exgate-server"))
            .args(["--listen", "127.0.0.1:0"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("EXGATE_SYSTEM_CONFIG", home.join("none.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok);
        let mut password = None;
        let base = loop {
            let line = lines.next().expect("the gateway printed where it listens");
            if line.contains("admin password") {
                password = Some(lines.next().unwrap().trim().to_owned());
            } else if line.contains("listening on") {
                break line.rsplit(' ').next().unwrap().to_owned();
            }
        };
        // The gateway goes on printing (the redirect URI); keep its stdout open and drained.
        std::thread::spawn(move || lines.for_each(drop));
        (child, password, base)
    }

    /// The process's peak resident memory so far, in bytes (the kernel's `VmHWM`).
    pub(crate) fn peak_memory(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib * 1024
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
