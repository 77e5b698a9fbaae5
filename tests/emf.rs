//! Golden test of the EMF lines the service's metrics produce: namespace, the one
//! dimension, units, and zeros for counters that did not move. Its own test binary,
//! because the metrics recorder is global to a process.

use product_catalog::metrics::{self, Meters};

#[test]
fn one_flush_gives_the_documented_emf_document() {
    // GIVEN the exporter as product-api installs it, at a fixed timestamp
    let collector = metrics::install(
        metrics::builder(metrics::NAMESPACE, metrics::SERVICE_PRODUCT_API)
            .with_timestamp(1_795_338_000_000),
    )
    .unwrap();
    let meters = Meters::register();
    // WHEN one hit and one miss that was not found are counted, with two latencies
    meters.hits.increment(1);
    meters.misses.increment(1);
    meters.not_found.increment(1);
    meters.latency.record(1.5);
    meters.latency.record(12.0);
    let mut out = Vec::new();
    collector.flush(&mut out).unwrap();
    // THEN one line carries every metric, with units, the dimension, and zeros
    let expected = concat!(
        r#"{"_aws":{"Timestamp":1795338000000,"CloudWatchMetrics":[{"Namespace":"ProductCatalog","#,
        r#""Dimensions":[["Service"]],"Metrics":["#,
        r#"{"Name":"CacheErrors","Unit":"Count"},{"Name":"CacheHits","Unit":"Count"},"#,
        r#"{"Name":"CacheMisses","Unit":"Count"},{"Name":"Latency","Unit":"Milliseconds"},"#,
        r#"{"Name":"NotFound","Unit":"Count"},{"Name":"StaleServed","Unit":"Count"},"#,
        r#"{"Name":"StoreErrors","Unit":"Count"}]}]},"#,
        r#""Service":"product-api","CacheErrors":0,"CacheHits":1,"CacheMisses":1,"#,
        r#""Latency":[1.5,12.0],"NotFound":1,"StaleServed":0,"StoreErrors":0}"#,
        "\n"
    );
    assert_eq!(String::from_utf8(out).unwrap(), expected);
}
