//! The shipped examples run as they are: for every example file, every runner group makes a
//! runner and deletes it again with the CLI, against the project's fakes (the fake GitHub or
//! Gitea, moto, the fake Compute Engine, govmomi's vCenter simulator, the Docker engine) and
//! a real Redis.
//!
//! Only what points at the operator's own world is replaced, by the fakes' equivalents: the
//! forge's and the clouds' endpoints, Redis's URL, the vCenter's user, and the ids of resources
//! that live in an account (the AMI, subnet and security group; the vCenter's inventory paths).
//! Every other key (the broker, groups, labels, scopes, sizes, spot settings, Docker images)
//! runs as shipped; the example's Docker images are tags of the test image.

#![cfg(all(
    feature = "aws",
    feature = "gcp",
    feature = "vsphere",
    feature = "docker"
))]

mod support;

#[path = "support/moto.rs"]
mod moto;
#[path = "support/vcsim.rs"]
mod vcsim;

use runnerctl::backend::gcp::fake::{Discovery, FakeCompute, FakeComputeOptions};
use runnerctl::forge::fake::{FakeGitHub, FakeGitHubOptions};
use runnerctl::forge::gitea::fake::{FakeGitea, FakeGiteaOptions};
use serde_yaml::Value;
use std::path::{Path, PathBuf};
use support::RedisServer;

const GITHUB_TOKEN: &str = "ghp_examples";
const GITEA_TOKEN: &str = "gitea-examples-token";
const BROKER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// Where the fakes answer, and the ids of what they hold.
struct Site {
    github: String,
    gitea: String,
    redis: String,
    moto: String,
    gce: String,
    vcsim: String,
    ami: String,
    subnet: String,
    security_group: String,
}

