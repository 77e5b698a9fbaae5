//! What the `catalog` CLI does, for an operator: create the table, load a catalog, read,
//! write and delete single products, and drop cache entries. Each action checks that
//! the configuration names what it needs (`TABLE_NAME`, `REDIS_URL` or `MEMCACHED_URL`).

use serde_dynamo::Item;
use thiserror::Error;

use crate::adapters::DynamoStore;
use crate::cache_entry::stale_key;
use crate::config::{CatalogConfig, MEMCACHED_URL, REDIS_URL, TABLE_NAME, TableName};
use crate::domain::ProductId;
use crate::error::{CacheError, CatalogError, IdError, ItemError, StartError, StoreError};
use crate::item::{catalog_from_json, check_item, item_from_json, keep_stored_types};
use crate::ports::{Cache, ProductStore};

/// Why an operator action failed.
#[derive(Debug, Error)]
pub enum OperatorError {
    #[error("{TABLE_NAME} is not set: name the DynamoDB table to work on")]
    NoTable,
    #[error(
        "neither {REDIS_URL} nor {MEMCACHED_URL} is set: the in-process cache lives inside the server; restart it instead"
    )]
    NoCache,
    #[error("product {:?} not found", .0.as_str())]
    NotFound(ProductId),
    #[error(transparent)]
    Id(#[from] IdError),
    #[error("not a product")]
    Item(#[from] ItemError),
    /// The file cannot be loaded whole; nothing was written. Each bad item is in `bad`.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("the load stopped after {written} of {total} products were written")]
    LoadStopped {
        written: usize,
        total: usize,
        #[source]
        source: StoreError,
    },
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

    /// Creates the table (on-demand, stream with both images) unless it exists, and
    /// returns once it takes writes.
    ///
    /// # Errors
    /// [`OperatorError`] when no table is configured or DynamoDB refuses.
    pub async fn create_table(&self) -> Result<TableName, OperatorError> {
        let store = self.store().await?;
        store.create_table().await?;
        Ok(store.table().clone())
    }

    /// Loads a JSON array of products, calling `progress` with the number written by
    /// each batch and the total; answers how many the table accepted. Every item is
    /// checked first (id, size, numbers, duplicates): when any is invalid, nothing is
    /// written.
    ///
    /// # Errors
    /// [`OperatorError::Catalog`] naming every bad item, or
    /// [`OperatorError::LoadStopped`] saying how many were written before a batch kept
    /// failing.
    pub async fn load(
        &self,
        json_array: &str,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<usize, OperatorError> {
        let items = catalog_from_json(json_array)?;
        let store = self.store().await?;
        let total = items.len();
        // Counted from what the table accepted, so never more than it holds.
        let mut written = 0;
        let result = store
            .load(items, |batch| {
                written += batch;
                progress(batch, total);
            })
            .await;
        result.map_err(|source| OperatorError::LoadStopped {
            written,
            total,
            source,
        })?;
        Ok(written)
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

    /// Writes one product (a JSON object) and drops its cache entry. Attributes stored
    /// as sets or binary stay so when the new value fits (JSON cannot say it).
    ///
    /// # Errors
    /// [`OperatorError`] when the text is not a product DynamoDB can store or a write
    /// fails.
    pub async fn put(&self, json_object: &str) -> Result<ProductId, OperatorError> {
        let item: Item = item_from_json(json_object)?;
        let id = check_item(&item)?;
        let store = self.store().await?;
        let item = match store.get_item(&id).await? {
            Some(stored) => keep_stored_types(item, &stored),
            None => item,
        };
        store.put(item).await?;
        self.drop_cache_entry(&id).await?;
        Ok(id)
    }

    /// Deletes one product and drops its cache entry and its last-known-good copy (a
    /// deleted product is never served, stale or not, even when no stream invalidator
    /// runs, as locally).
    ///
    /// # Errors
    /// [`OperatorError`] when a write fails.
    pub async fn delete(&self, id: &str) -> Result<ProductId, OperatorError> {
        let id = ProductId::parse(id)?;
        self.store().await?.delete(&id).await?;
        // The entry first: that takes any reader's fill lease, so no fill that read
        // the item before the delete can write the copy back after it is dropped.
        let key = id.cache_key();
        let copy_key = stale_key(&key);
        self.drop_cache_keys(&[key, copy_key]).await?;
        Ok(id)
    }

    /// Drops one product's cache entry; answers its key.
    ///
    /// # Errors
    /// [`OperatorError::NoCache`] when no shared cache (Redis, memcached) is configured.
    pub async fn invalidate(&self, id: &str) -> Result<String, OperatorError> {
        let id = ProductId::parse(id)?;
        if !self.drop_cache_entry(&id).await? {
            return Err(OperatorError::NoCache);
        }
        Ok(id.cache_key())
    }

    async fn store(&self) -> Result<DynamoStore, OperatorError> {
        let table = self.config.table.clone().ok_or(OperatorError::NoTable)?;
        Ok(DynamoStore::from_env(table, self.config.trusted_roots).await)
    }

    /// Deletes the product's cache key when Redis or memcached is configured; says whether
    /// it did.
    async fn drop_cache_entry(&self, id: &ProductId) -> Result<bool, OperatorError> {
        self.drop_cache_keys(&[id.cache_key()]).await
    }

    /// Deletes these keys, in order, when Redis or memcached is configured; says whether
    /// it did.
    async fn drop_cache_keys(&self, keys: &[String]) -> Result<bool, OperatorError> {
        let Some(config) = &self.config.cache else {
            return Ok(false);
        };
        let cache = crate::app::connect_cache(config, 1, self.config.trusted_roots).await?;
        let mut deleted = Ok(());
        for key in keys {
            deleted = cache.delete(key).await;
            if deleted.is_err() {
                break;
            }
        }
        cache.quit().await;
        deleted?;
        Ok(true)
    }
}
