//! Durations on the command line: `500ms`, `8s`, `10m`, `1h`.

use std::time::Duration;

/// Ten years is beyond any timeout, TTL or certificate here; moka refuses TTLs over 1000
/// years with a panic, and certificate dates stop at 9999.
const MAX_MILLIS: u64 = 10 * 365 * 24 * 3_600_000;

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a number followed by `ms`, `s`, `m` or `h`.
    #[error("{0:?} is not a duration like 500ms, 8s, 10m or 1h")]
    Malformed(String),
    /// Longer than any setting could need.
    #[error("{0:?} is longer than 10 years (87600h)")]
    TooLong(String),
}

/// Reads `500ms`, `8s`, `10m` or `1h`; at most ten years.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let malformed = || DurationError::Malformed(text.chars().take(64).collect());
    let n: u64 = number.parse().map_err(|_| malformed())?;
    let millis = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(malformed()),
    };
    match millis {
        Some(ms) if ms <= MAX_MILLIS => Ok(Duration::from_millis(ms)),
        Some(_) => Err(DurationError::TooLong(text.chars().take(64).collect())),
        None => Err(malformed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("8s"), Ok(Duration::from_secs(8)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(
            parse_duration("87600h"),
            Ok(Duration::from_secs(87600 * 3600))
        );
        assert!(
            parse_duration("9000000h")
                .unwrap_err()
                .to_string()
                .contains("10 years")
        );
        for bad in ["", "s", "8", "8x", "-1s", "99999999999999999999h", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
