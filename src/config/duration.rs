//! Durations written the way operators write them: `90s`, `10m`, `12h`, `1h30m`, `2d`.

use std::fmt;
use std::str::FromStr;

/// A span of time read from the configuration. Serializes back to its shortest written form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(std::time::Duration);

impl Duration {
    pub const fn from_secs(secs: u64) -> Self {
        Duration(std::time::Duration::from_secs(secs))
    }
    pub fn as_std(self) -> std::time::Duration {
        self.0
    }
    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim();
        if text.is_empty() {
            return Err("empty duration; write it like `90s`, `10m`, `12h` or `1h30m`".into());
        }
        let mut total: u64 = 0;
        let mut digits = String::new();
        for c in text.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86400,
                _ => {
                    return Err(format!(
                        "invalid duration `{text}`: unknown unit `{c}` (use s, m, h or d)"
                    ))
                }
            };
            if digits.is_empty() {
                return Err(format!(
                    "invalid duration `{text}`: a number must come before `{c}`"
                ));
            }
            let n: u64 = digits
                .parse()
                .map_err(|_| format!("invalid duration `{text}`: number too large"))?;
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| format!("invalid duration `{text}`: too large"))?;
            digits.clear();
        }
        if !digits.is_empty() {
            return Err(format!(
                "invalid duration `{text}`: missing unit after `{digits}` (write `{digits}s`, `{digits}m` or `{digits}h`)"
            ));
        }
        Ok(Duration::from_secs(total))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.0.as_secs();
        if secs == 0 {
            return f.write_str("0s");
        }
        for (unit, len) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] {
            if secs >= len {
                write!(f, "{}{unit}", secs / len)?;
                secs %= len;
            }
        }
        Ok(())
    }
}

impl serde::Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as `90s`, `10m` or `12h`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "a duration needs a unit: write `{v}s`, `{v}m` or `{v}h`"
                )))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
                self.visit_u64(v.unsigned_abs())
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (text, secs, back) in [
            ("90s", 90, "1m30s"),
            ("10m", 600, "10m"),
            ("12h", 43200, "12h"),
            ("1h30m", 5400, "1h30m"),
            ("2d", 172800, "2d"),
            ("0s", 0, "0s"),
        ] {
            let d: Duration = text.parse().unwrap();
            assert_eq!(d.as_secs(), secs, "{text}");
            assert_eq!(d.to_string(), back);
        }
    }

    #[test]
    fn rejects_bad_input() {
        for text in ["", "10", "m", "10x", "1.5h", "-1s", "99999999999999999999s"] {
            assert!(text.parse::<Duration>().is_err(), "{text} should fail");
        }
    }
}
