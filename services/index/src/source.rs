//! Demographics read from where facilities put them: an SS-MIX2 storage root (PID of each patient's
//! messages) and a pharmacy's NSIPS exports (record type 1).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ssmix2::{ConditionFlag, StoragePath};

use crate::IndexError;
use crate::demographics::{Demographics, RecordKey, Sex, parse_birth_date, phone_digits};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |source| IndexError::Io { path: path.to_owned(), source }
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, IndexError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        if e.file_type().map_err(io(dir))?.is_dir() {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

fn files_below(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), IndexError> {
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        let ty = e.file_type().map_err(io(dir))?;
        if ty.is_dir() && depth > 0 {
            files_below(&e.path(), depth - 1, out)?;
        } else if ty.is_file() {
            out.push(e.path());
        }
    }
    Ok(())
}

/// Fills the empty fields of `into` from `from`.
fn fill(into: &mut Demographics, from: Demographics) {
    if into.family_kanji.is_empty() && into.given_kanji.is_empty() {
        (into.family_kanji, into.given_kanji) = (from.family_kanji, from.given_kanji);
    }
    if into.family_kana.is_empty() && into.given_kana.is_empty() {
        (into.family_kana, into.given_kana) = (from.family_kana, from.given_kana);
    }
    if into.birth_date.is_none() {
        into.birth_date = from.birth_date;
    }
    if into.sex.is_none() {
        into.sex = from.sex;
    }
    if into.address.is_empty() {
        into.address = from.address;
    }
    if into.phone.is_empty() {
        into.phone = from.phone;
    }
}

fn complete(d: &Demographics) -> bool {
    !d.family_kanji.is_empty()
        && !d.family_kana.is_empty()
        && d.birth_date.is_some()
        && d.sex.is_some()
        && !d.address.is_empty()
        && !d.phone.is_empty()
}

/// Every patient of one facility's storage root with their current demographics: for each field, the
/// value in the newest message (by file-name timestamp, current files before superseded ones) that
/// has it. Deleted (`_0`) files are skipped. Files whose names are not SS-MIX2 names are ignored;
/// a file that does not decode is an error naming it.
pub fn read_storage_root(root: &Path, facility: &str) -> Result<Vec<(RecordKey, Demographics)>, IndexError> {
    read_storage_root_except(root, facility, |_| false)
}

/// [`read_storage_root`] without the patients `skip` names (by local ID): their folders are listed
/// but none of their files is read, so finding the few new patients of a large tree stays cheap.
pub fn read_storage_root_except(
    root: &Path,
    facility: &str,
    skip: impl Fn(&str) -> bool,
) -> Result<Vec<(RecordKey, Demographics)>, IndexError> {
    read_root(root, facility, skip, None)
}

/// [`read_storage_root_except`] that does not stop at what it cannot read: a file that cannot be
/// read or decoded is left out (the patient's other files still count), a patient none of whose
/// files could be read is left out, and each such error goes to `unreadable`. Only a storage root
/// whose folders cannot be listed is an error.
pub fn read_storage_root_lenient(
    root: &Path,
    facility: &str,
    skip: impl Fn(&str) -> bool,
    unreadable: &mut Vec<IndexError>,
) -> Result<Vec<(RecordKey, Demographics)>, IndexError> {
    read_root(root, facility, skip, Some(unreadable))
}

/// `Err(e)` when reading strictly (`unreadable` is `None`), else `e` noted and `Ok`.
fn tolerate(unreadable: &mut Option<&mut Vec<IndexError>>, e: IndexError) -> Result<(), IndexError> {
    match unreadable {
        Some(v) => {
            v.push(e);
            Ok(())
        }
        None => Err(e),
    }
}

fn read_root(
    root: &Path,
    facility: &str,
    skip: impl Fn(&str) -> bool,
    mut unreadable: Option<&mut Vec<IndexError>>,
) -> Result<Vec<(RecordKey, Demographics)>, IndexError> {
    let mut out = Vec::new();
    for patient_dir in patient_dirs(root)? {
        let Some(pid) = patient_dir.file_name().and_then(|n| n.to_str()) else { continue };
        if skip(pid) {
            continue;
        }
        let key = match RecordKey::new(facility, pid) {
            Ok(k) => k,
            Err(e) => {
                tolerate(&mut unreadable, e)?;
                continue;
            }
        };
        if let Some(d) = read_patient(root, &patient_dir, &mut unreadable)? {
            out.push((key, d));
        }
    }
    Ok(out)
}

/// The patient folders of a storage root (`root/xxx/yyy/<patient>`), in name order.
fn patient_dirs(root: &Path) -> Result<Vec<PathBuf>, IndexError> {
    let mut out = Vec::new();
    for a in subdirs(root)? {
        for b in subdirs(&a)? {
            out.extend(subdirs(&b)?);
        }
    }
    Ok(out)
}

