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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::adapters::MemoryCache;

    const TTL: Duration = Duration::from_secs(300);

    fn template() -> serde_json::Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/dynamodb_stream.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// A batch of records built from the fixture: (event name, id, name attribute).
    fn event(records: &[(&str, &str, &str)]) -> Event {
        let template = template()["Records"][0].clone();
        let records: Vec<_> = records
            .iter()
            .enumerate()
            .map(|(n, (event_name, id, name))| {
                let mut record = template.clone();
                record["eventName"] = (*event_name).into();
                record["dynamodb"]["Keys"]["productId"]["S"] = (*id).into();
                record["dynamodb"]["NewImage"]["productId"]["S"] = (*id).into();
                record["dynamodb"]["NewImage"]["name"]["S"] = (*name).into();
                record["dynamodb"]["SequenceNumber"] = format!("{}", 1000 + n).into();
                if *event_name == "REMOVE" {
                    record["dynamodb"]["NewImage"] = serde_json::Value::Null;
                }
                record
            })
            .collect();
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
    }

    async fn cached(cache: &MemoryCache, key: &str) -> Option<String> {
        cache
            .get(key)
            .await
            .unwrap()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_modify_refreshes_with_the_bytes_a_miss_would_store() {
        let invalidator = Invalidator::new(MemoryCache::default(), TTL, Duration::from_secs(30));
        let response = invalidator
            .handle(&serde_json::from_value(template()).unwrap())
            .await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(
            cached(invalidator.cache(), "product:P-10001")
                .await
                .as_deref(),
            Some(
                r#"{"name":"Lamp","price":12345678901234567890.123456789,"productId":"P-10001","tags":["eco"]}"#
            )
        );
    }

    #[tokio::test]
    async fn records_apply_in_order_and_the_last_one_wins() {
        let invalidator = Invalidator::new(MemoryCache::default(), TTL, Duration::from_secs(30));
        invalidator
            .handle(&event(&[
                ("INSERT", "a", "v1"),
                ("MODIFY", "a", "v2"),
                ("MODIFY", "b", "b1"),
                ("REMOVE", "b", ""),
            ]))
            .await;
        assert!(
            cached(invalidator.cache(), "product:a")
                .await
                .unwrap()
                .contains(r#""name":"v2""#)
        );
        assert_eq!(
            cached(invalidator.cache(), "product:b").await.as_deref(),
            Some("!missing")
        );
        // Redelivery of the same batch changes nothing.
        invalidator
            .handle(&event(&[
                ("INSERT", "a", "v1"),
                ("MODIFY", "a", "v2"),
                ("MODIFY", "b", "b1"),
                ("REMOVE", "b", ""),
            ]))
            .await;
        assert!(
            cached(invalidator.cache(), "product:a")
                .await
                .unwrap()
                .contains(r#""name":"v2""#)
        );
    }

    #[tokio::test]
    async fn records_without_a_servable_id_are_skipped() {
        let invalidator = Invalidator::new(MemoryCache::default(), TTL, Duration::from_secs(30));
        let response = invalidator
            .handle(&event(&[("MODIFY", "a/b", "x"), ("MODIFY", "ok", "y")]))
            .await;
        assert!(response.batch_item_failures.is_empty());
        assert!(cached(invalidator.cache(), "product:ok").await.is_some());
        assert!(cached(invalidator.cache(), "product:a/b").await.is_none());
    }

    /// Fails the `fail_at`-th write (1-based), counting writes.
    struct FlakyCache {
        writes: AtomicUsize,
        fail_at: usize,
        inner: MemoryCache,
    }

    impl Cache for FlakyCache {
        async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
            self.inner.get(key).await
        }
        async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), CacheError> {
            if self.writes.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
                return Err(CacheError::new("SET", "timed out"));
            }
            self.inner.set(key, value, ttl).await
        }
        async fn get_or_set(
            &self,
            key: &str,
            value: Bytes,
            ttl: Duration,
        ) -> Result<Option<Bytes>, CacheError> {
            self.inner.get_or_set(key, value, ttl).await
        }
        async fn set_if_absent(
            &self,
            key: &str,
            value: Bytes,
            ttl: Duration,
        ) -> Result<bool, CacheError> {
            self.inner.set_if_absent(key, value, ttl).await
        }
        async fn replace_if_equals(
            &self,
            k: &str,
            e: Bytes,
            v: Bytes,
            ttl: Duration,
        ) -> Result<bool, CacheError> {
            self.inner.replace_if_equals(k, e, v, ttl).await
        }
        async fn delete(&self, key: &str) -> Result<(), CacheError> {
            self.inner.delete(key).await
        }
    }

    #[tokio::test]
    async fn the_first_failed_record_is_reported_and_nothing_after_it_is_applied() {
        let cache = FlakyCache {
            writes: AtomicUsize::new(0),
            fail_at: 2,
            inner: MemoryCache::default(),
        };
        let invalidator = Invalidator::new(cache, TTL, Duration::from_secs(30));
        let response = invalidator
            .handle(&event(&[
                ("MODIFY", "a", "1"),
                ("MODIFY", "b", "2"),
                ("MODIFY", "c", "3"),
            ]))
            .await;
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone().unwrap())
            .collect();
        assert_eq!(failed, ["1001"]);
        assert!(
            cached(&invalidator.cache().inner, "product:a")
                .await
                .is_some()
        );
        assert!(
            cached(&invalidator.cache().inner, "product:c")
                .await
                .is_none()
        );
    }
}
