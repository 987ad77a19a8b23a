//! `<KEY>_FILE` secrets: a setting read from the file a variable names (Kubernetes secrets
//! mounted as files). Only settings listed here are secrets; other names ending in `_FILE`
//! are ordinary settings (such as a future `server.tls.cert_file`).

use std::collections::HashMap;

use anyhow::Context;

/// Secret settings as `(dotted name, environment variable)`.
const SECRET_SETTINGS: [(&str, &str); 1] = [("database.url", "STARSONGS__DATABASE__URL")];

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
        let generic = (setting == "database.url").then_some("DATABASE_URL_FILE");
        let path = vars
            .get(&file_var)
            .or_else(|| generic.and_then(|g| vars.get(g)));
        let Some(path) = path else { continue };
        if vars.contains_key(var) {
            anyhow::bail!("set either {var} or {file_var}, not both ({setting})");
        }
        // The error names the file and setting, never the content.
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading {setting} from the file named by {file_var}"))?;
        let value = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(&text);
        found.push((setting, value.to_owned()));
    }
    Ok(found)
}
