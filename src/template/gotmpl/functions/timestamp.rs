//! consul-template's `timestamp`: the current UTC time, as RFC 3339, Unix
//! seconds (`timestamp "unix"`) or through a Go time layout
//! (`timestamp "2006-01-02 15:04"`), formatted as Go's `time.Format`
//! formats a UTC time.

use std::time::{SystemTime, UNIX_EPOCH};

use super::super::value::Value;
use super::{Param, Table};

/// Go's `time.RFC3339`.
const RFC3339: &str = "2006-01-02T15:04:05Z07:00";

pub fn register(table: &mut Table) {
    table.add("timestamp", &[], Some(Param::Str), |a| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let now = Utc::from_unix(now.as_secs() as i64, now.subsec_nanos());
        let layout = match a.as_slice() {
            [] => RFC3339,
            [layout] => layout.as_str().unwrap_or_default(),
            _ => {
                return Err(format!(
                    "timestamp: wrong number of arguments, expected 0 or 1, but got {}",
                    a.len()
                ));
            }
        };
        Ok(Value::string(if layout == "unix" {
            now.unix.to_string()
        } else {
            format(layout, &now)
        }))
    });
}

/// A UTC time broken into the fields Go's layouts print.
struct Utc {
    unix: i64,
    year: i64,
    /// 1–12.
    month: usize,
    day: u32,
    /// 1–366.
    year_day: u32,
    /// 0 is Sunday.
    weekday: usize,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
}

impl Utc {
    fn from_unix(unix: i64, nanos: u32) -> Utc {
        let (days, seconds) = (unix.div_euclid(86_400), unix.rem_euclid(86_400) as u32);
        let (year, month, day) = civil_from_days(days);
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        let before_month = CUMULATIVE_DAYS[month - 1] + u32::from(leap && month > 2);
        Utc {
            unix,
            year,
            month,
            day,
            year_day: before_month + day,
            weekday: (days + 4).rem_euclid(7) as usize,
            hour: seconds / 3600,
            minute: seconds / 60 % 60,
            second: seconds % 60,
            nanos,
        }
    }
}

/// Days before each month in a common year.
const CUMULATIVE_DAYS: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];

/// The proleptic Gregorian date of a day counted from 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, usize, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as usize;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// One element of a Go layout, as `time.nextStdChunk` finds them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekday,
    Weekday,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    Pm,
    LowerPm,
    /// `MST`: the zone's abbreviation.
    ZoneName,
    /// A numeric offset (`-0700` and kin): printed as `+0000`-like text.
    Offset(&'static str),
    /// An ISO 8601 offset (`Z07:00` and kin): `Z` in UTC.
    Iso8601Offset,
    /// `.000` (`zeros`) or `.999` (trailing zeros dropped), with `,` or `.`.
    Fraction {
        separator: char,
        digits: usize,
        zeros: bool,
    },
}

/// The numeric offsets, longest first, with what UTC prints for each.
const OFFSETS: [(&str, &str); 5] = [
    ("-070000", "+000000"),
    ("-07:00:00", "+00:00:00"),
    ("-0700", "+0000"),
    ("-07:00", "+00:00"),
    ("-07", "+00"),
];
const ISO8601_OFFSETS: [&str; 5] = ["Z070000", "Z07:00:00", "Z0700", "Z07:00", "Z07"];

