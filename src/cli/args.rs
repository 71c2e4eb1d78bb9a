//! The command tree. Help texts here are the user's documentation: the man pages and shell
//! completions in `man/` and `completions/` are generated from these definitions.

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use clap_complete::ArgValueCompleter;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "runnerctl",
    version,
    about = "Run fleets of self-hosted GitHub Actions and Gitea/Forgejo Actions runners on virtual machines and containers",
    long_about = "runnerctl creates a self-hosted runner for each queued GitHub Actions (or \
                  Gitea/Forgejo Actions) job, on the backend of the job's runner group (AWS EC2, \
                  Google Compute Engine, VMware vSphere, Docker or the built-in fake backend), \
                  and deletes it when the job completes. \
                  State and the task queue live in Redis, so several `serve` and `worker` \
                  processes can share the work.\n\n\
                  Exit codes: 0 success; 1 the command ran and found a problem; 2 usage or \
                  configuration error; 3 a dependency (Redis, GitHub, a backend) was unreachable.",
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Configuration file [default: /etc/runnerctl/config.yaml]
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "RUNNERCTL_CONFIG",
        value_name = "PATH"
    )]
    pub config: Option<PathBuf>,

    /// Output format of listings and reports
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Tables without their header row
    #[arg(long, global = true)]
    pub no_headers: bool,

    /// More log output on stderr (-v debug, -vv trace)
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Less log output on stderr (-q errors only, -qq nothing)
    #[arg(long, short = 'q', global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,

    /// Log lines on stderr as text, or as one JSON object each (for journald, Loki)
    #[arg(long, global = true, value_enum, env = "RUNNERCTL_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people
    Table,
    /// JSON for programs
    Json,
    /// Only the first column (the runner, group or task id), one per line, for scripts
    Name,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show and synchronize runner groups with GitHub
    #[command(subcommand)]
    Groups(GroupsCommand),

    /// List, create and delete runners
    #[command(subcommand)]
    Runners(RunnersCommand),

    /// Show where a job's wait went
    #[command(subcommand)]
    Jobs(JobsCommand),

    /// Run one health-check pass over the runner groups (for cron)
    ///
    /// Re-creates runners that did not come online within `time_to_start`, deletes runners past
    /// `time_to_live` that run no job, keeps `min_runners` idle runners, and removes leaked
    /// instances and ghost runners. Exits 1 when it found problems it could not fix.
    Healthcheck {
        /// Check only this group
        #[arg(long, short = 'g', value_name = "NAME", add = ArgValueCompleter::new(super::complete::groups))]
        group: Option<String>,
        /// Show the plan of each group and carry none of it out
        #[arg(long)]
        dry_run: bool,
    },

    /// Check what can fail at run time although the configuration validates
    ///
    /// One line per check: the configuration, every secret, Redis (reachable, persistence, the
    /// clock against Redis's), the forge's credentials for each group's scope, the runner groups
    /// on GitHub, and each backend (built and listing its instances). Exits 0 when nothing
    /// failed (warnings included), 1 when a check failed, 2 when the file is invalid.
    Doctor,

    /// Receive GitHub webhooks and enqueue them as tasks (run by systemd)
    ///
    /// Listens on `webhook.listen`. Routes: POST /webhook, GET /healthz, GET /readyz,
    /// GET /metrics. Refuses to start without a webhook secret.
    Serve,

    /// Consume the task queue: create and delete runners, run scheduled health checks
    ///
    /// Several workers on several hosts may share one Redis. On SIGTERM or SIGINT a worker stops
    /// taking tasks, finishes or releases the ones in flight and exits 0; a second signal exits at
    /// once.
    Worker {
        /// Tasks handled at the same time
        #[arg(long, short = 'j', default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
        concurrency: u16,
        /// Do not create missing runner groups on GitHub at start (`groups sync`)
        #[arg(long)]
        no_sync_groups: bool,
    },

    /// Inspect and replay the task queue
    #[command(subcommand)]
    Tasks(TasksCommand),

    /// Validate, show or print an example configuration
    #[command(subcommand)]
    Config(ConfigCommand),

    /// Replay a job trace on the real scheduler against modelled clouds and forge, and report
    ///
    /// Runs the same manager code as `worker`, on an in-memory store and a virtual clock,
    /// against the models of the configuration's `simulation:` section (boot times, prices,
    /// deliveries, API limits): a week of jobs takes seconds. Reports job waits (queued to
    /// started) overall, by group and by repository, runner minutes busy, idle and booting,
    /// cost, wasted runners, API use and peaks. `--compare` and `--policy` run the same trace
    /// under other configurations or reference policies, side by side with ratios. The same
    /// trace, configuration and seed give the same output, byte for byte. Exits 0, or 2 on a
    /// bad trace, configuration or flag.
    Simulate(SimulateArgs),

    /// Job traces: the input of `simulate`
    #[command(subcommand)]
    Trace(TraceCommand),

    /// Run everything on this machine with the fake backend and a fake forge, and report
    ///
    /// Starts Redis (its own redis-server unless --redis-url is given), a fake GitHub (or Gitea with --forge gitea), the
    /// webhook server and two workers; plays a burst of jobs over three runner groups; prints
    /// runners created and deleted, the time from a queued delivery to the backend's create
    /// call, and the GitHub API calls used per job. Needs no configuration file.
    Demo {
        /// Jobs in the burst
        #[arg(long, short = 'n', default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100000))]
        jobs: u32,
        /// Use this Redis instead of starting one
        #[arg(long, value_name = "URL")]
        redis_url: Option<String>,
        /// The fake forge to play on
        #[arg(long, value_enum, default_value_t = ForgeChoice::Github)]
        forge: ForgeChoice,
        /// Keep a warm pool in each group (hot and stopped instances) before the burst, and
        /// report how many jobs took a warm instance
        #[arg(long)]
        warm: bool,
    },

    /// On a runner VM: GitHub's runner container hooks, with systemd-nspawn guests
    ///
    /// Reads one hook call (prepare_job, run_script_step, run_container_step or cleanup_job) as
    /// JSON on standard input, as the runner's entry point hands it over; a step's output and
    /// exit status are this command's. Needs systemd-nspawn, skopeo and umoci, and root. The
    /// bootstrap of a group with `container_jobs` installs the entry point and sets
    /// ACTIONS_RUNNER_CONTAINER_HOOKS.
    ContainerHook {
        /// Where images and jobs are kept
        #[arg(long, value_name = "DIR", env = "RUNNERCTL_HOOK_DIR", default_value = crate::hook::DEFAULT_DIR)]
        dir: PathBuf,
        /// An OCI layout of preloaded images (tagged with the references workflows use), looked in before any registry
        #[arg(long, value_name = "DIR", env = "RUNNERCTL_HOOK_IMAGES")]
        images: Option<PathBuf>,
    },

    /// Print a shell completion script
    ///
    /// For example: `runnerctl completions bash > /etc/bash_completion.d/runnerctl`.
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// List the configured runner groups beside what GitHub has
    List {
        /// Show the configuration only, without asking GitHub
        #[arg(long)]
        local: bool,
    },

    /// Create or update the GitHub runner groups to match the configuration
    ///
    /// A group that is missing on GitHub is created; one that differs is updated (repository
    /// access, public repositories, workflow restrictions). A GitHub group that runnerctl did not
    /// create is never deleted.
    Sync {
        /// Synchronize only this group
        #[arg(long, short = 'g', value_name = "NAME", add = ArgValueCompleter::new(super::complete::groups))]
        group: Option<String>,
        /// Show what would change without changing anything
        #[arg(long)]
        dry_run: bool,
    },
}

