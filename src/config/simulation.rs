//! `simulation:`: the models `runnerctl simulate` runs the scheduler against. Read by no other
//! command; every key has a default.
//!
//! A delay is a distribution ([`Dist`]): a bare time (`35s`, `250ms`, `1.5`, seconds when a
//! number) is fixed; `{uniform: {min, max}}`, `{lognormal: {median, p95}}` and
//! `{exponential: {mean}}` draw a new value for each use.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// `simulation:`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulationConfig {
    /// From a job event at the forge to its delivery at `serve`.
    pub delivery_lag: Dist,
    /// Added to a task for each forge call it makes.
    pub api_latency: Dist,
    /// From an instance running to its runner polling for a job (registration, first poll).
    pub runner_startup: Dist,
    /// From the delete call to the instance gone (billed until then).
    pub deletion: Dist,
    /// How long a job of a full group waits before it asks again for a slot; `0` asks again
    /// the moment one of the group's runners is removed.
    pub capacity_retry: Dist,
    /// How often each group's health check runs (`healthcheck_interval` when not set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck_interval: Option<Time>,
    pub forge: ForgeModel,
    /// Per backend, by its name or its kind (a name wins): boot time, prices, failures.
    /// A backend not listed takes its kind's defaults.
    pub backends: BTreeMap<String, CloudModel>,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        SimulationConfig {
            delivery_lag: Dist::Fixed(Time(1.0)),
            api_latency: Dist::Fixed(Time(0.2)),
            runner_startup: Dist::LogNormal {
                median: Time(8.0),
                p95: Time(15.0),
            },
            deletion: Dist::Fixed(Time(10.0)),
            capacity_retry: Dist::Uniform {
                min: Time(0.25),
                max: Time(0.75),
            },
            healthcheck_interval: None,
            forge: ForgeModel::default(),
            backends: BTreeMap::new(),
        }
    }
}

/// `simulation.forge`: how the modelled forge treats runners, deliveries and API calls.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForgeModel {
    /// A queued job goes to any idle runner whose labels fit (GitHub's behaviour: runner
    /// theft); `false`: a runner takes only the job it was made for, when it has one.
    pub any_idle_runner: bool,
    /// Fraction of webhook deliveries lost (0 to 1).
    pub lost: f64,
    /// Fraction of deliveries sent twice.
    pub repeated: f64,
    /// Fraction of deliveries held back by `reorder_lag`, so that later events overtake them.
    pub reordered: f64,
    pub reorder_lag: Dist,
    /// Points per minute before the forge refuses calls (GitHub's secondary limit: about 900
    /// per REST endpoint); `0`: no limit.
    pub points_per_minute: u64,
    /// Points a read (GET) costs.
    pub read_points: u64,
    /// Points a write (POST, PUT, PATCH, DELETE) costs.
    pub write_points: u64,
}

impl Default for ForgeModel {
    fn default() -> Self {
        ForgeModel {
            any_idle_runner: true,
            lost: 0.0,
            repeated: 0.0,
            reordered: 0.0,
            reorder_lag: Dist::Uniform {
                min: Time(1.0),
                max: Time(30.0),
            },
            points_per_minute: 900,
            read_points: 1,
            write_points: 5,
        }
    }
}

/// `simulation.backends.NAME`: a cloud as the simulator models it. Unset keys take the
/// kind's defaults ([`CloudModel::defaults`]).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CloudModel {
    /// From the create call to the instance running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot: Option<Dist>,
    /// What a running instance costs, per hour, in the operator's currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_per_hour: Option<f64>,
    /// Prices per hour by machine type (a group's `spec.instance_type` or
    /// `spec.machine_type`); a type not listed costs `price_per_hour`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_prices: Option<BTreeMap<String, f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing: Option<Billing>,
    /// Fraction of create calls that fail (transiently; the task retries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_failure_rate: Option<f64>,
    /// Interruptions per instance-hour (spot or preemptible capacity taken back): the job on
    /// it fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spot_interruption_rate: Option<f64>,
    /// From the start call to a stopped warm instance running again (resume, power on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<Dist>,
    /// What a stopped instance costs per hour (its disks; suspended memory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_price_per_hour: Option<f64>,
}

