use ssmix2::hl7::{Delimiters, Message, escape};
use ssmix2::{
    CareDate, ConditionFlag, DataType, Department, FileName, OrderNo, PatientId, StoragePath, Timestamp,
};

use crate::codes::{LOCAL_RECEIPT_CODES, LOCAL_UNITS, MERIT9, UnitCode};
use crate::parse::RECORD_FIELDS;
use crate::record::{Dispensing, Drug, HeldBack, NsipsFile, Rp, Sex};
use crate::warning::{Unmapped, Warning};
use crate::{Conversion, NsipsError};

/// MSH-18, MSH-20 and MSH-21 as SS-MIX2 requires them (the same as the synthetic generator's).
const CHARSET: &str = "~ISO IR87";
const CHARSET_HANDLING: &str = "ISO 2022-1994";
const PROFILE: &str = "SS-MIX2_1.20^SS-MIX2^1.2.392.200250.2.1.100.1.2.120^ISO";

/// Converts every dispensing of `file` into one SS-MIX2 prescription message (OMP-01, RDE^O11), to be
/// stored under the standardized-storage root of the pharmacy `pharmacy_facility_id`.
///
/// The pharmacy is the facility (MSH-4); the prescribing institution and doctor go in ORC-21 and
/// ORC-12. The care date (file name and ORC-9) is the dispensing date; the order number is the
/// prescription number; the file timestamp is the header's send time. Each Rp becomes ORC, RXE
/// (HOT9 and YJ code, dose per intake, total, daily dose, unit), TQ1 (JAMI usage code, days) and
/// RXR (route from the usage code, [`crate::codes::ROUTES`]). A dispensing without any drug
/// (record 4), only fees, is no prescription and yields no message.
///
/// A usage code with no known route or a drug without a unit is converted with that code empty
/// and reported in [`Conversion::replaced`] (with the file's stand-in characters), never refused:
/// the agent would quarantine the whole export, every other patient's dispensings with it.
///
/// `pharmacy_facility_id` must be the 10-digit institution code whose last seven digits are the
/// header's pharmacy code, so a file cannot be filed under another pharmacy by mistake.
pub fn to_ssmix2(file: &NsipsFile, pharmacy_facility_id: &str) -> Result<Conversion, NsipsError> {
    let whole = |message: String| NsipsError::Convert { file: file.origin.clone(), line: 1, message };
    if pharmacy_facility_id.len() != 10 || !pharmacy_facility_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(whole(format!(
            "facility ID {pharmacy_facility_id:?} is not a 10-digit institution code"
        )));
    }
    if pharmacy_facility_id[3..] != file.header.pharmacy_code {
        return Err(whole(format!(
            "facility ID {pharmacy_facility_id} does not end in the header's pharmacy code {}",
            file.header.pharmacy_code
        )));
    }
    let mut out: Vec<(StoragePath, Vec<u8>)> = Vec::with_capacity(file.dispensings.len());
    let mut warnings: Vec<Warning> = file.replaced.iter().cloned().map(Warning::from).collect();
    let mut held_back = file.held_back.clone();
    let raw = std::cell::OnceCell::new();
    // Per patient, day and prescription number: the message text (under the plain number) and
    // line of each dispensing converted so far.
    type Key<'a> = (&'a str, &'a str, &'a str);
    let mut seen: std::collections::HashMap<Key, Vec<(String, usize)>> = std::collections::HashMap::new();
    for d in file.dispensings.iter().filter(|d| !d.drugs.is_empty()) {
        let rx = &d.prescription;
        let key = (d.patient.patient_no.as_str(), rx.dispensed_on.as_str(), rx.prescription_no.as_str());
        let mut mine = Vec::new();
        let converted = (|| {
            let err =
                |message: String| NsipsError::Convert { file: file.origin.clone(), line: d.line, message };
            let mut plain_warnings = Vec::new();
            let plain = message_text(file, d, &rx.prescription_no, pharmacy_facility_id, &mut plain_warnings)
                .map_err(err)?;
            let earlier = seen.get(&key).map(Vec::as_slice).unwrap_or_default();
            if let Some((_, first)) = earlier.iter().find(|(t, _)| *t == plain) {
                let message = format!(
                    "the same dispensing as on line {first} (same patient, day, prescription and content): converted once"
                );
                mine.push(Warning::Repeated(note(rx.line, 2, 1, &rx.prescription_no, &message)));
                return Ok(None);
            }
            let order_no = match earlier {
                [] => rx.prescription_no.clone(),
                [(_, first), ..] => {
                    let order_no = format!("{}D{}", rx.prescription_no, earlier.len() + 1);
                    let message = format!(
                        "also the prescription number of the dispensing on line {first} for this patient and day, with other content: converted under order number {order_no}"
                    );
                    if order_no.len() > OrderNo::MAX_LEN {
                        return Err(NsipsError::Field {
                            file: file.origin.clone(),
                            line: rx.line,
                            record: "2".into(),
                            field: 1,
                            name: RECORD_FIELDS[1][0],
                            message: format!(
                                "{:?} is also the prescription number of the dispensing on line {first} for this patient and day, with other content, and {order_no:?} is longer than an SS-MIX2 order number ({} characters)",
                                rx.prescription_no,
                                OrderNo::MAX_LEN
                            ),
                        });
                    }
                    mine.push(Warning::Renumbered(note(rx.line, 2, 1, &rx.prescription_no, &message)));
                    order_no
                }
            };
            let path = storage_path(file, d, &order_no).map_err(|e| err(e.to_string()))?;
            if out.iter().any(|(p, _)| p.name.key() == path.name.key()) {
                return Err(err(format!(
                    "order number {order_no} is already used for this patient and day by another dispensing of the file"
                )));
            }
            let text = if order_no == rx.prescription_no {
                mine.append(&mut plain_warnings);
                plain.clone()
            } else {
                message_text(file, d, &order_no, pharmacy_facility_id, &mut mine).map_err(err)?
            };
            let bytes = Message::parse(&text).and_then(|m| m.encode()).map_err(|e| err(e.to_string()))?;
            Ok(Some((plain, path, bytes)))
        })();
        match converted {
            Ok(Some((plain, path, bytes))) => {
                seen.entry(key).or_default().push((plain, d.line));
                out.push((path, bytes));
                warnings.append(&mut mine);
            }
            Ok(None) => warnings.append(&mut mine),
            Err(error) => {
                let lines = d.line..=d.last_line;
                let raw = raw.get_or_init(|| crate::parse::raw_lines(&file.source));
                let export = crate::parse::export_of(raw, &lines);
                held_back.push(HeldBack { lines, error, export });
            }
        }
    }
    // In file order, each also as a warning for callers that only log those.
    held_back.sort_by_key(|h| *h.lines.start());
    warnings.extend(held_back.iter().map(Warning::from));
    Ok(Conversion {
        dispensings: file.dispensings.len() + file.held_back.len(),
        files: out,
        replaced: warnings,
        held_back,
    })
}

