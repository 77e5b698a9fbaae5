//! [`ProductStore`] on a DynamoDB table through `aws-sdk-dynamodb`, plus the writes the
//! operator CLI needs. The client is built once per process by [`super::aws`].

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, PutRequest,
    ScalarAttributeType, StreamSpecification, StreamViewType, TableStatus, WriteRequest,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use backon::{ExponentialBuilder, Retryable};
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use serde_dynamo::Item;

use crate::config::TableName;
use crate::domain::{Product, ProductId};
use crate::error::{BoxError, StoreError};
use crate::item::{ID_ATTRIBUTE, item_id, product_from_item};
use crate::ports::{ProductStore, STORE_READ_TIMEOUT};

/// How long [`DynamoStore::create_table`] waits for a new table to take writes (in
/// DynamoDB, seconds; more with many indexes or a restore).
pub const TABLE_READY_WAIT: Duration = Duration::from_secs(300);

/// How long [`DynamoStore::create_table`] asks again when `DescribeTable` does not find
/// the table it has just created (its metadata is eventually consistent).
const NOT_YET_DESCRIBED_WAIT: Duration = Duration::from_secs(30);

/// Why a table is not taking writes yet.
enum TableState {
    Creating,
    /// Not found by `DescribeTable`, just after it was created or found to exist.
    NotYetDescribed,
    /// `DescribeTable` failed in a way that may pass (see [`transient`]).
    Transient(StoreError),
    Failed(StoreError),
}

/// The key [`open_connection`] reads: not a valid product id (no id holds a
/// `/`, see `ProductId::parse`), so no product can have it.
const CONNECTION_WARM_UP_KEY: &str = "/connection-warm-up";

/// How long a read waits for the start-up warm-up still in flight before sending its own
/// request: enough for TCP, TLS and a GetItem on a healthy table (a few milliseconds in a
/// region), little for a first miss when the warm-up is stuck in its retries.
const WARM_UP_WAIT: Duration = Duration::from_millis(100);

/// Opens the client's connection to DynamoDB (TCP and TLS: two of the three round trips
/// of a first GetItem) with a GetItem of a key no product has, so that the first miss
/// finds the connection open. The answer does not matter; a failure is logged (the first
/// request then connects as it would have, and says so itself if it fails too).
async fn open_connection(client: &Client, table: &TableName) {
    let warm_up = client
        .get_item()
        .table_name(table.as_str())
        .key(
            ID_ATTRIBUTE,
            AttributeValue::S(CONNECTION_WARM_UP_KEY.to_owned()),
        )
        .send()
        .await;
    if let Err(err) = warm_up {
        tracing::warn!(error = %crate::error::report(&err), "opening the DynamoDB connection at start-up failed");
    }
}

/// BatchWriteItem takes at most 25 requests.
const BATCH_SIZE: usize = 25;

/// The Products table.
#[derive(Clone)]
pub struct DynamoStore {
    /// The client once it is built, or why it could not be.
    client: Shared<BoxFuture<'static, Result<Client, Arc<str>>>>,
    /// Done when the start-up warm-up has opened the connection (or given up).
    warmed_up: Shared<BoxFuture<'static, ()>>,
    table: TableName,
}

impl DynamoStore {
    pub fn new(client: Client, table: TableName) -> Self {
        Self {
            client: std::future::ready(Ok(client)).boxed().shared(),
            warmed_up: std::future::ready(()).boxed().shared(),
            table,
        }
    }

    /// A store whose client is still being built and whose connection is still being
    /// opened, in a task of their own: a cold start does both beside the Redis
    /// connection, so that start-up and a first hit wait for neither. A read waits for
    /// the client, then for the warm-up at most [`WARM_UP_WAIT`], so that a first miss
    /// uses the connection it opens instead of opening a second one beside it, without
    /// waiting through its retries; all within [`STORE_READ_TIMEOUT`]. A build that
    /// panics leaves every call failing as unavailable, with its message.
    pub fn opening(
        client: impl Future<Output = Client> + Send + 'static,
        table: TableName,
    ) -> Self {
        let client = AssertUnwindSafe(client)
            .catch_unwind()
            .map(|built| {
                built.map_err(|panic| Arc::from(crate::runtime::panic_message(panic.as_ref())))
            })
            .boxed()
            .shared();
        let (built, warm_up_table) = (client.clone(), table.clone());
        let warmed_up = async move {
            if let Ok(client) = built.await {
                open_connection(&client, &warm_up_table).await;
            }
        }
        .boxed()
        .shared();
        drop(tokio::spawn(warmed_up.clone()));
        Self {
            client,
            warmed_up,
            table,
        }
    }

