//! The `Settings` tree and its layered loading (DESIGN.md "Configuration").
//!
//! Precedence, later wins: built-in (or `STARSONGS_CONFIG_DIR`) `default.toml`, then
//! `<env>.toml`, then `DATABASE_URL`, then `STARSONGS__SECTION__KEY` variables, then
//! `<KEY>_FILE` secrets. Only this module reads the process environment.

mod secrets;
mod validate;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use config::{Config, Environment, File, FileFormat};
use secrecy::SecretString;
use serde::Deserialize;

pub use validate::{ConfigProblem, is_valid_dsn, parse_cidr};

/// Built-in configuration files, compiled into the binary so it runs from any directory.
const BUILT_IN: [(&str, &str); 4] = [
    ("default", include_str!("../../config/default.toml")),
    ("development", include_str!("../../config/development.toml")),
    ("test", include_str!("../../config/test.toml")),
    ("production", include_str!("../../config/production.toml")),
];

/// Settings whose values are lists; in environment variables they are comma-separated.
const LIST_KEYS: [&str; 3] = [
    "cors.allowed_origins",
    "server.trusted_proxies",
    "rate_limit.exempt_clients",
];

/// Which configuration profile is active (`STARSONGS_ENV`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunEnv {
    /// Local work: demo data, readable logs.
    #[default]
    Development,
    /// Automated tests.
    Test,
    /// Real deployments: strict validation.
    Production,
}

impl RunEnv {
    /// The profile's name, also the name of its configuration file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Test => "test",
            Self::Production => "production",
        }
    }

    /// Parses `STARSONGS_ENV`; unset means development.
    ///
    /// # Errors
    /// Any value other than development, test or production.
    pub fn parse(raw: Option<&str>) -> anyhow::Result<Self> {
        match raw.map(str::trim) {
            None | Some("") | Some("development") => Ok(Self::Development),
            Some("test") => Ok(Self::Test),
            Some("production") => Ok(Self::Production),
            Some(other) => anyhow::bail!(
                "STARSONGS_ENV must be development, test or production, not `{other}`"
            ),
        }
    }
}

/// All settings, one struct per TOML section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Profile these settings were loaded for.
    #[serde(skip)]
    pub env: RunEnv,
    /// `[server]`
    pub server: ServerSettings,
    /// `[database]`
    pub database: DatabaseSettings,
    /// `[auth]`
    pub auth: AuthSettings,
    /// `[cors]`
    pub cors: CorsSettings,
    /// `[rate_limit]`
    pub rate_limit: RateLimitSettings,
    /// `[admin]`
    pub admin: AdminSettings,
    /// `[sentry]`
    pub sentry: SentrySettings,
    /// `[tracing_export]`
    #[serde(default)]
    pub tracing_export: TracingExportSettings,
    /// The trace export `tracing_export` and the OpenTelemetry variables describe, if any.
    #[serde(skip)]
    pub trace_export: Option<TraceExport>,
    /// `[log]`
    pub log: LogSettings,
}

/// `[server]`: the public HTTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to bind (`0.0.0.0` in containers, `127.0.0.1` for local work).
    pub host: String,
    /// Port to bind; 0 picks a free one (tests).
    pub port: u16,
    /// Largest accepted request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Requests still running after this long get 504.
    pub request_timeout_secs: u64,
    /// How long in-flight requests may run on after shutdown begins.
    pub shutdown_grace_secs: u64,
    /// How long to keep accepting requests (readiness already 503) after a shutdown signal,
    /// so that load balancers stop sending new traffic first.
    pub shutdown_delay_secs: u64,
    /// Largest request head (request line and headers) accepted; larger ones get 431.
    pub max_header_bytes: usize,
    /// Requests served at once; above it new requests get 503 with `Retry-After` at once
    /// (load shedding). Health probes are exempt.
    pub max_in_flight: usize,
    /// Peers (CIDRs, e.g. `10.0.0.0/8`) whose `server.client_ip_header` and
    /// `X-Forwarded-Proto` are believed. Production refuses a `/0` entry.
    pub trusted_proxies: Vec<String>,
    /// The one forwarding header the client address is read from when the peer is a
    /// trusted proxy; every other forwarding header is ignored.
    pub client_ip_header: ClientIpHeader,
    /// A connection that has not sent a complete request head within this many seconds
    /// is closed (slow-loris). 1–300.
    pub header_read_timeout_secs: u64,
    /// A keep-alive connection idle between requests for longer than this is closed.
    /// 1–3600.
    pub keep_alive_timeout_secs: u64,
    /// Open connections per listener; past it new connections wait in the accept backlog
    /// until one closes. Must fit the process's open-file limit.
    pub max_connections: usize,
    /// `[server.tls]`: in-process TLS.
    pub tls: TlsSettings,
}

/// Which forwarding header names the client behind a trusted proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For` (ingress-nginx, Traefik, cloud load balancers): the proxy appends
    /// the address it saw.
    #[serde(rename = "x-forwarded-for")]
    XForwardedFor,
    /// RFC 7239 `Forwarded` (`for=`), for proxies that append to it.
    #[serde(rename = "forwarded")]
    Forwarded,
}

