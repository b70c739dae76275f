use std::cell::RefCell;
use std::path::Path;

use crate::NsipsError;
use crate::jis::Replacement;
use crate::record::*;

/// Field names of each record type after the type itself, in order (the layout of
/// `synth::nsips::LAYOUT`). Error messages name fields by these.
const HEADER_FIELDS: &[&str] = &[
    "version",
    "sent at",
    "terminal",
    "prefecture",
    "fee table",
    "pharmacy code",
    "pharmacy name",
    "postcode",
    "address",
    "phone",
];
pub(crate) const RECORD_FIELDS: [&[&str]; 8] = [
    &[
        "patient number",
        "name (kanji)",
        "name (kana)",
        "sex",
        "birth date",
        "postcode",
        "address",
        "phone",
        "insurer number",
    ],
    &[
        "prescription number",
        "issued on",
        "institution code",
        "institution name",
        "department",
        "doctor",
        "dispensed on",
    ],
    &["Rp number", "usage code", "usage", "days", "times per day"],
    &["Rp number", "sequence", "YJ code", "receipt code", "HOT code", "drug name", "amount per day", "unit"],
    &["dispensing number", "dispensed on", "pharmacist", "points"],
    &["dispensing number", "Rp number", "points"],
    &["fee code", "fee name", "points"],
    &["noted on", "note"],
];

/// Parses one NSIPS export. `origin` names the file in errors. The encoding is UTF-8 when the bytes
/// are valid UTF-8 (a BOM is skipped), else CP932; lines end in LF or CRLF.
///
/// The file as a whole is refused (`Err`) only for what no dispensing can be read without: the
/// encoding, the header line, records before the first record 1, an empty line followed by more
/// records. A fault inside one dispensing (a record 1 and the records after it up to the next
/// record 1) holds back that dispensing alone ([`NsipsFile::held_back`], with the error and its
/// lines); the others are read.
pub fn parse(bytes: &[u8], origin: &Path) -> Result<NsipsFile, NsipsError> {
    let (text, encoding) = decode(bytes, origin)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut lines = text.split('\n').enumerate().map(|(i, l)| (i + 1, l));
    let (_, first) = lines.next().unwrap_or((1, ""));
    let crlf = first.ends_with('\r');
    let header_fields = Fields::split(origin, 1, "header", first);
    let header = header(&header_fields)?;
    let mut replaced = header_fields.replaced.into_inner();
    let (mut dispensings, mut held_back) = (Vec::new(), Vec::new());
    let mut open: Option<Open> = None;
    let mut blank_at: Option<usize> = None;
    let raw = raw_lines(bytes);
    let mut close = |o: Open, replaced: &mut Vec<Replacement>| match o.close(origin) {
        Ok((d, mut r)) => {
            replaced.append(&mut r);
            dispensings.push(d);
        }
        Err(held) => {
            let (lines, error) = *held;
            let export = export_of(&raw, &lines);
            held_back.push(HeldBack { lines, error, export });
        }
    };
    for (no, raw_line) in lines {
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        if line.is_empty() {
            blank_at.get_or_insert(no);
            continue;
        }
        if let Some(b) = blank_at {
            return Err(line_err(origin, b, "empty line inside the file".to_owned()));
        }
        let kind = line.split(',').next().unwrap_or("");
        let k = kind.parse::<usize>().ok().filter(|k| (1..=8).contains(k));
        if k == Some(1) {
            if let Some(o) = open.take() {
                close(o, &mut replaced);
            }
            open = Some(Open::new(no));
        }
        let Some(o) = open.as_mut() else {
            return Err(line_err(
                origin,
                no,
                match k {
                    Some(k) => format!("record {k} before any record 1 (patient)"),
                    None => format!("unknown record type {kind:?} (expected 1 to 8)"),
                },
            ));
        };
        o.last = no;
        if o.error.is_some() {
            continue;
        }
        let Some(k) = k else {
            o.error = Some(line_err(origin, no, format!("unknown record type {kind:?} (expected 1 to 8)")));
            continue;
        };
        let f = Fields::split(origin, no, kind, line);
        match f.count(RECORD_FIELDS[k - 1].len()).and_then(|()| o.record(k, &f)) {
            Ok(()) => o.replaced.append(&mut f.replaced.borrow_mut()),
            Err(e) => o.error = Some(e),
        }
    }
    if let Some(o) = open.take() {
        close(o, &mut replaced);
    }
    Ok(NsipsFile {
        origin: origin.to_owned(),
        source: bytes.to_owned(),
        encoding,
        crlf,
        header,
        dispensings,
        held_back,
        replaced,
    })
}

