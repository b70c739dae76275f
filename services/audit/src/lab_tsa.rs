//! A real RFC 3161 time-stamp authority for tests, demos and labs: `openssl ts -reply` behind a tiny
//! HTTP front (RFC 3161 §3.4: POST `application/timestamp-query` -> `application/timestamp-reply`),
//! with a throw-away CA and TSA certificate made by `openssl`. Not for production: use the
//! prefecture's or a commercial TSA there.

use crate::error::{AuditError, Result};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// A running TSA. Dropping it stops the HTTP front.
pub struct LabTsa {
    pub url: String,
    /// PEM of the CA that issued the TSA certificate: give it to `verify` as the trusted TSA CA.
    pub ca_cert: PathBuf,
    pub tsa_cert: PathBuf,
    dir: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LabTsa {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn run(dir: &Path, args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| AuditError::io("openssl", e))?;
    if !out.status.success() {
        return Err(AuditError::TimeStamp {
            url: format!("openssl {}", args.first().unwrap_or(&"")),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

/// Make a CA, a TSA key and certificate (EKU critical timeStamping) and the `openssl ts` config in `dir`.
pub fn make_tsa_files(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| AuditError::io(dir, e))?;
    let ext = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\nextendedKeyUsage=critical,timeStamping\n";
    std::fs::write(dir.join("tsa.ext"), ext).map_err(|e| AuditError::io(dir.join("tsa.ext"), e))?;
    run(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "3650",
            "-subj",
            "/CN=Kizuna Lab TSA CA",
        ],
    )?;
    run(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "tsa.key",
            "-out",
            "tsa.csr",
            "-subj",
            "/CN=Kizuna Lab TSA",
        ],
    )?;
    run(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "tsa.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "tsa.crt",
            "-days",
            "3650",
            "-extfile",
            "tsa.ext",
        ],
    )?;
    write_ts_config(dir)?;
    std::fs::write(dir.join("tsaserial"), "01\n").map_err(|e| AuditError::io(dir.join("tsaserial"), e))?;
    Ok(())
}

/// The files a TSA needs to answer, all made together by [`make_tsa_files`].
const SERVING_FILES: [&str; 3] = ["ca.crt", "tsa.crt", "tsa.key"];

/// Reuse the CA and TSA certificate in `dir` when present, so that checkpoints stamped by an
/// earlier run still verify against `ca.crt`; make them only when none is there. A partial set is
/// refused (making a new CA would silently replace the trust anchor). The `openssl ts` config is
/// rewritten for `dir`'s current (absolute) path.
pub fn ensure_tsa_files(dir: &Path) -> Result<()> {
    let present: Vec<bool> = SERVING_FILES.iter().map(|f| dir.join(f).exists()).collect();
    if present.iter().all(|p| !p) {
        return make_tsa_files(dir);
    }
    if present.iter().any(|p| !p) {
        let missing: Vec<&str> =
            SERVING_FILES.iter().zip(&present).filter(|(_, p)| !**p).map(|(f, _)| *f).collect();
        return Err(AuditError::Config {
            path: dir.into(),
            reason: format!(
                "lab TSA folder holds some of ca.crt, tsa.crt, tsa.key but not {}: restore them, or empty \
                 the folder to make a new CA (checkpoints stamped before will then no longer verify)",
                missing.join(", ")
            ),
        });
    }
    write_ts_config(dir)?;
    let serial = dir.join("tsaserial");
    if !serial.exists() {
        std::fs::write(&serial, "01\n").map_err(|e| AuditError::io(&serial, e))?;
    }
    Ok(())
}

/// The `openssl ts` configuration for the files in `dir` (an absolute path: `openssl` runs there).
fn write_ts_config(dir: &Path) -> Result<()> {
    let cfg = format!(
        "[ tsa ]\ndefault_tsa = lab\n[ lab ]\ndir = {d}\nserial = $dir/tsaserial\ncrypto_device = builtin\nsigner_cert = $dir/tsa.crt\n\
         certs = $dir/ca.crt\nsigner_key = $dir/tsa.key\nsigner_digest = sha256\ndefault_policy = 1.3.6.1.4.1.99999.3161.1\n\
         digests = sha256, sha384, sha512\naccuracy = secs:1\nordering = no\ntsa_name = yes\ness_cert_id_chain = no\ness_cert_id_alg = sha256\n",
        d = dir.display()
    );
    std::fs::write(dir.join("tsa.cnf"), cfg).map_err(|e| AuditError::io(dir.join("tsa.cnf"), e))
}

impl LabTsa {
    /// Serve on 127.0.0.1 (ephemeral port) with the certificates in `dir`, made there when absent.
    pub async fn start(dir: &Path) -> Result<Self> {
        Self::start_on(dir, "127.0.0.1:0").await
    }

    /// Like [`LabTsa::start`], on a given address (for demos whose config names the TSA URL). A
    /// relative `dir` is taken from the current directory once, here.
    pub async fn start_on(dir: &Path, listen: &str) -> Result<Self> {
        // Absolute from here on: `openssl` runs with `dir` as its working directory.
        std::fs::create_dir_all(dir).map_err(|e| AuditError::io(dir, e))?;
        let dir = std::fs::canonicalize(dir).map_err(|e| AuditError::io(dir, e))?;
        let d = dir.clone();
        tokio::task::spawn_blocking(move || ensure_tsa_files(&d))
            .await
            .map_err(|e| AuditError::TimeStamp { url: "lab".into(), reason: e.to_string() })??;
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| AuditError::io(listen, e))?;
        let addr = listener.local_addr().map_err(|e| AuditError::io(listen, e))?;
        // openssl updates the serial file: one reply at a time.
        let lock = Arc::new(tokio::sync::Mutex::new(dir.clone()));
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let lock = lock.clone();
                async move { reply(lock, headers, body).await }
            }),
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(LabTsa {
            url: format!("http://{addr}/"),
            ca_cert: dir.join("ca.crt"),
            tsa_cert: dir.join("tsa.crt"),
            dir,
            task,
        })
    }

    /// Directory holding the keys, certificates and config.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

async fn reply(
    lock: Arc<tokio::sync::Mutex<PathBuf>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    if headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) != Some("application/timestamp-query")
    {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "expected application/timestamp-query").into_response();
    }
    let dir = lock.lock().await;
    let d = dir.clone();
    let res = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
        let n: u64 = rand::random();
        let q = d.join(format!("q-{n}.tsq"));
        let r = d.join(format!("r-{n}.tsr"));
        std::fs::write(&q, &body).map_err(|e| AuditError::io(&q, e))?;
        let cfg = d.join("tsa.cnf");
        let out = run(
            &d,
            &[
                "ts",
                "-reply",
                "-config",
                &cfg.to_string_lossy(),
                "-queryfile",
                &q.to_string_lossy(),
                "-out",
                &r.to_string_lossy(),
            ],
        );
        let _ = std::fs::remove_file(&q);
        out?;
        let bytes = std::fs::read(&r).map_err(|e| AuditError::io(&r, e))?;
        let _ = std::fs::remove_file(&r);
        Ok(bytes)
    })
    .await;
    drop(dir);
    match res {
        Ok(Ok(bytes)) => ([(header::CONTENT_TYPE, "application/timestamp-reply")], bytes).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
