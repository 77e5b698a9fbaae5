//! DynamoDB items <-> the JSON we serve, keeping every number's exact digits.
//!
//! `serde_dynamo` gives us the item type shared by the SDK and the stream events, but its
//! JSON path goes through `f64`, which would turn `12345678901234567890.123456789` into
//! `1.2345678901234567e19`. So numbers travel as raw JSON text (`serde_json::RawValue`)
//! both ways. Keys are written sorted, so one item always gives the same bytes (and ETag).
//!
//! Mapping: S -> string, N -> number, BOOL, NULL -> null, L -> array, M -> object,
//! SS/NS -> arrays, B/BS -> base64 strings.

use std::collections::{BTreeMap, HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::ser::{Error as _, Serialize, SerializeSeq, Serializer};
use serde_dynamo::{AttributeValue, Item};
use serde_json::value::RawValue;

use crate::domain::{Product, ProductId};
use crate::error::{BadItem, CatalogError, ItemError};

/// Name of the table's hash key.
pub const ID_ATTRIBUTE: &str = "productId";

/// DynamoDB's limit on an item's size (400 KB), attribute names included.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB numbers: at most 38 significant digits, magnitude from 1e-130 up to (not
/// including) 1e126, i.e. the leading digit's power of ten is from -130 to 125.
const MAX_NUMBER_DIGITS: usize = 38;
/// An attribute name is at least 1 byte and less than 64 KB (DynamoDB's naming rules;
/// the API reference gives 65535 for a map's keys).
const MAX_ATTRIBUTE_NAME_BYTES: usize = 64 * 1024 - 1;
/// DynamoDB takes documents 32 levels deep, the attribute itself counted as the first:
/// 31 lists or maps inside one another (measured against DynamoDB by others: 31 maps
/// accepted, 32 refused; the emulators check nothing).
const MAX_NESTING: usize = 31;
const NUMBER_EXPONENTS: std::ops::RangeInclusive<i64> = -130..=125;

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

/// Reads a catalog file (a JSON array of products) and checks every element as the
/// table and the API would ([`check_item`]), and that no id appears twice, so that a load
/// can write everything or nothing.
///
/// # Errors
/// [`CatalogError::NotAnArray`] when the text is not a JSON array;
/// [`CatalogError::BadItems`] naming every element that cannot be loaded.
pub fn catalog_from_json(text: &str) -> Result<Vec<Item>, CatalogError> {
    let raws: Vec<&RawValue> = serde_json::from_str(text).map_err(CatalogError::NotAnArray)?;
    let total = raws.len();
    let mut items = Vec::with_capacity(total);
    let mut bad = Vec::new();
    let mut first_index: HashMap<String, usize> = HashMap::with_capacity(total);
    for (index, raw) in raws.into_iter().enumerate() {
        let checked = item_from_raw(raw).and_then(|item| {
            let id = check_item(&item)?;
            Ok((item, id))
        });
        let (item, id) = match checked {
            Ok(checked) => checked,
            Err(error) => {
                let id = item_from_raw(raw)
                    .ok()
                    .and_then(|item| item_id(&item).map(str::to_owned));
                bad.push(BadItem { index, id, error });
                continue;
            }
        };
        if let Some(&first) = first_index.get(id.as_str()) {
            bad.push(BadItem {
                index,
                id: Some(id.as_str().to_owned()),
                error: ItemError::Duplicate { first },
            });
            continue;
        }
        first_index.insert(id.as_str().to_owned(), index);
        items.push(item);
    }
    if bad.is_empty() {
        Ok(items)
    } else {
        Err(CatalogError::BadItems { bad, total })
    }
}

/// Checks what would make an item unusable: an id the API refuses (so it could never be
/// read, or deleted with the CLI), a number DynamoDB refuses, an attribute name it
/// refuses, documents nested deeper than it takes, or a size over 400 KB. Returns its id.
///
/// # Errors
/// The first [`ItemError`] found.
pub fn check_item(item: &Item) -> Result<ProductId, ItemError> {
    let id = ProductId::parse(item_id(item).ok_or(ItemError::MissingId)?)?;
    let mut size = 0;
    for (name, value) in item.iter() {
        if name.is_empty() || name.len() > MAX_ATTRIBUTE_NAME_BYTES {
            return Err(ItemError::AttributeName(name.len()));
        }
        size += name.len() + attribute_size(value, 0)?;
    }
    if size > MAX_ITEM_BYTES {
        return Err(ItemError::TooLarge(size));
    }
    Ok(id)
}

/// An attribute value's size as DynamoDB counts it (its name not included), checking
/// every number and the documents' nesting on the way; `depth` is how many lists and
/// maps hold the value.
fn attribute_size(value: &AttributeValue, depth: usize) -> Result<usize, ItemError> {
    if depth >= MAX_NESTING && matches!(value, AttributeValue::L(_) | AttributeValue::M(_)) {
        return Err(ItemError::TooDeep);
    }
    Ok(match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n)?,
        AttributeValue::B(b) => b.len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        // 3 bytes per document, 1 per element, and the elements (with their names).
        AttributeValue::L(list) => {
            let mut size = 3 + list.len();
            for element in list {
                size += attribute_size(element, depth + 1)?;
            }
            size
        }
        AttributeValue::M(map) => {
            let mut size = 3 + map.len();
            for (name, element) in map {
                size += name.len() + attribute_size(element, depth + 1)?;
            }
            size
        }
        AttributeValue::Ss(strings) => strings.iter().map(String::len).sum(),
        AttributeValue::Ns(numbers) => {
            let mut size = 0;
            for n in numbers {
                size += number_size(n)?;
            }
            size
        }
        AttributeValue::Bs(blobs) => blobs.iter().map(Vec::len).sum(),
    })
}

