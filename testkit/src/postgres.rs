//! A throwaway PostgreSQL cluster for tests: [`TempPostgres::start`] runs Debian's (or the
//! `PATH`'s) PostgreSQL on an unused 127.0.0.1 port, with its data directory and Unix socket in a
//! temporary folder, and [`TempPostgres::create_database`] hands out a new empty database per
//! test. Dropping it stops the server and removes the folder; if the test process dies first,
//! the server gets `SIGQUIT` (its parent-death signal) and stops on its own.
//!
//! PostgreSQL refuses to run as root, so as root (CI) the cluster belongs to the `postgres` user
//! that Debian's package creates, or to a system user `exgate-pg` made for it.
//!
//! Without PostgreSQL this panics and says how to install it: a test that needs it fails, it is
//! never skipped.

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How to get PostgreSQL, for the panic message.
const HOW_TO_INSTALL: &str = "the PostgreSQL tests need PostgreSQL's server binaries (initdb, postgres, pg_isready, createdb): \
     on Debian or Ubuntu run `apt-get install postgresql` (or `cargo xtask ci`, which installs it), \
     elsewhere install PostgreSQL 13 or newer and set EXGATE_PG_BIN to the folder holding initdb";

/// The user tests connect as (trust authentication on loopback only).
pub const USER: &str = "exgate";

/// A running throwaway cluster.
pub struct TempPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    pid: u32,
    waiter: Option<JoinHandle<std::io::Result<ExitStatus>>>,
    databases: AtomicU32,
}

impl std::fmt::Debug for TempPostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TempPostgres")
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

/// Who runs the server: `None` when the tests do not run as root.
#[derive(Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
}

fn fail(message: impl std::fmt::Display) -> ! {
    panic!("TempPostgres: {message}")
}

/// The folder with initdb and postgres: `EXGATE_PG_BIN`, the newest of Debian's
/// `/usr/lib/postgresql/*/bin`, or the `PATH`.
fn find_bin() -> PathBuf {
    let has = |dir: &Path| {
        ["initdb", "postgres", "pg_isready", "createdb"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Some(dir) = std::env::var_os("EXGATE_PG_BIN").map(PathBuf::from) {
        if has(&dir) {
            return dir;
        }
        fail(format!(
            "EXGATE_PG_BIN={} holds no initdb/postgres/pg_isready/createdb; {HOW_TO_INSTALL}",
            dir.display()
        ));
    }
    let mut debian: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, dir)| has(dir))
        .collect();
    debian.sort();
    if let Some((_, dir)) = debian.pop() {
        return dir;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|dir| has(dir))
        .unwrap_or_else(|| fail(HOW_TO_INSTALL))
}

/// The (uid, gid) of `name` in /etc/passwd.
fn passwd_entry(name: &str) -> Option<Owner> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        let _password = fields.next()?;
        Some(Owner {
            uid: fields.next()?.parse().ok()?,
            gid: fields.next()?.parse().ok()?,
        })
    })
}

/// As root: the unprivileged user to run PostgreSQL as (created if need be).
fn owner() -> Option<Owner> {
    // `/proc/self` belongs to the process's effective user.
    let root =
        fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    if !root {
        return None;
    }
    if let Some(o) = passwd_entry("postgres").or_else(|| passwd_entry("exgate-pg")) {
        return Some(o);
    }
    let made = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "exgate-pg",
        ])
        .status();
    // Another test process may have made it at the same time; either way it exists now.
    let _ = made;
    Some(passwd_entry("exgate-pg").unwrap_or_else(|| {
        fail("running as root, PostgreSQL needs an unprivileged user, and `useradd exgate-pg` failed")
    }))
}

