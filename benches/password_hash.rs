//! Cost of one Argon2id hash and one verification with the production parameters
//! (`config/default.toml`), and of a burst of concurrent verifications through the
//! semaphore. Run with `cargo bench --bench password_hash`; figures in BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use starsongs::auth::password::PasswordHasher;
use starsongs::config::Settings;

const RUNS: usize = 21;
const BURST: usize = 16;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // The development profile has the default (production-strength) Argon2 parameters.
    let vars = HashMap::from([("STARSONGS_ENV".to_owned(), "development".to_owned())]);
    let settings = Settings::load_from(&vars).unwrap();
    let hasher = PasswordHasher::new(&settings.auth).unwrap();
    let password = SecretString::from("correct horse battery staple".to_owned());
    let hash = hasher.hash(&password).await.unwrap();

    let mut hashing = Vec::new();
    let mut verifying = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        hasher.hash(&password).await.unwrap();
        hashing.push(started.elapsed());
        let started = Instant::now();
        assert!(hasher.verify(&password, Some(&hash)).await.unwrap());
        verifying.push(started.elapsed());
        let started = Instant::now();
        assert!(!hasher.verify(&password, None).await.unwrap());
        unknown.push(started.elapsed());
    }
    let started = Instant::now();
    let burst = (0..BURST).map(|_| hasher.verify(&password, Some(&hash)));
    futures_util::future::join_all(burst).await;
    let burst_time = started.elapsed();

    let a = &settings.auth;
    println!(
        "argon2id m={} KiB, t={}, p={}, max_concurrent_hashes={}\n",
        a.argon2_memory_kib, a.argon2_iterations, a.argon2_parallelism, a.max_concurrent_hashes
    );
    println!("| operation | median of {RUNS} |");
    println!("|---|---:|");
    println!(
        "| hash a password | {:.1} ms |",
        median(hashing).as_secs_f64() * 1e3
    );
    println!(
        "| verify, known user | {:.1} ms |",
        median(verifying).as_secs_f64() * 1e3
    );
    println!(
        "| verify, unknown user (dummy hash) | {:.1} ms |",
        median(unknown).as_secs_f64() * 1e3
    );
    println!(
        "| {BURST} concurrent verifications, total | {:.1} ms |",
        burst_time.as_secs_f64() * 1e3
    );
}
