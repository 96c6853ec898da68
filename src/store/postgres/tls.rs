//! TLS for PostgreSQL connections, as libpq's `sslmode` means it.
//! tokio-postgres itself knows `disable`, `prefer` and `require`, and leaves
//! what a certificate must prove to the connector: here, rustls.
//!
//! - `disable`: plaintext.
//! - `prefer` (libpq's default) and `require`: encrypted (`prefer` falls back
//!   to plaintext if the server offers no TLS), the certificate unchecked, as
//!   libpq does.
//! - `verify-ca`: the certificate must chain to a trusted CA.
//! - `verify-full`: and name the host connected to.
//!
//! `--database-ca-file` replaces the public CAs with the one given and makes
//! `verify-full` the default (`verify-ca` if the URL asks for `prefer`,
//! `require` or `verify-ca`), as the CA file does for MySQL: a CA file given
//! always verifies, and never falls back to plaintext.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode;

/// libpq's `sslmode`, all five that the job takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    /// The mode a URL's `sslmode` names.
    pub fn parse(value: &str) -> Result<Mode, String> {
        Ok(match value {
            "disable" => Mode::Disable,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
                ));
            }
        })
    }

    /// The mode in force: the URL's, or `prefer`, as a CA file changes them.
    pub fn with_ca(url_mode: Option<Mode>, ca_file: bool) -> Mode {
        match (url_mode, ca_file) {
            // libpq's `prefer` would ignore the CA, and fall back to plaintext.
            (Some(Mode::Prefer | Mode::Require | Mode::VerifyCa), true) => Mode::VerifyCa,
            (Some(Mode::Disable) | None, true) => Mode::VerifyFull,
            (Some(mode), _) => mode,
            (None, false) => Mode::Prefer,
        }
    }

    /// What tokio-postgres is told: whether to ask for TLS at all.
    pub fn ssl_mode(self) -> SslMode {
        match self {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        }
    }
}

/// The connector for this mode, trusting the CA file's certificates if
/// given, or else the public CAs.
pub fn connector(
    mode: Mode,
    ca_file: Option<&Path>,
) -> anyhow::Result<tokio_postgres_rustls::MakeRustlsConnect> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("cannot read the CA file {}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                anyhow::bail!("the CA file {} holds no certificate", path.display());
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("cannot set up TLS")?;
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        Mode::VerifyFull => {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .context("cannot set up TLS")?
        }
        Mode::VerifyCa => Arc::new(Lenient {
            chain: Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .context("cannot set up TLS")?,
            ),
            algorithms: provider.signature_verification_algorithms,
        }),
        Mode::Disable | Mode::Prefer | Mode::Require => Arc::new(Lenient {
            chain: None,
            algorithms: provider.signature_verification_algorithms,
        }),
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// What libpq checks short of `verify-full`: with a `chain` (`verify-ca`),
/// the chain but not the name (webpki checks the chain first); without one
/// (`prefer`, `require`), nothing: encryption without proof of whom it is
/// with. The handshake's signatures are checked either way.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_turns_verification_on() {
        assert_eq!(Mode::with_ca(None, false), Mode::Prefer);
        assert_eq!(Mode::with_ca(None, true), Mode::VerifyFull);
        assert_eq!(Mode::with_ca(Some(Mode::Require), true), Mode::VerifyCa);
        assert_eq!(Mode::with_ca(Some(Mode::Prefer), true), Mode::VerifyCa);
        assert_eq!(Mode::with_ca(Some(Mode::Prefer), false), Mode::Prefer);
        assert_eq!(Mode::with_ca(Some(Mode::Require), false), Mode::Require);
        assert_eq!(
            Mode::with_ca(Some(Mode::VerifyFull), false),
            Mode::VerifyFull
        );
        assert!(Mode::parse("allow").is_err());
    }
}
