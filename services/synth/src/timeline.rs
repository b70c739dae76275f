//! A registration's story over the period: outpatient visits at a cadence set by the patient's
//! conditions, acute episodes, hospital stays, and everything each of them sends — with the updates
//! and cancellations that make condition flags 2 and 0 appear.

use jiff::civil::Date;
use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use ssmix2::DataType;

use crate::calendar::{Moment, add_days, days_between, ymd};
use crate::catalog::{CONDITIONS, LAB_TESTS, PROCEDURES, ProcedureKind, labs::ROUTINE_PANEL};
use crate::event::{Action, Body, Encounter, Event, Problem, RxItem, Version};
use crate::facility::{Facility, FacilityKind};
use crate::people::Person;

/// A person registered at a facility under a local patient ID.
#[derive(Debug, Clone)]
pub struct Registration {
    pub person: u32,
    pub facility: usize,
    pub patient_id: String,
    /// First contact in the period.
    pub since: Date,
}

struct Builder<'a> {
    rng: ChaCha8Rng,
    person: &'a Person,
    facility: &'a Facility,
    to: Date,
    events: Vec<Event>,
    seq: u64,
    problems: Vec<Problem>,
    problem_versions: Vec<(Moment, Vec<Problem>)>,
    /// Per-test offset from the healthy mean, in SDs: the person's own baseline.
    baseline: Vec<f64>,
    doctor: usize,
}

