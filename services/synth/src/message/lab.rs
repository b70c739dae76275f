//! Specimen tests: the order (OML-01 OML^O33, care date ORC-9) and the result (OML-11 OUL^R22, care
//! date SPM-17), one SPM group per specimen (whole blood for hematology, serum for chemistry).

use super::builder::Seg;
use super::{Ctx, orc, order_control, pid, pv1};
use crate::catalog::{LAB_TESTS, LabGroup};
use crate::event::{Body, Event};

fn groups(tests: impl Iterator<Item = usize> + Clone) -> Vec<(LabGroup, Vec<usize>)> {
    [LabGroup::Hematology, LabGroup::Chemistry]
        .into_iter()
        .map(|g| (g, tests.clone().filter(|&t| LAB_TESTS[t].group == g).collect::<Vec<_>>()))
        .filter(|(_, ts)| !ts.is_empty())
        .collect()
}

/// A value with the test's decimals, and its H/L flag against the reference range.
fn value_and_flag(test: usize, x: f64) -> (String, &'static str) {
    let t = &LAB_TESTS[test];
    let s = format!("{:.*}", t.decimals, x);
    let shown: f64 = s.parse().unwrap_or(x);
    let flag = if shown > t.high {
        "H"
    } else if shown < t.low {
        "L"
    } else {
        "N"
    };
    (s, flag)
}

fn range(test: usize) -> String {
    let t = &LAB_TESTS[test];
    format!("{:.*}-{:.*}", t.decimals, t.low, t.decimals, t.high)
}

pub(super) fn render(ctx: &Ctx, e: &Event, v: usize, control: &str) -> Vec<Seg> {
    let version = &e.versions[v];
    let sent = version.sent;
    let on = sent.date;
    let order_no = e.order_no.as_deref().unwrap_or(ssmix2::OrderNo::NONE);
    let enc = &e.encounter;
    let doctor = ctx.facility.doctors[enc.doctor % ctx.facility.doctors.len()].xcn();
    match &e.body {
        Body::LabOrder { at, collected, tests } => {
            let mut segs =
                vec![super::msh(ctx, "OML^O33^OML_O33", sent, control), pid(ctx, on, false), pv1(ctx, enc)];
            for (gi, (group, ts)) in groups(tests.iter().copied()).into_iter().enumerate() {
                let (sp, sp_name) = group.specimen();
                let (gc, gname) = group.code();
                segs.push(
                    Seg::new("SPM")
                        .f(1, (gi + 1).to_string())
                        .f(4, format!("{sp}^{sp_name}^JC10"))
                        .f(17, collected.mins12()),
                );
                segs.push(orc(ctx, enc, order_control(version.action), order_no, "", *at));
                segs.push(Seg::new("TQ1").f(1, "1").f(9, "R^ルーチン^HL70485"));
                segs.push(
                    Seg::new("OBR")
                        .f(1, (gi + 1).to_string())
                        .f(2, order_no)
                        .f(4, format!("{gc}^{gname}^99O03"))
                        .f(16, doctor.clone()),
                );
                for (i, &t) in ts.iter().enumerate() {
                    let lt = &LAB_TESTS[t];
                    segs.push(
                        Seg::new("OBX")
                            .f(1, (i + 1).to_string())
                            .f(3, format!("{}^{}^JC10^{}^{}^99X03", lt.jlac10, lt.name, lt.local, lt.name))
                            .f(11, "O"),
                    );
                }
            }
            segs
        }
        Body::LabResult { collected, reported, values } => {
            let mut segs =
                vec![super::msh(ctx, "OUL^R22^OUL_R22", sent, control), pid(ctx, on, false), pv1(ctx, enc)];
            let vals = &values[v];
            let status = if v > 0 { "C" } else { "F" };
            for (gi, (group, ts)) in groups(vals.iter().map(|(t, _)| *t)).into_iter().enumerate() {
                let (sp, sp_name) = group.specimen();
                let (gc, gname) = group.code();
                let specimen_id = format!("{}{:02}", &order_no[order_no.len().saturating_sub(10)..], gi + 1);
                segs.push(
                    Seg::new("SPM")
                        .f(1, (gi + 1).to_string())
                        .f(2, specimen_id.clone())
                        .f(4, format!("{sp}^{sp_name}^JC10"))
                        .f(17, collected.mins12()),
                );
                segs.push(
                    Seg::new("OBR")
                        .f(1, (gi + 1).to_string())
                        .f(2, order_no)
                        .f(3, specimen_id.clone())
                        .f(4, format!("{gc}^{gname}^99O03"))
                        .f(7, collected.mins12())
                        .f(16, doctor.clone())
                        .f(22, reported.secs14())
                        .f(25, status),
                );
                segs.push(
                    Seg::new("ORC")
                        .f(1, "SC")
                        .f(2, order_no)
                        .f(3, specimen_id)
                        .f(5, "CM")
                        .f(9, reported.secs14())
                        .f(12, doctor.clone())
                        .f(17, format!("{}^{}^99XY1", enc.dept, super::dept_name(enc.dept)))
                        .f(21, &ctx.facility.name)
                        .f(
                            29,
                            if enc.inpatient {
                                "I^入院患者オーダ^HL70482"
                            } else {
                                "O^外来患者オーダ^HL70482"
                            },
                        ),
                );
                for (i, &t) in ts.iter().enumerate() {
                    let lt = &LAB_TESTS[t];
                    let x = vals.iter().find(|(k, _)| *k == t).map_or(lt.mean, |(_, x)| *x);
                    let (value, flag) = value_and_flag(t, x);
                    segs.push(
                        Seg::new("OBX")
                            .f(1, (i + 1).to_string())
                            .f(2, "NM")
                            .f(3, format!("{}^{}^JC10", lt.jlac10, lt.name))
                            .f(5, value)
                            .f(6, format!("{}^{}^99XYZ", lt.unit, lt.unit))
                            .f(7, range(t))
                            .f(8, flag)
                            .f(11, status)
                            .f(14, collected.mins12()),
                    );
                }
            }
            segs
        }
        other => unreachable!("not a lab body: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_follow_the_shown_value() {
        assert_eq!(value_and_flag(0, 8.14), ("8.1".to_owned(), "N"));
        assert_eq!(value_and_flag(0, 8.16), ("8.2".to_owned(), "H"));
        assert_eq!(value_and_flag(8, 0.2), ("0.20".to_owned(), "L"));
        assert_eq!(range(19), "0.00-0.14");
    }
}
