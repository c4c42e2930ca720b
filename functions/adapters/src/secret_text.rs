//! A credential held so that it cannot be printed: DSNs with their passwords, bearer tokens,
//! basic-auth passwords. Errors, the journal, the execution history and SNS messages are all
//! built from `Debug`/`Display` output somewhere, so the type has no `Display` and its `Debug`
//! says `<redacted>`; the text is reached only through [`SecretText::expose`], at the one place
//! that hands it to a client library. The memory is zeroed on drop (the secrecy crate).

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A credential's text (never in `Debug`; no `Display`).
#[derive(Clone, Default)]
pub struct SecretText(SecretString);

impl SecretText {
    /// Wraps `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Self(SecretString::from(text.into()))
    }

    /// The text, for the client library that needs it. Never format it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether no credential was given (left for a credentials secret to fill).
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl PartialEq for SecretText {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for SecretText {}

impl From<&str> for SecretText {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl From<String> for SecretText {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

impl From<&String> for SecretText {
    fn from(text: &String) -> Self {
        Self::new(text.as_str())
    }
}

impl From<&SecretText> for SecretText {
    fn from(text: &SecretText) -> Self {
        text.clone()
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

/// Serialized as the text: configuration is written back only by the local stack (which builds
/// `HAPILOT_REGIONS` for its own functions) and by tests.
impl Serialize for SecretText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_text_and_json_round_trips() {
        let s = SecretText::from("postgresql://app:hunter2@db/app");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(<redacted>)");
        let json = serde_json::to_string(&s).unwrap();
        let back: SecretText = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.expose(), "postgresql://app:hunter2@db/app");
        assert!(SecretText::default().is_empty());
    }
}