/// The model of a backend with every key filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cloud {
    pub boot: Dist,
    pub price_per_hour: f64,
    pub machine_prices: BTreeMap<String, f64>,
    pub billing: Billing,
    pub create_failure_rate: f64,
    pub spot_interruption_rate: f64,
    pub start: Dist,
    pub stopped_price_per_hour: f64,
}

impl CloudModel {
    /// The defaults of a backend kind: boot times as measured on each (README, "Simulation"),
    /// on-demand prices of a 2-vCPU machine.
    pub fn defaults(kind: &str) -> Cloud {
        let lognormal = |median: f64, p95: f64| Dist::LogNormal {
            median: Time(median),
            p95: Time(p95),
        };
        let per_second = Billing {
            per: BillingUnit::Second,
            minimum: Time(60.0),
        };
        // Stopped: EC2 bills a 30 GB gp3 volume ($0.08 per GB-month), Compute Engine a 50 GB
        // balanced disk and the suspended memory.
        let (boot, price, start, stopped) = match kind {
            "aws" => (lognormal(35.0, 60.0), 0.0416, lognormal(12.0, 20.0), 0.0033),
            "gcp" => (lognormal(30.0, 50.0), 0.0335, lognormal(10.0, 20.0), 0.0075),
            "vsphere" => (lognormal(60.0, 120.0), 0.0, lognormal(30.0, 60.0), 0.0),
            "docker" => (lognormal(2.0, 5.0), 0.0, lognormal(1.0, 2.0), 0.0),
            _ => (Dist::Fixed(Time(0.0)), 0.0, Dist::Fixed(Time(0.0)), 0.0),
        };
        Cloud {
            boot,
            price_per_hour: price,
            machine_prices: BTreeMap::new(),
            billing: per_second,
            create_failure_rate: 0.0,
            spot_interruption_rate: 0.0,
            start,
            stopped_price_per_hour: stopped,
        }
    }

    /// This model over `base`.
    pub fn over(&self, base: Cloud) -> Cloud {
        Cloud {
            boot: self.boot.clone().unwrap_or(base.boot),
            price_per_hour: self.price_per_hour.unwrap_or(base.price_per_hour),
            machine_prices: self.machine_prices.clone().unwrap_or(base.machine_prices),
            billing: self.billing.clone().unwrap_or(base.billing),
            create_failure_rate: self.create_failure_rate.unwrap_or(base.create_failure_rate),
            spot_interruption_rate: self
                .spot_interruption_rate
                .unwrap_or(base.spot_interruption_rate),
            start: self.start.clone().unwrap_or(base.start),
            stopped_price_per_hour: self
                .stopped_price_per_hour
                .unwrap_or(base.stopped_price_per_hour),
        }
    }
}

/// How a cloud bills a running instance: by the second, minute or hour begun, with a minimum.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Billing {
    pub per: BillingUnit,
    #[serde(default)]
    pub minimum: Time,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BillingUnit {
    Second,
    Minute,
    Hour,
}

impl Billing {
    /// The seconds billed for an instance that ran `secs`.
    pub fn billed_secs(&self, secs: f64) -> f64 {
        let unit = match self.per {
            BillingUnit::Second => 1.0,
            BillingUnit::Minute => 60.0,
            BillingUnit::Hour => 3600.0,
        };
        let rounded = (secs / unit).ceil() * unit;
        rounded.max(self.minimum.0)
    }
}

/// A time of the simulation's models, in seconds (fractions allowed). Written as a number of
/// seconds or as `250ms`, `35s`, `2m`, `1h`, `1.5s`.
#[derive(Debug, Clone, Copy, Default, PartialEq, PartialOrd)]
pub struct Time(pub f64);

impl Time {
    pub fn secs(self) -> f64 {
        self.0
    }
}

