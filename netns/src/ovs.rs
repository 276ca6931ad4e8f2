//! A private Open vSwitch: its database file, the `ovsdb-server` and `ovs-vswitchd` command
//! lines, and the waits for their sockets, with every file in one directory.
//!
//! Callers keep their own process model (detached daemons, or children started inside a
//! namespace); this module only builds the [`Command`]s and knows where each file goes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// Where distributions install the database schema.
pub const SCHEMAS: [&str; 2] = [
    "/usr/share/openvswitch/vswitch.ovsschema",
    "/usr/local/share/openvswitch/vswitch.ovsschema",
];

/// The installed `vswitch.ovsschema`.
pub fn schema() -> Result<PathBuf> {
    SCHEMAS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| Error::NoSchema {
            tried: SCHEMAS.iter().map(PathBuf::from).collect(),
        })
}

/// One of the two daemons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    /// `ovsdb-server`.
    OvsdbServer,
    /// `ovs-vswitchd`.
    OvsVswitchd,
}

impl Daemon {
    /// The program's name.
    pub fn program(self) -> &'static str {
        match self {
            Self::OvsdbServer => "ovsdb-server",
            Self::OvsVswitchd => "ovs-vswitchd",
        }
    }
}

/// The directory a private OVS keeps everything in: database, sockets, pid files and logs.
#[derive(Debug, Clone)]
pub struct Files {
    dir: PathBuf,
    stems: [String; 2],
}

