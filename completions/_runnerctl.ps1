
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'runnerctl' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'runnerctl'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'runnerctl' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('groups', 'groups', [CompletionResultType]::ParameterValue, 'Show and synchronize runner groups with GitHub')
            [CompletionResult]::new('runners', 'runners', [CompletionResultType]::ParameterValue, 'List, create and delete runners')
            [CompletionResult]::new('healthcheck', 'healthcheck', [CompletionResultType]::ParameterValue, 'Run one health-check pass over the runner groups (for cron)')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Check what can fail at run time although the configuration validates')
            [CompletionResult]::new('tasks', 'tasks', [CompletionResultType]::ParameterValue, 'Inspect and replay the task queue')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Receive GitHub webhooks and enqueue them as tasks (run by systemd)')
            [CompletionResult]::new('worker', 'worker', [CompletionResultType]::ParameterValue, 'Consume the task queue: create and delete runners, run scheduled health checks')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'Validate, show or print an example configuration')
            [CompletionResult]::new('demo', 'demo', [CompletionResultType]::ParameterValue, 'Run everything on this machine with the fake backend and a fake forge, and report')
            [CompletionResult]::new('container-hook', 'container-hook', [CompletionResultType]::ParameterValue, 'On a runner VM: GitHub''s runner container hooks, with systemd-nspawn guests')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'runnerctl;groups' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the configured runner groups beside what GitHub has')
            [CompletionResult]::new('sync', 'sync', [CompletionResultType]::ParameterValue, 'Create or update the GitHub runner groups to match the configuration')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'runnerctl;groups;list' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--local', '--local', [CompletionResultType]::ParameterName, 'Show the configuration only, without asking GitHub')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'runnerctl;groups;sync' {
            [CompletionResult]::new('-g', '-g', [CompletionResultType]::ParameterName, 'Synchronize only this group')
            [CompletionResult]::new('--group', '--group', [CompletionResultType]::ParameterName, 'Synchronize only this group')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Show what would change without changing anything')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'runnerctl;groups;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the configured runner groups beside what GitHub has')
            [CompletionResult]::new('sync', 'sync', [CompletionResultType]::ParameterValue, 'Create or update the GitHub runner groups to match the configuration')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'runnerctl;groups;help;list' {
            break
        }
        'runnerctl;groups;help;sync' {
            break
        }
        'runnerctl;groups;help;help' {
            break
        }
        'runnerctl;runners' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List runners with their status on the backend and on GitHub')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one runner: its record, why it was made, GitHub''s and the backend''s view, its history')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create runners in a group, up to its `max_runners`')
            [CompletionResult]::new('bootstrap', 'bootstrap', [CompletionResultType]::ParameterValue, 'Print what an instance of a group receives to become a runner, secrets redacted')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete runners: their instance on the backend and their registration on GitHub')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'runnerctl;runners;list' {
            [CompletionResult]::new('-g', '-g', [CompletionResultType]::ParameterName, 'Only runners of this group')
            [CompletionResult]::new('--group', '--group', [CompletionResultType]::ParameterName, 'Only runners of this group')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Only runners in this status')
            [CompletionResult]::new('--status', '--status', [CompletionResultType]::ParameterName, 'Only runners in this status')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'runnerctl;runners;show' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'runnerctl;runners;create' {
            [CompletionResult]::new('-g', '-g', [CompletionResultType]::ParameterName, 'The runner group')
            [CompletionResult]::new('--group', '--group', [CompletionResultType]::ParameterName, 'The runner group')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'How many runners to create')
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'How many runners to create')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Show how many would be created within `max_runners`, and create none')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'runnerctl;runners;bootstrap' {
            [CompletionResult]::new('-g', '-g', [CompletionResultType]::ParameterName, 'The runner group')
            [CompletionResult]::new('--group', '--group', [CompletionResultType]::ParameterName, 'The runner group')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'runnerctl;runners;delete' {
            [CompletionResult]::new('-g', '-g', [CompletionResultType]::ParameterName, 'The group whose runners to delete (with --all)')
            [CompletionResult]::new('--group', '--group', [CompletionResultType]::ParameterName, 'The group whose runners to delete (with --all)')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Delete every runner of --group')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Also delete runners that are running a job')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Show what would be deleted, and delete nothing')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask before deleting every runner of a group (required without a terminal)')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask before deleting every runner of a group (required without a terminal)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'runnerctl;runners;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List runners with their status on the backend and on GitHub')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one runner: its record, why it was made, GitHub''s and the backend''s view, its history')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create runners in a group, up to its `max_runners`')
            [CompletionResult]::new('bootstrap', 'bootstrap', [CompletionResultType]::ParameterValue, 'Print what an instance of a group receives to become a runner, secrets redacted')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete runners: their instance on the backend and their registration on GitHub')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'runnerctl;runners;help;list' {
            break
        }
        'runnerctl;runners;help;show' {
            break
        }
        'runnerctl;runners;help;create' {
            break
        }
        'runnerctl;runners;help;bootstrap' {
            break
        }
        'runnerctl;runners;help;delete' {
            break
        }
        'runnerctl;runners;help;help' {
            break
        }
        'runnerctl;healthcheck' {
            [CompletionResult]::new('-g', '-g', [CompletionResultType]::ParameterName, 'Check only this group')
            [CompletionResult]::new('--group', '--group', [CompletionResultType]::ParameterName, 'Check only this group')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Show the plan of each group and carry none of it out')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'runnerctl;doctor' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'runnerctl;tasks' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tasks waiting, in flight and scheduled for a retry')
            [CompletionResult]::new('dead', 'dead', [CompletionResultType]::ParameterValue, 'List tasks that failed every retry (the dead-letter stream)')
            [CompletionResult]::new('requeue', 'requeue', [CompletionResultType]::ParameterValue, 'Put dead tasks back on the queue')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'runnerctl;tasks;list' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'runnerctl;tasks;dead' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'runnerctl;tasks;requeue' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Requeue every dead task')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'runnerctl;tasks;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tasks waiting, in flight and scheduled for a retry')
            [CompletionResult]::new('dead', 'dead', [CompletionResultType]::ParameterValue, 'List tasks that failed every retry (the dead-letter stream)')
            [CompletionResult]::new('requeue', 'requeue', [CompletionResultType]::ParameterValue, 'Put dead tasks back on the queue')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'runnerctl;tasks;help;list' {
            break
        }
        'runnerctl;tasks;help;dead' {
            break
        }
        'runnerctl;tasks;help;requeue' {
            break
        }
        'runnerctl;tasks;help;help' {
            break
        }
        'runnerctl;serve' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'runnerctl;worker' {
            [CompletionResult]::new('-j', '-j', [CompletionResultType]::ParameterName, 'Tasks handled at the same time')
            [CompletionResult]::new('--concurrency', '--concurrency', [CompletionResultType]::ParameterName, 'Tasks handled at the same time')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--no-sync-groups', '--no-sync-groups', [CompletionResultType]::ParameterName, 'Do not create missing runner groups on GitHub at start (`groups sync`)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'runnerctl;completions' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'runnerctl;config' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Check a configuration file and report every problem with its line and column')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print the effective configuration, defaults filled in and secrets redacted')
            [CompletionResult]::new('example', 'example', [CompletionResultType]::ParameterValue, 'Print a complete, commented example configuration')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'runnerctl;config;validate' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'runnerctl;config;show' {
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'runnerctl;config;example' {
            [CompletionResult]::new('--forge', '--forge', [CompletionResultType]::ParameterName, 'The forge the example is for')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'runnerctl;config;help' {
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Check a configuration file and report every problem with its line and column')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print the effective configuration, defaults filled in and secrets redacted')
            [CompletionResult]::new('example', 'example', [CompletionResultType]::ParameterValue, 'Print a complete, commented example configuration')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'runnerctl;config;help;validate' {
            break
        }
        'runnerctl;config;help;show' {
            break
        }
        'runnerctl;config;help;example' {
            break
        }
        'runnerctl;config;help;help' {
            break
        }
        'runnerctl;demo' {
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Jobs in the burst')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Jobs in the burst')
            [CompletionResult]::new('--redis-url', '--redis-url', [CompletionResultType]::ParameterName, 'Use this Redis instead of starting one')
            [CompletionResult]::new('--forge', '--forge', [CompletionResultType]::ParameterName, 'The fake forge to play on')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'runnerctl;container-hook' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'Where images and jobs are kept')
            [CompletionResult]::new('--images', '--images', [CompletionResultType]::ParameterName, 'An OCI layout of preloaded images (tagged with the references workflows use), looked in before any registry')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format of listings and reports')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file [default: /etc/runnerctl/config.yaml]')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Tables without their header row')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More log output on stderr (-v debug, -vv trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less log output on stderr (-q errors only, -qq nothing)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'runnerctl;help' {
            [CompletionResult]::new('groups', 'groups', [CompletionResultType]::ParameterValue, 'Show and synchronize runner groups with GitHub')
            [CompletionResult]::new('runners', 'runners', [CompletionResultType]::ParameterValue, 'List, create and delete runners')
            [CompletionResult]::new('healthcheck', 'healthcheck', [CompletionResultType]::ParameterValue, 'Run one health-check pass over the runner groups (for cron)')
            [CompletionResult]::new('doctor', 'doctor', [CompletionResultType]::ParameterValue, 'Check what can fail at run time although the configuration validates')
            [CompletionResult]::new('tasks', 'tasks', [CompletionResultType]::ParameterValue, 'Inspect and replay the task queue')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Receive GitHub webhooks and enqueue them as tasks (run by systemd)')
            [CompletionResult]::new('worker', 'worker', [CompletionResultType]::ParameterValue, 'Consume the task queue: create and delete runners, run scheduled health checks')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('config', 'config', [CompletionResultType]::ParameterValue, 'Validate, show or print an example configuration')
            [CompletionResult]::new('demo', 'demo', [CompletionResultType]::ParameterValue, 'Run everything on this machine with the fake backend and a fake forge, and report')
            [CompletionResult]::new('container-hook', 'container-hook', [CompletionResultType]::ParameterValue, 'On a runner VM: GitHub''s runner container hooks, with systemd-nspawn guests')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'runnerctl;help;groups' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the configured runner groups beside what GitHub has')
            [CompletionResult]::new('sync', 'sync', [CompletionResultType]::ParameterValue, 'Create or update the GitHub runner groups to match the configuration')
            break
        }
        'runnerctl;help;groups;list' {
            break
        }
        'runnerctl;help;groups;sync' {
            break
        }
        'runnerctl;help;runners' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List runners with their status on the backend and on GitHub')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one runner: its record, why it was made, GitHub''s and the backend''s view, its history')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create runners in a group, up to its `max_runners`')
            [CompletionResult]::new('bootstrap', 'bootstrap', [CompletionResultType]::ParameterValue, 'Print what an instance of a group receives to become a runner, secrets redacted')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete runners: their instance on the backend and their registration on GitHub')
            break
        }
        'runnerctl;help;runners;list' {
            break
        }
        'runnerctl;help;runners;show' {
            break
        }
        'runnerctl;help;runners;create' {
            break
        }
        'runnerctl;help;runners;bootstrap' {
            break
        }
        'runnerctl;help;runners;delete' {
            break
        }
        'runnerctl;help;healthcheck' {
            break
        }
        'runnerctl;help;doctor' {
            break
        }
        'runnerctl;help;tasks' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List tasks waiting, in flight and scheduled for a retry')
            [CompletionResult]::new('dead', 'dead', [CompletionResultType]::ParameterValue, 'List tasks that failed every retry (the dead-letter stream)')
            [CompletionResult]::new('requeue', 'requeue', [CompletionResultType]::ParameterValue, 'Put dead tasks back on the queue')
            break
        }
        'runnerctl;help;tasks;list' {
            break
        }
        'runnerctl;help;tasks;dead' {
            break
        }
        'runnerctl;help;tasks;requeue' {
            break
        }
        'runnerctl;help;serve' {
            break
        }
        'runnerctl;help;worker' {
            break
        }
        'runnerctl;help;completions' {
            break
        }
        'runnerctl;help;config' {
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Check a configuration file and report every problem with its line and column')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print the effective configuration, defaults filled in and secrets redacted')
            [CompletionResult]::new('example', 'example', [CompletionResultType]::ParameterValue, 'Print a complete, commented example configuration')
            break
        }
        'runnerctl;help;config;validate' {
            break
        }
        'runnerctl;help;config;show' {
            break
        }
        'runnerctl;help;config;example' {
            break
        }
        'runnerctl;help;demo' {
            break
        }
        'runnerctl;help;container-hook' {
            break
        }
        'runnerctl;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
