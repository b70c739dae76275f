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
pub fn parse(bytes: &[u8], origin: &Path) -> Result<NsipsFile, NsipsError> {
    let (text, encoding) = decode(bytes, origin)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut lines = text.split('\n').enumerate().map(|(i, l)| (i + 1, l));
    let (_, first) = lines.next().unwrap_or((1, ""));
    let crlf = first.ends_with('\r');
    let header_fields = Fields::split(origin, 1, "header", first);
    let header = header(&header_fields)?;
    let mut replaced = header_fields.replaced.into_inner();
    let mut dispensings = Vec::new();
    let mut open: Option<Open> = None;
    let mut blank_at: Option<usize> = None;
    for (no, raw) in lines {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            blank_at.get_or_insert(no);
            continue;
        }
        if let Some(b) = blank_at {
            return Err(line_err(origin, b, "empty line inside the file".to_owned()));
        }
        let kind = line.split(',').next().unwrap_or("");
        let Some(k) = kind.parse::<usize>().ok().filter(|k| (1..=8).contains(k)) else {
            return Err(line_err(origin, no, format!("unknown record type {kind:?} (expected 1 to 8)")));
        };
        let f = Fields::split(origin, no, kind, line);
        f.count(RECORD_FIELDS[k - 1].len())?;
        if k == 1 {
            if let Some(o) = open.take() {
                dispensings.push(o.close(origin)?);
            }
            open = Some(Open::new(no, patient(&f)?));
            replaced.append(&mut f.replaced.borrow_mut());
            continue;
        }
        let Some(o) = open.as_mut() else {
            return Err(line_err(origin, no, format!("record {k} before any record 1 (patient)")));
        };
        match k {
            2 if o.prescription.is_some() => {
                return Err(line_err(origin, no, "a second record 2 in one dispensing".to_owned()));
            }
            2 => o.prescription = Some(prescription(&f)?),
            3 => o.d.rps.push(rp(&f)?),
            4 => {
                let d = drug(&f)?;
                if !o.d.rps.iter().any(|r| r.rp_no == d.rp_no) {
                    return Err(f.err(1, format!("Rp {} has no record 3 before it", d.rp_no)));
                }
                o.d.drugs.push(d);
            }
            5 => o.d.records.push(DispensingRecord {
                dispensing_no: f.code(1, 1, 20)?,
                dispensed_on: f.date(2)?,
                pharmacist: f.text(3),
                points: f.num(4)?,
            }),
            6 => o.d.details.push(DispensingDetail {
                dispensing_no: f.code(1, 1, 20)?,
                rp_no: f.num(2)?,
                points: f.num(3)?,
            }),
            7 => o.d.fees.push(Fee { fee_code: f.code(1, 1, 20)?, fee_name: f.text(2), points: f.num(3)? }),
            _ => o.d.notes.push(Note { noted_on: f.date(1)?, note: f.text(2) }),
        }
        replaced.append(&mut f.replaced.borrow_mut());
    }
    if let Some(o) = open.take() {
        dispensings.push(o.close(origin)?);
    }
    Ok(NsipsFile { origin: origin.to_owned(), encoding, crlf, header, dispensings, replaced })
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

/// A dispensing whose records are still being read.
struct Open {
    prescription: Option<Prescription>,
    d: Dispensing,
}

impl Open {
    fn new(line: usize, patient: Patient) -> Self {
        let prescription = Prescription {
            prescription_no: String::new(),
            issued_on: String::new(),
            institution_code: String::new(),
            institution_name: String::new(),
            department: String::new(),
            doctor: String::new(),
            dispensed_on: String::new(),
        };
        Self {
            prescription: None,
            d: Dispensing {
                line,
                patient,
                prescription,
                rps: Vec::new(),
                drugs: Vec::new(),
                records: Vec::new(),
                details: Vec::new(),
                fees: Vec::new(),
                notes: Vec::new(),
            },
        }
    }

    fn close(self, origin: &Path) -> Result<Dispensing, NsipsError> {
        let line = self.d.line;
        let prescription = self.prescription.ok_or_else(|| {
            line_err(origin, line, "the dispensing has no record 2 (prescription)".to_owned())
        })?;
        Ok(Dispensing { prescription, ..self.d })
    }
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
    Ok(Drug {
        line: f.line,
        rp_no: f.num(1)?,
        seq: f.num(2)?,
        yj_code: f.code(3, 12, 12)?,
        receipt_code: f.digits(4, 9)?,
        hot_code: f.digits(5, 9)?,
        drug_name: f.jis_text(6),
        amount_per_day: amount.to_owned(),
        unit: f.jis_text(8),
    })
}
