//! IHE ITI-20 transport: syslog (RFC 5424) carrying a DICOM audit message in MSG, over TLS with
//! octet-counting framing (RFC 5425) or one message per UDP datagram (RFC 5426).

use crate::appender::Appender;
use crate::error::{AuditError, Result};
use crate::event::dicom_xml;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// The parts of an RFC 5424 message the audit service uses.
#[derive(Debug, PartialEq, Eq)]
pub struct SyslogMessage<'a> {
    pub pri: u8,
    pub timestamp: &'a str,
    pub hostname: &'a str,
    pub app_name: &'a str,
    pub msgid: &'a str,
    pub msg: &'a [u8],
}

fn field<'a>(rest: &mut &'a [u8], name: &str) -> Result<&'a str> {
    let end =
        rest.iter().position(|b| *b == b' ').ok_or_else(|| AuditError::Syslog(format!("missing {name}")))?;
    let f = std::str::from_utf8(&rest[..end]).map_err(|_| AuditError::Syslog(format!("{name} not UTF-8")))?;
    *rest = &rest[end + 1..];
    Ok(f)
}

/// Parse `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]` (RFC 5424 §6).
pub fn parse_rfc5424(frame: &[u8]) -> Result<SyslogMessage<'_>> {
    let frame = frame.strip_suffix(b"\n").unwrap_or(frame);
    if frame.first() != Some(&b'<') {
        return Err(AuditError::Syslog("does not start with <PRI>".into()));
    }
    let close = frame
        .iter()
        .position(|b| *b == b'>')
        .filter(|p| *p <= 4)
        .ok_or_else(|| AuditError::Syslog("bad PRI".into()))?;
    let pri: u8 = std::str::from_utf8(&frame[1..close])
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|p| *p <= 191)
        .ok_or_else(|| AuditError::Syslog("bad PRI".into()))?;
    let mut rest = &frame[close + 1..];
    let version = field(&mut rest, "VERSION")?;
    if version != "1" {
        return Err(AuditError::Syslog(format!("VERSION {version:?}, expected 1 (RFC 5424)")));
    }
    let timestamp = field(&mut rest, "TIMESTAMP")?;
    let hostname = field(&mut rest, "HOSTNAME")?;
    let app_name = field(&mut rest, "APP-NAME")?;
    let _procid = field(&mut rest, "PROCID")?;
    let msgid = field(&mut rest, "MSGID")?;
    // STRUCTURED-DATA: "-" or one or more [..] elements; `]`, `"` and `\` are escaped inside values.
    if rest.first() == Some(&b'-') {
        rest = &rest[1..];
    } else {
        while rest.first() == Some(&b'[') {
            let mut i = 1;
            let mut in_quotes = false;
            loop {
                match rest.get(i) {
                    None => return Err(AuditError::Syslog("unterminated STRUCTURED-DATA".into())),
                    Some(b'\\') if in_quotes => i += 1,
                    Some(b'"') => in_quotes = !in_quotes,
                    Some(b']') if !in_quotes => break,
                    _ => {}
                }
                i += 1;
            }
            rest = &rest[i + 1..];
        }
    }
    let msg = rest.strip_prefix(b" ").unwrap_or(rest);
    let msg = msg.strip_prefix("\u{feff}".as_bytes()).unwrap_or(msg);
    Ok(SyslogMessage { pri, timestamp, hostname, app_name, msgid, msg })
}

/// Build an RFC 5424 message carrying a DICOM audit XML (what an ITI-20 sender emits).
pub fn format_rfc5424(hostname: &str, app_name: &str, xml: &str) -> Vec<u8> {
    // PRI 85 = facility authpriv(10) * 8 + severity notice(5), as IHE ATNA recommends.
    let ts = jiff::Timestamp::now().round(jiff::Unit::Millisecond).unwrap_or_else(|_| jiff::Timestamp::now());
    let mut v = format!("<85>1 {ts} {hostname} {app_name} - IHE+RFC-3881 - \u{feff}").into_bytes();
    v.extend_from_slice(xml.as_bytes());
    v
}

/// RFC 5425 octet-counting: `MSG-LEN SP SYSLOG-MSG`.
pub fn frame_octet_counted(msg: &[u8]) -> Vec<u8> {
    let mut v = format!("{} ", msg.len()).into_bytes();
    v.extend_from_slice(msg);
    v
}

/// Largest frame accepted.
pub const MAX_FRAME: usize = 1 << 20;

/// Read one octet-counted frame; `Ok(None)` at a clean end of stream.
pub async fn read_frame<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>> {
    let mut len_buf = Vec::new();
    // MSG-LEN is at most 7 digits (frames are at most MAX_FRAME): read no further than that and
    // its space, or a sender without the space would fill memory.
    let n = (&mut *r)
        .take(8)
        .read_until(b' ', &mut len_buf)
        .await
        .map_err(|e| AuditError::Syslog(e.to_string()))?;
    if n == 0 {
        return Ok(None);
    }
    let digits = len_buf.strip_suffix(b" ").ok_or_else(|| {
        AuditError::Syslog(if n == 8 {
            format!(
                "bad MSG-LEN {:?}… (more than 7 digits; octet-counting framing expected)",
                String::from_utf8_lossy(&len_buf)
            )
        } else {
            "stream ended inside MSG-LEN".into()
        })
    })?;
    let len: usize = std::str::from_utf8(digits)
        .ok()
        .filter(|s| !s.is_empty() && s.len() <= 7 && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            AuditError::Syslog(format!(
                "bad MSG-LEN {:?} (octet-counting framing expected)",
                String::from_utf8_lossy(digits)
            ))
        })?;
    if len > MAX_FRAME {
        return Err(AuditError::Syslog(format!("frame of {len} bytes exceeds {MAX_FRAME}")));
    }
    let mut buf = vec![0; len];
    r.read_exact(&mut buf).await.map_err(|e| AuditError::Syslog(format!("frame truncated: {e}")))?;
    Ok(Some(buf))
}

