//! DynamoDB Stream records -> cache changes, applied in stream order.
//!
//! INSERT and MODIFY refresh `product:<id>` from the record's new image (the same
//! conversion as the read path, so the bytes are what a miss would store); REMOVE
//! replaces it with the "missing" marker. Both are plain `SET`s: they overwrite any
//! reader's fill lease, which is what keeps a reader holding an older copy from putting
//! it back (see `service.rs`). Applying a record twice gives the same state, so
//! redelivery is harmless.
//!
//! Last-known-good copies (`STALE_TTL_SECONDS`) follow: INSERT and MODIFY rewrite the
//! copy with the new bytes, REMOVE deletes it (a deleted product is never served, stale
//! or not), and so does a change whose new image cannot be served.

use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde_dynamo::AttributeValue;
use tracing::warn;

use crate::cache_entry::{CacheEntry, NegativeTtl, StaleCopy, TtlJitter, stale_key};
use crate::domain::{Product, ProductId};
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
    /// The item changed but its new image cannot be served, or is too large to cache
    /// ([`crate::domain::MAX_CACHED_BODY_BYTES`]): drop the entry so the next read goes
    /// to the table.
    Drop(ProductId),
}

/// Why a record cannot be applied: it is reported, so Lambda retries it and, after the
/// event source mapping's bounded retries, sends it to the on-failure destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unappliable {
    #[error("the record's Keys hold no string productId")]
    NoProductId,
    #[error("unknown stream event name {0:?}")]
    UnknownEvent(String),
}

/// The change a record asks for; `Ok(None)` for an id the API could never be asked for
/// (nothing of it can be cached).
///
/// # Errors
/// [`Unappliable`] when the record names no product or an unknown event.
pub fn change_from_record(record: &EventRecord) -> Result<Option<Change>, Unappliable> {
    let id = match record.change.keys.get(ID_ATTRIBUTE) {
        Some(AttributeValue::S(raw)) => match ProductId::parse(raw) {
            Ok(id) => id,
            Err(_) => return Ok(None),
        },
        _ => return Err(Unappliable::NoProductId),
    };
    match record.event_name.as_str() {
        "REMOVE" => Ok(Some(Change::Remove(id))),
        "INSERT" | "MODIFY" if record.change.new_image.is_empty() => {
            // A stream without new images (KEYS_ONLY): dropping is all we can do.
            Ok(Some(Change::Drop(id)))
        }
        "INSERT" | "MODIFY" => match product_from_item(&record.change.new_image) {
            Ok(product) if product.is_cacheable() => Ok(Some(Change::Refresh(id, product))),
            Ok(product) => {
                warn!(id = %id, bytes = product.body().len(), "new image too large to cache; dropping the entry");
                Ok(Some(Change::Drop(id)))
            }
            Err(err) => {
                warn!(id = %id, error = %report(&err), "new image cannot be served; dropping the entry");
                Ok(Some(Change::Drop(id)))
            }
        },
        other => Err(Unappliable::UnknownEvent(other.to_owned())),
    }
}

/// Applies stream changes to the cache.
pub struct Invalidator<C> {
    cache: C,
    ttl: Duration,
    /// Spreads the refreshed entries' expiry (`CACHE_TTL_JITTER_PERCENT`): a batch
    /// refreshes many products at once.
    jitter: TtlJitter,
    negative_ttl: NegativeTtl,
    /// Records that could not be applied (metric `UnappliableRecords`).
    unappliable: metrics::Counter,
    /// How long a refreshed product's last-known-good copy is kept; `None`: no copy is
    /// written (REMOVE still deletes any left from before).
    stale_ttl: Option<Duration>,
}

impl<C: Cache> Invalidator<C> {
    pub fn new(cache: C, ttl: Duration, negative_ttl: NegativeTtl) -> Self {
        Self {
            cache,
            ttl,
            jitter: TtlJitter::default(),
            negative_ttl,
            unappliable: crate::metrics::register_invalidator(),
            stale_ttl: None,
        }
    }

