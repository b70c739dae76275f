//! The checks of one file.

use std::path::Path;

use super::iso2022jp::Outside;
use super::scan::{self, Scratch, Segment, Seps};
use super::tables::{NumericSpot, data_type_index};
use super::{Code, Validator, Violation, is_numeric};
use crate::{DataType, FileName, StoragePath};

/// MSH-20 values accepted as "ISO 2022-1994"; the guideline's samples also write it without the space.
const ENCODING_DECLARATIONS: &[&str] = &["ISO 2022-1994", "ISO2022-1994"];
/// The HL7 table 0211 value for JIS X 0208 (ISO-2022-JP).
const CHARSET_DECLARATION: &str = "ISO IR87";
/// MSH-21: `SS-MIX2_<ver>^SS-MIX2^1.2.392.200250.2.1.100.1.2.<ver>^ISO`.
const PROFILE_ENTITY_PREFIX: &str = "SS-MIX2_";
const PROFILE_NAMESPACE: &str = "SS-MIX2";
const PROFILE_OID_PREFIX: &str = "1.2.392.200250.2.1.100.1.2.";
const PROFILE_OID_TYPE: &str = "ISO";

/// Formats a place in a message: `SEG[occ]-field[rep].comp.sub`, brackets only when above 1.
fn place(id: &str, occ: u32, field: usize, rep: usize, comp: Option<u16>, sub: Option<u16>) -> String {
    let mut s = String::with_capacity(16);
    s.push_str(id);
    if occ > 1 {
        s.push_str(&format!("[{occ}]"));
    }
    s.push_str(&format!("-{field}"));
    if rep > 1 {
        s.push_str(&format!("[{rep}]"));
    }
    if let Some(c) = comp {
        s.push_str(&format!(".{c}"));
    }
    if let Some(x) = sub {
        s.push_str(&format!(".{x}"));
    }
    s
}

