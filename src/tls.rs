//! The root certificates every TLS client of a binary trusts: Redis (fred), memcached and
//! the AWS SDK (Secrets Manager, DynamoDB). `TRUSTED_ROOTS` chooses them.

use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use crate::error::BoxError;

/// The five roots of Amazon Trust Services (Amazon Root CA 1 to 4, Starfield Services
/// Root CA G2), as Mozilla ships them; the file says where they come from and how to
/// update it.
pub const AMAZON_TRUST_SERVICES_PEM: &str = include_str!("amazon-trust-services.pem");

/// Which roots TLS trusts (`TRUSTED_ROOTS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TrustedRoots {
    /// The system's store, as rustls-native-certs finds it: `SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` when set, the distribution's bundle otherwise (~150 roots).
    #[default]
    System,
    /// The Amazon Trust Services roots compiled into the binary. Every endpoint the
    /// deployed functions call presents a certificate that chains to one of them, and a
    /// cold start parses 5 certificates instead of the system's ~150, and reads no file.
    Amazon,
}

impl TrustedRoots {
    /// The value of `TRUSTED_ROOTS`: `system` or `amazon`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "system" => Some(Self::System),
            "amazon" => Some(Self::Amazon),
            _ => None,
        }
    }

    /// The roots, parsed once per process: the first caller parses them, callers meanwhile
    /// wait for it, and all share the result. A cold start reading the AUTH token from
    /// Secrets Manager configures two TLS clients at once (Redis's, and the secret read's
    /// early connection), and parsing the system's ~150 roots costs 2.6-3.1 ms of CPU
    /// each time (docs/BENCHMARKS.md). A file of the system's store that cannot be read is
    /// logged and skipped, as the AWS SDK does (`SSL_CERT_FILE` is checked at start-up,
    /// in `config`); a store that yields no usable root is an error: TLS would fail every
    /// handshake later, far from the cause.
    ///
    /// # Errors
    /// When the system's store holds no usable certificate.
    pub fn root_store(self) -> Result<Arc<rustls::RootCertStore>, BoxError> {
        static SYSTEM: OnceLock<Result<Arc<rustls::RootCertStore>, String>> = OnceLock::new();
        static AMAZON: OnceLock<Result<Arc<rustls::RootCertStore>, String>> = OnceLock::new();
        let parsed = match self {
            Self::System => &SYSTEM,
            Self::Amazon => &AMAZON,
        };
        parsed
            .get_or_init(|| self.parse_roots().map(Arc::new))
            .clone()
            .map_err(Into::into)
    }

    fn parse_roots(self) -> Result<rustls::RootCertStore, String> {
        let certificates = match self {
            Self::Amazon => amazon_trust_services(),
            Self::System => {
                let found = rustls_native_certs::load_native_certs();
                for err in &found.errors {
                    tracing::warn!(error = %err, "a file of the system's root certificates was skipped");
                }
                found.certs
            }
        };
        let mut roots = rustls::RootCertStore::empty();
        let (valid, _) = roots.add_parsable_certificates(certificates);
        if valid == 0 {
            return Err(
                "no usable root certificate for TLS (SSL_CERT_FILE, SSL_CERT_DIR?)".to_owned(),
            );
        }
        Ok(roots)
    }

    /// A rustls client configuration trusting these roots, on AWS-LC with rustls' safe
    /// defaults: what the Redis and memcached connections use.
    ///
    /// # Errors
    /// As [`Self::root_store`].
    pub fn client_config(self) -> Result<rustls::ClientConfig, BoxError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(self.root_store()?)
            .with_no_client_auth())
    }

    /// The AWS SDK's trust store for these roots (`None`: the SDK's default, the system's
    /// store).
    pub fn sdk_trust_store(self) -> Option<aws_smithy_http_client::tls::TrustStore> {
        match self {
            Self::System => None,
            Self::Amazon => Some(
                aws_smithy_http_client::tls::TrustStore::empty()
                    .with_pem_certificate(AMAZON_TRUST_SERVICES_PEM.as_bytes()),
            ),
        }
    }
}

