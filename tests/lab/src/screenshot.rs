//! Screenshots of the pages a guest served: the HTML that the test's curl "browser" fetched inside a
//! guest, rendered on the host by headless Chromium (package `chromium`). Kizuna's pages inline their
//! styles and load nothing else, so the file renders as the browser showed it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{LabError, Result};

/// Writes `html` to `<dir>/<name>.html` and its screenshot to `<dir>/<name>.png` (1280×900);
/// returns the PNG's path. Fails when Chromium is missing or renders nothing.
pub fn html_to_png(html: &str, dir: &Path, name: &str) -> Result<PathBuf> {
    let page = dir.join(format!("{name}.html"));
    let png = dir.join(format!("{name}.png"));
    std::fs::write(&page, html).map_err(|e| LabError::io(format!("writing {}", page.display()), e))?;
    let _ = std::fs::remove_file(&png);
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
        .ok_or_else(|| LabError::Setup {
            step: "finding Chromium for screenshots".into(),
            status: "not installed".into(),
            stderr: "install the package chromium (tests/apt-packages.txt)".into(),
        })?;
    let profile = tempfile::tempdir().map_err(|e| LabError::io("a Chromium profile folder", e))?;
    let out = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        .args(["--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,900"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .map_err(|e| LabError::io(format!("running {browser}"), e))?;
    let shot = std::fs::read(&png).unwrap_or_default();
    if !out.status.success() || !shot.starts_with(b"\x89PNG") {
        return Err(LabError::Setup {
            step: format!("{browser} --screenshot of {}", page.display()),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(png)
}