impl ClientIpHeader {
    /// The header's name, lowercase.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }
}

/// `[server.tls]`: TLS termination in the process (rustls; TLS 1.2 and 1.3 only).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain. With `key_file`, the listener speaks HTTPS only.
    pub cert_file: Option<PathBuf>,
    /// PEM private key.
    pub key_file: Option<PathBuf>,
    /// How often the files are checked for changes (they are also reloaded on SIGHUP).
    pub reload_interval_secs: u64,
    /// When set, a plain-HTTP listener on this port that only redirects (308) to HTTPS.
    pub redirect_http_port: Option<u16>,
}

impl TlsSettings {
    /// Whether TLS is configured.
    pub fn is_enabled(&self) -> bool {
        self.cert_file.is_some() && self.key_file.is_some()
    }
}

impl ServerSettings {
    /// `request_timeout_secs` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// `shutdown_grace_secs` as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// `shutdown_delay_secs` as a duration.
    pub fn shutdown_delay(&self) -> Duration {
        Duration::from_secs(self.shutdown_delay_secs)
    }

    /// `header_read_timeout_secs` as a duration.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs)
    }

    /// `keep_alive_timeout_secs` as a duration.
    pub fn keep_alive_timeout(&self) -> Duration {
        Duration::from_secs(self.keep_alive_timeout_secs)
    }
}

/// SQLite's `synchronous` pragma, as far as this service allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    /// Every commit is on disk before it is acknowledged (survives power loss).
    Full,
    /// WAL commits may be lost on power loss (not on a process crash); faster writes.
    Normal,
}

/// `[database]`: connection and schema management.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://path?mode=rwc`, `postgres://user:pass@host:5432/db?sslmode=verify-full`
    /// (or `postgresql://`). Secret: a URL may carry a password.
    pub url: Option<SecretString>,
    /// Pool maximum.
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long a request waits for a free connection before 503.
    pub acquire_timeout_secs: u64,
    /// Idle connections above the minimum are closed after this long.
    pub idle_timeout_secs: u64,
    /// Connections are recycled after this long.
    pub max_lifetime_secs: u64,
    /// Apply pending migrations when `serve` starts.
    pub migrate_on_start: bool,
    /// Insert the original catalog's demo data once (development only).
    pub seed_demo_data: bool,
    /// SQLite `synchronous` pragma.
    pub sqlite_synchronous: SqliteSynchronous,
    /// Statements slower than this are logged at warn (the SQL text, never its values).
    pub slow_query_ms: u64,
    /// How long SQLite waits on a locked database before giving up.
    pub sqlite_busy_timeout_ms: u64,
    /// Server databases cancel any statement running longer than this (PostgreSQL
    /// `statement_timeout`); the request gets 503. 0 turns the bound off.
    pub statement_timeout_ms: u64,
}

impl DatabaseSettings {
    /// `acquire_timeout_secs` as a duration.
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_secs(self.acquire_timeout_secs)
    }

    /// `idle_timeout_secs` as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    /// `max_lifetime_secs` as a duration.
    pub fn max_lifetime(&self) -> Duration {
        Duration::from_secs(self.max_lifetime_secs)
    }

    /// `sqlite_busy_timeout_ms` as a duration.
    pub fn sqlite_busy_timeout(&self) -> Duration {
        Duration::from_millis(self.sqlite_busy_timeout_ms)
    }
}

/// How access tokens are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with `auth.jwt_secret` (the default).
    #[serde(rename = "HS256")]
    Hs256,
    /// Ed25519 with the PEM key pair in `auth.jwt_private_key_file`/`jwt_public_key_file`.
    #[serde(rename = "EdDSA")]
    EdDsa,
    /// RSA PKCS#1 v1.5 with SHA-256, key pair from files as for EdDSA.
    #[serde(rename = "RS256")]
    Rs256,
}