/// Checks a number against DynamoDB's range and precision; its size is about one byte
/// per two significant digits, plus one.
fn number_size(n: &str) -> Result<usize, ItemError> {
    let out_of_range = || ItemError::NumberOutOfRange(n.to_owned());
    raw_number(n)?;
    let unsigned = n.strip_prefix('-').unwrap_or(n);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => {
            let exponent = exponent.strip_prefix('+').unwrap_or(exponent);
            // Too many digits to fit i64: far outside the range, unless the number is 0.
            (mantissa, exponent.parse::<i64>().ok())
        }
        None => (unsigned, Some(0)),
    };
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = || integer.bytes().chain(fraction.bytes());
    let Some(leading) = digits().position(|d| d != b'0') else {
        return Ok(1); // zero, whatever its exponent
    };
    let trailing = digits().rev().position(|d| d != b'0').unwrap_or(0);
    let significant = integer.len() + fraction.len() - leading - trailing;
    let exponent = exponent.ok_or_else(out_of_range)?;
    // The power of ten of the leading significant digit.
    let leading_power = exponent.saturating_add(integer.len() as i64 - 1 - leading as i64);
    if significant > MAX_NUMBER_DIGITS || !NUMBER_EXPONENTS.contains(&leading_power) {
        return Err(out_of_range());
    }
    Ok(significant.div_ceil(2) + 1)
}

/// A new item for `stored`'s id keeps the types JSON cannot express where the new value
/// fits them: string, number and binary sets (served as arrays) and binary values (served
/// as base64), so `catalog get` then `catalog put` changes nothing it was not asked to.
pub fn keep_stored_types(new: Item, stored: &Item) -> Item {
    let map: HashMap<String, AttributeValue> = new.into();
    let stored: &HashMap<String, AttributeValue> = stored;
    Item::from(conform_map(map, stored))
}

fn conform_map(
    map: HashMap<String, AttributeValue>,
    stored: &HashMap<String, AttributeValue>,
) -> HashMap<String, AttributeValue> {
    map.into_iter()
        .map(|(name, value)| {
            let value = match stored.get(&name) {
                Some(old) => conform(value, old),
                None => value,
            };
            (name, value)
        })
        .collect()
}

fn conform(value: AttributeValue, stored: &AttributeValue) -> AttributeValue {
    match (value, stored) {
        (AttributeValue::L(list), AttributeValue::Ss(_)) => {
            let strings: Option<Vec<String>> = list
                .iter()
                .map(|v| match v {
                    AttributeValue::S(s) => Some(s.clone()),
                    _ => None,
                })
                .collect();
            match strings {
                Some(strings) if is_set(&strings) => AttributeValue::Ss(strings),
                _ => AttributeValue::L(list),
            }
        }
        (AttributeValue::L(list), AttributeValue::Ns(_)) => {
            let numbers: Option<Vec<String>> = list
                .iter()
                .map(|v| match v {
                    AttributeValue::N(n) => Some(n.clone()),
                    _ => None,
                })
                .collect();
            match numbers {
                Some(numbers) if is_set(&numbers) => AttributeValue::Ns(numbers),
                _ => AttributeValue::L(list),
            }
        }
        (AttributeValue::L(list), AttributeValue::Bs(_)) => {
            let blobs: Option<Vec<Vec<u8>>> = list
                .iter()
                .map(|v| match v {
                    AttributeValue::S(s) => BASE64.decode(s).ok(),
                    _ => None,
                })
                .collect();
            match blobs {
                Some(blobs) if is_set(&blobs) => AttributeValue::Bs(blobs),
                _ => AttributeValue::L(list),
            }
        }
        (AttributeValue::S(s), AttributeValue::B(_)) => match BASE64.decode(&s) {
            Ok(bytes) => AttributeValue::B(bytes),
            Err(_) => AttributeValue::S(s),
        },
        (AttributeValue::M(map), AttributeValue::M(old)) => {
            AttributeValue::M(conform_map(map, old))
        }
        (AttributeValue::L(list), AttributeValue::L(old)) => AttributeValue::L(
            list.into_iter()
                .enumerate()
                .map(|(i, value)| match old.get(i) {
                    Some(old) => conform(value, old),
                    None => value,
                })
                .collect(),
        ),
        (value, _) => value,
    }
}

