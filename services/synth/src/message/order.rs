//! Prescriptions (OMP-01 RDE^O11, OMP-11 RAS^O17), injections (OMP-02 RDE^O11, OMP-12 RAS^O17) and
//! meal orders (OMD OMD^O03). Orders carry the care date in ORC-9, administrations in RXA-3.

use super::builder::Seg;
use super::{Ctx, msh, orc, order_control, pid, pv1};
use crate::calendar::Moment;
use crate::catalog::{DRUGS, INJECTIONS, MEALS};
use crate::event::{Body, Event};

fn hot(code: &str, name: &str) -> String {
    format!("{code}^{name}^HOT9")
}

/// A drug as RXE-2/RXA-5 name it: HOT9 first (as the samples do), the YJ code as the alternate.
fn drug_code(d: &crate::catalog::Drug) -> String {
    format!("{}^{}^HOT9^{}^{}^YJ", d.hot9, d.name, d.yj, d.name)
}

fn rxa(
    ctx: &Ctx,
    start: Moment,
    end: Moment,
    code: String,
    amount: u32,
    unit: (&str, &str),
    salt: usize,
) -> Seg {
    let nurse =
        ctx.facility.nurses.get(salt % ctx.facility.nurses.len().max(1)).map(|n| n.xcn()).unwrap_or_default();
    Seg::new("RXA")
        .f(1, "0")
        .f(2, "1")
        .f(3, start.mins12())
        .f(4, end.mins12())
        .f(5, code)
        .f(6, amount.to_string())
        .f(7, format!("{}^{}^MR9P", unit.0, unit.1))
        .f(10, nurse)
        .f(20, "CP")
        .f(22, end.plus_ms(120_000).secs14())
}

