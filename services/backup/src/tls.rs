//! TLS on the replication link. Batches carry patient data across the network between the
//! primary and its replicas, so a replica outside the primary's host serves HTTPS:
//! `replica.tls_cert_file` and `replica.tls_key_file` (PEM; the key file mode 0600), and the
//! follower trusts, for each replica, either the public roots or only the certificates in its
//! `ca_file` (a private CA, or the replica's own self-signed certificate).

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::BackupError;

fn bad(path: &Path, what: impl std::fmt::Display) -> BackupError {
    BackupError::Config(format!("{}: {what}", path.display()))
}

/// The certificates in a PEM file (at least one).
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, BackupError> {
    let bytes = std::fs::read(path).map_err(|e| BackupError::io(path, e))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, format!("not a PEM certificate file ({e})")))?;
    if certs.is_empty() {
        return Err(bad(path, "holds no PEM certificate (-----BEGIN CERTIFICATE-----)"));
    }
    Ok(certs)
}

/// The replica's TLS acceptor: its certificate chain (`cert`, leaf first) and private key (`key`,
/// which must not be readable by group or others). TLS 1.2 and 1.3.
pub fn acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, BackupError> {
    let chain = certificates(cert)?;
    let pem = kizuna_config::secret::read_private(key).map_err(|e| match e {
        kizuna_config::secret::SecretFileError::Io(e) => BackupError::io(key, e),
        exposed => bad(key, format!("TLS key file {exposed}")),
    })?;
    let private = PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| bad(key, format!("no PEM private key ({e})")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(cert, e))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| bad(cert, format!("certificate and key do not go together ({e})")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The certificates in `ca_file`, for the follower's client to trust instead of the public roots.
pub fn trusted(ca_file: &Path) -> Result<Vec<reqwest::Certificate>, BackupError> {
    certificates(ca_file)?
        .iter()
        .map(|c| reqwest::Certificate::from_der(c).map_err(|e| bad(ca_file, e)))
        .collect()
}
