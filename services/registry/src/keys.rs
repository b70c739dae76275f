//! The centre's keys, in `data_dir`, generated on first use (mode 0600): `signing.key` (an
//! ed25519 seed, base64; signs every site's view) and `tls.key` + `tls.crt` (an ECDSA P-256 key
//! and a self-signed certificate for the site API; sites pin the key's SHA-256, so no CA is
//! involved and the certificate's names and dates do not matter).

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use netd::registry::enrollment::write_file;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{RegistryError, Result};

pub const SIGNING_KEY: &str = "signing.key";
pub const TLS_KEY: &str = "tls.key";
pub const TLS_CERT: &str = "tls.crt";

/// The centre's keys, loaded.
pub struct CentreKeys {
    pub signing: SigningKey,
    pub tls_cert: CertificateDer<'static>,
    tls_key_pem: String,
    /// `sha256//BASE64` of the TLS public key: what enrollment tokens carry.
    pub pin: String,
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_file(path, bytes, mode).map_err(|e| RegistryError::io(path, e))
}

fn read(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RegistryError::io(path, e)),
    }
}

impl CentreKeys {
    /// Load the keys from `dir`, generating whichever is missing.
    pub fn load_or_generate(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| RegistryError::io(dir, e))?;
        let sk_path = dir.join(SIGNING_KEY);
        let signing = match read(&sk_path)? {
            Some(text) => {
                let b = STANDARD.decode(text.trim()).map_err(|e| RegistryError::io(&sk_path, e))?;
                let seed: [u8; 32] =
                    b.try_into().map_err(|_| RegistryError::io(&sk_path, "not a 32-byte ed25519 seed"))?;
                SigningKey::from_bytes(&seed)
            }
            None => {
                let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
                write_new(&sk_path, STANDARD.encode(key.to_bytes()).as_bytes(), 0o600)?;
                tracing::info!(path = %sk_path.display(), "generated the view-signing key");
                key
            }
        };
        let key_path = dir.join(TLS_KEY);
        let cert_path = dir.join(TLS_CERT);
        let key_pem = match read(&key_path)? {
            Some(t) => t,
            None => {
                let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                    .map_err(|e| RegistryError::Tls(e.to_string()))?;
                let pem = kp.serialize_pem();
                write_new(&key_path, pem.as_bytes(), 0o600)?;
                let _ = std::fs::remove_file(&cert_path);
                tracing::info!(path = %key_path.display(), "generated the TLS key");
                pem
            }
        };
        let cert_pem = match read(&cert_path)? {
            Some(t) => t,
            None => {
                let kp = rcgen::KeyPair::from_pem(&key_pem).map_err(|e| RegistryError::io(&key_path, e))?;
                let mut params = rcgen::CertificateParams::new(vec!["kizuna-registry".to_string()])
                    .map_err(|e| RegistryError::Tls(e.to_string()))?;
                params.distinguished_name.push(rcgen::DnType::CommonName, "kizuna registry");
                let cert = params.self_signed(&kp).map_err(|e| RegistryError::Tls(e.to_string()))?;
                write_new(&cert_path, cert.pem().as_bytes(), 0o644)?;
                cert.pem()
            }
        };
        let tls_cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| RegistryError::io(&cert_path, e))?
            .into_owned();
        let pin = netd::registry::tls::cert_pin(&tls_cert).map_err(|e| RegistryError::io(&cert_path, e))?;
        Ok(Self { signing, tls_cert, tls_key_pem: key_pem, pin })
    }

    /// The public view-signing key, base64.
    pub fn signing_public(&self) -> String {
        netd::registry::view::encode_verifying_key(&self.signing.verifying_key())
    }

    /// TLS 1.3 server settings with the centre's certificate.
    pub fn tls_acceptor(&self) -> Result<tokio_rustls::TlsAcceptor> {
        let key = PrivateKeyDer::from_pem_slice(self.tls_key_pem.as_bytes())
            .map_err(|e| RegistryError::Tls(format!("{TLS_KEY}: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| RegistryError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![self.tls_cert.clone()], key)
            .map_err(|e| RegistryError::Tls(e.to_string()))?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
    }
}