impl Validator {
    /// Validates one file whose content is `bytes`. With `root` (the storage root the file was found
    /// under), the path is checked against the file name too; without it, only the name and content.
    ///
    /// `scratch` holds buffers reused across calls; keep one per thread.
    pub fn check(
        &self,
        root: Option<&Path>,
        file: &Path,
        bytes: &[u8],
        scratch: &mut Scratch,
        sink: &mut dyn FnMut(Violation),
    ) {
        let mut emit = |code: Code, field: Option<String>, message: String| {
            sink(Violation { code, file: file.to_owned(), field, message })
        };

        // Name and path.
        let name_str = file.file_name().and_then(|n| n.to_str());
        let name = match name_str.map(FileName::parse) {
            Some(Ok(n)) => Some(n),
            Some(Err(e)) => {
                emit(Code::BadFileName, None, e.to_string());
                None
            }
            None => {
                emit(Code::BadFileName, None, "the file name is not valid UTF-8".to_owned());
                None
            }
        };
        if let (Some(root), Some(name)) = (root, &name)
            && !path_agrees_quickly(root, file, name)
            && let Err(e) = StoragePath::from_root(root, file)
        {
            emit(Code::PathMismatch, None, e.to_string());
        }
        // The `-` date folder: data with no care date is stored there and nowhere else. (A dated data
        // type under `-` is a care-date fault, found below from its care-date field.)
        if let Some(name) = &name
            && name.data_type.has_no_care_date()
            && let Some(date) = name.care_date.date_str()
        {
            let rel = root.and_then(|r| file.strip_prefix(r).ok()).unwrap_or(file);
            let dt = name.data_type;
            emit(
                Code::WrongDateFolder,
                None,
                format!(
                    "{} is stored under the date {date}, but {dt} ({}) has no care date: it belongs in the `-` date folder, named {}_-_{dt}_…",
                    rel.display(),
                    dt.meaning(),
                    name.patient,
                ),
            );
        }
        // Like the NHO validator, take the date and data type from the name's parts even when some
        // other part is malformed.
        let mut name_parts = name_str.unwrap_or("").split('_').skip(1);
        let name_date = name_parts.next();
        let data_type = name_parts.next().and_then(|d| DataType::parse(d).ok());

        // Encoding.
        let Scratch { text, fields, order, occurrences, outside } = scratch;
        if let Err(offset) = scan::decode_into(bytes, text, outside) {
            emit(Code::NotIso2022Jp, None, format!("byte {offset} is not valid ISO-2022-JP"));
            return;
        }
        let mut lines = scan::lines(text);
        let first = lines.next().unwrap_or("");
        let seps = Seps::from_msh(first).filter(|_| text.starts_with("MSH"));
        if !outside.is_empty() {
            report_outside(text, outside, seps.as_ref(), &mut emit);
        }
        let Some(seps) = seps else {
            emit(
                Code::NotHl7,
                None,
                "the content does not start with an MSH segment and its separators".to_owned(),
            );
            return;
        };

        // The header.
        let msh = Segment::split(first, &seps, fields);
        let msh9 = msh.field(9);
        let code = scan::nth_part(msh9, seps.component, 1);
        let trigger = scan::nth_part(msh9, seps.component, 2);
        let rules = self.tables.message(code, trigger);
        if let Some(dt) = data_type
            && !dt.message_types().iter().any(|m| m.split_once('^') == Some((code, trigger)))
        {
            emit(
                Code::DataTypeMismatch,
                Some("MSH-9".to_owned()),
                format!("MSH-9 is {code}^{trigger}, but {dt} carries {}", dt.message_types().join(" or ")),
            );
        }
        self.check_declarations(&msh, &seps, &mut emit);

        // The segments, in one pass.
        let dt_index = data_type_index(data_type);
        let care_rule = rules.and_then(|r| r.care_date.as_ref()).and_then(|c| c.as_ref());
        let mut care_seen = 0;
        let mut pid_seen = false;
        order.clear();
        occurrences.clear();
        let mut last_id = "";
        for line in std::iter::once(first).chain(lines) {
            let seg = Segment::split(line, &seps, fields);
            let key = scan::id_key(seg.id);
            let occ = match occurrences.iter_mut().find(|(k, _)| *k == key) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    occurrences.push((key, 1));
                    1
                }
            };
            if seg.id != last_id {
                order.push_str(seg.id);
                last_id = seg.id;
            }
            if let Some(seg_rules) = self.tables.segment(seg.id) {
                for &n in &seg_rules.required[dt_index] {
                    let n = usize::from(n);
                    if seps.is_empty(seg.field(n)) {
                        let what = seg_rules.names.get(n).map_or("", String::as_str);
                        let for_type =
                            data_type.map_or_else(|| "every data type".to_owned(), |d| d.to_string());
                        let at = place(seg.id, occ, n, 1, None, None);
                        let message = format!("{at} ({what}) is required for {for_type} but is empty");
                        emit(Code::RequiredFieldMissing, Some(at), message);
                    }
                }
                for (n, spots) in &seg_rules.numeric {
                    let n = usize::from(*n);
                    if n > seg.len() {
                        break;
                    }
                    let value = seg.field(n);
                    if !value.is_empty() {
                        for &spot in spots {
                            check_numeric(&seg, occ, n, value, spot, &seps, &mut emit);
                        }
                    }
                }
            }
            if let Some((care_seg, care_field)) = care_rule
                && seg.id == care_seg
            {
                care_seen += 1;
                let n = usize::from(*care_field);
                let value = seg.field(n);
                // As the NHO validator: the first eight characters when there are at least eight.
                let date = if value.trim().len() >= 8 { value.get(..8).unwrap_or(value) } else { value };
                let want = name_date.unwrap_or("");
                if date != want {
                    let stored = if want == "-" {
                        "with no care date (-)".to_owned()
                    } else {
                        format!("under {want}")
                    };
                    let at = place(seg.id, occ, n, 1, None, None);
                    let message = format!("{at} holds {value:?}, but the file is stored {stored}");
                    emit(Code::CareDateMismatch, Some(at), message);
                }
            }
            if seg.id == "PID" && !pid_seen {
                pid_seen = true;
                if let Some(name) = &name {
                    check_patient(&seg, name, &seps, &mut emit);
                }
            }
        }
        if let Some((care_seg, care_field)) = care_rule
            && care_seen == 0
        {
            emit(
                Code::CareDateMismatch,
                Some(format!("{care_seg}-{care_field}")),
                format!(
                    "{code}^{trigger} carries its care date in {care_seg}-{care_field}, but there is no {care_seg} segment"
                ),
            );
        }
        if !pid_seen && name.is_some() {
            emit(
                Code::PatientIdMismatch,
                Some("PID-3".to_owned()),
                "the message has no PID segment".to_owned(),
            );
        }
        if let Some(re) = rules.and_then(|r| r.order.as_ref())
            && !re.is_match(order)
        {
            let seen: Vec<&str> =
                scan::lines(text).map(|l| l.split(seps.field as char).next().unwrap_or("")).collect();
            emit(
                Code::SegmentOrder,
                None,
                format!("segments {} do not follow the structure of {code}^{trigger}", seen.join(" ")),
            );
        }
    }

    /// MSH-18, MSH-20 and MSH-21.
    fn check_declarations(
        &self,
        msh: &Segment<'_, '_>,
        seps: &Seps,
        emit: &mut impl FnMut(Code, Option<String>, String),
    ) {
        let msh18 = msh.field(18);
        if !scan::parts(msh18, seps.repetition).any(|r| r == CHARSET_DECLARATION) {
            emit(
                Code::BadCharsetDeclaration,
                Some("MSH-18".to_owned()),
                format!(
                    "MSH-18 is {msh18:?}; SS-MIX2 requires a repetition {CHARSET_DECLARATION:?} (ISO-2022-JP)"
                ),
            );
        }
        let msh20 = msh.field(20);
        if !ENCODING_DECLARATIONS.contains(&msh20) {
            emit(
                Code::BadEncodingDeclaration,
                Some("MSH-20".to_owned()),
                format!("MSH-20 is {msh20:?}; SS-MIX2 requires \"ISO 2022-1994\""),
            );
        }
        let msh21 = msh.field(21);
        let profile_ok = scan::parts(msh21, seps.repetition).any(|r| {
            let c = |n| scan::nth_part(r, seps.component, n);
            c(1).starts_with(PROFILE_ENTITY_PREFIX)
                && c(2) == PROFILE_NAMESPACE
                && c(3).starts_with(PROFILE_OID_PREFIX)
                && c(4) == PROFILE_OID_TYPE
        });
        if !profile_ok {
            emit(
                Code::BadProfile,
                Some("MSH-21".to_owned()),
                format!(
                    "MSH-21 is {msh21:?}; SS-MIX2 requires e.g. SS-MIX2_1.20^SS-MIX2^1.2.392.200250.2.1.100.1.2.120^ISO"
                ),
            );
        }
    }
}

