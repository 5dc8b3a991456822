//! The domain's identifiers as types: [`Oin`], [`MunicipalityCode`], [`Brin`], [`SchoolCode`] and
//! [`Pseudonym`]. Each rule lives here once; a value of one of these types has passed it, so code
//! past the edge (gRPC conversion, policy and rules loading, certificates) never checks again.
//! Pure; an error names its field and never echoes a number that could be a pupil id.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Why a text is not a valid identifier: which field, what was given (clipped, id-like numbers
/// withheld) and what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {shown:?} is not {expected}")]
pub struct IdError {
    /// The field the value came from (e.g. `residence_municipality`, `oin`).
    pub field: &'static str,
    shown: String,
    /// The rule, in words, with an example.
    pub expected: &'static str,
}

impl IdError {
    fn new(field: &'static str, text: &str, expected: &'static str) -> Self {
        Self {
            field,
            shown: shown(text),
            expected,
        }
    }

    /// The same error for another field (a type's default field name is its most common one).
    pub fn in_field(mut self, field: &'static str) -> Self {
        self.field = field;
        self
    }

    /// The reason without the field name, for errors that carry the field separately.
    pub fn reason(&self) -> String {
        format!("{:?} is not {}", self.shown, self.expected)
    }
}

/// What an error may show of a refused value: at most 24 characters, and nothing if it looks
/// like a pupil id.
fn shown(text: &str) -> String {
    if crate::pseudonym::looks_like_id(text) {
        return "<withheld: looks like an identifier>".to_owned();
    }
    text.chars().take(24).collect()
}

fn all_digits(b: &[u8]) -> bool {
    b.iter().all(u8::is_ascii_digit)
}

