
use builtin;
use str;

set edit:completion:arg-completer[runnerctl] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'runnerctl'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'runnerctl'= {
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand groups 'Show and synchronize runner groups with GitHub'
            cand runners 'List, create and delete runners'
            cand healthcheck 'Run one health-check pass over the runner groups (for cron)'
            cand doctor 'Check what can fail at run time although the configuration validates'
            cand tasks 'Inspect and replay the task queue'
            cand serve 'Receive GitHub webhooks and enqueue them as tasks (run by systemd)'
            cand worker 'Consume the task queue: create and delete runners, run scheduled health checks'
            cand completions 'Print a shell completion script'
            cand config 'Validate, show or print an example configuration'
            cand demo 'Run everything on this machine with the fake backend and a fake forge, and report'
            cand container-hook 'On a runner VM: GitHub''s runner container hooks, with systemd-nspawn guests'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'runnerctl;groups'= {
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'List the configured runner groups beside what GitHub has'
            cand sync 'Create or update the GitHub runner groups to match the configuration'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'runnerctl;groups;list'= {
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --local 'Show the configuration only, without asking GitHub'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'runnerctl;groups;sync'= {
            cand -g 'Synchronize only this group'
            cand --group 'Synchronize only this group'
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --dry-run 'Show what would change without changing anything'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'runnerctl;groups;help'= {
            cand list 'List the configured runner groups beside what GitHub has'
            cand sync 'Create or update the GitHub runner groups to match the configuration'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'runnerctl;groups;help;list'= {
        }
        &'runnerctl;groups;help;sync'= {
        }
        &'runnerctl;groups;help;help'= {
        }
        &'runnerctl;runners'= {
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'List runners with their status on the backend and on GitHub'
            cand show 'Show one runner: its record, why it was made, GitHub''s and the backend''s view, its history'
            cand create 'Create runners in a group, up to its `max_runners`'
            cand bootstrap 'Print what an instance of a group receives to become a runner, secrets redacted'
            cand delete 'Delete runners: their instance on the backend and their registration on GitHub'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'runnerctl;runners;list'= {
            cand -g 'Only runners of this group'
            cand --group 'Only runners of this group'
            cand -s 'Only runners in this status'
            cand --status 'Only runners in this status'
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'runnerctl;runners;show'= {
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'runnerctl;runners;create'= {
            cand -g 'The runner group'
            cand --group 'The runner group'
            cand -n 'How many runners to create'
            cand --count 'How many runners to create'
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --dry-run 'Show how many would be created within `max_runners`, and create none'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'runnerctl;runners;bootstrap'= {
            cand -g 'The runner group'
            cand --group 'The runner group'
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'runnerctl;runners;delete'= {
            cand -g 'The group whose runners to delete (with --all)'
            cand --group 'The group whose runners to delete (with --all)'
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --all 'Delete every runner of --group'
            cand --force 'Also delete runners that are running a job'
            cand --dry-run 'Show what would be deleted, and delete nothing'
            cand -y 'Do not ask before deleting every runner of a group (required without a terminal)'
            cand --yes 'Do not ask before deleting every runner of a group (required without a terminal)'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'runnerctl;runners;help'= {
            cand list 'List runners with their status on the backend and on GitHub'
            cand show 'Show one runner: its record, why it was made, GitHub''s and the backend''s view, its history'
            cand create 'Create runners in a group, up to its `max_runners`'
            cand bootstrap 'Print what an instance of a group receives to become a runner, secrets redacted'
            cand delete 'Delete runners: their instance on the backend and their registration on GitHub'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'runnerctl;runners;help;list'= {
        }
        &'runnerctl;runners;help;show'= {
        }
        &'runnerctl;runners;help;create'= {
        }
        &'runnerctl;runners;help;bootstrap'= {
        }
        &'runnerctl;runners;help;delete'= {
        }
        &'runnerctl;runners;help;help'= {
        }
        &'runnerctl;healthcheck'= {
            cand -g 'Check only this group'
            cand --group 'Check only this group'
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --dry-run 'Show the plan of each group and carry none of it out'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'runnerctl;doctor'= {
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'runnerctl;tasks'= {
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'List tasks waiting, in flight and scheduled for a retry'
            cand dead 'List tasks that failed every retry (the dead-letter stream)'
            cand requeue 'Put dead tasks back on the queue'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'runnerctl;tasks;list'= {
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'runnerctl;tasks;dead'= {
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'runnerctl;tasks;requeue'= {
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --all 'Requeue every dead task'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'runnerctl;tasks;help'= {
            cand list 'List tasks waiting, in flight and scheduled for a retry'
            cand dead 'List tasks that failed every retry (the dead-letter stream)'
            cand requeue 'Put dead tasks back on the queue'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'runnerctl;tasks;help;list'= {
        }
        &'runnerctl;tasks;help;dead'= {
        }
        &'runnerctl;tasks;help;requeue'= {
        }
        &'runnerctl;tasks;help;help'= {
        }
        &'runnerctl;serve'= {
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'runnerctl;worker'= {
            cand -j 'Tasks handled at the same time'
            cand --concurrency 'Tasks handled at the same time'
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --no-sync-groups 'Do not create missing runner groups on GitHub at start (`groups sync`)'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'runnerctl;completions'= {
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'runnerctl;config'= {
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand validate 'Check a configuration file and report every problem with its line and column'
            cand show 'Print the effective configuration, defaults filled in and secrets redacted'
            cand example 'Print a complete, commented example configuration'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'runnerctl;config;validate'= {
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'runnerctl;config;show'= {
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'runnerctl;config;example'= {
            cand --forge 'The forge the example is for'
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'runnerctl;config;help'= {
            cand validate 'Check a configuration file and report every problem with its line and column'
            cand show 'Print the effective configuration, defaults filled in and secrets redacted'
            cand example 'Print a complete, commented example configuration'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'runnerctl;config;help;validate'= {
        }
        &'runnerctl;config;help;show'= {
        }
        &'runnerctl;config;help;example'= {
        }
        &'runnerctl;config;help;help'= {
        }
        &'runnerctl;demo'= {
            cand -n 'Jobs in the burst'
            cand --jobs 'Jobs in the burst'
            cand --redis-url 'Use this Redis instead of starting one'
            cand --forge 'The fake forge to play on'
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'runnerctl;container-hook'= {
            cand --dir 'Where images and jobs are kept'
            cand --images 'An OCI layout of preloaded images (tagged with the references workflows use), looked in before any registry'
            cand -o 'Output format of listings and reports'
            cand --output 'Output format of listings and reports'
            cand -c 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --config 'Configuration file [default: /etc/runnerctl/config.yaml]'
            cand --log-format 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)'
            cand --no-headers 'Tables without their header row'
            cand -v 'More log output on stderr (-v debug, -vv trace)'
            cand --verbose 'More log output on stderr (-v debug, -vv trace)'
            cand -q 'Less log output on stderr (-q errors only, -qq nothing)'
            cand --quiet 'Less log output on stderr (-q errors only, -qq nothing)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'runnerctl;help'= {
            cand groups 'Show and synchronize runner groups with GitHub'
            cand runners 'List, create and delete runners'
            cand healthcheck 'Run one health-check pass over the runner groups (for cron)'
            cand doctor 'Check what can fail at run time although the configuration validates'
            cand tasks 'Inspect and replay the task queue'
            cand serve 'Receive GitHub webhooks and enqueue them as tasks (run by systemd)'
            cand worker 'Consume the task queue: create and delete runners, run scheduled health checks'
            cand completions 'Print a shell completion script'
            cand config 'Validate, show or print an example configuration'
            cand demo 'Run everything on this machine with the fake backend and a fake forge, and report'
            cand container-hook 'On a runner VM: GitHub''s runner container hooks, with systemd-nspawn guests'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'runnerctl;help;groups'= {
            cand list 'List the configured runner groups beside what GitHub has'
            cand sync 'Create or update the GitHub runner groups to match the configuration'
        }
        &'runnerctl;help;groups;list'= {
        }
        &'runnerctl;help;groups;sync'= {
        }
        &'runnerctl;help;runners'= {
            cand list 'List runners with their status on the backend and on GitHub'
            cand show 'Show one runner: its record, why it was made, GitHub''s and the backend''s view, its history'
            cand create 'Create runners in a group, up to its `max_runners`'
            cand bootstrap 'Print what an instance of a group receives to become a runner, secrets redacted'
            cand delete 'Delete runners: their instance on the backend and their registration on GitHub'
        }
        &'runnerctl;help;runners;list'= {
        }
        &'runnerctl;help;runners;show'= {
        }
        &'runnerctl;help;runners;create'= {
        }
        &'runnerctl;help;runners;bootstrap'= {
        }
        &'runnerctl;help;runners;delete'= {
        }
        &'runnerctl;help;healthcheck'= {
        }
        &'runnerctl;help;doctor'= {
        }
        &'runnerctl;help;tasks'= {
            cand list 'List tasks waiting, in flight and scheduled for a retry'
            cand dead 'List tasks that failed every retry (the dead-letter stream)'
            cand requeue 'Put dead tasks back on the queue'
        }
        &'runnerctl;help;tasks;list'= {
        }
        &'runnerctl;help;tasks;dead'= {
        }
        &'runnerctl;help;tasks;requeue'= {
        }
        &'runnerctl;help;serve'= {
        }
        &'runnerctl;help;worker'= {
        }
        &'runnerctl;help;completions'= {
        }
        &'runnerctl;help;config'= {
            cand validate 'Check a configuration file and report every problem with its line and column'
            cand show 'Print the effective configuration, defaults filled in and secrets redacted'
            cand example 'Print a complete, commented example configuration'
        }
        &'runnerctl;help;config;validate'= {
        }
        &'runnerctl;help;config;show'= {
        }
        &'runnerctl;help;config;example'= {
        }
        &'runnerctl;help;demo'= {
        }
        &'runnerctl;help;container-hook'= {
        }
        &'runnerctl;help;help'= {
        }
    ]
    $completions[$command]
}