/// Shortest HS256 secret `auth.jwt_secret` and `auth.jwt_previous_secret` accept, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// `[auth]`: accounts and credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Access-token signing algorithm.
    pub jwt_algorithm: JwtAlgorithm,
    /// HS256 key: its UTF-8 bytes, at least 32. Required in production with HS256; in
    /// development and test a random one is made at start-up when unset (tokens then do
    /// not survive a restart).
    pub jwt_secret: Option<SecretString>,
    /// HS256 only: the secret being rotated out. Tokens it signed before
    /// `auth.jwt_rotated_at` are still accepted (under the same rules) until they expire;
    /// nothing is signed with it. At least 32 bytes, and not the current secret.
    pub jwt_previous_secret: Option<SecretString>,
    /// When the current key replaced the previous one (RFC 3339, e.g.
    /// `2026-12-07T10:00:00Z`). Required with a previous key: it verifies only tokens
    /// issued before this instant, and none after `access_ttl_secs` (plus skew) past it.
    pub jwt_rotated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// PEM private key (PKCS#8) for EdDSA or RS256.
    pub jwt_private_key_file: Option<PathBuf>,
    /// PEM public key (SPKI) for EdDSA or RS256.
    pub jwt_public_key_file: Option<PathBuf>,
    /// EdDSA or RS256 only: the public key of the pair being rotated out; tokens its
    /// private key signed are still accepted, with the same algorithm and rules.
    pub jwt_previous_public_key_file: Option<PathBuf>,
    /// `iss` of issued tokens, and the only one accepted.
    pub issuer: String,
    /// `aud` of issued tokens, and the only one accepted.
    pub audience: String,
    /// Access-token lifetime (API.md: 900).
    pub access_ttl_secs: u64,
    /// Refresh-token lifetime (API.md: 7 days).
    pub refresh_ttl_secs: u64,
    /// A login ends this long after its password sign-in, however often it is refreshed
    /// (API.md: 30 days by default). At least `refresh_ttl_secs`.
    pub session_max_secs: u64,
    /// Whether anyone, unauthenticated, may read the catalog.
    pub public_read: bool,
    /// Whether `POST /v1/auth/register` is open.
    pub allow_registration: bool,
    /// How long a replica trusts what it last read about an account's status and role (or
    /// an API key) before reading it again: the bound on how late a deactivation, deletion,
    /// demotion or key revocation made on another replica takes effect. 1–60.
    pub grant_cache_secs: u64,
    /// Development only: when no active admin exists, `serve` creates `admin` with a random
    /// password and prints it once.
    pub create_dev_admin: bool,
    /// Argon2id memory cost in KiB (OWASP: 19456).
    pub argon2_memory_kib: u32,
    /// Argon2id passes (OWASP: 2).
    pub argon2_iterations: u32,
    /// Argon2id lanes (OWASP: 1).
    pub argon2_parallelism: u32,
    /// Hashes computed at once (0: half the available cores, at least 1); more wait, so
    /// memory stays below `max_concurrent_hashes * argon2_memory_kib` and logins leave
    /// cores to the readers. See [`AuthSettings::concurrent_hashes`].
    pub max_concurrent_hashes: usize,
}

impl AuthSettings {
    /// `max_concurrent_hashes`, with 0 resolved to half of
    /// [`std::thread::available_parallelism`] (at least 1): Argon2 is pure CPU, and on a
    /// small machine a burst of logins would otherwise starve every other request.
    pub fn concurrent_hashes(&self) -> usize {
        match self.max_concurrent_hashes {
            0 => std::thread::available_parallelism().map_or(1, |cores| (cores.get() / 2).max(1)),
            n => n,
        }
    }
}

/// `[cors]`: which browser origins may call the API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSettings {
    /// Exact origins (`https://app.example.com`); `*` only outside production.
    pub allowed_origins: Vec<String>,
}

/// Where rate-limit counters live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitBackend {
    /// In this process: each replica has its own budget.
    Memory,
    /// In Redis: all replicas share one budget per client.
    Redis,
}

/// `[rate_limit]`: per-client request budgets (GCRA).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Whether requests are limited at all.
    pub enabled: bool,
    /// Sustained rate per client on `/v1` (except `/v1/auth`).
    pub requests_per_minute: u32,
    /// Requests a client may make at once after being idle.
    pub burst: u32,
    /// Sustained rate per client on `/v1/auth/*`.
    pub auth_requests_per_minute: u32,
    /// Burst on `/v1/auth/*`.
    pub auth_burst: u32,
    /// `memory` or `redis`.
    pub backend: RateLimitBackend,
    /// `redis://host:6379/0` (secret: it may carry a password).
    pub redis_url: Option<SecretString>,
    /// Prefix of the Redis keys (several deployments can share one Redis).
    pub redis_key_prefix: String,
    /// How long a Redis call may take before it counts as a failure.
    pub redis_timeout_ms: u64,
    /// IPv6 clients are counted per network of this prefix length (64: one budget per
    /// /64, what one host usually holds). 32–128.
    pub ipv6_prefix_len: u8,
    /// Client addresses (CIDRs, e.g. `10.1.2.3/32`) that are never rate limited: trusted
    /// server-side callers such as a frontend that renders pages on its server. The address
    /// is the one `server.trusted_proxies` resolves; the login lockout still applies.
    pub exempt_clients: Vec<String>,
}

/// `[admin]`: the operators' listener (metrics), never exposed publicly.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Address to bind.
    pub host: String,
    /// Port to bind (9090); 0 picks a free one.
    pub port: u16,
    /// Serves `POST /debug/panic` on the admin listener, to check error reporting end to
    /// end. Refused in production.
    pub debug_endpoints: bool,
}

/// `[sentry]`: error reporting; off while `dsn` is unset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentrySettings {
    /// The project DSN (secret: it carries the project key).
    pub dsn: Option<SecretString>,
    /// Environment tag; the profile name when unset.
    pub environment: Option<String>,
    /// Share of requests traced (0.0–1.0).
    pub traces_sample_rate: f32,
}

