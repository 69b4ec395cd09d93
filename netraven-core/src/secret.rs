//! [`Secret`]: a string that never shows itself in logs, debug output or API responses.

use serde::{Deserialize, Deserializer};
use std::fmt;

/// A secret string (password, enable secret, key). `Debug` and `Display` print `[REDACTED]`;
/// it deliberately does not implement `Serialize`, so it cannot leak into a JSON response.
/// Read it with [`Secret::expose`] at the one place that must send it. Its memory is
/// overwritten with zeros when it is dropped (`zeroize`), so a freed secret does not linger in
/// the heap (copies made with [`Secret::expose`] are the caller's to keep short-lived).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value. Call only where it is sent to a device or encrypted.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

// Accepting a secret from input (API bodies, config files) is fine; emitting one is not.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// A URL with its password replaced by `********` (parsed as a URL, so user names with `:` or
/// `@` in the password are handled); text that is not a URL with a password is returned as is
/// (a git remote name, `git@host:repo`).
pub fn mask_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut u) if u.password().is_some() => {
            if u.set_password(Some("********")).is_ok() {
                return u.to_string();
            }
            // A URL that cannot carry a password has none to leak; keep only its scheme.
            format!("{}://********", u.scheme())
        }
        // `https://<token>@host/repo.git`: git hosts take a token as the user name.
        Ok(mut u) if !u.username().is_empty() && matches!(u.scheme(), "http" | "https") => {
            match u.set_username("********") {
                Ok(()) => u.to_string(),
                Err(()) => format!("{}://********", u.scheme()),
            }
        }
        Ok(_) => text.to_string(),
        // Not parseable but shaped like `scheme://user:password@…`: hide the whole user part.
        Err(_) => match (text.split_once("://"), text.rfind('@')) {
            (Some((scheme, _)), Some(at)) if at > scheme.len() + 3 => {
                format!("{scheme}://********@{}", &text[at + 1..])
            }
            _ => text.to_string(),
        },
    }
}

/// `text` (a command's error output, a log message) with the password of every URL in it
/// masked (see [`mask_url`]).
pub fn mask_urls_in(text: &str) -> String {
    text.split_inclusive(char::is_whitespace)
        .map(|word| {
            let trimmed = word.trim_end();
            let (core, tail) = word.split_at(trimmed.len());
            // Quotes around a URL (git prints `'https://…'`) stay where they are.
            let inner = core.trim_matches(|c| c == '\'' || c == '"');
            if inner.contains("://") && inner.contains('@') {
                format!("{}{tail}", core.replace(inner, &mask_url(inner)))
            } else {
                word.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_masked_by_a_parser() {
        assert_eq!(
            mask_url("postgres://u:hunter2@db:5432/x"),
            "postgres://u:********@db:5432/x"
        );
        // An `@` inside the password: a split on the first `@` would leak its tail.
        let m = mask_url("redis://:p%40ss@word@cache:6379/0");
        assert!(!m.contains("ss") && !m.contains("word@"), "{m}");
        let m = mask_url("https://user:tok:en@git.example/r.git");
        assert!(!m.contains("tok") && !m.contains("en@"), "{m}");
        assert_eq!(mask_url("origin"), "origin");
        assert_eq!(mask_url("git@host:repo.git"), "git@host:repo.git");
        assert_eq!(mask_url("https://host/r.git"), "https://host/r.git");
        let m = mask_url("https://ghp_tokencanary@github.example/r.git");
        assert!(!m.contains("tokencanary"), "{m}");
        let m = mask_url("postgres://u:pw@[bad");
        assert!(!m.contains("pw"), "{m}");
        let line =
            mask_urls_in("fatal: unable to access 'https://bot:s3cr3t@git.example/r.git/': 403");
        assert!(!line.contains("s3cr3t"), "{line}");
        assert!(line.starts_with("fatal: unable to access '") && line.ends_with("': 403"));
    }

    #[test]
    fn dropping_zeroes_the_bytes() {
        let mut s = Secret::new("hunter2-canary");
        // What Drop does, observed before the buffer is freed.
        zeroize::Zeroize::zeroize(&mut s.0);
        assert!(s.0.is_empty());
        let s = Secret::new("x");
        let t = s.clone();
        drop(s);
        assert_eq!(t.expose(), "x", "a clone owns its own copy");
    }

    #[test]
    fn debug_and_display_are_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[REDACTED]");
        assert_eq!(format!("{s}"), "[REDACTED]");
        assert_eq!(s.expose(), "hunter2");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            password: Secret,
        }
        let h = Holder { password: s };
        assert!(!format!("{h:?}").contains("hunter2"));
    }
}
