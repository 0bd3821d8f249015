//! A throwaway PostgreSQL server for tests, started from the machine's binaries.
//!
//! One server per test process: `initdb` into a temporary directory, `postgres` on a free
//! loopback port with its socket in that directory, and a database per test
//! ([`fresh_database`]). The server runs under a small shell that holds the read end of a pipe
//! from this process: when the process exits (or the [`PgServer`] is dropped) the pipe closes,
//! and the shell stops PostgreSQL and deletes the directory, so nothing outlives the tests.
//!
//! PostgreSQL refuses to run as root; as root the server runs as the `postgres` user
//! (`runuser`). Missing binaries are a test failure that says what to install, never a skip.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The user the cluster is created for (trust authentication on loopback).
const USER: &str = "loupe";

/// How long PostgreSQL may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running PostgreSQL server.
pub struct PgServer {
    port: u16,
    dir: PathBuf,
    watchdog: Option<Child>,
}

impl PgServer {
    /// Its TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of its data, socket and log (deleted when it stops).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A connection string for one of its databases.
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={USER} dbname={dbname}",
            self.port
        )
    }

    /// Starts a server. Fails with what to install when PostgreSQL is missing.
    pub fn start() -> Result<Self, String> {
        let bin = find_bin_dir()?;
        let dir = std::env::temp_dir().join(format!(
            "loupe-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let as_postgres = is_root();
        if as_postgres {
            run(Command::new("chown").arg("-R").arg("postgres:").arg(&dir))?;
        }
        let data = dir.join("data");
        let mut initdb = as_user(as_postgres, &bin.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            USER,
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        if let Err(e) = run(&mut initdb) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port()?;
            match launch(&bin, &dir, port, as_postgres) {
                Ok(server) => return Ok(server),
                Err(e) => last_error = e,
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(last_error)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.watchdog.take() {
            // Closing its stdin tells the watchdog to stop the server and delete the directory.
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

/// The stopping shell: starts postgres, waits for its stdin to close, stops it, cleans up.
const WATCHDOG: &str = r#"
$PG_AS "$PG_BIN/postgres" -D "$PG_DIR/data" -p "$PG_PORT" -k "$PG_DIR" \
    -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
    -c full_page_writes=off -c max_connections=400 -c shared_buffers=32MB \
    </dev/null >"$PG_DIR/server.log" 2>&1 &
pid=$!
cat >/dev/null
$PG_AS "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
rm -rf "$PG_DIR"
"#;

fn launch(bin: &Path, dir: &Path, port: u16, as_postgres: bool) -> Result<PgServer, String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .env(
            "PG_AS",
            if as_postgres {
                "runuser -u postgres --"
            } else {
                ""
            },
        )
        .env("PG_BIN", bin)
        .env("PG_DIR", dir)
        .env("PG_PORT", port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start sh: {e}"))?;
    let started = Instant::now();
    let log = dir.join("server.log");
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(PgServer {
                port,
                dir: dir.to_path_buf(),
                watchdog: Some(child),
            });
        }
        let log_text = || {
            let mut s = String::new();
            if let Ok(mut f) = std::fs::File::open(&log) {
                let _ = f.read_to_string(&mut s);
            }
            s
        };
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "postgres exited ({status}) before accepting connections:\n{}",
                log_text()
            ));
        }
        if started.elapsed() > START_TIMEOUT {
            drop(child.stdin.take());
            let _ = child.wait();
            return Err(format!(
                "postgres did not accept connections within {START_TIMEOUT:?}:\n{}",
                log_text()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn as_user(as_postgres: bool, program: &Path) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Whether this process runs as root (the owner of `/proc/self` is the effective user).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/self") {
        Ok(m) => m.uid() == 0,
        Err(_) => Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false),
    }
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// The directory holding `initdb`, `postgres` and `pg_ctl`: on `PATH`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (where Debian puts them).
fn find_bin_dir() -> Result<PathBuf, String> {
    find_bin_dir_in(
        std::env::var_os("PATH").as_deref(),
        Path::new("/usr/lib/postgresql"),
    )
}

fn find_bin_dir_in(path: Option<&std::ffi::OsStr>, debian: &Path) -> Result<PathBuf, String> {
    let has_all = |d: &Path| {
        ["initdb", "postgres", "pg_ctl"]
            .iter()
            .all(|b| d.join(b).is_file())
    };
    if let Some(path) = path {
        for d in std::env::split_paths(path) {
            if has_all(&d) {
                return Ok(d);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(debian)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let v: u32 = e.file_name().to_str()?.parse().ok()?;
                    let bin = e.path().join("bin");
                    has_all(&bin).then_some((v, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().map(|(_, d)| d).ok_or_else(|| {
        "PostgreSQL is not installed: the PostgreSQL store tests need initdb, pg_ctl and postgres \
         (on PATH or in /usr/lib/postgresql/<version>/bin). Install it with \
         `apt-get install postgresql` (scripts/test does this)."
            .to_string()
    })
}

static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();

/// The server shared by this test process, started on first use. Panics (failing the test)
/// when it cannot start, with the reason.
pub fn server() -> &'static PgServer {
    match SERVER.get_or_init(PgServer::start) {
        Ok(s) => s,
        Err(e) => panic!("cannot start PostgreSQL for the tests: {e}"),
    }
}

/// A database of its own for one test, on the shared server.
pub struct TestDb {
    /// Its connection string.
    pub url: String,
    /// Its name.
    pub name: String,
}

/// Creates an empty database on the shared server.
pub async fn fresh_database() -> TestDb {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let server = server();
    let name = format!("loupe_test_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let started = Instant::now();
    let client = loop {
        match tokio_postgres::connect(&server.url("postgres"), tokio_postgres::NoTls).await {
            Ok((client, conn)) => {
                tokio::spawn(conn);
                break client;
            }
            // The port may open a moment before the server takes sessions.
            Err(e) if started.elapsed() < START_TIMEOUT => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot connect to the test PostgreSQL: {e}"),
        }
    };
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
    TestDb {
        url: server.url(&name),
        name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_say_what_to_install() {
        let empty = tempfile::tempdir().expect("temp dir");
        let err = find_bin_dir_in(Some(empty.path().as_os_str()), empty.path())
            .expect_err("nothing to find");
        assert!(err.contains("apt-get install postgresql"), "{err}");
        // The newest Debian version wins when PATH has none.
        for v in ["9", "15", "13"] {
            let bin = empty.path().join(v).join("bin");
            std::fs::create_dir_all(&bin).expect("mkdir");
            for b in ["initdb", "postgres", "pg_ctl"] {
                std::fs::write(bin.join(b), "").expect("write");
            }
        }
        let found = find_bin_dir_in(None, empty.path()).expect("found");
        assert_eq!(found, empty.path().join("15").join("bin"));
    }

    #[tokio::test]
    async fn a_database_accepts_queries() {
        let db = fresh_database().await;
        let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .expect("connects");
        tokio::spawn(conn);
        let row = client
            .query_one("SELECT current_database(), current_user", &[])
            .await
            .expect("query");
        assert_eq!(row.get::<_, String>(0), db.name);
        assert_eq!(row.get::<_, String>(1), USER);
        assert!(server().dir().join("data").exists());
    }
}
