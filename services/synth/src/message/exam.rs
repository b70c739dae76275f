//! Radiology, endoscopy and physiology: orders (OMG-01/02/03 OMG^O19, care date ORC-9), performed
//! procedures (OMG-11/12 OMI^Z23, care date OBR-7) and ECG results (OMG-13 ORU^R01, OBR-7).

use super::builder::Seg;
use super::{Ctx, dept_name, order_control, pid, pv1};
use crate::calendar::Moment;
use crate::catalog::{PROCEDURES, ProcedureKind};
use crate::event::{Body, Encounter, Event};

/// ORC as the samples write it for examinations (ORC-8 parent for child orders).
fn exam_orc(ctx: &Ctx, enc: &Encounter, control: &str, no: &str, parent: Option<&str>, at: Moment) -> Seg {
    let doctor = ctx.facility.doctors[enc.doctor % ctx.facility.doctors.len()].xcn();
    let s = Seg::new("ORC")
        .f(1, control)
        .f(2, no)
        .f(9, at.secs14())
        .f(10, doctor.clone())
        .f(12, doctor)
        .f(13, format!("{}^^^^^C", enc.dept))
        .f(17, format!("{}^{}^99XY1", enc.dept, dept_name(enc.dept)))
        .f(29, if enc.inpatient { "I" } else { "O" });
    match parent {
        Some(p) => s.f(8, p),
        None => s,
    }
}

fn tq1() -> Seg {
    Seg::new("TQ1").f(1, "1").f(9, "R^^HL70485")
}

fn child_no(order_no: &str) -> String {
    // The samples number child orders by bumping the last digit of the parent's number.
    let (head, last) = order_no.split_at(order_no.len() - 1);
    let d = last.parse::<u32>().unwrap_or(0);
    format!("{head}{}", (d + 1) % 10)
}