/// Characters that decode but are not JIS X 0208 (see `iso2022jp.rs`): one [`Code::NotIso2022Jp`]
/// per field that holds any, naming the line (segment, from 1) and the field. The message is still
/// checked: its text is known, and the NHO validator too runs its other checks on such a file.
fn report_outside(
    text: &str,
    outside: &[Outside],
    seps: Option<&Seps>,
    emit: &mut impl FnMut(Code, Option<String>, String),
) {
    // (line number, field, the characters found there), in the order of the text.
    let mut places: Vec<(usize, Option<String>, Vec<&Outside>)> = Vec::new();
    let mut ids: Vec<&str> = Vec::new();
    let mut next = outside.iter().peekable();
    for (i, line) in scan::lines(text).enumerate() {
        let start = line.as_ptr() as usize - text.as_ptr() as usize;
        let id = seps.map_or("", |s| line.split(s.field as char).next().unwrap_or(""));
        ids.push(id);
        while let Some(o) = next.next_if(|o| o.at < start + line.len()) {
            let field = seps.and_then(|s| {
                let k =
                    line.as_bytes()[..o.at.saturating_sub(start)].iter().filter(|b| **b == s.field).count();
                let n = if id == "MSH" { k + 1 } else { k };
                let occ = ids.iter().filter(|x| **x == id).count() as u32;
                (k > 0).then(|| place(id, occ, n, 1, None, None))
            });
            match places.last_mut() {
                Some((l, f, chars)) if *l == i + 1 && *f == field => chars.push(o),
                _ => places.push((i + 1, field, vec![o])),
            }
        }
    }
    for (line, field, chars) in places {
        let mut seen: Vec<char> = Vec::new();
        let what: Vec<String> = chars
            .iter()
            .filter(|o| {
                !seen.contains(&o.ch) && {
                    seen.push(o.ch);
                    true
                }
            })
            .map(|o| format!("'{}' (U+{:04X}, {}, at byte {})", o.ch, o.ch as u32, o.set, o.offset))
            .collect();
        let at = match &field {
            Some(f) => format!("line {line}, {f}"),
            None => format!("line {line}"),
        };
        emit(
            Code::NotIso2022Jp,
            field,
            format!(
                "{at}: {} not JIS X 0208; ISO-2022-JP (MSH-18 ISO IR87) is ASCII and JIS X 0208 only, and the NHO validator's checkJIS (Python's iso2022_jp) rejects the file",
                match what.as_slice() {
                    [one] => format!("{one} is"),
                    many => format!("{} are", many.join(", ")),
                }
            ),
        );
    }
}