/// `runnerctl jobs`.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Show a job's timeline: queued, delivered, runner chosen, registered, instance started,
    /// credential fetched, in progress, completed
    ///
    /// From Redis (kept 7 days after the job's last step): each step's time and the time since
    /// the job was queued, the runner chosen for it and where it came from (hot, stopped or cold),
    /// and the phases between steps. `queued` is the forge's time (seconds); the rest Redis's
    /// and `serve`'s. Exits 0; 2 when nothing is known of the job.
    Show {
        /// The job's id (the forge's `workflow_job` id)
        job_id: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunnersCommand {
    /// List runners with their status on the backend and on GitHub
    List {
        /// Only runners of this group
        #[arg(long, short = 'g', value_name = "NAME", add = ArgValueCompleter::new(super::complete::groups))]
        group: Option<String>,
        /// Only runners in this status
        #[arg(long, short = 's', value_parser = status_parser())]
        status: Option<crate::model::RunnerStatus>,
    },

    /// Show one runner: its record, why it was made, GitHub's and the backend's view, its history
    ///
    /// The history (kept 7 days after its last entry, 50 entries) lists each status the record
    /// moved to with Redis's time, so a runner that is gone can still be looked up.
    Show {
        /// The runner's name
        #[arg(add = ArgValueCompleter::new(super::complete::runners))]
        name: String,
    },

    /// Create runners in a group, up to its `max_runners`
    Create {
        /// The runner group
        #[arg(long, short = 'g', value_name = "NAME", add = ArgValueCompleter::new(super::complete::groups))]
        group: String,
        /// How many runners to create
        #[arg(long, short = 'n', default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10000))]
        count: u32,
        /// How many are made at once (each waits for its instance and registration)
        #[arg(long, short = 'p', default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
        parallel: u32,
        /// Show how many would be created within `max_runners`, and create none
        #[arg(long)]
        dry_run: bool,
    },

    /// Print what an instance of a group receives to become a runner, secrets redacted
    ///
    /// Shows the command, the environment and the files (the bootstrap script, its settings,
    /// and the credential file, whose content is never printed).
    Bootstrap {
        /// The runner group
        #[arg(long, short = 'g', value_name = "NAME", add = ArgValueCompleter::new(super::complete::groups))]
        group: String,
    },

    /// Delete runners: their instance on the backend and their registration on GitHub
    #[command(group(ArgGroup::new("target").required(true).args(["names", "all"])))]
    Delete(DeleteArgs),
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Names of the runners to delete
    #[arg(value_name = "NAME", conflicts_with_all = ["all", "group"], add = ArgValueCompleter::new(super::complete::runners))]
    pub names: Vec<String>,
    /// The group whose runners to delete (with --all)
    #[arg(long, short = 'g', value_name = "NAME", requires = "all", add = ArgValueCompleter::new(super::complete::groups))]
    pub group: Option<String>,
    /// Delete every runner of --group
    #[arg(long, requires = "group")]
    pub all: bool,
    /// Also delete runners that are running a job
    #[arg(long)]
    pub force: bool,
    /// Show what would be deleted, and delete nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask before deleting every runner of a group (required without a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// List tasks waiting, in flight and scheduled for a retry
    List,
    /// List tasks that failed every retry (the dead-letter stream)
    Dead,
    /// Put dead tasks back on the queue
    #[command(group(ArgGroup::new("which").required(true).args(["id", "all"])))]
    Requeue {
        /// The dead task's id
        #[arg(add = ArgValueCompleter::new(super::complete::dead_tasks))]
        id: Option<String>,
        /// Requeue every dead task
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file and report every problem with its line and column
    Validate {
        /// The file to check [default: --config]
        path: Option<PathBuf>,
    },
    /// Print the effective configuration, defaults filled in and secrets redacted
    Show,
    /// Print a complete, commented example configuration
    Example {
        /// The forge the example is for
        #[arg(long, value_enum, default_value_t = ForgeChoice::Github)]
        forge: ForgeChoice,
    },
}

/// `--status`: one of the runner statuses of the domain, which knows nothing of clap.
fn status_parser() -> impl clap::builder::TypedValueParser<Value = crate::model::RunnerStatus> {
    use crate::model::RunnerStatus;
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(
        RunnerStatus::ALL.map(|s| clap::builder::PossibleValue::new(s.as_str()).help(s.describe())),
    )
    .map(|s: String| RunnerStatus::parse(&s).unwrap_or(RunnerStatus::Failed))
}

/// A forge named on the command line (`demo --forge`, `config example --forge`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ForgeChoice {
    Github,
    Gitea,
}

/// `simulate`'s flags.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["trace", "generate"])))]
pub struct SimulateArgs {
    /// The job trace to replay: JSON Lines, or CSV with a header (see README, "Simulation")
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Make a synthetic trace instead of reading one
    #[arg(long, value_enum, value_name = "KIND")]
    pub generate: Option<GenerateKind>,
    /// Seed of every random draw (trace, delays, failures)
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also run the trace under this configuration file (repeatable)
    #[arg(long, value_name = "FILE")]
    pub compare: Vec<PathBuf>,
    /// Also run the trace under a reference policy (repeatable)
    #[arg(long, value_enum)]
    pub policy: Vec<SimPolicy>,
    /// Idle runners per group kept by the `min-idle` policy
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub min_idle: u32,
    /// How long the run goes on after the last job is queued; jobs not started by then count
    /// as never started
    #[arg(long, default_value = "24h", value_name = "TIME")]
    pub drain: crate::config::simulation::Time,
    /// Save the generated trace to this file (JSON Lines)
    #[arg(long, value_name = "FILE", requires = "generate")]
    pub write_trace: Option<PathBuf>,
    /// Generated jobs [default: 1000 unless --days is given]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub jobs: Option<u64>,
    /// Generate jobs over this many days
    #[arg(long, value_name = "DAYS")]
    pub days: Option<f64>,
    /// Generated jobs per hour (at the peak hour for `diurnal`)
    #[arg(long, default_value_t = 60.0, value_name = "PER_HOUR")]
    pub rate: f64,
    /// Distribution of generated job durations
    #[arg(long, value_enum, default_value_t = DurationKind::Exponential)]
    pub duration_dist: DurationKind,
    /// Mean job duration (the median for `lognormal`)
    #[arg(long, default_value = "5m", value_name = "TIME")]
    pub duration_mean: crate::config::simulation::Time,
    /// 95th percentile of job durations (`lognormal`), or the maximum (`uniform`)
    #[arg(long, value_name = "TIME")]
    pub duration_p95: Option<crate::config::simulation::Time>,
    /// Repositories per organization in generated jobs
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub repos: u32,
    /// `diurnal`: the weekend's rate as a fraction of the weekdays'
    #[arg(long, default_value_t = 0.2, value_name = "FRACTION")]
    pub weekend: f64,
    /// `diurnal`: 24 comma-separated weights, one per hour of the day (UTC) [default: office hours]
    #[arg(long, value_name = "W0,...,W23")]
    pub profile: Option<String>,
    /// `burst`: every job is queued within this time of the start
    #[arg(long, default_value = "60s", value_name = "TIME")]
    pub window: crate::config::simulation::Time,
}

/// Synthetic traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GenerateKind {
    /// Arrivals at a constant rate (`--rate`)
    Poisson,
    /// Arrivals following the hour of the day, quieter on weekends
    Diurnal,
    /// Every job at once (within `--window`)
    Burst,
}

/// Distributions of generated job durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DurationKind {
    Exponential,
    Lognormal,
    Fixed,
    Uniform,
}

/// Reference policies of `simulate --policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimPolicy {
    /// A runner created when a job is queued, deleted when it completes, nothing kept warm
    PerJob,
    /// `--min-idle` idle runners kept in every group at all times
    MinIdle,
}

#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// Write the configured scopes' past jobs as a trace, for `simulate --trace`
    ///
    /// For each repository the runner groups serve (every repository of a group's
    /// organization, or its one repository), lists the workflow runs created in the window
    /// and their jobs (GitHub; Gitea 1.24's jobs listing), every page, and writes one JSON
    /// line per job that started and completed: `queued_at` (RFC 3339), `labels`,
    /// `repository`, `duration_s`, `conclusion`. A rate limit is waited out (said on stderr)
    /// and the repository listed again. `-o FILE` is `--file FILE` here.
    Export {
        /// Jobs queued since this long ago (`7d`, `12h`) or since this time (RFC 3339)
        #[arg(long, value_name = "TIME")]
        since: String,
        /// Jobs queued before this long ago or this time [default: now]
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Where to write the trace [default: standard output]
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
}