/// The lines of `bytes` as exported (without their LF; CRLF lines keep their CR). LF (0x0A) is never
/// part of a CP932 double-byte character, so these are the decoded text's lines.
pub(crate) fn raw_lines(bytes: &[u8]) -> Vec<&[u8]> {
    bytes.split(|b| *b == b'\n').collect()
}

/// A complete NSIPS file of one dispensing: the header line (line 1) and `lines` of `raw`
/// ([`raw_lines`]), each ended with LF.
pub(crate) fn export_of(raw: &[&[u8]], lines: &std::ops::RangeInclusive<usize>) -> Vec<u8> {
    let mut export = Vec::new();
    for no in std::iter::once(1).chain(lines.clone()) {
        export.extend_from_slice(raw.get(no - 1).copied().unwrap_or_default());
        export.push(b'\n');
    }
    export
}

fn decode<'a>(bytes: &'a [u8], origin: &Path) -> Result<(std::borrow::Cow<'a, str>, Encoding), NsipsError> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Ok((s.into(), Encoding::Utf8));
    }
    // encoding_rs's Shift_JIS is the WHATWG one, which is CP932 (with the NEC/IBM extensions).
    encoding_rs::SHIFT_JIS
        .decode_without_bom_handling_and_without_replacement(bytes)
        .map(|s| (s, Encoding::Cp932))
        .ok_or_else(|| NsipsError::Encoding { file: origin.to_owned() })
}

fn line_err(origin: &Path, line: usize, message: String) -> NsipsError {
    NsipsError::Line { file: origin.to_owned(), line, message }
}

/// An error naming a field of record `record` (1–8), for checks made after the line was read.
fn field_err(origin: &Path, line: usize, record: usize, field: usize, message: String) -> NsipsError {
    NsipsError::Field {
        file: origin.to_owned(),
        line,
        record: record.to_string(),
        field,
        name: RECORD_FIELDS[record - 1][field - 1],
        message,
    }
}

/// A dispensing whose records are still being read.
struct Open {
    /// Its first (record 1) and last line so far.
    first: usize,
    last: usize,
    /// The first fault: the rest of its lines are skipped and it is held back.
    error: Option<NsipsError>,
    patient: Option<Patient>,
    prescription: Option<Prescription>,
    rps: Vec<Rp>,
    drugs: Vec<Drug>,
    records: Vec<DispensingRecord>,
    details: Vec<DispensingDetail>,
    fees: Vec<Fee>,
    notes: Vec<Note>,
    /// Stand-in characters of its lines, reported only if it is converted.
    replaced: Vec<Replacement>,
}

impl Open {
    fn new(line: usize) -> Self {
        Self {
            first: line,
            last: line,
            error: None,
            patient: None,
            prescription: None,
            rps: Vec::new(),
            drugs: Vec::new(),
            records: Vec::new(),
            details: Vec::new(),
            fees: Vec::new(),
            notes: Vec::new(),
            replaced: Vec::new(),
        }
    }