/// The common case of the path check without allocating: `root/PID[0:3]/PID[3:6]/PID/date/type/NAME`
/// for an ID of six or more characters. `false` sends the caller to [`StoragePath::from_root`],
/// which decides (and explains) every other case, including the padding of short IDs.
fn path_agrees_quickly(root: &Path, file: &Path, name: &FileName) -> bool {
    let pid = name.patient.as_str();
    let (Some(a), Some(b)) = (pid.get(0..3), pid.get(3..6)) else { return false };
    let (Some(root), Some(file)) = (root.to_str(), file.to_str()) else { return false };
    let Some(rel) = file.strip_prefix(root) else { return false };
    let mut parts = rel.trim_start_matches('/').split('/');
    let date = name.care_date.date_str().unwrap_or("-");
    for want in [a, b, pid, date, name.data_type.code()] {
        if parts.next() != Some(want) {
            return false;
        }
    }
    parts.next().is_some_and(|n| !n.is_empty()) && parts.next().is_none()
}

/// PID-3: one of its repetitions must carry the patient ID of the file name (component 1).
fn check_patient(
    seg: &Segment<'_, '_>,
    name: &FileName,
    seps: &Seps,
    emit: &mut impl FnMut(Code, Option<String>, String),
) {
    let pid3 = seg.field(3);
    if seps.is_empty(pid3) {
        return; // Reported as a missing required field where the tables require it.
    }
    let want = name.patient.as_str();
    if !scan::parts(pid3, seps.repetition).any(|r| scan::nth_part(r, seps.component, 1) == want) {
        emit(
            Code::PatientIdMismatch,
            Some("PID-3".to_owned()),
            format!("PID-3 is {pid3:?}, but the file belongs to patient {want}"),
        );
    }
}

/// One numeric rule on one segment. Each repetition is checked on its own (the NHO validator does
/// not split repetitions, so it would reject `1~2` in a repeating NM field).
fn check_numeric(
    seg: &Segment<'_, '_>,
    occ: u32,
    n: usize,
    value: &str,
    spot: NumericSpot,
    seps: &Seps,
    emit: &mut impl FnMut(Code, Option<String>, String),
) {
    if spot == NumericSpot::ObservationValue && seg.field(2) != "NM" {
        return;
    }
    for (ri, rep) in scan::parts(value, seps.repetition).enumerate() {
        let (part, comp, sub) = match spot {
            NumericSpot::Field | NumericSpot::ObservationValue => (rep, None, None),
            NumericSpot::Component(c) => (scan::nth_part(rep, seps.component, c.into()), Some(c), None),
            NumericSpot::Subcomponent(c, s) => {
                let comp = scan::nth_part(rep, seps.component, c.into());
                (scan::nth_part(comp, seps.subcomponent, s.into()), Some(c), Some(s))
            }
        };
        if !part.is_empty() && !is_numeric(part) {
            let at = place(seg.id, occ, n, ri + 1, comp, sub);
            let why = if spot == NumericSpot::ObservationValue { " (OBX-2 says NM)" } else { "" };
            emit(
                Code::NotNumeric,
                Some(at.clone()),
                format!("{at} holds {part:?}, which is not a number{why}"),
            );
        }
    }
}