impl std::str::FromStr for Time {
    type Err = String;
    fn from_str(s: &str) -> Result<Time, String> {
        let t = s.trim();
        let bad = || {
            format!("invalid time `{t}`: write it like `250ms`, `35s`, `2m`, `1h30m` or a number of seconds")
        };
        if t.is_empty() {
            return Err(bad());
        }
        // A number of seconds, or number-unit pairs (`1h30m`, `1.5s`, `250ms`).
        if let Ok(n) = t.parse::<f64>() {
            return checked(n, t);
        }
        let mut total = 0.0;
        let mut rest = t;
        while !rest.is_empty() {
            let split = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            let (num, tail) = rest.split_at(split);
            let n: f64 = num.parse().map_err(|_| bad())?;
            let unit_len = tail
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(tail.len());
            let (unit, next) = tail.split_at(unit_len);
            let scale = match unit {
                "ms" => 0.001,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                "d" => 86400.0,
                u => {
                    return Err(format!(
                        "invalid time `{t}`: unknown unit `{u}` (use ms, s, m, h or d)"
                    ))
                }
            };
            total += n * scale;
            rest = next;
        }
        checked(total, t)
    }
}

fn checked(v: f64, t: &str) -> Result<Time, String> {
    if !v.is_finite() || v < 0.0 {
        return Err(format!("invalid time `{t}`: must be zero or more"));
    }
    Ok(Time(v))
}

impl std::fmt::Display for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = (self.0 * 1000.0).round();
        if ms % 1000.0 == 0.0 {
            write!(f, "{}s", ms / 1000.0)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        let v = serde_yaml::Value::deserialize(d)?;
        time_of(&v).map_err(D::Error::custom)
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

fn time_of(v: &serde_yaml::Value) -> Result<Time, String> {
    match v {
        serde_yaml::Value::Number(n) => match n.as_f64() {
            Some(x) if x.is_finite() && x >= 0.0 => Ok(Time(x)),
            _ => Err(format!("invalid time `{n}`: must be zero or more seconds")),
        },
        serde_yaml::Value::String(s) => s.parse(),
        other => Err(format!(
            "expected a time like `35s` or a number of seconds, found {}",
            kind_of(other)
        )),
    }
}

fn kind_of(v: &serde_yaml::Value) -> &'static str {
    match v {
        serde_yaml::Value::Null => "nothing",
        serde_yaml::Value::Bool(_) => "a boolean",
        serde_yaml::Value::Number(_) => "a number",
        serde_yaml::Value::String(_) => "a string",
        serde_yaml::Value::Sequence(_) => "a list",
        serde_yaml::Value::Mapping(_) => "a mapping",
        serde_yaml::Value::Tagged(_) => "a tagged value",
    }
}

/// A distribution of a modelled delay.
#[derive(Debug, Clone, PartialEq)]
pub enum Dist {
    /// Always this.
    Fixed(Time),
    /// Evenly between `min` and `max`.
    Uniform { min: Time, max: Time },
    /// Log-normal with this median and 95th percentile (`p95` above `median`): the usual
    /// shape of boot times.
    LogNormal { median: Time, p95: Time },
    /// Exponential with this mean (memoryless; job durations of queueing theory).
    Exponential { mean: Time },
}

impl Dist {
    /// Its mean, in seconds.
    pub fn mean(&self) -> f64 {
        match self {
            Dist::Fixed(t) => t.0,
            Dist::Uniform { min, max } => (min.0 + max.0) / 2.0,
            Dist::LogNormal { median, p95 } => {
                let (mu, sigma) = lognormal_params(median.0, p95.0);
                (mu + sigma * sigma / 2.0).exp()
            }
            Dist::Exponential { mean } => mean.0,
        }
    }

    /// Whether it is always zero.
    pub fn is_zero(&self) -> bool {
        matches!(self, Dist::Fixed(t) if t.0 == 0.0)
    }

    fn check(&self) -> Result<(), String> {
        match self {
            Dist::Uniform { min, max } if max.0 < min.0 => {
                Err(format!("uniform: max ({max}) is below min ({min})"))
            }
            Dist::LogNormal { median, p95 } if median.0 <= 0.0 || p95.0 <= median.0 => Err(
                format!("lognormal: needs 0 < median < p95 (median {median}, p95 {p95})"),
            ),
            _ => Ok(()),
        }
    }
}

