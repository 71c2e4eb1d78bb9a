//! Writing results to stdout as tables or JSON. A closed pipe (`runnerctl … | head`) ends the
//! output quietly: it is not an error.

use crate::error::{Error, Result};
use comfy_table::{presets, ContentArrangement, Table};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

pub use super::args::OutputFormat;

/// Writes `text` to stdout. A broken pipe is success: the reader has what it wanted.
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Output(e)),
        _ => Ok(()),
    }
}

/// Writes `value` as pretty JSON and a newline.
pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Problem(format!("cannot encode JSON output: {e}")))?;
    text.push('\n');
    print(&text)
}

/// How tables print, as the command line asked (`-o name`, `--no-headers`).
static NAMES_ONLY: AtomicBool = AtomicBool::new(false);
static NO_HEADERS: AtomicBool = AtomicBool::new(false);

/// Sets how [`table`] prints for the rest of the process (the command line does, once).
pub fn set_mode(output: OutputFormat, no_headers: bool) {
    NAMES_ONLY.store(output == OutputFormat::Name, Ordering::Relaxed);
    NO_HEADERS.store(no_headers, Ordering::Relaxed);
}

/// Writes an aligned table with a header row, in the style of `kubectl get`; with `-o name`
/// only the first column, one value per line; with `--no-headers` no header row.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> Result<()> {
    if NAMES_ONLY.load(Ordering::Relaxed) {
        let mut text = String::new();
        for row in &rows {
            if let Some(first) = row.first() {
                text.push_str(first);
                text.push('\n');
            }
        }
        return print(&text);
    }
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    if !NO_HEADERS.load(Ordering::Relaxed) {
        t.set_header(headers.iter().map(|h| h.to_uppercase()));
    }
    for row in rows {
        t.add_row(row);
    }
    let mut text = t.trim_fmt();
    text.push('\n');
    print(&text)
}

/// A progress bar on stderr when there are many items and a person is watching.
pub fn progress(len: u64, output: OutputFormat) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if len < 2 || output != OutputFormat::Table || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} {bar:30} {pos}/{len} {msg}")
    {
        bar.set_style(style);
    }
    bar
}
