//! Examples for every command's help and man page, and the man pages' common sections (EXIT
//! STATUS, ENVIRONMENT, FILES) and the configuration file's page.

/// The examples of each command, by its path under `runnerctl` (`""` for the top, `runners
/// list`): (what it does, the command line).
type Examples = &'static [(&'static str, &'static str)];
const EXAMPLES: &[(&[&str], Examples)] = &[
    (
        &[""],
        &[
            (
                "Try everything locally on the fake backend",
                "runnerctl demo",
            ),
            (
                "Check a configuration file",
                "runnerctl config validate /etc/runnerctl/config.yaml",
            ),
            ("See every runner and where it is", "runnerctl runners list"),
            (
                "Run one health-check pass, printing what it would do",
                "runnerctl healthcheck --dry-run",
            ),
        ],
    ),
    (
        &["groups", "groups list"],
        &[
            (
                "The configured groups, without asking the forge",
                "runnerctl groups list --local",
            ),
            (
                "Group names only, for a script",
                "runnerctl -o name groups list --local",
            ),
        ],
    ),
    (
        &["groups sync"],
        &[
            (
                "What would change on GitHub, changing nothing",
                "runnerctl groups sync --dry-run",
            ),
            (
                "Create or update one group's runner group",
                "runnerctl groups sync --group linux",
            ),
        ],
    ),
    (
        &["runners", "runners list"],
        &[
            (
                "Runners of one group that are running a job",
                "runnerctl runners list --group linux --status active",
            ),
            (
                "As JSON, for jq",
                "runnerctl -o json runners list | jq '.[].name'",
            ),
            (
                "Names only, without a header",
                "runnerctl -o name runners list --group linux",
            ),
        ],
    ),
    (
        &["runners create"],
        &[
            (
                "Two more idle runners in a group",
                "runnerctl runners create --group linux --count 2",
            ),
            (
                "What would be created, creating nothing",
                "runnerctl runners create --group linux --count 2 --dry-run",
            ),
        ],
    ),
    (
        &["runners delete"],
        &[
            (
                "Delete one runner (instance and registration)",
                "runnerctl runners delete rm-linux-3f2a",
            ),
            (
                "Every runner of a group, asking first on a terminal",
                "runnerctl runners delete --group linux --all",
            ),
            (
                "The same from a script",
                "runnerctl runners delete --group linux --all --yes",
            ),
        ],
    ),
    (
        &["runners bootstrap"],
        &[(
            "What a group's instances receive, secrets redacted",
            "runnerctl runners bootstrap --group linux",
        )],
    ),
    (
        &["healthcheck"],
        &[
            (
                "One pass over every group (cron or a timer)",
                "runnerctl healthcheck",
            ),
            (
                "The plan for one group, acting on nothing",
                "runnerctl healthcheck --group linux --dry-run",
            ),
        ],
    ),
    (
        &["serve"],
        &[(
            "Receive webhooks as configured (systemd runs it)",
            "runnerctl --config /etc/runnerctl/config.yaml serve",
        )],
    ),
    (
        &["worker"],
        &[(
            "Consume the task queue with 16 tasks at a time",
            "runnerctl worker --concurrency 16",
        )],
    ),
    (
        &["tasks", "tasks list"],
        &[(
            "Tasks waiting, delayed and in flight",
            "runnerctl tasks list",
        )],
    ),
    (
        &["tasks dead"],
        &[(
            "Tasks that ran out of attempts",
            "runnerctl -o json tasks dead",
        )],
    ),
    (
        &["tasks requeue"],
        &[
            (
                "Put one dead task back in the queue",
                "runnerctl tasks requeue 1733112000000-0",
            ),
            ("Put every dead task back", "runnerctl tasks requeue --all"),
        ],
    ),
    (
        &["config", "config validate"],
        &[
            (
                "Check a file before installing it",
                "runnerctl config validate ./config.yaml",
            ),
            (
                "Problems as JSON",
                "runnerctl -o json config validate ./config.yaml",
            ),
        ],
    ),
    (
        &["config show"],
        &[(
            "The effective configuration, defaults filled in and secrets redacted",
            "runnerctl --config ./config.yaml config show",
        )],
    ),
    (
        &["config example"],
        &[
            (
                "Start a configuration from the documented example",
                "runnerctl config example > config.yaml",
            ),
            (
                "The same for Gitea or Forgejo",
                "runnerctl config example --forge gitea",
            ),
        ],
    ),
    (
        &["simulate"],
        &[
            (
                "A synthetic week under your configuration and the per-job policy",
                "runnerctl -c config.yaml simulate --generate diurnal --days 7 --rate 120 --policy per-job",
            ),
            (
                "Your own jobs under a candidate configuration, as JSON",
                "runnerctl -o json simulate --trace week.jsonl --compare candidate.yaml",
            ),
        ],
    ),
    (
        &["trace", "trace export"],
        &[
            (
                "The last week's jobs of the configured scopes, for `simulate`",
                "runnerctl trace export --since 7d -o week.jsonl",
            ),
            (
                "One day, to standard output",
                "runnerctl trace export --since 2026-12-01T00:00:00Z --until 2026-12-02T00:00:00Z",
            ),
        ],
    ),
    (
        &["demo"],
        &[
            (
                "100 jobs on the fake backend and the fake GitHub",
                "runnerctl demo",
            ),
            (
                "The same on a fake Gitea, as JSON",
                "runnerctl -o json demo --forge gitea --jobs 20",
            ),
            (
                "With a warm pool in each group, filled before the burst",
                "runnerctl demo --warm",
            ),
        ],
    ),
    (
        &["jobs", "jobs show"],
        &[
            (
                "Where a job's wait went: queued, delivered, runner chosen, instance started...",
                "runnerctl jobs show 4242",
            ),
            (
                "The same for a script, with the phases in seconds",
                "runnerctl -o json jobs show 4242",
            ),
        ],
    ),
    (
        &["runners show"],
        &[
            (
                "Why a runner exists and what happened to it",
                "runnerctl runners show rc-prod-linux-1a2b3c4d5e",
            ),
            (
                "Its history for a script",
                "runnerctl -o json runners show rc-prod-linux-1a2b3c4d5e",
            ),
        ],
    ),
    (
        &["doctor"],
        &[
            (
                "Check a deployment before starting its services",
                "runnerctl --config /etc/runnerctl/config.yaml doctor",
            ),
            ("The report for a script", "runnerctl -o json doctor"),
        ],
    ),
    (
        &["container-hook"],
        &[
            (
                "One hook call, as the runner's entry point hands it over",
                "runnerctl container-hook < prepare-job.json",
            ),
            (
                "With images preloaded in an OCI layout (no registry needed)",
                "runnerctl container-hook --images /var/lib/runnerctl/images < input.json",
            ),
        ],
    ),
    (
        &["completions"],
        &[
            (
                "Bash completion for the current user",
                "runnerctl completions bash > ~/.local/share/bash-completion/completions/runnerctl",
            ),
            (
                "Zsh",
                "runnerctl completions zsh > \"${fpath[1]}/_runnerctl\"",
            ),
        ],
    ),
];