/// μ and σ of the normal under a log-normal with this median and 95th percentile.
pub fn lognormal_params(median: f64, p95: f64) -> (f64, f64) {
    const Z95: f64 = 1.644_853_626_951_472_2;
    let mu = median.ln();
    (mu, (p95.ln() - mu) / Z95)
}

impl<'de> Deserialize<'de> for Dist {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dist, D::Error> {
        let v = serde_yaml::Value::deserialize(d)?;
        dist_of(&v).map_err(D::Error::custom)
    }
}

const DIST_FORMS: &str = "a time (`35s`), `{uniform: {min, max}}`, `{lognormal: {median, p95}}` or `{exponential: {mean}}`";

fn dist_of(v: &serde_yaml::Value) -> Result<Dist, String> {
    let map = match v {
        serde_yaml::Value::Mapping(m) => m,
        other => return time_of(other).map(Dist::Fixed),
    };
    if map.len() != 1 {
        return Err(format!("a distribution is {DIST_FORMS}"));
    }
    let (k, body) = map.iter().next().expect("one entry");
    let field = |name: &str| -> Result<Time, String> {
        let m = body
            .as_mapping()
            .ok_or_else(|| format!("`{}` needs a mapping", k.as_str().unwrap_or("?")))?;
        for key in m.keys() {
            let known = match k.as_str() {
                Some("uniform") => ["min", "max"].as_slice(),
                Some("lognormal") => &["median", "p95"],
                _ => &["mean"],
            };
            if !key.as_str().is_some_and(|s| known.contains(&s)) {
                return Err(format!(
                    "unknown field `{}` (expected: {})",
                    key.as_str().unwrap_or("?"),
                    known.join(", ")
                ));
            }
        }
        let x = m
            .get(name)
            .ok_or_else(|| format!("missing field `{name}`"))?;
        time_of(x).map_err(|e| format!("{name}: {e}"))
    };
    let d = match k.as_str() {
        Some("fixed") => Dist::Fixed(time_of(body)?),
        Some("uniform") => Dist::Uniform {
            min: field("min")?,
            max: field("max")?,
        },
        Some("lognormal") => Dist::LogNormal {
            median: field("median")?,
            p95: field("p95")?,
        },
        Some("exponential") => Dist::Exponential {
            mean: field("mean")?,
        },
        _ => {
            return Err(format!(
                "unknown distribution `{}`: {DIST_FORMS}",
                k.as_str().unwrap_or("?")
            ))
        }
    };
    d.check()?;
    Ok(d)
}

impl Serialize for Dist {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        match self {
            Dist::Fixed(t) => m.serialize_entry("fixed", t)?,
            Dist::Uniform { min, max } => {
                m.serialize_entry("uniform", &BTreeMap::from([("min", min), ("max", max)]))?
            }
            Dist::LogNormal { median, p95 } => m.serialize_entry(
                "lognormal",
                &BTreeMap::from([("median", median), ("p95", p95)]),
            )?,
            Dist::Exponential { mean } => {
                m.serialize_entry("exponential", &BTreeMap::from([("mean", mean)]))?
            }
        }
        m.end()
    }
}

impl SimulationConfig {
    /// Whether every key has its default (`config show` leaves the section out then).
    pub fn is_default(&self) -> bool {
        *self == SimulationConfig::default()
    }