/// The first layout element at the start of `rest` and its length in
/// bytes, or `None` when `rest` starts with a literal character.
fn chunk_at(rest: &str) -> Option<(Chunk, usize)> {
    let b = rest.as_bytes();
    let at = |i: usize| b.get(i).copied();
    let lower_after = |n: usize| at(n).is_some_and(|c| c.is_ascii_lowercase());
    Some(match b.first()? {
        b'J' if rest.starts_with("January") => (Chunk::LongMonth, 7),
        b'J' if rest.starts_with("Jan") && !lower_after(3) => (Chunk::Month, 3),
        b'M' if rest.starts_with("Monday") => (Chunk::LongWeekday, 6),
        b'M' if rest.starts_with("Mon") && !lower_after(3) => (Chunk::Weekday, 3),
        b'M' if rest.starts_with("MST") => (Chunk::ZoneName, 3),
        b'0' => match at(1)? {
            b'1' => (Chunk::ZeroMonth, 2),
            b'2' => (Chunk::ZeroDay, 2),
            b'3' => (Chunk::ZeroHour12, 2),
            b'4' => (Chunk::ZeroMinute, 2),
            b'5' => (Chunk::ZeroSecond, 2),
            b'6' => (Chunk::Year, 2),
            b'0' if at(2) == Some(b'2') => (Chunk::ZeroYearDay, 3),
            _ => return None,
        },
        b'1' if at(1) == Some(b'5') => (Chunk::Hour, 2),
        b'1' => (Chunk::NumMonth, 1),
        b'2' if rest.starts_with("2006") => (Chunk::LongYear, 4),
        b'2' => (Chunk::Day, 1),
        // `_2006` is a literal `_` before the year: the caller moves on
        // one byte and finds the year next.
        b'_' if rest.starts_with("_2") && !rest.starts_with("_2006") => (Chunk::UnderDay, 2),
        b'_' if rest.starts_with("__2") => (Chunk::UnderYearDay, 3),
        b'3' => (Chunk::Hour12, 1),
        b'4' => (Chunk::Minute, 1),
        b'5' => (Chunk::Second, 1),
        b'P' if at(1) == Some(b'M') => (Chunk::Pm, 2),
        b'p' if at(1) == Some(b'm') => (Chunk::LowerPm, 2),
        b'-' => {
            let (layout, utc) = OFFSETS.iter().find(|(l, _)| rest.starts_with(l))?;
            (Chunk::Offset(utc), layout.len())
        }
        b'Z' => {
            let layout = ISO8601_OFFSETS.iter().find(|l| rest.starts_with(*l))?;
            (Chunk::Iso8601Offset, layout.len())
        }
        &separator @ (b'.' | b',') => {
            let digit = *b.get(1).filter(|c| matches!(c, b'0' | b'9'))?;
            let digits = b[1..].iter().take_while(|&&c| c == digit).count();
            // Only a run of one digit that ends the number is a fraction.
            if at(1 + digits).is_some_and(|c| c.is_ascii_digit()) {
                return None;
            }
            let chunk = Chunk::Fraction {
                separator: char::from(separator),
                digits,
                zeros: digit == b'0',
            };
            (chunk, 1 + digits)
        }
        _ => return None,
    })
}