/// Parse a syslog frame's DICOM XML and append it.
async fn ingest(appender: &Appender, frame: &[u8], peer: &str) {
    let result = match parse_rfc5424(frame) {
        Ok(m) => match dicom_xml::from_xml(m.msg).and_then(|ev| ev.check_not_reserved().map(|()| ev)) {
            Ok(ev) => appender.submit(vec![ev]).await.map(|_| ()),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::warn!(peer, error = %e, "syslog audit message rejected");
    }
}

/// TLS server settings (RFC 5425): server certificate and, for mutual TLS as IHE ATNA requires,
/// the CA that issues client certificates.
pub fn tls_acceptor(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| AuditError::Tls(format!("{}: {e}", cert.display())))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| AuditError::Tls(format!("{}: {e}", cert.display())))?;
    // The private key must be mode 0600; read once, from the file whose mode was checked.
    let key_pem = crate::config::read_private("TLS key", key)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| AuditError::Tls(format!("{}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| AuditError::Tls(e.to_string()))?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .map_err(|e| AuditError::Tls(format!("{}: {e}", ca.display())))?
            {
                roots
                    .add(c.map_err(|e| AuditError::Tls(format!("{}: {e}", ca.display())))?)
                    .map_err(|e| AuditError::Tls(e.to_string()))?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| AuditError::Tls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let cfg = builder.with_single_cert(certs, key).map_err(|e| AuditError::Tls(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// Accept RFC 5425 connections forever.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    appender: Appender,
) {
    loop {
        let Ok((tcp, peer)) = listener.accept().await else { continue };
        let acceptor = acceptor.clone();
        let appender = appender.clone();
        tokio::spawn(async move {
            let peer = peer.to_string();
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(peer, error = %e, "syslog TLS handshake failed");
                    return;
                }
            };
            let mut r = BufReader::new(tls);
            loop {
                match read_frame(&mut r).await {
                    Ok(Some(frame)) => ingest(&appender, &frame, &peer).await,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(peer, error = %e, "syslog stream closed");
                        break;
                    }
                }
            }
        });
    }
}

/// Receive RFC 5426 datagrams forever.
pub async fn serve_udp(socket: tokio::net::UdpSocket, appender: Appender) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else { continue };
        ingest(&appender, &buf[..n], &peer.to_string()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_iti20_message_with_structured_data_and_bom() {
        let m = b"<85>1 2026-11-25T10:00:00.000Z viewer01 kizuna-viewer 1234 IHE+RFC-3881 [ex@1 a=\"x\\]y\"][b@2 c=\"d\"] \xef\xbb\xbf<AuditMessage/>";
        let p = parse_rfc5424(m).unwrap();
        assert_eq!(p.pri, 85);
        assert_eq!(p.hostname, "viewer01");
        assert_eq!(p.app_name, "kizuna-viewer");
        assert_eq!(p.msgid, "IHE+RFC-3881");
        assert_eq!(p.msg, b"<AuditMessage/>");
    }

    #[test]
    fn rejects_bsd_syslog_naming_the_problem() {
        let err = parse_rfc5424(b"<34>Oct 11 22:14:15 mymachine su: hi").unwrap_err().to_string();
        assert!(err.contains("VERSION"), "{err}");
    }

    #[tokio::test]
    async fn octet_counted_frames_round_trip_and_bad_lengths_are_refused() {
        let mut wire = frame_octet_counted(b"<85>1 - - - - - - hello");
        wire.extend(frame_octet_counted(b"second"));
        let mut r = tokio::io::BufReader::new(&wire[..]);
        assert_eq!(read_frame(&mut r).await.unwrap().unwrap(), b"<85>1 - - - - - - hello");
        assert_eq!(read_frame(&mut r).await.unwrap().unwrap(), b"second");
        assert!(read_frame(&mut r).await.unwrap().is_none());
        let mut bad = tokio::io::BufReader::new(&b"<85>1 non-transparent framing\n"[..]);
        assert!(read_frame(&mut bad).await.unwrap_err().to_string().contains("MSG-LEN"));
        // Digits without end: refused after 8 bytes, not read into memory to the end.
        let endless = vec![b'1'; 1 << 20];
        let mut r = tokio::io::BufReader::new(&endless[..]);
        let err = read_frame(&mut r).await.unwrap_err().to_string();
        assert!(err.contains("more than 7 digits"), "{err}");
        let mut rest = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut r, &mut rest).await.unwrap();
        assert_eq!(rest.len(), (1 << 20) - 8, "read past the length field");
    }
}
