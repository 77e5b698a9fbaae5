//! Logging set-up: on stderr (stdout carries the EMF metric lines), JSON in Lambda,
//! human-readable locally. `RUST_LOG` overrides the level.

use crate::config::Mode;

/// Installs the global subscriber; call once, first thing after reading configuration.
pub fn init(mode: Mode) {
    let default = match mode {
        Mode::Lambda => "info",
        // The EMF exporter keeps 100 latency samples per flush, the format's limit; under
        // local load it drops the rest and would log each drop.
        Mode::Local => "info,metrics_cloudwatch_embedded=off",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
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
}
