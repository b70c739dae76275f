//! Who is registered where: each person at one to five facilities (mostly near home, hospitals more
//! often), some also at a pharmacy, each under the facility's own local patient ID and recorded with
//! the facility's habits.

use jiff::civil::Date;
use rand::Rng;

use crate::calendar::{add_days, days_between};
use crate::facility::{Facility, FacilityKind};
use crate::people::Person;
use crate::people::recorded::{Recorded, record};
use crate::timeline::Registration;

/// A registration with the demographics as the facility recorded them.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub reg: Registration,
    pub recorded: Recorded,
}

/// Registrations at hospitals and clinics (first) and at pharmacies, each list sorted by facility and
/// then by local patient ID.
pub fn enroll(
    seed: u64,
    people: &[Person],
    facilities: &[Facility],
    from: Date,
    to: Date,
) -> (Vec<Enrolled>, Vec<Enrolled>) {
    let medical: Vec<&Facility> = facilities.iter().filter(|f| f.kind != FacilityKind::Pharmacy).collect();
    let pharmacies: Vec<&Facility> = facilities.iter().filter(|f| f.kind == FacilityKind::Pharmacy).collect();
    let span = days_between(from, to).max(0);
    // (facility index, person, since)
    let mut picks: Vec<(usize, u32, Date)> = Vec::new();
    let mut pharmacy_picks: Vec<(usize, u32, Date)> = Vec::new();
    for p in people {
        let mut rng = crate::rng::stream(seed, &["enroll", &p.index.to_string()]);
        let want =
            [1usize, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 5][rng.random_range(0..14)].min(medical.len());
        let mut chosen: Vec<usize> = Vec::new();
        while chosen.len() < want {
            let i = crate::people::weighted_index(&mut rng, &medical, |f| {
                let near = if f.area == p.area { 4 } else { 1 };
                let big = if f.kind == FacilityKind::Hospital { 2 } else { 1 };
                if chosen.contains(&f.index) { 0 } else { near * big }
            });
            chosen.push(medical[i].index);
        }
        for f in chosen {
            picks.push((f, p.index, add_days(from, rng.random_range(0..=span * 3 / 5))));
        }
        if !pharmacies.is_empty() && !p.chronic.is_empty() && rng.random_bool(0.35) {
            let i =
                crate::people::weighted_index(
                    &mut rng,
                    &pharmacies,
                    |f| if f.area == p.area { 4 } else { 1 },
                );
            pharmacy_picks.push((
                pharmacies[i].index,
                p.index,
                add_days(from, rng.random_range(0..=span * 3 / 5)),
            ));
        }
    }
    // Every facility gets at least one patient.
    for f in &medical {
        if !picks.iter().any(|x| x.0 == f.index) && !people.is_empty() {
            let p = (f.index as u32) % people.len() as u32;
            picks.push((f.index, p, from));
        }
    }
    (number(seed, people, facilities, picks, to), number(seed, people, facilities, pharmacy_picks, to))
}

/// Assigns local patient IDs in order of first contact, and records demographics.
fn number(
    seed: u64,
    people: &[Person],
    facilities: &[Facility],
    mut picks: Vec<(usize, u32, Date)>,
    to: Date,
) -> Vec<Enrolled> {
    picks.sort_by_key(|&(f, p, since)| (f, since, p));
    let mut out = Vec::with_capacity(picks.len());
    let mut next: Vec<u64> = facilities.iter().map(|f| f.pid_base).collect();
    for (f, p, since) in picks {
        let fac = &facilities[f];
        let person = &people[p as usize];
        let mut rng = crate::rng::stream(seed, &["record", &fac.id, &p.to_string()]);
        next[f] += rng.random_range(1..=3);
        let width = if fac.kind == FacilityKind::Pharmacy { 8 } else { fac.pid_width };
        let patient_id = format!("{:0width$}", next[f] % 10u64.pow(width as u32));
        let recorded = record(&mut rng, person, &fac.habits, since, to);
        out.push(Enrolled { reg: Registration { person: p, facility: f, patient_id, since }, recorded });
    }
    out
}
