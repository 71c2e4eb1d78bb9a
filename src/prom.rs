//! Prometheus' text exposition format, for the few kinds runnerctl exports: counters and
//! histograms with labels, kept in the process (each `serve` and `worker` its own), and gauges
//! written at scrape time. Label values are escaped as the format asks.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// A label value, escaped (`\`, `"` and line breaks).
pub fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(names: &[&str], values: &[String]) -> String {
    let parts: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
        .collect();
    parts.join(",")
}

/// `# HELP` and `# TYPE` lines.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample line.
pub fn sample(out: &mut String, name: &str, label_names: &[&str], values: &[String], v: f64) {
    if label_names.is_empty() {
        let _ = writeln!(out, "{name} {v}");
    } else {
        let _ = writeln!(out, "{name}{{{}}} {v}", labels(label_names, values));
    }
}

/// A counter with labels.
pub struct Counter {
    name: &'static str,
    help: &'static str,
    label_names: &'static [&'static str],
    values: Mutex<BTreeMap<Vec<String>, f64>>,
}

impl Counter {
    pub const fn new(
        name: &'static str,
        help: &'static str,
        label_names: &'static [&'static str],
    ) -> Counter {
        Counter {
            name,
            help,
            label_names,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn inc(&self, values: &[&str]) {
        self.add(values, 1.0);
    }

    /// Adds `n` (points, seconds) to the series of `values`.
    pub fn add(&self, values: &[&str], n: f64) {
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        *self
            .values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default() += n;
    }

    pub fn get(&self, values: &[&str]) -> u64 {
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .map(|v| *v as u64)
            .unwrap_or(0)
    }

    pub fn render(&self, out: &mut String) {
        header(out, self.name, "counter", self.help);
        for (k, v) in self.values.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            sample(out, self.name, self.label_names, k, *v);
        }
    }
}

/// A gauge with labels: the last value set for each series.
pub struct Gauge {
    name: &'static str,
    help: &'static str,
    label_names: &'static [&'static str],
    values: Mutex<BTreeMap<Vec<String>, f64>>,
}

impl Gauge {
    pub const fn new(
        name: &'static str,
        help: &'static str,
        label_names: &'static [&'static str],
    ) -> Gauge {
        Gauge {
            name,
            help,
            label_names,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn set(&self, values: &[&str], v: f64) {
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, v);
    }

    pub fn render(&self, out: &mut String) {
        header(out, self.name, "gauge", self.help);
        for (k, v) in self.values.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            sample(out, self.name, self.label_names, k, *v);
        }
    }
}

/// One labelled series of a histogram: its bucket counts, count and sum.
type Series = (Vec<u64>, u64, f64);

/// A histogram of seconds with labels.
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    label_names: &'static [&'static str],
    bounds: &'static [f64],
    values: Mutex<BTreeMap<Vec<String>, Series>>,
}

impl Histogram {
    pub const fn new(
        name: &'static str,
        help: &'static str,
        label_names: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Histogram {
        Histogram {
            name,
            help,
            label_names,
            bounds,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn observe(&self, values: &[&str], took: Duration) {
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        let secs = took.as_secs_f64();
        let mut all = self.values.lock().unwrap_or_else(|p| p.into_inner());
        let e = all
            .entry(key)
            .or_insert_with(|| (vec![0; self.bounds.len()], 0, 0.0));
        for (b, bound) in e.0.iter_mut().zip(self.bounds) {
            if secs <= *bound {
                *b += 1;
            }
        }
        e.1 += 1;
        e.2 += secs;
    }

    pub fn render(&self, out: &mut String) {
        header(out, self.name, "histogram", self.help);
        let mut names: Vec<&str> = self.label_names.to_vec();
        names.push("le");
        for (k, (buckets, count, sum)) in
            self.values.lock().unwrap_or_else(|p| p.into_inner()).iter()
        {
            for (b, bound) in buckets.iter().zip(self.bounds) {
                let mut vals = k.clone();
                vals.push(bound.to_string());
                sample(
                    out,
                    &format!("{}_bucket", self.name),
                    &names,
                    &vals,
                    *b as f64,
                );
            }
            let mut vals = k.clone();
            vals.push("+Inf".into());
            sample(
                out,
                &format!("{}_bucket", self.name),
                &names,
                &vals,
                *count as f64,
            );
            sample(
                out,
                &format!("{}_sum", self.name),
                self.label_names,
                k,
                *sum,
            );
            sample(
                out,
                &format!("{}_count", self.name),
                self.label_names,
                k,
                *count as f64,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_the_text_format() {
        let c = Counter::new("t_total", "A test.", &["kind"]);
        c.inc(&["a\"b"]);
        c.inc(&["a\"b"]);
        let mut out = String::new();
        c.render(&mut out);
        assert!(out.contains("# TYPE t_total counter"), "{out}");
        assert!(out.contains("t_total{kind=\"a\\\"b\"} 2"), "{out}");
        let h = Histogram::new("t_seconds", "A test.", &["g"], &[0.1, 1.0]);
        h.observe(&["x"], Duration::from_millis(500));
        let mut out = String::new();
        h.render(&mut out);
        assert!(
            out.contains("t_seconds_bucket{g=\"x\",le=\"0.1\"} 0"),
            "{out}"
        );
        assert!(
            out.contains("t_seconds_bucket{g=\"x\",le=\"1\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("t_seconds_bucket{g=\"x\",le=\"+Inf\"} 1"),
            "{out}"
        );
        assert!(out.contains("t_seconds_count{g=\"x\"} 1"), "{out}");
    }
}
