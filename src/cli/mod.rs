//! The command line: parsing (`args`), output (`output`) and one function per command. Commands
//! load the configuration, build the real implementations of the traits the domain needs, call
//! the library and print the result. Errors come back as [`crate::Error`] and become exit codes in
//! [`main`], the only place that does so.

pub mod args;
pub mod complete;
pub mod output;

mod config_cmd;
mod doctor_cmd;
mod examples;
mod groups_cmd;
mod jobs_cmd;
mod queue_cmd;
mod runners_cmd;
mod serve_cmd;
mod simulate_cmd;
mod trace_cmd;

use crate::config::{self, Loaded};
use crate::error::{Error, ExitCode, Result};
use args::{Cli, Command, GroupsCommand, JobsCommand, RunnersCommand};
use clap::CommandFactory;
use output::OutputFormat;
use std::path::{Path, PathBuf};

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    // Called back by a shell's completion script (`COMPLETE=bash runnerctl -- …`): answer and exit.
    clap_complete::CompleteEnv::with_factory(command)
        .var(complete::VAR)
        .completer("runnerctl")
        .complete();
    // The derived parser, with the examples added to every command's help.
    let argv = trace_export_file(std::env::args_os().collect());
    let parsed = command().try_get_matches_from(argv).and_then(|m| {
        refuse_inapplicable(&m)?;
        <Cli as clap::FromArgMatches>::from_arg_matches(&m)
    });
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print and succeed; a usage error prints and exits 2.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::Usage.code()
            } else {
                ExitCode::Success.code()
            };
        }
    };
    init_logging(&cli);
    let json_logs = cli.log_format == args::LogFormat::Json;
    match run(cli) {
        Ok(()) => ExitCode::Success.code(),
        Err(crate::error::Error::Hook(crate::hook::HookError::Step(code))) => code,
        Err(e) => {
            eprintln!("{}", fatal_line(&e, json_logs));
            e.status()
        }
    }
}

