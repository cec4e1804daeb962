//! What a replay found: a table for people, JSON for machines, JUnit XML for CI,
//! and a progress line on stderr while it runs.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::runner::DeliveryResult;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub target: String,
    pub started_at: DateTime<Utc>,
    pub elapsed_ms: f64,
    pub repeat: usize,
    pub rewrite_keys: bool,
    pub passed: usize,
    pub failed: usize,
    pub requests: usize,
    pub results: Vec<DeliveryResult>,
}

impl Report {
    pub fn new(
        target: String,
        started_at: DateTime<Utc>,
        elapsed: Duration,
        repeat: usize,
        rewrite_keys: bool,
        results: Vec<DeliveryResult>,
    ) -> Self {
        let failed = results.iter().filter(|r| !r.passed()).count();
        Report {
            target,
            started_at,
            elapsed_ms: elapsed.as_secs_f64() * 1000.0,
            repeat,
            rewrite_keys,
            passed: results.len() - failed,
            failed,
            requests: results.iter().map(|r| r.answers.len()).sum(),
            results,
        }
    }

    pub fn ok(&self) -> bool {
        self.failed == 0
    }

    /// `42 passed, 0 failed`: the last line of the table.
    pub fn summary(&self) -> String {
        format!("{} passed, {} failed", self.passed, self.failed)
    }

    /// The table, the differences of every failed delivery, and the summary.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let width = self
            .results
            .iter()
            .map(|r| r.code_column().chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            out,
            "{:<6} {:<6} {:<width$} {:<8} {:>8}  FIXTURE",
            "RESULT", "STATUS", "CODE", "REPLAYED", "MS"
        );
        for r in &self.results {
            let _ = writeln!(
                out,
                "{:<6} {:<6} {:<width$} {:<8} {:>8.0}  {}",
                if r.passed() { "ok" } else { "FAIL" },
                r.status()
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into()),
                r.code_column(),
                r.replayed_column(),
                r.elapsed_ms,
                r.fixture
            );
        }
        let failures: Vec<&DeliveryResult> = self.results.iter().filter(|r| !r.passed()).collect();
        if !failures.is_empty() {
            let _ = writeln!(out);
            for r in failures {
                out.push_str(&r.diff());
                let _ = writeln!(out);
            }
        }
        let unexpected_replays = self.results.iter().any(|r| {
            r.mismatches
                .iter()
                .any(|m| m.field == "replayed" && m.expected == "false")
        });
        if unexpected_replays && !self.rewrite_keys {
            let _ = writeln!(
                out,
                "hint: answers were replayed, so these keys were used before on this server; run with --rewrite-keys for fresh ones"
            );
        }
        let skipped = self
            .results
            .iter()
            .filter(|r| !r.skipped.is_empty())
            .count();
        if skipped > 0 {
            let _ = writeln!(
                out,
                "note: `posted` not checked on {skipped} deliveries (no PMS inspector: --pms-inspect)"
            );
        }
        let _ = writeln!(
            out,
            "{} ({} requests in {:.2} s)",
            self.summary(),
            self.requests,
            self.elapsed_ms / 1000.0
        );
        out
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.cut_bodies()).unwrap_or_else(|_| "{}".into())
    }

    /// Answer bodies are cut at 4 KiB in written reports.
    fn cut_bodies(&self) -> Report {
        let mut r = self.clone();
        for result in &mut r.results {
            for a in &mut result.answers {
                if a.body.len() > 4096 {
                    let mut end = 4096;
                    while !a.body.is_char_boundary(end) {
                        end -= 1;
                    }
                    a.body.truncate(end);
                    a.body.push('…');
                }
            }
        }
        r
    }

    /// JUnit XML: one test case per delivery, grouped by sequence.
    pub fn to_junit(&self) -> String {
        let mut out = String::new();
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"chargebridge replay\" tests=\"{}\" failures=\"{}\" time=\"{:.3}\">",
            self.results.len(),
            self.failed,
            self.elapsed_ms / 1000.0
        );
        let mut units: Vec<&str> = Vec::new();
        for r in &self.results {
            if !units.contains(&r.unit.as_str()) {
                units.push(&r.unit);
            }
        }
        for unit in units {
            let cases: Vec<&DeliveryResult> =
                self.results.iter().filter(|r| r.unit == unit).collect();
            let failures = cases.iter().filter(|r| !r.passed()).count();
            let time: f64 = cases.iter().map(|r| r.elapsed_ms).sum::<f64>() / 1000.0;
            let _ = writeln!(
                out,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" time=\"{time:.3}\" timestamp=\"{}\">",
                xml_escape(unit),
                cases.len(),
                self.started_at.format("%Y-%m-%dT%H:%M:%S")
            );
            for r in cases {
                let _ = write!(
                    out,
                    "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                    xml_escape(&classname(unit)),
                    xml_escape(&r.fixture),
                    r.elapsed_ms / 1000.0
                );
                if r.passed() && r.skipped.is_empty() {
                    out.push_str("/>\n");
                    continue;
                }
                out.push_str(">\n");
                if !r.passed() {
                    let message = r
                        .mismatches
                        .iter()
                        .map(|m| format!("{}: expected {}, got {}", m.field, m.expected, m.got))
                        .collect::<Vec<_>>()
                        .join("; ");
                    let _ = writeln!(
                        out,
                        "      <failure message=\"{}\" type=\"mismatch\">{}</failure>",
                        xml_escape(&message),
                        xml_escape(&r.diff())
                    );
                }
                if !r.skipped.is_empty() {
                    let _ = writeln!(
                        out,
                        "      <system-out>{}</system-out>",
                        xml_escape(&format!("not checked: {}", r.skipped.join(", ")))
                    );
                }
                out.push_str("    </testcase>\n");
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }
}