/// `[tracing_export]`: OpenTelemetry trace export over OTLP/HTTP (protobuf); off while no
/// endpoint is set. Each setting left unset takes the standard OpenTelemetry variable
/// ([`TracingExportSettings::resolve_from`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingExportSettings {
    /// Base URL of an OTLP/HTTP collector (`http://collector:4318`); spans are posted to
    /// `<url>/v1/traces`. Unset or empty: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full
    /// URL) or `OTEL_EXPORTER_OTLP_ENDPOINT` (the base); none of them: export is off.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of every span. Unset or empty: `OTEL_SERVICE_NAME`, else
    /// `starsongs`.
    pub service_name: Option<String>,
    /// Share of new traces sampled, 0.0–1.0 (parent-based: a request that carries a
    /// `traceparent` follows its caller's decision). Unset: `OTEL_TRACES_SAMPLER` and
    /// `OTEL_TRACES_SAMPLER_ARG`, else 1.0.
    pub sample_ratio: Option<f64>,
}

/// Where and how spans are exported, once settings and OpenTelemetry variables are merged.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceExport {
    /// The URL spans are posted to (`…/v1/traces`).
    pub traces_url: String,
    /// `service.name`.
    pub service_name: String,
    /// How traces are sampled.
    pub sampler: TraceSampler,
}

/// A sampler, as `OTEL_TRACES_SAMPLER` names them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TraceSampler {
    /// Every trace.
    AlwaysOn,
    /// None.
    AlwaysOff,
    /// A share of trace ids, ignoring the caller's decision.
    Ratio(f64),
    /// The caller's decision when there is one, else `inner` (for new traces).
    ParentBased(ParentlessSampler),
}

/// What a parent-based sampler does for a trace that starts here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParentlessSampler {
    /// Sample it.
    AlwaysOn,
    /// Do not.
    AlwaysOff,
    /// Sample this share of trace ids.
    Ratio(f64),
}

impl TracingExportSettings {
    /// The export to set up, or `None` when it is off: each setting, else its standard
    /// OpenTelemetry variable in `vars`.
    ///
    /// # Errors
    /// An `OTEL_TRACES_SAMPLER` or `OTEL_TRACES_SAMPLER_ARG` that is not one the
    /// specification names (the setting itself is checked by validation).
    pub fn resolve_from(
        &self,
        vars: &HashMap<String, String>,
    ) -> anyhow::Result<Option<TraceExport>> {
        let var = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let traces_url = match self.otlp_endpoint.as_deref().map(str::trim) {
            Some(base) if !base.is_empty() => traces_url(base),
            _ => match (
                var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
                var("OTEL_EXPORTER_OTLP_ENDPOINT"),
            ) {
                (Some(full), _) => full.to_owned(),
                (None, Some(base)) => traces_url(base),
                (None, None) => return Ok(None),
            },
        };
        let service_name = self
            .service_name
            .as_deref()
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .or_else(|| var("OTEL_SERVICE_NAME"))
            .map(str::to_owned)
            .unwrap_or_else(|| "starsongs".to_owned());
        let sampler = match self.sample_ratio {
            Some(ratio) => TraceSampler::ParentBased(ParentlessSampler::Ratio(ratio)),
            None => sampler_from(var("OTEL_TRACES_SAMPLER"), var("OTEL_TRACES_SAMPLER_ARG"))?,
        };
        Ok(Some(TraceExport {
            traces_url,
            service_name,
            sampler,
        }))
    }
}

/// `<base>/v1/traces`, as the OTLP/HTTP specification derives the signal's URL.
fn traces_url(base: &str) -> String {
    format!("{}/v1/traces", base.trim_end_matches('/'))
}

/// The sampler `OTEL_TRACES_SAMPLER` names (default `parentbased_always_on`), with its
/// ratio from `OTEL_TRACES_SAMPLER_ARG` (default 1.0).
fn sampler_from(name: Option<&str>, arg: Option<&str>) -> anyhow::Result<TraceSampler> {
    let ratio = || -> anyhow::Result<f64> {
        match arg {
            None => Ok(1.0),
            Some(raw) => raw
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    anyhow::anyhow!("OTEL_TRACES_SAMPLER_ARG must be a ratio from 0.0 to 1.0")
                }),
        }
    };
    Ok(match name.unwrap_or("parentbased_always_on") {
        "always_on" => TraceSampler::AlwaysOn,
        "always_off" => TraceSampler::AlwaysOff,
        "traceidratio" => TraceSampler::Ratio(ratio()?),
        "parentbased_always_on" => TraceSampler::ParentBased(ParentlessSampler::AlwaysOn),
        "parentbased_always_off" => TraceSampler::ParentBased(ParentlessSampler::AlwaysOff),
        "parentbased_traceidratio" => TraceSampler::ParentBased(ParentlessSampler::Ratio(ratio()?)),
        other => anyhow::bail!(
            "OTEL_TRACES_SAMPLER `{other}` is not supported (always_on, always_off, traceidratio, \
             parentbased_always_on, parentbased_always_off, parentbased_traceidratio)"
        ),
    })
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// A `tracing` filter (`info`, `starsongs=debug,info`); `RUST_LOG` wins when set.
    pub level: String,
    /// `json` or `pretty`.
    pub format: LogFormat,
}

