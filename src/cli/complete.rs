//! Dynamic shell completion with clap_complete's engine: the shell's registration script
//! (`runnerctl completions SHELL`, or the files in `completions/`) calls back
//! `COMPLETE=SHELL runnerctl -- WORDS…`, which answers group names from the configuration and
//! runner names and dead task ids from Redis. A completion never fails and never waits long:
//! what cannot be read (no file, Redis down or slow) completes nothing.

use clap_complete::engine::CompletionCandidate;
use std::ffi::OsStr;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

/// The variable that asks for completions (the registration scripts set it).
pub const VAR: &str = "COMPLETE";
/// How long a completion may wait for Redis.
const REDIS_WAIT: Duration = Duration::from_secs(2);

/// The registration script of a shell: what to source so that the shell asks runnerctl.
pub fn registration(shell: clap_complete::Shell) -> Vec<u8> {
    use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};
    let completer: &dyn EnvCompleter = match shell {
        clap_complete::Shell::Bash => &Bash,
        clap_complete::Shell::Elvish => &Elvish,
        clap_complete::Shell::Fish => &Fish,
        clap_complete::Shell::PowerShell => &Powershell,
        _ => &Zsh,
    };
    let mut buf = Vec::new();
    // runnerctl is called by name, from PATH: the script works wherever the binary is installed.
    let _ = completer.write_registration(VAR, "runnerctl", "runnerctl", "runnerctl", &mut buf);
    buf
}

/// The configuration file of the command line being completed: its `--config`, else
/// `RUNNERCTL_CONFIG`, else the default path.
fn config_path() -> PathBuf {
    let args: Vec<String> = std::env::args().collect();
    // The words of the line being completed follow `--`.
    let words = args
        .iter()
        .position(|a| a == "--")
        .map(|i| &args[i + 1..])
        .unwrap_or_default();
    let mut found = None;
    let mut it = words.iter();
    while let Some(w) = it.next() {
        if w == "--config" || w == "-c" {
            found = it.next().cloned();
        } else if let Some(v) = w.strip_prefix("--config=") {
            found = Some(v.to_string());
        }
    }
    found
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("RUNNERCTL_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_PATH))
}

fn config() -> Option<crate::config::Config> {
    crate::wiring::load_file(&config_path())
        .ok()
        .map(|l| l.config)
}

/// The candidates that start with what was typed, each with its help.
fn matching(
    current: &OsStr,
    items: impl IntoIterator<Item = (String, String)>,
) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy();
    let mut out: Vec<CompletionCandidate> = items
        .into_iter()
        .filter(|(v, _)| v.starts_with(typed.as_ref()))
        .map(|(v, help)| CompletionCandidate::new(v).help(Some(help.into())))
        .collect();
    out.sort_by(|a, b| a.get_value().cmp(b.get_value()));
    out
}

/// Runs a Redis query for a completion (over the manager's store and queue), for at most
/// [`REDIS_WAIT`].
fn with_redis<T, F: Future<Output = Option<T>>>(
    query: impl FnOnce(crate::store::RedisStore, crate::queue::Queue) -> F,
) -> Option<T> {
    let config = config()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        tokio::time::timeout(REDIS_WAIT, async {
            let conn = crate::wiring::connect(&config).await.ok()?;
            let store = crate::wiring::store(&config, conn.clone());
            let queue = crate::wiring::queue(&config, conn);
            query(store, queue).await
        })
        .await
        .ok()
        .flatten()
    })
}

/// Runner group names of the configuration, with their labels.
pub fn groups(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(config) = config() else {
        return Vec::new();
    };
    matching(
        current,
        config
            .runner_groups
            .iter()
            .map(|g| (g.name.clone(), g.labels.join(","))),
    )
}

/// Runner names from Redis, with their group and status.
pub fn runners(current: &OsStr) -> Vec<CompletionCandidate> {
    let found =
        with_redis(|store, _| async move { store.all_runners().await.ok() }).unwrap_or_default();
    matching(
        current,
        found
            .into_iter()
            .map(|r| (r.name, format!("{}, {}", r.group, r.status))),
    )
}

/// Dead tasks' ids (what `tasks requeue` takes), with their kind and error.
pub fn dead_tasks(current: &OsStr) -> Vec<CompletionCandidate> {
    let found = with_redis(|_, queue| async move { queue.dead().await.ok() }).unwrap_or_default();
    matching(
        current,
        found.into_iter().map(|t| {
            let help = match &t.error {
                Some(e) => format!("{}: {}", t.kind, e.lines().next().unwrap_or_default()),
                None => t.kind.clone(),
            };
            (t.id, help)
        }),
    )
}
