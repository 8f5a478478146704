//! JSON parameters for JSONB columns, rendered so that JSONB gives back every number as the
//! same kind of JSON number.
//!
//! JSONB stores numbers as `numeric`, which keeps a literal's decimal places but not its
//! notation. `serde_json` writes a float of magnitude 1e16 or more with an exponent
//! (`-2.0006979402585277e18`); `numeric` reads that as an integer and returns it without a
//! decimal point, so it would come back as an integer, not the float that was stored. Such
//! floats are written as their exact decimal value with one decimal place instead
//! (`-2000697940258527744.0`), which JSONB returns as written and `serde_json` parses back into
//! the same `f64`. Every other value is written exactly as `serde_json` writes it.

use std::io;

use serde::Serialize;
use serde_json::Value;
use serde_json::ser::{CompactFormatter, Formatter, Serializer};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo};
use sqlx::{Encode, Postgres, Type};

/// Where `serde_json` switches to exponent notation for large floats.
const EXPONENT_FROM: f64 = 1e16;

/// `serde_json`'s compact output, with large floats in plain decimal notation.
struct PlainFloats;

impl Formatter for PlainFloats {
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        if value.is_finite() && value.abs() >= EXPONENT_FROM {
            // Every f64 this large is a whole number; `{:.1}` prints it exactly.
            write!(writer, "{value:.1}")
        } else {
            CompactFormatter.write_f64(writer, value)
        }
    }
}

/// A JSON value rendered for a JSONB parameter.
#[derive(Debug, Clone)]
pub(crate) struct Jsonb(String);

impl Jsonb {
    pub(crate) fn new(value: &Value) -> Self {
        let mut text = Vec::with_capacity(128);
        let mut serializer = Serializer::with_formatter(&mut text, PlainFloats);
        // Serialising a `Value` into memory cannot fail, and the output is UTF-8.
        let _ = value.serialize(&mut serializer);
        Self(String::from_utf8(text).unwrap_or_default())
    }
}

impl Type<Postgres> for Jsonb {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("jsonb")
    }
}

impl PgHasArrayType for Jsonb {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("_jsonb")
    }
}

impl Encode<'_, Postgres> for Jsonb {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        // The binary JSONB format: a version byte, then the JSON text.
        buf.push(1);
        buf.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn large_floats_are_written_without_an_exponent() {
        let value = json!({"big": -2.000_697_940_258_527_7e18, "small": 1e-7, "int": 12, "f": 3.0});
        let Jsonb(text) = Jsonb::new(&value);
        assert_eq!(
            text,
            r#"{"big":-2000697940258527744.0,"f":3.0,"int":12,"small":1e-7}"#
        );
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
        assert!(back["big"].is_f64());
    }
}
