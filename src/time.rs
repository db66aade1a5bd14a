//! Wall-clock times as people and formats read them, in UTC (no time zone
//! database: reports must not depend on the machine's zone).

/// Year, month, day, hour, minute, second of seconds since the epoch
/// (civil-from-days).
fn civil(secs: u64) -> (i64, i64, i64, u64, u64, u64) {
    let days = (secs / 86_400) as i64;
    let (h, m, s) = ((secs % 86_400) / 3600, (secs % 3600) / 60, secs % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    (y, mo, d, h, m, s)
}

/// `YYYY-MM-DD HH:MM UTC` from seconds since the epoch.
pub fn utc(secs: u64) -> String {
    let (y, mo, d, h, m, _) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02} UTC")
}

/// RFC 3339 (`YYYY-MM-DDTHH:MM:SSZ`) from seconds since the epoch.
pub fn rfc3339(secs: u64) -> String {
    let (y, mo, d, h, m, s) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_and_a_later_time() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_028_859), "2025-11-25T00:00:59Z");
        assert_eq!(utc(1_764_028_859), "2025-11-25 00:00 UTC");
    }
}
