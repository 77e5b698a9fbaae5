//! DynamoDB Stream records -> cache changes, applied in stream order.
//!
//! INSERT and MODIFY refresh `product:<id>` from the record's new image (the same
//! conversion as the read path, so the bytes are what a miss would store); REMOVE
//! replaces it with the "missing" marker. Both are plain `SET`s: they overwrite any
//! reader's fill lease, which is what keeps a reader holding an older copy from putting
//! it back (see `service.rs`). Applying a record twice gives the same state, so
//! redelivery is harmless.

use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use bytes::Bytes;
use serde_dynamo::AttributeValue;
use tracing::warn;

use crate::domain::{MISSING_MARKER, Product, ProductId};
use crate::error::{CacheError, report};
use crate::item::{ID_ATTRIBUTE, product_from_item};
use crate::ports::Cache;

/// What one stream record asks of the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The item now reads as this product.
    Refresh(ProductId, Product),
    /// The item is gone.
    Remove(ProductId),
    /// The item changed but its new image cannot be served: drop the entry so the next
    /// read goes to the table.
    Drop(ProductId),
}

/// The change a record asks for; `None` for records that concern no servable product
/// (no string `productId` key, or an id the API could never be asked for).
pub fn change_from_record(record: &EventRecord) -> Option<Change> {
    let id = match record.change.keys.get(ID_ATTRIBUTE) {
        Some(AttributeValue::S(raw)) => ProductId::parse(raw).ok()?,
        _ => return None,
    };
    match record.event_name.as_str() {
        "REMOVE" => Some(Change::Remove(id)),
        "INSERT" | "MODIFY" if record.change.new_image.is_empty() => {
            // A stream without new images (KEYS_ONLY): dropping is all we can do.
            Some(Change::Drop(id))
        }
        "INSERT" | "MODIFY" => match product_from_item(&record.change.new_image) {
            Ok(product) => Some(Change::Refresh(id, product)),
            Err(err) => {
                warn!(id = %id, error = %report(&err), "new image cannot be served; dropping the entry");
                Some(Change::Drop(id))
            }
        },
        other => {
            warn!(
                event = other,
                "unknown stream event name; ignoring the record"
            );
            None
        }
    }
}

/// Applies stream changes to the cache.
pub struct Invalidator<C> {
    cache: C,
    ttl: Duration,
    negative_ttl: Duration,
}

impl<C: Cache> Invalidator<C> {
    pub fn new(cache: C, ttl: Duration, negative_ttl: Duration) -> Self {
        Self {
            cache,
            ttl,
            negative_ttl: negative_ttl.max(Duration::from_secs(1)),
        }
    }

    pub fn cache(&self) -> &C {
        &self.cache
    }

    /// Applies one change.
    ///
    /// # Errors
    /// [`CacheError`] when the cache cannot be written; the record must be retried.
    pub async fn apply(&self, change: &Change) -> Result<(), CacheError> {
        match change {
            Change::Refresh(id, product) => {
                self.cache
                    .set(&id.cache_key(), product.body().clone(), self.ttl)
                    .await
            }
            Change::Remove(id) => {
                self.cache
                    .set(
                        &id.cache_key(),
                        Bytes::from_static(MISSING_MARKER),
                        self.negative_ttl,
                    )
                    .await
            }
            Change::Drop(id) => self.cache.delete(&id.cache_key()).await,
        }
    }

    /// Applies a batch in order. On the first record that cannot be applied it stops and
    /// reports that record (Lambda retries the shard from there, so later records for
    /// the same key are never applied before it).
    pub async fn handle(&self, event: &Event) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        for record in &event.records {
            let Some(change) = change_from_record(record) else {
                continue;
            };
            if let Err(err) = self.apply(&change).await {
                warn!(event_id = record.event_id, error = %report(&err), "cache update failed; the batch will be retried from this record");
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = Some(
                    record
                        .change
                        .sequence_number
                        .clone()
                        .unwrap_or_else(|| record.event_id.clone()),
                );
                response.batch_item_failures.push(failure);
                break;
            }
        }
        response
    }
}
