# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_runnerctl_global_optspecs
    string join \n c/config= o/output= no-headers v/verbose q/quiet log-format= h/help V/version
end

function __fish_runnerctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_runnerctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_runnerctl_using_subcommand
    set -l cmd (__fish_runnerctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c runnerctl -n "__fish_runnerctl_needs_command" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_needs_command" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_needs_command" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_needs_command" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_needs_command" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_needs_command" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_needs_command" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_needs_command" -f -a "groups" -d 'Show and synchronize runner groups with GitHub'
complete -c runnerctl -n "__fish_runnerctl_needs_command" -f -a "runners" -d 'List, create and delete runners'
complete -c runnerctl -n "__fish_runnerctl_needs_command" -f -a "healthcheck" -d 'Run one health-check pass over the runner groups (for cron)'
complete -c runnerctl -n "__fish_runnerctl_needs_command" -f -a "doctor" -d 'Check what can fail at run time although the configuration validates'
complete -c runnerctl -n "__fish_runnerctl_needs_command" -f -a "tasks" -d 'Inspect and replay the task queue'
complete -c runnerctl -n "__fish_runnerctl_needs_command" -f -a "serve" -d 'Receive GitHub webhooks and enqueue them as tasks (run by systemd)'
complete -c runnerctl -n "__fish_runnerctl_needs_command" -f -a "worker" -d 'Consume the task queue: create and delete runners, run scheduled health checks'
complete -c runnerctl -n "__fish_runnerctl_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c runnerctl -n "__fish_runnerctl_needs_command" -f -a "config" -d 'Validate, show or print an example configuration'
complete -c runnerctl -n "__fish_runnerctl_needs_command" -f -a "demo" -d 'Run everything on this machine with the fake backend and a fake forge, and report'
complete -c runnerctl -n "__fish_runnerctl_needs_command" -f -a "container-hook" -d 'On a runner VM: GitHub\'s runner container hooks, with systemd-nspawn guests'
complete -c runnerctl -n "__fish_runnerctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and not __fish_seen_subcommand_from list sync help" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and not __fish_seen_subcommand_from list sync help" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and not __fish_seen_subcommand_from list sync help" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and not __fish_seen_subcommand_from list sync help" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and not __fish_seen_subcommand_from list sync help" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and not __fish_seen_subcommand_from list sync help" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and not __fish_seen_subcommand_from list sync help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and not __fish_seen_subcommand_from list sync help" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and not __fish_seen_subcommand_from list sync help" -f -a "list" -d 'List the configured runner groups beside what GitHub has'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and not __fish_seen_subcommand_from list sync help" -f -a "sync" -d 'Create or update the GitHub runner groups to match the configuration'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and not __fish_seen_subcommand_from list sync help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and __fish_seen_subcommand_from list" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and __fish_seen_subcommand_from list" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and __fish_seen_subcommand_from list" -l local -d 'Show the configuration only, without asking GitHub'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and __fish_seen_subcommand_from list" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and __fish_seen_subcommand_from sync" -s g -l group -d 'Synchronize only this group' -r
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and __fish_seen_subcommand_from sync" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and __fish_seen_subcommand_from sync" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and __fish_seen_subcommand_from sync" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and __fish_seen_subcommand_from sync" -l dry-run -d 'Show what would change without changing anything'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and __fish_seen_subcommand_from sync" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and __fish_seen_subcommand_from sync" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and __fish_seen_subcommand_from sync" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and __fish_seen_subcommand_from sync" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and __fish_seen_subcommand_from sync" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the configured runner groups beside what GitHub has'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and __fish_seen_subcommand_from help" -f -a "sync" -d 'Create or update the GitHub runner groups to match the configuration'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand groups; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and not __fish_seen_subcommand_from list show create bootstrap delete help" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and not __fish_seen_subcommand_from list show create bootstrap delete help" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and not __fish_seen_subcommand_from list show create bootstrap delete help" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and not __fish_seen_subcommand_from list show create bootstrap delete help" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and not __fish_seen_subcommand_from list show create bootstrap delete help" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and not __fish_seen_subcommand_from list show create bootstrap delete help" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and not __fish_seen_subcommand_from list show create bootstrap delete help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and not __fish_seen_subcommand_from list show create bootstrap delete help" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and not __fish_seen_subcommand_from list show create bootstrap delete help" -f -a "list" -d 'List runners with their status on the backend and on GitHub'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and not __fish_seen_subcommand_from list show create bootstrap delete help" -f -a "show" -d 'Show one runner: its record, why it was made, GitHub\'s and the backend\'s view, its history'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and not __fish_seen_subcommand_from list show create bootstrap delete help" -f -a "create" -d 'Create runners in a group, up to its `max_runners`'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and not __fish_seen_subcommand_from list show create bootstrap delete help" -f -a "bootstrap" -d 'Print what an instance of a group receives to become a runner, secrets redacted'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and not __fish_seen_subcommand_from list show create bootstrap delete help" -f -a "delete" -d 'Delete runners: their instance on the backend and their registration on GitHub'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and not __fish_seen_subcommand_from list show create bootstrap delete help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from list" -s g -l group -d 'Only runners of this group' -r
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from list" -s s -l status -d 'Only runners in this status' -r -f -a "reserved\t'A slot of the group is held for it; nothing exists yet'
creating\t'Its JIT configuration and instance are being made'
started\t'The instance exists; the runner has not come online on GitHub yet'
idle\t'Online on GitHub and waiting for a job'
active\t'Running a job'
deleting\t'Being removed from the backend and from GitHub'
failed\t'Something went wrong that a health check must clean up'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from list" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from list" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from list" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from show" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from show" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from show" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from show" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from show" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from create" -s g -l group -d 'The runner group' -r
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from create" -s n -l count -d 'How many runners to create' -r
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from create" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from create" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from create" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from create" -l dry-run -d 'Show how many would be created within `max_runners`, and create none'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from create" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from create" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from bootstrap" -s g -l group -d 'The runner group' -r
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from bootstrap" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from bootstrap" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from bootstrap" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from bootstrap" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from bootstrap" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from bootstrap" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from bootstrap" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from bootstrap" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from delete" -s g -l group -d 'The group whose runners to delete (with --all)' -r
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from delete" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from delete" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from delete" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from delete" -l all -d 'Delete every runner of --group'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from delete" -l force -d 'Also delete runners that are running a job'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from delete" -l dry-run -d 'Show what would be deleted, and delete nothing'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from delete" -s y -l yes -d 'Do not ask before deleting every runner of a group (required without a terminal)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from delete" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from delete" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from help" -f -a "list" -d 'List runners with their status on the backend and on GitHub'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show one runner: its record, why it was made, GitHub\'s and the backend\'s view, its history'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create runners in a group, up to its `max_runners`'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from help" -f -a "bootstrap" -d 'Print what an instance of a group receives to become a runner, secrets redacted'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete runners: their instance on the backend and their registration on GitHub'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand runners; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand healthcheck" -s g -l group -d 'Check only this group' -r
complete -c runnerctl -n "__fish_runnerctl_using_subcommand healthcheck" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand healthcheck" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand healthcheck" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand healthcheck" -l dry-run -d 'Show the plan of each group and carry none of it out'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand healthcheck" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand healthcheck" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand healthcheck" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand healthcheck" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand healthcheck" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand doctor" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand doctor" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand doctor" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand doctor" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand doctor" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand doctor" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand doctor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand doctor" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and not __fish_seen_subcommand_from list dead requeue help" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and not __fish_seen_subcommand_from list dead requeue help" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and not __fish_seen_subcommand_from list dead requeue help" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and not __fish_seen_subcommand_from list dead requeue help" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and not __fish_seen_subcommand_from list dead requeue help" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and not __fish_seen_subcommand_from list dead requeue help" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and not __fish_seen_subcommand_from list dead requeue help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and not __fish_seen_subcommand_from list dead requeue help" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and not __fish_seen_subcommand_from list dead requeue help" -f -a "list" -d 'List tasks waiting, in flight and scheduled for a retry'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and not __fish_seen_subcommand_from list dead requeue help" -f -a "dead" -d 'List tasks that failed every retry (the dead-letter stream)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and not __fish_seen_subcommand_from list dead requeue help" -f -a "requeue" -d 'Put dead tasks back on the queue'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and not __fish_seen_subcommand_from list dead requeue help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from list" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from list" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from list" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from list" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from list" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from dead" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from dead" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from dead" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from dead" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from dead" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from dead" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from dead" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from dead" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from requeue" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from requeue" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from requeue" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from requeue" -l all -d 'Requeue every dead task'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from requeue" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from requeue" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from requeue" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from requeue" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from requeue" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from help" -f -a "list" -d 'List tasks waiting, in flight and scheduled for a retry'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from help" -f -a "dead" -d 'List tasks that failed every retry (the dead-letter stream)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from help" -f -a "requeue" -d 'Put dead tasks back on the queue'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand tasks; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand serve" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand serve" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand serve" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand serve" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand serve" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand serve" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand serve" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand worker" -s j -l concurrency -d 'Tasks handled at the same time' -r
complete -c runnerctl -n "__fish_runnerctl_using_subcommand worker" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand worker" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand worker" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand worker" -l no-sync-groups -d 'Do not create missing runner groups on GitHub at start (`groups sync`)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand worker" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand worker" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand worker" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand worker" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand worker" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand completions" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand completions" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand completions" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand completions" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand completions" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand completions" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand completions" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and not __fish_seen_subcommand_from validate show example help" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and not __fish_seen_subcommand_from validate show example help" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and not __fish_seen_subcommand_from validate show example help" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and not __fish_seen_subcommand_from validate show example help" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and not __fish_seen_subcommand_from validate show example help" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and not __fish_seen_subcommand_from validate show example help" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and not __fish_seen_subcommand_from validate show example help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and not __fish_seen_subcommand_from validate show example help" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and not __fish_seen_subcommand_from validate show example help" -f -a "validate" -d 'Check a configuration file and report every problem with its line and column'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and not __fish_seen_subcommand_from validate show example help" -f -a "show" -d 'Print the effective configuration, defaults filled in and secrets redacted'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and not __fish_seen_subcommand_from validate show example help" -f -a "example" -d 'Print a complete, commented example configuration'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and not __fish_seen_subcommand_from validate show example help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from validate" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from validate" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from validate" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from validate" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from validate" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from validate" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from validate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from validate" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from show" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from show" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from show" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from show" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from show" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from example" -l forge -d 'The forge the example is for' -r -f -a "github\t''
gitea\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from example" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from example" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from example" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from example" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from example" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from example" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from example" -s h -l help -d 'Print help'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from example" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "validate" -d 'Check a configuration file and report every problem with its line and column'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "show" -d 'Print the effective configuration, defaults filled in and secrets redacted'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "example" -d 'Print a complete, commented example configuration'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand config; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand demo" -s n -l jobs -d 'Jobs in the burst' -r
complete -c runnerctl -n "__fish_runnerctl_using_subcommand demo" -l redis-url -d 'Use this Redis instead of starting one' -r
complete -c runnerctl -n "__fish_runnerctl_using_subcommand demo" -l forge -d 'The fake forge to play on' -r -f -a "github\t''
gitea\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand demo" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand demo" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand demo" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand demo" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand demo" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand demo" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand demo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand demo" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand container-hook" -l dir -d 'Where images and jobs are kept' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand container-hook" -l images -d 'An OCI layout of preloaded images (tagged with the references workflows use), looked in before any registry' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand container-hook" -s o -l output -d 'Output format of listings and reports' -r -f -a "table\t'Aligned columns for people'
json\t'JSON for programs'
name\t'Only the first column (the runner, group or task id), one per line, for scripts'"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand container-hook" -s c -l config -d 'Configuration file [default: /etc/runnerctl/config.yaml]' -r -F
complete -c runnerctl -n "__fish_runnerctl_using_subcommand container-hook" -l log-format -d 'Log lines on stderr as text, or as one JSON object each (for journald, Loki)' -r -f -a "text\t''
json\t''"
complete -c runnerctl -n "__fish_runnerctl_using_subcommand container-hook" -l no-headers -d 'Tables without their header row'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand container-hook" -s v -l verbose -d 'More log output on stderr (-v debug, -vv trace)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand container-hook" -s q -l quiet -d 'Less log output on stderr (-q errors only, -qq nothing)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand container-hook" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand container-hook" -s V -l version -d 'Print version'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and not __fish_seen_subcommand_from groups runners healthcheck doctor tasks serve worker completions config demo container-hook help" -f -a "groups" -d 'Show and synchronize runner groups with GitHub'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and not __fish_seen_subcommand_from groups runners healthcheck doctor tasks serve worker completions config demo container-hook help" -f -a "runners" -d 'List, create and delete runners'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and not __fish_seen_subcommand_from groups runners healthcheck doctor tasks serve worker completions config demo container-hook help" -f -a "healthcheck" -d 'Run one health-check pass over the runner groups (for cron)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and not __fish_seen_subcommand_from groups runners healthcheck doctor tasks serve worker completions config demo container-hook help" -f -a "doctor" -d 'Check what can fail at run time although the configuration validates'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and not __fish_seen_subcommand_from groups runners healthcheck doctor tasks serve worker completions config demo container-hook help" -f -a "tasks" -d 'Inspect and replay the task queue'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and not __fish_seen_subcommand_from groups runners healthcheck doctor tasks serve worker completions config demo container-hook help" -f -a "serve" -d 'Receive GitHub webhooks and enqueue them as tasks (run by systemd)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and not __fish_seen_subcommand_from groups runners healthcheck doctor tasks serve worker completions config demo container-hook help" -f -a "worker" -d 'Consume the task queue: create and delete runners, run scheduled health checks'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and not __fish_seen_subcommand_from groups runners healthcheck doctor tasks serve worker completions config demo container-hook help" -f -a "completions" -d 'Print a shell completion script'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and not __fish_seen_subcommand_from groups runners healthcheck doctor tasks serve worker completions config demo container-hook help" -f -a "config" -d 'Validate, show or print an example configuration'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and not __fish_seen_subcommand_from groups runners healthcheck doctor tasks serve worker completions config demo container-hook help" -f -a "demo" -d 'Run everything on this machine with the fake backend and a fake forge, and report'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and not __fish_seen_subcommand_from groups runners healthcheck doctor tasks serve worker completions config demo container-hook help" -f -a "container-hook" -d 'On a runner VM: GitHub\'s runner container hooks, with systemd-nspawn guests'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and not __fish_seen_subcommand_from groups runners healthcheck doctor tasks serve worker completions config demo container-hook help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and __fish_seen_subcommand_from groups" -f -a "list" -d 'List the configured runner groups beside what GitHub has'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and __fish_seen_subcommand_from groups" -f -a "sync" -d 'Create or update the GitHub runner groups to match the configuration'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and __fish_seen_subcommand_from runners" -f -a "list" -d 'List runners with their status on the backend and on GitHub'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and __fish_seen_subcommand_from runners" -f -a "show" -d 'Show one runner: its record, why it was made, GitHub\'s and the backend\'s view, its history'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and __fish_seen_subcommand_from runners" -f -a "create" -d 'Create runners in a group, up to its `max_runners`'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and __fish_seen_subcommand_from runners" -f -a "bootstrap" -d 'Print what an instance of a group receives to become a runner, secrets redacted'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and __fish_seen_subcommand_from runners" -f -a "delete" -d 'Delete runners: their instance on the backend and their registration on GitHub'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and __fish_seen_subcommand_from tasks" -f -a "list" -d 'List tasks waiting, in flight and scheduled for a retry'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and __fish_seen_subcommand_from tasks" -f -a "dead" -d 'List tasks that failed every retry (the dead-letter stream)'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and __fish_seen_subcommand_from tasks" -f -a "requeue" -d 'Put dead tasks back on the queue'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "validate" -d 'Check a configuration file and report every problem with its line and column'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "show" -d 'Print the effective configuration, defaults filled in and secrets redacted'
complete -c runnerctl -n "__fish_runnerctl_using_subcommand help; and __fish_seen_subcommand_from config" -f -a "example" -d 'Print a complete, commented example configuration'
