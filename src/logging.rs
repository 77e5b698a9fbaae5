//! Logging set-up: on stderr (stdout carries the EMF metric lines), JSON in Lambda,
//! human-readable locally. `RUST_LOG` overrides the level; one that does not parse is
//! reported (and the default used), not silently ignored.

use tracing_subscriber::EnvFilter;

use crate::config::Mode;

/// Installs the global subscriber; call once, first thing after reading configuration.
pub fn init(mode: Mode) {
    let default = match mode {
        Mode::Lambda => "info",
        // The EMF exporter keeps 100 latency samples per flush, the format's limit; under
        // local load it drops the rest and would log each drop.
        Mode::Local => "info,metrics_cloudwatch_embedded=off",
    };
    let rust_log = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    let (filter, rejected) = filter(rust_log.as_deref(), default);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match mode {
        Mode::Lambda => builder
            .json()
            .with_ansi(false)
            .without_time()
            .with_current_span(false)
            .init(),
        Mode::Local => builder.init(),
    }
    if let Some(reason) = rejected {
        tracing::warn!(default, "{reason}; logging with the default filter instead");
    }
}

/// The filter `RUST_LOG` asks for, or `default` and why `RUST_LOG` was not used.
fn filter(rust_log: Option<&str>, default: &str) -> (EnvFilter, Option<String>) {
    match rust_log.filter(|value| !value.is_empty()) {
        None => (EnvFilter::new(default), None),
        Some(value) => match EnvFilter::try_new(value) {
            Ok(filter) => (filter, None),
            Err(err) => (
                EnvFilter::new(default),
                Some(format!("RUST_LOG={value:?} does not parse: {err}")),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rust_log_that_does_not_parse_is_reported() {
        // GIVEN valid, absent and invalid RUST_LOG values
        // THEN only the invalid one comes back with a reason naming RUST_LOG
        assert!(filter(Some("debug,hyper=warn"), "info").1.is_none());
        assert!(filter(None, "info").1.is_none());
        let (_, reason) = filter(Some("hyper=loud"), "info");
        assert!(reason.is_some_and(|r| r.contains("RUST_LOG")));
    }
}
