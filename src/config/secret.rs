//! Where a configured secret comes from: written in the configuration (`KEY`), in
//! the environment variable `KEY_env` names, or in the file `KEY_file` names (a
//! mounted Kubernetes or Docker secret). Every credential (tenants' API keys, PMS
//! tokens and client secrets, the Redis URL) is resolved here and nowhere else.
//!
//! Exactly one source may be set. A file's trailing line break is dropped; a
//! secret that is empty (or only white space) is refused. Error texts name the
//! configuration key, the variable or the path, and never the content.

use secrecy::{ExposeSecret, SecretString};

use super::Layer;

/// The three places one secret can be configured; `key` is its configuration key.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    pub key: &'a str,
    pub value: &'a Option<SecretString>,
    pub env: &'a Option<String>,
    pub file: &'a Option<String>,
}

/// Where a resolved secret came from, for `check-config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Config,
    Environment,
    File,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Config => "config",
            Origin::Environment => "environment",
            Origin::File => "file",
        }
    }
}

/// Where a secret is configured, for `check-config`: the layer, the variable's
/// name or the file's path, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Written as `KEY` in that layer.
    Value(Layer),
    /// In the environment variable `KEY_env` names.
    Variable {
        key: String,
        name: String,
        set_in: Layer,
    },
    /// In the file `KEY_file` names.
    File {
        key: String,
        path: String,
        set_in: Layer,
    },
    Unset,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Value(Layer::Demo) => write!(f, "{}", Layer::Demo),
            Place::Value(layer) => write!(f, "{layer} (value not shown)"),
            Place::Variable { key, name, set_in } => {
                write!(f, "environment variable {name} ({key}_env from {set_in})")
            }
            Place::File { key, path, set_in } => {
                write!(f, "secret file {path} ({key}_file from {set_in})")
            }
            Place::Unset => f.write_str("not set"),
        }
    }
}

impl<'a> Sources<'a> {
    pub fn new(
        key: &'a str,
        value: &'a Option<SecretString>,
        env: &'a Option<String>,
        file: &'a Option<String>,
    ) -> Self {
        Sources {
            key,
            value,
            env,
            file,
        }
    }

    /// The configured source, without reading it: at most one, none blank.
    pub fn origin(&self) -> Result<Option<Origin>, String> {
        let key = self.key;
        let set = [
            self.value.is_some(),
            self.env.is_some(),
            self.file.is_some(),
        ];
        if set.iter().filter(|s| **s).count() > 1 {
            return Err(format!("set only one of {key}, {key}_env, {key}_file"));
        }
        let blank = |s: &Option<String>| s.as_deref().is_some_and(|v| v.trim().is_empty());
        if self
            .value
            .as_ref()
            .is_some_and(|v| v.expose_secret().trim().is_empty())
        {
            return Err(format!("{key} is empty"));
        }
        if blank(self.env) {
            return Err(format!("{key}_env is empty"));
        }
        if blank(self.file) {
            return Err(format!("{key}_file is empty"));
        }
        Ok(if self.value.is_some() {
            Some(Origin::Config)
        } else if self.env.is_some() {
            Some(Origin::Environment)
        } else if self.file.is_some() {
            Some(Origin::File)
        } else {
            None
        })
    }

    /// As [`Sources::origin`], and one source must be set.
    pub fn required_origin(&self) -> Result<Origin, String> {
        self.origin()?.ok_or_else(|| self.missing())
    }

    /// The secret from its source; `None` when no source is set.
    pub fn resolve(&self) -> Result<Option<SecretString>, String> {
        let key = self.key;
        let secret = match self.origin()? {
            None => return Ok(None),
            Some(Origin::Config) => self.value.clone(),
            Some(Origin::Environment) => {
                let var = self.env.as_deref().unwrap_or_default();
                let value = std::env::var(var).map_err(|e| match e {
                    std::env::VarError::NotPresent => {
                        format!("environment variable {var} ({key}_env) is not set")
                    }
                    std::env::VarError::NotUnicode(_) => {
                        format!("environment variable {var} ({key}_env) is not UTF-8")
                    }
                })?;
                if value.trim().is_empty() {
                    return Err(format!("environment variable {var} ({key}_env) is empty"));
                }
                Some(SecretString::from(value))
            }
            Some(Origin::File) => {
                let path = self.file.as_deref().unwrap_or_default();
                // The I/O error's text names the failure (not found, permission,
                // not UTF-8), never what the file holds.
                let text =
                    std::fs::read_to_string(path).map_err(|e| format!("{key}_file {path}: {e}"))?;
                let value = text.trim_end_matches(['\r', '\n']);
                if value.trim().is_empty() {
                    return Err(format!("{key}_file {path} is empty"));
                }
                Some(SecretString::from(value.to_string()))
            }
        };
        Ok(secret)
    }

