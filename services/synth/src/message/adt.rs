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
    let (ty, occurred) = match &e.body {
        Body::Visit { at } => ("ADT^A04^ADT_A01", *at),
        Body::Admit { at } if delete => ("ADT^A11^ADT_A09", *at),
        Body::Admit { at } => ("ADT^A01^ADT_A01", *at),
        Body::PlannedAdmit { expected } if delete => ("ADT^A27^ADT_A21", *expected),
        Body::PlannedAdmit { expected } => ("ADT^A14^ADT_A05", *expected),
        Body::Transfer { at, .. } => ("ADT^A02^ADT_A02", *at),
        Body::PlannedTransfer { expected } => ("ADT^A15^ADT_A15", *expected),
        Body::Leave { at } => ("ADT^A21^ADT_A21", *at),
        Body::Return { at } => ("ADT^A22^ADT_A21", *at),
        Body::PlannedDischarge { expected } => ("ADT^A16^ADT_A16", *expected),
        Body::Discharge { at, .. } => ("ADT^A03^ADT_A03", *at),
        Body::DoctorChange { at } => ("ADT^A54^ADT_A54", *at),
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
    let _ = occurred;
    segs.push(evn(sent, evn_occurred));
    segs.push(pid(ctx, on, false));
    segs.push(pv1);
    segs.extend(pv2);
    segs
}
