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

/// An error and its causes on one line (reqwest's own message leaves out the cause, such as the
/// refused connection).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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