    /// As [`Sources::resolve`], and one source must be set.
    pub fn require(&self) -> Result<SecretString, String> {
        self.resolve()?.ok_or_else(|| self.missing())
    }

    fn missing(&self) -> String {
        let key = self.key;
        format!("needs one of {key}, {key}_env, {key}_file")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    fn sources<'a>(
        value: &'a Option<SecretString>,
        env: &'a Option<String>,
        file: &'a Option<String>,
    ) -> Sources<'a> {
        Sources::new("token", value, env, file)
    }

    #[test]
    fn each_source_resolves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "from-file\r\n").unwrap();
        let file = some(&path.display().to_string());
        let got = sources(&None, &None, &file).require().unwrap();
        assert_eq!(got.expose_secret(), "from-file", "line break trimmed");

        let value = Some(SecretString::from("inline"));
        let got = sources(&value, &None, &None).require().unwrap();
        assert_eq!(got.expose_secret(), "inline");

        // PATH is set in every test environment; its value is not a secret.
        let env = some("PATH");
        let got = sources(&None, &env, &None).require().unwrap();
        assert_eq!(got.expose_secret(), std::env::var("PATH").unwrap());

        assert!(sources(&None, &None, &None).resolve().unwrap().is_none());
        assert_eq!(
            sources(&None, &None, &None).require().unwrap_err(),
            "needs one of token, token_env, token_file"
        );
    }

    #[test]
    fn only_one_source_may_be_set() {
        let value = Some(SecretString::from("inline"));
        let env = some("VAR");
        let file = some("/run/secrets/token");
        for (v, e, f) in [
            (&value, &env, &None),
            (&value, &None, &file),
            (&None, &env, &file),
            (&value, &env, &file),
        ] {
            let err = sources(v, e, f).resolve().unwrap_err();
            assert_eq!(err, "set only one of token, token_env, token_file");
        }
    }

    #[test]
    fn empty_secrets_and_names_are_refused() {
        let blank = Some(SecretString::from("  "));
        assert_eq!(
            sources(&blank, &None, &None).origin().unwrap_err(),
            "token is empty"
        );
        assert_eq!(
            sources(&None, &some(""), &None).origin().unwrap_err(),
            "token_env is empty"
        );
        assert_eq!(
            sources(&None, &None, &some(" ")).origin().unwrap_err(),
            "token_file is empty"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        std::fs::write(&path, "\n").unwrap();
        let file = some(&path.display().to_string());
        let err = sources(&None, &None, &file).resolve().unwrap_err();
        assert_eq!(err, format!("token_file {} is empty", path.display()));
    }

    #[test]
    fn errors_name_the_key_and_the_place_never_the_content() {
        let err = sources(&None, &some("CHARGEBRIDGE_TEST_SURELY_UNSET_SECRET"), &None)
            .resolve()
            .unwrap_err();
        assert_eq!(
            err,
            "environment variable CHARGEBRIDGE_TEST_SURELY_UNSET_SECRET (token_env) is not set"
        );

        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let file = some(&missing.display().to_string());
        let err = sources(&None, &None, &file).resolve().unwrap_err();
        assert!(
            err.starts_with(&format!("token_file {}: ", missing.display())),
            "{err}"
        );

        // A file that is not text: the error says so without quoting the bytes.
        let binary = dir.path().join("binary");
        std::fs::write(&binary, b"s3cret-\xff-bytes").unwrap();
        let file = some(&binary.display().to_string());
        let err = sources(&None, &None, &file).resolve().unwrap_err();
        assert!(err.contains("token_file"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn the_origin_is_reported() {
        let value = Some(SecretString::from("inline"));
        assert_eq!(
            sources(&value, &None, &None).required_origin(),
            Ok(Origin::Config)
        );
        assert_eq!(
            sources(&None, &some("V"), &None).required_origin(),
            Ok(Origin::Environment)
        );
        assert_eq!(
            sources(&None, &None, &some("/f")).required_origin(),
            Ok(Origin::File)
        );
        assert!(sources(&None, &None, &None).required_origin().is_err());
    }
}
