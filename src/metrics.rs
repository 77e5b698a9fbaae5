//! Metric names (the single source of truth the Terraform dashboard is checked against)
//! and the CloudWatch Embedded Metric Format exporter behind the `metrics` facade.

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use lambda_http::lambda_runtime::LambdaInvocation;
use lambda_http::tower::{Layer, Service};
use metrics::{Counter, Histogram, Unit};
use metrics_cloudwatch_embedded::Collector;

/// Default namespace; `METRICS_NAMESPACE` overrides it.
pub const NAMESPACE: &str = "ProductCatalog";
/// The one dimension every metric carries, and its value for the read API.
pub const DIMENSION: &str = "Service";
pub const SERVICE_PRODUCT_API: &str = "product-api";

/// A product request answered from the cache.
pub const CACHE_HITS: &str = "CacheHits";
/// A product request that had to read the table (a bypass counts too).
pub const CACHE_MISSES: &str = "CacheMisses";
/// A cache call that failed, timed out or returned a corrupt entry.
pub const CACHE_ERRORS: &str = "CacheErrors";
/// A table read that failed.
pub const STORE_ERRORS: &str = "StoreErrors";
/// A product request for an id the table does not hold.
pub const NOT_FOUND: &str = "NotFound";
/// A product served from its last-known-good copy because the table could not answer.
pub const STALE_SERVED: &str = "StaleServed";
/// Time to answer a request, in milliseconds.
pub const LATENCY: &str = "Latency";

/// Every metric the service emits, for the dashboard check.
pub const ALL: [&str; 7] = [
    CACHE_HITS,
    CACHE_MISSES,
    CACHE_ERRORS,
    STORE_ERRORS,
    NOT_FOUND,
    LATENCY,
    STALE_SERVED,
];

/// cache-invalidator's value of the [`DIMENSION`].
pub const SERVICE_CACHE_INVALIDATOR: &str = "cache-invalidator";
/// A stream record cache-invalidator cannot apply (no productId, unknown event): it is
/// reported for retry and, after the mapping's retries, goes to the on-failure queue.
pub const UNAPPLIABLE_RECORDS: &str = "UnappliableRecords";

/// Registers cache-invalidator's counter with whatever recorder is installed.
pub fn register_invalidator() -> Counter {
    metrics::describe_counter!(UNAPPLIABLE_RECORDS, Unit::Count, "");
    metrics::counter!(UNAPPLIABLE_RECORDS)
}

/// How often local mode prints its metrics (Lambda mode flushes after each invocation).
pub const LOCAL_FLUSH_INTERVAL: Duration = Duration::from_secs(10);

/// Runs `flush` every `period`, the first time `period` after the call, until the task
/// is aborted: local mode writes its metrics so ([`write_out`] to stdout).
/// `metrics_cloudwatch_embedded`'s own auto-flush ticks at once, so whether a document of
/// zeros came out at start depended on which of two tasks ran first; it also writes each
/// JSON token with its own `write`.
pub fn flush_every(
    period: Duration,
    mut flush: impl FnMut() + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        // A process that was stopped (SIGSTOP) flushes once when it resumes, not once per
        // period it missed.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            ticks.tick().await;
            flush();
        }
    })
}

/// Handles registered once, so the request path does no name look-ups.
#[derive(Clone)]
pub struct Meters {
    pub hits: Counter,
    pub misses: Counter,
    pub cache_errors: Counter,
    pub store_errors: Counter,
    pub not_found: Counter,
    pub stale_served: Counter,
    pub latency: Histogram,
}

impl Meters {
    /// Registers the metrics with whatever recorder is installed (none: no-ops).
    pub fn register() -> Self {
        metrics::describe_histogram!(LATENCY, Unit::Milliseconds, "time to answer a request");
        for counter in [
            CACHE_HITS,
            CACHE_MISSES,
            CACHE_ERRORS,
            STORE_ERRORS,
            NOT_FOUND,
            STALE_SERVED,
        ] {
            metrics::describe_counter!(counter, Unit::Count, "");
        }
        Self {
            hits: metrics::counter!(CACHE_HITS),
            misses: metrics::counter!(CACHE_MISSES),
            cache_errors: metrics::counter!(CACHE_ERRORS),
            store_errors: metrics::counter!(STORE_ERRORS),
            not_found: metrics::counter!(NOT_FOUND),
            stale_served: metrics::counter!(STALE_SERVED),
            latency: metrics::histogram!(LATENCY),
        }
    }
}