fn storage_path(file: &NsipsFile, d: &Dispensing, order_no: &str) -> Result<StoragePath, ssmix2::NameError> {
    Ok(StoragePath::of(FileName {
        patient: PatientId::new(&d.patient.patient_no)?,
        care_date: CareDate::parse(&d.prescription.dispensed_on)?,
        data_type: DataType::Omp01,
        order_no: OrderNo::new(order_no)?,
        timestamp: Timestamp::parse(&format!("{}000", file.header.sent_at))?,
        department: Department::none(),
        flag: ConditionFlag::Current,
    }))
}

/// HL7-escapes free text taken from the NSIPS file.
fn esc(s: &str) -> String {
    escape(s, &Delimiters::default()).into_owned()
}

/// `family　given` as XPN components `family^given`: split at the first ideographic space, else
/// at the first half-width space (half-width kana names from receipt systems, `ｲﾄｳ ｻｶｴ`); spaces
/// around either part are dropped.
fn xpn(name: &str) -> String {
    let name = name.trim_matches([' ', '　']);
    match name.split_once('　').or_else(|| name.split_once(' ')) {
        Some((family, given)) => {
            format!(
                "{}^{}",
                esc(family.trim_end_matches([' ', '　'])),
                esc(given.trim_start_matches([' ', '　']))
            )
        }
        None => esc(name),
    }
}

/// `amount × mul ÷ div` in decimal, from the amount as written (digits with at most one point,
/// checked at parse time): exact when the quotient ends within six decimals (0.125 ÷ 2 = 0.0625),
/// else rounded half up to three (1 ÷ 3 = 0.333); no trailing zeros. Floating point gave
/// 0.062 for 0.0625, so RXE-3 and RXE-10 disagreed with RXE-19.
fn decimal(amount: &str, mul: u32, div: u32) -> String {
    let (int, frac) = amount.split_once('.').unwrap_or((amount, ""));
    let digits: u128 = format!("{int}{frac}").parse().unwrap_or(0);
    let (num, den) = (digits * u128::from(mul), 10u128.pow(frac.len() as u32) * u128::from(div.max(1)));
    let mut places = (0..=6).find(|p| (num * 10u128.pow(*p)) % den == 0).unwrap_or(3);
    let scaled = if (num * 10u128.pow(places)) % den == 0 {
        num * 10u128.pow(places) / den
    } else {
        places = 3;
        (num * 1000 * 2 + den) / (2 * den)
    };
    let unit = 10u128.pow(places);
    let s = if places == 0 {
        scaled.to_string()
    } else {
        format!("{}.{:0width$}", scaled / unit, scaled % unit, width = places as usize)
    };
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s }
}