impl Files {
    /// Files under `dir`, each daemon's named after its program (`ovsdb-server.log`, ...).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            stems: [Daemon::OvsdbServer, Daemon::OvsVswitchd].map(|d| d.program().to_owned()),
        }
    }

    /// Names each daemon's control socket, pid file and log `<stem>.ctl`, `.pid`, `.log` instead.
    pub fn with_stems(self, ovsdb_server: &str, ovs_vswitchd: &str) -> Self {
        Self {
            stems: [ovsdb_server.to_owned(), ovs_vswitchd.to_owned()],
            ..self
        }
    }

    fn file(&self, daemon: Daemon, ext: &str) -> PathBuf {
        let stem = &self.stems[daemon as usize];
        self.dir.join(format!("{stem}.{ext}"))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The database file, `conf.db`.
    pub fn db(&self) -> PathBuf {
        self.dir.join("conf.db")
    }

    /// The OVSDB socket, `db.sock`.
    pub fn db_sock(&self) -> PathBuf {
        self.dir.join("db.sock")
    }

    /// A daemon's `ovs-appctl` control socket.
    pub fn ctl(&self, daemon: Daemon) -> PathBuf {
        self.file(daemon, "ctl")
    }

    /// A daemon's pid file.
    pub fn pidfile(&self, daemon: Daemon) -> PathBuf {
        self.file(daemon, "pid")
    }

    /// A daemon's log file.
    pub fn log(&self, daemon: Daemon) -> PathBuf {
        self.file(daemon, "log")
    }

    /// Creates the directory and, when there is none yet, an empty database from the
    /// installed schema.
    pub fn ensure_db(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io(format!("create {}", self.dir.display()), e))?;
        let db = self.db();
        if db.exists() {
            return Ok(());
        }
        let schema = schema()?;
        let text = std::fs::read_to_string(&schema)
            .map_err(|e| Error::io(format!("read {}", schema.display()), e))?;
        create_db(&db, &schema, &text)
    }

    /// The command line of `daemon` on these files, logging to its file only. Callers add
    /// `--detach` and the like to suit how they run it.
    pub fn command(&self, daemon: Daemon) -> Command {
        let mut cmd = Command::new(daemon.program());
        match daemon {
            Daemon::OvsdbServer => cmd
                .arg(self.db())
                .arg(format!("--remote=punix:{}", self.db_sock().display())),
            Daemon::OvsVswitchd => cmd.arg(format!("unix:{}", self.db_sock().display())),
        };
        cmd.arg(format!("--unixctl={}", self.ctl(daemon).display()))
            .arg(format!("--pidfile={}", self.pidfile(daemon).display()))
            .arg(format!("--log-file={}", self.log(daemon).display()))
            .arg("-vconsole:off")
            // Where vswitchd puts the bridges' `.mgmt` OpenFlow sockets, and where the daemons
            // look for anything not named on the command line.
            .env("OVS_RUNDIR", &self.dir)
            .env("OVS_LOGDIR", &self.dir)
            .env("OVS_DBDIR", &self.dir);
        cmd
    }

    /// Waits until `daemon` answers on its socket: `db.sock` for `ovsdb-server`, the control
    /// socket for `ovs-vswitchd`.
    pub fn wait(&self, daemon: Daemon, timeout: Duration) -> Result<()> {
        let socket = match daemon {
            Daemon::OvsdbServer => self.db_sock(),
            Daemon::OvsVswitchd => self.ctl(daemon),
        };
        self.wait_for(&socket, daemon, timeout)
    }

    /// Waits until something answers on unix socket `socket`, which `daemon` opens.
    pub fn wait_for(&self, socket: &Path, daemon: Daemon, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while !answers(socket) {
            if Instant::now() > deadline {
                let log = self.log(daemon);
                return Err(Error::NotReady {
                    daemon: daemon.program(),
                    socket: socket.to_owned(),
                    after: timeout,
                    tail: tail(&log, 20),
                    log,
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

/// Whether something answers on the unix socket `path`.
pub fn answers(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The contents of an empty standalone OVSDB database for `schema` (what `ovsdb-tool create`
/// writes): a header `OVSDB JSON <length> <sha1>` and the schema as one JSON record.
pub fn db_contents(schema: &serde_json::Value) -> String {
    // The length and the hash cover the record's trailing newline.
    let record = format!("{schema}\n");
    let sha1 = sha1_smol::Sha1::from(record.as_bytes())
        .digest()
        .to_string();
    format!("OVSDB JSON {} {sha1}\n{record}", record.len())
}

/// Writes an empty standalone OVSDB database at `path` for the schema `text` read from
/// `schema`, atomically: an interrupted write leaves no half database behind.
pub fn create_db(path: &Path, schema: &Path, text: &str) -> Result<()> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|cause| Error::BadSchema {
            path: schema.to_owned(),
            cause,
        })?;
    let tmp = path.with_extension("db.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(db_contents(&value).as_bytes())?;
        f.sync_all()
    };
    write().map_err(|e| Error::io(format!("write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("create {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_gives_the_length_and_sha1_of_the_record_with_its_newline() {
        let schema = serde_json::json!({"name": "Open_vSwitch", "tables": {}});
        let text = db_contents(&schema);
        let (header, record) = text.split_once('\n').unwrap();
        assert_eq!(record, "{\"name\":\"Open_vSwitch\",\"tables\":{}}\n");
        // `printf '%s\n' '{"name":"Open_vSwitch","tables":{}}' | sha1sum`
        assert_eq!(
            header,
            "OVSDB JSON 36 1ce9e66c79441048ae732ccdfc7b13111f011d71"
        );
    }

    #[test]
    fn a_schema_that_is_not_json_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("conf.db");
        let err = create_db(&db, Path::new("/x/vswitch.ovsschema"), "{nope").unwrap_err();
        assert!(err.to_string().contains("/x/vswitch.ovsschema"), "{err}");
        assert!(!db.exists());
    }

    #[test]
    fn the_database_file_is_the_header_and_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("conf.db");
        create_db(&db, Path::new("s.ovsschema"), r#"{ "name" : "x" }"#).unwrap();
        let written = std::fs::read_to_string(&db).unwrap();
        assert_eq!(written, db_contents(&serde_json::json!({"name": "x"})));
        assert!(!dir.path().join("conf.db.tmp").exists());
    }

    #[test]
    fn each_daemon_gets_its_own_files_under_the_directory() {
        let files = Files::new("/d").with_stems("ovsdb", "vswitchd");
        assert_eq!(files.log(Daemon::OvsVswitchd), Path::new("/d/vswitchd.log"));
        assert_eq!(files.ctl(Daemon::OvsdbServer), Path::new("/d/ovsdb.ctl"));
        let cmd = files.command(Daemon::OvsdbServer);
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
        assert_eq!(
            args,
            [
                "/d/conf.db",
                "--remote=punix:/d/db.sock",
                "--unixctl=/d/ovsdb.ctl",
                "--pidfile=/d/ovsdb.pid",
                "--log-file=/d/ovsdb.log",
                "-vconsole:off",
            ]
        );
        let plain = Files::new("/d");
        let cmd = plain.command(Daemon::OvsVswitchd);
        assert_eq!(cmd.get_program(), "ovs-vswitchd");
        assert_eq!(
            cmd.get_args().next().map(|a| a.to_string_lossy()),
            Some("unix:/d/db.sock".into())
        );
        assert_eq!(
            plain.pidfile(Daemon::OvsVswitchd),
            Path::new("/d/ovs-vswitchd.pid")
        );
    }
}