/// DynamoDB sets are non-empty and hold no element twice.
fn is_set<T: Eq + std::hash::Hash>(elements: &[T]) -> bool {
    !elements.is_empty() && elements.iter().collect::<HashSet<_>>().len() == elements.len()
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

    #[test]
    fn numbers_are_checked_against_dynamodb_range_and_precision() {
        let fine = [
            "0",
            "-0.0",
            "0e999999999999999999999",
            "1e-130",
            "-1E-130",
            "9.9999999999999999999999999999999999999e125",
            "12345678901234567890123456789012345678",
            "1.000000000000000000000000000000000000000000000",
            "0.00000000000000000000000000000000000000000001",
            "123000000000000000000000000000000000000000000000000",
        ];
        for n in fine {
            assert!(number_size(n).is_ok(), "{n}");
        }
        assert_eq!(number_size("12345").unwrap(), 4);
        let refused = [
            "1e126",
            "-1e126",
            "10e125",
            "1e-131",
            "0.1e-130",
            "1e400",
            "1e99999999999999999999",
            "123456789012345678901234567890123456789",
            "1.23456789012345678901234567890123456789",
        ];
        for n in refused {
            assert!(
                matches!(number_size(n), Err(ItemError::NumberOutOfRange(_))),
                "{n}"
            );
        }
    }

    #[test]
    fn item_size_counts_names_and_values_up_to_400_kb() {
        // GIVEN items of exactly 409,600 bytes and one more: "productId" + "p" (10) and
        // "t" + its string
        let sized = |len: usize| {
            item(vec![
                ("productId", AttributeValue::S("p".into())),
                ("t", AttributeValue::S("x".repeat(len))),
            ])
        };
        assert!(check_item(&sized(MAX_ITEM_BYTES - 11)).is_ok());
        assert!(matches!(
            check_item(&sized(MAX_ITEM_BYTES - 10)),
            Err(ItemError::TooLarge(409_601))
        ));
        // Documents: 3 bytes each, 1 per element, names of map entries.
        let nested = item(vec![
            ("productId", AttributeValue::S("p".into())),
            (
                "m",
                AttributeValue::M(HashMap::from([(
                    "ab".to_owned(),
                    AttributeValue::L(vec![AttributeValue::Bool(true), AttributeValue::Null(true)]),
                )])),
            ),
        ]);
        let mut size = 0;
        for (name, value) in nested.iter() {
            size += name.len() + attribute_size(value, 0).unwrap();
        }
        assert_eq!(size, 10 + 1 + (3 + 1 + 2 + (3 + 2 + 1 + 1)));
        // And ids the API refuses are refused here too.
        let slash = item(vec![("productId", AttributeValue::S("a/b".into()))]);
        assert!(matches!(check_item(&slash), Err(ItemError::InvalidId(_))));
    }

    #[test]
    fn names_and_nesting_are_checked_against_dynamodb_s_rules() {
        let with = |name: &str, value: AttributeValue| {
            item(vec![
                ("productId", AttributeValue::S("p".into())),
                (name, value),
            ])
        };
        let nested = |levels: usize| {
            let mut value = AttributeValue::S("x".into());
            for level in 0..levels {
                value = if level % 2 == 0 {
                    AttributeValue::M(HashMap::from([("a".to_owned(), value)]))
                } else {
                    AttributeValue::L(vec![value])
                };
            }
            value
        };
        // GIVEN names of 1 byte and of 64 KB, and lists and maps 32 levels deep
        // THEN DynamoDB takes them
        assert!(check_item(&with("n", AttributeValue::Null(true))).is_ok());
        assert!(check_item(&with(&"n".repeat(65_535), AttributeValue::Null(true))).is_ok());
        assert!(check_item(&with("d", nested(31))).is_ok());
        // GIVEN an empty name, one of 64 KB, or a 32nd list or map THEN the item is
        // refused before anything is written (a load would otherwise stop part-way)
        assert!(matches!(
            check_item(&with("", AttributeValue::Null(true))),
            Err(ItemError::AttributeName(0))
        ));
        assert!(matches!(
            check_item(&with(&"n".repeat(65_536), AttributeValue::Null(true))),
            Err(ItemError::AttributeName(65_536))
        ));
        assert!(matches!(
            check_item(&with("d", nested(32))),
            Err(ItemError::TooDeep)
        ));
        // AND a catalog file names it
        let deep = format!(
            r#"[{{"productId":"P-1","d":{}1{}}}, {{"productId":"P-2","":1}}]"#,
            "[".repeat(32),
            "]".repeat(32)
        );
        let shown = catalog_from_json(&deep).unwrap_err().to_string();
        assert_eq!(shown, "2 of 2 items are invalid");
        match catalog_from_json(&deep) {
            Err(CatalogError::BadItems { bad, .. }) => {
                assert!(
                    bad[0].to_string().contains("31 lists or maps"),
                    "{}",
                    bad[0]
                );
                assert!(
                    bad[1].to_string().contains("attribute name of 0 bytes"),
                    "{}",
                    bad[1]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_catalog_file_names_every_bad_item() {
        let text = r#"[{"productId":"a"},{"productId":"a/b"},{"productId":"a"},7,{"productId":"n","v":1e400},{"productId":"b"}]"#;
        let Err(CatalogError::BadItems { bad, total }) = catalog_from_json(text) else {
            panic!("accepted");
        };
        assert_eq!(total, 6);
        let named: Vec<String> = bad.iter().map(ToString::to_string).collect();
        assert_eq!(
            named,
            [
                r#"item [1] (productId "a/b"): product id contains '/'"#,
                r#"item [2] (productId "a"): same productId as item [0]"#,
                "item [3]: a product must be a JSON object",
                r#"item [4] (productId "n"): number 1e400 is outside DynamoDB's range (at most 38 significant digits, magnitude from 1e-130 to under 1e126)"#,
            ]
        );
        assert_eq!(
            catalog_from_json(r#"[{"productId":"a"}]"#).unwrap().len(),
            1
        );
        assert!(matches!(
            catalog_from_json("{}"),
            Err(CatalogError::NotAnArray(_))
        ));
    }

    #[test]
    fn put_keeps_the_types_json_cannot_express() {
        // GIVEN a stored item with sets and binary, and its served JSON edited
        let stored = item(vec![
            ("productId", AttributeValue::S("p".into())),
            ("tags", AttributeValue::Ss(vec!["a".into(), "b".into()])),
            ("sizes", AttributeValue::Ns(vec!["1".into(), "2.5".into()])),
            ("blobs", AttributeValue::Bs(vec![b"x".to_vec()])),
            ("icon", AttributeValue::B(b"hi".to_vec())),
            (
                "m",
                AttributeValue::M(HashMap::from([(
                    "inner".to_owned(),
                    AttributeValue::Ss(vec!["z".into()]),
                )])),
            ),
            ("was_set", AttributeValue::Ss(vec!["a".into()])),
        ]);
        let edited = item_from_json(
            r#"{"productId":"p","tags":["a","c"],"sizes":[1,3],"blobs":["eA=="],"icon":"aGk=","m":{"inner":["y"]},"was_set":["a","a"],"new":["q"]}"#,
        )
        .unwrap();
        // WHEN it is put back
        let kept = keep_stored_types(edited, &stored);
        // THEN what fits keeps its type; what does not (a repeated element) stays a list
        assert_eq!(
            kept.get("tags"),
            Some(&AttributeValue::Ss(vec!["a".into(), "c".into()]))
        );
        assert_eq!(
            kept.get("sizes"),
            Some(&AttributeValue::Ns(vec!["1".into(), "3".into()]))
        );
        assert_eq!(
            kept.get("blobs"),
            Some(&AttributeValue::Bs(vec![b"x".to_vec()]))
        );
        assert_eq!(kept.get("icon"), Some(&AttributeValue::B(b"hi".to_vec())));
        assert_eq!(
            kept.get("m"),
            Some(&AttributeValue::M(HashMap::from([(
                "inner".to_owned(),
                AttributeValue::Ss(vec!["y".into()])
            )])))
        );
        assert!(matches!(kept.get("was_set"), Some(AttributeValue::L(_))));
        assert!(matches!(kept.get("new"), Some(AttributeValue::L(_))));
    }
}
