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
use crate::durable::write_new;

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

/// Makes a self-signed certificate for `names` (the DNS names or IP addresses in the followers'
/// `url`s) and its ECDSA P-256 key: `key` (mode 0600) and `cert` (PEM), both new files (an
/// existing file is never replaced), fsynced. The followers trust it by naming a copy of `cert`
/// as their `ca_file`: it stands for itself, so nothing else is trusted for that replica.
pub fn write_self_signed(names: &[String], cert: &Path, key: &Path) -> Result<(), BackupError> {
    if names.is_empty() {
        return Err(BackupError::Config("a certificate needs at least one name (--name)".into()));
    }
    for p in [cert, key] {
        if p.exists() {
            return Err(bad(p, "exists; it is never replaced (move it away first)"));
        }
    }
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| bad(key, e))?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())
        .map_err(|e| BackupError::Config(format!("certificate names {names:?}: {e}")))?;
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("kizuna backup replica {}", names[0]));
    let made = params.self_signed(&pair).map_err(|e| bad(cert, e))?;
    write_new(key, pair.serialize_pem().as_bytes(), 0o600)?;
    // A key without its certificate would block the retry ("exists"): it goes again.
    write_new(cert, made.pem().as_bytes(), 0o644).inspect_err(|_| {
        let _ = std::fs::remove_file(key);
    })
}
