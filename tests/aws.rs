//! The EC2 backend against moto's EC2 and SSM server (`.ci/run` installs moto in the ignored
//! `.cache/moto` virtual environment). Errors moto cannot produce (throttling, capacity,
//! permissions) are injected by a proxy in front of it, which also records the requests.
#![cfg(feature = "aws")]

mod support;

#[path = "support/conformance.rs"]
mod conformance;

#[path = "support/moto.rs"]
mod moto;

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use base64::Engine;
use runnerctl::backend::aws::AwsBackend;
use runnerctl::backend::aws::{AwsSettings, AwsSpec};
use runnerctl::backend::{Backend, BackendError, BootData, TAG_MANAGER, TAG_RUNNER};
use runnerctl::bootstrap;
use runnerctl::config::Secret;
use std::sync::Arc;
use support::manager_name;

const SECRET: &str = "JIT-SECRET-3q2+7w==";

async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .load()
        .await
}

fn settings(endpoint: &str) -> AwsSettings {
    AwsSettings {
        region: "us-east-1".into(),
        endpoint_url: Some(endpoint.into()),
        max_attempts: Some(1),
        ..Default::default()
    }
}

async fn backend(endpoint: &str, manager: &str) -> AwsBackend {
    AwsBackend::from_sdk_config("aws", manager, &settings(endpoint), &sdk(endpoint).await)
}

async fn ec2(endpoint: &str) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::new(&sdk(endpoint).await)
}

async fn ssm(endpoint: &str) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&sdk(endpoint).await)
}

/// Whether the SSM parameter `name` exists.
async fn parameter_exists(endpoint: &str, name: &str) -> bool {
    ssm(endpoint)
        .await
        .get_parameter()
        .name(name)
        .send()
        .await
        .is_ok()
}

/// Asserts that no SSM parameter is left in the account.
async fn assert_no_parameters(endpoint: &str) {
    let params = ssm(endpoint)
        .await
        .describe_parameters()
        .send()
        .await
        .unwrap();
    assert!(params.parameters().is_empty(), "{params:?}");
}

/// The user-data EC2 keeps for instance `id`, decoded.
async fn user_data_of(endpoint: &str, id: &str) -> String {
    let attr = ec2(endpoint)
        .await
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let encoded = attr.user_data().and_then(|u| u.value()).unwrap();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
    )
    .unwrap()
}

/// The instance `id` as EC2 describes it (moto keeps terminated ones for a while).
async fn described(endpoint: &str, id: &str) -> aws_sdk_ec2::types::Instance {
    let out = ec2(endpoint)
        .await
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
    out.reservations()[0].instances()[0].clone()
}

/// One of moto's stock AMIs.
async fn image(endpoint: &str) -> String {
    let out = ec2(endpoint).await.describe_images().send().await.unwrap();
    out.images()[0].image_id().unwrap().to_string()
}

fn spec(image: &str) -> AwsSpec {
    AwsSpec {
        image_id: image.to_string(),
        instance_type: "t3.micro".into(),
        subnet_id: None,
        security_group_ids: vec![],
        key_name: None,
        iam_instance_profile: None,
        disk_size_gb: 30,
        disk_type: "gp3".into(),
        disk_iops: None,
        disk_throughput_mbps: None,
        spot: false,
        spot_fallback_on_demand: true,
    }
}

fn boot(runner: &str) -> BootData {
    conformance::vm_boot(runner, SECRET, None)
}

fn request(
    manager: &str,
    group: &str,
    runner: &str,
    spec: &AwsSpec,
) -> runnerctl::backend::CreateRequest {
    conformance::request(manager, group, runner, &spec.clone().typed(), boot(runner))
}

#[tokio::test]
async fn the_aws_backend_conforms() {
    let (m, _turn) = moto::moto().await;
    let (a, b) = (manager_name("aws-a"), manager_name("aws-b"));
    let img = image(&m.url).await;
    conformance::run(
        Arc::new(backend(&m.url, &a).await),
        &a,
        Arc::new(backend(&m.url, &b).await),
        &b,
        &spec(&img).typed(),
        boot("conformance"),
    )
    .await;
}

