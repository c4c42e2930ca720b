//! Time as hapilot reads and writes it: epoch seconds, the report's `YYYY-MM-DDTHH:MM:SSZ`,
//! PostgreSQL's and barman's timestamps, barman's compact ids. One module, so every rule
//! about a timestamp's text is written once.

/// Epoch seconds as `YYYY-MM-DDTHH:MM:SSZ` (also the report's object name stem).
pub fn epoch_text(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

/// Parses `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]]` (PostgreSQL's and barman's timestamp text;
/// also accepts RFC 3339's `T` and `Z`) to epoch seconds, fractions dropped.
pub fn parse_pg_time(text: &str) -> Option<i64> {
    let t = text.trim();
    let (date, rest) = (t.get(..10)?, t.get(11..)?);
    if !matches!(t.as_bytes().get(10), Some(b' ' | b'T')) {
        return None;
    }
    let clock = rest.get(..8)?;
    let mut tail = &rest[8..];
    if let Some(frac) = tail.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        tail = &frac[digits..];
    }
    let offset = match tail {
        "" | "Z" => 0,
        _ => {
            let sign = match tail.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits: String = tail[1..].chars().filter(|c| *c != ':').collect();
            let (h, m) = match digits.len() {
                2 => (digits.parse::<i64>().ok()?, 0),
                4 => (digits[..2].parse::<i64>().ok()?, digits[2..].parse().ok()?),
                _ => return None,
            };
            sign * (h * 3_600 + m * 60)
        }
    };
    let compact = format!(
        "{}{}{}T{}{}{}",
        date.get(0..4)?,
        date.get(5..7)?,
        date.get(8..10)?,
        clock.get(0..2)?,
        clock.get(3..5)?,
        clock.get(6..8)?
    );
    Some(parse_compact_time(&compact)? - offset)
}

/// Parses a `YYYYMMDDTHHMMSS[Z]` timestamp (barman backup ids, snapshot names) to epoch seconds.
pub fn parse_compact_time(text: &str) -> Option<i64> {
    let t = text.strip_suffix('Z').unwrap_or(text);
    if t.len() != 15 || t.as_bytes()[8] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, s) = (
        num(0..4)?,
        num(4..6)?,
        num(6..8)?,
        num(9..11)?,
        num(11..13)?,
        num(13..15)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3_600 + mi * 60 + s)
}

/// Epoch seconds as PostgreSQL's `recovery_target_time` text in UTC
/// (`2026-11-30 10:00:00+00`).
pub fn pg_utc_timestamp(epoch: i64) -> String {
    epoch_text(epoch).replace('T', " ").replace('Z', "+00")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_round_trips_through_epoch_seconds() {
        let t = 1_796_076_600;
        assert_eq!(epoch_text(t), "2026-11-30T22:10:00Z");
        assert_eq!(parse_pg_time(&epoch_text(t)), Some(t));
        assert_eq!(parse_pg_time(&pg_utc_timestamp(t)), Some(t));
        assert_eq!(parse_pg_time("2026-12-01 00:10:00.123456+02:00"), Some(t));
        assert_eq!(parse_compact_time("20261130T221000Z"), Some(t));
        assert_eq!(parse_compact_time("20261330T221000Z"), None);
    }
}
