//! An OBX-5 value rendered by its data type (OBX-2), every repetition kept (joined by a line
//! break): a structured number with its comparator, a coded value by its text with the code kept.

use ssmix2::hl7::{Delimiters, SegmentView, unescape};

use super::parts::{reps, sub, whole};

/// What the index keeps of one OBX-5.
#[derive(Debug, Default, PartialEq)]
pub struct Value {
    /// As a reader should see it: `<0.005`, `1:128`, `重度`, `セルシン5mg 1 管`.
    pub text: String,
    /// Set only for one exact number (NM, or SN without comparator or range), so no trend or
    /// range query reads `<0.005` as 0.005.
    pub num: Option<f64>,
    /// The code of a coded value (CWE/CE/CNE/CF/ZRD) or the ID of a person (XCN), one per
    /// repetition; empty otherwise.
    pub code: String,
}

/// OBX-5 of `seg`, whose OBX-2 is `value_type`.
pub fn value(seg: &SegmentView, value_type: &str, d: &Delimiters) -> Value {
    let reps = reps(seg, 5, d);
    let c = |rep: &str, n: usize| sub(rep, d, n, 1);
    let mut texts = Vec::with_capacity(reps.len());
    let mut codes = Vec::new();
    let mut num = None;
    for rep in &reps {
        let text = match value_type {
            // SN: comparator ^ num1 ^ separator/suffix ^ num2.
            "SN" => {
                let (cmp, n1, sep, n2) = (c(rep, 1), c(rep, 2), c(rep, 3), c(rep, 4));
                if reps.len() == 1 && matches!(cmp.as_str(), "" | "=") && sep.is_empty() && n2.is_empty() {
                    num = parse(&n1);
                }
                let cmp = if cmp == "=" { String::new() } else { cmp };
                format!("{cmp}{n1}{sep}{n2}")
            }
            // Coded: the text (or the original text, CWE-9), the code beside it.
            "CWE" | "CE" | "CNE" | "CF" => {
                codes.push(c(rep, 1));
                first_nonempty([c(rep, 2), c(rep, 9), c(rep, 1)])
            }
            // SS-MIX2's drug value: code ^ name ^ system ^ amount ^ unit (a CE in subcomponents).
            "ZRD" => {
                codes.push(c(rep, 1));
                let unit = first_nonempty([sub(rep, d, 5, 2), sub(rep, d, 5, 1)]);
                let name = first_nonempty([c(rep, 2), c(rep, 1)]);
                [name, c(rep, 4), unit].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
            }
            // A person: ID ^ family ^ given; the name shown, the ID kept.
            "XCN" | "XPN" => {
                let off = usize::from(value_type == "XCN");
                if off == 1 {
                    codes.push(c(rep, 1));
                }
                let name = [c(rep, 1 + off), c(rep, 2 + off)]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                if name.is_empty() { c(rep, 1) } else { name }
            }
            "NM" => {
                let v = whole(rep, d, 1);
                if reps.len() == 1 {
                    num = parse(&v);
                }
                v
            }
            // Text: the whole repetition, so a stray component separator loses nothing.
            "ST" | "TX" | "FT" => unescape(rep, d).into_owned(),
            _ => whole(rep, d, 1),
        };
        texts.push(text);
    }
    Value { text: texts.join("\n"), num, code: codes.join("\n") }
}

fn parse(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

fn first_nonempty<const N: usize>(v: [String; N]) -> String {
    v.into_iter().find(|s| !s.is_empty()).unwrap_or_default()
}
