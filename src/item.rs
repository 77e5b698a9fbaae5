//! DynamoDB items <-> the JSON we serve, keeping every number's exact digits.
//!
//! `serde_dynamo` gives us the item type shared by the SDK and the stream events, but its
//! JSON path goes through `f64`, which would turn `12345678901234567890.123456789` into
//! `1.2345678901234567e19`. So numbers travel as raw JSON text (`serde_json::RawValue`)
//! both ways. Keys are written sorted, so one item always gives the same bytes (and ETag).
//!
//! Mapping: S -> string, N -> number, BOOL, NULL -> null, L -> array, M -> object,
//! SS/NS -> arrays, B/BS -> base64 strings.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::ser::{Error as _, Serialize, SerializeSeq, Serializer};
use serde_dynamo::{AttributeValue, Item};
use serde_json::value::RawValue;

use crate::domain::Product;
use crate::error::ItemError;

/// Name of the table's hash key.
pub const ID_ATTRIBUTE: &str = "productId";

/// Converts a DynamoDB item into the product JSON served and cached.
///
/// # Errors
/// [`ItemError::BadNumber`] when an `N` is not a JSON number.
pub fn product_from_item(item: &Item) -> Result<Product, ItemError> {
    let body = serde_json::to_vec(&JsonMap(item))?;
    Ok(Product::from_json_bytes(Bytes::from(body)))
}

/// Parses one JSON object into a DynamoDB item, numbers kept as written.
///
/// # Errors
/// [`ItemError`] when the text is not a JSON object with a string `productId`.
pub fn item_from_json(text: &str) -> Result<Item, ItemError> {
    let raw: &RawValue = serde_json::from_str(text)?;
    item_from_raw(raw)
}

/// Like [`item_from_json`] for a value already split out of a larger document.
///
/// # Errors
/// As [`item_from_json`].
pub fn item_from_raw(raw: &RawValue) -> Result<Item, ItemError> {
    match attribute_from_raw(raw)? {
        AttributeValue::M(map) => {
            if !matches!(map.get(ID_ATTRIBUTE), Some(AttributeValue::S(id)) if !id.is_empty()) {
                return Err(ItemError::MissingId);
            }
            Ok(Item::from(map))
        }
        _ => Err(ItemError::NotAnObject),
    }
}

/// The `productId` of an item, when it has a string one.
pub fn item_id(item: &Item) -> Option<&str> {
    match item.get(ID_ATTRIBUTE) {
        Some(AttributeValue::S(id)) => Some(id),
        _ => None,
    }
}

/// Parses a JSON document holding an array of product objects.
///
/// # Errors
/// [`ItemError`] for the first element that is not a product.
pub fn items_from_json_array(text: &str) -> Result<Vec<Item>, ItemError> {
    let raws: Vec<&RawValue> = serde_json::from_str(text)?;
    raws.into_iter().map(item_from_raw).collect()
}

fn attribute_from_raw(raw: &RawValue) -> Result<AttributeValue, ItemError> {
    let text = raw.get();
    // RawValue holds exactly one valid JSON value, so its first byte names its type.
    Ok(match text.as_bytes().first() {
        Some(b'{') => {
            let fields: HashMap<String, &RawValue> = serde_json::from_str(text)?;
            let map = fields
                .into_iter()
                .map(|(key, value)| Ok((key, attribute_from_raw(value)?)))
                .collect::<Result<_, ItemError>>()?;
            AttributeValue::M(map)
        }
        Some(b'[') => {
            let elements: Vec<&RawValue> = serde_json::from_str(text)?;
            AttributeValue::L(
                elements
                    .into_iter()
                    .map(attribute_from_raw)
                    .collect::<Result<_, _>>()?,
            )
        }
        Some(b'"') => AttributeValue::S(serde_json::from_str(text)?),
        Some(b't') => AttributeValue::Bool(true),
        Some(b'f') => AttributeValue::Bool(false),
        Some(b'n') => AttributeValue::Null(true),
        _ => AttributeValue::N(text.to_owned()),
    })
}

/// Serializes an item's attributes as a JSON object with sorted keys.
struct JsonMap<'a>(&'a HashMap<String, AttributeValue>);

impl Serialize for JsonMap<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let sorted: BTreeMap<&str, Json<'_>> =
            self.0.iter().map(|(k, v)| (k.as_str(), Json(v))).collect();
        sorted.serialize(serializer)
    }
}