impl Settings {
    /// Loads settings from the process environment (see the module docs for precedence).
    ///
    /// # Errors
    /// Unreadable files, malformed values, unknown keys, or invalid settings (every problem
    /// is named by its dotted setting name).
    pub fn load() -> anyhow::Result<Self> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::load_from(&vars)
    }

    /// Loads settings as [`Settings::load`] does, from the given variables instead of the
    /// process environment (tests).
    ///
    /// # Errors
    /// As for [`Settings::load`].
    pub fn load_from(vars: &HashMap<String, String>) -> anyhow::Result<Self> {
        let env = RunEnv::parse(vars.get("STARSONGS_ENV").map(String::as_str))?;
        let config_dir = vars.get("STARSONGS_CONFIG_DIR").map(PathBuf::from);
        let mut builder = Config::builder();
        for name in ["default", env.name()] {
            builder = builder.add_source(file_source(name, config_dir.as_ref())?);
        }
        let mut environment: HashMap<String, String> = HashMap::new();
        if let Some(url) = vars.get("DATABASE_URL") {
            environment.insert("STARSONGS__DATABASE__URL".into(), url.clone());
        }
        for (key, value) in vars {
            if key.starts_with("STARSONGS__") && !secrets::is_file_variable(key) {
                environment.insert(key.clone(), value.clone());
            }
        }
        let mut env_source = Environment::with_prefix("STARSONGS")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .source(Some(environment));
        for key in LIST_KEYS {
            env_source = env_source.with_list_parse_key(key);
        }
        builder = builder.add_source(env_source);
        for (key, value) in secrets::read_file_secrets(vars)? {
            builder = builder.set_override(key, value)?;
        }
        let mut settings: Settings = builder
            .build()
            .and_then(Config::try_deserialize)
            .context("invalid configuration")?;
        settings.env = env;
        // List entries from environment variables may carry spaces after the commas.
        let trimmed = |list: &[String]| -> Vec<String> {
            list.iter()
                .map(|entry| entry.trim().to_owned())
                .filter(|entry| !entry.is_empty())
                .collect()
        };
        settings.cors.allowed_origins = trimmed(&settings.cors.allowed_origins);
        settings.server.trusted_proxies = trimmed(&settings.server.trusted_proxies);
        settings.rate_limit.exempt_clients = trimmed(&settings.rate_limit.exempt_clients);
        settings.trace_export = settings
            .tracing_export
            .resolve_from(vars)
            .context("invalid configuration")?;
        settings.validate().map_err(|problems| {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("invalid configuration:\n  {}", lines.join("\n  "))
        })?;
        Ok(settings)
    }
}