fn set(map: &mut Value, key: &str, value: Value) {
    if let Value::Mapping(m) = map {
        m.insert(Value::String(key.into()), value);
    }
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

/// The example with its pointers at the operator's world replaced by the site's.
fn at_site(example: &str, site: &Site, name: &str) -> String {
    let mut doc: Value = serde_yaml::from_str(example).unwrap();
    set(&mut doc, "name", s(name));
    if let Some(g) = doc.get_mut("github") {
        set(g, "base_url", s(&site.github));
    }
    if let Some(g) = doc.get_mut("gitea") {
        set(g, "url", s(&site.gitea));
    }
    set(doc.get_mut("redis").unwrap(), "url", s(&site.redis));
    let mut kinds = std::collections::HashMap::new();
    if let Some(Value::Mapping(backends)) = doc.get_mut("backends") {
        for (bname, b) in backends.iter_mut() {
            let kind = b["kind"].as_str().unwrap().to_string();
            match kind.as_str() {
                "aws" => {
                    set(b, "endpoint_url", s(&site.moto));
                    set(b, "max_attempts", Value::Number(1.into()));
                }
                "gcp" => {
                    set(b, "endpoint_url", s(&site.gce));
                    set(b, "anonymous", Value::Bool(true));
                }
                "vsphere" => {
                    set(b, "url", s(&site.vcsim));
                    set(b, "user", s(vcsim::USER));
                    set(b, "insecure", Value::Bool(true));
                    set(b, "folder", s(vcsim::FOLDER));
                    set(b, "resource_pool", s(vcsim::POOL));
                }
                _ => {}
            }
            kinds.insert(bname.as_str().unwrap().to_string(), kind);
        }
    }
    for g in doc["runner_groups"].as_sequence_mut().unwrap() {
        let kind = kinds[g["backend"].as_str().unwrap()].clone();
        let Some(spec) = g.get_mut("spec") else {
            continue;
        };
        match kind.as_str() {
            "aws" => {
                set(spec, "image_id", s(&site.ami));
                set(spec, "subnet_id", s(&site.subnet));
                set(
                    spec,
                    "security_group_ids",
                    Value::Sequence(vec![s(&site.security_group)]),
                );
            }
            "vsphere" => {
                set(spec, "template", s(vcsim::TEMPLATE));
                set(spec, "network", s(vcsim::NETWORK));
            }
            _ => {}
        }
    }
    serde_yaml::to_string(&doc).unwrap()
}

fn discovery() -> Discovery {
    let path = std::env::var("RUNNERCTL_GCE_DISCOVERY")
        .unwrap_or_else(|_| format!("{}/.cache/gce/compute.v1.json", env!("CARGO_MANIFEST_DIR")));
    Discovery::load(Path::new(&path))
        .expect("Compute Engine's discovery document (.ci/run puts it in .cache/gce)")
}

/// The AMI, a subnet and a security group of moto's default account in `region`.
async fn moto_ids(endpoint: &str, region: &str) -> (String, String, String) {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let ami = ec2.describe_images().send().await.unwrap().images()[0]
        .image_id()
        .unwrap()
        .to_string();
    let subnet = ec2.describe_subnets().send().await.unwrap().subnets()[0]
        .subnet_id()
        .unwrap()
        .to_string();
    let sg = ec2
        .describe_security_groups()
        .send()
        .await
        .unwrap()
        .security_groups()[0]
        .group_id()
        .unwrap()
        .to_string();
    (ami, subnet, sg)
}

fn run(config: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(support::bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("GITHUB_TOKEN", GITHUB_TOKEN)
        .env("GITEA_TOKEN", GITEA_TOKEN)
        .env(
            "RUNNERCTL_WEBHOOK_SECRET",
            "an example secret of 32 bytes..",
        )
        .env("RUNNERCTL_BROKER_KEY", BROKER_KEY)
        .env("VSPHERE_PASSWORD", vcsim::PASSWORD)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Every group of every shipped example makes a runner and deletes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_group_of_every_example_makes_a_runner_against_the_fakes() {
    let (m, _turn) = moto::moto().await;
    let redis = RedisServer::start();
    let github = FakeGitHub::start(FakeGitHubOptions {
        orgs: vec![("octo-org".into(), vec!["octo-repo".into(), "app".into()])],
        token: Some(GITHUB_TOKEN.into()),
        ..FakeGitHubOptions::default()
    })
    .await
    .unwrap();
    let gitea = FakeGitea::start(FakeGiteaOptions {
        orgs: vec![("octo-org".into(), vec!["app".into()])],
        user: ("alice".into(), vec!["dotfiles".into()]),
        token: GITEA_TOKEN.into(),
        ..FakeGiteaOptions::default()
    })
    .await
    .unwrap();
    let example: runnerctl::config::Config =
        runnerctl::wiring::parse(runnerctl::config::EXAMPLE, "example")
            .unwrap()
            .config;
    let gcp = example
        .backends
        .iter()
        .find(|b| b.kind() == "gcp")
        .expect("the example has a GCP backend");
    let gcp: &runnerctl::backend::gcp::GcpSettings = gcp.settings.get().unwrap();
    let gce = FakeCompute::start(
        discovery(),
        FakeComputeOptions {
            project: gcp.project.clone(),
            zones: gcp.zones.clone(),
            ..FakeComputeOptions::default()
        },
    )
    .await
    .unwrap();
    let vc = vcsim::Vcsim::start();
    let region = example
        .backends
        .iter()
        .find(|b| b.kind() == "aws")
        .and_then(|b| b.settings.get::<runnerctl::backend::aws::AwsSettings>())
        .map(|s| s.region.clone())
        .expect("the example has an AWS backend");
    let (ami, subnet, security_group) = moto_ids(&m.url, &region).await;
    let image = support::docker_test_image();
    for tag in ["runnerctl-runner:latest", "runnerctl-act-runner:latest"] {
        support::docker(&["tag", image, tag]);
    }
    let site = Site {
        github: github.url(),
        gitea: gitea.url(),
        redis: redis.url.clone(),
        moto: m.url.clone(),
        gce: gce.url(),
        vcsim: vc.url.clone(),
        ami,
        subnet,
        security_group,
    };
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = ["config.example.yaml", "contrib/gitea.example.yaml"]
        .iter()
        .map(|f| Path::new(env!("CARGO_MANIFEST_DIR")).join(f))
        .collect();
    let mut failed = Vec::new();
    let mut made = 0;
    for (i, file) in files.iter().enumerate() {
        let text = std::fs::read_to_string(file).unwrap();
        let name = support::manager_name(&format!("example{i}"));
        let config = dir.path().join(format!("example{i}.yaml"));
        std::fs::write(&config, at_site(&text, &site, &name)).unwrap();
        let c = config.clone();
        let (code, out, err) =
            tokio::task::spawn_blocking(move || run(&c, &["config", "validate"]))
                .await
                .unwrap();
        assert_eq!(code, Some(0), "{}: {out}{err}", file.display());
        let c = config.clone();
        let (code, out, err) = tokio::task::spawn_blocking(move || run(&c, &["groups", "sync"]))
            .await
            .unwrap();
        assert_eq!(code, Some(0), "{}: {out}{err}", file.display());
        let parsed: Value = serde_yaml::from_str(&text).unwrap();
        for g in parsed["runner_groups"].as_sequence().unwrap() {
            let group = g["name"].as_str().unwrap().to_string();
            let c = config.clone();
            let gr = group.clone();
            let (code, out, err) = tokio::task::spawn_blocking(move || {
                run(&c, &["-o", "json", "runners", "create", "--group", &gr])
            })
            .await
            .unwrap();
            let created: serde_json::Value =
                serde_json::from_str(&out).unwrap_or(serde_json::Value::Null);
            if code != Some(0) || created["created"].as_array().is_none_or(Vec::is_empty) {
                failed.push(format!(
                    "{} group {group}: exit {code:?}\n{out}{err}",
                    file.display()
                ));
                continue;
            }
            made += 1;
            let c = config.clone();
            let gr = group.clone();
            let (code, out, err) = tokio::task::spawn_blocking(move || {
                run(&c, &["runners", "delete", "--group", &gr, "--all", "--yes"])
            })
            .await
            .unwrap();
            if code != Some(0) {
                failed.push(format!(
                    "{} group {group}: delete exit {code:?}\n{out}{err}",
                    file.display()
                ));
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
    assert!(made >= 10, "{made} groups made a runner");
}
