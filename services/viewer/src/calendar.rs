//! The calendar view: a month grid (weeks from Monday) showing, for each day, which facilities
//! recorded which data types. Pure: entries in, grid out.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::{Date, Weekday};

use crate::timeline::Entry;

/// What one facility recorded on one day: data type code → number of records.
pub type FacilityDay = BTreeMap<String, usize>;

/// One day of the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Day {
    pub date: Date,
    /// facility → what it recorded that day.
    pub facilities: BTreeMap<String, FacilityDay>,
}

/// A month grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Month {
    pub year: i16,
    pub month: i8,
    /// Rows of seven cells, Monday first; `None` pads days outside the month.
    pub weeks: Vec<[Option<Day>; 7]>,
    /// Months (`YYYY-MM`) that have entries, oldest first, for navigation.
    pub months_with_data: Vec<String>,
}

fn parse_date(yyyymmdd: &str) -> Option<Date> {
    if yyyymmdd.len() != 8 {
        return None;
    }
    let y = yyyymmdd[..4].parse().ok()?;
    let m = yyyymmdd[4..6].parse().ok()?;
    let d = yyyymmdd[6..8].parse().ok()?;
    Date::new(y, m, d).ok()
}

/// Parses `YYYY-MM`.
pub fn parse_month(s: &str) -> Option<(i16, i8)> {
    let (y, m) = s.split_once('-')?;
    let (y, m): (i16, i8) = (y.parse().ok()?, m.parse().ok()?);
    Date::new(y, m, 1).ok().map(|_| (y, m))
}

/// The month of the newest entry (entries newest first), if any.
pub fn newest_month(entries: &[Entry]) -> Option<(i16, i8)> {
    entries.iter().find_map(|e| parse_date(&e.date)).map(|d| (d.year(), d.month()))
}

/// Builds the grid of `year`-`month` from `entries`.
pub fn month(entries: &[Entry], year: i16, month: i8) -> Month {
    let first = Date::new(year, month, 1).expect("a valid month");
    let mut by_day: BTreeMap<i8, BTreeMap<String, FacilityDay>> = BTreeMap::new();
    let mut months = BTreeSet::new();
    for e in entries {
        let Some(d) = parse_date(&e.date) else { continue };
        months.insert(format!("{:04}-{:02}", d.year(), d.month()));
        if d.year() == year && d.month() == month {
            *by_day
                .entry(d.day())
                .or_default()
                .entry(e.facility.clone())
                .or_default()
                .entry(e.data_kind.clone())
                .or_default() += 1;
        }
    }
    let lead = first.weekday().to_monday_zero_offset() as usize;
    let mut cells: Vec<Option<Day>> = vec![None; lead];
    for day in 1..=first.days_in_month() {
        let date = Date::new(year, month, day).expect("a day of the month");
        cells.push(Some(Day { date, facilities: by_day.remove(&day).unwrap_or_default() }));
    }
    while !cells.len().is_multiple_of(7) {
        cells.push(None);
    }
    let weeks = cells.chunks(7).map(|w| std::array::from_fn(|i| w[i].clone())).collect();
    Month { year, month, weeks, months_with_data: months.into_iter().collect() }
}

/// Day names for the header, Monday first.
pub const WEEKDAYS: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

#[cfg(test)]
mod tests {
    use super::*;

    fn e(date: &str, f: &str, kind: &str) -> Entry {
        Entry {
            record_id: 0,
            facility: f.into(),
            patient_id: "P".into(),
            date: date.into(),
            data_kind: kind.into(),
            message_type: String::new(),
            transaction_datetime: String::new(),
            department: String::new(),
            order_no: String::new(),
            drugs: vec![],
            labs: vec![],
            diagnoses: vec![],
            encounters: vec![],
        }
    }

    #[test]
    fn the_grid_starts_on_monday_and_holds_each_facilitys_records_per_day() {
        // 2024-05-01 is a Wednesday.
        let v = vec![
            e("20240502", "A", "OMP-01"),
            e("20240502", "A", "OMP-01"),
            e("20240502", "B", "OML-11"),
            e("20240615", "A", "OMP-01"),
        ];
        let m = month(&v, 2024, 5);
        assert!(m.weeks[0][0].is_none() && m.weeks[0][1].is_none());
        assert_eq!(m.weeks[0][2].as_ref().unwrap().date.day(), 1);
        let thu = m.weeks[0][3].as_ref().unwrap();
        assert_eq!(thu.facilities["A"]["OMP-01"], 2);
        assert_eq!(thu.facilities["B"]["OML-11"], 1);
        assert_eq!(m.weeks.iter().flatten().flatten().count(), 31);
        assert_eq!(m.months_with_data, vec!["2024-05", "2024-06"]);
        assert_eq!(newest_month(&v), Some((2024, 5)));
        assert_eq!(parse_month("2024-13"), None);
    }
}
