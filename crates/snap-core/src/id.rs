//! [`AggregateId`]: a UUID or a string name, the key of a stream and of its snapshots.

use std::cmp::Ordering;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::error::{BackendError, InvalidInput};

/// The longest name an id may have, in UTF-8 bytes.
pub const MAX_ID_LEN: usize = 255;

/// The id of an aggregate: a [`Uuid`] or a string name such as `"BankAccount-acc-1"`.
///
/// Ids are scoped by aggregate type. A name is 1..=255 UTF-8 bytes without a NUL character
/// (every backend can store it as text); [`AggregateId::parse`] checks this and refuses
/// anything else with a typed [`InvalidInput`]. A UUID id costs nothing more than a bare
/// [`Uuid`]: it is kept as its 16 bytes and cloned without allocating.
///
/// Every id has one text form, which is what SQL stores keep and what [`Display`](fmt::Display)
/// prints: the hyphenated lowercase form of a UUID, or the name itself. The text form of a UUID
/// names that UUID, so parsing it gives the UUID id back (`"550e8400-…"` parsed is
/// `AggregateId::from(uuid)`); any other string, an uppercase UUID included, is a name. Ids
/// order by their text form, byte by byte, as every backend lists them.
///
/// ```
/// use snap_core::AggregateId;
/// use uuid::Uuid;
///
/// let named = AggregateId::parse("BankAccount-acc-1")?;
/// assert_eq!(named.to_string(), "BankAccount-acc-1");
/// assert!(named.as_uuid().is_none());
///
/// let uuid = Uuid::new_v4();
/// let id = AggregateId::from(uuid);
/// assert_eq!(AggregateId::parse(&uuid.to_string())?, id);
/// assert_eq!(id.as_uuid(), Some(uuid));
///
/// assert!(AggregateId::parse("").is_err());
/// assert!(AggregateId::parse(&"x".repeat(256)).is_err());
/// # Ok::<(), snap_core::InvalidInput>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AggregateId(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Uuid(Uuid),
    Name(Arc<str>),
}

impl AggregateId {
    /// Reads an id from its text form: the hyphenated lowercase form of a UUID gives a UUID id,
    /// any other valid string a named id.
    ///
    /// # Errors
    /// [`InvalidInput::Empty`], [`InvalidInput::TooLong`] (over 255 bytes) or
    /// [`InvalidInput::ContainsNul`], with the field `"aggregate_id"`.
    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        Self::check(text)?;
        Ok(Self::canonical_uuid(text).map_or_else(|| Self(Repr::Name(text.into())), Self::from))
    }

    /// Like [`parse`](Self::parse), keeping the given `String`'s allocation.
    ///
    /// # Errors
    /// As [`parse`](Self::parse).
    pub fn parse_owned(text: String) -> Result<Self, InvalidInput> {
        Self::check(&text)?;
        Ok(Self::canonical_uuid(&text).map_or_else(|| Self(Repr::Name(text.into())), Self::from))
    }

    /// An id a backend read back from its storage: checked as [`parse_owned`](Self::parse_owned)
    /// checks input, and a stored value that is not an id is a [`BackendError`] of `backend`
    /// (a row edited by hand must not become a panic or a wrong id).
    ///
    /// # Errors
    /// The [`BackendError`], with the [`InvalidInput`] as its source.
    pub fn parse_stored(backend: &'static str, text: String) -> Result<Self, BackendError> {
        Self::parse_owned(text).map_err(|e| {
            BackendError::new(backend, e).context("a stored aggregate id is not a valid id")
        })
    }

    fn check(text: &str) -> Result<(), InvalidInput> {
        const FIELD: &str = "aggregate_id";
        if text.is_empty() {
            return Err(InvalidInput::Empty { field: FIELD });
        }
        if text.len() > MAX_ID_LEN {
            return Err(InvalidInput::TooLong {
                field: FIELD,
                len: text.len(),
                max: MAX_ID_LEN,
            });
        }
        if text.contains('\0') {
            return Err(InvalidInput::ContainsNul { field: FIELD });
        }
        Ok(())
    }

    /// The UUID whose hyphenated lowercase form `text` is, if it is one.
    fn canonical_uuid(text: &str) -> Option<Uuid> {
        if text.len() != uuid::fmt::Hyphenated::LENGTH
            || text.bytes().any(|b| b.is_ascii_uppercase())
        {
            return None;
        }
        Uuid::try_parse(text).ok()
    }

    /// The UUID, for a UUID id.
    pub fn as_uuid(&self) -> Option<Uuid> {
        match &self.0 {
            Repr::Uuid(uuid) => Some(*uuid),
            Repr::Name(_) => None,
        }
    }

    /// The name, for a named id.
    pub fn as_name(&self) -> Option<&str> {
        match &self.0 {
            Repr::Uuid(_) => None,
            Repr::Name(name) => Some(name),
        }
    }

    /// Whether this is a UUID id.
    pub fn is_uuid(&self) -> bool {
        matches!(self.0, Repr::Uuid(_))
    }

    /// The text form, without allocating: a UUID is written into a buffer on the stack.
    pub fn text(&self) -> IdText<'_> {
        match &self.0 {
            Repr::Uuid(uuid) => {
                let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
                uuid.hyphenated().encode_lower(&mut buf);
                IdText(TextRepr::Uuid(buf))
            }
            Repr::Name(name) => IdText(TextRepr::Name(name)),
        }
    }
}

/// The text form of an [`AggregateId`], borrowed or on the stack; dereferences to `&str`.
#[derive(Clone, Copy)]
pub struct IdText<'a>(TextRepr<'a>);