    /// Problems the types cannot catch: rates outside 0..1. `(path, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut fraction = |path: String, v: f64| {
            if !(0.0..=1.0).contains(&v) {
                out.push((path, format!("must be between 0 and 1 (is {v})")));
            }
        };
        fraction("simulation.forge.lost".into(), self.forge.lost);
        fraction("simulation.forge.repeated".into(), self.forge.repeated);
        fraction("simulation.forge.reordered".into(), self.forge.reordered);
        for (name, b) in &self.backends {
            if let Some(r) = b.create_failure_rate {
                // A create that always fails never makes a runner: the run would not end.
                if !(0.0..1.0).contains(&r) {
                    out.push((
                        format!("simulation.backends.{name}.create_failure_rate"),
                        format!("must be at least 0 and below 1 (is {r})"),
                    ));
                }
            }
            for (key, v) in [
                ("price_per_hour", b.price_per_hour),
                ("spot_interruption_rate", b.spot_interruption_rate),
                ("stopped_price_per_hour", b.stopped_price_per_hour),
            ] {
                if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
                    out.push((
                        format!("simulation.backends.{name}.{key}"),
                        "must be zero or more".into(),
                    ));
                }
            }
        }
        for (name, b) in &self.backends {
            for (machine, price) in b.machine_prices.iter().flatten() {
                if !price.is_finite() || *price < 0.0 {
                    out.push((
                        format!("simulation.backends.{name}.machine_prices.{machine}"),
                        "must be zero or more".into(),
                    ));
                }
            }
        }
        out
    }

    /// The price per hour of an instance of `machine` (its type, when it has one) on `cloud`.
    pub fn price_of(cloud: &Cloud, machine: Option<&str>) -> f64 {
        machine
            .and_then(|m| cloud.machine_prices.get(m))
            .copied()
            .unwrap_or(cloud.price_per_hour)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(yaml: &str) -> Result<Dist, String> {
        serde_yaml::from_str::<Dist>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn times_are_read_in_every_written_form() {
        assert_eq!("250ms".parse::<Time>(), Ok(Time(0.25)));
        assert_eq!("35s".parse::<Time>(), Ok(Time(35.0)));
        assert_eq!("2m".parse::<Time>(), Ok(Time(120.0)));
        assert_eq!("1.5".parse::<Time>(), Ok(Time(1.5)));
        assert_eq!("1h30m".parse::<Time>(), Ok(Time(5400.0)));
        assert!("5 parsecs".parse::<Time>().is_err());
        assert!("".parse::<Time>().is_err());
        assert!("s".parse::<Time>().is_err());
        assert!("-1s".parse::<Time>().is_err());
    }

    #[test]
    fn distributions_are_read_and_bad_ones_named() {
        assert_eq!(dist("35s"), Ok(Dist::Fixed(Time(35.0))));
        assert_eq!(dist("12"), Ok(Dist::Fixed(Time(12.0))));
        assert_eq!(
            dist("{uniform: {min: 1s, max: 3s}}"),
            Ok(Dist::Uniform {
                min: Time(1.0),
                max: Time(3.0)
            })
        );
        assert!(dist("{lognormal: {median: 30s, p95: 20s}}")
            .unwrap_err()
            .contains("median < p95"));
        assert!(dist("{gamma: {k: 1}}")
            .unwrap_err()
            .contains("unknown distribution `gamma`"));
        assert!(dist("{uniform: {min: 1s, maks: 3s}}")
            .unwrap_err()
            .contains("unknown field `maks`"));
    }

    #[test]
    fn a_written_distribution_reads_back_the_same() {
        for d in [
            Dist::Fixed(Time(0.25)),
            Dist::Uniform {
                min: Time(1.0),
                max: Time(2.0),
            },
            Dist::LogNormal {
                median: Time(30.0),
                p95: Time(60.0),
            },
            Dist::Exponential { mean: Time(300.0) },
        ] {
            let text = serde_yaml::to_string(&d).unwrap();
            assert_eq!(serde_yaml::from_str::<Dist>(&text).unwrap(), d, "{text}");
        }
    }

    #[test]
    fn billing_rounds_up_to_its_unit_and_minimum() {
        let b = Billing {
            per: BillingUnit::Second,
            minimum: Time(60.0),
        };
        assert_eq!(b.billed_secs(10.2), 60.0);
        assert_eq!(b.billed_secs(90.2), 91.0);
        let h = Billing {
            per: BillingUnit::Hour,
            minimum: Time(0.0),
        };
        assert_eq!(h.billed_secs(61.0), 3600.0);
    }

    #[test]
    fn a_lognormal_has_its_median_and_p95() {
        let (mu, sigma) = lognormal_params(30.0, 60.0);
        assert!((mu.exp() - 30.0).abs() < 1e-9);
        assert!(((mu + 1.644_853_626_951_472_2 * sigma).exp() - 60.0).abs() < 1e-9);
    }
}