fn chown_tree(path: &Path, owner: Option<Owner>) {
    let Some(o) = owner else { return };
    if let Err(e) = std::os::unix::fs::chown(path, Some(o.uid), Some(o.gid)) {
        fail(format!(
            "cannot hand {} to the PostgreSQL user: {e}",
            path.display()
        ));
    }
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| fail(format!("cannot run {what}: {e}; {HOW_TO_INSTALL}")));
    if !out.status.success() {
        fail(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
}

fn as_owner(cmd: &mut Command, owner: Option<Owner>) -> &mut Command {
    if let Some(o) = owner {
        cmd.uid(o.uid).gid(o.gid);
    }
    cmd
}

/// A data directory made by initdb once per machine, user and PostgreSQL build, copied for each
/// cluster (much faster than initdb each time).
fn template(bin: &Path, owner: Option<Owner>) -> PathBuf {
    let root = std::env::temp_dir().join("exgate-testkit-pg");
    if fs::create_dir_all(&root).is_err() {
        fail(format!("cannot create {}", root.display()));
    }
    let _ = fs::set_permissions(&root, fs::Permissions::from_mode(0o755));
    let tag: String = bin
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let uid = owner.map_or(u32::MAX, |o| o.uid);
    let done = root.join(format!("template-{tag}-{uid}"));
    if done.join("data/PG_VERSION").is_file() {
        return done;
    }
    let work = tempfile::Builder::new()
        .prefix("template-work-")
        .tempdir_in(&root)
        .unwrap_or_else(|e| fail(format!("cannot create a folder in {}: {e}", root.display())))
        .keep();
    chown_tree(&work, owner);
    run(
        as_owner(&mut Command::new(bin.join("initdb")), owner)
            .arg("-D")
            .arg(work.join("data"))
            .args([
                "-U",
                USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ]),
        "initdb",
    );
    // Another process may have finished first: keep theirs.
    if fs::rename(&work, &done).is_err() {
        let _ = fs::remove_dir_all(&work);
    }
    if !done.join("data/PG_VERSION").is_file() {
        fail(format!(
            "initdb left no data directory in {}",
            done.display()
        ));
    }
    done
}

/// Immediate shutdown of the server `pid` (SIGQUIT).
fn signal(pid: u32) {
    let _ = Command::new("kill")
        .args(["-QUIT", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| fail(format!("cannot find a free port on 127.0.0.1: {e}")))
}

impl TempPostgres {
    /// Starts a cluster. Panics, saying how to get PostgreSQL, if it is not installed.
    pub fn start() -> Self {
        let bin = find_bin();
        let owner = owner();
        let template = template(&bin, owner);
        let dir = tempfile::Builder::new()
            .prefix("exgate-pg-")
            .tempdir()
            .unwrap_or_else(|e| fail(format!("cannot create a temporary folder: {e}")));
        chown_tree(dir.path(), owner);
        let data = dir.path().join("data");
        // `cp -a` keeps the owner and the 0700 mode PostgreSQL insists on.
        run(
            Command::new("cp")
                .arg("-a")
                .arg(template.join("data"))
                .arg(&data),
            "copying the template data directory",
        );
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            match Self::launch(&bin, owner, dir.path(), port) {
                Ok((pid, waiter)) => {
                    return Self {
                        dir,
                        bin,
                        port,
                        pid,
                        waiter: Some(waiter),
                        databases: AtomicU32::new(0),
                    };
                }
                Err(log) => last_log = log,
            }
        }
        fail(format!("PostgreSQL did not start; its log:\n{last_log}"))
    }

    /// Runs `postgres` on `port` and waits until it accepts connections. On failure, the log.
    fn launch(
        bin: &Path,
        owner: Option<Owner>,
        dir: &Path,
        port: u16,
    ) -> Result<(u32, JoinHandle<std::io::Result<ExitStatus>>), String> {
        let log_path = dir.join(format!("server-{port}.log"));
        let log = fs::File::create(&log_path).map_err(|e| e.to_string())?;
        chown_tree(&log_path, owner);
        let err_log = log.try_clone().map_err(|e| e.to_string())?;
        // setpriv (util-linux) drops to the owner and sets the parent-death signal after it,
        // so the server stops (immediate shutdown) when the thread that started it ends: the
        // waiter thread below, which lives until the server exits or the test process dies.
        let mut cmd = Command::new("setpriv");
        if let Some(o) = owner {
            cmd.arg(format!("--reuid={}", o.uid))
                .arg(format!("--regid={}", o.gid))
                .arg("--clear-groups");
        }
        cmd.args(["--pdeathsig", "SIGQUIT", "--"])
            .arg(bin.join("postgres"))
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
            ])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log);
        let (tx, rx) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let mut child = match cmd.spawn() {
                Ok(child) => child,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return Err(e);
                }
            };
            let _ = tx.send(Ok(child.id()));
            child.wait()
        });
        let pid = match rx.recv() {
            Ok(Ok(pid)) => pid,
            Ok(Err(e)) => return Err(format!("cannot run postgres: {e}")),
            Err(_) => return Err("the thread starting postgres failed".into()),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if waiter.is_finished() {
                let mut text = String::new();
                let _ = fs::File::open(&log_path).and_then(|mut f| f.read_to_string(&mut text));
                return Err(text);
            }
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-U", USER, "-d", "postgres", "-p"])
                .arg(port.to_string())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok((pid, waiter));
            }
            if Instant::now() > deadline {
                signal(pid);
                let _ = waiter.join();
                return Err("PostgreSQL did not accept connections within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db` (no password: trust on loopback).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// A new empty database; its URL.
    pub fn create_database(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("test_{n}");
        run(
            Command::new(self.bin.join("createdb"))
                .args(["-h", "127.0.0.1", "-U", USER, "-p"])
                .arg(self.port.to_string())
                .arg(&name),
            "createdb",
        );
        self.url(&name)
    }

    /// Stops the server at once (as a crash would), keeping the data directory; for tests of
    /// what survives. [`TempPostgres::restart`] brings it back on the same port.
    pub fn kill(&mut self) {
        if let Some(w) = self.waiter.take() {
            // The server is still our child (its waiter has not returned), so the pid is its own.
            signal(self.pid);
            let _ = w.join();
        }
    }

    /// Starts the server again on the same port after [`TempPostgres::kill`].
    pub fn restart(&mut self) {
        let owner = owner();
        match Self::launch(&self.bin, owner, self.dir.path(), self.port) {
            Ok((pid, waiter)) => {
                self.pid = pid;
                self.waiter = Some(waiter);
            }
            Err(log) => fail(format!("PostgreSQL did not restart; its log:\n{log}")),
        }
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        self.kill();
        // The TempDir removes the data directory.
    }
}
