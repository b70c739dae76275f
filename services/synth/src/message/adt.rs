//! Visits and stays: ADT-01, -12, -21, -22, -31, -32, -41, -42, -51, -52. The care date sits where
//! SSMIX_CAREDATE.json looks for it (PV1-44, PV1-45, PV2-8, PV2-9 or EVN-6).

use super::builder::Seg;
use super::{Ctx, evn, msh, pid, pv1};
use crate::event::{Action, Body, Event};

pub(super) fn render(ctx: &Ctx, e: &Event, v: usize, control: &str) -> Vec<Seg> {
    let version = &e.versions[v];
    let delete = version.action == Action::Delete;
    let sent = version.sent;
    let on = sent.date;
    let ty = match &e.body {
        Body::Visit { .. } => "ADT^A04^ADT_A01",
        Body::Admit { .. } if delete => "ADT^A11^ADT_A09",
        Body::Admit { .. } => "ADT^A01^ADT_A01",
        Body::PlannedAdmit { .. } if delete => "ADT^A27^ADT_A21",
        Body::PlannedAdmit { .. } => "ADT^A14^ADT_A05",
        Body::Transfer { .. } => "ADT^A02^ADT_A02",
        Body::PlannedTransfer { .. } => "ADT^A15^ADT_A15",
        Body::Leave { .. } => "ADT^A21^ADT_A21",
        Body::Return { .. } => "ADT^A22^ADT_A21",
        Body::PlannedDischarge { .. } => "ADT^A16^ADT_A16",
        Body::Discharge { .. } => "ADT^A03^ADT_A03",
        Body::DoctorChange { .. } => "ADT^A54^ADT_A54",
        other => unreachable!("not an ADT body: {other:?}"),
    };
    let doctor = ctx.facility.doctors[e.encounter.doctor % ctx.facility.doctors.len()].xcn();
    let mut segs = vec![msh(ctx, ty, sent, control)];
    let mut pv1 = pv1(ctx, &e.encounter);
    let mut pv2 = None;
    let mut evn_occurred = None;
    match &e.body {
        Body::Visit { at } => pv1 = pv1.f(44, at.mins12()),
        Body::Admit { at } => pv1 = pv1.f(17, doctor.clone()).f(44, at.mins12()),
        Body::PlannedAdmit { expected } => {
            pv1 = pv1.f(2, "P");
            pv2 = Some(Seg::new("PV2").f(8, expected.mins12()));
        }
        Body::Transfer { at, from } => {
            pv1 = pv1.f(6, format!("{}^{}^{}^^^N", from.0, from.1, from.2));
            evn_occurred = Some(*at);
        }
        Body::PlannedTransfer { expected } => pv2 = Some(Seg::new("PV2").f(8, expected.mins12())),
        Body::Leave { at } | Body::Return { at } => evn_occurred = Some(*at),
        Body::PlannedDischarge { expected } => pv2 = Some(Seg::new("PV2").f(9, expected.mins12())),
        Body::Discharge { admitted, at } => {
            evn_occurred = Some(*at);
            pv1 = pv1.f(17, doctor.clone()).f(36, "01").f(44, admitted.mins12()).f(45, at.mins12());
        }
        Body::DoctorChange { .. } => evn_occurred = None,
        _ => {}
    }
    segs.push(evn(sent, evn_occurred));
    segs.push(pid(ctx, on, false));
    segs.push(pv1);
    segs.extend(pv2);
    segs
}
