//! Each class of configuration problem, with its exact message.

use runnerctl::config::{self, ConfigError, Severity};

const BASE: &str = "\
github:
  token_env: GITHUB_TOKEN
webhook:
  secret_env: WEBHOOK_SECRET
backends:
  fake:
    kind: fake
  docker:
    kind: docker
runner_groups:
  - name: a
    organization: octo-org
    labels: [self-hosted, a]
    backend: fake
";

/// The errors of `text`, as `path: message` lines.
fn errors(text: &str) -> Vec<String> {
    match runnerctl::wiring::parse(text, "test.yaml") {
        Ok(_) => vec![],
        Err(ConfigError::Invalid { problems, .. }) => problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| p.summary())
            .collect(),
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn warnings(text: &str) -> Vec<String> {
    runnerctl::wiring::parse(text, "test.yaml")
        .expect("valid")
        .warnings
        .iter()
        .map(|p| p.summary())
        .collect()
}

fn with_group(extra: &str) -> String {
    format!("{BASE}{extra}")
}

#[test]
fn the_base_is_valid_and_defaults_apply() {
    let loaded = runnerctl::wiring::parse(BASE, "test.yaml").unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert_eq!(c.name, "runner-manager");
    assert_eq!(c.github.base_url, "https://api.github.com");
    assert_eq!(c.redis.url, "redis://127.0.0.1:6379/0");
    assert_eq!(c.webhook.listen, "127.0.0.1:8080");
    assert_eq!(c.healthcheck_interval.as_secs(), 600);
    assert_eq!(c.time_to_start.as_secs(), 600);
    assert_eq!(c.time_to_live.as_secs(), 12 * 3600);
    let g = &c.runner_groups[0];
    assert_eq!((g.max_runners, g.min_runners), (20, 0));
    assert!(g.allow_public_repositories);
    assert_eq!(g.selected_repositories, None);
    assert!(g.selected_workflows.is_empty());
}

#[test]
fn the_shipped_example_is_valid_without_warnings() {
    let loaded = runnerctl::wiring::parse(config::EXAMPLE, "config.example.yaml").unwrap();
    // Not even the broker's: it is on, as the GCP and vSphere groups need.
    let warnings: Vec<_> = loaded.warnings.iter().map(|w| w.summary()).collect();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(loaded.config.broker.enabled());
    let kinds: Vec<_> = loaded.config.backends.iter().map(|b| b.kind()).collect();
    for kind in runnerctl::backend::kinds().iter().map(|k| k.name()) {
        assert!(kinds.contains(&kind), "example lacks a {kind} backend");
        assert!(
            loaded.config.runner_groups.iter().any(|g| loaded
                .config
                .backend(&g.backend)
                .unwrap()
                .kind()
                == kind),
            "example lacks a group on a {kind} backend"
        );
    }
}

#[test]
fn min_above_max_names_both_numbers_and_the_position() {
    let text = with_group(
        "  - name: b\n    organization: octo-org\n    labels: [b]\n    backend: fake\n    max_runners: 3\n    min_runners: 5\n",
    );
    assert_eq!(
        errors(&text),
        ["runner_groups[1].min_runners: must not exceed max_runners (5 > 3)"]
    );
    let Err(ConfigError::Invalid { problems, .. }) = runnerctl::wiring::parse(&text, "x.yaml")
    else {
        panic!()
    };
    assert_eq!((problems[0].line, problems[0].column), (Some(20), Some(18)));
    assert_eq!(
        problems[0].render("x.yaml"),
        "x.yaml:20:18: runner_groups[1].min_runners: must not exceed max_runners (5 > 3)"
    );
}

#[test]
fn unknown_keys_are_rejected_everywhere_and_all_reported() {
    let text = BASE
        .replace("github:\n", "github:\n  tokn: x\n")
        .replace("backends:\n", "colour: blue\nbackends:\n")
        + "    maxrunners: 3\n";
    assert_eq!(
        errors(&text),
        [
            "github.tokn: unknown field; did you mean `token`?",
            "colour: unknown field",
            "runner_groups[0].maxrunners: unknown field; did you mean `max_runners`?",
        ]
    );
}

#[test]
fn wrong_types_name_the_field() {
    let text = BASE.to_string() + "    max_runners: many\n";
    assert_eq!(
        errors(&text),
        ["runner_groups[0].max_runners: invalid type: string \"many\", expected u32"]
    );
}

#[test]
fn durations_need_units() {
    assert_eq!(
        errors(&format!("time_to_live: 12\n{BASE}")),
        ["time_to_live: a duration needs a unit: write `12s`, `12m` or `12h`"]
    );
    assert_eq!(
        errors(&format!("time_to_start: 10y\n{BASE}")),
        ["time_to_start: invalid duration `10y`: unknown unit `y` (use s, m, h or d)"]
    );
    assert_eq!(
        errors(&format!("time_to_start: 2h\ntime_to_live: 1h\n{BASE}")),
        ["time_to_start: must be shorter than time_to_live (2h >= 1h)"]
    );
    assert_eq!(
        errors(&format!("healthcheck_interval: 0s\n{BASE}")),
        ["healthcheck_interval: must be between 10s and 7d (is 0s)"]
    );
}

#[test]
fn group_names_are_unique() {
    let text =
        with_group("  - name: a\n    organization: octo-org\n    labels: [b]\n    backend: fake\n");
    assert_eq!(
        errors(&text),
        ["runner_groups[1].name: duplicate group name `a` (first used by runner_groups[0])"]
    );
}

#[test]
fn label_sets_are_distinct_ignoring_case_and_order() {
    let text = with_group(
        "  - name: b\n    organization: octo-org\n    labels: [A, Self-Hosted]\n    backend: fake\n",
    );
    assert_eq!(
        errors(&text),
        ["runner_groups[1].labels: same labels as runner_groups[0]: a job could not tell the two groups apart"]
    );
}

#[test]
fn labels_are_required_and_well_formed() {
    let none = BASE.replace("    labels: [self-hosted, a]\n", "");
    assert_eq!(
        errors(&none),
        ["runner_groups[0].labels: required field is missing (the labels jobs ask for in `runs-on`)"]
    );
    let empty = BASE.replace("[self-hosted, a]", "[]");
    assert_eq!(
        errors(&empty),
        ["runner_groups[0].labels: must list at least one label"]
    );
    let comma = BASE.replace("[self-hosted, a]", "[\"a,b\"]");
    assert_eq!(
        errors(&comma),
        ["runner_groups[0].labels[0]: `a,b` is not a valid label (1 to 100 printable ASCII characters; no spaces, commas, quotes, backslashes, `$` or backticks)"]
    );
}

#[test]
fn required_group_fields() {
    let text = BASE
        .replace("    organization: octo-org\n", "")
        .replace("    backend: fake\n", "");
    assert_eq!(
        errors(&text),
        [
            "runner_groups[0].organization: required field is missing",
            "runner_groups[0].backend: required field is missing",
        ]
    );
    assert_eq!(
        errors(&BASE.replace("max_runners", "x").replace("name: a", "name: A")),
        ["runner_groups[0].name: `A` is not a valid group name: use 1 to 32 lowercase letters, digits and dashes, starting with a letter (it is part of runner names)"]
    );
}

#[test]
fn a_group_names_a_defined_backend() {
    let text = BASE.replace("backend: fake", "backend: cloud");
    assert_eq!(
        errors(&text),
        ["runner_groups[0].backend: unknown backend `cloud` (defined: fake, docker)"]
    );
}

#[test]
fn the_spec_must_fit_the_backend_kind() {
    let text = with_group(
        "  - name: b\n    organization: octo-org\n    labels: [b]\n    backend: docker\n    spec:\n      instance_type: c6i.large\n",
    );
    assert_eq!(
        errors(&text),
        [
            "runner_groups[1].spec.instance_type: unknown field",
            "runner_groups[1].spec.image: required field is missing",
        ]
    );
    let missing = with_group(
        "  - name: b\n    organization: octo-org\n    labels: [b]\n    backend: docker\n",
    );
    assert_eq!(
        errors(&missing),
        ["runner_groups[1].spec: required field is missing (the instance spec for a `docker` backend)"]
    );
}

#[test]
fn backend_kinds_are_checked() {
    let text = BASE.replace("kind: docker", "kind: azure");
    assert_eq!(
        errors(&text),
        ["backends.docker.kind: unknown backend kind `azure` (one of: fake, docker, aws, gcp, vsphere)"]
    );
    let text = BASE.replace("    kind: docker\n", "    network: x\n");
    assert_eq!(
        errors(&text),
        ["backends.docker.kind: required field is missing (one of: fake, docker, aws, gcp, vsphere)"]
    );
    let text = BASE.replace("    kind: docker\n", "    kind: aws\n");
    assert_eq!(
        errors(&text),
        ["backends.docker.region: required field is missing"]
    );
    let text = BASE.replace("kind: docker", "kind: vsphere");
    assert_eq!(
        errors(&text),
        [
            "backends.docker.url: required field is missing",
            "backends.docker.user: required field is missing",
            "backends.docker.password: required field is missing (`password_env` or `password_file`)",
            "backends.docker.folder: required field is missing (an inventory path like /DC/vm/runners)",
            "backends.docker.resource_pool: required field is missing (an inventory path like /DC/host/CLUSTER/Resources)",
        ]
    );
}

#[test]
fn a_kind_whose_code_is_not_built_is_not_offered() {
    // A build without the docker feature registers only the kinds it has.
    use runnerctl::backend::Kind;
    let only_fake = [runnerctl::backend::fake::KIND.schema()];
    let Err(config::ConfigError::Invalid { problems, .. }) = config::parse(BASE, "t", &only_fake)
    else {
        panic!("a docker backend must not validate without the docker kind");
    };
    let summaries: Vec<String> = problems.iter().map(|p| p.summary()).collect();
    assert_eq!(
        summaries,
        ["backends.docker.kind: backend kind `docker` is not built into this binary (this build has: fake; rebuild with `--features docker`)"]
    );
}

#[test]
fn exactly_one_github_auth_method() {
    let none = BASE.replace(
        "  token_env: GITHUB_TOKEN\n",
        "  base_url: https://ghe.example.com/api/v3\n",
    );
    assert_eq!(
        errors(&none),
        ["github: no authentication configured: set `app_id`, `installation_id` and `private_key_file` (GitHub App) or `token_env` (personal access token)"]
    );
    let both = BASE.replace(
        "  token_env: GITHUB_TOKEN\n",
        "  token_env: GITHUB_TOKEN\n  app_id: 1\n  installation_id: 2\n  private_key_file: /k.pem\n",
    );
    assert_eq!(
        errors(&both),
        ["github: both a GitHub App and a token are configured; keep exactly one authentication method"]
    );
    let partial = BASE.replace("  token_env: GITHUB_TOKEN\n", "  app_id: 1\n");
    assert_eq!(
        errors(&partial),
        [
            "github.installation_id: required for GitHub App authentication",
            "github.private_key: required for GitHub App authentication",
        ]
    );
    let twice = BASE.replace(
        "  token_env: GITHUB_TOKEN\n",
        "  token_env: GITHUB_TOKEN\n  token_file: /t\n",
    );
    assert_eq!(
        errors(&twice),
        ["github.token: set only one of `token`, `token_env` and `token_file`"]
    );
    let app = BASE.replace(
        "  token_env: GITHUB_TOKEN\n",
        "  app_id: 1\n  installation_id: 2\n  private_key_env: KEY\n",
    );
    let c = runnerctl::wiring::parse(&app, "t").unwrap().config;
    assert!(matches!(
        c.github.auth(),
        Some(config::GithubAuth::App {
            app_id: 1,
            installation_id: 2,
            ..
        })
    ));
}

#[test]
fn inline_secrets_are_accepted_with_a_warning() {
    let text = BASE.replace("token_env: GITHUB_TOKEN", "token: ghp_abc");
    assert_eq!(
        warnings(&text),
        ["github.token: secret written inline in the file; prefer `token_env` or `token_file`"]
    );
    let no_secret = BASE.replace("webhook:\n  secret_env: WEBHOOK_SECRET\n", "");
    assert_eq!(
        warnings(&no_secret),
        ["webhook: no webhook secret (`secret_env` or `secret_file`): `runnerctl serve` will refuse to start"]
    );
}

#[test]
fn addresses_and_urls_are_checked() {
    let text = BASE
        .replace("webhook:\n", "webhook:\n  listen: everywhere\n")
        .replace(
            "github:\n",
            "redis:\n  url: http://localhost\ngithub:\n  base_url: ftp://x\n",
        );
    assert_eq!(
        errors(&text),
        [
            "redis.url: `http://localhost` is not a Redis URL (redis://host:port/db, rediss://…, unix:///path)",
            "github.base_url: `ftp://x` is not an http(s) URL",
            "webhook.listen: `everywhere` is not an address like 0.0.0.0:8080",
        ]
    );
}

#[test]
fn repository_access_and_workflows() {
    let text = BASE.to_string()
        + "    repository: octo-repo\n    selected_repositories: [other]\n    selected_workflows: [build.yml]\n";
    assert_eq!(
        errors(&text),
        [
            "runner_groups[0].selected_repositories: a group scoped to one `repository` has no repository access list; remove one of the two",
            "runner_groups[0].selected_workflows[0]: `build.yml` is not a workflow reference like `octo-org/octo-repo/.github/workflows/build.yml@main`",
        ]
    );
}

#[test]
fn broken_yaml_and_empty_files() {
    let Err(ConfigError::Invalid { problems, .. }) =
        runnerctl::wiring::parse("name: [unclosed\n", "t")
    else {
        panic!()
    };
    assert!(
        problems[0].message.starts_with("not valid YAML: "),
        "{problems:?}"
    );
    assert!(problems[0].line.is_some());
    assert_eq!(
        errors(""),
        ["the file is empty; see `runnerctl config example`"]
    );
    assert_eq!(
        errors("- a\n- b\n"),
        ["the top level must be a mapping of settings"]
    );
    assert_eq!(
        errors(&BASE.replace("name: a", "name: a\n  - broken")).len(),
        1,
        "a syntax error is one problem"
    );
}

#[test]
fn manager_name_is_checked() {
    assert_eq!(
        errors(&format!("name: Runner_Manager\n{BASE}")),
        ["name: `Runner_Manager` is not a valid manager name: use 1 to 32 lowercase letters, digits and dashes, starting with a letter (it prefixes instance names and tags)"]
    );
}

#[test]
fn queue_settings_have_defaults_and_are_checked() {
    let c = runnerctl::wiring::parse(BASE, "t").unwrap().config;
    assert_eq!(c.queue.visibility_timeout.as_secs(), 60);
    assert_eq!(c.queue.max_attempts, 10);
    assert_eq!(c.queue.drain_timeout.as_secs(), 30);
    let text = format!(
        "queue:\n  max_attempts: 0\n  retry_base: 1h\n  retry_max: 1m\n  visibility: 1s\n{BASE}"
    );
    assert_eq!(
        errors(&text),
        [
            "queue.max_attempts: must be between 1 and 100 (is 0)",
            "queue.retry_base: must not exceed retry_max (1h > 1m)",
            "queue.visibility: unknown field; did you mean `visibility_timeout`?",
        ]
    );
}

#[test]
#[cfg(feature = "aws")]
fn aws_settings_and_specs_are_checked() {
    let backend = "  ec2:\n    kind: aws\n    region: eu-west-1\n";
    let group = |spec: &str| {
        BASE.replace("  docker:\n", &format!("{backend}  docker:\n"))
            + "  - name: b\n    organization: octo-org\n    labels: [b]\n    backend: ec2\n    spec:\n"
            + spec
    };
    let good = group("      image_id: ami-1\n      instance_type: t3.micro\n");
    assert_eq!(errors(&good), Vec::<String>::new());
    let loaded = runnerctl::wiring::parse(&good, "t").unwrap().config;
    let spec = &loaded.runner_groups[1].spec;
    let a = spec
        .get::<runnerctl::backend::aws::AwsSpec>()
        .unwrap_or_else(|| panic!("{spec:?}"));
    assert_eq!((a.disk_size_gb, a.disk_type.as_str()), (20, "gp3"));
    assert!(!a.spot && a.spot_fallback_on_demand);
    assert_eq!(
        errors(&group(
            "      image_id: ''\n      instance_type: t3.micro\n      disk_type: ssd\n      disk_size_gb: 0\n"
        )),
        [
            "runner_groups[1].spec.image_id: must not be empty",
            "runner_groups[1].spec.disk_type: `ssd` is not an EBS volume type (one of gp2, gp3, io1, io2, st1, sc1, standard)",
            "runner_groups[1].spec.disk_size_gb: must be at least 1",
        ]
    );
    assert_eq!(
        errors(&group(
            "      image_id: ami-1\n      instance_type: t3.micro\n      disk_type: io2\n"
        )),
        ["runner_groups[1].spec.disk_iops: required by the `io2` volume type"]
    );
    assert_eq!(
        errors(&group(
            "      image_id: ami-1\n      instance_type: t3.micro\n      disk_type: gp2\n      disk_throughput_mbps: 200\n"
        )),
        ["runner_groups[1].spec.disk_throughput_mbps: only a `gp3` volume takes a throughput"]
    );
    let bad_backend = BASE.replace(
        "  docker:\n",
        "  ec2:\n    kind: aws\n    region: eu-west-1\n    max_attempts: 0\n    parameter_prefix: runnerctl\n  docker:\n",
    );
    assert_eq!(
        errors(&bad_backend),
        [
            "backends.ec2.max_attempts: must be between 1 and 20 (the first attempt counts)",
            "backends.ec2.parameter_prefix: `runnerctl` is not an SSM parameter path: it starts with `/` and holds letters, digits and `_.-/`",
        ]
    );
}

#[test]
#[cfg(feature = "gcp")]
fn gcp_settings_and_specs_are_checked() {
    let backend = "  gce:\n    kind: gcp\n    project: p\n    zones: [europe-west1-b]\n";
    let group = |spec: &str| {
        BASE.replace("  docker:\n", &format!("{backend}  docker:\n"))
            + "  - name: b\n    organization: octo-org\n    labels: [b]\n    backend: gce\n    spec:\n"
            + spec
    };
    let good = group("      machine_type: e2-small\n      image_family: projects/debian-cloud/global/images/family/debian-12\n");
    assert_eq!(errors(&good), Vec::<String>::new());
    // Without a broker its runners cannot be made: `validate` says so ahead.
    assert!(
        warnings(&good)
            .iter()
            .any(|w| w.starts_with("backends.gce: needs the credential broker")),
        "{:?}",
        warnings(&good)
    );
    let loaded = runnerctl::wiring::parse(&good, "t").unwrap().config;
    let g = loaded.runner_groups[1]
        .spec
        .get::<runnerctl::backend::gcp::GcpSpec>()
        .unwrap();
    assert_eq!((g.disk_size_gb, g.disk_type.as_str()), (20, "pd-balanced"));
    assert!(!g.spot && g.spot_fallback_standard && g.external_ip);
    assert_eq!(
        errors(&group("      machine_type: zones/x/machineTypes/e2-small\n      image: debian\n      disk_size_gb: 1\n      scopes: [s]\n      gpus: [{type: nvidia-tesla-t4, count: 0}]\n      labels: {runnerctl-x: y}\n")),
        [
            "runner_groups[1].spec.machine_type: `zones/x/machineTypes/e2-small` is not a machine type name like e2-standard-4 (the zone is the backend's)",
            "runner_groups[1].spec.image: `debian` is not an image path like projects/debian-cloud/global/images/debian-12-bookworm-v20250610",
            "runner_groups[1].spec.disk_size_gb: must be between 10 and 65536 (is 1)",
            "runner_groups[1].spec.scopes: scopes need a `service_account`",
            "runner_groups[1].spec.gpus[0].count: must be between 1 and 16 (is 0)",
            "runner_groups[1].spec.labels.runnerctl-x: `runnerctl-` labels are runnerctl's own",
        ]
    );
    assert_eq!(
        errors(&group("      machine_type: e2-small\n")),
        ["runner_groups[1].spec.image: required field is missing (`image`, or `image_family`)"]
    );
    let bad_backend = BASE.replace(
        "  docker:\n",
        "  gce:\n    kind: gcp\n    zones: [europe_west1]\n    anonymous: true\n  docker:\n",
    );
    assert_eq!(
        errors(&bad_backend),
        [
            "backends.gce.project: required field is missing",
            "backends.gce.zones[0]: `europe_west1` is not a zone name like europe-west1-b",
            "backends.gce.anonymous: only with `endpoint_url` (a local test endpoint): Compute Engine itself needs credentials",
        ]
    );
}

#[test]
#[cfg(feature = "vsphere")]
fn vsphere_settings_and_specs_are_checked() {
    let backend = "  vc:\n    kind: vsphere\n    url: https://vc.example.com/sdk\n    user: runnerctl@vsphere.local\n    password_env: VC_PASSWORD\n    folder: /DC/vm/runners\n    resource_pool: /DC/host/C/Resources\n";
    let group = |backend: &str, spec: &str| {
        BASE.replace("  docker:\n", &format!("{backend}  docker:\n"))
            + "  - name: b\n    organization: octo-org\n    labels: [b]\n    backend: vc\n    spec:\n"
            + spec
    };
    let good = group(backend, "      template: /DC/vm/templates/ubuntu\n      snapshot: base\n      cpus: 4\n      memory_mb: 8192\n      network: /DC/network/VM Network\n");
    assert_eq!(errors(&good), Vec::<String>::new());
    assert!(
        warnings(&good)
            .iter()
            .any(|w| w.starts_with("backends.vc: needs the credential broker")),
        "{:?}",
        warnings(&good)
    );
    assert_eq!(
        errors(&group(backend, "      template: templates/ubuntu\n      cpus: 0\n      memory_mb: 16\n      network: /DC/network/\n      disk_gb: 5\n")),
        // Every problem in one run: the unknown key does not hide the others.
        [
            "runner_groups[1].spec.template: `templates/ubuntu` is not an inventory path like /DC/vm/templates/ubuntu-24.04",
            "runner_groups[1].spec.cpus: must be between 1 and 768 (is 0)",
            "runner_groups[1].spec.memory_mb: must be between 256 and 25165824 (is 16)",
            "runner_groups[1].spec.network: `/DC/network/` is not an inventory path like /DC/network/VM Network",
            "runner_groups[1].spec.disk_gb: unknown field `disk_gb`, expected one of `template`, `snapshot`, `cpus`, `memory_mb`, `network`",
        ]
    );
    assert_eq!(
        errors(&group(backend, "      template: templates/ubuntu\n      cpus: 0\n      memory_mb: 16\n      network: /DC/network/\n")),
        [
            "runner_groups[1].spec.template: `templates/ubuntu` is not an inventory path like /DC/vm/templates/ubuntu-24.04",
            "runner_groups[1].spec.cpus: must be between 1 and 768 (is 0)",
            "runner_groups[1].spec.memory_mb: must be between 256 and 25165824 (is 16)",
            "runner_groups[1].spec.network: `/DC/network/` is not an inventory path like /DC/network/VM Network",
        ]
    );
    let plain =
        backend.replace("https://", "http://") + "    thumbprint: 12:34\n    datastore: ds1\n";
    assert_eq!(
        errors(&group(&plain, "      template: /DC/vm/t\n")),
        [
            "backends.vc.url: plain http:// sends the password in clear: use https://, or set `insecure: true` for a local simulator",
            "backends.vc.thumbprint: `12:34` is not a SHA-256 fingerprint (64 hex digits, colons allowed)",
            "backends.vc.datastore: `ds1` is not an inventory path like /DC/datastore/NAME",
        ]
    );
    let both = backend.to_string()
        + "    password_file: /p\n    insecure: true\n    ca_file: /nonexistent/ca.pem\n";
    assert_eq!(
        errors(&group(&both, "      template: /DC/vm/t\n")),
        [
            "backends.vc.password: set only one of `password`, `password_env` and `password_file`",
            "backends.vc.insecure: `insecure` accepts any certificate: it excludes `thumbprint` and `ca_file`",
            "backends.vc.ca_file: cannot read `/nonexistent/ca.pem`: No such file or directory (os error 2)",
        ]
    );
}

/// Issue 18: every duration and number has bounds, names follow GitHub's rules, and URLs are
/// redacted whatever the password holds.
#[test]
fn durations_numbers_and_names_are_bounded() {
    let base = |extra: &str, group: &str| {
        format!(
            "github:\n  token_env: T\n{extra}backends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: g\n    organization: octo-org\n    labels: [x]\n    backend: fake\n{group}"
        )
    };
    let problems = |text: String| -> String {
        match runnerctl::wiring::parse(&text, "t") {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    };
    for (extra, group, want) in [
        (
            "healthcheck_interval: 18446744073709551615s\n",
            "",
            "healthcheck_interval: must be between 10s and 7d",
        ),
        (
            "time_to_start: 1s\n",
            "",
            "time_to_start: must be between 30s and 1d",
        ),
        (
            "queue:\n  visibility_timeout: 1s\n",
            "",
            "queue.visibility_timeout: must be between 2s and 1h",
        ),
        (
            "queue:\n  handler_deadline: 400d\n",
            "",
            "queue.handler_deadline: must be between 10s and 1d",
        ),
        (
            "webhook:\n  max_body_kib: 0\n",
            "",
            "webhook.max_body_kib: must be between 1 and 25600",
        ),
        (
            "",
            "    max_runners: 10001\n",
            "max_runners: must be between 1 and 10000",
        ),
    ] {
        let p = problems(base(extra, group));
        assert!(p.contains(want), "{extra}{group}: {p}");
    }
    let bad_org = base("", "").replace("organization: octo-org", "organization: -bad--org-");
    assert!(problems(bad_org).contains("is not a GitHub organization name"));
    for label in ["\"a\\rb\"", "\"a\\u2028b\"", "\"a b\"", "\"$(id)\""] {
        let text = base("", "").replace("labels: [x]", &format!("labels: [{label}]"));
        assert!(problems(text).contains("is not a valid label"), "{label}");
    }
    let bad_repo = base("", "    repository: \"..\"\n");
    assert!(problems(bad_repo).contains("is not a repository name"));
}

#[test]
fn urls_are_redacted_whatever_the_password_holds() {
    use runnerctl::config::redact_url;
    assert_eq!(
        redact_url("redis://:pa@ss@host/0"),
        "redis://:<redacted>@host/0"
    );
    assert_eq!(
        redact_url("redis://u:p/a:s@host:6379/1"),
        "redis://u:<redacted>@host:6379/1"
    );
    assert_eq!(
        redact_url("rediss://token@host"),
        "rediss://<redacted>@host"
    );
    assert_eq!(redact_url("redis://host:6379/0"), "redis://host:6379/0");
}

#[test]
fn credentials_in_a_redis_url_s_query_are_redacted() {
    use runnerctl::config::redact_url;
    assert_eq!(
        redact_url("redis+unix:///run/redis.sock?db=1&user=u&pass=hun@ter2"),
        "redis+unix:///run/redis.sock?db=1&user=u&pass=<redacted>"
    );
    assert_eq!(
        redact_url("unix:///run/redis.sock?pass=hunter2"),
        "unix:///run/redis.sock?pass=<redacted>"
    );
    assert_eq!(
        redact_url("redis://127.0.0.1:6379/0?password=hunter2&protocol=resp3"),
        "redis://127.0.0.1:6379/0?password=<redacted>&protocol=resp3"
    );
    assert_eq!(
        redact_url("rediss://u:p@h/0?Token=x#frag"),
        "rediss://u:<redacted>@h/0?Token=<redacted>#frag"
    );
    // A password with `?` and `@` in the user part is hidden whole.
    let r = redact_url("redis://:p?ss=w@rd@host/0");
    assert!(!r.contains("w@rd") && !r.contains("p?ss"), "{r}");
    // config validate warns about it.
    let text = format!("redis:\n  url: redis://127.0.0.1:6379/0?pass=hunter2\n{BASE}");
    let warned = warnings(&text);
    assert!(
        warned
            .iter()
            .any(|w| w.contains("redis.url") && w.contains("inline")),
        "{warned:?}"
    );
    assert!(!warned.concat().contains("hunter2"));
}

#[test]
fn the_forge_is_named_and_defaults_to_github() {
    let loaded = runnerctl::wiring::parse(BASE, "t").unwrap().config;
    assert_eq!(loaded.forge, config::ForgeKind::Github);
    let named = format!("forge: github\n{BASE}");
    assert_eq!(errors(&named), Vec::<String>::new());
    // A GitHub configuration turned to Gitea names what is then wrong, every part of it.
    assert_eq!(
        errors(&format!("forge: gitea\n{BASE}")),
        [
            "github: set for `forge: gitea`; remove it (the forge is configured under `gitea:`)",
            "gitea.url: required field is missing (the web root of the gitea instance, `https://gitea.example.com`)",
            "gitea.token: required field is missing: set `token_env` or `token_file` (an access token)"
        ]
    );
    assert_eq!(
        errors(&format!("forge: gitlab\n{BASE}")),
        ["forge: unknown forge `gitlab` (one of: github, gitea, forgejo)"]
    );
}

#[test]
fn the_shipped_gitea_example_is_valid_without_warnings() {
    let loaded =
        runnerctl::wiring::parse(config::GITEA_EXAMPLE, "contrib/gitea.example.yaml").unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert_eq!(c.forge, config::ForgeKind::Gitea);
    assert_eq!(c.gitea.api_url(), "https://gitea.example.com/api/v1");
    let scopes: Vec<_> = c.runner_groups.iter().map(|g| g.scope).collect();
    use config::GroupScope::*;
    assert_eq!(scopes, [Organization, Repository, User, Instance]);
}

fn gitea_problems(gitea: &str, group_extra: &str) -> String {
    let text = format!(
        "forge: gitea\n{gitea}backends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: g\n    organization: octo-org\n    labels: [linux]\n    backend: fake\n{group_extra}"
    );
    match runnerctl::wiring::parse(&text, "t.yaml") {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn gitea_configurations_are_checked_as_strictly_as_githubs() {
    let ok = "gitea:\n  url: https://gitea.example.com\n  token_env: T\n";
    assert_eq!(gitea_problems(ok, ""), "");
    assert_eq!(gitea_problems(ok, "    scope: instance\n"), "");
    let e = gitea_problems("", "");
    assert!(e.contains("gitea.url") && e.contains("gitea.token"), "{e}");
    let e = gitea_problems(
        "gitea:\n  url: https://gitea.example.com/api/v1\n  token_env: T\n",
        "",
    );
    assert!(e.contains("gitea.url") && e.contains("web root"), "{e}");
    let e = gitea_problems("gitea:\n  url: gitea.example.com\n  token_env: T\n", "");
    assert!(e.contains("gitea.url"), "{e}");
    let e = gitea_problems(&format!("{ok}  tokn_env: X\n"), "");
    assert!(e.contains("tokn_env"), "{e}");
    let e = gitea_problems(&format!("{ok}  token_rotation: 5s\n"), "");
    assert!(e.contains("gitea.token_rotation"), "{e}");
    let e = gitea_problems(&format!("{ok}github:\n  token_env: X\n"), "");
    assert!(e.contains("github") && e.contains("forge: gitea"), "{e}");
    let e = gitea_problems(ok, "    scope: everywhere\n");
    assert!(
        e.contains("runner_groups[0].scope") && e.contains("everywhere"),
        "{e}"
    );
    let e = gitea_problems(ok, "    scope: repository\n");
    assert!(e.contains("needs `repository`"), "{e}");
    let e = gitea_problems(
        ok,
        "    selected_workflows: [octo-org/a/.github/workflows/x.yml@main]\n",
    );
    assert!(e.contains("selected_workflows"), "{e}");
    // An instance-wide group may name no organization: it serves every owner.
    let text = format!("forge: gitea\n{ok}backends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: g\n    scope: instance\n    labels: [linux]\n    backend: fake\n");
    let g = runnerctl::wiring::parse(&text, "t.yaml")
        .unwrap()
        .config
        .runner_groups[0]
        .clone();
    assert!(g.serves_owner("anyone") && g.serves_owner("octo-org"));
    assert_eq!(g.owner_label(), "*");
    let e = runnerctl::wiring::parse(&text.replace("    scope: instance\n", ""), "t.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("runner_groups[0].organization"), "{e}");
    // Unknown forges are named with the ones there are.
    let e = runnerctl::wiring::parse("forge: gitlab\n", "t.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("gitlab") && e.contains("github, gitea, forgejo"),
        "{e}"
    );
}

#[test]
fn user_and_instance_scopes_are_giteas_only() {
    let text = "github:\n  token_env: T\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: g\n    organization: octo-org\n    scope: instance\n    labels: [linux]\n    backend: fake\n";
    let e = runnerctl::wiring::parse(text, "t.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("runner_groups[0].scope") && e.contains("Gitea"),
        "{e}"
    );
}

#[test]
fn redis_tls_and_sentinel_settings_are_checked() {
    let with = |redis: &str| errors(&format!("redis:\n{redis}{BASE}"));
    assert_eq!(
        with("  url: redis://h/0\n  sentinel:\n    master: m\n    addresses: [10.0.0.1:26379, s2]\n  wait_replicas: 1\n"),
        Vec::<String>::new()
    );
    let e = with("  url: redis://h/0\n  sentinel:\n    master: ''\n    addresses: []\n");
    assert!(
        e.iter().any(|p| p.starts_with("redis.sentinel.master")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|p| p.starts_with("redis.sentinel.addresses")),
        "{e:?}"
    );
    let e = with("  url: redis://h/0\n  sentinel:\n    master: m\n    addresses: ['h:notaport']\n");
    assert!(
        e.iter()
            .any(|p| p.starts_with("redis.sentinel.addresses[0]")),
        "{e:?}"
    );
    let e =
        with("  url: redis://h/0\n  sentinel:\n    master: m\n    addresses: [h]\n    mastr: x\n");
    assert!(e.iter().any(|p| p.contains("mastr")), "{e:?}");
    let e = with("  url: redis://h/0\n  ca_file: Cargo.toml\n");
    assert!(
        e.iter()
            .any(|p| p.starts_with("redis.ca_file") && p.contains("rediss://")),
        "{e:?}"
    );
    let e = with("  url: rediss://h/0\n  client_cert_file: Cargo.toml\n");
    assert!(
        e.iter().any(|p| p.starts_with("redis.client_key_file")),
        "{e:?}"
    );
    let e = with("  url: rediss://h/0\n  ca_file: /nonexistent/ca.pem\n");
    assert!(
        e.iter()
            .any(|p| p.starts_with("redis.ca_file") && p.contains("cannot read")),
        "{e:?}"
    );
    let e = with("  url: redis://h/0\n  password: a\n  password_env: B\n");
    assert!(e.iter().any(|p| p.starts_with("redis.password")), "{e:?}");
}

#[test]
fn the_worker_metrics_address_is_checked() {
    assert_eq!(
        errors(&format!(
            "worker:\n  metrics_listen: 127.0.0.1:9101\n{BASE}"
        )),
        Vec::<String>::new()
    );
    let e = errors(&format!("worker:\n  metrics_listen: localhost\n{BASE}"));
    assert!(
        e.iter().any(|p| p.starts_with("worker.metrics_listen")),
        "{e:?}"
    );
    let e = errors(&format!("worker:\n  metrics_lisen: 127.0.0.1:9101\n{BASE}"));
    assert!(e.iter().any(|p| p.contains("metrics_lisen")), "{e:?}");
}

#[test]
fn container_jobs_are_for_github_runners_on_vms() {
    let ok = BASE.replace(
        "    backend: fake\n",
        "    backend: fake\n    container_jobs:\n      require_job_container: true\n      images: /var/lib/runnerctl/images\n",
    );
    assert_eq!(errors(&ok), Vec::<String>::new());
    let g = runnerctl::wiring::parse(&ok, "t")
        .unwrap()
        .config
        .runner_groups[0]
        .clone();
    assert!(g.container_jobs.unwrap().require_job_container);
    let docker = with_group(
        "  - name: b\n    organization: octo-org\n    labels: [b]\n    backend: docker\n    spec:\n      image: x\n    container_jobs: {}\n",
    );
    assert_eq!(
        errors(&docker),
        ["runner_groups[1].container_jobs: the runners of a Docker backend are containers already: container_jobs is for runner VMs"]
    );
    let bad = BASE.replace(
        "    backend: fake\n",
        "    backend: fake\n    container_jobs:\n      images: images\n      engine: docker\n",
    );
    assert_eq!(
        errors(&bad),
        [
            "runner_groups[0].container_jobs.images: `images` must be an absolute path on the VM",
            "runner_groups[0].container_jobs.engine: unknown field",
        ]
    );
}

const APPS: &str = "\
github:
  apps:
    - name: first
      app_id: 1
      installation_id: 11
      private_key_env: FIRST_KEY
    - name: second
      app_id: 2
      installation_id: 22
      private_key_file: /etc/runnerctl/second.pem
webhook:
  secret_env: WEBHOOK_SECRET
backends:
  fake:
    kind: fake
runner_groups:
  - name: a
    organization: octo-org
    labels: [self-hosted, a]
    backend: fake
    github_app: second
";

#[test]
fn several_github_apps_and_a_pinned_group_are_valid() {
    let c = runnerctl::wiring::parse(APPS, "test.yaml").unwrap().config;
    assert_eq!(c.github.apps.len(), 2);
    assert_eq!(c.runner_groups[0].github_app.as_deref(), Some("second"));
    // The budget's defaults are GitHub's published limits.
    let l = c.github.budget.limits(c.forge);
    assert_eq!(
        (
            l.points_per_minute,
            l.write_points,
            l.read_points,
            l.max_concurrent
        ),
        (900, 5, 1, 100)
    );
    assert!(c.github.budget.enabled);
}

#[test]
fn github_apps_are_checked_each_by_its_path() {
    let text = APPS
        .replace("name: second\n", "name: first\n")
        .replace("      private_key_env: FIRST_KEY\n", "")
        .replace("github_app: second", "github_app: third");
    assert_eq!(
        errors(&text),
        [
            "github.apps[0].private_key: required field is missing: set `private_key_file` or `private_key_env`",
            "github.apps[1].name: `first` names two Apps",
            "runner_groups[0].github_app: `third` is not an App of `github.apps` (first, first)",
        ]
    );
    // Beside another method: one method only.
    let text = APPS.replace("github:\n", "github:\n  token_env: T\n");
    assert_eq!(
        errors(&text),
        ["github.apps: set with `app_id`/`token`: keep exactly one authentication method (move the App into `apps`)"]
    );
    // A pin without apps.
    let text = with_group("    github_app: first\n");
    assert_eq!(
        errors(&text),
        ["runner_groups[0].github_app: `first` is not an App of `github.apps` (there is none)"]
    );
}

#[test]
fn the_api_budget_s_limits_are_bounded() {
    let text = BASE.replace(
        "github:\n  token_env: GITHUB_TOKEN\n",
        "github:\n  token_env: GITHUB_TOKEN\n  budget:\n    points_per_minute: 0\n    max_concurrent: 20000\n    writes: 3\n",
    );
    assert_eq!(
        errors(&text),
        [
            "github.budget.points_per_minute: must be between 1 and 1000000 (is 0)",
            "github.budget.max_concurrent: must be between 1 and 10000 (is 20000)",
            "github.budget.writes: unknown field",
        ]
    );
}

#[test]
fn a_warm_pool_is_read_with_its_schedule() {
    let text = with_group(
        "    max_runners: 30\n    warm_pool:\n      hot: 2\n      stopped: 5\n      max_idle_age: 4h\n      schedule:\n        - {cron: \"0 7 * * 1-5\", duration: 11h, timezone: Europe/Paris, hot: 6, stopped: 20}\n",
    );
    let c = runnerctl::wiring::parse(&text, "test.yaml").unwrap().config;
    let w = c.runner_groups[0].warm_pool.as_ref().unwrap();
    assert_eq!(
        (w.hot, w.stopped, w.max_idle_age.as_secs()),
        (2, 5, 4 * 3600)
    );
    assert_eq!(w.lead.as_secs(), 600, "the default lead");
    assert_eq!(w.schedule[0].timezone, "Europe/Paris");
    assert_eq!(w.largest(), 26);
}

#[test]
fn a_warm_pool_s_errors_name_their_field() {
    let text = with_group(
        "    max_runners: 4\n    warm_pool:\n      hot: 3\n      stopped: 2\n      max_idle_age: 10s\n      schedule:\n        - {cron: \"0 7 * *\", duration: 1h, timezone: Mars/Olympus, hot: 1}\n        - {cron: \"0 77 * * *\", duration: 0s, hot: 9}\n",
    );
    assert_eq!(
        errors(&text),
        [
            "runner_groups[0].warm_pool: hot + stopped (5) exceeds max_runners (4): warm instances count against it",
            "runner_groups[0].warm_pool.max_idle_age: must be at least 1m (is 10s)",
            "runner_groups[0].warm_pool.schedule[0].cron: `0 7 * *` has 4 fields; write five: minute hour day-of-month month day-of-week, e.g. `0 7 * * 1-5`",
            "runner_groups[0].warm_pool.schedule[0].timezone: `Mars/Olympus` is not an IANA time zone (like `Europe/Paris` or `UTC`)",
            "runner_groups[0].warm_pool.schedule[1]: hot + stopped (9) exceeds max_runners (4): warm instances count against it",
            "runner_groups[0].warm_pool.schedule[1].cron: `0 77 * * *` is not a cron expression: Component error: Number out of bounds.",
            "runner_groups[0].warm_pool.schedule[1].duration: must be longer than 0s",
        ]
    );
    let text = with_group("    warm_pool:\n      hot: 1\n      cold: 2\n");
    assert_eq!(
        errors(&text),
        ["runner_groups[0].warm_pool.cold: unknown field"]
    );
}

#[test]
fn a_warm_pool_on_a_vm_needs_the_broker_and_a_spot_ec2_group_keeps_no_stopped_instances() {
    let ec2 = |spec: &str, broker: &str| {
        format!(
            "{broker}{}",
            BASE.replace(
                "  docker:\n    kind: docker\n",
                "  docker:\n    kind: docker\n  ec2:\n    kind: aws\n    region: eu-west-1\n",
            )
            .replace(
                "backend: fake\n",
                &format!("backend: ec2\n    spec: {spec}\n    warm_pool:\n      hot: 1\n      stopped: 1\n"),
            )
        )
    };
    let on_demand = "{image_id: ami-1, instance_type: t3.small}";
    assert_eq!(
        errors(&ec2(on_demand, "")),
        ["runner_groups[0].warm_pool: a warm pool on backend `ec2` (kind aws) needs the credential broker (`broker:` with `url`): a warm instance gets its credential from it when a job takes it"]
    );
    let broker = "broker:\n  url: https://10.0.0.1:8443\n  key_env: RUNNERCTL_BROKER_KEY\n";
    assert!(
        errors(&ec2(on_demand, broker)).is_empty(),
        "{:?}",
        errors(&ec2(on_demand, broker))
    );
    let spot = "{image_id: ami-1, instance_type: t3.small, spot: true}";
    assert_eq!(
        errors(&ec2(spot, broker)),
        ["runner_groups[0].warm_pool: cannot keep stopped instances: its spec asks for spot instances, and EC2 stops a spot instance only under a persistent request (runnerctl makes one-time requests); keep a hot pool, or a stopped pool of an on-demand group"]
    );
}

#[test]
fn scale_set_mode_s_errors_name_their_field() {
    // Valid: the mode alone, or with a name and a runner group; the webhook secret is then
    // not needed by these groups (another may still use webhooks).
    let ok = with_group(
        "    mode: scale_set\n    scale_set:\n      name: linux-ss\n      runner_group: Default\n",
    );
    assert_eq!(errors(&ok), Vec::<String>::new());
    let c = runnerctl::wiring::parse(&ok, "test.yaml").unwrap().config;
    let g = &c.runner_groups[0];
    assert!(g.scale_set_mode());
    assert_eq!(g.scale_set_name(), "linux-ss");
    assert_eq!(g.scale_set_runner_group(), "Default");
    // Only scale-set groups: no webhook secret is missed.
    let only = "github:\n  token_env: T\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: a\n    organization: octo-org\n    labels: [a]\n    backend: fake\n    mode: scale_set\n";
    assert!(warnings(only).is_empty(), "{:?}", warnings(only));
    assert!(
        !warnings(&only.replace("    mode: scale_set\n", "")).is_empty(),
        "a webhook group needs the secret"
    );
    let plain = runnerctl::wiring::parse(&with_group("    mode: scale_set\n"), "t")
        .unwrap()
        .config;
    assert_eq!(plain.runner_groups[0].scale_set_name(), "a");
    assert_eq!(
        plain.runner_groups[0].scale_set_runner_group(),
        "a",
        "the group's own runner group"
    );
    assert_eq!(
        plain.worker.scale_set_lease.as_std(),
        std::time::Duration::from_secs(30)
    );
    assert_eq!(
        errors(&with_group("    scale_set:\n      name: x y\n      runner_group: a/b\n      size: 3\n")),
        [
            "runner_groups[0].scale_set: is read only with `mode: scale_set`",
            "runner_groups[0].scale_set.name: `x y` is not a usable name: 1 to 100 characters, no spaces, commas, `/`, `?` or `&`",
            "runner_groups[0].scale_set.runner_group: `a/b` is not a usable name: 1 to 100 characters, no spaces, commas, `/`, `?` or `&`",
            "runner_groups[0].scale_set.size: unknown field `size`, expected `name` or `runner_group`",
        ]
    );
    let gitea = "forge: gitea\ngitea:\n  url: https://gitea.example.com\n  token_env: T\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: a\n    organization: octo-org\n    labels: [x]\n    backend: fake\n    mode: scale_set\n";
    assert_eq!(
        errors(gitea),
        ["runner_groups[0].mode: scale_set needs forge: github (Gitea and Forgejo have no runner scale sets)"]
    );
    assert_eq!(
        errors(&with_group("    mode: listen\n")),
        ["runner_groups[0].mode: unknown variant `listen`, expected `webhook` or `scale_set`"]
    );
    assert_eq!(
        errors(&format!(
            "{}worker:\n  scale_set_lease: 1s\n",
            with_group("    mode: scale_set\n")
        )),
        ["worker.scale_set_lease: must be between 2s and 10m (is 1s)"]
    );
}

#[test]
fn backends_in_order_are_read_with_their_own_limits_and_specs() {
    let text = BASE.replace(
        "    backend: fake\n",
        "    backends:\n      - fake\n      - {name: docker, max_runners: 3, spec: {image: ghcr.io/acme/runner:2}}\n    failover: {failures: 5, window: 10m, cool_down: 1m}\n",
    );
    let c = runnerctl::wiring::parse(&text, "t").unwrap().config;
    let g = &c.runner_groups[0];
    assert_eq!(g.backend, "fake", "the first is the group's backend");
    let names: Vec<&str> = g.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["fake", "docker"]);
    assert_eq!(g.backends[1].max_runners, Some(3));
    assert_eq!(g.failover.failures, 5);
    // One `backend:` is a list of one.
    let c = runnerctl::wiring::parse(BASE, "t").unwrap().config;
    assert_eq!(c.runner_groups[0].backends.len(), 1);
    assert_eq!(c.runner_groups[0].failover.failures, 3, "the default");
}

#[test]
fn bad_backend_lists_are_refused_with_their_place() {
    let with = |list: &str| BASE.replace("    backend: fake\n", list);
    assert_eq!(
        errors(&with("    backend: fake\n    backends: [fake]\n")),
        ["runner_groups[0].backends: `backend` and `backends` together: keep one (`backends` lists the group's backends in order)"]
    );
    assert_eq!(
        errors(&with(
            "    backends: [fake, {name: docker, spec: {image: x}}, fake]\n"
        )),
        ["runner_groups[0].backends[2]: backend `fake` is named twice"]
    );
    assert_eq!(
        errors(&with("    backends: []\n")),
        ["runner_groups[0].backends: names no backend"]
    );
    let unknown = errors(&with("    backends: [fake, nowhere]\n"));
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert!(
        unknown[0].starts_with("runner_groups[0].backends[1]: unknown backend `nowhere`"),
        "{unknown:?}"
    );
    assert_eq!(
        errors(&with("    max_runners: 4\n    backends:\n      - {name: fake, max_runners: 9}\n")),
        ["runner_groups[0].backends[0].max_runners: must be between 1 and the group's max_runners (4)"]
    );
    let spec = errors(&with(
        "    backends:\n      - fake\n      - {name: docker, spec: {cpus: many}}\n",
    ));
    assert!(
        spec.iter()
            .any(|e| e.starts_with("runner_groups[0].backends[1].spec")),
        "{spec:?}"
    );
    assert_eq!(
        errors(&with("    backends: [fake]\n    failover: {failures: 0}\n")),
        ["runner_groups[0].failover.failures: must be at least 1"]
    );
}

#[test]
fn a_group_below_github_s_minimum_runner_version_in_effect_is_refused() {
    let with = |floor: &str, version: &str| {
        format!(
            "{}    runner_version: {version}\n",
            BASE.replace(
                "github:\n  token_env: GITHUB_TOKEN\n",
                &format!("github:\n  token_env: GITHUB_TOKEN\n  min_runner_version: {floor}\n"),
            )
        )
    };
    let past = "{version: 2.329.0, from: 2020-01-01}";
    let future = "{version: 2.329.0, from: 2099-01-01}";
    assert_eq!(
        errors(&with(past, "2.328.0")),
        ["runner_groups[0].runner_version: 2.328.0 is below GitHub's minimum runner version 2.329.0 (in effect since 2020-01-01): GitHub registers none of its runners; update the image"]
    );
    assert_eq!(errors(&with(past, "2.329.0")), Vec::<String>::new());
    // A floor still to come is doctor's warning, not an error.
    assert_eq!(errors(&with(future, "2.328.0")), Vec::<String>::new());
    assert_eq!(
        errors(&with("{version: two, from: 25.9.2026}", "2.x")),
        [
            "github.min_runner_version.version: `two` is not a version like 2.329.0",
            "github.min_runner_version.from: `25.9.2026` is not a day like 2026-09-25",
            "runner_groups[0].runner_version: `2.x` is not a version like 2.329.0",
        ]
    );
    // The worker's gauge: days left for a group below a floor to come, 0 once in effect.
    let c = runnerctl::wiring::parse(&with(future, "2.328.0"), "t")
        .unwrap()
        .config;
    let mut out = String::new();
    runnerctl::server::fleet::floor_gauges(&mut out, &c);
    assert!(
        out.contains("runnerctl_runner_version_floor_days_left{group=\"a\"}"),
        "{out}"
    );
    let c = runnerctl::wiring::parse(&with(past, "2.330.0"), "t")
        .unwrap()
        .config;
    let mut out = String::new();
    runnerctl::server::fleet::floor_gauges(&mut out, &c);
    assert!(
        !out.contains("{group="),
        "a group at the floor has no sample: {out}"
    );
}
