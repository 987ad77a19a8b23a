//! Embeds the git commit of the build as `STARSONGS_GIT_SHA` ("unknown" outside a git
//! checkout or without git), for `starsongs_build_info`, `GET /` and Sentry releases.
//! `STARSONGS_GIT_SHA` in the build environment wins (image builds without `.git`).

use std::process::Command;

fn main() {
    println!("cargo::rerun-if-env-changed=STARSONGS_GIT_SHA");
    println!("cargo::rerun-if-changed=.git/HEAD");
    println!("cargo::rerun-if-changed=.git/refs");
    let sha = std::env::var("STARSONGS_GIT_SHA")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()
                .filter(|out| out.status.success())
                .and_then(|out| String::from_utf8(out.stdout).ok())
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo::rustc-env=STARSONGS_GIT_SHA={sha}");
}
