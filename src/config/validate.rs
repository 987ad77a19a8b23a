//! Start-up validation: every problem at once, each named by its dotted setting name.

use std::fmt;

use tracing_subscriber::EnvFilter;

use secrecy::ExposeSecret;

use super::{JwtAlgorithm, MIN_SECRET_BYTES, RateLimitBackend, RunEnv, Settings};

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
        check(
            server.max_header_bytes >= 1024,
            "server.max_header_bytes",
            "must be at least 1024",
        );
        check(
            server.max_in_flight >= 1,
            "server.max_in_flight",
            "must be at least 1",
        );
        for proxy in &server.trusted_proxies {
            check(
                parse_cidr(proxy).is_some(),
                "server.trusted_proxies",
                "each entry must be an IP address or a CIDR such as `10.0.0.0/8`",
            );
        }
        check(
            (1..=300).contains(&server.header_read_timeout_secs),
            "server.header_read_timeout_secs",
            "must be between 1 and 300",
        );
        check(
            (1..=3600).contains(&server.keep_alive_timeout_secs),
            "server.keep_alive_timeout_secs",
            "must be between 1 and 3600",
        );
        check(
            server.max_connections >= 1,
            "server.max_connections",
            "must be at least 1",
        );
        let tls = &server.tls;
        check(
            tls.cert_file.is_some() == tls.key_file.is_some(),
            "server.tls.cert_file",
            "server.tls.cert_file and server.tls.key_file must be set together",
        );
        check(
            tls.redirect_http_port.is_none() || tls.is_enabled(),
            "server.tls.redirect_http_port",
            "needs server.tls.cert_file and server.tls.key_file",
        );
        check(
            tls.reload_interval_secs >= 1,
            "server.tls.reload_interval_secs",
            "must be at least 1",
        );
        let limits = &self.rate_limit;
        check(
            limits.requests_per_minute >= 1 && limits.burst >= 1,
            "rate_limit.requests_per_minute",
            "rate_limit.requests_per_minute and rate_limit.burst must be at least 1",
        );
        check(
            limits.auth_requests_per_minute >= 1 && limits.auth_burst >= 1,
            "rate_limit.auth_requests_per_minute",
            "rate_limit.auth_requests_per_minute and rate_limit.auth_burst must be at least 1",
        );
        check(
            limits.backend != RateLimitBackend::Redis || limits.redis_url.is_some(),
            "rate_limit.redis_url",
            "must be set when rate_limit.backend is redis",
        );
        check(
            limits.redis_timeout_ms >= 1,
            "rate_limit.redis_timeout_ms",
            "must be at least 1",
        );
        check(
            (32..=128).contains(&limits.ipv6_prefix_len),
            "rate_limit.ipv6_prefix_len",
            "must be between 32 and 128",
        );
        for client in &limits.exempt_clients {
            check(
                parse_cidr(client).is_some(),
                "rate_limit.exempt_clients",
                "each entry must be a CIDR such as `10.1.2.3/32` or an IP address",
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
            !auth.issuer.trim().is_empty(),
            "auth.issuer",
            "must not be empty",
        );
        check(
            !auth.audience.trim().is_empty(),
            "auth.audience",
            "must not be empty",
        );
        check(
            (60..=86_400).contains(&auth.access_ttl_secs),
            "auth.access_ttl_secs",
            "must be between 60 and 86400",
        );
        check(
            auth.refresh_ttl_secs >= auth.access_ttl_secs && auth.refresh_ttl_secs <= 90 * 86_400,
            "auth.refresh_ttl_secs",
            "must be at least auth.access_ttl_secs and at most 7776000 (90 days)",
        );
        check(
            auth.session_max_secs >= auth.refresh_ttl_secs && auth.session_max_secs <= 365 * 86_400,
            "auth.session_max_secs",
            "must be at least auth.refresh_ttl_secs and at most 31536000 (365 days)",
        );
        let has_previous_key =
            auth.jwt_previous_secret.is_some() || auth.jwt_previous_public_key_file.is_some();
        check(
            !has_previous_key || auth.jwt_rotated_at.is_some(),
            "auth.jwt_rotated_at",
            "must be set (RFC 3339, the instant of the switch) when a previous key is configured",
        );
        check(
            has_previous_key || auth.jwt_rotated_at.is_none(),
            "auth.jwt_rotated_at",
            "is only meaningful with auth.jwt_previous_secret or \
             auth.jwt_previous_public_key_file",
        );
        check(
            (1..=60).contains(&auth.grant_cache_secs),
            "auth.grant_cache_secs",
            "must be between 1 and 60",
        );
        match auth.jwt_algorithm {
            JwtAlgorithm::Hs256 => {
                let secret_len = auth.jwt_secret.as_ref().map(|s| s.expose_secret().len());
                check(
                    secret_len.is_none_or(|len| len >= MIN_SECRET_BYTES),
                    "auth.jwt_secret",
                    "must be at least 32 bytes",
                );
                check(
                    secret_len.is_some() || self.env != RunEnv::Production,
                    "auth.jwt_secret",
                    "must be set in production (STARSONGS__AUTH__JWT_SECRET or \
                     STARSONGS__AUTH__JWT_SECRET_FILE)",
                );
                check(
                    auth.jwt_previous_secret
                        .as_ref()
                        .is_none_or(|s| s.expose_secret().len() >= MIN_SECRET_BYTES),
                    "auth.jwt_previous_secret",
                    "must be at least 32 bytes",
                );
                check(
                    auth.jwt_previous_public_key_file.is_none(),
                    "auth.jwt_previous_public_key_file",
                    "is for EdDSA and RS256 only (with HS256 use auth.jwt_previous_secret)",
                );
                check(
                    match (&auth.jwt_secret, &auth.jwt_previous_secret) {
                        (Some(current), Some(previous)) => {
                            current.expose_secret() != previous.expose_secret()
                        }
                        _ => true,
                    },
                    "auth.jwt_previous_secret",
                    "must differ from auth.jwt_secret",
                );
            }
            JwtAlgorithm::EdDsa | JwtAlgorithm::Rs256 => {
                check(
                    auth.jwt_private_key_file
                        .as_ref()
                        .is_some_and(|p| p.is_file()),
                    "auth.jwt_private_key_file",
                    "must name a readable PEM file for EdDSA and RS256",
                );
                check(
                    auth.jwt_public_key_file
                        .as_ref()
                        .is_some_and(|p| p.is_file()),
                    "auth.jwt_public_key_file",
                    "must name a readable PEM file for EdDSA and RS256",
                );
                check(
                    auth.jwt_previous_public_key_file
                        .as_ref()
                        .is_none_or(|p| p.is_file()),
                    "auth.jwt_previous_public_key_file",
                    "must name a readable PEM file when set",
                );
                check(
                    match (
                        &auth.jwt_public_key_file,
                        &auth.jwt_previous_public_key_file,
                    ) {
                        (Some(current), Some(previous)) => {
                            std::fs::read(current).ok() != std::fs::read(previous).ok()
                                || !current.is_file()
                        }
                        _ => true,
                    },
                    "auth.jwt_previous_public_key_file",
                    "must differ from auth.jwt_public_key_file",
                );
                check(
                    auth.jwt_previous_secret.is_none(),
                    "auth.jwt_previous_secret",
                    "is for HS256 only (with EdDSA and RS256 use \
                     auth.jwt_previous_public_key_file)",
                );
            }
        }
        check(
            self.sentry
                .dsn
                .as_ref()
                .is_none_or(|dsn| is_valid_dsn(dsn.expose_secret())),
            "sentry.dsn",
            "must be a Sentry DSN such as https://<key>@o0.ingest.sentry.io/<project>",
        );
        check(
            (0.0..=1.0).contains(&self.sentry.traces_sample_rate),
            "sentry.traces_sample_rate",
            "must be between 0.0 and 1.0",
        );
        check(
            self.tracing_export
                .sample_ratio
                .is_none_or(|ratio| (0.0..=1.0).contains(&ratio)),
            "tracing_export.sample_ratio",
            "must be between 0.0 and 1.0",
        );
        check(
            self.trace_export.as_ref().is_none_or(|export| {
                url::Url::parse(&export.traces_url).is_ok_and(|url| {
                    matches!(url.scheme(), "http" | "https") && url.host_str().is_some()
                })
            }),
            "tracing_export.otlp_endpoint",
            "must be an http:// or https:// URL such as http://collector:4318",
        );
        if self.env == RunEnv::Production {
            check(
                !self.admin.debug_endpoints,
                "admin.debug_endpoints",
                "must be false in production",
            );
            check(
                !auth.create_dev_admin,
                "auth.create_dev_admin",
                "must be false in production",
            );
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
            // A /0 trusted proxy lets every client choose its own address.
            check(
                !server
                    .trusted_proxies
                    .iter()
                    .filter_map(|proxy| parse_cidr(proxy))
                    .any(|net| net.prefix_len() == 0),
                "server.trusted_proxies",
                "must not contain 0.0.0.0/0 or ::/0 in production (every client could choose \
                 its own address)",
            );
            // A /0 entry (0.0.0.0/0, ::/0) would switch rate limiting off for everyone.
            check(
                !limits
                    .exempt_clients
                    .iter()
                    .filter_map(|client| parse_cidr(client))
                    .any(|net| net.prefix_len() == 0),
                "rate_limit.exempt_clients",
                "must not contain 0.0.0.0/0 or ::/0 in production (it exempts every client)",
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// A CIDR (`10.0.0.0/8`) or a single address (`10.1.2.3`, as `/32` or `/128`).
pub fn parse_cidr(raw: &str) -> Option<ipnet::IpNet> {
    raw.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| raw.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
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

/// Whether `dsn` parses as a Sentry DSN (checked at start-up).
pub fn is_valid_dsn(dsn: &str) -> bool {
    <sentry::types::Dsn as std::str::FromStr>::from_str(dsn).is_ok()
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
            ("STARSONGS__AUTH__CREATE_DEV_ADMIN", "true"),
        ])
        .unwrap_err();

        for setting in [
            "auth.jwt_secret",
            "auth.create_dev_admin",
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
            (
                "STARSONGS__AUTH__JWT_SECRET",
                "a production secret of at least 32 bytes",
            ),
        ]);

        assert!(settings.is_ok(), "{settings:?}");
    }

    #[test]
    fn short_jwt_secrets_are_refused_everywhere_without_being_echoed() {
        for env in ["development", "production"] {
            let error = load(&[
                ("STARSONGS_ENV", env),
                ("STARSONGS__AUTH__JWT_SECRET", "hunter2-too-short"),
            ])
            .unwrap_err();

            assert!(
                error.contains("auth.jwt_secret: must be at least 32 bytes"),
                "{error}"
            );
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn key_pair_algorithms_need_both_key_files() {
        let error = load(&[("STARSONGS__AUTH__JWT_ALGORITHM", "EdDSA")]).unwrap_err();

        assert!(error.contains("auth.jwt_private_key_file"), "{error}");
        assert!(error.contains("auth.jwt_public_key_file"), "{error}");
        assert!(load(&[("STARSONGS__AUTH__JWT_ALGORITHM", "none")]).is_err());
    }

    #[test]
    fn the_jwt_secret_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jwt");
        std::fs::write(&file, "a file secret that is at least 32 bytes\n").unwrap();

        let settings =
            load(&[("STARSONGS__AUTH__JWT_SECRET_FILE", file.to_str().unwrap())]).unwrap();

        assert_eq!(
            settings.auth.jwt_secret.unwrap().expose_secret(),
            "a file secret that is at least 32 bytes"
        );
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
    fn exempt_clients_must_be_cidrs_and_never_everyone_in_production() {
        let malformed = load(&[(
            "STARSONGS__RATE_LIMIT__EXEMPT_CLIENTS",
            "10.0.0.0/33, frontend",
        )])
        .unwrap_err();
        let development = load(&[("STARSONGS__RATE_LIMIT__EXEMPT_CLIENTS", "0.0.0.0/0, ::/0")]);
        let production = |clients: &str| {
            load(&[
                ("STARSONGS_ENV", "production"),
                ("DATABASE_URL", "sqlite:///var/lib/starsongs/starsongs.db"),
                (
                    "STARSONGS__AUTH__JWT_SECRET",
                    "a production secret of at least 32 bytes",
                ),
                ("STARSONGS__RATE_LIMIT__EXEMPT_CLIENTS", clients),
            ])
        };

        assert!(
            malformed.contains("rate_limit.exempt_clients"),
            "{malformed}"
        );
        assert!(development.is_ok(), "{development:?}");
        for everyone in ["0.0.0.0/0", "::/0", "10.0.0.0/8, ::/0"] {
            let error = production(everyone).unwrap_err();
            assert!(
                error.contains("rate_limit.exempt_clients: must not contain 0.0.0.0/0"),
                "{everyone}: {error}"
            );
        }
        assert!(production("10.1.2.3/32, 2001:db8::1").is_ok());
    }

    #[test]
    fn production_refuses_a_trusted_proxy_range_of_everyone() {
        let production = |proxies: &str| {
            load(&[
                ("STARSONGS_ENV", "production"),
                ("DATABASE_URL", "sqlite:///var/lib/starsongs/starsongs.db"),
                (
                    "STARSONGS__AUTH__JWT_SECRET",
                    "a production secret of at least 32 bytes",
                ),
                ("STARSONGS__SERVER__TRUSTED_PROXIES", proxies),
            ])
        };

        for everyone in ["0.0.0.0/0", "::/0", "10.0.0.0/8, ::/0"] {
            let error = production(everyone).unwrap_err();
            assert!(
                error.contains("server.trusted_proxies: must not contain 0.0.0.0/0"),
                "{everyone}: {error}"
            );
        }
        assert!(production("10.0.0.0/8, fd00::/8").is_ok());
        assert!(load(&[("STARSONGS__SERVER__TRUSTED_PROXIES", "0.0.0.0/0")]).is_ok());
    }

    #[test]
    fn the_removed_fail_open_setting_stops_start_up_by_name() {
        let error = load(&[("STARSONGS__RATE_LIMIT__FAIL_OPEN", "true")]).unwrap_err();

        assert!(error.contains("fail_open"), "{error}");
    }

    #[test]
    fn new_edge_settings_are_bounded() {
        for (variable, value, setting) in [
            (
                "STARSONGS__RATE_LIMIT__IPV6_PREFIX_LEN",
                "16",
                "rate_limit.ipv6_prefix_len",
            ),
            (
                "STARSONGS__RATE_LIMIT__IPV6_PREFIX_LEN",
                "129",
                "rate_limit.ipv6_prefix_len",
            ),
            (
                "STARSONGS__SERVER__HEADER_READ_TIMEOUT_SECS",
                "0",
                "server.header_read_timeout_secs",
            ),
            (
                "STARSONGS__SERVER__KEEP_ALIVE_TIMEOUT_SECS",
                "0",
                "server.keep_alive_timeout_secs",
            ),
            (
                "STARSONGS__SERVER__MAX_CONNECTIONS",
                "0",
                "server.max_connections",
            ),
            (
                "STARSONGS__AUTH__SESSION_MAX_SECS",
                "60",
                "auth.session_max_secs",
            ),
        ] {
            let error = load(&[(variable, value)]).unwrap_err();
            assert!(error.contains(setting), "{variable}={value}: {error}");
        }
        let header = load(&[("STARSONGS__SERVER__CLIENT_IP_HEADER", "x-real-ip")]).unwrap_err();
        assert!(header.contains("client_ip_header"), "{header}");
        assert!(load(&[("STARSONGS__SERVER__CLIENT_IP_HEADER", "forwarded")]).is_ok());
    }

    #[test]
    fn a_previous_key_needs_the_rotation_instant_and_must_differ() {
        let secret = "a development secret of at least 32 bytes";
        let without_instant = load(&[
            ("STARSONGS__AUTH__JWT_SECRET", secret),
            (
                "STARSONGS__AUTH__JWT_PREVIOUS_SECRET",
                "the previous secret, also at least 32 bytes",
            ),
        ])
        .unwrap_err();
        let same_key = load(&[
            ("STARSONGS__AUTH__JWT_SECRET", secret),
            ("STARSONGS__AUTH__JWT_PREVIOUS_SECRET", secret),
            ("STARSONGS__AUTH__JWT_ROTATED_AT", "2026-12-07T10:00:00Z"),
        ])
        .unwrap_err();
        let instant_alone =
            load(&[("STARSONGS__AUTH__JWT_ROTATED_AT", "2026-12-07T10:00:00Z")]).unwrap_err();
        let rotation = load(&[
            ("STARSONGS__AUTH__JWT_SECRET", secret),
            (
                "STARSONGS__AUTH__JWT_PREVIOUS_SECRET",
                "the previous secret, also at least 32 bytes",
            ),
            ("STARSONGS__AUTH__JWT_ROTATED_AT", "2026-12-07T10:00:00Z"),
        ]);

        assert!(
            without_instant.contains("auth.jwt_rotated_at: must be set"),
            "{without_instant}"
        );
        assert!(
            same_key.contains("auth.jwt_previous_secret: must differ"),
            "{same_key}"
        );
        assert!(
            instant_alone.contains("auth.jwt_rotated_at"),
            "{instant_alone}"
        );
        assert!(rotation.is_ok(), "{rotation:?}");
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

    #[test]
    fn short_previous_jwt_secrets_are_refused_in_production_by_name() {
        let error = load(&[
            ("STARSONGS_ENV", "production"),
            ("DATABASE_URL", "sqlite:///var/lib/starsongs/starsongs.db"),
            (
                "STARSONGS__AUTH__JWT_SECRET",
                "a production secret of at least 32 bytes",
            ),
            ("STARSONGS__AUTH__JWT_PREVIOUS_SECRET", "old-and-too-short"),
        ])
        .unwrap_err();

        assert!(
            error.contains("auth.jwt_previous_secret: must be at least 32 bytes"),
            "{error}"
        );
        assert!(!error.contains("old-and-too-short"), "{error}");
    }

    #[test]
    fn previous_keys_must_match_the_algorithm() {
        let hs256 = load(&[(
            "STARSONGS__AUTH__JWT_PREVIOUS_PUBLIC_KEY_FILE",
            "/nonexistent.pem",
        )])
        .unwrap_err();
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt");
        let private = format!("{fixtures}/ed25519-private.pem");
        let public = format!("{fixtures}/ed25519-public.pem");
        let eddsa = load(&[
            ("STARSONGS__AUTH__JWT_ALGORITHM", "EdDSA"),
            ("STARSONGS__AUTH__JWT_PRIVATE_KEY_FILE", &private),
            ("STARSONGS__AUTH__JWT_PUBLIC_KEY_FILE", &public),
            (
                "STARSONGS__AUTH__JWT_PREVIOUS_SECRET",
                "a previous secret of at least 32 bytes",
            ),
            (
                "STARSONGS__AUTH__JWT_PREVIOUS_PUBLIC_KEY_FILE",
                "/nonexistent.pem",
            ),
        ])
        .unwrap_err();

        assert!(
            hs256.contains("auth.jwt_previous_public_key_file: is for EdDSA"),
            "{hs256}"
        );
        assert!(
            eddsa.contains("auth.jwt_previous_secret: is for HS256"),
            "{eddsa}"
        );
        assert!(
            eddsa.contains("auth.jwt_previous_public_key_file: must name a readable"),
            "{eddsa}"
        );
    }

    #[test]
    fn the_previous_jwt_secret_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jwt-previous");
        std::fs::write(&file, "an old file secret, at least 32 bytes\n").unwrap();

        let settings = load(&[
            (
                "STARSONGS__AUTH__JWT_PREVIOUS_SECRET_FILE",
                file.to_str().unwrap(),
            ),
            ("STARSONGS__AUTH__JWT_ROTATED_AT", "2026-12-07T10:00:00Z"),
        ])
        .unwrap();

        assert_eq!(
            settings.auth.jwt_previous_secret.unwrap().expose_secret(),
            "an old file secret, at least 32 bytes"
        );
    }
}