    /// Reads one record (its field count checked) into the dispensing.
    fn record(&mut self, k: usize, f: &Fields) -> Result<(), NsipsError> {
        match k {
            1 => self.patient = Some(patient(f)?),
            2 if self.prescription.is_some() => {
                return Err(line_err(f.file, f.line, "a second record 2 in one dispensing".to_owned()));
            }
            2 => self.prescription = Some(prescription(f)?),
            3 => self.rps.push(rp(f)?),
            4 => {
                let d = drug(f)?;
                if !self.rps.iter().any(|r| r.rp_no == d.rp_no) {
                    return Err(f.err(1, format!("Rp {} has no record 3 before it", d.rp_no)));
                }
                self.drugs.push(d);
            }
            5 => self.records.push(DispensingRecord {
                dispensing_no: f.code(1, 1, 20)?,
                dispensed_on: f.date(2)?,
                pharmacist: f.text(3),
                points: f.num(4)?,
            }),
            6 => self.details.push(DispensingDetail {
                dispensing_no: f.code(1, 1, 20)?,
                rp_no: f.num(2)?,
                points: f.num(3)?,
            }),
            7 => self.fees.push(Fee { fee_code: f.code(1, 1, 20)?, fee_name: f.text(2), points: f.num(3)? }),
            _ => self.notes.push(Note { noted_on: f.date(1)?, note: f.text(2) }),
        }
        Ok(())
    }

    /// The dispensing and its stand-in characters, or its lines and why it is held back.
    #[allow(clippy::type_complexity)]
    fn close(
        self,
        origin: &Path,
    ) -> Result<(Dispensing, Vec<Replacement>), Box<(std::ops::RangeInclusive<usize>, NsipsError)>> {
        let lines = self.first..=self.last;
        let fail = |e: NsipsError| Box::new((lines.clone(), e));
        if let Some(e) = self.error {
            return Err(fail(e));
        }
        let line = self.first;
        let (Some(patient), Some(prescription)) = (self.patient, self.prescription) else {
            return Err(fail(line_err(
                origin,
                line,
                "the dispensing has no record 2 (prescription)".to_owned(),
            )));
        };
        let d = Dispensing {
            line,
            last_line: self.last,
            patient,
            prescription,
            rps: self.rps,
            drugs: self.drugs,
            records: self.records,
            details: self.details,
            fees: self.fees,
            notes: self.notes,
        };
        if let Some(e) = ambiguous_rp(origin, &d) {
            return Err(fail(e));
        }
        Ok((d, self.replaced))
    }
}

/// Rp numbers used by more than one record 3 of a dispensing (an Rp group added again after an
/// edit): each drug takes the usage of the last record 3 before it with its number
/// ([`Dispensing::rp_of`]). That is unambiguous only when each such group is a block: its drugs
/// right after its record 3, at least one. Otherwise the first fault (by line) is returned: the
/// dispensing is held back rather than converted with a usage, days and dose that may be another
/// group's.
fn ambiguous_rp(origin: &Path, d: &Dispensing) -> Option<NsipsError> {
    let lines_of = |n: u32| -> Vec<usize> { d.rps.iter().filter(|r| r.rp_no == n).map(|r| r.line).collect() };
    let shown = |lines: &[usize]| -> String {
        let s: Vec<String> = lines.iter().map(ToString::to_string).collect();
        match s.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("lines {} and {last}", rest.join(", ")),
            _ => format!("line {}", s.join("")),
        }
    };
    let mut faults = Vec::new();
    for rp in &d.rps {
        let same = lines_of(rp.rp_no);
        if same.len() > 1 && !d.drugs.iter().any(|x| d.rp_of(x).is_some_and(|r| r.line == rp.line)) {
            let message = format!(
                "Rp {} is on the record 3s of {} and this one has no record 4 right after it: which usage each drug takes is ambiguous",
                rp.rp_no,
                shown(&same)
            );
            faults.push(field_err(origin, rp.line, 3, 1, message));
        }
    }
    for x in &d.drugs {
        let same = lines_of(x.rp_no);
        let before = d.rps.iter().rev().find(|r| r.line < x.line);
        let own = d.rp_of(x);
        if same.len() > 1
            && let (Some(before), Some(own)) = (before, own)
            && before.line != own.line
        {
            let message = format!(
                "Rp {} is on the record 3s of {} and this drug does not follow its own (the record 3 before it is Rp {} on line {}): which usage it takes is ambiguous",
                x.rp_no,
                shown(&same),
                before.rp_no,
                before.line
            );
            faults.push(field_err(origin, x.line, 4, 1, message));
        }
    }
    faults.into_iter().min_by_key(|e| match e {
        NsipsError::Field { line, .. } => *line,
        _ => 0,
    })
}

