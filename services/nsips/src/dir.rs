//! Whole exports: one NSIPS file's bytes into SS-MIX2 files ([`convert_bytes`]), and a folder of
//! exports into a storage root ([`convert_dir`]). The CLI (`kizuna nsips convert`), `kizuna demo`
//! and the upload agent's NSIPS folder all convert through [`convert_bytes`].

use std::path::{Path, PathBuf};

use ssmix2::StoragePath;

use crate::NsipsError;

/// One NSIPS file converted: how many dispensings it held, the SS-MIX2 files they became, and the
/// ones held back.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// Every dispensing of the file, held-back ones included.
    pub dispensings: usize,
    /// One OMP-01 message per dispensing with at least one drug (fees-only dispensings yield none).
    pub files: Vec<(StoragePath, Vec<u8>)>,
    /// What was written differently from the export, to be logged as warnings: characters
    /// written as JIS X 0208 stand-ins, and values converted without a code (a usage code with no
    /// known route, a drug without a unit, a drug without a HOT code), renumbered and repeated
    /// dispensings, and each held-back dispensing once more ([`crate::Warning::HeldBack`], so a
    /// caller that only logs warnings still names it). The name predates all but the first kind.
    pub replaced: Vec<crate::Warning>,
    /// Dispensings left out because they do not parse or convert, in file order, each with its
    /// error (file, line, field), its lines, and a file of it alone to re-send once fixed. The
    /// rest of the file is in `files`; a caller keeps these (the agent: quarantine) instead of
    /// refusing the whole file.
    pub held_back: Vec<crate::HeldBack>,
}

/// Parses the NSIPS file `bytes` (named `origin` in errors) and converts it for the pharmacy
/// `facility`. The output depends on nothing but `bytes` and `facility`, so converting the same
/// file again gives the same names and bytes.
pub fn convert_bytes(bytes: &[u8], origin: &Path, facility: &str) -> Result<Conversion, NsipsError> {
    crate::to_ssmix2(&crate::parse(bytes, origin)?, facility)
}

/// What [`convert_dir`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Converted {
    pub inputs: usize,
    pub dispensings: usize,
    /// Dispensings with at least one drug: each became one OMP-01 message.
    pub messages: usize,
    /// Files newly written (identical files already there are not counted).
    pub written: usize,
    /// Warnings ([`Conversion::replaced`]), with the export that held them.
    pub replaced: Vec<(PathBuf, crate::Warning)>,
    /// Dispensings held back ([`Conversion::held_back`]), with the export that held them. Each
    /// also is in `replaced` as [`crate::Warning::HeldBack`].
    pub held_back: Vec<(PathBuf, crate::HeldBack)>,
}

/// Converts every `*.csv` NSIPS export in `in_dir` (in name order) into SS-MIX2 files below the
/// storage root `out_root` with [`crate::write_files`]. Stops at the first bad file (encoding,
/// header, facility, a write); a bad dispensing is held back ([`Converted::held_back`]) and the
/// rest of its file written.
pub fn convert_dir(facility: &str, in_dir: &Path, out_root: &Path) -> Result<Converted, NsipsError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| NsipsError::Io { path, source: std::sync::Arc::new(source) }
    };
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(in_dir)
        .map_err(io(in_dir))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io(in_dir))?;
    inputs.retain(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv")));
    inputs.sort();
    let mut n = Converted { inputs: inputs.len(), ..Default::default() };
    for path in &inputs {
        let bytes = std::fs::read(path).map_err(io(path))?;
        let c = convert_bytes(&bytes, path, facility)?;
        n.dispensings += c.dispensings;
        n.messages += c.files.len();
        n.written += crate::write_files(out_root, &c.files)?;
        n.replaced.extend(c.replaced.into_iter().map(|r| (path.clone(), r)));
        n.held_back.extend(c.held_back.into_iter().map(|h| (path.clone(), h)));
    }
    Ok(n)
}