/// Maps a condition's department onto what the facility has.
fn dept_at(f: &Facility, dept: &'static str) -> &'static str {
    if f.departments.contains(&dept) { dept } else { f.departments.first().copied().unwrap_or("01") }
}

impl Builder<'_> {
    fn order_no(&mut self, day: Date) -> String {
        self.seq += 1 + self.rng.random_range(0..3);
        format!("{}{:07}", ymd(day), self.seq % 10_000_000)
    }

    fn moment(&mut self, day: Date, from_hour: u32, to_hour: u32) -> Moment {
        Moment::at(
            day,
            self.rng.random_range(from_hour..to_hour),
            self.rng.random_range(0..60),
            self.rng.random_range(0..60),
            self.rng.random_range(0..1000),
        )
    }

    fn enc(&self, dept: &'static str) -> Encounter {
        Encounter { inpatient: false, dept, doctor: self.doctor, bed: None }
    }

    fn push(
        &mut self,
        data_type: DataType,
        care: Option<Date>,
        order_no: Option<String>,
        enc: &Encounter,
        versions: Vec<Version>,
        body: Body,
    ) {
        let dept =
            if data_type == DataType::Adt00 || data_type == DataType::Adt61 { None } else { Some(enc.dept) };
        self.events.push(Event {
            data_type,
            care_date: care,
            order_no,
            dept,
            encounter: enc.clone(),
            versions,
            body,
        });
    }

    fn new_at(sent: Moment) -> Vec<Version> {
        vec![Version { sent, action: Action::New }]
    }

    /// New, and sometimes an update and/or a cancellation later the same day.
    fn revised(&mut self, sent: Moment, update: f64, delete: f64) -> Vec<Version> {
        let mut v = Self::new_at(sent);
        if self.rng.random_bool(update) {
            v.push(Version {
                sent: sent.plus_ms(self.rng.random_range(600_000..3_000_000)),
                action: Action::Update,
            });
        }
        if self.rng.random_bool(delete) {
            let last = v.last().map_or(sent, |x| x.sent);
            v.push(Version {
                sent: last.plus_ms(self.rng.random_range(600_000..3_000_000)),
                action: Action::Delete,
            });
        }
        v
    }

    fn add_problem(&mut self, condition: usize, day: Date, at: Moment, dept: &'static str) {
        if self.problems.iter().any(|p| p.condition == condition && !p.resolved) {
            return;
        }
        let main = self.problems.is_empty();
        self.problems.push(Problem { condition, since: day, dept, main, resolved: false });
        let snapshot = self.problems.clone();
        // Acute problems are marked resolved in the next snapshot.
        for p in &mut self.problems {
            if !CONDITIONS[p.condition].chronic {
                p.resolved = true;
            }
        }
        self.problem_versions.push((at, snapshot));
    }

    fn lab_values(&mut self, tests: &[usize], conditions: &[usize], severity: f64) -> Vec<(usize, f64)> {
        tests
            .iter()
            .map(|&t| {
                let lt = &LAB_TESTS[t];
                let shift: f64 = conditions
                    .iter()
                    .flat_map(|&c| CONDITIONS[c].labs.iter())
                    .filter(|(k, _)| *k == t)
                    .map(|(_, s)| *s)
                    .sum();
                // Sum of uniforms: a cheap, deterministic, roughly normal noise.
                let noise: f64 = (0..4).map(|_| self.rng.random_range(-1.0..1.0)).sum::<f64>() * 0.6;
                let x = lt.mean + lt.sd * (self.baseline[t] + shift * severity + noise * 0.5);
                (t, x.max(lt.mean * 0.05))
            })
            .collect()
    }

    fn lab(&mut self, day: Date, enc: &Encounter, at: Moment, conditions: &[usize], severity: f64) {
        let mut tests: Vec<usize> = ROUTINE_PANEL.to_vec();
        for &c in conditions {
            for (t, _) in CONDITIONS[c].labs {
                if !tests.contains(t) {
                    tests.push(*t);
                }
            }
        }
        tests.sort_unstable();
        let no = self.order_no(day);
        let collected = at.plus_ms(900_000);
        let reported = collected.plus_ms(self.rng.random_range(3_600_000..10_800_000));
        let order_versions = self.revised(at.plus_ms(60_000), 0.02, 0.01);
        let cancelled = order_versions.last().is_some_and(|v| v.action == Action::Delete);
        self.push(
            DataType::Oml01,
            Some(day),
            Some(no.clone()),
            enc,
            order_versions,
            Body::LabOrder { at, collected, tests: tests.clone() },
        );
        if cancelled || reported.date != day {
            return;
        }
        let first = self.lab_values(&tests, conditions, severity);
        let mut values = vec![first.clone()];
        let mut versions = Self::new_at(reported.plus_ms(30_000));
        if self.rng.random_bool(0.05) {
            // A corrected result: one value re-measured.
            let mut fixed = first;
            let i = self.rng.random_range(0..fixed.len());
            let t = fixed[i].0;
            fixed[i].1 += LAB_TESTS[t].sd * self.rng.random_range(-1.0..1.0);
            fixed[i].1 = fixed[i].1.max(0.01);
            values.push(fixed);
            versions.push(Version {
                sent: reported.plus_ms(self.rng.random_range(3_600_000..7_200_000)),
                action: Action::Update,
            });
        }
        self.push(
            DataType::Oml11,
            Some(day),
            Some(no),
            enc,
            versions,
            Body::LabResult { collected, reported, values },
        );
    }

    fn exam(&mut self, day: Date, enc: &Encounter, at: Moment, procedure: usize) {
        let p = &PROCEDURES[procedure];
        let (order_type, done_type) = match p.kind {
            ProcedureKind::Radiology => (DataType::Omg01, DataType::Omg11),
            ProcedureKind::Endoscopy => (DataType::Omg02, DataType::Omg12),
            ProcedureKind::Physiology => (DataType::Omg03, DataType::Omg13),
        };
        let no = self.order_no(day);
        let versions = self.revised(at.plus_ms(60_000), 0.02, 0.04);
        let cancelled = versions.last().is_some_and(|v| v.action == Action::Delete);
        let weight_kg = 40 + self.person.index % 40;
        self.push(
            order_type,
            Some(day),
            Some(no.clone()),
            enc,
            versions,
            Body::ExamOrder { at, procedure, weight_kg },
        );
        if cancelled {
            return;
        }
        let done = at.plus_ms(self.rng.random_range(1_800_000..7_200_000));
        if done.date != day {
            return;
        }
        let sent = done.plus_ms(2_400_000);
        if p.kind == ProcedureKind::Physiology {
            let heart_rate = self.rng.random_range(52..98);
            let body = Body::EcgResult {
                at: done,
                heart_rate,
                pq: self.rng.random_range(120..200),
                qrs: self.rng.random_range(80..110),
                qt: self.rng.random_range(360..440),
                axis: self.rng.random_range(-20..90),
                finding: ["正常範囲", "洞調律", "心房細動", "左室肥大の疑い", "ＳＴ変化なし"]
                    [self.rng.random_range(0..5)],
            };
            self.push(done_type, Some(day), Some(no), enc, Self::new_at(sent), body);
        } else {
            let accession = format!("{}{:04}", ymd(day), self.seq % 10_000);
            self.push(
                done_type,
                Some(day),
                Some(no),
                enc,
                Self::new_at(sent),
                Body::ExamPerformed { at: done, procedure, accession },
            );
        }
    }

    fn prescription(&mut self, day: Date, enc: &Encounter, at: Moment, drugs: &[usize], days: u32) {
        if drugs.is_empty() {
            return;
        }
        let items: Vec<RxItem> = drugs
            .iter()
            .map(|&d| RxItem { drug: d, per_dose: crate::catalog::DRUGS[d].per_dose, days })
            .collect();
        let versions = self.revised(at.plus_ms(120_000), 0.06, 0.02);
        let mut lists = vec![items.clone()];
        if versions.iter().any(|v| v.action == Action::Update) {
            let mut changed = items;
            if changed.len() > 1 && self.rng.random_bool(0.5) {
                changed.pop();
            } else {
                changed[0].days = (days / 2).max(3);
            }
            lists.push(changed);
        }
        while lists.len() < versions.len() {
            let last = lists[lists.len() - 1].clone();
            lists.push(last);
        }
        let no = self.order_no(day);
        self.push(
            DataType::Omp01,
            Some(day),
            Some(no),
            enc,
            versions,
            Body::Prescription { at, items: lists },
        );
    }

    /// One outpatient visit.
    fn visit(&mut self, day: Date, conditions: &[usize], drugs: &[usize], days: u32, new_problem: bool) {
        let dept = conditions.first().map_or("01", |&c| dept_at(self.facility, CONDITIONS[c].dept));
        let enc = self.enc(dept);
        let t0 = self.moment(day, 8, 16);
        self.push(
            DataType::Adt12,
            Some(day),
            None,
            &enc,
            Self::new_at(t0.plus_ms(60_000)),
            Body::Visit { at: t0 },
        );
        if new_problem {
            for (k, &c) in conditions.iter().enumerate() {
                self.add_problem(c, day, t0.plus_ms(1_800_000 + k as u64 * 1000), dept);
            }
        }
        let labs = conditions.iter().any(|&c| !CONDITIONS[c].labs.is_empty());
        if self.rng.random_bool(if labs { 0.45 } else { 0.15 }) {
            self.lab(day, &enc, t0.plus_ms(600_000), conditions, 1.0);
        }
        let procs: Vec<usize> =
            conditions.iter().flat_map(|&c| CONDITIONS[c].procedures.iter().copied()).collect();
        if !procs.is_empty() && self.rng.random_bool(0.08) {
            let p = *procs.choose(&mut self.rng).unwrap_or(&0);
            self.exam(day, &enc, t0.plus_ms(900_000), p);
        }
        self.prescription(day, &enc, t0.plus_ms(1_200_000), drugs, days);
    }

    /// A hospital stay from `admit` for `los` days, caused by `cause`.
    fn stay(&mut self, admit: Date, los: i32, cause: usize, chronic: &[usize]) {
        let f = self.facility;
        let dept = dept_at(f, CONDITIONS[cause].dept);
        let ward = *f.wards.choose(&mut self.rng).unwrap_or(&"31");
        let bed0 = (
            ward,
            self.rng.random_range(1..=20) as u16 + ward.parse::<u16>().unwrap_or(3) * 10,
            self.rng.random_range(1..=4),
        );
        let mut enc = Encounter { inpatient: true, dept, doctor: self.doctor, bed: Some(bed0) };
        let discharge = add_days(admit, los);
        if self.rng.random_bool(0.4) {
            let expected = Moment::at(admit, 10, 0, 0, 0);
            let sent = self.moment(add_days(admit, -3), 9, 17);
            let mut versions = Self::new_at(sent);
            let cancel = self.rng.random_bool(0.06);
            if cancel {
                versions
                    .push(Version { sent: self.moment(add_days(admit, -1), 9, 17), action: Action::Delete });
            }
            self.push(DataType::Adt21, Some(admit), None, &enc, versions, Body::PlannedAdmit { expected });
            if cancel {
                return;
            }
        }
        let a = self.moment(admit, 9, 15);
        self.push(
            DataType::Adt22,
            Some(admit),
            None,
            &enc,
            Self::new_at(a.plus_ms(300_000)),
            Body::Admit { at: a },
        );
        self.add_problem(cause, admit, a.plus_ms(3_600_000), dept);
        let meal = if chronic.contains(&1) {
            2
        } else if chronic.contains(&12) {
            4
        } else if chronic.contains(&0) {
            3
        } else {
            0
        };
        let no = self.order_no(admit);
        self.push(
            DataType::Omd,
            Some(admit),
            Some(no),
            &enc,
            Self::new_at(a.plus_ms(1_200_000)),
            Body::Meal { at: a.plus_ms(900_000), meal },
        );
        if los > 6 {
            let d = add_days(admit, 3);
            let at = self.moment(d, 10, 16);
            let no = self.order_no(d);
            self.push(
                DataType::Omd,
                Some(d),
                Some(no),
                &enc,
                Self::new_at(at.plus_ms(60_000)),
                Body::Meal { at, meal: (meal + 1) % 5 },
            );
        }
        let transfer_day = (los > 4 && self.rng.random_bool(0.3))
            .then(|| add_days(admit, self.rng.random_range(1..los - 1)));
        let leave_day = (los > 7 && self.rng.random_bool(0.35))
            .then(|| add_days(admit, self.rng.random_range(3..los - 3)));
        let change_day =
            (los > 3 && self.rng.random_bool(0.2)).then(|| add_days(admit, self.rng.random_range(1..los)));
        let drug_mix: Vec<usize> = if cause == 21 { vec![2, 3] } else { vec![0, 1] };
        let oral: Vec<usize> =
            chronic.iter().flat_map(|&c| CONDITIONS[c].drugs.iter().copied()).take(2).collect();
        for i in 0..=los {
            let d = add_days(admit, i);
            if d > self.to {
                break;
            }
            if Some(d) == transfer_day {
                let from = enc.bed.unwrap_or(bed0);
                if self.rng.random_bool(0.5) {
                    let sent = self.moment(add_days(d, -1), 10, 17);
                    self.push(
                        DataType::Adt41,
                        Some(d),
                        None,
                        &enc,
                        Self::new_at(sent),
                        Body::PlannedTransfer { expected: Moment::at(d, 10, 0, 0, 0) },
                    );
                }
                let ward = *f.wards.choose(&mut self.rng).unwrap_or(&"41");
                enc.bed = Some((
                    ward,
                    self.rng.random_range(1..=20) as u16 + ward.parse::<u16>().unwrap_or(4) * 10,
                    self.rng.random_range(1..=4),
                ));
                let at = self.moment(d, 10, 16);
                self.push(
                    DataType::Adt42,
                    Some(d),
                    None,
                    &enc,
                    Self::new_at(at.plus_ms(120_000)),
                    Body::Transfer { at, from },
                );
            }
            if Some(d) == change_day {
                enc.doctor = enc.doctor.wrapping_add(1 + self.rng.random_range(0..5));
                let at = self.moment(d, 9, 17);
                self.push(
                    DataType::Adt01,
                    Some(d),
                    None,
                    &enc,
                    Self::new_at(at.plus_ms(60_000)),
                    Body::DoctorChange { at },
                );
            }
            if let Some(l) = leave_day {
                if d == l {
                    let at = self.moment(d, 13, 16);
                    self.push(
                        DataType::Adt31,
                        Some(d),
                        None,
                        &enc,
                        Self::new_at(at.plus_ms(60_000)),
                        Body::Leave { at },
                    );
                } else if d == add_days(l, 1) {
                    let at = self.moment(d, 15, 19);
                    self.push(
                        DataType::Adt32,
                        Some(d),
                        None,
                        &enc,
                        Self::new_at(at.plus_ms(60_000)),
                        Body::Return { at },
                    );
                }
            }
            if i < los.min(5) {
                let order_at = self.moment(d, 7, 9);
                let no = self.order_no(d);
                let nbags = self.rng.random_range(1..=3u32);
                let bags: Vec<(Moment, Moment)> = (0..nbags)
                    .map(|b| (Moment::at(d, 9 + b * 5, 0, 0, 0), Moment::at(d, 13 + b * 5, 0, 0, 0)))
                    .collect();
                let versions = self.revised(order_at.plus_ms(60_000), 0.03, 0.0);
                self.push(
                    DataType::Omp02,
                    Some(d),
                    Some(no.clone()),
                    &enc,
                    versions,
                    Body::Injection { at: order_at, mix: drug_mix.clone(), bags: bags.clone() },
                );
                let sent = bags[bags.len() - 1].1.plus_ms(1_800_000);
                if sent.date == d {
                    self.push(
                        DataType::Omp12,
                        Some(d),
                        Some(no),
                        &enc,
                        Self::new_at(sent),
                        Body::InjectionAdministration { mix: drug_mix.clone(), bags },
                    );
                }
            }
            if !oral.is_empty() && i % 2 == 1 && i < los {
                let times = vec![Moment::at(d, 8, 30, 0, 0), Moment::at(d, 18, 30, 0, 0)];
                let no = self.order_no(d);
                self.push(
                    DataType::Omp11,
                    Some(d),
                    Some(no),
                    &enc,
                    Self::new_at(Moment::at(d, 21, 0, 5, 0)),
                    Body::RxAdministration { drugs: oral.clone(), times },
                );
            }
            if i % 3 == 1 && i < los {
                let at = self.moment(d, 6, 7);
                let severity = (1.0 - f64::from(i) / f64::from(los)).max(0.1);
                let conds: Vec<usize> = std::iter::once(cause).chain(chronic.iter().copied()).collect();
                self.lab(d, &enc, at, &conds, severity);
            }
            if i == 1
                && let Some(&p) = CONDITIONS[cause].procedures.choose(&mut self.rng)
            {
                let at = self.moment(d, 9, 14);
                self.exam(d, &enc, at, p);
            }
        }
        if discharge > self.to {
            return;
        }
        if self.rng.random_bool(0.6) {
            let sent = self.moment(add_days(discharge, -2), 10, 17);
            self.push(
                DataType::Adt51,
                Some(discharge),
                None,
                &enc,
                Self::new_at(sent),
                Body::PlannedDischarge { expected: Moment::at(discharge, 10, 0, 0, 0) },
            );
        }
        let at = self.moment(discharge, 10, 12);
        let mut drugs: Vec<usize> = CONDITIONS[cause].drugs.to_vec();
        drugs.extend(oral.iter().copied());
        drugs.dedup();
        self.prescription(discharge, &enc, at, &drugs, 14);
        self.push(
            DataType::Adt52,
            Some(discharge),
            None,
            &enc,
            Self::new_at(at.plus_ms(1_800_000)),
            Body::Discharge { admitted: a, at },
        );
    }
}