/// The comma-separated fields of one line, with checked accessors whose errors name the field.
struct Fields<'a> {
    file: &'a Path,
    line: usize,
    record: &'a str,
    values: Vec<&'a str>,
    /// Characters [`Fields::jis_text`] wrote as stand-ins.
    replaced: RefCell<Vec<Replacement>>,
}

impl<'a> Fields<'a> {
    fn split(file: &'a Path, line: usize, record: &'a str, text: &'a str) -> Self {
        let text = text.strip_suffix('\r').unwrap_or(text);
        Self { file, line, record, values: text.split(',').collect(), replaced: RefCell::default() }
    }

    fn names(&self) -> &'static [&'static str] {
        match self.record.parse::<usize>() {
            Ok(k @ 1..=8) => RECORD_FIELDS[k - 1],
            _ => &HEADER_FIELDS[1..],
        }
    }

    fn err(&self, i: usize, message: String) -> NsipsError {
        let name = if i == 0 && self.record == "header" {
            "version"
        } else {
            self.names().get(i - 1).copied().unwrap_or("?")
        };
        NsipsError::Field {
            file: self.file.to_owned(),
            line: self.line,
            record: self.record.to_owned(),
            field: i,
            name,
            message,
        }
    }

    /// Checks the number of fields after the record type.
    fn count(&self, want: usize) -> Result<(), NsipsError> {
        let have = self.values.len() - 1;
        if have != want {
            let what = if have < want { "truncated" } else { "too long" };
            return Err(line_err(
                self.file,
                self.line,
                format!(
                    "record {} is {what}: {have} fields after the record type, expected {want}",
                    self.record
                ),
            ));
        }
        Ok(())
    }

    fn text(&self, i: usize) -> String {
        self.values[i].to_owned()
    }

    /// Free text that goes into the SS-MIX2 message, in characters SS-MIX2's ISO-2022-JP (JIS X
    /// 0208) can hold: any other character is written as its stand-in (see [`crate::jis`]) and
    /// recorded with this line and field.
    fn jis_text(&self, i: usize) -> String {
        let (text, replaced) = crate::jis::to_jis(self.values[i]);
        let name = self.names().get(i - 1).copied().unwrap_or("?");
        self.replaced.borrow_mut().extend(replaced.into_iter().map(|(from, to)| Replacement {
            line: self.line,
            record: self.record.to_owned(),
            field: i,
            name,
            from,
            to,
        }));
        text
    }

    fn num(&self, i: usize) -> Result<u32, NsipsError> {
        let v = self.values[i];
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.err(i, format!("{v:?} is not a whole number")));
        }
        v.parse().map_err(|_| self.err(i, format!("{v:?} is too large")))
    }

    fn date(&self, i: usize) -> Result<String, NsipsError> {
        let v = self.values[i];
        if v.len() != 8 || ssmix2::CareDate::parse(v).is_err() {
            return Err(self.err(i, format!("{v:?} is not a date YYYYMMDD")));
        }
        Ok(v.to_owned())
    }

    /// ASCII letters and digits, `min..=max` long.
    fn code(&self, i: usize, min: usize, max: usize) -> Result<String, NsipsError> {
        let v = self.values[i];
        if v.len() < min || v.len() > max || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
            let len = if min == max { format!("{min}") } else { format!("{min} to {max}") };
            return Err(self.err(i, format!("{v:?} is not {len} ASCII letters or digits")));
        }
        Ok(v.to_owned())
    }

    fn digits(&self, i: usize, len: usize) -> Result<String, NsipsError> {
        let v = self.code(i, len, len)?;
        if !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.err(i, format!("{v:?} is not {len} digits")));
        }
        Ok(v)
    }
}

