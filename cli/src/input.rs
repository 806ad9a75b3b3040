//! Reading secrets from files, standard input or a terminal prompt — never from arguments.

use std::io::{IsTerminal, Read};
use std::path::Path;

use anyhow::Context as _;
use exgate_core::model::ConnectionSpec;
use exgate_core::secret::Secret;

use crate::UsageError;
use crate::args::SecretArgs;

fn trim_line_end(mut s: String) -> String {
    while s.ends_with(['\n', '\r']) {
        s.pop();
    }
    s
}

/// Reads a secret from `path`, or from standard input when `path` is `-`.
pub(crate) fn read_secret_file(path: &Path, what: &str) -> anyhow::Result<Secret> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .with_context(|| format!("reading the {what} from standard input"))?;
        text
    } else {
        std::fs::read_to_string(path).map_err(|e| {
            UsageError(format!(
                "the {what} file {} cannot be read: {e}",
                path.display()
            ))
        })?
    };
    let secret = trim_line_end(text);
    if secret.is_empty() {
        return Err(UsageError(format!("the {what} read from {} is empty", path.display())).into());
    }
    Ok(Secret::new(secret))
}

fn read_pem(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        UsageError(format!(
            "the {what} file {} cannot be read: {e}",
            path.display()
        ))
        .into()
    })
}

/// Asks for a secret on the terminal without echoing it.
pub(crate) fn prompt(label: &str) -> anyhow::Result<Secret> {
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(format!(
            "cannot prompt for the {label}: standard input is not a terminal"
        ))
        .into());
    }
    let value = rpassword::prompt_password(format!("{label}: "))
        .with_context(|| format!("reading the {label} from the terminal"))?;
    if value.is_empty() {
        return Err(UsageError(format!("the {label} is empty")).into());
    }
    Ok(Secret::new(value))
}

pub(crate) fn can_prompt() -> bool {
    std::io::stdin().is_terminal()
}

/// Fills the secret fields of `spec` from the places `args` name.
pub(crate) fn read_secrets(args: &SecretArgs, spec: &mut ConnectionSpec) -> anyhow::Result<()> {
    let stdin_users = [&args.client_secret_file, &args.password_file]
        .into_iter()
        .flatten()
        .filter(|p| p.as_path() == Path::new("-"))
        .count();
    if stdin_users > 1 {
        return Err(
            UsageError("only one secret can be read from standard input (`-`)".into()).into(),
        );
    }
    if let Some(path) = &args.client_secret_file {
        spec.client_secret = Some(read_secret_file(path, "client secret")?);
    }
    if args.ask_client_secret {
        spec.client_secret = Some(prompt("client secret value")?);
    }
    if let Some(path) = &args.certificate {
        let pem = read_pem(path, "certificate")?;
        let key = match &args.private_key {
            Some(key_path) => read_pem(key_path, "private key")?,
            None => pem.clone(),
        };
        spec.certificate_pem = Some(pem);
        spec.private_key_pem = Some(Secret::new(key));
    }
    if let Some(path) = &args.password_file {
        spec.password = Some(read_secret_file(path, "password")?);
    }
    if args.ask_password {
        spec.password = Some(prompt("password")?);
    }
    Ok(())
}
