//! Data with no care date: patient information (ADT-00), allergies (ADT-61) and the problem list
//! (PPR-01), stored under the `-` date folder.

use super::builder::Seg;
use super::{Ctx, dept_name, evn, msh, pid, pv1};
use crate::calendar::ymd;
use crate::catalog::{ALLERGENS, CONDITIONS};
use crate::event::{Body, Event};

/// Health insurance as IN1 carries it: plan (JHSD0001), insurer number.
fn insurance(ctx: &Ctx, age: i16) -> (&'static str, &'static str, String) {
    let seed: u32 = ctx.patient_id.bytes().map(u32::from).sum();
    if age >= 75 {
        ("39", "後期高齢者医療", format!("3904{:04}", 10 + seed % 40))
    } else if seed.is_multiple_of(3) {
        ("67", "国民健康保険", format!("04{:04}", 100 + seed % 300))
    } else if seed % 3 == 1 {
        ("01", "全国健康保険協会管掌健康保険", "01040016".to_owned())
    } else {
        ("06", "組合管掌健康保険", format!("0604{:04}", 1000 + seed % 2000))
    }
}

pub(super) fn render(ctx: &Ctx, e: &Event, v: usize, control: &str) -> Vec<Seg> {
    let version = &e.versions[v];
    let sent = version.sent;
    let on = sent.date;
    match &e.body {
        Body::PatientInfo { height_mm, weight_hg, blood } => {
            let r = ctx.recorded;
            let age = on.year() - r.birth.year();
            let (plan, plan_name, insurer) = insurance(ctx, age);
            let p = pid(ctx, on, true).f(33, sent.secs14());
            let mut segs = vec![msh(ctx, "ADT^A08^ADT_A01", sent, control), evn(sent, None), p];
            let (postcode, address) = r.address_on(on);
            let kin = if age >= 70 {
                ("CHD", "子")
            } else if age < 18 {
                ("PAR", "親")
            } else {
                ("SPO", "配偶者")
            };
            let mut nk1 = Seg::new("NK1")
                .f(1, "1")
                .f(2, format!("{}^^^^^^L^I", r.family_kanji))
                .f(3, format!("{}^{}^HL70063", kin.0, kin.1))
                .f(4, format!("^^^^{postcode}^JPN^H^{address}"));
            if let Some(phone) = &r.phone {
                nk1 = nk1.f(5, format!("^PRN^PH^^^^^^^^^{phone}"));
            }
            segs.push(nk1);
            segs.push(pv1(ctx, &e.encounter));
            segs.push(
                Seg::new("OBX")
                    .f(1, "1")
                    .f(2, "NM")
                    .f(3, "9N001000000000001^身長^JC10")
                    .f(5, format!("{}.{}", height_mm / 10, height_mm % 10))
                    .f(6, "cm^cm^ISO+")
                    .f(11, "F"),
            );
            segs.push(
                Seg::new("OBX")
                    .f(1, "2")
                    .f(2, "NM")
                    .f(3, "9N006000000000001^体重^JC10")
                    .f(5, format!("{}.{}", weight_hg / 10, weight_hg % 10))
                    .f(6, "kg^kg^ISO+")
                    .f(11, "F"),
            );
            segs.push(
                Seg::new("OBX")
                    .f(1, "3")
                    .f(2, "CWE")
                    .f(3, "5H010000009199911^血液型-ABO式^JC10")
                    .f(5, format!("{blood}^{blood}^JSHR002"))
                    .f(11, "F"),
            );
            segs.push(
                Seg::new("IN1")
                    .f(1, "1")
                    .f(2, format!("{plan}^{plan_name}^JHSD0001"))
                    .f(3, insurer)
                    .f(12, ymd(crate::calendar::add_days(on, -200)))
                    .f(17, "SEL^本人^HL70063"),
            );
            segs
        }
        Body::Allergy { allergens, recorded } => {
            let mut segs =
                vec![msh(ctx, "ADT^A60^ADT_A60", sent, control), evn(sent, None), pid(ctx, on, false)];
            for (i, &a) in allergens.iter().enumerate() {
                let al = &ALLERGENS[a];
                let severity = if i % 2 == 0 { "MI^軽度^HL70128" } else { "MO^中等度^HL70128" };
                segs.push(
                    Seg::new("IAM")
                        .f(1, (i + 1).to_string())
                        .f(2, format!("{}^{}^HL70127", al.kind.0, al.kind.1))
                        .f(3, format!("{}^{}^{}", al.code, al.name, al.system))
                        .f(4, severity)
                        .f(5, al.reaction)
                        .f(6, "A^追加^HL70323")
                        .f(11, ymd(*recorded)),
                );
            }
            segs
        }
        Body::Problems { lists } => {
            let mut segs = vec![msh(ctx, "PPR^ZD1^PPR_ZD1", sent, control), pid(ctx, on, false)];
            let doctor = &ctx.facility.doctors[e.encounter.doctor % ctx.facility.doctors.len()];
            for (i, p) in lists[v].iter().enumerate() {
                let c = &CONDITIONS[p.condition];
                let since = ymd(p.since);
                let instance = format!("{}{:03}", since, i + 1);
                let outcome = if p.resolved { "F^治癒^HL70241" } else { "N^回復せず^HL70241" };
                let rank = if p.main { "1^主診断^JHSD0007" } else { "2^副診断^JHSD0007" };
                segs.push(
                    Seg::new("PRB")
                        .f(1, "AD")
                        .f(2, since.clone())
                        .f(3, format!("{}^{}^MDCDX2", c.medis, c.name))
                        .f(4, instance.clone())
                        .f(7, since.clone())
                        .f(10, format!("{}^^I10^O^外来時^JHSD0004", c.icd10))
                        .f(14, outcome)
                        .f(15, since.clone())
                        .f(16, since)
                        .f(17, c.name)
                        .f(18, rank)
                        .f(26, "V^非常に限定^HL70177"),
                );
                segs.push(
                    Seg::new("ZPR")
                        .f(2, format!("{}^{}^MDCDX2", c.medis, c.name))
                        .f(5, format!("{}^{}^MDCDX2", c.exchange, c.name)),
                );
                segs.push(
                    Seg::new("ORC")
                        .f(1, "NW")
                        .f(2, instance)
                        .f(12, doctor.xcn())
                        .f(17, format!("{}^{}^MML028", p.dept, dept_name(p.dept)))
                        .f(29, "O^外来患者オーダ^HL70482"),
                );
            }
            segs
        }
        other => unreachable!("not a record body: {other:?}"),
    }
}
