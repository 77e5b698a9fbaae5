//! What the `catalog` CLI does, for an operator: create the table, load a catalog, read,
//! write and delete single products, and drop cache entries. Each action checks that
//! the configuration names what it needs (`TABLE_NAME`, `REDIS_URL`).

use serde_dynamo::Item;
use thiserror::Error;

use crate::adapters::{DynamoStore, RedisCache};
use crate::config::{CatalogConfig, REDIS_URL, TABLE_NAME, TableName};
use crate::domain::ProductId;
use crate::error::{CacheError, IdError, ItemError, StartError, StoreError};
use crate::item::{item_from_json, item_id, items_from_json_array};
use crate::ports::{Cache, ProductStore};

/// Why an operator action failed.
#[derive(Debug, Error)]
pub enum OperatorError {
    #[error("{TABLE_NAME} is not set: name the DynamoDB table to work on")]
    NoTable,
    #[error(
        "{REDIS_URL} is not set: the in-process cache lives inside the server; restart it instead"
    )]
    NoCache,
    #[error("product {:?} not found", .0.as_str())]
    NotFound(ProductId),
    #[error(transparent)]
    Id(#[from] IdError),
    #[error("not a product")]
    Item(#[from] ItemError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the cache entry could not be dropped")]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Start(#[from] StartError),
}

/// The actions, over the configured table and cache.
pub struct Operator {
    config: CatalogConfig,
}

impl Operator {
    pub fn new(config: CatalogConfig) -> Self {
        Self { config }
    }

    /// Creates the table (on-demand, stream with both images) unless it exists.
    ///
    /// # Errors
    /// [`OperatorError`] when no table is configured or DynamoDB refuses.
    pub async fn create_table(&self) -> Result<TableName, OperatorError> {
        let store = self.store().await?;
        store.create_table().await?;
        Ok(store.table().clone())
    }

    /// Loads a JSON array of products, calling `progress` with the number written by
    /// each batch and the total; answers how many were loaded.
    ///
    /// # Errors
    /// [`OperatorError`] when the text is not a product array or a batch keeps failing.
    pub async fn load(
        &self,
        json_array: &str,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<usize, OperatorError> {
        let items = items_from_json_array(json_array)?;
        let store = self.store().await?;
        let total = items.len();
        store
            .load(items, |written| progress(written, total))
            .await?;
        Ok(total)
    }

    /// The product as the API would serve it.
    ///
    /// # Errors
    /// [`OperatorError::NotFound`] when the table has no such product.
    pub async fn get(&self, id: &str) -> Result<String, OperatorError> {
        let id = ProductId::parse(id)?;
        match self.store().await?.get(&id).await? {
            Some(product) => Ok(String::from_utf8_lossy(product.body()).into_owned()),
            None => Err(OperatorError::NotFound(id)),
        }
    }

    /// Writes one product (a JSON object) and drops its cache entry.
    ///
    /// # Errors
    /// [`OperatorError`] when the text is not a product or a write fails.
    pub async fn put(&self, json_object: &str) -> Result<ProductId, OperatorError> {
        let item: Item = item_from_json(json_object)?;
        let id = ProductId::parse(item_id(&item).unwrap_or_default())?;
        self.store().await?.put(item).await?;
        self.drop_cache_entry(&id).await?;
        Ok(id)
    }

    /// Deletes one product and drops its cache entry.
    ///
    /// # Errors
    /// [`OperatorError`] when a write fails.
    pub async fn delete(&self, id: &str) -> Result<ProductId, OperatorError> {
        let id = ProductId::parse(id)?;
        self.store().await?.delete(&id).await?;
        self.drop_cache_entry(&id).await?;
        Ok(id)
    }

    /// Drops one product's cache entry; answers its key.
    ///
    /// # Errors
    /// [`OperatorError::NoCache`] when no Redis is configured.
    pub async fn invalidate(&self, id: &str) -> Result<String, OperatorError> {
        let id = ProductId::parse(id)?;
        if !self.drop_cache_entry(&id).await? {
            return Err(OperatorError::NoCache);
        }
        Ok(id.cache_key())
    }

    async fn store(&self) -> Result<DynamoStore, OperatorError> {
        let table = self.config.table.clone().ok_or(OperatorError::NoTable)?;
        Ok(DynamoStore::from_env(table).await)
    }

    /// Deletes the product's cache key when a Redis is configured; says whether it did.
    async fn drop_cache_entry(&self, id: &ProductId) -> Result<bool, OperatorError> {
        let Some(redis) = &self.config.redis else {
            return Ok(false);
        };
        let cache: RedisCache = crate::app::connect_redis(redis, 1).await?;
        let deleted = cache.delete(&id.cache_key()).await;
        cache.quit().await;
        deleted?;
        Ok(true)
    }
}
