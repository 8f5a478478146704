//! Aggregate types and ids as subject tokens and key-value keys.
//!
//! A token keeps `A-Z`, `a-z`, `0-9`, `-` and `_` as they are and writes every other byte as
//! `=` and two uppercase hex digits, so any string maps to one token that NATS accepts in a
//! subject and in a key (no `.`, `*`, `>`, space or control character can reach the server),
//! and two strings never share a token. The text form of an id is encoded, so a UUID id is its
//! hyphenated text, readable in `nats` tooling.

use snap_core::AggregateId;

/// The token of `text`.
pub(crate) fn encode(text: &str) -> String {
    let mut token = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            token.push(char::from(byte));
        } else {
            token.push('=');
            token.push(hex(byte >> 4));
            token.push(hex(byte & 0x0f));
        }
    }
    token
}

fn hex(nibble: u8) -> char {
    char::from(if nibble < 10 {
        b'0' + nibble
    } else {
        b'A' + nibble - 10
    })
}

/// The text a token encodes, or `None` if it is not a token [`encode`] wrote.
pub(crate) fn decode(token: &str) -> Option<String> {
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let pair = token.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(pair, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The token of an aggregate id's text form.
pub(crate) fn id(id: &AggregateId) -> String {
    encode(&id.text())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_safe_and_decode_back() {
        for text in [
            "acc-1",
            "BankAccount-acc-1 ü",
            "a.b.*.>",
            "=41",
            "spaces and\ttabs",
            "550e8400-e29b-41d4-a716-446655440000",
        ] {
            let token = encode(text);
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b)),
                "{token}"
            );
            assert_eq!(decode(&token).as_deref(), Some(text));
        }
        assert_ne!(encode("=41"), encode("A"));
        assert_eq!(encode("acc-1"), "acc-1");
        assert_eq!(decode("=4"), None);
    }
}
