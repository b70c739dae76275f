//! HL7 v2.5 messages for each SS-MIX2 data type, laid out like the guideline's samples and meeting the
//! National Hospital Organization's tables (segment order, required fields, NM fields, care-date field).

mod adt;
pub mod builder;
mod exam;
mod lab;
mod order;
mod record;

use jiff::civil::Date;
use ssmix2::DataType;

use crate::calendar::{Moment, ymd};
use crate::catalog::DEPARTMENTS;
use crate::event::{Action, Encounter, Event};
use crate::facility::{Facility, Staff};
use crate::people::recorded::Recorded;
use builder::Seg;

/// MSH-18, MSH-20 and MSH-21 as SS-MIX2 requires them.
pub const CHARSET: &str = "~ISO IR87";
pub const CHARSET_HANDLING: &str = "ISO 2022-1994";
pub const PROFILE: &str = "SS-MIX2_1.20^SS-MIX2^1.2.392.200250.2.1.100.1.2.120^ISO";

/// Who the message is about and who sends it.
pub struct Ctx<'a> {
    pub facility: &'a Facility,
    pub patient_id: &'a str,
    pub recorded: &'a Recorded,
}

impl Ctx<'_> {
    fn doctor(&self, e: &Encounter) -> &Staff {
        &self.facility.doctors[e.doctor % self.facility.doctors.len().max(1)]
    }

    fn nurse(&self, salt: usize) -> Option<&Staff> {
        let n = &self.facility.nurses;
        (!n.is_empty()).then(|| &n[salt % n.len()])
    }
}

pub(crate) fn dept_name(code: &str) -> &'static str {
    DEPARTMENTS.iter().find(|(c, _)| *c == code).map_or("内科", |(_, n)| n)
}

/// MSH with the SS-MIX2 character set, handling scheme and profile.
pub(crate) fn msh(ctx: &Ctx, message_type: &str, sent: Moment, control: &str) -> Seg {
    Seg::new("MSH")
        .f(3, ctx.facility.system)
        .f(4, &ctx.facility.id)
        .f(5, "SSMIX2GW")
        .f(6, "KIZUNA")
        .f(7, sent.msh7())
        .f(9, message_type)
        .f(10, control)
        .f(11, "P")
        .f(12, "2.5")
        .f(18, CHARSET)
        .f(20, CHARSET_HANDLING)
        .f(21, PROFILE)
}

pub(crate) fn evn(recorded: Moment, occurred: Option<Moment>) -> Seg {
    let s = Seg::new("EVN").f(2, recorded.mins12());
    match occurred {
        Some(o) => s.f(6, o.mins12()),
        None => s,
    }
}

/// PID with name, birth date and sex; with `full`, also the address and phone on file on `on`.
pub(crate) fn pid(ctx: &Ctx, on: Date, full: bool) -> Seg {
    let r = ctx.recorded;
    let mut s = Seg::new("PID")
        .f(1, "0001")
        .f(3, format!("{}^^^^PI", ctx.patient_id))
        .f(5, r.pid5())
        .f(7, ymd(r.birth))
        .f(8, r.sex.code());
    if full {
        let (postcode, address) = r.address_on(on);
        s = s.f(11, format!("^^^^{postcode}^JPN^H^{address}"));
        if let Some(phone) = &r.phone {
            s = s.f(13, format!("^PRN^PH^^^^^^^^^{phone}"));
        }
    }
    s
}

/// PV1 for an encounter: outpatients at the department, inpatients in their bed.
pub(crate) fn pv1(ctx: &Ctx, e: &Encounter) -> Seg {
    let doctor = ctx.doctor(e).xcn();
    let s = Seg::new("PV1").f(1, "0001");
    let s = match e.bed {
        Some((ward, room, bed)) if e.inpatient => s.f(2, "I").f(3, format!("{ward}^{room}^{bed}^^^N")),
        _ => s.f(2, "O").f(3, format!("{}^^^^^C", e.dept)),
    };
    s.f(7, doctor).f(10, e.dept)
}

/// The ORC fields every order in the samples carries (ORC-9 is the care date for orders).
pub(crate) fn orc(ctx: &Ctx, e: &Encounter, control: &str, order_no: &str, group: &str, at: Moment) -> Seg {
    let f = ctx.facility;
    let location = match e.bed {
        Some((ward, room, _)) if e.inpatient => format!("{ward}^{room}^^^^N"),
        _ => format!("{}^^^^^C", e.dept),
    };
    let enterer = ctx.nurse(e.doctor).unwrap_or(ctx.doctor(e)).xcn();
    Seg::new("ORC")
        .f(1, control)
        .f(2, order_no)
        .f(4, group)
        .f(9, at.secs14())
        .f(10, enterer)
        .f(12, ctx.doctor(e).xcn())
        .f(13, location)
        .f(17, format!("{}^{}^99XY1", e.dept, dept_name(e.dept)))
        .f(21, &f.name)
        .f(22, format!("^^^^{}^JPN^^{}", f.postcode, f.address))
        .f(23, format!("^^^^^^^^^^^{}", f.phone))
        .f(29, if e.inpatient { "I^入院患者オーダ^HL70482" } else { "O^外来患者オーダ^HL70482" })
}

/// ORC-1 for a version of an order: new, replacement or cancel.
pub(crate) fn order_control(a: Action) -> &'static str {
    match a {
        Action::New => "NW",
        Action::Update => "XO",
        Action::Delete => "CA",
    }
}

/// Renders version `v` of `event` as message text (CR-terminated segments).
pub fn render(ctx: &Ctx, event: &Event, v: usize, control: &str) -> String {
    let segs = match event.data_type {
        DataType::Adt00 | DataType::Adt61 | DataType::Ppr01 => record::render(ctx, event, v, control),
        DataType::Omp01 | DataType::Omp11 | DataType::Omp02 | DataType::Omp12 | DataType::Omd => {
            order::render(ctx, event, v, control)
        }
        DataType::Oml01 | DataType::Oml11 => lab::render(ctx, event, v, control),
        DataType::Omg01
        | DataType::Omg02
        | DataType::Omg03
        | DataType::Omg11
        | DataType::Omg12
        | DataType::Omg13 => exam::render(ctx, event, v, control),
        _ => adt::render(ctx, event, v, control),
    };
    builder::text(&segs)
}