/// The last line of a failed command: `error: …`, or with `--log-format json` a log object
/// like every other line, with the exit code (printed whatever `-q` says).
fn fatal_line(e: &crate::error::Error, json: bool) -> String {
    if !json {
        return format!("error: {e}");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    serde_json::json!({
        "timestamp": format!(
            "{}.{:06}Z",
            crate::model::rfc3339(now.as_secs()).trim_end_matches('Z'),
            now.subsec_micros()
        ),
        "level": "ERROR",
        "fields": { "message": e.to_string(), "exit_code": e.status() },
        "target": "runnerctl",
    })
    .to_string()
}

/// The most verbose level of the targets that would log secrets in request or response bodies
/// (the HTTP and SDK layers print whole requests and responses at trace level); `None` for
/// every other target.
fn log_ceiling(target: &str) -> Option<tracing::Level> {
    // bollard traces every request body (a container's files, with the JIT configuration).
    const INFO: [&str; 5] = ["hyper", "hyper_util", "h2", "bollard", "bollard_stubs"];
    const DEBUG: [&str; 5] = [
        "aws_smithy_runtime",
        "aws_smithy_http_client",
        "aws_sigv4",
        "aws_config",
        "octocrab",
    ];
    let crate_name = target.split("::").next().unwrap_or(target);
    if INFO.contains(&crate_name) {
        Some(tracing::Level::INFO)
    } else if DEBUG.contains(&crate_name) || crate_name.starts_with("aws_smithy") {
        Some(tracing::Level::DEBUG)
    } else {
        None
    }
}

/// Levels by verbosity: -1 off … 4 trace.
fn level_name(level: i32) -> &'static str {
    match level {
        i32::MIN..=-1 => "off",
        0 => "error",
        1 => "warn",
        2 => "info",
        3 => "debug",
        _ => "trace",
    }
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::EnvFilter;
    let long_running = matches!(cli.command, Command::Serve | Command::Worker { .. });
    let base = if long_running { 2 } else { 1 }; // info for daemons, warn for one-shot commands
    let level = (base + i32::from(cli.verbose) - i32::from(cli.quiet)).clamp(-1, 4);
    // Dependencies (octocrab, hyper, the cloud SDKs) speak only when asked: -v warn, -vv debug,
    // -vvv trace (under their ceilings). What fails in them reaches the operator as runnerctl's
    // own error already.
    let deps = match cli.verbose {
        0 => -1,
        1 => 1,
        2 => 3,
        _ => 4,
    };
    let (ours, theirs) = match std::env::var("RUNNERCTL_LOG")
        .ok()
        .filter(|v| EnvFilter::try_new(v).is_ok())
    {
        Some(v) => (v.clone(), v),
        None => (
            format!("runnerctl={}", level_name(level)),
            format!("{},runnerctl=off", level_name(deps)),
        ),
    };
    // Whatever is asked, those layers never log above their ceiling.
    let ceilings = || {
        tracing_subscriber::filter::filter_fn(|meta| {
            log_ceiling(meta.target()).is_none_or(|max| *meta.level() <= max)
        })
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Our events without their module; a dependency's with its target, so it is clear whose
    // words they are.
    type Boxed = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;
    let layer = |with_target: bool| -> Boxed {
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(with_target);
        match cli.log_format {
            args::LogFormat::Json => Box::new(fmt.json().with_current_span(false)),
            args::LogFormat::Text => Box::new(fmt.with_ansi(ansi)),
        }
    };
    let is_ours = |meta: &tracing::Metadata<'_>| meta.target().starts_with("runnerctl");
    let own = layer(false)
        .with_filter(EnvFilter::new(ours))
        .with_filter(tracing_subscriber::filter::filter_fn(is_ours));
    let dependencies = layer(true)
        .with_filter(EnvFilter::new(theirs))
        .with_filter(tracing_subscriber::filter::filter_fn(move |m| !is_ours(m)))
        .with_filter(ceilings());
    let layers: Vec<Boxed> = vec![own.boxed(), dependencies.boxed()];
    let _ = tracing_subscriber::registry().with(layers).try_init();
}

/// Global options every command sees.
pub struct Context {
    pub config_path: PathBuf,
    pub output: OutputFormat,
}

impl Context {
    /// Loads and validates the configuration; warnings go to the log.
    pub fn load(&self) -> Result<Loaded> {
        let loaded = crate::wiring::load_file(&self.config_path)?;
        for w in &loaded.warnings {
            tracing::warn!("{}", w.render(&self.config_path.display().to_string()));
        }
        Ok(loaded)
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A watch that turns true at the first SIGTERM/SIGINT; the second one exits at once.
pub fn shutdown_on_signals() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        signal().await;
        tracing::info!("signal received: stopping (send it again to exit at once)");
        let _ = tx.send(true);
        signal().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
    rx
}

/// A tokio runtime for a command that talks to the network.
pub fn runtime() -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map(|rt| Runtime(Some(rt)))
        .map_err(|e| Error::Problem(format!("cannot start the async runtime: {e}")))
}

/// A command's async runtime. When the command is done, work it left in the background (a
/// fake runner's stand-in fetching its credential until `time_to_start`, a connection being
/// closed) is given a moment, not waited for: the command has answered and exits.
pub struct Runtime(Option<tokio::runtime::Runtime>);

impl std::ops::Deref for Runtime {
    type Target = tokio::runtime::Runtime;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref().expect("the runtime lives until dropped")
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_timeout(std::time::Duration::from_millis(500));
        }
    }
}

