//! In-memory [`ProductStore`]: the sample catalog `data/products.json`, embedded in the
//! binary so `make run` needs no files, services or AWS account.

use std::collections::HashMap;

use crate::domain::{Product, ProductId};
use crate::error::{ItemError, StoreError};
use crate::item::{item_id, items_from_json_array, product_from_item};
use crate::ports::ProductStore;

/// The sample catalog shipped with the project.
pub const SAMPLE_CATALOG: &str = include_str!("../../data/products.json");

/// Products held in a map, already converted to the bytes a DynamoDB read would give.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    products: HashMap<String, Product>,
}

impl MemoryStore {
    /// The embedded sample catalog.
    ///
    /// # Errors
    /// [`ItemError`] if the embedded file is not an array of products.
    pub fn sample() -> Result<Self, ItemError> {
        Self::from_json_array(SAMPLE_CATALOG)
    }

    /// A catalog from a JSON array of product objects, each with a string `productId`.
    ///
    /// # Errors
    /// [`ItemError`] for the first element that is not a product.
    pub fn from_json_array(text: &str) -> Result<Self, ItemError> {
        let mut products = HashMap::new();
        for item in items_from_json_array(text)? {
            let id = item_id(&item).ok_or(ItemError::MissingId)?.to_owned();
            products.insert(id, product_from_item(&item)?);
        }
        Ok(Self { products })
    }

    pub fn len(&self) -> usize {
        self.products.len()
    }

    pub fn is_empty(&self) -> bool {
        self.products.is_empty()
    }

    /// Ids in the catalog, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.products.keys().map(String::as_str)
    }
}

impl ProductStore for MemoryStore {
    async fn get(&self, id: &ProductId) -> Result<Option<Product>, StoreError> {
        Ok(self.products.get(id.as_str()).cloned())
    }
}
