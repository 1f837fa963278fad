//! A secret's JSON value read into a type, with errors that name the faulty field and never echo
//! a value: what every secret parser (provider credentials, webhook keys, encryption keys) builds
//! on. Pure parsing, so formats can use it without depending on Secrets Manager.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::{Error, Result};

/// Parses JSON into `T`, reporting only which field is missing or mistyped, never a value.
pub(crate) fn parse_json<T: for<'de> Deserialize<'de>>(raw: &SecretString) -> Result<T> {
    serde_json::from_str(raw.expose_secret()).map_err(|e| {
        let message = e.to_string();
        let what = match message.find("missing field") {
            Some(at) => message[at..]
                .split(" at line")
                .next()
                .unwrap_or("missing field")
                .to_owned(),
            None => format!(
                "is not JSON of the expected shape (line {}, column {})",
                e.line(),
                e.column()
            ),
        };
        Error::permanent(what)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Shape {
        secrets: Vec<String>,
    }

    #[test]
    fn errors_name_the_field_and_never_the_value() {
        let wrong = parse_json::<Shape>(&SecretString::from(r#"{"secrets": "hunter2-value"}"#))
            .unwrap_err()
            .to_string();
        assert!(!wrong.contains("hunter2"), "{wrong}");
        let missing = parse_json::<Shape>(&SecretString::from(r#"{"other": "hunter2"}"#))
            .unwrap_err()
            .to_string();
        assert_eq!(missing, "missing field `secrets`");
    }
}