fn header(f: &Fields) -> Result<Header, NsipsError> {
    let version = f.values[0];
    if !(version.len() == 9 && version.starts_with("VER") && version[3..].bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(f.err(0, format!("{version:?} is not a header VERnnnnnn")));
    }
    f.count(HEADER_FIELDS.len() - 1)?;
    let sent_at = f.digits(1, 14)?;
    if ssmix2::Timestamp::parse(&format!("{sent_at}000")).is_err() {
        return Err(f.err(1, format!("{sent_at:?} is not a time YYYYMMDDHHMMSS")));
    }
    Ok(Header {
        version: version.to_owned(),
        sent_at,
        terminal: f.text(2),
        prefecture: f.digits(3, 2)?,
        fee_table: f.text(4),
        pharmacy_code: f.digits(5, 7)?,
        pharmacy_name: f.jis_text(6),
        postcode: f.jis_text(7),
        address: f.jis_text(8),
        phone: f.jis_text(9),
    })
}

fn patient(f: &Fields) -> Result<Patient, NsipsError> {
    let sex = match f.values[4] {
        "1" => Sex::Male,
        "2" => Sex::Female,
        v => return Err(f.err(4, format!("{v:?} is not 1 (male) or 2 (female)"))),
    };
    Ok(Patient {
        patient_no: f.code(1, 1, ssmix2::PatientId::MAX_LEN)?,
        name_kanji: f.jis_text(2),
        name_kana: f.jis_text(3),
        sex,
        birth_date: f.date(5)?,
        postcode: f.jis_text(6),
        address: f.jis_text(7),
        phone: f.jis_text(8),
        insurer_no: f.text(9),
    })
}

fn prescription(f: &Fields) -> Result<Prescription, NsipsError> {
    Ok(Prescription {
        line: f.line,
        prescription_no: f.code(1, 1, ssmix2::OrderNo::MAX_LEN)?,
        issued_on: f.date(2)?,
        institution_code: f.digits(3, 10)?,
        institution_name: f.jis_text(4),
        department: f.jis_text(5),
        doctor: f.jis_text(6),
        dispensed_on: f.date(7)?,
    })
}

fn rp(f: &Fields) -> Result<Rp, NsipsError> {
    let rp_no = f.num(1)?;
    let usage_code = f.code(2, 16, 16)?;
    let days = f.num(4)?;
    let times_per_day = f.num(5)?;
    if days == 0 {
        return Err(f.err(4, "0 days".to_owned()));
    }
    if times_per_day == 0 {
        return Err(f.err(5, "0 times per day".to_owned()));
    }
    Ok(Rp { line: f.line, rp_no, usage_code, usage: f.jis_text(3), days, times_per_day })
}

fn drug(f: &Fields) -> Result<Drug, NsipsError> {
    let amount = f.values[7];
    let digits = amount.bytes().filter(u8::is_ascii_digit).count();
    let points = amount.bytes().filter(|&b| b == b'.').count();
    if digits == 0 || points > 1 || digits + points != amount.len() {
        return Err(f.err(7, format!("{amount:?} is not a decimal number")));
    }
    // Each code may be empty (generic-name prescriptions and in-house preparations have no HOT
    // code, some no YJ code); one written must be well-formed. The converter identifies the drug
    // by the first present of HOT, YJ and receipt code, else by its name.
    let optional =
        |v: Result<String, NsipsError>, i: usize| if f.values[i].is_empty() { Ok(String::new()) } else { v };
    let drug = Drug {
        line: f.line,
        rp_no: f.num(1)?,
        seq: f.num(2)?,
        yj_code: optional(f.code(3, 12, 12), 3)?,
        receipt_code: optional(f.digits(4, 9), 4)?,
        hot_code: optional(f.digits(5, 9), 5)?,
        drug_name: f.jis_text(6),
        amount_per_day: amount.to_owned(),
        unit: f.jis_text(8),
    };
    if [&drug.yj_code, &drug.receipt_code, &drug.hot_code, &drug.drug_name]
        .iter()
        .all(|v| v.trim().is_empty())
    {
        return Err(
            f.err(6, "no drug name and no YJ, receipt or HOT code: nothing identifies the drug".to_owned())
        );
    }
    Ok(drug)
}