/// Defines a string-backed identifier: `FromStr`, `TryFrom<String>`, `Display`, `Deref<str>`,
/// comparison with `str`, and serde as the plain string (so stored and wire forms do not change).
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, field = $field:literal, expected = $expected:literal, valid = $valid:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The field name its errors carry unless re-labelled with [`IdError::in_field`].
            pub const FIELD: &'static str = $field;
            /// The rule, in words, with an example.
            pub const EXPECTED: &'static str = $expected;

            /// Checks a text against the rule, naming `field` in the error.
            pub fn parse_field(text: &str, field: &'static str) -> Result<Self, IdError> {
                let valid: fn(&str) -> bool = $valid;
                if valid(text) {
                    Ok(Self(text.to_owned()))
                } else {
                    Err(IdError::new(field, text, $expected))
                }
            }

            /// True if the text follows the rule.
            pub fn is_valid(text: &str) -> bool {
                let valid: fn(&str) -> bool = $valid;
                valid(text)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(text: &str) -> Result<Self, IdError> {
                Self::parse_field(text, $field)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(text: String) -> Result<Self, IdError> {
                let valid: fn(&str) -> bool = $valid;
                if valid(&text) {
                    Ok(Self(text))
                } else {
                    Err(IdError::new($field, &text, $expected))
                }
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;

            fn try_from(text: &str) -> Result<Self, IdError> {
                text.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::try_from(text).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// An Organisatie-identificatienummer: exactly twenty ASCII digits, as PKIoverheid
    /// certificates carry it in the subject serialNumber.
    Oin,
    field = "oin",
    expected = "an OIN (exactly 20 digits, e.g. 00000001001234567000)",
    valid = |t| t.len() == 20 && all_digits(t.as_bytes())
);

string_id!(
    /// A CBS gemeentecode: "GM" and four digits (GM0014 is Groningen).
    MunicipalityCode,
    field = "residence_municipality",
    expected = "a CBS code (\"GM\" and four digits, e.g. GM0014)",
    valid = |t| t.len() == 6 && t.starts_with("GM") && all_digits(&t.as_bytes()[2..])
);

/// The one BRIN rule: two digits and two capital letters (DUO's instellingscode, e.g. 20XY).
fn is_brin(b: &[u8]) -> bool {
    b.len() == 4 && all_digits(&b[..2]) && b[2..].iter().all(u8::is_ascii_uppercase)
}

string_id!(
    /// A BRIN (instellingscode) without vestiging: two digits and two capital letters. Policies
    /// and counting rules name schools by BRIN.
    Brin,
    field = "school",
    expected = "a BRIN (two digits and two capital letters, e.g. 20XY, without the vestiging)",
    valid = |t| is_brin(t.as_bytes())
);

string_id!(
    /// A school location as a signal names it: a [`Brin`] and a two-digit vestiging (e.g. 20XY01).
    SchoolCode,
    field = "school",
    expected = "BRIN + vestiging (two digits, two capitals, two digits, e.g. 00AA01)",
    valid = |t| t.len() == 6 && is_brin(&t.as_bytes()[..4]) && all_digits(&t.as_bytes()[4..])
);

impl Oin {
    /// The all-zero OIN, which no organisation has: only a stand-in for a checker that has
    /// already recorded an error and will not return the value it builds.
    pub(crate) fn stand_in() -> Oin {
        Oin("0".repeat(20))
    }
}

impl SchoolCode {
    /// The BRIN part (the first four characters).
    pub fn brin(&self) -> Brin {
        Brin(self.0[..4].to_owned())
    }

    /// True if this school belongs to the institution with this BRIN.
    pub fn is_of(&self, brin: &str) -> bool {
        self.0[..4] == *brin
    }
}

/// Serde for an optional school as the stored form has always had it: the code, or "" for none.
pub mod school_or_empty {
    use super::SchoolCode;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(school: &Option<SchoolCode>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(school.as_deref().unwrap_or(""))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SchoolCode>, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        SchoolCode::try_from(text)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

/// The most characters a pseudonym's key version may have.
const MAX_VERSION_DIGITS: usize = 5;
/// The base64url characters of a pseudonym's body: 16 bytes without padding.
const PSEUDONYM_BODY_LEN: usize = 22;

fn is_pseudonym(text: &str) -> bool {
    let Some((version, body)) = text.strip_prefix('v').and_then(|r| r.split_once('.')) else {
        return false;
    };
    !version.is_empty()
        && version.len() <= MAX_VERSION_DIGITS
        && all_digits(version.as_bytes())
        && body.len() == PSEUDONYM_BODY_LEN
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

string_id!(
    /// A pupil's pseudonym in its versioned form: "v<key version>." and 22 base64url characters
    /// (the first 16 bytes of the OPRF output; see `crate::pseudonym`).
    Pseudonym,
    field = "pupil_pseudonym",
    expected = "a pseudonym (\"v<version>.\" and 22 base64url characters)",
    valid = is_pseudonym
);

impl Pseudonym {
    /// A well-formed pseudonym of no pupil ("v0." and zeros): only the stand-in inside a
    /// checked record that waits for its pupil's pseudonym, which replaces it before the record
    /// can be read ([`crate::signal::Validated`]).
    pub(crate) fn stand_in() -> Pseudonym {
        Pseudonym(format!("v0.{}", "A".repeat(PSEUDONYM_BODY_LEN)))
    }

    /// The key version the pseudonym was made under (the digits after "v").
    pub fn key_version(&self) -> &str {
        let rest = &self.0[1..];
        rest.split_once('.').map_or(rest, |(v, _)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_one_brin_rule() {
        for good in ["20XY", "05KO", "00AA"] {
            assert!(good.parse::<Brin>().is_ok(), "{good}");
        }
        // Lowercase, a vestiging attached, three digits, a letter first, a digit in the letters.
        for bad in ["20xy", "20XY01", "2XYZ", "X0XY", "20X1", "20É", ""] {
            assert!(bad.parse::<Brin>().is_err(), "{bad}");
        }
        let s: SchoolCode = "20XY01".parse().unwrap();
        assert_eq!(s.brin(), "20XY");
        assert!(s.is_of("20XY") && !s.is_of("20XZ"));
        for bad in ["AB1234", "20XY1", "20XY0A", "20xy01", "20X101"] {
            assert!(bad.parse::<SchoolCode>().is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_name_the_field_and_withhold_ids() {
        let e = "GM14".parse::<MunicipalityCode>().unwrap_err();
        assert_eq!(e.field, "residence_municipality");
        assert_eq!(
            e.to_string(),
            "residence_municipality: \"GM14\" is not a CBS code (\"GM\" and four digits, e.g. \
             GM0014)"
        );
        let e = Oin::parse_field("111222333", "peer.oin").unwrap_err();
        assert!(e.to_string().starts_with("peer.oin: "), "{e}");
        assert!(!e.to_string().contains("111222333"), "{e}");
        assert_eq!(e.in_field("owner").field, "owner");
    }

    #[test]
    fn serde_is_the_plain_string_and_checks_on_the_way_in() {
        let m: MunicipalityCode = "GM0014".parse().unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"GM0014\"");
        let back: MunicipalityCode = serde_json::from_str("\"GM0014\"").unwrap();
        assert_eq!(back, m);
        assert!(serde_json::from_str::<MunicipalityCode>("\"gm0014\"").is_err());
        assert!(serde_json::from_str::<Oin>("\"0000000100123456700\"").is_err());
    }

    #[test]
    fn pseudonym_version() {
        let p: Pseudonym = "v12.AAAAAAAAAAAAAAAAAAAAAA".parse().unwrap();
        assert_eq!(p.key_version(), "12");
        for bad in [
            "12.AAAAAAAAAAAAAAAAAAAAAA",
            "v.AAAAAAAAAAAAAAAAAAAAAA",
            "v123456.AAAAAAAAAAAAAAAAAAAAAA",
            "v1.AAAAAAAAAAAAAAAAAAAAA",
            "v1.AAAAAAAAAAAAAAAAAAAAA+",
            "v1AAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(bad.parse::<Pseudonym>().is_err(), "{bad}");
        }
    }

    fn round_trips<T>(text: &str) -> Result<(), TestCaseError>
    where
        T: FromStr<Err = IdError> + fmt::Display + PartialEq + fmt::Debug + Serialize,
        T: for<'de> Deserialize<'de>,
    {
        let x: T = text
            .parse()
            .map_err(|e: IdError| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(x.to_string(), text);
        prop_assert_eq!(&x.to_string().parse::<T>().unwrap(), &x);
        let json = serde_json::to_string(&x).unwrap();
        prop_assert_eq!(serde_json::from_str::<T>(&json).unwrap(), x);
        Ok(())
    }

    proptest! {
        #[test]
        fn valid_ids_round_trip(
            oin in "[0-9]{20}",
            gm in "GM[0-9]{4}",
            brin in "[0-9]{2}[A-Z]{2}",
            vestiging in "[0-9]{2}",
            pseudonym in "v[0-9]{1,5}\\.[A-Za-z0-9_-]{22}",
        ) {
            round_trips::<Oin>(&oin)?;
            round_trips::<MunicipalityCode>(&gm)?;
            round_trips::<Brin>(&brin)?;
            round_trips::<SchoolCode>(&format!("{brin}{vestiging}"))?;
            round_trips::<Pseudonym>(&pseudonym)?;
        }

        #[test]
        fn bad_oins_are_refused(text in "[0-9]{0,19}|[0-9]{21,25}|[0-9]{10}[^0-9][0-9]{9}") {
            prop_assert!(text.parse::<Oin>().is_err());
        }

        #[test]
        fn bad_municipalities_are_refused(
            text in "[A-Za-z]{2}[0-9]{4}|GM[0-9]{0,3}|GM[0-9]{5,6}|GM[0-9]{3}[^0-9]"
        ) {
            prop_assume!(!(text.starts_with("GM") && text.len() == 6 && all_digits(&text.as_bytes()[2..])));
            prop_assert!(text.parse::<MunicipalityCode>().is_err());
        }

        #[test]
        fn bad_school_codes_are_refused(text in "[0-9A-Za-z]{0,8}") {
            let b = text.as_bytes();
            let valid = b.len() == 6
                && b[..2].iter().all(u8::is_ascii_digit)
                && b[2..4].iter().all(u8::is_ascii_uppercase)
                && b[4..].iter().all(u8::is_ascii_digit);
            prop_assert_eq!(text.parse::<SchoolCode>().is_ok(), valid);
            prop_assert_eq!(text.parse::<Brin>().is_ok(), b.len() == 4
                && b[..2].iter().all(u8::is_ascii_digit)
                && b[2..].iter().all(u8::is_ascii_uppercase));
        }

        #[test]
        fn bad_pseudonyms_are_refused(text in "v?[0-9]{0,7}\\.?[A-Za-z0-9_+/=-]{0,24}") {
            let ok = text.parse::<Pseudonym>().is_ok();
            let shaped = text.starts_with('v')
                && text.split_once('.').is_some_and(|(v, body)| {
                    (2..=6).contains(&v.len()) && body.len() == 22
                        && !body.contains(['+', '/', '='])
                });
            prop_assert_eq!(ok, shaped);
        }

        #[test]
        fn anything_parses_or_errs_without_echoing_ids(text in "\\PC{0,40}") {
            for e in [
                text.parse::<Oin>().err(),
                text.parse::<MunicipalityCode>().err(),
                text.parse::<SchoolCode>().err(),
                text.parse::<Pseudonym>().err(),
            ].into_iter().flatten() {
                prop_assert!(!crate::pseudonym::looks_like_id(&e.shown), "{}", e);
            }
        }
    }
}
