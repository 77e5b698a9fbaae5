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
    let mut out = Writes::default();
    metrics::write_out(collector, &mut out);
    // THEN one write of one line carries every metric, with units, the dimension, and
    // zeros
    assert_eq!(out.calls, 1, "the document goes out in one write");
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
    assert_eq!(String::from_utf8(out.bytes).unwrap(), expected);

    // WHEN stdout fails THEN the figures are lost, and nothing panics
    meters.hits.increment(1);
    metrics::write_out(collector, Broken);
}

/// A writer that counts the calls made to it.
#[derive(Default)]
struct Writes {
    calls: usize,
    bytes: Vec<u8>,
}

impl std::io::Write for Writes {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.calls += 1;
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A writer whose every write fails, as a closed stdout would.
struct Broken;

impl std::io::Write for Broken {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::BrokenPipe.into())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
