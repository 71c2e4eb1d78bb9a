//! The shell completions in `completions/` and the man pages in `man/` are generated from the
//! CLI definition. This test fails when they are out of date; regenerate them with
//! `RUNNERCTL_BLESS=1 cargo test --test generated`.

use clap_complete::Shell;
use std::path::Path;

fn check(path: &Path, want: &[u8], stale: &mut Vec<String>) {
    if std::env::var_os("RUNNERCTL_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, want).unwrap();
        return;
    }
    match std::fs::read(path) {
        Ok(have) if have == want => {}
        _ => stale.push(path.display().to_string()),
    }
}

#[test]
fn completions_and_man_pages_are_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut stale = Vec::new();
    for (shell, file) in [
        (Shell::Bash, "runnerctl.bash"),
        (Shell::Zsh, "_runnerctl"),
        (Shell::Fish, "runnerctl.fish"),
        (Shell::Elvish, "runnerctl.elv"),
        (Shell::PowerShell, "_runnerctl.ps1"),
    ] {
        let want = runnerctl::cli::completion(shell);
        check(&root.join("completions").join(file), &want, &mut stale);
    }
    let pages = runnerctl::cli::man_pages();
    let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
    for (name, text) in &pages {
        check(&root.join("man").join(name), text, &mut stale);
    }
    // No page may linger for a command that no longer exists.
    for entry in std::fs::read_dir(root.join("man")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !names.contains(&name.as_str()) {
            stale.push(format!("man/{name} (no such command)"));
        }
    }
    assert!(
        stale.is_empty(),
        "out of date: {stale:?}\nregenerate with: RUNNERCTL_BLESS=1 cargo test --test generated"
    );
}

#[test]
fn completions_command_prints_the_same_scripts() {
    let out = assert_cmd::Command::cargo_bin("runnerctl")
        .unwrap()
        .args(["completions", "bash"])
        .env_remove("RUNNERCTL_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, runnerctl::cli::completion(Shell::Bash));
    // The script asks runnerctl itself (clap_complete's dynamic engine).
    assert!(String::from_utf8_lossy(&out.stdout).contains("COMPLETE=\"bash\""));
}

/// `runnerctl.1` referred to `runnerctl-help(1)`, which does not exist, and the container hook's
/// SYNOPSIS read `runnerctl container hook`: every page a man page names exists, and each
/// page's synopsis is the command as typed.
#[test]
fn man_pages_name_only_pages_that_exist_and_commands_as_typed() {
    let pages = runnerctl::cli::man_pages();
    let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
    for (name, text) in &pages {
        let text = String::from_utf8_lossy(text).replace("\\-", "-");
        let mut rest = text.as_str();
        while let Some(i) = rest.find("runnerctl-") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or(tail.len());
            let page = &tail[..end];
            if tail[end..].starts_with("(1)") {
                assert!(
                    names.contains(&format!("{page}.1").as_str()),
                    "{name} names {page}(1), which does not exist"
                );
            }
            rest = &tail[end..];
        }
        if let Some(cmd) = name.strip_suffix(".1") {
            let typed = cmd.replacen("runnerctl-", "runnerctl ", 1);
            let synopsis = text
                .split(".SH SYNOPSIS")
                .nth(1)
                .unwrap_or_default()
                .to_string();
            let words: Vec<&str> = typed.split(' ').collect();
            let want = match words.as_slice() {
                ["runnerctl"] => "runnerctl".to_string(),
                [_, rest] => format!(
                    "runnerctl {}",
                    rest.replacen('-', " ", usize::from(!KEEP_DASH.contains(rest)))
                ),
                _ => typed.clone(),
            };
            assert!(
                synopsis.contains(&format!("\\fB{want}")),
                "{name}: the synopsis does not show `{want}`:\n{}",
                &synopsis[..synopsis.len().min(200)]
            );
        }
    }
}

/// Commands whose own name has a dash.
const KEEP_DASH: &[&str] = &["container-hook"];