#[derive(Clone, Copy)]
enum TextRepr<'a> {
    Uuid([u8; uuid::fmt::Hyphenated::LENGTH]),
    Name(&'a str),
}

impl Deref for IdText<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match &self.0 {
            // A hyphenated UUID is ASCII; the fallback is never taken.
            TextRepr::Uuid(buf) => std::str::from_utf8(buf).unwrap_or_default(),
            TextRepr::Name(name) => name,
        }
    }
}

impl AsRef<str> for IdText<'_> {
    fn as_ref(&self) -> &str {
        self
    }
}

impl fmt::Debug for IdText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl fmt::Display for IdText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl From<Uuid> for AggregateId {
    fn from(uuid: Uuid) -> Self {
        Self(Repr::Uuid(uuid))
    }
}

impl From<&AggregateId> for AggregateId {
    fn from(id: &AggregateId) -> Self {
        id.clone()
    }
}

impl From<&Uuid> for AggregateId {
    fn from(uuid: &Uuid) -> Self {
        Self(Repr::Uuid(*uuid))
    }
}

impl TryFrom<&str> for AggregateId {
    type Error = InvalidInput;

    fn try_from(text: &str) -> Result<Self, InvalidInput> {
        Self::parse(text)
    }
}

impl TryFrom<String> for AggregateId {
    type Error = InvalidInput;

    fn try_from(text: String) -> Result<Self, InvalidInput> {
        Self::parse_owned(text)
    }
}

impl FromStr for AggregateId {
    type Err = InvalidInput;

    fn from_str(text: &str) -> Result<Self, InvalidInput> {
        Self::parse(text)
    }
}

impl PartialEq<Uuid> for AggregateId {
    fn eq(&self, other: &Uuid) -> bool {
        self.as_uuid() == Some(*other)
    }
}

impl PartialEq<AggregateId> for Uuid {
    fn eq(&self, other: &AggregateId) -> bool {
        other == self
    }
}

impl Ord for AggregateId {
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.0, &other.0) {
            // Hyphenated lowercase hex orders as the bytes do.
            (Repr::Uuid(a), Repr::Uuid(b)) => a.cmp(b),
            (Repr::Name(a), Repr::Name(b)) => a.as_bytes().cmp(b.as_bytes()),
            _ => self.text().as_bytes().cmp(other.text().as_bytes()),
        }
    }
}

impl PartialOrd for AggregateId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for AggregateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Uuid(uuid) => fmt::Display::fmt(&uuid.hyphenated(), f),
            Repr::Name(name) => f.write_str(name),
        }
    }
}

impl fmt::Debug for AggregateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Uuid(uuid) => write!(f, "AggregateId({uuid})"),
            Repr::Name(name) => write!(f, "AggregateId({name:?})"),
        }
    }
}

impl Serialize for AggregateId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text())
    }
}

impl<'de> Deserialize<'de> for AggregateId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};

    use proptest::prelude::*;

    use super::*;

    fn hash(id: &AggregateId) -> u64 {
        let mut h = DefaultHasher::new();
        id.hash(&mut h);
        h.finish()
    }

    #[test]
    fn the_text_of_a_uuid_is_that_uuid_and_other_strings_are_names() {
        let uuid = Uuid::new_v4();
        let id = AggregateId::parse(&uuid.to_string()).unwrap();
        assert_eq!(id, AggregateId::from(uuid));
        assert_eq!(hash(&id), hash(&AggregateId::from(uuid)));
        let upper = uuid.to_string().to_uppercase();
        let named = AggregateId::parse(&upper).unwrap();
        assert!(
            !named.is_uuid(),
            "an uppercase UUID is a name: its text would not round-trip"
        );
        assert_eq!(named.to_string(), upper);
        let simple = uuid.simple().to_string();
        assert_eq!(
            AggregateId::parse(&simple).unwrap().as_name(),
            Some(simple.as_str())
        );
    }

    #[test]
    fn bad_names_are_refused_with_a_typed_error() {
        assert_eq!(
            AggregateId::parse(""),
            Err(InvalidInput::Empty {
                field: "aggregate_id"
            })
        );
        assert_eq!(
            AggregateId::parse(&"é".repeat(128)),
            Err(InvalidInput::TooLong {
                field: "aggregate_id",
                len: 256,
                max: 255
            })
        );
        assert_eq!(
            AggregateId::parse("a\0b"),
            Err(InvalidInput::ContainsNul {
                field: "aggregate_id"
            })
        );
        assert!(AggregateId::parse(&"x".repeat(255)).is_ok());
        assert!(serde_json::from_str::<AggregateId>("\"\"").is_err());
    }

    proptest! {
        #[test]
        fn order_and_text_agree(a in "[ -~]{1,40}", b in "[ -~]{1,40}", ua: u128, ub: u128) {
            let ids = [
                AggregateId::parse(&a).unwrap(),
                AggregateId::parse(&b).unwrap(),
                AggregateId::from(Uuid::from_u128(ua)),
                AggregateId::from(Uuid::from_u128(ub)),
            ];
            for x in &ids {
                prop_assert_eq!(&AggregateId::parse(&x.text()).unwrap(), x);
                let json = serde_json::to_string(x).unwrap();
                prop_assert_eq!(&serde_json::from_str::<AggregateId>(&json).unwrap(), x);
                for y in &ids {
                    prop_assert_eq!(x.cmp(y), x.text().as_bytes().cmp(y.text().as_bytes()));
                }
            }
        }
    }
}