    /// The client, once built. Unbounded: reads bound it with theirs; the operator's
    /// writes use a client built before the store ([`Self::new`]).
    async fn client(&self) -> Result<Client, StoreError> {
        self.client.clone().await.map_err(|why| {
            StoreError::Unavailable(format!("the DynamoDB client could not be built: {why}").into())
        })
    }

    /// The client for a read: once built, and once the start-up warm-up has opened its
    /// connection or [`WARM_UP_WAIT`] has passed.
    async fn client_for_read(&self) -> Result<Client, StoreError> {
        let client = self.client().await?;
        // Past the wait, the read opens a connection of its own.
        let _ = tokio::time::timeout(WARM_UP_WAIT, self.warmed_up.clone()).await;
        Ok(client)
    }

    /// A store on the client [`super::aws`] configures, trusting `roots`.
    pub async fn from_env(table: TableName, roots: crate::tls::TrustedRoots) -> Self {
        Self::new(super::aws::dynamodb_client(roots).await, table)
    }

    pub fn table(&self) -> &TableName {
        &self.table
    }

    /// Writes one item, replacing any with the same id.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when DynamoDB refuses or cannot be reached.
    pub async fn put(&self, item: Item) -> Result<(), StoreError> {
        self.client()
            .await?
            .put_item()
            .table_name(self.table.as_str())
            .set_item(Some(item.into()))
            .send()
            .await
            .map(drop)
            .map_err(unavailable)
    }

    /// Deletes one item; deleting a missing item is not an error.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when DynamoDB refuses or cannot be reached.
    pub async fn delete(&self, id: &ProductId) -> Result<(), StoreError> {
        self.client()
            .await?
            .delete_item()
            .table_name(self.table.as_str())
            .key(ID_ATTRIBUTE, AttributeValue::S(id.as_str().to_owned()))
            .send()
            .await
            .map(drop)
            .map_err(unavailable)
    }

