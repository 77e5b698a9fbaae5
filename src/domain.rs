//! The two domain types: [`ProductId`], validated once at the edge, and [`Product`], the
//! exact JSON bytes that are served and cached.

use bytes::Bytes;

use crate::error::IdError;

/// Longest id accepted, in UTF-8 bytes (DynamoDB allows 2048 for a hash key; we ask less).
pub const MAX_ID_BYTES: usize = 256;

/// Prefix of every Redis key this service writes.
pub const CACHE_KEY_PREFIX: &str = "product:";

/// The largest product body the cache holds: 1 MB. A 400 KB item's JSON can exceed it,
/// for example when its strings are mostly characters that JSON escapes, its lists hold
/// many booleans, or its numbers have large exponents (DynamoDB returns `1E+125` with all
/// 126 digits, so a 400 KB item can make about 17 MB). It fits memcached's default item
/// size (1 MiB, key and header included) and moves in about 8 ms at 1 Gbit/s, well inside
/// the default `REDIS_TIMEOUT_MS`. A larger product is read from the table each time and
/// never cached, so a larger value under a product's key was not written by this
/// service, and is not served.
pub const MAX_CACHED_BODY_BYTES: usize = 1_000_000;

/// A product id: 1 to 256 UTF-8 bytes with no control character (Unicode `Cc`: C0, DEL,
/// C1) and no `/` (which could never be routed the same way on every front end). Any other
/// character is allowed and kept as is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProductId(String);

impl ProductId {
    /// Validates an already-decoded id.
    ///
    /// # Errors
    /// [`IdError`] saying which rule the id breaks.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.is_empty() {
            Err(IdError::Empty)
        } else if raw.len() > MAX_ID_BYTES {
            Err(IdError::TooLong(raw.len()))
        } else if raw.chars().any(char::is_control) {
            Err(IdError::ControlCharacter)
        } else if raw.contains('/') {
            Err(IdError::Slash)
        } else {
            Ok(Self(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Redis key of this product: `product:<id>`. The only place that builds one.
    pub fn cache_key(&self) -> String {
        let mut key = String::with_capacity(CACHE_KEY_PREFIX.len() + self.0.len());
        key.push_str(CACHE_KEY_PREFIX);
        key.push_str(&self.0);
        key
    }
}

impl std::fmt::Display for ProductId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A product as served: a JSON object, UTF-8, numbers with their exact digits. Built by
/// [`crate::item::product_from_item`] or read back from the cache; never re-parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    body: Bytes,
}

impl Product {
    /// Wraps JSON bytes produced by [`crate::item`]; the caller vouches for them.
    pub fn from_json_bytes(body: Bytes) -> Self {
        Self { body }
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    pub fn into_body(self) -> Bytes {
        self.body
    }

    /// Whether the cache may hold this product ([`MAX_CACHED_BODY_BYTES`]).
    pub fn is_cacheable(&self) -> bool {
        Self::fits_cache(&self.body)
    }

    /// Whether bytes are within what the cache holds ([`MAX_CACHED_BODY_BYTES`]): the one
    /// place the limit is compared.
    pub fn fits_cache(bytes: &[u8]) -> bool {
        bytes.len() <= MAX_CACHED_BODY_BYTES
    }

    /// Whether cached bytes are a JSON object the cache may hold, so they can be served
    /// as a product. A validating scan that builds nothing (a few microseconds for a
    /// typical product): bytes that merely look like an object are never served as
    /// `application/json`.
    pub fn looks_valid(bytes: &[u8]) -> bool {
        // serde_json does not check UTF-8 inside strings it skips: ask first.
        bytes.first() == Some(&b'{')
            && Self::fits_cache(bytes)
            && std::str::from_utf8(bytes).is_ok()
            && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_any_printable_unicode() {
        for id in [
            "1",
            "abc-123",
            "a b",
            "*",
            "+%",
            "ünïcødé",
            "🦀",
            "..",
            "a\\b",
            &"x".repeat(256),
        ] {
            let parsed = ProductId::parse(id).unwrap();
            assert_eq!(parsed.as_str(), id);
            assert_eq!(parsed.cache_key(), format!("product:{id}"));
        }
    }

    #[test]
    fn refuses_empty_long_and_control_ids() {
        assert_eq!(ProductId::parse(""), Err(IdError::Empty));
        assert_eq!(
            ProductId::parse(&"x".repeat(257)),
            Err(IdError::TooLong(257))
        );
        // 129 two-byte characters: 258 bytes though only 129 characters.
        assert_eq!(
            ProductId::parse(&"é".repeat(129)),
            Err(IdError::TooLong(258))
        );
        for id in [
            "a\u{0}b", "a\rb", "a\nb", "\u{7f}", "x\u{85}", "\u{9f}", "\t",
        ] {
            assert_eq!(
                ProductId::parse(id),
                Err(IdError::ControlCharacter),
                "{id:?}"
            );
        }
    }

    #[test]
    fn refuses_slashes_in_any_form() {
        assert_eq!(ProductId::parse("a/b"), Err(IdError::Slash));
        assert_eq!(ProductId::parse("/"), Err(IdError::Slash));
    }

    #[test]
    fn only_json_objects_are_products() {
        assert!(Product::looks_valid(br#"{"productId":"1"}"#));
        // Up to the largest body the cache holds, and no further.
        let object_of = |len: usize| format!(r#"{{"d":"{}"}}"#, "x".repeat(len - 8));
        assert!(Product::looks_valid(
            object_of(MAX_CACHED_BODY_BYTES).as_bytes()
        ));
        assert!(!Product::looks_valid(
            object_of(MAX_CACHED_BODY_BYTES + 1).as_bytes()
        ));
        assert!(!Product::looks_valid(b""));
        assert!(!Product::looks_valid(b"garbage"));
        assert!(!Product::looks_valid(b"{\xff}"));
        assert!(!Product::looks_valid(b"{not json}"));
        assert!(!Product::looks_valid(br#"{"a":1} {"b":2}"#));
        assert!(!Product::looks_valid(br#"["not an object"]"#));
    }

    #[test]
    fn bytes_that_are_not_utf_8_are_never_a_product() {
        // serde_json skips string contents without checking them
        assert!(!Product::looks_valid(b"{\"a\":\"\xff\xfe\"}"));
        assert!(Product::looks_valid("{\"a\":\"caf\u{e9}\"}".as_bytes()));
    }
}