/// A unit as CWE components `code^text^system`: the MERIT-9 code, else the unit as written under
/// [`LOCAL_UNITS`] (the store reads component 1; a bare `^mg^MR9P` lost the unit), else, with no
/// unit written, only the text `不明` (RXE-5 is required) and a warning.
fn unit(drug: &Drug, warnings: &mut Vec<Warning>) -> [String; 3] {
    let text = esc(drug.unit.trim());
    match crate::codes::unit_code(&drug.unit) {
        UnitCode::Merit9(code) => [code.to_owned(), text, MERIT9.to_owned()],
        UnitCode::Local => [text.clone(), text, LOCAL_UNITS.to_owned()],
        UnitCode::Missing => {
            warnings.push(unmapped(drug.line, 4, 8, &drug.unit, "no unit: the dose is sent without one"));
            [String::new(), "不明".to_owned(), String::new()]
        }
    }
}

/// RXR-1 from the usage code ([`crate::codes::ROUTES`]; the NSIPS layout carries no route). With
/// no known route, only the text `不明`: RXR-1 is required, and an empty code reads as unknown.
fn route(rp: &Rp, warned: &mut Vec<usize>, warnings: &mut Vec<Warning>) -> String {
    if let Some((code, name)) = crate::codes::route(&rp.usage_code) {
        return format!("{code}^{name}^HL70162");
    }
    // Once per Rp, not per drug of it.
    if !warned.contains(&rp.line) {
        warned.push(rp.line);
        let message =
            "no route known for this usage code: converted with the route unknown (RXR-1 without a code)";
        warnings.push(unmapped(rp.line, 3, 2, &rp.usage_code, message));
    }
    "^不明".to_owned()
}

fn unmapped(line: usize, record: usize, field: usize, value: &str, message: &str) -> Warning {
    Warning::Unmapped(note(line, record, field, value, message))
}

fn note(line: usize, record: usize, field: usize, value: &str, message: &str) -> Unmapped {
    Unmapped {
        line,
        record: record.to_string(),
        field,
        name: RECORD_FIELDS[record - 1][field - 1],
        value: value.to_owned(),
        message: message.to_owned(),
    }
}

fn message_text(
    file: &NsipsFile,
    d: &Dispensing,
    order_no: &str,
    facility: &str,
    warnings: &mut Vec<Warning>,
) -> Result<String, String> {
    let h = &file.header;
    let p = &d.patient;
    let rx = &d.prescription;
    let sex = match p.sex {
        Sex::Male => "M",
        Sex::Female => "F",
    };
    let mut segs = vec![
        format!(
            "MSH|^~\\&|NSIPS|{facility}|SSMIX2GW|KIZUNA|{}||RDE^O11^RDE_O11|{order_no}|P|2.5||||||{CHARSET}||{CHARSET_HANDLING}|{PROFILE}",
            h.sent_at
        ),
        format!(
            "PID|0001||{}^^^^PI||{}^^^^^L^I~{}^^^^^L^P||{}|{sex}|||^^^^{}^JPN^H^{}||^PRN^PH^^^^^^^^^{}",
            p.patient_no,
            xpn(&p.name_kanji),
            xpn(&p.name_kana),
            p.birth_date,
            esc(&p.postcode),
            esc(&p.address),
            esc(&p.phone)
        ),
        "PV1|0001|O".to_owned(),
    ];
    let (doctor, institution) = (xpn(&rx.doctor), esc(&rx.institution_name));
    let mut warned = Vec::new();
    for (i, drug) in d.drugs.iter().enumerate() {
        // The record 3 it follows (not the first with its number: Rp groups numbered the same
        // each keep their own usage; the parser holds back a dispensing where that is ambiguous).
        let rp = d.rp_of(drug).ok_or_else(|| {
            format!("the drug on line {} names Rp {} which has no record 3 before it", drug.line, drug.rp_no)
        })?;
        // Built by field number: counting `|` in one format string put the doctor in ORC-11 and
        // the institution in ORC-18.
        let mut orc = vec![String::new(); 30];
        orc[0] = "ORC".into();
        orc[1] = "NW".into();
        orc[2] = order_no.to_string();
        orc[4] = (i + 1).to_string();
        orc[9] = format!("{}000000", rx.dispensed_on);
        orc[12] = format!("^{doctor}");
        orc[17] = format!("^{}^99XY1", esc(&rx.department));
        orc[21] = format!("{institution}^^^^^^^^^{}", rx.institution_code);
        orc[22] = format!("^^^^{}^JPN^^{}", esc(&h.postcode), esc(&h.address));
        orc[23] = format!("^^^^^^^^^^^{}", esc(&h.phone));
        orc[29] = "O^外来患者オーダ^HL70482".into();
        segs.push(orc.join("|"));
        segs.push(rxe(drug, rp, order_no, i, warnings));
        segs.push(format!(
            "TQ1|1||{}&{}&JAMISDP01|||{}^d|{}0000",
            rp.usage_code,
            esc(&rp.usage),
            rp.days,
            rx.dispensed_on
        ));
        segs.push(format!("RXR|{}", route(rp, &mut warned, warnings)));
    }
    let mut text = segs.join("\r");
    text.push('\r');
    Ok(text)
}

