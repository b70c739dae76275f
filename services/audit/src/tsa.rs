//! RFC 3161 time stamps: request a token from a TSA over HTTP (`application/timestamp-query`) and
//! verify one: CMS signature, message imprint, and that the signer is the trusted TSA (or is issued by
//! a trusted CA). Uses `cryptographic-message-syntax` (its TSP client and SignedData verification).

use crate::error::{AuditError, Result};
use bcder::encode::{PrimitiveContent, Values};
use cryptographic_message_syntax::asn1::rfc3161::TstInfo;
use cryptographic_message_syntax::{SignedData, time_stamp_message_http};
use std::path::Path;
use x509_certificate::{CapturedX509Certificate, DigestAlgorithm};

/// Ask the TSA at `url` to time-stamp SHA-256(`message`). Blocking (call from `spawn_blocking`).
/// Returns the DER TimeStampToken.
pub fn request_token(url: &str, message: &[u8]) -> Result<Vec<u8>> {
    let err = |reason: String| AuditError::TimeStamp { url: url.into(), reason };
    let resp =
        time_stamp_message_http(url, message, DigestAlgorithm::Sha256).map_err(|e| err(e.to_string()))?;
    if !resp.is_success() {
        return Err(err(format!("TSA refused: status {:?}", resp.status.status)));
    }
    let token = resp.time_stamp_token.as_ref().ok_or_else(|| err("granted without a token".into()))?;
    // ContentInfo's own `Values` impl in cryptographic-message-syntax 0.28 drops the `[0] EXPLICIT`
    // wrapper around `content`, producing a token nobody can parse; encode it per RFC 5652 §3 here.
    let mut der = Vec::new();
    bcder::encode::sequence((
        token.content_type.encode_ref(),
        bcder::encode::Constructed::new(bcder::Tag::CTX_0, &token.content),
    ))
    .write_encoded(bcder::Mode::Der, &mut der)
    .map_err(|e| err(e.to_string()))?;
    Ok(der)
}

/// Certificates trusted to sign time stamps: the TSA's own certificate and/or its CA.
#[derive(Clone)]
pub struct TsaTrust {
    certs: Vec<CapturedX509Certificate>,
}

impl TsaTrust {
    /// Load PEM certificates (one or more) from `path`.
    pub fn from_pem_file(path: &Path) -> Result<Self> {
        let pem = std::fs::read(path).map_err(|e| AuditError::io(path, e))?;
        let certs = CapturedX509Certificate::from_pem_multiple(&pem).map_err(|e| AuditError::Config {
            path: path.into(),
            reason: format!("not PEM certificates: {e}"),
        })?;
        if certs.is_empty() {
            return Err(AuditError::Config { path: path.into(), reason: "no certificate in file".into() });
        }
        Ok(TsaTrust { certs })
    }
    fn trusts(&self, signer: &CapturedX509Certificate) -> bool {
        self.certs.iter().any(|t| {
            t.constructed_data() == signer.constructed_data()
                || signer.verify_signed_by_certificate(t).is_ok()
        })
    }
}

/// Verify `token` time-stamps `message`; returns the TSA's genTime.
pub fn verify_token(
    token: &[u8],
    message: &[u8],
    trust: &TsaTrust,
) -> std::result::Result<jiff::Timestamp, String> {
    let sd = SignedData::parse_ber(token).map_err(|e| format!("token is not CMS SignedData: {e}"))?;
    let mut signers = sd.signers().peekable();
    if signers.peek().is_none() {
        return Err("token has no signer".into());
    }
    for signer in signers {
        signer.verify_signature_with_signed_data(&sd).map_err(|e| format!("CMS signature: {e}"))?;
        signer.verify_message_digest_with_signed_data(&sd).map_err(|e| format!("CMS message digest: {e}"))?;
        let (issuer, serial) =
            signer.certificate_issuer_and_serial().ok_or("signer not identified by issuer and serial")?;
        let cert = sd
            .certificates()
            .find(|c| c.issuer_name() == issuer && c.serial_number_asn1() == serial)
            .ok_or("token does not carry the signer's certificate")?;
        if !trust.trusts(cert) {
            return Err(format!("signer {:?} is not a trusted TSA", cert.subject_common_name()));
        }
    }
    let content = sd.signed_content().ok_or("token has no TSTInfo")?;
    let info = bcder::decode::Constructed::decode(content, bcder::Mode::Der, TstInfo::take_from)
        .map_err(|e| format!("TSTInfo: {e}"))?;
    let want = DigestAlgorithm::Sha256.digest_data(message);
    if info.message_imprint.hashed_message.to_bytes().as_ref() != want.as_slice() {
        return Err("message imprint does not match the checkpoint".into());
    }
    parse_generalized_time(&info.gen_time.to_string())
}

/// `YYYYMMDDhhmmss[.f]Z` -> timestamp.
fn parse_generalized_time(s: &str) -> std::result::Result<jiff::Timestamp, String> {
    let digits = s.get(..14).ok_or_else(|| format!("genTime {s:?} too short"))?;
    let n = |a: usize, b: usize| digits[a..b].parse::<i16>().map_err(|_| format!("genTime {s:?}"));
    let dt = jiff::civil::date(n(0, 4)?, n(4, 6)? as i8, n(6, 8)? as i8).at(
        n(8, 10)? as i8,
        n(10, 12)? as i8,
        n(12, 14)? as i8,
        0,
    );
    dt.to_zoned(jiff::tz::TimeZone::UTC).map(|z| z.timestamp()).map_err(|e| format!("genTime {s:?}: {e}"))
}