    /// Writes `items` in batches of 25, retrying unprocessed items with exponential
    /// backoff; calls `progress` with the number of items the table accepted, as it
    /// accepts them. The items should have distinct ids: DynamoDB refuses a batch that
    /// names one twice.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when DynamoDB refuses a batch (not retried: the SDK
    /// already retried what is transient) or keeps leaving items unprocessed.
    pub async fn load(
        &self,
        items: Vec<Item>,
        mut progress: impl FnMut(usize),
    ) -> Result<(), StoreError> {
        for chunk in items.chunks(BATCH_SIZE) {
            let requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|item| {
                    let put = PutRequest::builder()
                        .set_item(Some(item.clone().into()))
                        .build()
                        .map_err(unavailable)?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<_, StoreError>>()?;
            self.write_batch(requests, &mut progress).await?;
        }
        Ok(())
    }

    /// Writes one batch; what DynamoDB leaves unprocessed (throttling, partition limits)
    /// is sent again with exponential backoff, as AWS recommends. Errors are not retried.
    async fn write_batch(
        &self,
        requests: Vec<WriteRequest>,
        progress: &mut impl FnMut(usize),
    ) -> Result<(), StoreError> {
        /// Why an attempt did not finish the batch.
        enum Attempt {
            Unprocessed(usize),
            Failed(StoreError),
        }
        let pending = RefCell::new(requests);
        let progress = RefCell::new(progress);
        let attempt = || async {
            let batch = pending.borrow().clone();
            let sent = batch.len();
            let output = self
                .client()
                .await
                .map_err(Attempt::Failed)?
                .batch_write_item()
                .request_items(self.table.as_str(), batch)
                .send()
                .await
                .map_err(|err| Attempt::Failed(unavailable(err)))?;
            let left = output
                .unprocessed_items
                .and_then(|mut map| map.remove(self.table.as_str()))
                .unwrap_or_default();
            (progress.borrow_mut())(sent.saturating_sub(left.len()));
            if left.is_empty() {
                return Ok(());
            }
            let count = left.len();
            *pending.borrow_mut() = left;
            Err(Attempt::Unprocessed(count))
        };
        attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(50))
                    .with_max_delay(Duration::from_secs(5))
                    .with_max_times(8)
                    .with_jitter(),
            )
            .when(|err| matches!(err, Attempt::Unprocessed(_)))
            .await
            .map_err(|err| match err {
                Attempt::Failed(err) => err,
                Attempt::Unprocessed(count) => StoreError::Unavailable(
                    format!("{count} items left unprocessed after retries").into(),
                ),
            })
    }

    /// Creates the table as Terraform does (on-demand, stream with both images); for
    /// local stacks and tests. An existing table is left as it is. Returns once the table
    /// takes writes: DynamoDB answers while it is still being created, and refuses writes
    /// to it until then as if it did not exist (dynalite too, for a moment).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when DynamoDB refuses for another reason, or the table
    /// does not take writes within [`TABLE_READY_WAIT`].
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let result = self
            .client()
            .await?
            .create_table()
            .table_name(self.table.as_str())
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(ID_ATTRIBUTE)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(unavailable)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(ID_ATTRIBUTE)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(unavailable)?,
            )
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .map_err(unavailable)?,
            )
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(err) => return Err(unavailable(err)),
        }
        self.until_ready().await
    }

    /// Waits, asking `DescribeTable` at growing intervals, until the table takes writes,
    /// for at most [`TABLE_READY_WAIT`] in all.
    async fn until_ready(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        let table = self.table.as_str();
        let started = tokio::time::Instant::now();
        let described = || async {
            let described = client.describe_table().table_name(table).send().await;
            readiness(
                table,
                described.map(|out| out.table.and_then(|t| t.table_status)),
            )
        };
        let waited = described
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(20))
                    .with_max_delay(Duration::from_secs(2))
                    .without_max_times(),
            )
            .when(|state| asked_again(state, started.elapsed()));
        // The limit is `asked_again`'s; this one only ends a call that hangs past it.
        let hung = TABLE_READY_WAIT + Duration::from_secs(30);
        match tokio::time::timeout(hung, waited).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(TableState::Failed(err) | TableState::Transient(err))) => Err(err),
            Ok(Err(TableState::NotYetDescribed)) => Err(unavailable(format!(
                "DescribeTable does not find table {table} (deleted meanwhile?)"
            ))),
            Ok(Err(TableState::Creating)) => Err(unavailable(format!(
                "table {table} is still CREATING after {} s; run create-table again to keep waiting",
                TABLE_READY_WAIT.as_secs()
            ))),
            Err(_) => Err(unavailable(format!(
                "DescribeTable of table {table} has not answered for {} s",
                hung.as_secs()
            ))),
        }
    }
}

/// Whether the wait asks again, `waited` after it began, after `state`.
fn asked_again(state: &TableState, waited: Duration) -> bool {
    match state {
        TableState::Creating | TableState::Transient(_) => waited < TABLE_READY_WAIT,
        // Not for long: past that, the table is gone (deleted meanwhile).
        TableState::NotYetDescribed => waited < NOT_YET_DESCRIBED_WAIT,
        TableState::Failed(_) => false,
    }
}

