//! A value that must never be printed: passwords, keys. Its `Debug` and
//! `Display` show `***`; the one place that hands it to a client calls
//! [`Secret::expose`]. And [`redact_passwords`], for text that may quote one.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must hand it to a client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Hides the password of every `scheme://user:password@host` in an error
/// message. A refused value is echoed, and a database URL given in the wrong
/// place (a stray argument, the wrong setting) would show its password.
pub fn redact_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let (head, tail) = rest.split_at(start + 3);
        out.push_str(head);
        // The user info ends at the last '@' before the value ends: passwords
        // may hold '@', '/' or ':' unescaped in a URL that did not parse.
        let end = tail.find(char::is_whitespace).unwrap_or(tail.len());
        let value = &tail[..end];
        match (value.find(':'), value.rfind('@')) {
            (Some(colon), Some(at)) if colon < at => {
                out.push_str(&value[..colon]);
                out.push_str(":***");
                out.push_str(&value[at..]);
            }
            _ => out.push_str(value),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let secret = Secret::new("hunter2");
        assert_eq!(
            format!("{secret} {secret:?} {secret:#?}"),
            "*** Secret(***) Secret(***)"
        );
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn passwords_are_redacted_and_nothing_else() {
        for (text, redacted) in [
            (
                "'mysql://u:secret@h:1/d' found",
                "'mysql://u:***@h:1/d' found",
            ),
            ("\"mysql://u:p@ss:w/rd@h/d\" is", "\"mysql://u:***@h/d\" is"),
            ("a://x:1@h b://y:2@h", "a://x:***@h b://y:***@h"),
            ("mysql://u@h:3306/d", "mysql://u@h:3306/d"),
            ("mysql://h:3306/d", "mysql://h:3306/d"),
            ("no url at all: a@b", "no url at all: a@b"),
            ("ends with ://", "ends with ://"),
        ] {
            assert_eq!(redact_passwords(text), redacted);
        }
    }
}
