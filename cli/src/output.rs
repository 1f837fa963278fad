//! How results are shown: plain text for people (colour only on a terminal), `--json` for scripts.

use std::io::IsTerminal;

/// What a command produced: text for people and the same facts as JSON for scripts.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Lines for a person.
    pub text: Vec<String>,
    /// The machine-readable result.
    pub json: serde_json::Value,
}

impl Report {
    /// A report from text lines and a JSON value.
    pub fn new(text: Vec<String>, json: serde_json::Value) -> Self {
        Self { text, json }
    }
}

/// Prints a report in the chosen form.
pub fn print(report: &Report, json: bool) {
    if json {
        println!("{}", report.json);
    } else {
        for line in &report.text {
            println!("{line}");
        }
    }
}

/// Whether standard error is a terminal (progress and colour only then).
pub fn interactive() -> bool {
    std::io::stderr().is_terminal()
}

/// `text` in green on a terminal, plain otherwise.
pub fn ok(text: &str) -> String {
    paint("32", text)
}

/// `text` in red on a terminal, plain otherwise.
pub fn bad(text: &str) -> String {
    paint("31", text)
}

fn paint(code: &str, text: &str) -> String {
    if std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
        format!("\u{1b}[{code}m{text}\u{1b}[0m")
    } else {
        text.to_owned()
    }
}

/// One expectation checked at the end of a run (the demo, the soak), shown as a table row.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What is checked.
    pub name: &'static str,
    /// What was found.
    pub result: String,
    /// What was expected, in words.
    pub expected: String,
    /// Whether it holds.
    pub ok: bool,
}

impl Check {
    /// A row.
    pub fn new(
        name: &'static str,
        result: impl ToString,
        expected: impl Into<String>,
        ok: bool,
    ) -> Self {
        Self {
            name,
            result: result.to_string(),
            expected: expected.into(),
            ok,
        }
    }
}

/// The checks as aligned rows under a header, and how many failed.
pub fn check_rows(checks: &[Check]) -> (Vec<String>, usize) {
    let mut rows = vec![format!(
        "  {:3} {:42} {:44} expected",
        "", "outcome", "result"
    )];
    for check in checks {
        let mark = if check.ok { ok("ok ") } else { bad("BAD") };
        rows.push(format!(
            "  {mark} {:42} {:44} {}",
            check.name, check.result, check.expected
        ));
    }
    (rows, checks.iter().filter(|c| !c.ok).count())
}

/// The checks as JSON, for `--json`.
pub fn checks_json(checks: &[Check]) -> serde_json::Value {
    checks
        .iter()
        .map(|c| serde_json::json!({"check": c.name, "result": c.result, "expected": c.expected, "ok": c.ok}))
        .collect()
}