/// Whether a table whose `DescribeTable` answered `described` takes writes.
fn readiness(
    table: &str,
    described: Result<Option<TableStatus>, SdkError<DescribeTableError, HttpResponse>>,
) -> Result<(), TableState> {
    match described {
        // An update (of its capacity, streams, indexes) leaves it taking writes.
        Ok(Some(TableStatus::Active | TableStatus::Updating)) => Ok(()),
        Ok(Some(TableStatus::Creating)) => Err(TableState::Creating),
        Ok(other) => Err(TableState::Failed(unavailable(format!(
            "table {table} is {}, not ACTIVE",
            other
                .as_ref()
                .map_or("without a status", TableStatus::as_str)
        )))),
        // DescribeTable reads eventually consistent metadata: right after CreateTable it
        // may not find the table yet (its API reference says to wait and ask again).
        Err(err)
            if err
                .as_service_error()
                .is_some_and(DescribeTableError::is_resource_not_found_exception) =>
        {
            Err(TableState::NotYetDescribed)
        }
        // What outlasted the SDK's own retries but may pass: the wait goes on.
        Err(err) if transient(&err) => Err(TableState::Transient(waiting_failed(table, &err))),
        Err(err) => Err(TableState::Failed(waiting_failed(table, &err))),
    }
}

/// `DescribeTable`'s failure, saying that only the wait failed.
fn waiting_failed(table: &str, err: &SdkError<DescribeTableError, HttpResponse>) -> StoreError {
    unavailable(format!(
        "table {table} was created or found, but DescribeTable failed while waiting for it to take writes: {}",
        crate::error::report(err)
    ))
}

/// A timeout, a connection that failed or broke, throttling, or DynamoDB's own fault.
fn transient(err: &SdkError<DescribeTableError, HttpResponse>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => crate::adapters::aws::answer_may_pass(
            service.raw().status().as_u16(),
            service.err().meta().code(),
        ),
        _ => false,
    }
}

impl DynamoStore {
    /// The item as stored (types included), read strongly consistently, within
    /// [`STORE_READ_TIMEOUT`] counted from the call (a client still being built and
    /// connected uses part of it; the SDK's operation timeout bounds the call itself).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when DynamoDB refuses or cannot be reached in time.
    pub async fn get_item(&self, id: &ProductId) -> Result<Option<Item>, StoreError> {
        let read = async {
            let output = self
                .client_for_read()
                .await?
                .get_item()
                .table_name(self.table.as_str())
                .key(ID_ATTRIBUTE, AttributeValue::S(id.as_str().to_owned()))
                // A fill must not copy a replica that has not seen the latest write into
                // the cache for a whole TTL, so fills read strongly consistently.
                .consistent_read(true)
                .send()
                .await
                .map_err(unavailable)?;
            Ok(output.item.map(Item::from))
        };
        tokio::time::timeout(STORE_READ_TIMEOUT, read)
            .await
            .unwrap_or_else(|elapsed| Err(unavailable(elapsed)))
    }
}

impl ProductStore for DynamoStore {
    async fn get(&self, id: &ProductId) -> Result<Option<Product>, StoreError> {
        let Some(item) = self.get_item(id).await? else {
            return Ok(None);
        };
        product_from_item(&item)
            .map(Some)
            .map_err(|source| StoreError::Malformed {
                id: item_id(&item).unwrap_or_default().to_owned(),
                source,
            })
    }
}