fn file_source(
    name: &str,
    config_dir: Option<&PathBuf>,
) -> anyhow::Result<File<config::FileSourceString, FileFormat>> {
    if let Some(dir) = config_dir {
        let path = dir.join(format!("{name}.toml"));
        if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            return Ok(File::from_str(&text, FileFormat::Toml));
        }
    }
    let (_, text) = BUILT_IN
        .iter()
        .find(|(file, _)| *file == name)
        .context("no built-in configuration file")?;
    Ok(File::from_str(text, FileFormat::Toml))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn url(settings: &Settings) -> String {
        settings
            .database
            .url
            .as_ref()
            .map(|u| u.expose_secret().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn development_is_the_default_and_seeds_demo_data() {
        let settings = Settings::load_from(&vars(&[])).unwrap();

        assert_eq!(settings.env, RunEnv::Development);
        assert!(settings.database.seed_demo_data);
        assert_eq!(settings.server.port, 8080);
        assert_eq!(settings.log.format, LogFormat::Pretty);
    }

    #[test]
    fn concurrent_hashes_default_to_half_the_cores_and_an_explicit_value_wins() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let default = Settings::load_from(&vars(&[])).unwrap();
        let explicit =
            Settings::load_from(&vars(&[("STARSONGS__AUTH__MAX_CONCURRENT_HASHES", "3")])).unwrap();

        assert_eq!(default.auth.max_concurrent_hashes, 0);
        assert_eq!(default.auth.concurrent_hashes(), (cores / 2).max(1));
        assert_eq!(explicit.auth.concurrent_hashes(), 3);
    }

    #[test]
    fn precedence_is_file_then_database_url_then_starsongs_variables() {
        let only_generic = vars(&[("DATABASE_URL", "sqlite://generic.db")]);
        let both = vars(&[
            ("DATABASE_URL", "sqlite://generic.db"),
            ("STARSONGS__DATABASE__URL", "sqlite://specific.db"),
        ]);

        assert_eq!(
            url(&Settings::load_from(&only_generic).unwrap()),
            "sqlite://generic.db"
        );
        assert_eq!(
            url(&Settings::load_from(&both).unwrap()),
            "sqlite://specific.db"
        );
    }

    #[test]
    fn nested_overrides_and_lists_come_from_one_variable_each() {
        let settings = Settings::load_from(&vars(&[
            ("STARSONGS__SERVER__PORT", "9999"),
            ("STARSONGS__DATABASE__MIGRATE_ON_START", "false"),
            (
                "STARSONGS__SERVER__TRUSTED_PROXIES",
                "10.0.0.0/8, 192.0.2.1",
            ),
            (
                "STARSONGS__CORS__ALLOWED_ORIGINS",
                "https://a.example, https://b.example:8443",
            ),
            (
                "STARSONGS__RATE_LIMIT__EXEMPT_CLIENTS",
                "10.1.2.3/32, 2001:db8::/64",
            ),
        ]))
        .unwrap();

        assert_eq!(settings.server.port, 9999);
        assert!(!settings.database.migrate_on_start);
        assert_eq!(settings.server.trusted_proxies, ["10.0.0.0/8", "192.0.2.1"]);
        assert_eq!(
            settings.rate_limit.exempt_clients,
            ["10.1.2.3/32", "2001:db8::/64"]
        );
        assert_eq!(
            settings.cors.allowed_origins,
            ["https://a.example", "https://b.example:8443"]
        );
    }

    #[test]
    fn a_single_origin_is_a_list_of_one() {
        let settings = Settings::load_from(&vars(&[(
            "STARSONGS__CORS__ALLOWED_ORIGINS",
            "https://only.example",
        )]))
        .unwrap();

        assert_eq!(settings.cors.allowed_origins, ["https://only.example"]);
    }

    #[test]
    fn misspelt_keys_and_bad_values_are_rejected() {
        for pairs in [
            [("STARSONGS__SERVER__PROT", "1")],
            [("STARSONGS__SERVER__PORT", "eighty")],
            [("STARSONGS__LOG__FORMAT", "xml")],
            [("STARSONGS_ENV", "staging")],
        ] {
            assert!(Settings::load_from(&vars(&pairs)).is_err(), "{pairs:?}");
        }
    }

    #[test]
    fn config_dir_files_replace_built_in_ones() {
        let dir = tempfile::tempdir().unwrap();
        let default = BUILT_IN[0].1.replace("port = 8080", "port = 7070");
        std::fs::write(dir.path().join("default.toml"), default).unwrap();

        let settings = Settings::load_from(&vars(&[(
            "STARSONGS_CONFIG_DIR",
            dir.path().to_str().unwrap(),
        )]))
        .unwrap();

        assert_eq!(settings.server.port, 7070);
    }

    #[test]
    fn secret_files_win_and_lose_their_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("db-url");
        std::fs::write(&file, "sqlite://from-file.db\n").unwrap();

        let settings = Settings::load_from(&vars(&[
            ("DATABASE_URL", "sqlite://generic.db"),
            ("STARSONGS__DATABASE__URL_FILE", file.to_str().unwrap()),
        ]))
        .unwrap();

        assert_eq!(url(&settings), "sqlite://from-file.db");
    }

    #[test]
    fn debug_output_redacts_the_database_url() {
        let settings = Settings::load_from(&vars(&[(
            "DATABASE_URL",
            "sqlite://secret-password-in-url.db",
        )]))
        .unwrap();

        let debug = format!("{settings:?}");

        assert!(!debug.contains("secret-password-in-url"), "{debug}");
    }

    /// The fields a settings struct accepts, read from its `deny_unknown_fields` error
    /// (`unknown field ..., expected one of ...`): this lists optional settings too,
    /// which `default.toml` leaves out. `section` is dotted (`server.tls`), empty for the
    /// top level.
    fn fields_of(section: &str) -> Vec<String> {
        let probe = if section.is_empty() {
            "STARSONGS__ZZ_PROBE__KEY".to_owned()
        } else {
            format!(
                "STARSONGS__{}__ZZ_PROBE",
                section.replace('.', "__").to_uppercase()
            )
        };
        let error = format!(
            "{:#}",
            Settings::load_from(&vars(&[(probe.as_str(), "1")])).unwrap_err()
        );
        // serde: "expected `a`", "expected `a` or `b`", "expected one of `a`, `b`, ...";
        // config appends " for key `section`".
        let expected = error
            .split_once("`, expected ")
            .unwrap_or_else(|| panic!("no field list in: {error}"))
            .1;
        let expected = expected.split(" for key ").next().unwrap_or_default();
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    /// Every leaf setting of the `Settings` tree, dotted, with its `default.toml` value.
    fn code_settings() -> Vec<(String, Option<serde_json::Value>)> {
        let defaults: serde_json::Value = Config::builder()
            .add_source(File::from_str(BUILT_IN[0].1, FileFormat::Toml))
            .build()
            .and_then(Config::try_deserialize)
            .unwrap();
        let mut leaves = Vec::new();
        let mut sections = vec![String::new()];
        while let Some(section) = sections.pop() {
            for field in fields_of(&section) {
                let dotted = if section.is_empty() {
                    field
                } else {
                    format!("{section}.{field}")
                };
                let default = dotted
                    .split('.')
                    .try_fold(&defaults, |value, key| value.get(key))
                    .cloned();
                match default {
                    Some(serde_json::Value::Object(_)) => sections.push(dotted),
                    other => leaves.push((dotted, other)),
                }
            }
        }
        leaves.sort_by(|a, b| a.0.cmp(&b.0));
        leaves
    }

    /// `(setting, default, environment variable cell)` of each row of README's settings
    /// table.
    fn readme_settings() -> Vec<(String, String, String)> {
        let readme = include_str!("../../docs/configuration.md");
        let table = readme
            .split_once("\n## Settings\n")
            .unwrap()
            .1
            .split("\n#")
            .next()
            .unwrap();
        table
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split(" | ").map(str::trim).collect();
                let is_setting_row = line.starts_with("| `")
                    && cells.len() >= 4
                    && cells[2].contains("`STARSONGS__");
                is_setting_row.then(|| {
                    (
                        cells[0]
                            .trim_start_matches("| ")
                            .trim_matches('`')
                            .to_owned(),
                        cells[1].to_owned(),
                        cells[2].to_owned(),
                    )
                })
            })
            .collect()
    }

    /// How docs/configuration.md writes a `default.toml` value: backticked, strings without quotes.
    fn as_documented(value: &serde_json::Value) -> String {
        match value {
            serde_json::Value::String(text) => format!("`{text}`"),
            serde_json::Value::Number(n) if n.is_f64() => format!("`{:?}`", n.as_f64().unwrap()),
            other => format!("`{other}`"),
        }
    }

    fn variable_of(setting: &str) -> String {
        format!("STARSONGS__{}", setting.replace('.', "__").to_uppercase())
    }

    #[test]
    fn readme_documents_every_setting_with_its_default_and_variable() {
        let code = code_settings();
        let readme = readme_settings();
        let documented: HashMap<&str, (&str, &str)> = readme
            .iter()
            .map(|(s, d, v)| (s.as_str(), (d.as_str(), v.as_str())))
            .collect();

        assert!(code.len() > 50, "the field probe found too few: {code:?}");
        let mut problems = Vec::new();
        for (setting, default) in &code {
            let Some((readme_default, variable)) = documented.get(setting.as_str()) else {
                problems.push(format!(
                    "{setting}: missing from docs/configuration.md's settings table"
                ));
                continue;
            };
            if !variable.contains(&format!("`{}`", variable_of(setting))) {
                problems.push(format!("{setting}: variable {variable}"));
            }
            match default {
                Some(value) if *readme_default != as_documented(value) => problems.push(format!(
                    "{setting}: docs/configuration.md default {readme_default}, default.toml {}",
                    as_documented(value)
                )),
                None if readme_default.starts_with('`') => problems.push(format!(
                    "{setting}: docs/configuration.md default {readme_default}, none in default.toml"
                )),
                _ => {}
            }
        }
        for (setting, _, _) in &readme {
            if !code.iter().any(|(s, _)| s == setting) {
                problems.push(format!(
                    "{setting}: in docs/configuration.md but not a setting"
                ));
            }
        }

        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn deployment_files_name_only_real_settings() {
        let root = env!("CARGO_MANIFEST_DIR");
        let settings: Vec<String> = code_settings().into_iter().map(|(s, _)| s).collect();
        let mut files = vec![format!("{root}/compose.yaml")];
        for dir in ["helm/starsongs", "helm/starsongs/templates"] {
            for entry in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let is_values = dir.ends_with("templates") || name.starts_with("values");
                if path.is_file() && is_values {
                    files.push(path.to_string_lossy().into_owned());
                }
            }
        }
        let mut problems = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            for (start, _) in text.match_indices("STARSONGS__") {
                let name: String = text[start..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                // The documented pattern, not a variable.
                if name == "STARSONGS__SECTION__KEY" {
                    continue;
                }
                let variable = if secrets::is_file_variable(&name) {
                    name.trim_end_matches("_FILE")
                } else {
                    name.as_str()
                };
                if !settings.iter().any(|s| variable_of(s) == variable) {
                    problems.push(format!("{file}: {name} is not a setting"));
                }
            }
        }

        assert!(files.len() > 3, "{files:?}");
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// The dotted keys of the leaves under `config:` in a Helm values file, read by
    /// indentation (the chart writes plain `key: value` lines, two spaces a level).
    fn chart_config_keys(values: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut path: Vec<String> = Vec::new();
        let mut inside = false;
        for line in values.lines() {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            if indent == 0 {
                inside = trimmed.starts_with("config:");
                path.clear();
                continue;
            }
            let Some((key, value)) = trimmed.split_once(':') else {
                continue;
            };
            if !inside
                || !key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                continue;
            }
            path.truncate(indent / 2 - 1);
            path.push(key.to_owned());
            if !value.trim().is_empty() {
                keys.push(path.join("."));
            }
        }
        keys
    }

    #[test]
    fn the_charts_config_names_only_real_settings_and_has_the_edge_settings() {
        let root = env!("CARGO_MANIFEST_DIR");
        let settings: Vec<String> = code_settings().into_iter().map(|(s, _)| s).collect();
        let values = std::fs::read_to_string(format!("{root}/helm/starsongs/values.yaml")).unwrap();
        let keys = chart_config_keys(&values);

        let unknown: Vec<&String> = keys.iter().filter(|k| !settings.contains(k)).collect();
        assert!(keys.len() > 10, "{keys:?}");
        assert!(unknown.is_empty(), "not settings: {unknown:?}");
        for edge in [
            "server.client_ip_header",
            "server.trusted_proxies",
            "server.header_read_timeout_secs",
            "server.keep_alive_timeout_secs",
            "server.max_connections",
            "rate_limit.ipv6_prefix_len",
            "rate_limit.exempt_clients",
            "auth.session_max_secs",
            "auth.jwt_rotated_at",
        ] {
            assert!(
                keys.iter().any(|k| k == edge),
                "{edge} missing from values.yaml"
            );
        }
    }

    #[test]
    fn trace_export_takes_each_setting_else_the_standard_variable() {
        let otel = vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_SERVICE_NAME", "from-otel"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
        ]);
        let unset = TracingExportSettings::default();
        let set = TracingExportSettings {
            otlp_endpoint: Some("https://jaeger.example.com:4318".into()),
            service_name: Some("catalog".into()),
            sample_ratio: Some(1.0),
        };

        assert_eq!(
            unset.resolve_from(&vars(&[])).unwrap(),
            None,
            "off by default"
        );
        assert_eq!(
            unset.resolve_from(&otel).unwrap(),
            Some(TraceExport {
                traces_url: "http://collector:4318/v1/traces".into(),
                service_name: "from-otel".into(),
                sampler: TraceSampler::ParentBased(ParentlessSampler::Ratio(0.1)),
            })
        );
        assert_eq!(
            set.resolve_from(&otel).unwrap(),
            Some(TraceExport {
                traces_url: "https://jaeger.example.com:4318/v1/traces".into(),
                service_name: "catalog".into(),
                sampler: TraceSampler::ParentBased(ParentlessSampler::Ratio(1.0)),
            })
        );
        let empty = TracingExportSettings {
            otlp_endpoint: Some(String::new()),
            service_name: Some(" ".into()),
            ..TracingExportSettings::default()
        };
        assert_eq!(
            empty
                .resolve_from(&otel)
                .unwrap()
                .map(|e| (e.traces_url, e.service_name)),
            Some(("http://collector:4318/v1/traces".into(), "from-otel".into())),
            "an empty setting (compose and the chart pass one) is unset"
        );
        let full = vars(&[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://c:4318/custom/traces",
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
        ]);
        let export = unset.resolve_from(&full).unwrap().unwrap();
        assert_eq!(export.traces_url, "http://c:4318/custom/traces");
        assert_eq!(export.service_name, "starsongs");
        assert_eq!(
            export.sampler,
            TraceSampler::ParentBased(ParentlessSampler::AlwaysOn)
        );
        for (name, arg) in [("sometimes", None), ("traceidratio", Some("2"))] {
            let mut bad = vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_TRACES_SAMPLER", name),
            ];
            bad.extend(arg.map(|a| ("OTEL_TRACES_SAMPLER_ARG", a)));
            assert!(unset.resolve_from(&vars(&bad)).is_err(), "{name} {arg:?}");
        }
    }

    #[test]
    fn trace_export_settings_are_checked_by_name() {
        let load = |pairs: &[(&str, &str)]| Settings::load_from(&vars(pairs));
        let ratio = load(&[("STARSONGS__TRACING_EXPORT__SAMPLE_RATIO", "1.5")])
            .unwrap_err()
            .to_string();
        let endpoint = load(&[("STARSONGS__TRACING_EXPORT__OTLP_ENDPOINT", "jaeger:4318")])
            .unwrap_err()
            .to_string();
        // The chart writes 1.0 as "1".
        let whole = load(&[
            (
                "STARSONGS__TRACING_EXPORT__OTLP_ENDPOINT",
                "http://jaeger:4318",
            ),
            ("STARSONGS__TRACING_EXPORT__SAMPLE_RATIO", "1"),
        ])
        .unwrap();

        assert!(ratio.contains("tracing_export.sample_ratio"), "{ratio}");
        assert!(
            endpoint.contains("tracing_export.otlp_endpoint"),
            "{endpoint}"
        );
        assert_eq!(
            whole.trace_export.map(|e| e.sampler),
            Some(TraceSampler::ParentBased(ParentlessSampler::Ratio(1.0)))
        );
    }
}