fn classname(unit: &str) -> String {
    unit.trim_end_matches(".json")
        .replace(['/', '\\'], ".")
        .trim_start_matches('.')
        .to_string()
}

/// Escapes text for XML attributes and content. Characters XML 1.0 cannot carry
/// at all (most C0 controls) become U+FFFD.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

impl DeliveryResult {
    fn code_column(&self) -> String {
        let first = self.answers.first();
        match first {
            None => "-".into(),
            Some(a) if a.status.is_none() => "(no answer)".into(),
            Some(a) => match &a.code {
                Some(c) => c.clone(),
                None => a
                    .bytes
                    .is_empty()
                    .then(|| "-".to_string())
                    .or_else(|| {
                        serde_json::from_slice::<serde_json::Value>(&a.bytes)
                            .ok()
                            .and_then(|j| j.get("status")?.as_str().map(str::to_string))
                    })
                    .unwrap_or_else(|| "-".into()),
            },
        }
    }

    fn replayed_column(&self) -> String {
        match self.answers.len() {
            0 => "-".into(),
            1 => if self.answers[0].replayed {
                "yes"
            } else {
                "no"
            }
            .into(),
            n => format!("{}/{n}", self.answers.iter().filter(|a| a.replayed).count()),
        }
    }

    /// Expected against got, one line per field.
    pub fn diff(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "FAIL {}", self.fixture);
        if let Some(d) = &self.description {
            let _ = writeln!(out, "     {d}");
        }
        let key = self
            .idempotency_key
            .as_deref()
            .map(|k| format!(", key {k}"))
            .unwrap_or_default();
        let _ = writeln!(out, "     {} {}{key}", self.method, self.url);
        let width = self
            .mismatches
            .iter()
            .map(|m| m.field.chars().count())
            .max()
            .unwrap_or(0)
            .max(8);
        for m in &self.mismatches {
            let _ = writeln!(
                out,
                "     {:<width$}  expected {}",
                m.field,
                m.expected.replace('\n', "\\n")
            );
            let _ = writeln!(
                out,
                "     {:<width$}  got      {}",
                "",
                m.got.replace('\n', "\\n")
            );
        }
        if let Some(a) = self.answers.iter().find(|a| a.status.is_some()) {
            let mut body: String = a.body.chars().take(300).collect();
            if body.len() < a.body.len() {
                body.push('…');
            }
            let _ = writeln!(
                out,
                "     {:<width$}  {} {}",
                "(answer)",
                a.status.unwrap_or_default(),
                body.replace('\n', "\\n")
            );
        }
        out
    }
}

/// A one-line progress indicator on stderr, drawn only when enabled (stderr is a
/// terminal) and only once the run has lasted half a second.
pub struct Progress {
    total: usize,
    done: AtomicUsize,
    failed: AtomicUsize,
    finished: AtomicBool,
    enabled: bool,
}

impl Progress {
    pub fn new(total: usize, enabled: bool) -> Self {
        Progress {
            total,
            done: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            finished: AtomicBool::new(false),
            enabled,
        }
    }

    pub fn add(&self, requests: usize, failed: bool) {
        self.done.fetch_add(requests, Ordering::Relaxed);
        if failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn finish(&self) {
        self.finished.store(true, Ordering::SeqCst);
    }

    fn line(&self) -> String {
        let done = self.done.load(Ordering::Relaxed).min(self.total);
        let width = 30;
        let filled = (done * width).checked_div(self.total).unwrap_or(width);
        format!(
            "\r[{}{}] {done}/{} requests, {} failed",
            "=".repeat(filled),
            " ".repeat(width - filled),
            self.total,
            self.failed.load(Ordering::Relaxed)
        )
    }

    /// Starts the drawing task when enabled.
    pub fn start(self: Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        if !self.enabled {
            return None;
        }
        Some(tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let mut drawn = String::new();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let finished = self.finished.load(Ordering::SeqCst);
                if finished {
                    if !drawn.is_empty() {
                        let mut err = std::io::stderr();
                        let _ = write!(err, "\r{}\r", " ".repeat(self.line().len()));
                        let _ = err.flush();
                    }
                    return;
                }
                let line = self.line();
                if started.elapsed() >= Duration::from_millis(500) && line != drawn {
                    let mut err = std::io::stderr();
                    let _ = write!(err, "{line}");
                    let _ = err.flush();
                    drawn = line;
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escaping_covers_markup_and_controls() {
        assert_eq!(
            xml_escape("a<b>&\"c'\u{1}\n"),
            "a&lt;b&gt;&amp;&quot;c&apos;\u{FFFD}\n"
        );
        assert_eq!(xml_escape("Zoë €"), "Zoë €");
    }

    #[test]
    fn classnames_are_dotted_paths() {
        assert_eq!(
            classname("fixtures/deliveries/seq-x"),
            "fixtures.deliveries.seq-x"
        );
        assert_eq!(classname("./a/b.json"), "a.b");
    }
}
