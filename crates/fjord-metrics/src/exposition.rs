//! The Prometheus text exposition format, version 0.0.4
//! (`Content-Type: text/plain; version=0.0.4`).
//!
//! A family is announced once (`# HELP`, `# TYPE`), then its samples follow,
//! one per label set. Label values are escaped (`\\`, `\"`, `\n`); metric and
//! label names are the caller's constants.

use std::fmt::{Display, Write as _};

use crate::primitives::HistogramSnapshot;

/// The content type a scrape is answered with.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

impl MetricKind {
    fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// Builds one scrape's text.
#[derive(Debug, Default)]
pub struct TextEncoder {
    out: String,
}

impl TextEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// `# HELP` and `# TYPE` lines; the family's samples must follow.
    pub fn family(&mut self, name: &str, help: &str, kind: MetricKind) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample line: `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, help: &str, kind: MetricKind, value: impl Display) {
        self.family(name, help, kind);
        self.sample(name, &[], value);
    }

    /// The `_bucket`, `_sum` and `_count` samples of one histogram series.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        for (bound, cumulative) in &h.buckets {
            let le = bound.to_string();
            let _ = write!(self.out, "{name}_bucket");
            self.labels(labels, Some(&le));
            let _ = writeln!(self.out, " {cumulative}");
        }
        let _ = write!(self.out, "{name}_bucket");
        self.labels(labels, Some("+Inf"));
        let _ = writeln!(self.out, " {}", h.count);
        let _ = write!(self.out, "{name}_sum");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {}", h.sum_seconds);
        let _ = write!(self.out, "{name}_count");
        self.labels(labels, None);
        let _ = writeln!(self.out, " {}", h.count);
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let all = labels.iter().copied().chain(le.map(|le| ("le", le)));
        for (i, (key, value)) in all.enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(key);
            self.out.push_str("=\"");
            for c in value.chars() {
                match c {
                    '\\' => self.out.push_str("\\\\"),
                    '"' => self.out.push_str("\\\""),
                    '\n' => self.out.push_str("\\n"),
                    c => self.out.push(c),
                }
            }
            self.out.push('"');
        }
        self.out.push('}');
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::primitives::Histogram;

    #[test]
    fn families_samples_and_escaping() {
        let mut e = TextEncoder::new();
        e.single(
            "fjord_bytes_in_total",
            "Bytes in.\nSecond line",
            MetricKind::Counter,
            12,
        );
        e.family("fjord_lag", "Lag.", MetricKind::Gauge);
        e.sample(
            "fjord_lag",
            &[("group", "a\"b\\c\nd"), ("partition", "0")],
            5,
        );
        assert_eq!(
            e.finish(),
            "# HELP fjord_bytes_in_total Bytes in.\\nSecond line\n\
             # TYPE fjord_bytes_in_total counter\n\
             fjord_bytes_in_total 12\n\
             # HELP fjord_lag Lag.\n\
             # TYPE fjord_lag gauge\n\
             fjord_lag{group=\"a\\\"b\\\\c\\nd\",partition=\"0\"} 5\n"
        );
    }

    #[test]
    fn histogram_series_are_cumulative_with_inf_sum_and_count() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(2));
        h.observe(Duration::from_secs(30));
        let mut e = TextEncoder::new();
        e.family(
            "fjord_request_duration_seconds",
            "Latency.",
            MetricKind::Histogram,
        );
        e.histogram(
            "fjord_request_duration_seconds",
            &[("api", "Produce")],
            &h.snapshot(),
        );
        let text = e.finish();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "# HELP fjord_request_duration_seconds Latency.");
        assert_eq!(lines[1], "# TYPE fjord_request_duration_seconds histogram");
        assert_eq!(
            lines[2],
            "fjord_request_duration_seconds_bucket{api=\"Produce\",le=\"0.0005\"} 1"
        );
        assert_eq!(
            lines[3],
            "fjord_request_duration_seconds_bucket{api=\"Produce\",le=\"0.001\"} 1"
        );
        assert_eq!(
            lines[4],
            "fjord_request_duration_seconds_bucket{api=\"Produce\",le=\"0.0025\"} 2"
        );
        assert_eq!(
            lines[15],
            "fjord_request_duration_seconds_bucket{api=\"Produce\",le=\"10\"} 2"
        );
        assert_eq!(
            lines[16],
            "fjord_request_duration_seconds_bucket{api=\"Produce\",le=\"+Inf\"} 3"
        );
        assert_eq!(
            lines[17],
            "fjord_request_duration_seconds_sum{api=\"Produce\"} 30.0023"
        );
        assert_eq!(
            lines[18],
            "fjord_request_duration_seconds_count{api=\"Produce\"} 3"
        );
        assert_eq!(lines.len(), 19);
    }
}
