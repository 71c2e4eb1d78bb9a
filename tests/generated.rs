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