/// One patient's current demographics from their folder, or `None` when it holds no current or
/// superseded SS-MIX2 file (or, reading leniently, none that could be read).
fn read_patient(
    root: &Path,
    patient_dir: &Path,
    unreadable: &mut Option<&mut Vec<IndexError>>,
) -> Result<Option<Demographics>, IndexError> {
    let mut files = Vec::new();
    if let Err(e) = files_below(patient_dir, 2, &mut files) {
        tolerate(unreadable, e)?;
        return Ok(None);
    }
    let mut named: Vec<(String, u8, PathBuf)> = Vec::new();
    for f in files {
        let Ok(rel) = f.strip_prefix(root) else { continue };
        let Some(rel) = rel.to_str() else { continue };
        let Ok(sp) = StoragePath::parse(rel) else { continue };
        let rank = match sp.name.flag {
            ConditionFlag::Deleted => continue,
            ConditionFlag::Current => 1,
            ConditionFlag::Superseded => 0,
        };
        named.push((sp.name.timestamp.to_string(), rank, f));
    }
    if named.is_empty() {
        return Ok(None);
    }
    named.sort_by(|x, y| (&y.0, y.1).cmp(&(&x.0, x.1)));
    let mut d = Demographics::default();
    let mut read_any = false;
    for (_, _, f) in &named {
        let found = std::fs::read(f)
            .map_err(io(f))
            .and_then(|bytes| Demographics::from_bytes(&bytes, &f.display().to_string()));
        let found = match found {
            Ok(found) => found,
            Err(e) => {
                tolerate(unreadable, e)?;
                continue;
            }
        };
        read_any = true;
        fill(&mut d, found);
        if complete(&d) {
            break;
        }
    }
    Ok(read_any.then_some(d))
}

/// Text of an NSIPS file: UTF-8 when it is valid UTF-8, else CP932 (both occur).
fn nsips_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => encoding_rs::SHIFT_JIS.decode(bytes).0.into_owned(),
    }
}

/// Demographics from a record-type-1 line of an NSIPS export: `1,patient_no,name_kanji,name_kana,
/// sex(1|2),birth_date,postcode,address,phone,...` (names with family and given separated by a space).
pub fn parse_nsips_patient(line: &str, source_name: &str) -> Result<(String, Demographics), IndexError> {
    let f: Vec<&str> = line.trim_end_matches(['\r', '\n']).split(',').collect();
    let bad = |field: &'static str, value: &str, reason: &'static str| IndexError::BadField {
        source_name: source_name.to_owned(),
        field,
        value: value.to_owned(),
        reason,
    };
    if f.len() < 9 || f[0] != "1" {
        return Err(bad("record 1", line, "is not a patient record with 9 fields"));
    }
    if f[1].trim().is_empty() {
        return Err(bad("patient_no", f[1], "is empty"));
    }
    let split = |s: &str| -> (String, String) {
        let s = crate::normalize::spacing::collapse_spaces(s);
        match s.split_once(' ') {
            Some((a, b)) => (a.to_owned(), b.to_owned()),
            None => (s, String::new()),
        }
    };
    let (family_kanji, given_kanji) = split(f[2]);
    let (family_kana, given_kana) = split(f[3]);
    let birth_date = if f[5].trim().is_empty() {
        None
    } else {
        Some(parse_birth_date(f[5]).ok_or_else(|| bad("birth_date", f[5], "is not a date YYYYMMDD"))?)
    };
    let sex = match f[4].trim() {
        "1" => Some(Sex::Male),
        "2" => Some(Sex::Female),
        _ => None,
    };
    Ok((
        f[1].trim().to_owned(),
        Demographics {
            family_kanji,
            given_kanji,
            family_kana,
            given_kana,
            birth_date,
            sex,
            address: f[7].to_owned(),
            phone: phone_digits(f[8]),
        },
    ))
}

/// Every patient in a pharmacy's NSIPS export folder, with the demographics of their newest
/// dispensing (files are named by date, so the last file read wins).
pub fn read_nsips_dir(dir: &Path, facility: &str) -> Result<Vec<(RecordKey, Demographics)>, IndexError> {
    let mut files = Vec::new();
    files_below(dir, 0, &mut files)?;
    files.sort();
    let mut latest: BTreeMap<String, Demographics> = BTreeMap::new();
    for f in files {
        let text = nsips_text(&std::fs::read(&f).map_err(io(&f))?);
        for (n, line) in text.lines().enumerate() {
            if line.starts_with("1,") {
                let (no, d) = parse_nsips_patient(line, &format!("{}:{}", f.display(), n + 1))?;
                latest.insert(no, d);
            }
        }
    }
    latest.into_iter().map(|(no, d)| Ok((RecordKey::new(facility, &no)?, d))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nsips_patient_records_parse() {
        let (no, d) = parse_nsips_patient(
            "1,00001234,佐藤　花子,サトウ　ハナコ,2,19500101,980-0811,仙台市青葉区一番町1-2-3,022-222-3333,06040001",
            "x.csv:2",
        )
        .unwrap();
        assert_eq!(no, "00001234");
        assert_eq!((d.family_kanji.as_str(), d.given_kanji.as_str()), ("佐藤", "花子"));
        assert_eq!(d.given_kana, "ハナコ");
        assert_eq!(d.sex, Some(Sex::Female));
        assert_eq!(d.phone, "0222223333");
        let err = parse_nsips_patient("1,1,a,b,1,1950,,,", "x.csv:7").unwrap_err().to_string();
        assert!(err.contains("x.csv:7") && err.contains("birth_date"), "{err}");
    }
}