struct Json<'a>(&'a AttributeValue);

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            AttributeValue::S(s) => serializer.serialize_str(s),
            AttributeValue::N(n) => raw_number(n)
                .map_err(S::Error::custom)?
                .serialize(serializer),
            AttributeValue::Bool(b) => serializer.serialize_bool(*b),
            AttributeValue::Null(_) => serializer.serialize_unit(),
            AttributeValue::B(bytes) => serializer.serialize_str(&BASE64.encode(bytes)),
            AttributeValue::M(map) => JsonMap(map).serialize(serializer),
            AttributeValue::L(list) => serializer.collect_seq(list.iter().map(Json)),
            AttributeValue::Ss(strings) => serializer.collect_seq(strings),
            AttributeValue::Ns(numbers) => {
                let mut seq = serializer.serialize_seq(Some(numbers.len()))?;
                for n in numbers {
                    seq.serialize_element(raw_number(n).map_err(S::Error::custom)?)?;
                }
                seq.end()
            }
            AttributeValue::Bs(blobs) => {
                serializer.collect_seq(blobs.iter().map(|b| BASE64.encode(b)))
            }
        }
    }
}

/// DynamoDB's number text as a raw JSON number, refusing anything else (`"x"`, `true`).
fn raw_number(n: &str) -> Result<&RawValue, ItemError> {
    let is_number_start = matches!(n.as_bytes().first(), Some(b'-' | b'0'..=b'9'));
    match serde_json::from_str::<&RawValue>(n) {
        Ok(raw) if is_number_start && raw.get().len() == n.len() => Ok(raw),
        _ => Err(ItemError::BadNumber(n.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: Vec<(&str, AttributeValue)>) -> Item {
        Item::from(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<HashMap<_, _>>(),
        )
    }

    fn json_of(item: &Item) -> String {
        String::from_utf8(product_from_item(item).unwrap().into_body().to_vec()).unwrap()
    }

    #[test]
    fn numbers_keep_their_exact_digits() {
        let item = item(vec![
            ("productId", AttributeValue::S("p1".into())),
            (
                "price",
                AttributeValue::N("12345678901234567890.123456789".into()),
            ),
            (
                "small",
                AttributeValue::N("-0.000000000000000000000000000001".into()),
            ),
            ("sizes", AttributeValue::Ns(vec!["1".into(), "2.50".into()])),
        ]);
        assert_eq!(
            json_of(&item),
            r#"{"price":12345678901234567890.123456789,"productId":"p1","sizes":[1,2.50],"small":-0.000000000000000000000000000001}"#
        );
    }

    #[test]
    fn every_attribute_type_maps_to_plain_json() {
        let item = item(vec![
            ("productId", AttributeValue::S("p\"2\u{1F980}".into())),
            ("active", AttributeValue::Bool(true)),
            ("gone", AttributeValue::Null(true)),
            ("blob", AttributeValue::B(b"hi".to_vec())),
            ("blobs", AttributeValue::Bs(vec![b"a".to_vec()])),
            ("tags", AttributeValue::Ss(vec!["x".into(), "y".into()])),
            (
                "dims",
                AttributeValue::M(HashMap::from([
                    ("w".to_owned(), AttributeValue::N("10".into())),
                    (
                        "list".to_owned(),
                        AttributeValue::L(vec![
                            AttributeValue::S("a".into()),
                            AttributeValue::N("1e3".into()),
                        ]),
                    ),
                ])),
            ),
        ]);
        assert_eq!(
            json_of(&item),
            r#"{"active":true,"blob":"aGk=","blobs":["YQ=="],"dims":{"list":["a",1e3],"w":10},"gone":null,"productId":"p\"2🦀","tags":["x","y"]}"#
        );
    }

    #[test]
    fn non_numbers_in_n_are_refused() {
        for bad in ["abc", "true", "\"1\"", "1 2", "", " 1", "+1", ".5"] {
            let item = item(vec![
                ("productId", AttributeValue::S("p".into())),
                ("n", AttributeValue::N(bad.into())),
            ]);
            assert!(product_from_item(&item).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn json_round_trips_through_an_item() {
        let text = r#"{"productId":"sku-1","name":"Café ☕","price":19.990,"big":123456789012345678901234567890,"tags":["a","b"],"dims":{"h":1.5,"deep":[{"x":null,"y":false}]}}"#;
        let item = item_from_json(text).unwrap();
        assert_eq!(item_id(&item), Some("sku-1"));
        assert_eq!(item.get("price"), Some(&AttributeValue::N("19.990".into())));
        let back = json_of(&item);
        let expected = r#"{"big":123456789012345678901234567890,"dims":{"deep":[{"x":null,"y":false}],"h":1.5},"name":"Café ☕","price":19.990,"productId":"sku-1","tags":["a","b"]}"#;
        assert_eq!(back, expected);
        // And the served form is a fixed point.
        assert_eq!(json_of(&item_from_json(&back).unwrap()), expected);
    }

    #[test]
    fn documents_that_are_not_products_are_refused() {
        assert!(matches!(item_from_json("[1]"), Err(ItemError::NotAnObject)));
        assert!(matches!(
            item_from_json(r#"{"name":"x"}"#),
            Err(ItemError::MissingId)
        ));
        assert!(matches!(
            item_from_json(r#"{"productId":7}"#),
            Err(ItemError::MissingId)
        ));
        assert!(matches!(item_from_json("{"), Err(ItemError::Json(_))));
    }
}