/// `t.Format(layout)` for a UTC time.
fn format(layout: &str, t: &Utc) -> String {
    let mut out = String::with_capacity(layout.len() + 10);
    let mut rest = layout;
    while let Some(c) = rest.chars().next() {
        let Some((chunk, len)) = chunk_at(rest) else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        };
        rest = &rest[len..];
        let hour12 = match t.hour % 12 {
            0 => 12,
            h => h,
        };
        match chunk {
            Chunk::LongMonth => out.push_str(MONTHS[t.month - 1]),
            Chunk::Month => out.push_str(&MONTHS[t.month - 1][..3]),
            Chunk::NumMonth => out.push_str(&t.month.to_string()),
            Chunk::ZeroMonth => out.push_str(&format!("{:02}", t.month)),
            Chunk::LongWeekday => out.push_str(WEEKDAYS[t.weekday]),
            Chunk::Weekday => out.push_str(&WEEKDAYS[t.weekday][..3]),
            Chunk::Day => out.push_str(&t.day.to_string()),
            Chunk::UnderDay => out.push_str(&format!("{:>2}", t.day)),
            Chunk::ZeroDay => out.push_str(&format!("{:02}", t.day)),
            Chunk::UnderYearDay => out.push_str(&format!("{:>3}", t.year_day)),
            Chunk::ZeroYearDay => out.push_str(&format!("{:03}", t.year_day)),
            Chunk::Hour => out.push_str(&format!("{:02}", t.hour)),
            Chunk::Hour12 => out.push_str(&hour12.to_string()),
            Chunk::ZeroHour12 => out.push_str(&format!("{hour12:02}")),
            Chunk::Minute => out.push_str(&t.minute.to_string()),
            Chunk::ZeroMinute => out.push_str(&format!("{:02}", t.minute)),
            Chunk::Second => out.push_str(&t.second.to_string()),
            Chunk::ZeroSecond => out.push_str(&format!("{:02}", t.second)),
            Chunk::LongYear => out.push_str(&format!("{:04}", t.year)),
            Chunk::Year => out.push_str(&format!("{:02}", t.year.rem_euclid(100))),
            Chunk::Pm => out.push_str(if t.hour >= 12 { "PM" } else { "AM" }),
            Chunk::LowerPm => out.push_str(if t.hour >= 12 { "pm" } else { "am" }),
            Chunk::ZoneName => out.push_str("UTC"),
            Chunk::Offset(utc) => out.push_str(utc),
            Chunk::Iso8601Offset => out.push('Z'),
            Chunk::Fraction {
                separator,
                digits,
                zeros,
            } => {
                let nanos = format!("{:09}", t.nanos);
                let mut fraction = &nanos[..digits.min(9)];
                if !zeros {
                    fraction = fraction.trim_end_matches('0');
                    if fraction.is_empty() {
                        continue;
                    }
                }
                out.push(separator);
                out.push_str(fraction);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's own reference time, 2006-01-02T15:04:05.123456789Z (a
    /// Monday), a year's last day and a leap day, formatted as Go formats
    /// them.
    #[test]
    fn layouts_format_as_go_formats_a_utc_time() {
        let reference = Utc::from_unix(1_136_214_245, 123_456_789);
        let cases = [
            (RFC3339, "2006-01-02T15:04:05Z"),
            (
                "Mon Jan _2 15:04:05 MST 2006",
                "Mon Jan  2 15:04:05 UTC 2006",
            ),
            (
                "Monday, 02-Jan-06 03:04:05 PM",
                "Monday, 02-Jan-06 03:04:05 PM",
            ),
            (
                "1/2 3:4:5 pm -0700 -07:00 -07",
                "1/2 3:4:5 pm +0000 +00:00 +00",
            ),
            ("Z0700 Z07:00:00|002 __2", "Z Z|002   2"),
            (".000 .999 ,000000 .9", ".123 .123 ,123456 .1"),
            (
                "2006-01-02 15:04:05.000000000",
                "2006-01-02 15:04:05.123456789",
            ),
            ("January Janet Month Mon", "January Janet Month Mon"),
            ("_2006 x.0001 15h", "_2006 x.0001 15h"),
            ("no layout here: été", "no layout here: été"),
            (
                "_2_2006 .0009 .90 ,99 Z07:00:00 -07:00:00 -070000 Z070000 __2__",
                " 2_2006 .0009 .90 ,12 Z +00:00:00 +000000 Z   2__",
            ),
        ];
        for (layout, want) in cases {
            assert_eq!(format(layout, &reference), want, "{layout}");
        }
        let later = Utc::from_unix(946_598_407, 500_000_000);
        assert_eq!(
            format("Monday 2006-01-02 002 .999 .000 3PM", &later),
            "Friday 1999-12-31 365 .5 .500 12AM"
        );
        let leap_day = Utc::from_unix(951_782_400, 0);
        assert_eq!(
            format("2006-01-02 002 .999|", &leap_day),
            "2000-02-29 060 |"
        );
    }

    #[test]
    fn unix_gives_seconds_and_two_layouts_are_an_error() {
        let mut table = Table::default();
        register(&mut table);
        let run = table.get("timestamp").unwrap().run;
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let unix = run(vec![Value::str("unix")]).unwrap();
        let unix: u64 = unix.as_str().unwrap().parse().unwrap();
        assert!(unix >= before.as_secs() && unix <= before.as_secs() + 60);
        let rfc3339 = run(vec![]).unwrap();
        assert_eq!(
            rfc3339.as_str().unwrap().len(),
            "2006-01-02T15:04:05Z".len()
        );
        assert_eq!(
            run(vec![Value::str("2006"), Value::str("01")]).err(),
            Some("timestamp: wrong number of arguments, expected 0 or 1, but got 2".to_owned())
        );
    }
}