/// RXE-2 (CWE): the first two present of HOT9, YJ and receipt code ([`LOCAL_RECEIPT_CODES`]) as
/// identifier and alternate, both with the name; with none, the name alone. A drug without a HOT
/// code is reported (the store and most readers key drugs on HOT9).
fn give_code(drug: &Drug, warnings: &mut Vec<Warning>) -> String {
    let name = esc(&drug.drug_name);
    let codes: Vec<(&str, &str)> =
        [(&drug.hot_code, "HOT9"), (&drug.yj_code, "YJ"), (&drug.receipt_code, LOCAL_RECEIPT_CODES)]
            .into_iter()
            .filter(|(c, _)| !c.is_empty())
            .map(|(c, s)| (c.as_str(), s))
            .collect();
    if drug.hot_code.is_empty() {
        let message = match codes.first() {
            Some((_, "YJ")) => {
                "no HOT code: the drug is identified by its YJ code (RXE-2.1, system YJ)".to_owned()
            }
            Some(_) => format!(
                "no HOT or YJ code: the drug is identified by its receipt code (RXE-2.1, local system {LOCAL_RECEIPT_CODES})"
            ),
            None => {
                "no HOT, YJ or receipt code: the drug is identified by its name only (RXE-2.2)".to_owned()
            }
        };
        warnings.push(unmapped(drug.line, 4, 5, &drug.hot_code, &message));
    }
    match codes.as_slice() {
        [] => format!("^{name}"),
        [(c, s)] => format!("{c}^{name}^{s}"),
        [(c, s), (c2, s2), ..] => format!("{c}^{name}^{s}^{c2}^{name}^{s2}"),
    }
}

fn rxe(drug: &Drug, rp: &Rp, order_no: &str, i: usize, warnings: &mut Vec<Warning>) -> String {
    let give = give_code(drug, warnings);
    let [code, text, system] = unit(drug, warnings);
    let cwe = format!("{code}^{text}^{system}");
    // RXE-5 give units and RXE-11 dispense units (CWE), RXE-19 daily dose (CQ: units as subcomponents).
    format!(
        "RXE||{give}|{}||{cwe}|||||{}|{cwe}||||{order_no}{:02}||||{}^{code}&{text}&{system}||OHP^外来処方^MR9P~OHO^院外処方^MR9P",
        decimal(&drug.amount_per_day, 1, rp.times_per_day),
        decimal(&drug.amount_per_day, rp.days, 1),
        i + 1,
        drug.amount_per_day,
    )
}

#[cfg(test)]
mod tests {
    use super::decimal;

    #[test]
    fn doses_are_exact_decimals_when_they_end() {
        assert_eq!(decimal("0.125", 1, 2), "0.0625");
        assert_eq!(decimal("3", 1, 3), "1");
        assert_eq!(decimal("1", 1, 3), "0.333");
        assert_eq!(decimal("2", 1, 3), "0.667");
        assert_eq!(decimal("1.5", 14, 1), "21");
        assert_eq!(decimal("0.125", 7, 1), "0.875");
        assert_eq!(decimal("10", 1, 4), "2.5");
        assert_eq!(decimal("0", 1, 3), "0");
    }
}
