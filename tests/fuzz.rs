//! Property tests (proptest, bounded: a few hundred cases each, seconds in CI) of what hostile
//! input reaches (issue 18): the webhook decision, the configuration loader and the bootstrap
//! rendering. None may panic; nothing unsigned is ever enqueued; rendered cloud-init parses to
//! exactly the expected keys and files, whatever the names and labels hold.

use proptest::prelude::*;
use runnerctl::bootstrap::BootStyle;
use runnerctl::bootstrap::{self, Credential, RunnerSetup};
use runnerctl::config::{self, Secret};
use runnerctl::server::webhook::{self, Decision, Delivery};

const SECRET: &[u8] = b"a webhook secret of some length";

fn groups() -> Vec<config::RunnerGroup> {
    let text = "github:\n  token_env: T\nbackends:\n  fake:\n    kind: fake\nrunner_groups:\n  - name: g\n    organization: octo-org\n    labels: [self-hosted, g]\n    backend: fake\n    selected_repositories: [app]\n    allow_public_repositories: false\n  - name: h\n    organization: octo-org\n    labels: [self-hosted, h]\n    backend: fake\n";
    runnerctl::wiring::parse(text, "t")
        .unwrap()
        .config
        .runner_groups
}

/// Any text, weighted towards what breaks parsers: line breaks of every kind, quotes, NULs.
fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "[\\r\\n\\u{85}\\u{2028}\\u{2029}\"'\\\\:#{}\\[\\],&*!|>%@` \\x00a-z0-9-]{0,40}",
    ]
}

fn payload() -> impl Strategy<Value = serde_json::Value> {
    (
        prop_oneof![
            Just("queued"),
            Just("waiting"),
            Just("in_progress"),
            Just("completed"),
            Just("bogus")
        ],
        any::<u64>(),
        prop::collection::vec(nasty(), 0..5),
        nasty(),
        proptest::option::of(nasty()),
        any::<bool>(),
    )
        .prop_map(|(action, id, labels, repo, runner, private)| {
            serde_json::json!({
                "action": action,
                "workflow_job": {
                    "id": id, "run_id": id / 2, "labels": labels, "runner_name": runner,
                    "status": action, "conclusion": null,
                },
                "repository": { "full_name": format!("octo-org/{repo}"), "private": private },
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_webhook_decision_never_panics_and_enqueues_only_signed_deliveries(
        body in prop::collection::vec(any::<u8>(), 0..400),
        signature in proptest::option::of(nasty()),
        event in proptest::option::of(nasty()),
        id in proptest::option::of(nasty()),
    ) {
        let d = Delivery {
            event: event.as_deref(),
            id: id.as_deref(),
            signature: signature.as_deref(),
            body: &body,
        };
        let decision = webhook::decide(&runnerctl::forge::github::webhook::GITHUB, SECRET, "m", &groups(), d);
        prop_assert!(!matches!(decision, Decision::Enqueue { .. }), "unsigned: {decision:?}");
    }

    #[test]
    fn signed_payloads_of_any_shape_are_decided_without_panicking(p in payload(), id in "[a-f0-9-]{1,40}") {
        let body = serde_json::to_vec(&p).unwrap();
        let sig = runnerctl::forge::github::webhook::sign(SECRET, &body);
        let groups = groups();
        let d = Delivery { event: Some("workflow_job"), id: Some(&id), signature: Some(&sig), body: &body };
        if let Decision::Enqueue {
            task: runnerctl::queue::Task::JobQueued { group, repository, .. },
            ..
        } = webhook::decide(&runnerctl::forge::github::webhook::GITHUB, SECRET, "m", &groups, d)
        {
            // Never a group that does not admit the repository.
            let g = groups.iter().find(|g| g.name == group).unwrap();
            let public = Some(!p["repository"]["private"].as_bool().unwrap());
            prop_assert!(
                runnerctl::manager::matching::refusal(g, &repository, public).is_none(),
                "{group} took {repository}"
            );
        }
    }

    #[test]
    fn the_config_loader_never_panics(text in "(.{0,30}\\n){0,12}") {
        let _ = runnerctl::wiring::parse(&text, "t");
    }

    #[test]
    fn the_config_loader_never_panics_on_a_mutated_example(
        line in 0usize..400,
        value in nasty(),
    ) {
        // Replace the value of one line of the shipped example with anything.
        let lines: Vec<String> = config::EXAMPLE
            .lines()
            .enumerate()
            .map(|(i, l)| match (i == line % config::EXAMPLE.lines().count(), l.split_once(": ")) {
                (true, Some((k, _))) => format!("{k}: {value}"),
                _ => l.to_string(),
            })
            .collect();
        let _ = runnerctl::wiring::parse(&lines.join("\n"), "example");
    }

    #[test]
    fn cloud_init_parses_to_exactly_the_expected_document(
        name in nasty(),
        labels in prop::collection::vec(nasty(), 0..4),
        url in nasty(),
        group in proptest::option::of(nasty()),
    ) {
        let setup = RunnerSetup {
            runner_name: name,
            labels,
            url,
            runner_group: group,
            agent: runnerctl::forge::Agent::ActionsRunner,
            container_jobs: None,
            credential: Credential::Jit(Secret::new("SEKRIT-JIT")),
        };
        let boot = bootstrap::render(BootStyle::Vm, &setup, None).unwrap();
        let ud = boot.user_data.unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(ud.expose()).expect("valid YAML");
        let keys: Vec<&str> = doc.as_mapping().unwrap().keys().map(|k| k.as_str().unwrap()).collect();
        prop_assert_eq!(keys, vec!["write_files", "runcmd"]);
        let files = doc["write_files"].as_sequence().unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
        prop_assert_eq!(paths, vec![
            "/etc/runnerctl/runner.env",
            "/usr/local/lib/runnerctl/bootstrap.sh",
            "/etc/systemd/system/runnerctl-install.service",
            "/etc/systemd/system/runnerctl-runner.service",
        ]);
        for f in files {
            let entry: Vec<&str> = f.as_mapping().unwrap().keys().map(|k| k.as_str().unwrap()).collect();
            prop_assert_eq!(entry, vec!["path", "permissions", "owner", "encoding", "content"]);
            let content = bootstrap::file_content(f).expect("base64 of UTF-8");
            prop_assert!(!content.contains("SEKRIT-JIT"));
        }
    }
}