pub(super) fn render(ctx: &Ctx, e: &Event, v: usize, control: &str) -> Vec<Seg> {
    let version = &e.versions[v];
    let sent = version.sent;
    let on = sent.date;
    let no = e.order_no.as_deref().unwrap_or(ssmix2::OrderNo::NONE);
    let enc = &e.encounter;
    let doctor = ctx.facility.doctors[enc.doctor % ctx.facility.doctors.len()].xcn();
    match &e.body {
        Body::ExamOrder { at, procedure, weight_kg } => {
            let p = &PROCEDURES[*procedure];
            let ctl = order_control(version.action);
            let mut segs =
                vec![super::msh(ctx, "OMG^O19^OMG_O19", sent, control), pid(ctx, on, true), pv1(ctx, enc)];
            segs.push(exam_orc(ctx, enc, ctl, no, None, *at));
            segs.push(tq1());
            let mut obr = Seg::new("OBR")
                .f(2, no)
                .f(4, format!("{}^{}^{}", p.code, p.name, p.system))
                .f(16, doctor.clone());
            if p.kind == ProcedureKind::Physiology {
                obr = obr.f(1, "1");
            }
            segs.push(obr);
            match p.kind {
                ProcedureKind::Physiology => segs.push(
                    Seg::new("OBX")
                        .f(1, "1")
                        .f(2, "TX")
                        .f(3, "9A100&IMP^心電図所見^JC10")
                        .f(5, "動悸の精査")
                        .f(11, "F"),
                ),
                _ => segs.push(
                    Seg::new("OBX")
                        .f(1, "1")
                        .f(2, "NM")
                        .f(3, "01-02^体重^JSHR001")
                        .f(5, weight_kg.to_string())
                        .f(6, "kg^kg^ISO+")
                        .f(11, "F"),
                ),
            }
            if p.kind != ProcedureKind::Physiology {
                let child = child_no(no);
                segs.push(exam_orc(ctx, enc, "CH", &child, Some(no), *at));
                segs.push(tq1());
                segs.push(
                    Seg::new("OBR")
                        .f(2, child)
                        .f(4, format!("{}^{}^{}", p.detail.0, p.detail.1, p.system))
                        .f(16, doctor)
                        .f(29, no),
                );
            }
            segs
        }
        Body::ExamPerformed { at, procedure, accession } => {
            let p = &PROCEDURES[*procedure];
            let mut segs =
                vec![super::msh(ctx, "OMI^Z23^OMI_Z23", sent, control), pid(ctx, on, true), pv1(ctx, enc)];
            let uid = format!("1.2.392.200036.9116.2.6.1.48.{}.{}", &ctx.facility.id[3..], accession);
            let ipc = Seg::new("IPC")
                .f(1, accession.clone())
                .f(2, format!("P{accession}"))
                .f(3, uid)
                .f(5, format!("{}^^DCM", p.modality));
            let obr = |no: &str, code: (&str, &str), parent: Option<&str>| {
                let s = Seg::new("OBR")
                    .f(2, no)
                    .f(4, format!("{}^{}^{}", code.0, code.1, p.system))
                    .f(7, at.secs14())
                    .f(16, doctor.clone())
                    .f(22, at.plus_ms(1_800_000).secs14())
                    .f(25, "F");
                match parent {
                    Some(pn) => s.f(29, pn),
                    None => s,
                }
            };
            segs.push(exam_orc(ctx, enc, "NW", no, None, *at));
            segs.push(tq1());
            segs.push(obr(no, (p.code, p.name), None));
            segs.push(ipc.clone());
            let child = child_no(no);
            segs.push(exam_orc(ctx, enc, "CH", &child, Some(no), *at));
            segs.push(tq1());
            segs.push(obr(&child, p.detail, Some(no)));
            segs.push(
                Seg::new("ZE1")
                    .f(1, "1")
                    .f(2, "RS")
                    .f(3, format!("{}^{}^{}", p.detail.0, p.detail.1, p.system)),
            );
            if p.kind == ProcedureKind::Endoscopy {
                let nurse = ctx.facility.nurses.first().map(|n| n.xcn()).unwrap_or_default();
                let obx = [
                    ("XCN", "DR-02.EM-01^正従業員の実施医師^JSHR", doctor.clone()),
                    ("XCN", "NS-01.EM-01^正従業員の看護師^JSHR", nurse),
                    ("TS", "TM-P1^開始時間^JSHR", at.secs14()),
                    ("TS", "TM-P2^終了時間^JSHR", at.plus_ms(900_000).secs14()),
                    ("TX", "MS3-34^臨床病名^JSHR", "慢性胃炎".to_owned()),
                ];
                for (i, (ty, code, val)) in obx.into_iter().enumerate() {
                    segs.push(
                        Seg::new("OBX").f(1, (i + 1).to_string()).f(2, ty).f(3, code).f(5, val).f(11, "F"),
                    );
                }
            }
            segs.push(ipc);
            segs
        }
        Body::EcgResult { at, heart_rate, pq, qrs, qt, axis, finding } => {
            let qtc = f64::from(*qt) / (60.0 / f64::from(*heart_rate)).sqrt();
            let mut segs =
                vec![super::msh(ctx, "ORU^R01^ORU_R01", sent, control), pid(ctx, on, false), pv1(ctx, enc)];
            segs.push(
                Seg::new("OBR")
                    .f(1, "1")
                    .f(2, no)
                    .f(4, "9A110^標準１２誘導心電図^JC10")
                    .f(7, at.secs14())
                    .f(16, doctor)
                    .f(22, at.plus_ms(600_000).secs14())
                    .f(25, "F"),
            );
            let rows: [(&str, &str, String, &str); 6] = [
                ("TX", "9A100&IMP^心電図所見^JC10", (*finding).to_owned(), ""),
                ("NM", "32769^心拍数^99MFR", heart_rate.to_string(), "bpm"),
                ("NM", "32770^PQ 時間^99MFR", pq.to_string(), "msec"),
                ("NM", "58240^QRS 幅^99MFR", qrs.to_string(), "msec"),
                ("NM", "59136^QTc 時間&Bazett^99MFR", format!("{qtc:.0}"), "msec"),
                ("NM", "32774^QRS 軸^99MFR", axis.to_string(), "degree"),
            ];
            for (i, (ty, code, val, unit)) in rows.into_iter().enumerate() {
                segs.push(
                    Seg::new("OBX")
                        .f(1, (i + 1).to_string())
                        .f(2, ty)
                        .f(3, code)
                        .f(4, if i == 0 { "1" } else { "2" })
                        .f(5, val)
                        .f(6, unit)
                        .f(11, "F"),
                );
            }
            segs
        }
        other => unreachable!("not an exam body: {other:?}"),
    }
}