#[tokio::test]
async fn a_stopped_warm_instance_is_stopped_and_started_with_ec2() {
    let (m, _turn) = moto::moto().await;
    let (a, b) = (manager_name("aws-warm-a"), manager_name("aws-warm-b"));
    let img = image(&m.url).await;
    let runner = format!("{a}-g-warm");
    conformance::stop_start(
        Arc::new(backend(&m.url, &a).await),
        &a,
        Arc::new(backend(&m.url, &b).await),
        &spec(&img).typed(),
        conformance::vm_boot(&runner, SECRET, Some("broker-token")),
    )
    .await;
    // EC2 saw StopInstances and StartInstances, and no parameter was written (the credential
    // of a warm instance waits at the broker).
    assert_no_parameters(&m.url).await;
}

#[tokio::test]
async fn user_data_round_trip_and_the_credential_travels_through_ssm() {
    let (m, _turn) = moto::moto().await;
    let mgr = manager_name("aws-ud");
    let be = backend(&m.url, &mgr).await;
    let runner = format!("{mgr}-g-ud");
    let req = request(&mgr, "g", &runner, &spec(&image(&m.url).await));
    let made = be.create(&req).await.unwrap();

    // The user-data is what the bootstrap rendered, plus the fetch hook, and no secret.
    let user_data = user_data_of(&m.url, &made.id).await;
    assert!(!user_data.contains(SECRET), "no credential in user-data");
    assert!(user_data.starts_with("#cloud-config\n"));
    let doc: serde_yaml::Value = serde_yaml::from_str(&user_data).expect("valid YAML");
    let files = doc["write_files"].as_sequence().unwrap();
    for f in files {
        let text = bootstrap::file_content(f).unwrap();
        assert!(
            !text.contains(SECRET),
            "no credential in any user-data file"
        );
    }
    let hook = files
        .iter()
        .find(|f| f["path"] == bootstrap::FETCH_CREDENTIAL_HOOK)
        .expect("the fetch hook");
    assert_eq!(hook["permissions"], "0700");
    let rendered = req.boot.user_data.as_ref().unwrap().expose();
    let rendered: serde_yaml::Value = serde_yaml::from_str(rendered).unwrap();
    for f in rendered["write_files"].as_sequence().unwrap() {
        assert!(files.contains(f), "every rendered file is there: {f:?}");
    }
    assert_eq!(doc["runcmd"], rendered["runcmd"]);

    // The credential waits in SSM as a SecureString, tagged with its owner.
    let param = be.parameter_name(&runner, bootstrap::JITCONFIG);
    assert_eq!(param, format!("/runnerctl/{mgr}/{runner}/jitconfig"));
    let ssm = ssm(&m.url).await;
    let p = ssm
        .get_parameter()
        .name(&param)
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    let p = p.parameter().unwrap();
    assert_eq!(
        p.r#type(),
        Some(&aws_sdk_ssm::types::ParameterType::SecureString)
    );
    assert_eq!(p.value(), Some(SECRET));
    let tags = ssm
        .list_tags_for_resource()
        .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
        .resource_id(&param)
        .send()
        .await
        .unwrap();
    assert!(tags
        .tag_list()
        .iter()
        .any(|t| t.key() == TAG_RUNNER && t.value() == runner));
    // Written after RunInstances, for that instance only: tagged with its ARN.
    let instance_tag = tags
        .tag_list()
        .iter()
        .find(|t| t.key() == runnerctl::backend::aws::TAG_INSTANCE)
        .map(|t| t.value().to_string())
        .expect("the instance's ARN");
    assert!(
        instance_tag.starts_with("arn:aws:ec2:")
            && instance_tag.ends_with(&format!(":instance/{}", made.id)),
        "{instance_tag}"
    );

    // The hook, run with the real AWS CLI, fetches the credential (root-only) and deletes it.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("fetch-credential");
    std::fs::write(&script, runnerctl::bootstrap::file_content(hook).unwrap()).unwrap();
    let bin = moto::aws_cli();
    let out = std::process::Command::new("sh")
        .arg(&script)
        .arg(dir.path())
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.parent().unwrap().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("AWS_ENDPOINT_URL", &m.url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .expect("the AWS CLI in .cache/moto (.ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = dir.path().join("jitconfig");
    assert_eq!(std::fs::read_to_string(&got).unwrap(), SECRET);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&got).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !parameter_exists(&m.url, &param).await,
        "the hook deleted the parameter"
    );

    be.delete(&made.id).await.unwrap();
}

