//! Start-up validation: every problem at once, each named by its dotted setting name.

use std::fmt;

use tracing_subscriber::EnvFilter;

use super::{RunEnv, Settings};

/// One invalid setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted setting name (`database.url`).
    pub setting: &'static str,
    /// What is wrong, without the value (it may be a secret).
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.message)
    }
}

impl Settings {
    /// Checks every rule for this profile and returns every broken one.
    ///
    /// # Errors
    /// The list of problems, when there is at least one.
    pub fn validate(&self) -> Result<(), Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, setting: &'static str, message: &str| {
            if !ok {
                problems.push(ConfigProblem {
                    setting,
                    message: message.to_owned(),
                });
            }
        };
        let db = &self.database;
        check(
            db.url.is_some(),
            "database.url",
            "must be set (DATABASE_URL or STARSONGS__DATABASE__URL)",
        );
        check(
            db.max_connections >= 1,
            "database.max_connections",
            "must be at least 1",
        );
        check(
            db.min_connections <= db.max_connections,
            "database.min_connections",
            "must not exceed database.max_connections",
        );
        check(
            db.acquire_timeout_secs >= 1,
            "database.acquire_timeout_secs",
            "must be at least 1",
        );
        let server = &self.server;
        check(
            server.max_body_bytes >= 1024,
            "server.max_body_bytes",
            "must be at least 1024",
        );
        check(
            server.request_timeout_secs >= 1,
            "server.request_timeout_secs",
            "must be at least 1",
        );
        check(
            EnvFilter::try_new(&self.log.level).is_ok(),
            "log.level",
            "must be a tracing filter such as `info` or `starsongs=debug,info`",
        );
        for origin in &self.cors.allowed_origins {
            check(
                origin == "*" || is_origin(origin),
                "cors.allowed_origins",
                "each entry must be `*` or an origin such as `https://app.example.com` \
                 (scheme and host, optional port, no path)",
            );
        }
        let auth = &self.auth;
        check(
            auth.argon2_iterations >= 1 && auth.argon2_parallelism >= 1,
            "auth.argon2_iterations",
            "auth.argon2_iterations and auth.argon2_parallelism must be at least 1",
        );
        check(
            auth.argon2_memory_kib >= 8 * auth.argon2_parallelism,
            "auth.argon2_memory_kib",
            "must be at least 8 KiB per lane (auth.argon2_parallelism)",
        );
        check(
            auth.max_concurrent_hashes >= 1,
            "auth.max_concurrent_hashes",
            "must be at least 1",
        );
        if self.env == RunEnv::Production {
            // Weaker hashing is a test-speed setting only (OWASP minimum: m=19456, t=2).
            check(
                auth.argon2_memory_kib >= 19_456 && auth.argon2_iterations >= 2,
                "auth.argon2_memory_kib",
                "must be at least 19456 with auth.argon2_iterations at least 2 in production",
            );
            check(
                !self.cors.allowed_origins.iter().any(|o| o == "*"),
                "cors.allowed_origins",
                "must not contain `*` in production",
            );
            check(
                !db.seed_demo_data,
                "database.seed_demo_data",
                "must be false in production",
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// Whether `raw` is a serialized origin: `http(s)://host[:port]` and nothing more.
fn is_origin(raw: &str) -> bool {
    url::Url::parse(raw).is_ok_and(|url| {
        matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some()
            && url.origin().ascii_serialization() == raw.trim_end_matches('/')
            && !raw.ends_with('/')
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let vars: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::load_from(&vars).map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn production_names_every_offending_setting() {
        let error = load(&[
            ("STARSONGS_ENV", "production"),
            ("STARSONGS__CORS__ALLOWED_ORIGINS", "*"),
            ("STARSONGS__DATABASE__SEED_DEMO_DATA", "true"),
        ])
        .unwrap_err();

        for setting in [
            "database.url",
            "cors.allowed_origins",
            "database.seed_demo_data",
        ] {
            assert!(error.contains(setting), "{setting} missing from: {error}");
        }
    }

    #[test]
    fn production_with_explicit_settings_is_accepted() {
        let settings = load(&[
            ("STARSONGS_ENV", "production"),
            ("DATABASE_URL", "sqlite:///var/lib/starsongs/starsongs.db"),
            (
                "STARSONGS__CORS__ALLOWED_ORIGINS",
                "https://app.example.com",
            ),
        ]);

        assert!(settings.is_ok(), "{settings:?}");
    }

    #[test]
    fn problems_never_echo_secret_values() {
        let error = load(&[
            ("DATABASE_URL", "sqlite://x.db"),
            ("STARSONGS__DATABASE__MAX_CONNECTIONS", "0"),
            ("STARSONGS__LOG__LEVEL", "[[["),
        ])
        .unwrap_err();

        assert!(error.contains("database.max_connections"), "{error}");
        assert!(error.contains("log.level"), "{error}");
        assert!(!error.contains("x.db"), "{error}");
    }

    #[test]
    fn origins_must_be_bare_origins() {
        for (origin, ok) in [
            ("https://app.example.com", true),
            ("http://localhost:5173", true),
            ("https://app.example.com/", false),
            ("https://app.example.com/path", false),
            ("app.example.com", false),
            ("ftp://app.example.com", false),
        ] {
            assert_eq!(is_origin(origin), ok, "{origin}");
        }
    }
}