/// The examples of a command, by its path (`""` for the top, `runners list`).
pub fn of(path: &str) -> Examples {
    EXAMPLES
        .iter()
        .find(|(paths, _)| paths.contains(&path))
        .map_or(&[], |(_, e)| e)
}

/// The examples as help text (`after_help`).
pub fn help_text(path: &str) -> Option<String> {
    let list = of(path);
    if list.is_empty() {
        return None;
    }
    let mut s = String::from("Examples:\n");
    for (what, line) in list {
        s.push_str(&format!("  # {what}\n  {line}\n"));
    }
    Some(s.trim_end().to_string())
}

/// Text escaped for roff.
fn roff(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// The man page sections every page has after clap's: EXAMPLES, EXIT STATUS, ENVIRONMENT,
/// FILES, SEE ALSO.
pub fn man_sections(path: &str) -> String {
    let mut s = String::new();
    if !of(path).is_empty() {
        s.push_str(".SH EXAMPLES\n");
        for (what, line) in of(path) {
            s.push_str(&format!(".TP\n{}\n.B {}\n", roff(what), roff(line)));
        }
    }
    s.push_str(".SH \"EXIT STATUS\"\n");
    for (code, what) in crate::error::EXIT_CODES {
        s.push_str(&format!(".TP\n.B {code}\n{}\n", roff(what)));
    }
    s.push_str(".SH ENVIRONMENT\n");
    for (var, what) in ENVIRONMENT {
        s.push_str(&format!(".TP\n.B {}\n{}\n", roff(var), roff(what)));
    }
    s.push_str(".SH FILES\n");
    for (file, what) in FILES {
        s.push_str(&format!(".TP\n.I {}\n{}\n", roff(file), roff(what)));
    }
    s.push_str(".SH \"SEE ALSO\"\n.BR runnerctl.yaml (5),\n.BR runnerctl (1)\n");
    s
}

/// The environment runnerctl reads.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    ("RUNNERCTL_CONFIG", "The configuration file when --config is not given."),
    ("RUNNERCTL_LOG", "A tracing filter for the logs on stderr, e.g. runnerctl=debug (overrides -v and -q)."),
    ("RUNNERCTL_LOG_FORMAT", "text or json: the logs' format (as --log-format)."),
    ("NAME given by a *_env key", "Secrets named in the configuration (github.token_env, webhook.secret_env, broker.key_env, redis.password_env, …)."),
    ("GOOGLE_APPLICATION_CREDENTIALS, AWS_*", "The clouds' standard credential chains, for the gcp and aws backends."),
    ("DOCKER_HOST", "The Docker engine, for a docker backend without host."),
];