/// `container-hook`: one hook call read from standard input (at most 16 MiB).
fn container_hook(dir: PathBuf, images: Option<PathBuf>) -> Result<()> {
    use std::io::Read;
    let settings = crate::hook::Settings::new(dir, images)?;
    let mut input = String::new();
    std::io::stdin()
        .take(16 << 20)
        .read_to_string(&mut input)
        .map_err(|e| crate::hook::HookError::io("reading the hook's input", e))?;
    Ok(crate::hook::run(&settings, &input)?)
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    output::set_mode(cli.output, cli.no_headers);
    let cx = Context {
        config_path: cli
            .config
            .clone()
            .unwrap_or_else(|| Path::new(config::DEFAULT_PATH).to_path_buf()),
        output: cli.output,
    };
    match cli.command {
        Command::Config(c) => config_cmd::run(&cx, c),
        Command::Simulate(a) => simulate_cmd::run(&cx, cli.config.is_some(), a),
        Command::Trace(args::TraceCommand::Export { since, until, file }) => {
            trace_cmd::export(&cx, &since, until.as_deref(), file.as_deref())
        }
        Command::Demo {
            jobs,
            redis_url,
            forge,
            warm,
        } => demo(&cx, forge, jobs as usize, redis_url, warm),
        Command::ContainerHook { dir, images } => container_hook(dir, images),
        Command::Completions { shell } => {
            output::print(&String::from_utf8_lossy(&completion(shell)))
        }
        Command::Groups(GroupsCommand::List { local }) => groups_cmd::list(&cx, local),
        Command::Groups(GroupsCommand::Sync { group, dry_run }) => {
            groups_cmd::sync(&cx, group.as_deref(), dry_run)
        }
        Command::Runners(RunnersCommand::List { group, status }) => {
            runners_cmd::list(&cx, group.as_deref(), status)
        }
        Command::Runners(RunnersCommand::Create {
            group,
            count,
            parallel,
            dry_run,
        }) => runners_cmd::create(&cx, &group, count, parallel, dry_run),
        Command::Runners(RunnersCommand::Show { name }) => runners_cmd::show(&cx, &name),
        Command::Jobs(JobsCommand::Show { job_id }) => jobs_cmd::show(&cx, job_id),
        Command::Runners(RunnersCommand::Bootstrap { group }) => {
            config_cmd::runners_bootstrap(&cx, &group)
        }
        Command::Runners(RunnersCommand::Delete(args)) => runners_cmd::delete(&cx, &args),
        Command::Healthcheck { group, dry_run } => {
            runners_cmd::healthcheck(&cx, group.as_deref(), dry_run)
        }
        Command::Doctor => doctor_cmd::doctor(&cx),
        Command::Serve => serve_cmd::serve(&cx),
        Command::Worker {
            concurrency,
            no_sync_groups,
        } => queue_cmd::worker(&cx, usize::from(concurrency), !no_sync_groups),
        Command::Tasks(t) => queue_cmd::tasks(&cx, t),
    }
}

fn demo(
    cx: &Context,
    forge: args::ForgeChoice,
    jobs: usize,
    redis_url: Option<String>,
    warm: bool,
) -> Result<()> {
    let rt = runtime()?;
    let bar = output::progress(jobs as u64, cx.output);
    let forge = match forge {
        args::ForgeChoice::Github => crate::demo::DemoForge::Github,
        args::ForgeChoice::Gitea => crate::demo::DemoForge::Gitea,
    };
    let report = rt
        .block_on(crate::demo::run(forge, jobs, redis_url, warm, &|done| {
            bar.set_position(done as u64)
        }))
        .map_err(|e| match e {
            crate::demo::DemoError::NoRedis(_) => Error::Usage(e.to_string()),
            other => Error::Problem(other.to_string()),
        })?;
    bar.finish_and_clear();
    match cx.output {
        output::OutputFormat::Json => output::json(&report),
        output::OutputFormat::Table | output::OutputFormat::Name => {
            output::print(&demo_text(&report))
        }
    }
}