#[tokio::test]
async fn deleting_also_deletes_an_unfetched_credential() {
    let (m, _turn) = moto::moto().await;
    let mgr = manager_name("aws-del");
    let be = backend(&m.url, &mgr).await;
    let runner = format!("{mgr}-g-del");
    let made = be
        .create(&request(&mgr, "g", &runner, &spec(&image(&m.url).await)))
        .await
        .unwrap();
    let param = be.parameter_name(&runner, bootstrap::JITCONFIG);
    assert!(parameter_exists(&m.url, &param).await);
    be.delete(&made.id).await.unwrap();
    assert!(!parameter_exists(&m.url, &param).await);
    let name = described(&m.url, &made.id)
        .await
        .state()
        .and_then(|s| s.name())
        .cloned();
    assert!(
        matches!(
            name,
            Some(
                aws_sdk_ec2::types::InstanceStateName::ShuttingDown
                    | aws_sdk_ec2::types::InstanceStateName::Terminated
            )
        ),
        "{name:?}"
    );
    // An instance that ended by itself before it booted (a spot interruption): deleting it
    // still removes its unfetched credential.
    let runner = format!("{mgr}-g-ended");
    let ended = be
        .create(&request(&mgr, "g", &runner, &spec(&image(&m.url).await)))
        .await
        .unwrap();
    ec2(&m.url)
        .await
        .terminate_instances()
        .instance_ids(&ended.id)
        .send()
        .await
        .unwrap();
    let param = be.parameter_name(&runner, bootstrap::JITCONFIG);
    assert!(parameter_exists(&m.url, &param).await);
    assert!(be.get(&ended.id).await.unwrap().is_none(), "gone");
    be.delete(&ended.id).await.unwrap();
    assert!(!parameter_exists(&m.url, &param).await);
    // A missing or malformed id is success too.
    be.delete("i-0123456789abcdef0").await.unwrap();
    be.delete("not-an-instance").await.unwrap();
}