/// Every event of one registration over `since..=to`, sorted by first send time.
pub fn events(seed: u64, person: &Person, facility: &Facility, reg: &Registration, to: Date) -> Vec<Event> {
    let mut rng = crate::rng::stream(seed, &["timeline", &facility.id, &reg.patient_id]);
    let baseline: Vec<f64> = (0..LAB_TESTS.len()).map(|_| rng.random_range(-1.0..1.0)).collect();
    let doctor = rng.random_range(0..facility.doctors.len().max(1));
    let seq = rng.random_range(0..5_000_000);
    let mut b = Builder {
        rng,
        person,
        facility,
        to,
        events: Vec::new(),
        seq,
        problems: Vec::new(),
        problem_versions: Vec::new(),
        baseline,
        doctor,
    };
    let since = reg.since;
    let span = days_between(since, to).max(0);

    // Conditions this facility treats: internal-medicine ones at general clinics and hospitals,
    // orthopaedic ones at orthopaedic clinics.
    let ortho_only = facility.kind == FacilityKind::Clinic && facility.departments == ["12"];
    let treats =
        |c: usize| (CONDITIONS[c].dept == "12") == ortho_only || facility.kind == FacilityKind::Hospital;
    let chronic: Vec<usize> = person.chronic.iter().copied().filter(|&c| treats(c)).collect();
    let chronic_drugs: Vec<usize> =
        chronic.iter().flat_map(|&c| CONDITIONS[c].drugs.iter().copied().take(2)).collect();

    // Patient information and allergies at first contact.
    let first = b.moment(since, 8, 10);
    let enc = b.enc(facility.departments.first().copied().unwrap_or("01"));
    let mut pi_versions = Builder::new_at(first);
    if let Some((moved, _)) = &person.moved
        && *moved > since
        && *moved <= to
    {
        let d = add_days(*moved, b.rng.random_range(3..60));
        if d <= to {
            pi_versions.push(Version { sent: b.moment(d, 8, 10), action: Action::Update });
        }
    }
    let height_mm = if person.sex == crate::people::Sex::Male {
        1580 + (person.index * 37) % 260
    } else {
        1450 + (person.index * 37) % 230
    };
    let weight_hg = height_mm / 3 + (person.index * 13) % 150;
    let blood = ["A", "O", "B", "AB", "A", "O", "A", "B", "O", "A"][person.index as usize % 10];
    b.push(DataType::Adt00, None, None, &enc, pi_versions, Body::PatientInfo { height_mm, weight_hg, blood });
    if !person.allergies.is_empty() && b.rng.random_bool(0.8) {
        b.push(
            DataType::Adt61,
            None,
            None,
            &enc,
            Builder::new_at(first.plus_ms(120_000)),
            Body::Allergy { allergens: person.allergies.clone(), recorded: since },
        );
    }

    // Outpatient days: a chronic cadence, plus acute episodes.
    // (day, conditions, drugs, days prescribed, first visit for these conditions)
    type PlannedVisit = (Date, Vec<usize>, Vec<usize>, u32, bool);
    let mut visits: Vec<PlannedVisit> = Vec::new();
    if !chronic.is_empty() {
        let interval = [14, 28, 28, 28, 42, 56][b.rng.random_range(0..6)];
        let mut d = since;
        let mut first_visit = true;
        while d <= to {
            let jitter = b.rng.random_range(-3..=3);
            visits.push((d, chronic.clone(), chronic_drugs.clone(), interval as u32, first_visit));
            first_visit = false;
            d = add_days(d, interval + jitter);
        }
    }
    let acute_pool: Vec<usize> =
        (0..CONDITIONS.len()).filter(|&c| !CONDITIONS[c].chronic && treats(c)).collect();
    let episodes =
        if chronic.is_empty() { b.rng.random_range(1..=3) } else { usize::from(b.rng.random_bool(0.3)) };
    let mut stays: Vec<(Date, i32, usize)> = Vec::new();
    for _ in 0..episodes {
        if acute_pool.is_empty() {
            break;
        }
        let c = acute_pool[crate::people::weighted_index(&mut b.rng, &acute_pool, |&i| CONDITIONS[i].weight)];
        let d = if visits.is_empty() && stays.is_empty() {
            since
        } else {
            add_days(since, b.rng.random_range(0..=span))
        };
        if facility.kind == FacilityKind::Hospital && b.rng.random_bool(CONDITIONS[c].admission_rate) {
            stays.push((d, b.rng.random_range(4..22), c));
            continue;
        }
        let drugs: Vec<usize> = CONDITIONS[c].drugs.to_vec();
        visits.push((d, vec![c], drugs.clone(), b.rng.random_range(3..8), true));
        if b.rng.random_bool(0.4) {
            let d2 = add_days(d, b.rng.random_range(5..10));
            if d2 <= to {
                visits.push((d2, vec![c], drugs, 5, false));
            }
        }
    }
    // Admissions for chronic conditions at hospitals.
    if facility.kind == FacilityKind::Hospital {
        let years = f64::from(span.max(1)) / 365.0;
        for &c in &chronic {
            let rate = CONDITIONS[c].admission_rate * years;
            if b.rng.random_bool(rate.min(0.9)) {
                stays.push((add_days(since, b.rng.random_range(0..=span)), b.rng.random_range(5..18), c));
            }
        }
    }
    stays.sort_by_key(|s| s.0);
    // Drop overlapping stays, and visits during a stay.
    let mut kept: Vec<(Date, i32, usize)> = Vec::new();
    for s in stays {
        if kept.last().is_none_or(|k| add_days(k.0, k.1 + 1) < s.0) {
            kept.push(s);
        }
    }
    visits.sort_by_key(|v| v.0);
    visits.dedup_by_key(|v| v.0);
    visits.retain(|v| v.0 <= to && !kept.iter().any(|k| v.0 >= k.0 && v.0 <= add_days(k.0, k.1)));
    for (d, conds, drugs, days, new_problem) in visits {
        b.visit(d, &conds, &drugs, days, new_problem);
    }
    for (d, los, cause) in kept {
        b.stay(d, los, cause, &chronic);
    }

    // The problem list: one PPR-01 key, a version per change.
    if !b.problem_versions.is_empty() {
        let mut pv = std::mem::take(&mut b.problem_versions);
        pv.sort_by_key(|(at, _)| *at);
        let versions: Vec<Version> = pv
            .iter()
            .enumerate()
            .map(|(i, (at, _))| Version {
                sent: *at,
                action: if i == 0 { Action::New } else { Action::Update },
            })
            .collect();
        let lists = pv.into_iter().map(|(_, l)| l).collect();
        let enc = Encounter { dept: b.problems.first().map_or("01", |p| p.dept), ..enc };
        b.push(DataType::Ppr01, None, None, &enc, versions, Body::Problems { lists });
    }
    let mut events = b.events;
    events.retain(|e| e.care_date.is_none_or(|d| d <= to) && !e.versions.is_empty());
    events.sort_by(|a, b| a.versions[0].sent.cmp(&b.versions[0].sent).then(a.data_type.cmp(&b.data_type)));
    events
}