fn unavailable(err: impl Into<BoxError>) -> StoreError {
    StoreError::Unavailable(err.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_takes_writes_once_active_and_is_waited_for_while_created() {
        use aws_sdk_dynamodb::types::error::ResourceNotFoundException;
        use aws_smithy_types::body::SdkBody;
        let answered = |err| {
            SdkError::service_error(
                err,
                HttpResponse::new(400.try_into().unwrap(), SdkBody::empty()),
            )
        };
        // GIVEN DescribeTable's answers THEN ACTIVE and UPDATING take writes
        assert!(readiness("t", Ok(Some(TableStatus::Active))).is_ok());
        assert!(readiness("t", Ok(Some(TableStatus::Updating))).is_ok());
        // AND CREATING, or not found just after CreateTable (eventually consistent
        // metadata), are waited for
        assert!(matches!(
            readiness("t", Ok(Some(TableStatus::Creating))),
            Err(TableState::Creating)
        ));
        let not_found = DescribeTableError::ResourceNotFoundException(
            ResourceNotFoundException::builder().build(),
        );
        assert!(matches!(
            readiness("t", Err(answered(not_found))),
            Err(TableState::NotYetDescribed)
        ));
        // AND a table on its way out, or another refusal, stops the wait naming it
        match readiness("t", Ok(Some(TableStatus::Deleting))) {
            Err(TableState::Failed(err)) => {
                let shown = crate::error::report(&err);
                assert!(shown.contains("table t is DELETING"), "{shown}");
            }
            _ => panic!("a table being deleted was waited for"),
        }
        // AND a timeout or throttling, past the SDK's own retries, is waited out
        let timed_out = SdkError::timeout_error("no answer within 3 s");
        assert!(matches!(
            readiness("t", Err(timed_out)),
            Err(TableState::Transient(_))
        ));
        let throttled = DescribeTableError::generic(
            aws_sdk_dynamodb::error::ErrorMetadata::builder()
                .code("ThrottlingException")
                .build(),
        );
        assert!(matches!(
            readiness("t", Err(answered(throttled))),
            Err(TableState::Transient(_))
        ));
        let fault = |code: &str| {
            DescribeTableError::generic(
                aws_sdk_dynamodb::error::ErrorMetadata::builder()
                    .code(code)
                    .build(),
            )
        };
        let server_fault = SdkError::service_error(
            fault("InternalServerError"),
            HttpResponse::new(500.try_into().unwrap(), SdkBody::empty()),
        );
        assert!(matches!(
            readiness("t", Err(server_fault)),
            Err(TableState::Transient(_))
        ));
        // AND a refusal stops the wait, saying the table was created or found
        for code in ["AccessDeniedException", "ValidationException"] {
            match readiness("t", Err(answered(fault(code)))) {
                Err(TableState::Failed(err)) => {
                    let shown = crate::error::report(&err);
                    assert!(shown.contains("table t was created or found"), "{shown}");
                    assert!(shown.contains(code), "{shown}");
                }
                _ => panic!("{code} was waited out"),
            }
        }
    }

    #[test]
    fn the_wait_ends_by_itself() {
        let failed = || TableState::Failed(unavailable("refused"));
        let transient = || TableState::Transient(unavailable("throttled"));
        let early = Duration::from_secs(1);
        // GIVEN a wait just begun THEN a table being created, a fault that may pass, or
        // a table not described yet are asked again, a refusal is not
        assert!(asked_again(&TableState::Creating, early));
        assert!(asked_again(&transient(), early));
        assert!(asked_again(&TableState::NotYetDescribed, early));
        assert!(!asked_again(&failed(), early));
        // AND a table not described for longer is gone, and nothing goes on past the limit
        assert!(!asked_again(
            &TableState::NotYetDescribed,
            NOT_YET_DESCRIBED_WAIT
        ));
        assert!(asked_again(&TableState::Creating, NOT_YET_DESCRIBED_WAIT));
        assert!(!asked_again(&TableState::Creating, TABLE_READY_WAIT));
        assert!(!asked_again(&transient(), TABLE_READY_WAIT));
    }

    fn table() -> TableName {
        TableName::try_from("products".to_owned()).unwrap()
    }

    fn id() -> ProductId {
        ProductId::parse("P-1").unwrap()
    }

    #[tokio::test]
    async fn a_client_build_that_panics_leaves_reads_failing_with_its_message() {
        // GIVEN a store whose client build panics
        let store = DynamoStore::opening(async { panic!("no region for the client") }, table());

        // WHEN it is read twice THEN each read is unavailable, naming the panic, and
        // neither panics (a poisoned shared future would on the second)
        for _ in 0..2 {
            let err = store.get_item(&id()).await.unwrap_err();
            let StoreError::Unavailable(source) = &err else {
                panic!("{err:?}")
            };
            assert!(
                source.to_string().contains("no region for the client"),
                "{source}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_waiting_for_a_client_that_never_comes_ends_within_the_store_timeout() {
        // GIVEN a store whose client never finishes building
        let store = DynamoStore::opening(std::future::pending(), table());

        // WHEN it is read THEN the read fails as unavailable once the store's timeout is up
        let started = tokio::time::Instant::now();
        let err = store.get_item(&id()).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert_eq!(started.elapsed(), STORE_READ_TIMEOUT);
    }
}
