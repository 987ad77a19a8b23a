//! The binary run the way the image and the chart run it (#12), without Docker: under
//! bubblewrap as an unprivileged user (uid 65534 outside, 65532 inside, no capabilities),
//! in its own namespaces (network: loopback only), on a read-only root that holds only the
//! binary, its shared libraries and the CA certificates, with `/tmp` and `/data` the only
//! writable places and the signing key mounted read-only as a file. No shell.
//!
//! Needs bubblewrap, util-linux (`setpriv`, `nsenter`), curl and root (to enter the
//! sandbox's network namespace from outside); without them it prints why and skips,
//! unless `STARSONGS_TEST_SANDBOX=1` (set by `.ci/run`, which installs bubblewrap).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The image's user and group.
const IMAGE_UID: &str = "65532";
/// The unprivileged user the sandbox is started as (nobody).
const OUTSIDE_UID: u32 = 65534;

fn missing_tool() -> Option<String> {
    for tool in ["bwrap", "setpriv", "nsenter", "curl", "ldd"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    let uid = Command::new("id").arg("-u").output().ok()?;
    (String::from_utf8_lossy(&uid.stdout).trim() != "0")
        .then(|| "entering the sandbox's network namespace needs root".to_owned())
}

/// The absolute paths of the shared libraries `binary` loads.
fn shared_libraries(binary: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(binary).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|word| word.starts_with('/'))
        .map(PathBuf::from)
        .collect()
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn status_line(pid: u32, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .map(|l| l[key.len()..].trim().to_owned())
        .unwrap_or_default()
}

fn chown(path: &Path, uid: u32) {
    let status = Command::new("chown")
        .arg(format!("{uid}:{uid}"))
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn the_binary_serves_in_the_images_sandbox_and_exits_0_on_sigterm() {
    if let Some(reason) = missing_tool() {
        assert!(
            std::env::var_os("STARSONGS_TEST_SANDBOX").is_none(),
            "STARSONGS_TEST_SANDBOX is set but {reason}"
        );
        println!("skipped: sandbox test: {reason}");
        return;
    }
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_starsongs"));
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (data, tmp, secrets) = (
        root.path().join("data"),
        root.path().join("tmp"),
        root.path().join("secrets"),
    );
    for dir in [&data, &tmp, &secrets] {
        std::fs::create_dir(dir).unwrap();
    }
    chown(&data, OUTSIDE_UID);
    chown(&tmp, OUTSIDE_UID);
    std::fs::write(
        secrets.join("jwt-secret"),
        "sandbox-test-only-signing-key-0123456789abcdef",
    )
    .unwrap();
    std::fs::set_permissions(
        secrets.join("jwt-secret"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();

    let mut args: Vec<String> = [
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
        "bwrap",
        "--unshare-all",
        "--unshare-user",
        "--uid",
        IMAGE_UID,
        "--gid",
        IMAGE_UID,
        "--die-with-parent",
        "--new-session",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut ro_bind = |from: &Path, to: &str| {
        args.extend([
            "--ro-bind".to_owned(),
            from.display().to_string(),
            to.to_owned(),
        ]);
    };
    ro_bind(&binary, "/app/starsongs");
    for library in shared_libraries(&binary) {
        ro_bind(&library, &library.display().to_string());
    }
    ro_bind(Path::new("/etc/ssl/certs"), "/etc/ssl/certs");
    ro_bind(&secrets, "/run/secrets/starsongs");
    for (flag, from, to) in [
        ("--bind", tmp.display().to_string(), "/tmp"),
        ("--bind", data.display().to_string(), "/data"),
    ] {
        args.extend([flag.to_owned(), from, to.to_owned()]);
    }
    args.extend(
        [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--chdir",
            "/data",
            "--clearenv",
            "--setenv",
            "STARSONGS_ENV",
            "production",
            "--setenv",
            "DATABASE_URL",
            "sqlite:///data/starsongs.db?mode=rwc",
            "--setenv",
            "STARSONGS__AUTH__JWT_SECRET_FILE",
            "/run/secrets/starsongs/jwt-secret",
            "/app/starsongs",
            "serve",
        ]
        .iter()
        .map(|s| (*s).to_owned()),
    );
    let mut sandbox = Command::new("setpriv")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // bwrap (our child) runs an init in the new PID namespace, which runs the service.
    let deadline = Instant::now() + Duration::from_secs(30);
    let service = loop {
        let found = children(sandbox.id()).into_iter().flat_map(children).next();
        if let Some(pid) = found {
            break pid;
        }
        assert!(Instant::now() < deadline, "the service did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    let inside = |program: &str, extra: &[&str]| {
        Command::new("nsenter")
            .args(["--target", &service.to_string(), "--net", program])
            .args(extra)
            .output()
            .unwrap()
    };
    let live = loop {
        let probe = inside(
            binary.to_str().unwrap(),
            &["healthcheck", "--url", "http://127.0.0.1:8080"],
        );
        if probe.status.success() || Instant::now() > deadline {
            break probe.status.success();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let ready = inside(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://127.0.0.1:8080/health/ready",
        ],
    );
    let interfaces = std::fs::read_to_string(format!("/proc/{service}/net/dev")).unwrap();
    let (uid, capabilities) = (
        status_line(service, "Uid:"),
        status_line(service, "CapEff:"),
    );

    // SIGTERM, as Kubernetes sends it; production drains for shutdown_delay_secs (5) and
    // gives requests shutdown_grace_secs (20): the chart allows 35 s in all.
    let killed = Command::new("kill")
        .args(["-TERM", &service.to_string()])
        .status()
        .unwrap();
    let stop_deadline = Instant::now() + Duration::from_secs(35);
    let exit = loop {
        if let Some(status) = sandbox.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > stop_deadline {
            sandbox.kill().ok();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut log = String::new();
    std::io::Read::read_to_string(&mut sandbox.stderr.take().unwrap(), &mut log).unwrap();

    assert!(
        live,
        "/health/live answered inside the sandbox; log:\n{log}"
    );
    assert_eq!(String::from_utf8_lossy(&ready.stdout), "200", "log:\n{log}");
    assert!(
        interfaces
            .lines()
            .skip(2)
            .all(|l| l.trim_start().starts_with("lo:")),
        "loopback only: {interfaces}"
    );
    assert!(
        uid.split_whitespace().all(|u| u == OUTSIDE_UID.to_string()),
        "unprivileged outside the sandbox: {uid}"
    );
    assert_eq!(capabilities, "0000000000000000", "no capabilities");
    assert!(killed.success());
    assert_eq!(
        exit.and_then(|s| s.code()),
        Some(0),
        "exit 0 within the grace period; log:\n{log}"
    );
    assert!(log.contains("shutdown complete"), "{log}");
    // Nothing written but the database (its WAL is checkpointed away on a clean stop).
    // A coverage build (cargo llvm-cov) also leaves its `.profraw` in the working
    // directory: that is the tool's, not the service's.
    let written: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .chain(std::fs::read_dir(&tmp).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".profraw"))
        .collect();
    assert_eq!(written, ["starsongs.db"], "files written");
}