    /// Takes a random part of at most `jitter`'s percentage off each refreshed entry's TTL.
    #[must_use]
    pub fn with_ttl_jitter(mut self, jitter: TtlJitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Keeps last-known-good copies in step with the stream (`STALE_TTL_SECONDS`).
    #[must_use]
    pub fn with_stale_ttl(mut self, stale_ttl: Option<Duration>) -> Self {
        self.stale_ttl = stale_ttl;
        self
    }

    pub fn cache(&self) -> &C {
        &self.cache
    }

    /// Applies one change.
    ///
    /// # Errors
    /// [`CacheError`] when the cache cannot be written; the record must be retried.
    pub async fn apply(&self, change: &Change) -> Result<(), CacheError> {
        self.apply_to_entry(change).await?;
        self.apply_to_copy(change).await
    }

    /// The change to the product's last-known-good copy: rewritten on a refresh,
    /// deleted otherwise. After [`Self::apply_to_entry`], so a reader's fill (which
    /// writes the copy only while it holds its lease) cannot bring a deleted copy back.
    async fn apply_to_copy(&self, change: &Change) -> Result<(), CacheError> {
        match (change, self.stale_ttl) {
            (Change::Refresh(id, product), Some(stale_ttl)) => {
                let copy = StaleCopy::now(product.clone()).encode();
                self.cache
                    .set(&stale_key(&id.cache_key()), copy, stale_ttl)
                    .await
            }
            (Change::Refresh(_, _), None) => Ok(()),
            (Change::Remove(id) | Change::Drop(id), _) => {
                self.cache.delete(&stale_key(&id.cache_key())).await
            }
        }
    }

    async fn apply_to_entry(&self, change: &Change) -> Result<(), CacheError> {
        match change {
            Change::Refresh(id, product) => {
                self.cache
                    .set(
                        &id.cache_key(),
                        product.body().clone(),
                        self.jitter.apply(self.ttl),
                    )
                    .await
            }
            Change::Remove(id) => {
                let marker = CacheEntry::missing(self.negative_ttl).encode();
                self.cache
                    .set(&id.cache_key(), marker, self.negative_ttl.get())
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
            let failed = match change_from_record(record) {
                Ok(None) => continue,
                Ok(Some(change)) => self.apply(&change).await.err().map(|err| {
                    warn!(event_id = record.event_id, error = %report(&err), "cache update failed; the batch will be retried from this record");
                }),
                Err(reason) => {
                    warn!(event_id = record.event_id, error = %reason, "record cannot be applied; reporting it for retry and the on-failure destination");
                    self.unappliable.increment(1);
                    Some(())
                }
            };
            if failed.is_some() {
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
    use super::*;
    use crate::adapters::MemoryCache;
    use crate::testing::{CacheOp, TestCache};

    const TTL: Duration = Duration::from_secs(300);

    fn template() -> serde_json::Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/dynamodb_stream.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// Records built from the fixture: (event name, id, name attribute); sequence
    /// numbers 1000, 1001, … in order.
    fn records(records: &[(&str, &str, &str)]) -> Vec<serde_json::Value> {
        let template = template()["Records"][0].clone();
        records
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
            .collect()
    }

    fn event(records: &[serde_json::Value]) -> Event {
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
    }

    fn invalidator<C: Cache>(cache: C) -> Invalidator<C> {
        Invalidator::new(cache, TTL, NegativeTtl::default())
    }

    fn failed(response: &DynamoDbEventResponse) -> Vec<String> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone().unwrap_or_default())
            .collect()
    }

    fn cached(cache: &MemoryCache, key: &str) -> Option<CacheEntry> {
        cache.get(key).map(CacheEntry::decode)
    }

    fn name_in(entry: Option<CacheEntry>) -> Option<String> {
        match entry? {
            CacheEntry::Product(product) => {
                let json: serde_json::Value = serde_json::from_slice(product.body()).ok()?;
                json["name"].as_str().map(str::to_owned)
            }
            _ => None,
        }
    }

    /// a holds v2 and b the missing marker: the result of [`FOUR_CHANGES`] in order.
    fn assert_last_changes_won(cache: &MemoryCache) {
        assert_eq!(name_in(cached(cache, "product:a")).as_deref(), Some("v2"));
        assert!(matches!(
            cached(cache, "product:b"),
            Some(CacheEntry::Missing(_))
        ));
    }

    /// Two changes to a, an insert then a removal of b.
    const FOUR_CHANGES: [(&str, &str, &str); 4] = [
        ("INSERT", "a", "v1"),
        ("MODIFY", "a", "v2"),
        ("MODIFY", "b", "b1"),
        ("REMOVE", "b", ""),
    ];

    #[tokio::test]
    async fn a_modify_refreshes_with_the_bytes_a_miss_would_store() {
        // GIVEN the fixture's MODIFY record
        let invalidator = invalidator(MemoryCache::default());
        // WHEN it is handled
        let response = invalidator
            .handle(&serde_json::from_value(template()).unwrap())
            .await;
        // THEN nothing failed, and the key holds the new image's exact bytes
        assert_eq!(failed(&response), Vec::<String>::new());
        assert_eq!(
            invalidator.cache().get("product:P-10001").as_deref(),
            Some(
                &br#"{"name":"Lamp","price":12345678901234567890.123456789,"productId":"P-10001","tags":["eco"]}"#[..]
            )
        );
    }

    #[tokio::test]
    async fn a_new_image_too_large_to_cache_drops_the_entry_and_its_copy() {
        // GIVEN a product cached with its last-known-good copy
        let invalidator =
            invalidator(MemoryCache::default()).with_stale_ttl(Some(Duration::from_secs(3600)));
        invalidator
            .handle(&event(&records(&[("INSERT", "a", "Lamp")])))
            .await;
        assert!(invalidator.cache().get("product:a").is_some());
        assert!(invalidator.cache().get(&stale_key("product:a")).is_some());
        // WHEN its new image is larger than the cache may hold
        let large = "x".repeat(crate::domain::MAX_CACHED_BODY_BYTES);
        let response = invalidator
            .handle(&event(&records(&[("MODIFY", "a", &large)])))
            .await;
        // THEN the record is applied by dropping both: the next read goes to the table
        assert_eq!(failed(&response), Vec::<String>::new());
        assert_eq!(invalidator.cache().get("product:a"), None);
        assert_eq!(invalidator.cache().get(&stale_key("product:a")), None);
    }

    #[tokio::test]
    async fn records_apply_in_order_and_the_last_one_wins() {
        // GIVEN a batch with two changes to a and an insert then removal of b
        let invalidator = invalidator(MemoryCache::default());
        let batch = records(&FOUR_CHANGES);
        // WHEN it is handled
        let response = invalidator.handle(&event(&batch)).await;
        // THEN nothing failed, a holds its last version and b the missing marker
        assert_eq!(failed(&response), Vec::<String>::new());
        assert_last_changes_won(invalidator.cache());
    }

    #[tokio::test]
    async fn redelivery_from_the_reported_record_gives_the_in_order_result() {
        // GIVEN a batch whose second write fails the first time
        let cache = TestCache::new(MemoryCache::default());
        cache.fail_nth(CacheOp::Set, 2);
        let invalidator = invalidator(cache);
        let batch = records(&FOUR_CHANGES);
        // WHEN it is handled, and Lambda redelivers from the record it was told failed
        let response = invalidator.handle(&event(&batch)).await;
        assert_eq!(failed(&response), ["1001"]);
        let from = batch
            .iter()
            .position(|r| r["dynamodb"]["SequenceNumber"] == "1001")
            .unwrap();
        let retry = invalidator.handle(&event(&batch[from..])).await;
        // THEN the retry succeeds and the cache is as if the batch had been applied once
        assert_eq!(failed(&retry), Vec::<String>::new());
        assert_last_changes_won(invalidator.cache().inner());
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_of_refreshes_gets_spread_ttls_with_jitter_and_exact_ones_without() {
        // GIVEN a batch refreshing 100 products
        let ids: Vec<String> = (0..100).map(|n| format!("p{n}")).collect();
        let changes: Vec<(&str, &str, &str)> =
            ids.iter().map(|id| ("MODIFY", id.as_str(), "x")).collect();
        let batch = event(&records(&changes));
        for (jitter, exact) in [
            (TtlJitter::percent(20), false),
            (TtlJitter::default(), true),
        ] {
            // WHEN the invalidator applies it
            let invalidator = invalidator(MemoryCache::default()).with_ttl_jitter(jitter);
            assert!(failed(&invalidator.handle(&batch).await).is_empty());
            // THEN every entry lives at most the TTL and, with jitter, at least 80 % of it,
            // spread over that range; without jitter, exactly the TTL
            let ttls: Vec<Duration> = ids
                .iter()
                .map(|id| invalidator.cache().ttl(&format!("product:{id}")).unwrap())
                .collect();
            if exact {
                assert!(ttls.iter().all(|ttl| *ttl == TTL), "{ttls:?}");
                continue;
            }
            crate::cache_entry::assert_jittered(&ttls, TTL, 20);
        }
    }

    #[tokio::test]
    async fn records_without_a_servable_id_are_skipped() {
        // GIVEN a record for an id the API could never be asked for, then a good one
        let invalidator = invalidator(MemoryCache::default());
        let batch = records(&[("MODIFY", "a/b", "x"), ("MODIFY", "ok", "y")]);
        // WHEN they are handled
        let response = invalidator.handle(&event(&batch)).await;
        // THEN nothing failed, the good one is applied and the other wrote nothing
        assert_eq!(failed(&response), Vec::<String>::new());
        assert!(invalidator.cache().get("product:ok").is_some());
        assert!(invalidator.cache().get("product:a/b").is_none());
    }

    #[tokio::test]
    async fn the_first_failed_record_is_reported_and_nothing_after_it_is_applied() {
        // GIVEN a cache whose second write fails
        let cache = TestCache::new(MemoryCache::default());
        cache.fail_nth(CacheOp::Set, 2);
        let invalidator = invalidator(cache);
        // WHEN a batch of three is handled
        let response = invalidator
            .handle(&event(&records(&[
                ("MODIFY", "a", "1"),
                ("MODIFY", "b", "2"),
                ("MODIFY", "c", "3"),
            ])))
            .await;
        // THEN the second record is reported, the first applied, the third not tried
        assert_eq!(failed(&response), ["1001"]);
        let cache = invalidator.cache().inner();
        assert!(cache.get("product:a").is_some());
        assert!(cache.get("product:c").is_none());
        assert_eq!(invalidator.cache().calls(), 2);
    }

    #[tokio::test]
    async fn records_that_cannot_be_applied_are_reported_not_dropped() {
        type Spoil = fn(&mut serde_json::Value);
        let cases: [(&str, Spoil); 3] = [
            ("empty Keys", |r| {
                r["dynamodb"]["Keys"] = serde_json::json!({})
            }),
            ("numeric productId", |r| {
                r["dynamodb"]["Keys"]["productId"] = serde_json::json!({"N": "7"});
            }),
            ("unknown event", |r| r["eventName"] = "TRUNCATE".into()),
        ];
        for (case, spoil) in cases {
            // GIVEN a good record, a record that cannot be applied, then a good one
            let invalidator = invalidator(MemoryCache::default());
            let mut batch = records(&[
                ("MODIFY", "a", "1"),
                ("MODIFY", "b", "2"),
                ("MODIFY", "c", "3"),
            ]);
            spoil(&mut batch[1]);
            // WHEN the batch is handled
            let response = invalidator.handle(&event(&batch)).await;
            // THEN the bad record is reported (Lambda retries it, then sends it to the
            // on-failure destination), and nothing after it is applied before it
            assert_eq!(failed(&response), ["1001"], "{case}");
            assert!(invalidator.cache().get("product:a").is_some(), "{case}");
            assert!(invalidator.cache().get("product:c").is_none(), "{case}");
        }
    }
}