/// The demo's report as text.
fn demo_text(report: &crate::demo::Report) -> String {
    let mut out = format!(
        "runnerctl demo: {} jobs over {} runner groups, fake backend, fake {}, 2 workers{}\n\
         \n  jobs completed            {}\n  runners created           {}\n  runners deleted           {}\n  runners left              {}\n",
        report.jobs,
        report.groups,
        if report.forge == "gitea" { "Gitea" } else { "GitHub" },
        if report.warm { ", warm pools" } else { "" },
        report.jobs_completed,
        report.runners_created,
        report.runners_created - report.runners_left,
        report.runners_left,
    );
    if report.warm {
        out.push_str(&format!(
            "  jobs from warm pools      {}\n",
            report.jobs_from_warm
        ));
    }
    out.push_str(&format!(
        "\n  queued delivery -> backend create call (or warm instance taken)\n    p50 {:.2} ms   p95 {:.2} ms   p99 {:.2} ms\n",
        report.queued_to_create_ms_p50, report.queued_to_create_ms_p95, report.queued_to_create_ms_p99,
    ));
    if let (Some(p50), Some(p95)) = (report.queued_to_start_ms_p50, report.queued_to_start_ms_p95) {
        out.push_str(&format!(
            "  queued -> job started by a runner\n    p50 {p50:.2} ms   p95 {p95:.2} ms\n"
        ));
    }
    out.push_str(&format!(
        "\n  forge API calls           {} ({:.1} per job)\n  webhooks delivered        {}\n  wall time                 {:.1} s\n",
        report.forge_calls, report.forge_calls_per_job, report.webhooks_delivered, report.seconds
    ));
    out
}

/// Global flags that mean nothing to some commands (by their path): hidden from those
/// commands' help, man pages and completions, and refused when given on the command line.
pub const NOT_APPLICABLE: &[(&str, &str, &[&str])] = &[
    ("output", "--output", PRINT_NO_LISTINGS),
    ("no_headers", "--no-headers", PRINT_NO_LISTINGS),
    (
        "config",
        "--config",
        &["completions", "config example", "demo", "container-hook"],
    ),
];

/// The commands that print no listing or report (`-o` and `--no-headers` mean nothing there).
const PRINT_NO_LISTINGS: &[&str] = &[
    "trace export",
    "serve",
    "worker",
    "completions",
    "container-hook",
    "config example",
];

/// `trace export -o FILE`: its output is a file, not a format, so `-o`/`--output` with a
/// value that is not a format becomes `--file` there (and only there).
pub fn trace_export_file(mut argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let words: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let Some(t) = words.iter().position(|w| w == "trace") else {
        return argv;
    };
    if words.get(t + 1).map(String::as_str) != Some("export") {
        return argv;
    }
    let format = |v: &str| matches!(v, "table" | "json" | "name");
    let mut i = 0;
    while i < argv.len() {
        let w = argv[i].to_string_lossy().into_owned();
        if (w == "-o" || w == "--output") && words.get(i + 1).is_some_and(|v| !format(v)) {
            argv[i] = "--file".into();
            i += 2;
            continue;
        }
        if let Some(v) = w.strip_prefix("--output=").or_else(|| w.strip_prefix("-o")) {
            if !v.is_empty() && !format(v) {
                argv[i] = format!("--file={v}").into();
            }
        }
        i += 1;
    }
    argv
}

/// The clap command tree, for generators and tests, with every command's examples.
pub fn command() -> clap::Command {
    let mut cmd = with_examples(Cli::command(), "");
    for (id, _, paths) in NOT_APPLICABLE {
        let Some(global) = cmd.get_arguments().find(|a| a.get_id() == id).cloned() else {
            continue;
        };
        for path in *paths {
            let path: Vec<&str> = path.split(' ').collect();
            // The command's own hidden copy: clap propagates a global flag only to
            // commands that do not define it.
            cmd = hide_in(cmd, &path, &global.clone().hide(true));
        }
    }
    cmd
}

fn hide_in(cmd: clap::Command, path: &[&str], arg: &clap::Arg) -> clap::Command {
    match path {
        [] => cmd.arg(arg.clone()),
        [first, rest @ ..] => cmd.mut_subcommand(*first, |s| hide_in(s, rest, arg)),
    }
}

/// A usage error for a global flag given to a command it means nothing to.
fn refuse_inapplicable(m: &clap::ArgMatches) -> Result<(), clap::Error> {
    let mut path = Vec::new();
    let mut leaf = m;
    while let Some((name, sub)) = leaf.subcommand() {
        path.push(name);
        leaf = sub;
    }
    let path = path.join(" ");
    for (id, flag, paths) in NOT_APPLICABLE {
        let given = leaf.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
        if given && paths.contains(&path.as_str()) {
            return Err(command().error(
                clap::error::ErrorKind::ArgumentConflict,
                format!("`{flag}` does not apply to `runnerctl {path}`"),
            ));
        }
    }
    Ok(())
}