/// Runs instances directly, with the given tags, `count` per reservation.
async fn run_tagged(endpoint: &str, img: &str, tags: &[(&str, &str)], count: i32) -> Vec<String> {
    let tags: Vec<Tag> = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
        .collect();
    let mut run = ec2(endpoint)
        .await
        .run_instances()
        .image_id(img)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(count)
        .max_count(count);
    if !tags.is_empty() {
        run = run.tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .set_tags(Some(tags))
                .build(),
        );
    }
    run.send()
        .await
        .unwrap()
        .instances()
        .iter()
        .map(|i| i.instance_id().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn list_filters_by_owner_tags_and_live_states() {
    let (m, _turn) = moto::moto().await;
    let mgr = manager_name("aws-tags");
    let img = image(&m.url).await;
    let be = backend(&m.url, &mgr).await;
    let ours = be
        .create(&request(&mgr, "g", &format!("{mgr}-g-1"), &spec(&img)))
        .await
        .unwrap();
    let untagged = run_tagged(&m.url, &img, &[], 1).await;
    let foreign = run_tagged(&m.url, &img, &[(TAG_MANAGER, "someone-else")], 1).await;
    let lookalike = run_tagged(&m.url, &img, &[("runnerctl-manager-x", &mgr)], 1).await;
    let ended = run_tagged(&m.url, &img, &[(TAG_MANAGER, &mgr)], 1).await;
    ec2(&m.url)
        .await
        .terminate_instances()
        .instance_ids(&ended[0])
        .send()
        .await
        .unwrap();
    let listed: Vec<String> = be.list().await.unwrap().into_iter().map(|i| i.id).collect();
    assert_eq!(listed, vec![ours.id.clone()]);
    for other in [&untagged[0], &foreign[0], &lookalike[0], &ended[0]] {
        assert!(
            be.get(other).await.unwrap().is_none(),
            "{other} is not ours"
        );
        be.delete(other).await.unwrap();
    }
    // Deleting a foreign instance left it running.
    assert_eq!(
        described(&m.url, &foreign[0])
            .await
            .state()
            .and_then(|s| s.name()),
        Some(&aws_sdk_ec2::types::InstanceStateName::Running)
    );
    // The volume carries the owner tags and the spec's size and type.
    let vols = ec2(&m.url)
        .await
        .describe_volumes()
        .filters(
            Filter::builder()
                .name(format!("tag:{TAG_RUNNER}"))
                .values(format!("{mgr}-g-1"))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let v = &vols.volumes()[0];
    assert_eq!(v.size(), Some(30));
    assert!(v
        .tags()
        .iter()
        .any(|t| t.key() == Some(TAG_MANAGER) && t.value() == Some(mgr.as_str())));
}

#[tokio::test]
async fn the_run_request_carries_the_spec_the_token_and_the_tags() {
    let (m, _turn) = moto::moto().await;
    let proxy = moto::Proxy::start(m).await;
    let mgr = manager_name("aws-shape");
    let img = image(&m.url).await;
    let client = ec2(&m.url).await;
    let subnet = client.describe_subnets().send().await.unwrap().subnets()[0]
        .subnet_id()
        .unwrap()
        .to_string();
    let sg = client
        .describe_security_groups()
        .send()
        .await
        .unwrap()
        .security_groups()[0]
        .group_id()
        .unwrap()
        .to_string();
    client
        .create_key_pair()
        .key_name("ci-debug")
        .send()
        .await
        .unwrap();
    let mut s = spec(&img);
    s.subnet_id = Some(subnet.clone());
    s.security_group_ids = vec![sg.clone()];
    s.key_name = Some("ci-debug".into());
    // (moto's RunInstances drops a mapping's IOPS, so io1/io2 cannot be tried on it.)
    s.disk_type = "gp3".into();
    s.disk_iops = Some(4000);
    s.disk_throughput_mbps = Some(250);
    let be = backend(&proxy.url, &mgr).await;
    let runner = format!("{mgr}-g-shape");
    let made = be.create(&request(&mgr, "g", &runner, &s)).await.unwrap();

    let run = proxy.seen("RunInstances");
    assert_eq!(run.len(), 1);
    let r = &run[0];
    let f = |k: &str| r.field(k).unwrap_or_else(|| panic!("{k} in {}", r.body));
    assert_eq!(f("ImageId"), img);
    assert_eq!(f("InstanceType"), "t3.micro");
    assert_eq!((f("MinCount"), f("MaxCount")), ("1".into(), "1".into()));
    assert_eq!(f("SubnetId"), subnet);
    assert_eq!(f("SecurityGroupId.1"), sg);
    assert_eq!(f("KeyName"), "ci-debug");
    assert_eq!(f("BlockDeviceMapping.1.DeviceName"), "/dev/sda1");
    assert_eq!(f("BlockDeviceMapping.1.Ebs.VolumeSize"), "30");
    assert_eq!(f("BlockDeviceMapping.1.Ebs.VolumeType"), "gp3");
    assert_eq!(f("BlockDeviceMapping.1.Ebs.Iops"), "4000");
    assert_eq!(f("BlockDeviceMapping.1.Ebs.Throughput"), "250");
    assert_eq!(f("BlockDeviceMapping.1.Ebs.DeleteOnTermination"), "true");
    assert_eq!(f("InstanceInitiatedShutdownBehavior"), "terminate");
    assert_eq!(f("MetadataOptions.HttpTokens"), "required");
    assert_eq!(f("ClientToken"), be.client_token(&runner, 0, false));
    assert!(r.field("InstanceMarketOptions.MarketType").is_none());
    assert_eq!(f("TagSpecification.1.ResourceType"), "instance");
    assert_eq!(f("TagSpecification.2.ResourceType"), "volume");
    for n in 1..=2 {
        let tags: Vec<(String, String)> = (1..=4)
            .map(|t| {
                (
                    f(&format!("TagSpecification.{n}.Tag.{t}.Key")),
                    f(&format!("TagSpecification.{n}.Tag.{t}.Value")),
                )
            })
            .collect();
        assert!(tags.contains(&(TAG_MANAGER.into(), mgr.clone())));
        assert!(tags.contains(&("runnerctl-group".into(), "g".into())));
        assert!(tags.contains(&(TAG_RUNNER.into(), runner.clone())));
        assert!(tags.contains(&("Name".into(), runner.clone())));
    }
    assert!(!r.body.contains(SECRET) && !r.body.contains("JIT-SECRET"));
    // The secret went to SSM only, never to EC2.
    assert!(proxy
        .seen("DescribeInstances")
        .iter()
        .chain(&run)
        .all(|s| !s.body.contains("JIT-SECRET")));
    assert_eq!(proxy.seen("PutParameter").len(), 1);

    // The token is stable for a runner, and differs between runners and managers.
    let again = backend(&proxy.url, &mgr).await;
    assert_eq!(again.client_token(&runner, 0, false), f("ClientToken"));
    assert_ne!(be.client_token("other", 0, false), f("ClientToken"));
    assert_ne!(
        backend(&proxy.url, "another")
            .await
            .client_token(&runner, 0, false),
        f("ClientToken")
    );
    assert_ne!(be.client_token(&runner, 1, false), f("ClientToken"));
    assert!(f("ClientToken").len() <= 64);

    // A retried create finds the instance and makes no second RunInstances call.
    let second = again
        .create(&request(&mgr, "g", &runner, &s))
        .await
        .unwrap();
    assert_eq!(second.id, made.id);
    assert_eq!(proxy.seen("RunInstances").len(), 1);
}

#[tokio::test]
async fn spot_requests_ask_for_one_time_spot_capacity() {
    let (m, _turn) = moto::moto().await;
    let proxy = moto::Proxy::start(m).await;
    let mgr = manager_name("aws-spot");
    let mut s = spec(&image(&m.url).await);
    s.spot = true;
    let be = backend(&proxy.url, &mgr).await;
    let made = be
        .create(&request(&mgr, "g", &format!("{mgr}-g-s"), &s))
        .await
        .unwrap();
    assert!(!made.spot_fallback);
    let run = &proxy.seen("RunInstances")[0];
    assert_eq!(
        run.field("InstanceMarketOptions.MarketType").as_deref(),
        Some("spot")
    );
    assert_eq!(
        run.field("InstanceMarketOptions.SpotOptions.SpotInstanceType")
            .as_deref(),
        Some("one-time")
    );
    assert_eq!(
        run.field("InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior")
            .as_deref(),
        Some("terminate")
    );
    assert_eq!(
        described(&m.url, &made.id).await.instance_lifecycle(),
        Some(&aws_sdk_ec2::types::InstanceLifecycleType::Spot)
    );
}

#[tokio::test]
async fn a_refused_spot_request_falls_back_to_on_demand_and_is_counted() {
    let (m, _turn) = moto::moto().await;
    let proxy = moto::Proxy::start(m).await;
    proxy.inject(|s| {
        (s.action == "RunInstances" && s.field("InstanceMarketOptions.MarketType").is_some())
            .then_some((500, "InsufficientInstanceCapacity"))
    });
    let mgr = manager_name("aws-fallback");
    let mut s = spec(&image(&m.url).await);
    s.spot = true;
    let be = backend(&proxy.url, &mgr).await;
    let runner = format!("{mgr}-g-f");
    let made = be.create(&request(&mgr, "g", &runner, &s)).await.unwrap();
    assert!(made.spot_fallback, "reported on the instance");
    assert_eq!(be.spot_fallbacks(), 1, "counted");
    let runs = proxy.seen("RunInstances");
    assert_eq!(runs.len(), 2);
    assert!(runs[1].field("InstanceMarketOptions.MarketType").is_none());
    assert_eq!(
        runs[1].field("ClientToken").unwrap(),
        be.client_token(&runner, 0, true),
        "the on-demand request has its own token"
    );
    assert_eq!(described(&m.url, &made.id).await.instance_lifecycle(), None);

    // Without the fallback the refusal is a transient error, and nothing is left behind.
    s.spot_fallback_on_demand = false;
    let runner = format!("{mgr}-g-nofallback");
    let err = be
        .create(&request(&mgr, "g", &runner, &s))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.code(), "InsufficientInstanceCapacity");
    assert_eq!(be.spot_fallbacks(), 1);
    let param = be.parameter_name(&runner, bootstrap::JITCONFIG);
    assert!(!parameter_exists(&m.url, &param).await);
    assert_eq!(be.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn listing_reads_every_page_beyond_1000_instances() {
    let (m, _turn) = moto::moto().await;
    let proxy = moto::Proxy::start(m).await;
    let mgr = manager_name("aws-pages");
    let img = image(&m.url).await;
    // 1,005 instances in as many reservations (moto pages by reservation, EC2 by instance).
    let mut made = Vec::new();
    for chunk in 0..67 {
        let calls = (0..15).map(|i| {
            let (url, img, mgr) = (m.url.clone(), img.clone(), mgr.clone());
            async move {
                let runner = format!("{mgr}-g-{chunk}-{i}");
                run_tagged(&url, &img, &[(TAG_MANAGER, &mgr), (TAG_RUNNER, &runner)], 1).await
            }
        });
        for ids in futures_join(calls).await {
            made.extend(ids);
        }
    }
    assert_eq!(made.len(), 1005);
    let be = backend(&proxy.url, &mgr).await;
    let listed = be.list().await.unwrap();
    assert_eq!(listed.len(), 1005);
    let mut ids: Vec<String> = listed.into_iter().map(|i| i.id).collect();
    ids.sort();
    made.sort();
    assert_eq!(ids, made);
    let pages = proxy.seen("DescribeInstances");
    assert_eq!(pages.len(), 2, "two pages");
    assert_eq!(pages[0].field("MaxResults").as_deref(), Some("1000"));
    assert!(pages[1].field("NextToken").is_some());
}

async fn futures_join<F>(fs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

fn assert_permanent(err: &BackendError, code: &str, group: &str) {
    match err {
        BackendError::Permanent {
            code: c, message, ..
        } => {
            assert_eq!(c, code, "{err}");
            assert!(message.contains(&format!("group `{group}`")), "{err}");
            assert!(err.to_string().contains(code), "{err}");
        }
        other => panic!("expected a permanent {code}, got {other:?}"),
    }
}

#[tokio::test]
async fn errors_are_classified() {
    let (m, _turn) = moto::moto().await;
    let proxy = moto::Proxy::start(m).await;
    let mgr = manager_name("aws-errors");
    let img = image(&m.url).await;
    let be = backend(&proxy.url, &mgr).await;
    let mut n = 0;
    let mut create = |s: AwsSpec| {
        n += 1;
        let req = request(&mgr, "builders", &format!("{mgr}-builders-{n}"), &s);
        let be = &be;
        async move { be.create(&req).await.unwrap_err() }
    };

    // Permanent: a bad AMI, a bad subnet, a missing permission.
    let e = create(spec("ami-0000000000deadbee")).await;
    assert_permanent(&e, "InvalidAMIID.NotFound", "builders");
    let mut s = spec(&img);
    s.subnet_id = Some("subnet-0000000000deadbee".into());
    assert_permanent(&create(s).await, "InvalidSubnetID.NotFound", "builders");
    let mut s = spec(&img);
    s.security_group_ids = vec!["sg-0000000000deadbee".into()];
    assert_permanent(&create(s).await, "InvalidGroup.NotFound", "builders");
    proxy.inject(|s| (s.action == "RunInstances").then_some((403, "UnauthorizedOperation")));
    assert_permanent(
        &create(spec(&img)).await,
        "UnauthorizedOperation",
        "builders",
    );

    // Transient: throttling and capacity.
    for code in ["RequestLimitExceeded", "InsufficientInstanceCapacity"] {
        proxy.inject(move |s| (s.action == "RunInstances").then_some((503, code)));
        let e = create(spec(&img)).await;
        assert!(e.is_transient(), "{e}");
        assert_eq!(e.code(), code);
        assert!(e.to_string().contains("group `builders`"), "{e}");
    }
    proxy.inject(|s| (s.action == "DescribeInstances").then_some((400, "Throttling")));
    let e = be.list().await.unwrap_err();
    assert!(e.is_transient() && e.code() == "Throttling", "{e}");
    proxy.stop_injecting();

    // Nothing was left behind by the failed creates: no instance, no credential.
    assert!(be.list().await.unwrap().is_empty());
    assert_no_parameters(&m.url).await;

    // An endpoint nobody answers is transient.
    let dead = backend("http://127.0.0.1:9", &mgr).await;
    let e = dead.list().await.unwrap_err();
    assert!(e.is_transient(), "{e}");
}

#[tokio::test]
async fn no_credentials_is_a_permanent_error_that_says_so() {
    let (m, _turn) = moto::moto().await;
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build();
    let be = AwsBackend::from_sdk_config("aws", "nocreds", &settings(&m.url), &sdk);
    let e = be.list().await.unwrap_err();
    assert!(!e.is_transient(), "{e}");
    assert_eq!(e.code(), "NoCredentials", "{e}");
}

/// The operator's view: `runnerctl` with an `aws` group against moto, the fake GitHub and a real
/// Redis. Credentials come from the environment, the endpoint from the configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runnerctl_creates_lists_and_deletes_ec2_runners() {
    let (m, _turn) = moto::moto().await;
    let proxy = moto::Proxy::start(m).await;
    let redis = support::RedisServer::start();
    let sim =
        runnerctl::forge::fake::FakeGitHub::start(runnerctl::forge::fake::FakeGitHubOptions {
            orgs: vec![("octo-org".into(), vec!["app".into()])],
            token: Some("ghp_aws".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let name = manager_name("aws-cli");
    let img = image(&m.url).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "name: {name}\ncleanup_grace: 0s\ngithub:\n  base_url: {}\n  token_env: AWS_CLI_GH_TOKEN\nredis:\n  url: {}\nbackends:\n  ec2:\n    kind: aws\n    region: us-east-1\n    endpoint_url: {}\n    max_attempts: 1\nrunner_groups:\n  - name: vm\n    organization: octo-org\n    labels: [self-hosted, vm]\n    backend: ec2\n    max_runners: 3\n    spec:\n      image_id: {img}\n      instance_type: t3.micro\n      spot: true\n  - name: broken\n    organization: octo-org\n    labels: [self-hosted, broken]\n    backend: ec2\n    spec:\n      image_id: ami-0000000000deadbee\n      instance_type: t3.micro\n",
            sim.url(),
            redis.url,
            proxy.url,
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(support::bin())
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("AWS_CLI_GH_TOKEN", "ghp_aws")
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
    };
    let run = |args: Vec<&'static str>| {
        let r = run(&args);
        async move { r }
    };
    assert_eq!(run(vec!["groups", "sync"]).await.0, Some(0));

    // Spot capacity is refused once: that runner comes up on-demand, and the fallback is
    // counted in Redis for `/metrics`.
    let refused = std::sync::atomic::AtomicBool::new(false);
    proxy.inject(move |s| {
        let spot =
            s.action == "RunInstances" && s.field("InstanceMarketOptions.MarketType").is_some();
        (spot && !refused.swap(true, std::sync::atomic::Ordering::SeqCst))
            .then_some((500, "InsufficientInstanceCapacity"))
    });
    // At the most verbose log level, still no secret in the output.
    let (code, out, err) = run(vec![
        "-vvvv", "runners", "create", "--group", "vm", "--count", "2",
    ])
    .await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out.matches("created ").count(), 2, "{out}");
    // The JIT configurations GitHub handed out: each waits in SSM, none is in the output.
    let runners = sim.runners();
    assert_eq!(runners.len(), 2);
    let ssm_client = ssm(&m.url).await;
    for r in &runners {
        assert!(!err.contains(&r.jit) && !out.contains(&r.jit));
        let p = ssm_client
            .get_parameter()
            .name(format!("/runnerctl/{name}/{}/jitconfig", r.name))
            .with_decryption(true)
            .send()
            .await
            .unwrap();
        assert_eq!(p.parameter().and_then(|p| p.value()), Some(r.jit.as_str()));
    }
    assert!(!err.contains("ghp_aws"), "no token in the output");
    let conn = runnerctl::store::connect(&redis.url).await.unwrap();
    let store = runnerctl::store::RedisStore::new(conn, &name);
    assert_eq!(
        store
            .mark(&runnerctl::store::spot_fallback_mark("vm"))
            .await
            .unwrap(),
        1
    );

    let (code, out, _) = run(vec!["-o", "json", "runners", "list"]).await;
    assert_eq!(code, Some(0));
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = rows.as_array().unwrap().clone();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let be = backend(&m.url, &name).await;
    conformance::assert_records_name_instances(&rows, &be).await;

    // A bad AMI: a clear, permanent error naming the AWS code and the group; nothing left.
    let (code, out, err) = run(vec!["runners", "create", "--group", "broken"]).await;
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("InvalidAMIID.NotFound") && err.contains("group `broken`"),
        "{err}"
    );

    // A leaked VM (tagged as ours, no record): the health check terminates it.
    let leaked = run_tagged(
        &m.url,
        &img,
        &[
            (TAG_MANAGER, name.as_str()),
            ("runnerctl-group", "vm"),
            (TAG_RUNNER, &format!("{name}-vm-leaked")),
        ],
        1,
    )
    .await;
    assert!(be.get(&leaked[0]).await.unwrap().is_some());
    let (code, out, err) = run(vec!["healthcheck", "--group", "vm"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("has no record"), "{out}");
    assert!(be.get(&leaked[0]).await.unwrap().is_none(), "terminated");
    assert_eq!(be.list().await.unwrap().len(), 2, "the two runners stay");

    let (code, out, err) = run(vec!["runners", "delete", "--group", "vm", "--all", "--yes"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(be.list().await.unwrap().is_empty());
    assert_no_parameters(&m.url).await;
}

/// EC2 keeps a client token's instance even after it terminated, and answers a reused token with
/// it: the create moves on to the token's next generation instead of returning a dead instance.
#[tokio::test]
async fn a_token_whose_instance_terminated_moves_to_the_next_generation() {
    let (m, _turn) = moto::moto().await;
    let proxy = moto::Proxy::start(m).await;
    let mgr = manager_name("aws-token");
    let runner = format!("{mgr}-g-t");
    let be = backend(&proxy.url, &mgr).await;
    let first = be.client_token(&runner, 0, false);
    proxy.answer(move |s| {
        (s.action == "RunInstances" && s.field("ClientToken").as_deref() == Some(first.as_str()))
            .then(|| {
                (
                    200,
                    "<RunInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>r</requestId><reservationId>r-1</reservationId><ownerId>123456789012</ownerId><instancesSet><item><instanceId>i-0000000000000dead</instanceId><instanceState><code>48</code><name>terminated</name></instanceState></item></instancesSet></RunInstancesResponse>".to_string(),
                )
            })
    });
    let made = be
        .create(&request(&mgr, "g", &runner, &spec(&image(&m.url).await)))
        .await
        .unwrap();
    assert_ne!(made.id, "i-0000000000000dead");
    let tokens: Vec<String> = proxy
        .seen("RunInstances")
        .iter()
        .map(|s| s.field("ClientToken").unwrap())
        .collect();
    assert_eq!(
        tokens,
        [
            be.client_token(&runner, 0, false),
            be.client_token(&runner, 1, false)
        ]
    );
    assert_eq!(be.list().await.unwrap().len(), 1);
}

/// With the credential broker, the EC2 instance's user-data carries the one-time token, the
/// pinned CA and the fetch hook, no credential, and nothing goes to SSM; the instance's private
/// address is reported for the broker to bind the credential to.
#[tokio::test]
async fn with_the_broker_nothing_goes_to_ssm_and_the_address_is_reported() {
    let (m, _turn) = moto::moto().await;
    m.reset();
    let mgr = manager_name("aws-broker");
    let be = backend(&m.url, &mgr).await;
    let runner = format!("{mgr}-g-b");
    let mut req = request(&mgr, "g", &runner, &spec(&image(&m.url).await));
    let token = Secret::new("one-time-token-0123456789");
    bootstrap::through_broker(
        &mut req.boot,
        "https://10.0.0.1:8443",
        "-----BEGIN CERTIFICATE-----\n",
        &token,
        600,
    )
    .unwrap();
    let made = be.create(&req).await.unwrap();
    let address = made
        .address
        .clone()
        .expect("RunInstances reports the private address");
    assert!(address.parse::<std::net::Ipv4Addr>().is_ok(), "{address}");
    // And the signed identity the instance can prove (its account, region and id).
    let identity = made
        .identity
        .clone()
        .expect("the account is known from RunInstances");
    assert!(
        identity.starts_with("ec2:") && identity.ends_with(&format!("/us-east-1/{}", made.id)),
        "{identity}"
    );
    assert_no_parameters(&m.url).await;
    let user_data = user_data_of(&m.url, &made.id).await;
    let doc: serde_yaml::Value = serde_yaml::from_str(&user_data).unwrap();
    let files = doc["write_files"].as_sequence().unwrap();
    let text = |p: &str| {
        files
            .iter()
            .find(|f| f["path"] == p)
            .map(|f| bootstrap::file_content(f).unwrap())
    };
    assert!(text(bootstrap::BROKER_TOKEN)
        .unwrap()
        .contains(token.expose()));
    assert!(text(bootstrap::FETCH_CREDENTIAL_HOOK)
        .unwrap()
        .contains("'https://10.0.0.1:8443'/v1/credential"));
    for f in files {
        assert!(!bootstrap::file_content(f).unwrap().contains(SECRET));
    }
    be.delete(&made.id).await.unwrap();
}