/// The compiled-in roots, DER. They parse: the tests check it.
fn amazon_trust_services() -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES_PEM.as_bytes())
        .filter_map(Result::ok)
        .collect()
}

#[cfg(test)]
mod tests {
    use sha2::Digest as _;

    use super::*;

    /// SHA-256 of each root, as Amazon Trust Services publishes them.
    const FINGERPRINTS: [(&str, &str); 5] = [
        (
            "Amazon Root CA 1",
            "8ECDE6884F3D87B1125BA31AC3FCB13D7016DE7F57CC904FE1CB97C6AE98196E",
        ),
        (
            "Amazon Root CA 2",
            "1BA5B2AA8C65401A82960118F80BEC4F62304D83CEC4713A19C39C011EA46DB4",
        ),
        (
            "Amazon Root CA 3",
            "18CE6CFE7BF14E60B2E347B8DFE868CB31D02EBB3ADA271569F50343B46DB3A4",
        ),
        (
            "Amazon Root CA 4",
            "E35D28419ED02025CFA69038CD623962458DA5C695FBDEA3C22B0BFB25897092",
        ),
        (
            "Starfield Services Root Certificate Authority - G2",
            "568D6905A2C88708A4B3025190EDCFEDB1974A606A13C6E5290FCB2AE63EDAB5",
        ),
    ];

    fn sha256(der: &[u8]) -> String {
        sha2::Sha256::digest(der)
            .iter()
            .map(|byte| format!("{byte:02X}"))
            .collect()
    }

    #[test]
    fn the_amazon_roots_are_the_five_amazon_trust_services_publishes_and_each_parses() {
        // Every PEM block parses (none is dropped by amazon_trust_services' filter).
        let blocks = AMAZON_TRUST_SERVICES_PEM
            .matches("-----BEGIN CERTIFICATE-----")
            .count();
        let certificates = amazon_trust_services();
        assert_eq!((blocks, certificates.len()), (5, 5));
        // They are exactly the pinned ones, and the file's comments say so.
        let mut found: Vec<String> = certificates.iter().map(|der| sha256(der)).collect();
        let mut pinned: Vec<String> = FINGERPRINTS.iter().map(|(_, f)| (*f).to_owned()).collect();
        found.sort();
        pinned.sort();
        assert_eq!(found, pinned);
        let comments = AMAZON_TRUST_SERVICES_PEM.replace(':', "");
        for (name, fingerprint) in FINGERPRINTS {
            assert!(comments.contains(name), "{name} is not named in the file");
            assert!(
                comments.contains(fingerprint),
                "{name}'s fingerprint is not in the file"
            );
        }
        // Each is a usable trust anchor for rustls, and the SDK gets the same file.
        let roots = TrustedRoots::Amazon.root_store().unwrap();
        assert_eq!(roots.len(), 5);
        // AND they are parsed once: every TLS client of the process shares them
        assert!(Arc::ptr_eq(
            &roots,
            &TrustedRoots::Amazon.root_store().unwrap()
        ));
        assert!(TrustedRoots::Amazon.client_config().is_ok());
        assert!(TrustedRoots::Amazon.sdk_trust_store().is_some());
        assert!(TrustedRoots::System.sdk_trust_store().is_none());
    }

    #[test]
    fn trusted_roots_reads_system_or_amazon_and_nothing_else() {
        assert_eq!(TrustedRoots::parse("system"), Some(TrustedRoots::System));
        assert_eq!(TrustedRoots::parse("amazon"), Some(TrustedRoots::Amazon));
        for bad in ["Amazon", "ats", "", " system", "/etc/ssl/certs"] {
            assert_eq!(TrustedRoots::parse(bad), None, "{bad:?}");
        }
        assert_eq!(TrustedRoots::default(), TrustedRoots::System);
    }
}
