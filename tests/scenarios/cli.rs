//! The `dockline` command line without a network: `check` on the shipped files and on bad
//! input, `version`, `status` without a daemon.

// Test helpers fail the test by panicking, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dockline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dockline"))
        .args(args)
        .env_remove("DOCKLINE_CONFIG")
        .output()
        .expect("run dockline")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> Self {
        let path = std::env::temp_dir().join(format!("dockline-cli-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn check_accepts_the_reference_and_every_example() {
    let mut files = vec![
        repo().join("config/dockline.toml"),
        repo().join("config/default.toml"),
    ];
    for entry in std::fs::read_dir(repo().join("config/examples")).unwrap() {
        files.push(entry.unwrap().path());
    }
    assert!(
        files.len() >= 6,
        "the reference, the default and at least four examples"
    );
    for file in files {
        let out = dockline(&["check", file.to_str().unwrap()]);
        assert!(out.status.success(), "{}: {}", file.display(), text(&out));
        assert!(text(&out).contains(": ok"), "{}", text(&out));
    }
}

#[test]
fn check_reports_every_problem_with_its_path_and_exits_1() {
    let bad = TempFile::new(
        "many.toml",
        br#"
[node]
name = "node-1"
[[services]]
name = "a"
cluster_ip = "10.99.0.1"
ports = [{ port = 80 }]
[[services]]
name = "b"
type = "NodePort"
ports = [{ port = 80, node_port = 31000 }]
[[services]]
name = "c"
type = "NodePort"
ports = [{ port = 80, node_port = 80 }]
[[services]]
name = "d"
type = "ExternalName"
"#,
    );
    let out = dockline(&["check", bad.path()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    for line in [
        "services[0].cluster_ip: 10.99.0.1 is outside cluster.service_cidr 10.222.0.0/16",
        "services[2].ports[0].node_port: 80 is outside the NodePort range 30000-32767",
        "services[3].external_name: ExternalName services need external_name",
    ] {
        assert!(
            all.lines().any(|l| l == line),
            "missing {line:?} in:\n{all}"
        );
    }
}

#[test]
fn check_rejects_bad_files_in_one_line_each_without_panicking() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("syntax.toml", b"[node\nname = 1\n".to_vec(), "invalid TOML"),
        (
            "type.toml",
            b"[dns]\nttl = \"five\"\n".to_vec(),
            "dns.ttl: invalid type",
        ),
        (
            "unknown.toml",
            b"[dns]\nttl = 5\nspeed = 9\n".to_vec(),
            "dns.speed: unknown field",
        ),
        (
            "section.toml",
            b"[dnss]\nttl = 5\n".to_vec(),
            "dnss: unknown section",
        ),
        (
            "address.toml",
            b"[admin]\nlisten = \"127.0.0.300:1\"\n".to_vec(),
            "admin.listen:",
        ),
        ("empty.toml", b"  \n".to_vec(), "the file is empty"),
        ("binary.toml", vec![0xff, 0xfe, 0x00, 0x41], "not UTF-8"),
    ];
    for (name, contents, expected) in cases {
        let file = TempFile::new(name, &contents);
        let out = dockline(&["check", file.path()]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(expected),
            "{name}: {expected:?} not in {stdout:?}"
        );
        assert_eq!(
            stdout.lines().count(),
            1,
            "{name}: one line per problem: {stdout:?}"
        );
        assert!(!text(&out).contains("panicked"), "{name}: {}", text(&out));
    }
    let missing = dockline(&["check", "/nonexistent/dockline.toml"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing).contains("/nonexistent/dockline.toml: cannot read the file"));
    let directory = dockline(&["check", "/"]);
    assert_eq!(directory.status.code(), Some(1));
    assert!(
        text(&directory).contains("cannot read the file"),
        "{}",
        text(&directory)
    );
}

#[test]
fn version_prints_the_crate_version() {
    let out = dockline(&["version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("dockline {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn status_without_a_daemon_says_so() {
    // Port 1 on loopback: nothing listens there.
    let out = dockline(&["status", "--admin", "127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("cannot reach the admin API"),
        "{}",
        text(&out)
    );
}

#[test]
fn run_refuses_an_invalid_config_at_start() {
    let bad = TempFile::new("start.toml", b"[dns]\nttl = -1\n");
    let out = dockline(&["run", "--config", bad.path()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("dns.ttl"), "{}", text(&out));
}
