//! Pure: the field rules requests and answers share (RFC 9113 §8.2.2, §8.1.1): the fields
//! HTTP/2 does not carry, and a `content-length` that must be one number however often it
//! is repeated.

use http::header::{self, HeaderName, HeaderValue};

/// The fields HTTP/2 does not carry (RFC 9113 §8.2.2).
pub fn connection_specific(name: &HeaderName) -> bool {
    matches!(
        *name,
        header::CONNECTION | header::TRANSFER_ENCODING | header::UPGRADE | header::TE
    ) || name == "keep-alive"
        || name == "proxy-connection"
}

/// Notes a `content-length` field into `seen`: `None` (malformed) when its value is not plain
/// digits or differs from one seen before.
pub fn note_content_length(seen: &mut Option<u64>, value: &HeaderValue) -> Option<()> {
    let n = std::str::from_utf8(value.as_bytes())
        .ok()
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse::<u64>().ok())?;
    if seen.is_some_and(|m| m != n) {
        return None;
    }
    *seen = Some(n);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_lengths_are_one_number() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        let mut seen = None;
        assert_eq!(note_content_length(&mut seen, &v("12")), Some(()));
        assert_eq!(
            note_content_length(&mut seen, &v("12")),
            Some(()),
            "repeated, the same"
        );
        assert_eq!(
            note_content_length(&mut seen, &v("13")),
            None,
            "another number"
        );
        for bad in ["", "+1", "1 ", "0x1", "99999999999999999999"] {
            assert_eq!(note_content_length(&mut None, &v(bad)), None, "{bad:?}");
        }
        assert_eq!(seen, Some(12));
    }

    #[test]
    fn connection_fields_are_not_carried() {
        for n in [
            "connection",
            "transfer-encoding",
            "upgrade",
            "te",
            "keep-alive",
            "proxy-connection",
        ] {
            assert!(connection_specific(&HeaderName::from_static(n)), "{n}");
        }
        assert!(!connection_specific(&header::CONTENT_LENGTH));
    }
}