pub(super) fn render(ctx: &Ctx, e: &Event, v: usize, control: &str) -> Vec<Seg> {
    let version = &e.versions[v];
    let sent = version.sent;
    let on = sent.date;
    let order_no = e.order_no.as_deref().unwrap_or(ssmix2::OrderNo::NONE);
    let ctl = order_control(version.action);
    let enc = &e.encounter;
    match &e.body {
        Body::Prescription { at, items } => {
            let mut segs =
                vec![msh(ctx, "RDE^O11^RDE_O11", sent, control), pid(ctx, on, true), pv1(ctx, enc)];
            let kind = if enc.inpatient {
                "IHP^入院処方^MR9P"
            } else {
                "OHP^外来処方^MR9P~OHI^院内処方^MR9P"
            };
            for (i, item) in items[v].iter().enumerate() {
                let d = &DRUGS[item.drug];
                let per_day = item.per_dose * d.usage.times_per_day();
                let (usage, usage_name) = d.usage.code();
                let unit = format!("{}^{}^MR9P", d.unit.0, d.unit.1);
                segs.push(orc(ctx, enc, ctl, order_no, &(i + 1).to_string(), *at));
                segs.push(
                    Seg::new("RXE")
                        .f(2, drug_code(d))
                        .f(3, item.per_dose.to_string())
                        .f(5, unit.clone())
                        .f(10, (per_day * item.days).to_string())
                        .f(11, unit)
                        .f(15, format!("{order_no}{:02}", i + 1))
                        .f(19, format!("{per_day}^{}&{}&MR9P", d.unit.0, d.unit.1))
                        .f(21, kind),
                );
                segs.push(
                    Seg::new("TQ1")
                        .f(1, "1")
                        .f(3, format!("{usage}&{usage_name}&JAMISDP01"))
                        .f(6, format!("{}^d", item.days))
                        .f(7, format!("{}00", at.mins12().get(..10).unwrap_or_default())),
                );
                segs.push(Seg::new("RXR").f(1, format!("{}^{}^HL70162", d.route.0, d.route.1)));
            }
            segs
        }
        Body::RxAdministration { drugs, times } => {
            let mut segs =
                vec![msh(ctx, "RAS^O17^RAS_O17", sent, control), pid(ctx, on, false), pv1(ctx, enc)];
            let first = times[0];
            segs.push(orc(ctx, enc, "NW", order_no, "1", first));
            for (ti, t) in times.iter().enumerate() {
                for (di, &drug) in drugs.iter().enumerate() {
                    let d = &DRUGS[drug];
                    segs.push(rxa(ctx, *t, *t, drug_code(d), d.per_dose, d.unit, ti + di));
                }
            }
            segs.push(Seg::new("RXR").f(1, "PO^口^HL70162"));
            segs
        }
        Body::Injection { at, mix, bags } => {
            let mut segs =
                vec![msh(ctx, "RDE^O11^RDE_O11", sent, control), pid(ctx, on, true), pv1(ctx, enc)];
            let volume: u32 = mix.iter().map(|&i| INJECTIONS[i].ml).sum::<u32>().max(50);
            for (bi, (start, end)) in bags.iter().enumerate() {
                let hours = (end.ms.saturating_sub(start.ms) / 3_600_000).max(1);
                segs.push(orc(ctx, enc, ctl, order_no, &format!("{order_no}_01_{:03}", bi + 1), *at));
                segs.push(
                    Seg::new("RXE")
                        .f(2, "00^一般^99I02")
                        .f(3, volume.to_string())
                        .f(5, "ML^ミリリットル^MR9P")
                        .f(6, "INJ^注射剤^MR9P")
                        .f(7, format!("^{hours}時間一定速度で^99IC6"))
                        .f(15, format!("{order_no}-{:03}", bi + 1))
                        .f(21, "IHP^入院処方^MR9P~FTP^定時処方^99I01")
                        .f(22, "H1")
                        .f(23, (volume / hours).to_string())
                        .f(24, "ml/hr^ミリリッター／時間^ISO+"),
                );
                segs.push(Seg::new("TQ1").f(1, "1").f(7, start.mins12()).f(8, end.mins12()));
                segs.push(Seg::new("RXR").f(1, "IV^静脈内^HL70162").f(3, "IVP^点滴ポンプ^HL70164"));
                for (k, &i) in mix.iter().enumerate() {
                    let inj = &INJECTIONS[i];
                    segs.push(
                        Seg::new("RXC")
                            .f(1, if k == 0 { "B" } else { "A" })
                            .f(2, hot(inj.hot9, inj.name))
                            .f(3, "1")
                            .f(4, format!("{}^{}^MR9P", inj.unit.0, inj.unit.1)),
                    );
                }
            }
            segs
        }
        Body::InjectionAdministration { mix, bags } => {
            let mut segs =
                vec![msh(ctx, "RAS^O17^RAS_O17", sent, control), pid(ctx, on, false), pv1(ctx, enc)];
            for (bi, (start, end)) in bags.iter().enumerate() {
                segs.push(orc(ctx, enc, "NW", order_no, &format!("{order_no}_01_{:03}", bi + 1), *start));
                for (k, &i) in mix.iter().enumerate() {
                    let inj = &INJECTIONS[i];
                    segs.push(rxa(ctx, *start, *end, hot(inj.hot9, inj.name), 1, inj.unit, bi + k));
                }
                segs.push(Seg::new("RXR").f(1, "IV^静脈内^HL70162").f(3, "IVP^点滴ポンプ^HL70164"));
            }
            segs
        }
        Body::Meal { at, meal } => {
            let m = &MEALS[*meal];
            let start = crate::calendar::add_days(at.date, 1);
            vec![
                msh(ctx, "OMD^O03^OMD_O03", sent, control),
                pid(ctx, on, false),
                pv1(ctx, enc),
                orc(ctx, enc, order_control(version.action), order_no, "1", *at),
                Seg::new("TQ1")
                    .f(1, "1")
                    .f(3, "TID&１日３回&HL70335")
                    .f(7, format!("{}07", crate::calendar::ymd(start)))
                    .f(9, "R^ルーチン^HL70485"),
                Seg::new("ODS").f(1, "D").f(3, format!("{}^{}^99XY3", m.code, m.name)).f(4, m.note),
            ]
        }
        other => unreachable!("not an order body: {other:?}"),
    }
}
