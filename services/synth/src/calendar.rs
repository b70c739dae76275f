//! Dates and send times in the forms SS-MIX2 writes them.

use jiff::ToSpan;
use jiff::civil::Date;

/// `YYYYMMDD`.
pub fn ymd(d: Date) -> String {
    format!("{:04}{:02}{:02}", d.year(), d.month(), d.day())
}

/// `d` plus `n` days (negative goes back), clamped to jiff's range (never reached by the generator).
pub fn add_days(d: Date, n: i32) -> Date {
    d.checked_add(i64::from(n).days()).unwrap_or(d)
}

/// Whole days from `a` to `b`.
pub fn days_between(a: Date, b: Date) -> i32 {
    a.until((jiff::Unit::Day, b)).map(|s| s.get_days()).unwrap_or(0)
}

/// A moment of a day to the millisecond: file timestamps, MSH-7, order times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Moment {
    pub date: Date,
    /// Milliseconds since midnight.
    pub ms: u32,
}

impl Moment {
    pub fn at(date: Date, hour: u32, minute: u32, second: u32, milli: u32) -> Self {
        Self { date, ms: ((hour * 60 + minute) * 60 + second) * 1000 + milli }
    }

    /// This moment plus `ms` milliseconds, rolling over into following days.
    pub fn plus_ms(self, ms: u64) -> Self {
        let total = u64::from(self.ms) + ms;
        let days = (total / 86_400_000) as i32;
        Self { date: add_days(self.date, days), ms: (total % 86_400_000) as u32 }
    }

    fn parts(self) -> (u32, u32, u32, u32) {
        let s = self.ms / 1000;
        (s / 3600, s / 60 % 60, s % 60, self.ms % 1000)
    }

    /// `YYYYMMDDHHMMSSfff`, the file-name timestamp.
    pub fn stamp17(self) -> String {
        let (h, m, s, f) = self.parts();
        format!("{}{h:02}{m:02}{s:02}{f:03}", ymd(self.date))
    }

    /// `YYYYMMDDHHMMSS.fff`, as MSH-7 carries it in the samples.
    pub fn msh7(self) -> String {
        let (h, m, s, f) = self.parts();
        format!("{}{h:02}{m:02}{s:02}.{f:03}", ymd(self.date))
    }

    /// `YYYYMMDDHHMMSS`.
    pub fn secs14(self) -> String {
        let (h, m, s, _) = self.parts();
        format!("{}{h:02}{m:02}{s:02}", ymd(self.date))
    }

    /// `YYYYMMDDHHMM`.
    pub fn mins12(self) -> String {
        let (h, m, _, _) = self.parts();
        format!("{}{h:02}{m:02}", ymd(self.date))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_format_and_roll_over() {
        let d = Date::constant(2024, 2, 28);
        let m = Moment::at(d, 23, 59, 59, 999);
        assert_eq!(m.stamp17(), "20240228235959999");
        assert_eq!(m.msh7(), "20240228235959.999");
        assert_eq!(m.plus_ms(1).stamp17(), "20240229000000000");
        assert_eq!(days_between(d, add_days(d, 400)), 400);
    }
}