/// The files runnerctl reads.
pub const FILES: &[(&str, &str)] = &[
    ("/etc/runnerctl/config.yaml", "The default configuration file; see runnerctl.yaml(5) and `runnerctl config example`."),
    ("*_file keys", "Secrets read from files named in the configuration (github.token_file, broker.key_file, …)."),
];

/// The configuration file's man page, `runnerctl.yaml.5`: what the file is, its sections, and
/// the documented example in full.
pub fn config_page() -> Vec<u8> {
    let mut s = String::from(
        ".TH RUNNERCTL.YAML 5 \"\" \"runnerctl\" \"File Formats\"\n.SH NAME\nrunnerctl.yaml \\- the configuration of runnerctl\n.SH SYNOPSIS\n/etc/runnerctl/config.yaml\n.SH DESCRIPTION\n",
    );
    s.push_str(&roff(
        "One YAML file configures a runnerctl manager: its name, the forge (github: or gitea:) and its credentials, Redis, the webhook endpoint, the task queue and workers, the optional credential broker, the backends (fake, docker, aws, gcp, vsphere) and the runner groups (for GitHub, or for Gitea and Forgejo with forge: gitea). Validation is strict: unknown keys are errors, and every problem is reported with its file, line and column (runnerctl config validate). Secrets are never written inline: each secret key <key> is read from an environment variable (<key>_env) or a file (<key>_file). Durations are written like 90s, 10m, 12h, 1h30m.",
    ));
    s.push_str("\n.SH EXAMPLE\nThe complete, documented example (runnerctl config example prints it):\n.PP\n.nf\n");
    for line in crate::config::EXAMPLE.lines() {
        s.push_str(&roff(line));
        s.push('\n');
    }
    s.push_str(
        ".fi\n.SH \"SEE ALSO\"\n.BR runnerctl (1),\n.BR runnerctl\\-config\\-validate (1)\n",
    );
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    /// Every command path of the tree, `""` for the top.
    fn paths(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        out.push(path.to_string());
        for s in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let p = if path.is_empty() {
                s.get_name().to_string()
            } else {
                format!("{path} {}", s.get_name())
            };
            paths(s, &p, out);
        }
    }

    #[test]
    fn every_command_has_examples_and_every_example_parses() {
        let cmd = super::super::command();
        let mut all = Vec::new();
        paths(&cmd, "", &mut all);
        for path in all {
            let examples = super::of(&path);
            assert!(!examples.is_empty(), "`runnerctl {path}` has no examples");
            for (_, line) in examples {
                // The command line up to a pipe or a redirection.
                let head = line.split(['|', '>', '<']).next().unwrap_or("");
                let words: Vec<std::ffi::OsString> =
                    head.split_whitespace().map(Into::into).collect();
                // As `main` parses it.
                let argv = super::super::trace_export_file(words);
                let parsed = super::super::command().try_get_matches_from(argv);
                assert!(
                    parsed.is_ok(),
                    "`{line}` does not parse: {:?}",
                    parsed.err()
                );
            }
        }
    }
}
