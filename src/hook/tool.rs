//! Running the host's tools (`skopeo`, `umoci`, `mount`, `systemd-nspawn`): a missing tool is
//! named with its Debian package, a failure carries the tool's last words with any secret
//! replaced.

use std::process::{Command, Stdio};

use super::HookError;

/// The Debian package that ships `program`, for the error message.
fn package_of(program: &str) -> &'static str {
    match program.rsplit('/').next().unwrap_or(program) {
        "skopeo" => "skopeo",
        "umoci" => "umoci",
        "systemd-nspawn" => "systemd-container",
        _ => "util-linux",
    }
}

/// `text` with every secret replaced.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|s| s.len() >= 3)
        .fold(text.to_string(), |t, s| t.replace(s, "***"))
}

/// Runs `program` with `args` to completion; its output is kept for the error only.
pub fn run(program: &str, args: &[String], secrets: &[&str]) -> Result<String, HookError> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| spawn_error(program, e))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = err.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(HookError::Tool(redact(
        &format!(
            "`{program} {}` failed ({}): {}",
            args.first().map(String::as_str).unwrap_or(""),
            out.status,
            tail.join(" / ").trim()
        ),
        secrets,
    )))
}

pub fn spawn_error(program: &str, e: std::io::Error) -> HookError {
    if e.kind() == std::io::ErrorKind::NotFound {
        HookError::Tool(format!(
            "`{program}` is not installed on this host (Debian package `{}`)",
            package_of(program)
        ))
    } else {
        HookError::io(format!("starting `{program}`"), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_is_named_with_its_package() {
        let e = run("/nonexistent/skopeo", &[], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not installed") && e.contains("`skopeo`"), "{e}");
    }

    #[test]
    fn failures_carry_the_tool_s_words_without_secrets() {
        let e = run(
            "sh",
            &[
                "-c".into(),
                "echo 'login as bob:s3cret failed' >&2; exit 3".into(),
            ],
            &["s3cret"],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("login as bob:*** failed"), "{e}");
        assert!(!e.contains("s3cret"));
    }
}