fn with_examples(mut cmd: clap::Command, path: &str) -> clap::Command {
    if let Some(text) = examples::help_text(path) {
        cmd = cmd.after_help(text);
    }
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .filter(|n| n != "help")
        .collect();
    for n in names {
        let sub_path = if path.is_empty() {
            n.clone()
        } else {
            format!("{path} {n}")
        };
        cmd = cmd.mut_subcommand(&n, |s| with_examples(s, &sub_path));
    }
    cmd
}

/// The completion script for `shell`: its registration with clap_complete's dynamic engine,
/// which asks `runnerctl` for candidates (commands, flags, and group, runner and task names).
pub fn completion(shell: clap_complete::Shell) -> Vec<u8> {
    complete::registration(shell)
}

/// Man pages: `runnerctl.1` and one per subcommand (`runnerctl-groups-sync.1`), as
/// (file name, roff text).
pub fn man_pages() -> Vec<(String, Vec<u8>)> {
    // No `help` subcommand in the pages: it has no page of its own to refer to.
    let mut cmd = without_help_subcommand(command());
    cmd.build();
    let mut pages = Vec::new();
    collect_man(&cmd, "runnerctl", "runnerctl", &mut pages);
    pages.push(("runnerctl.yaml.5".into(), examples::config_page()));
    pages
}

fn without_help_subcommand(mut cmd: clap::Command) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for n in names {
        cmd = cmd.mut_subcommand(&n, without_help_subcommand);
    }
    cmd.disable_help_subcommand(true)
}

/// The page `name` (`runnerctl-container-hook`) of `cmd`, invoked as `bin` (`runnerctl
/// container-hook`), and its subcommands' pages.
fn collect_man(cmd: &clap::Command, name: &str, bin: &str, pages: &mut Vec<(String, Vec<u8>)>) {
    let named = cmd.clone().name(name.to_string()).bin_name(bin.to_string());
    let mut buf = Vec::new();
    let man = clap_mangen::Man::new(named);
    let path = bin
        .strip_prefix("runnerctl")
        .unwrap_or("")
        .trim()
        .to_string();
    // clap's sections, then the examples, exit status, environment and files.
    man.render_title(&mut buf)
        .and_then(|_| man.render_name_section(&mut buf))
        .and_then(|_| man.render_synopsis_section(&mut buf))
        .and_then(|_| man.render_description_section(&mut buf))
        .and_then(|_| man.render_options_section(&mut buf))
        .and_then(|_| {
            if cmd.has_subcommands() {
                man.render_subcommands_section(&mut buf)
            } else {
                Ok(())
            }
        })
        .expect("rendering to memory cannot fail");
    buf.extend_from_slice(examples::man_sections(&path).as_bytes());
    man.render_version_section(&mut buf)
        .expect("rendering to memory cannot fail");
    pages.push((format!("{name}.1"), buf));
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        collect_man(
            sub,
            &format!("{name}-{}", sub.get_name()),
            &format!("{bin} {}", sub.get_name()),
            pages,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::log_ceiling;
    use tracing::Level;

    #[test]
    fn layers_that_print_bodies_have_a_ceiling_and_ours_have_none() {
        assert_eq!(log_ceiling("hyper::proto::h1::io"), Some(Level::INFO));
        assert_eq!(log_ceiling("h2::codec"), Some(Level::INFO));
        assert_eq!(
            log_ceiling("aws_smithy_runtime::client::orchestrator"),
            Some(Level::DEBUG)
        );
        assert_eq!(log_ceiling("aws_smithy_xml"), Some(Level::DEBUG));
        assert_eq!(log_ceiling("octocrab"), Some(Level::DEBUG));
        assert_eq!(log_ceiling("bollard::docker"), Some(Level::INFO));
        assert_eq!(log_ceiling("runnerctl::manager::ops"), None);
        assert_eq!(log_ceiling("hyperloop"), None);
    }
}
