//! `<KEY>_FILE` secrets: a setting read from the file a variable names (Kubernetes secrets
//! mounted as files). Only settings listed here are secrets; other names ending in `_FILE`
//! are ordinary settings (such as a future `server.tls.cert_file`).

use std::collections::HashMap;

use anyhow::Context;

/// Secret settings as `(dotted name, environment variable)`.
const SECRET_SETTINGS: [(&str, &str); 5] = [
    ("sentry.dsn", "STARSONGS__SENTRY__DSN"),
    ("database.url", "STARSONGS__DATABASE__URL"),
    ("auth.jwt_secret", "STARSONGS__AUTH__JWT_SECRET"),
    (
        "auth.jwt_previous_secret",
        "STARSONGS__AUTH__JWT_PREVIOUS_SECRET",
    ),
    ("rate_limit.redis_url", "STARSONGS__RATE_LIMIT__REDIS_URL"),
];

/// Whether `variable` is the `_FILE` form of a secret setting.
pub(super) fn is_file_variable(variable: &str) -> bool {
    SECRET_SETTINGS
        .iter()
        .any(|(_, var)| variable.strip_suffix("_FILE") == Some(var))
}

/// Reads every secret whose `_FILE` variable is set (also `DATABASE_URL_FILE`), returning
/// `(dotted name, value)` pairs. One trailing newline is removed.
pub(super) fn read_file_secrets(
    vars: &HashMap<String, String>,
) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut found = Vec::new();
    for (setting, var) in SECRET_SETTINGS {
        let file_var = format!("{var}_FILE");
        // `DATABASE_URL` has generic twins; the specific variables win over them.
        let generic = (setting == "database.url").then_some(("DATABASE_URL", "DATABASE_URL_FILE"));
        let (path, value_var) = match (vars.get(&file_var), generic) {
            (Some(path), _) => (path, var),
            // The specific value variable wins over the generic file.
            (None, Some(_)) if vars.contains_key(var) => continue,
            (None, Some((generic_var, generic_file))) => match vars.get(generic_file) {
                Some(path) => (path, generic_var),
                None => continue,
            },
            (None, None) => continue,
        };
        if vars.contains_key(value_var) {
            anyhow::bail!("set either {value_var} or {value_var}_FILE, not both ({setting})");
        }
        // The error names the file and setting, never the content.
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("reading {setting} from the file named by {value_var}_FILE")
        })?;
        let value = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(&text);
        found.push((setting, value.to_owned()));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_value_and_its_file_together_are_refused() {
        for (value, file) in [
            ("STARSONGS__DATABASE__URL", "STARSONGS__DATABASE__URL_FILE"),
            ("DATABASE_URL", "DATABASE_URL_FILE"),
        ] {
            let error =
                read_file_secrets(&vars(&[(value, "sqlite://x.db"), (file, "/nonexistent")]))
                    .unwrap_err()
                    .to_string();
            assert!(error.contains("not both"), "{error}");
            assert!(!error.contains("x.db"), "{error}");
        }
    }

    #[test]
    fn the_specific_value_wins_over_the_generic_file() {
        let found = read_file_secrets(&vars(&[
            ("STARSONGS__DATABASE__URL", "sqlite://specific.db"),
            ("DATABASE_URL_FILE", "/nonexistent"),
        ]))
        .unwrap();

        assert!(found.is_empty());
    }

    #[test]
    fn unreadable_files_are_named_without_content() {
        let error =
            read_file_secrets(&vars(&[("DATABASE_URL_FILE", "/nonexistent/secret")])).unwrap_err();

        assert!(format!("{error:#}").contains("database.url"));
    }
}