/// The EMF builder with our namespace and dimension. Zeros are emitted so that
/// `CacheHits / (CacheHits + CacheMisses)` has a data point in every flush.
pub fn builder(namespace: &str, service: &'static str) -> metrics_cloudwatch_embedded::Builder {
    metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(namespace.to_owned())
        .with_dimension(DIMENSION, service)
        .emit_zeros(true)
}

/// Installs the global EMF recorder.
///
/// # Errors
/// When a recorder is already installed.
pub fn install(
    builder: metrics_cloudwatch_embedded::Builder,
) -> Result<&'static Collector, crate::error::BoxError> {
    builder.init()
}

/// Writes what was counted since the last flush to `out` as EMF, in one `write`.
/// A failed write loses those figures and is logged; it never fails the caller.
pub fn write_out(collector: &Collector, mut out: impl Write) {
    // Serialized straight into `stdout`, the document would lock and search the line
    // buffer for a newline at each of its tokens, about 230 of them.
    let mut document = Vec::with_capacity(1024);
    let written = collector
        .flush(&mut document)
        .and_then(|()| out.write_all(&document));
    if let Err(err) = written {
        tracing::warn!(error = %err, "metrics could not be written");
    }
}

/// A `lambda_runtime` layer that writes the metrics to stdout after each invocation,
/// once its response has been sent (they must leave before the environment can be
/// frozen), with [`write_out`]. `metrics_cloudwatch_embedded`'s own layer does the
/// same with one `write` per JSON token, about 40 % of the instructions a warm hit ran
/// above a function that does nothing (docs/BENCHMARKS.md), and panics when stdout
/// fails.
#[derive(Clone, Copy)]
pub struct FlushEachInvocation(pub &'static Collector);

impl<S> Layer<S> for FlushEachInvocation {
    type Service = Flushing<S>;

    fn layer(&self, inner: S) -> Flushing<S> {
        Flushing {
            collector: self.0,
            inner,
        }
    }
}

/// The service [`FlushEachInvocation`] wraps around the runtime's.
pub struct Flushing<S> {
    collector: &'static Collector,
    inner: S,
}

impl<S: Service<LambdaInvocation>> Service<LambdaInvocation> for Flushing<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = FlushWhenDone<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        FlushWhenDone {
            invocation: self.inner.call(invocation),
            collector: self.collector,
        }
    }
}

pin_project_lite::pin_project! {
    /// An invocation (the handler and the posting of its response), then the flush.
    pub struct FlushWhenDone<F> {
        #[pin]
        invocation: F,
        collector: &'static Collector,
    }
}

impl<F: Future> Future for FlushWhenDone<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let done = ready!(this.invocation.poll(cx));
        write_out(this.collector, std::io::stdout());
        Poll::Ready(done)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// The flushes counted once `time` has passed (on the paused clock) and the flushing
    /// task has run.
    async fn flushes_after(flushes: &AtomicUsize, time: Duration) -> usize {
        tokio::time::sleep(time).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        flushes.load(Ordering::SeqCst)
    }

    #[tokio::test(start_paused = true)]
    async fn periodic_flushes_start_one_period_after_start_and_skip_what_a_stop_missed() {
        // GIVEN flushes every 10 s, counted
        let flushes = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&flushes);
        let task = flush_every(Duration::from_secs(10), move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        // WHEN no period has passed THEN nothing was flushed (no document of zeros at start)
        assert_eq!(
            flushes_after(&flushes, Duration::from_millis(9_990)).await,
            0
        );
        // WHEN one period, then two, have passed THEN one flush each
        assert_eq!(flushes_after(&flushes, Duration::from_millis(20)).await, 1);
        assert_eq!(flushes_after(&flushes, Duration::from_secs(10)).await, 2);
        // WHEN the process was stopped for three periods and more THEN it flushes once
        tokio::time::advance(Duration::from_secs(35)).await;
        assert_eq!(flushes_after(&flushes, Duration::ZERO).await, 3);
        // WHEN the task is aborted THEN no flush follows
        task.abort();
        assert_eq!(flushes_after(&flushes, Duration::from_secs(30)).await, 3);
    }
}
