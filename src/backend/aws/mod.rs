//! The AWS EC2 backend: one instance per runner.
//!
//! - Create: `RunInstances` with the group's spec, the rendered bootstrap as user-data, owner
//!   tags on the instance and its volumes, and a `ClientToken` derived from the manager and the
//!   runner name, so that a retried create makes no second instance. Before that, an instance
//!   already tagged with the runner's name is looked up and returned (this also covers a token
//!   whose instance has since terminated: EC2 would hand that dead instance back, so the token
//!   moves on to its next generation).
//! - The credential never travels in user-data, which anyone allowed `DescribeInstanceAttribute`
//!   reads in clear. It waits in SSM Parameter Store as a SecureString
//!   (`<parameter_prefix>/<manager>/<runner>/<file>`); the user-data carries a hook that fetches
//!   it with the AWS CLI and deletes it. The instance profile must allow `ssm:GetParameter` and
//!   `ssm:DeleteParameter` there (and `kms:Decrypt` on the key).
//! - Spot: a capacity or price refusal falls back to on-demand when the group allows it; the
//!   fallback is logged, counted here and reported on the instance.
//! - Delete: `TerminateInstances` after checking the instance is ours; gone is success.
//! - List: `DescribeInstances` filtered by our manager tag and the live states, every page.
//! - Errors: throttling, capacity and network trouble are transient; the rest (a bad AMI, subnet
//!   or permission) is permanent, with the AWS error code, the group and the message.

use super::{
    Backend, BackendError, CreateRequest, Instance, InstanceState, Result, TAG_GROUP, TAG_MANAGER,
    TAG_RUNNER,
};
use crate::bootstrap;
mod config;

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, HttpTokensState, IamInstanceProfileSpecification,
    InstanceInterruptionBehavior, InstanceMarketOptionsRequest, InstanceMetadataOptionsRequest,
    InstanceStateName, InstanceType, MarketType, ResourceType, ShutdownBehavior, SpotInstanceType,
    SpotMarketOptions, Tag, TagSpecification, VolumeType,
};
use aws_sdk_ssm::types::{ParameterTier, ParameterType};
use base64::Engine;
pub use config::{AwsKind, AwsSettings, AwsSpec, KIND};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The tag of a credential's SSM parameter naming the instance it is for (its ARN).
pub const TAG_INSTANCE: &str = "runnerctl-instance";

/// States of an instance that still exists for us.
const LIVE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];
/// EC2's largest page of `DescribeInstances`.
const PAGE: i32 = 1000;
/// Fresh client tokens tried when earlier ones name instances that have terminated.
const TOKEN_GENERATIONS: u32 = 8;
/// SSM's Standard tier holds values up to 4 KiB; larger ones need the Advanced tier.
const STANDARD_TIER_MAX: usize = 4096;

/// Error codes worth retrying: throttling, capacity and AWS's own trouble.
const TRANSIENT_CODES: [&str; 14] = [
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "InsufficientInstanceCapacity",
    "InsufficientHostCapacity",
    "InsufficientReservedInstanceCapacity",
    "InsufficientCapacity",
    "InsufficientFreeAddressesInSubnet",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "Unavailable",
    "RequestTimeout",
];

/// Codes with which EC2 refuses spot capacity (or its price); on-demand may still be there.
const SPOT_REFUSALS: [&str; 7] = [
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "SpotMaxPriceTooLow",
    "MaxSpotInstanceCountExceeded",
    "InsufficientSpotInstanceCapacity",
    "UnfulfillableCapacity",
    "SpotCapacityNotAvailable",
];

pub struct AwsBackend {
    name: String,
    manager: String,
    region: String,
    parameter_prefix: String,
    kms_key_id: Option<String>,
    ec2: aws_sdk_ec2::Client,
    ssm: aws_sdk_ssm::Client,
    /// Root device name of each AMI, asked once.
    root_devices: Mutex<HashMap<String, String>>,
    spot_fallbacks: AtomicU64,
    /// The account instances run in, as `RunInstances` reports it (for instance ARNs).
    account: Mutex<Option<String>>,
}

impl AwsBackend {
    /// Connects with the standard AWS credential chain (environment, `profile`, web identity,
    /// instance role), in `settings.region`, at `settings.endpoint_url` when set.
    pub async fn connect(name: &str, manager: &str, settings: &AwsSettings) -> Result<Self> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(settings.region.clone()));
        if let Some(p) = &settings.profile {
            loader = loader.profile_name(p);
        }
        if let Some(u) = &settings.endpoint_url {
            loader = loader.endpoint_url(u);
        }
        let sdk = loader.load().await;
        Ok(Self::from_sdk_config(name, manager, settings, &sdk))
    }

    /// Builds the backend over an SDK configuration made elsewhere (tests give static
    /// credentials this way). Region, endpoint and attempts come from `settings`.
    pub fn from_sdk_config(
        name: &str,
        manager: &str,
        settings: &AwsSettings,
        sdk: &aws_config::SdkConfig,
    ) -> Self {
        let retry = aws_config::retry::RetryConfig::standard()
            .with_max_attempts(settings.max_attempts.unwrap_or(3).max(1));
        let region = aws_config::Region::new(settings.region.clone());
        // No call may hang: a black-holed connection would hold a worker slot (and a group's
        // health-check lock) for ever. Each attempt and each whole operation has a ceiling.
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .read_timeout(std::time::Duration::from_secs(30))
            .operation_attempt_timeout(std::time::Duration::from_secs(60))
            .operation_timeout(std::time::Duration::from_secs(180))
            .build();
        let mut ec2 = aws_sdk_ec2::config::Builder::from(sdk)
            .region(region.clone())
            .retry_config(retry.clone())
            .timeout_config(timeouts.clone());
        let mut ssm = aws_sdk_ssm::config::Builder::from(sdk)
            .region(region)
            .retry_config(retry)
            .timeout_config(timeouts);
        if let Some(u) = &settings.endpoint_url {
            ec2 = ec2.endpoint_url(u);
            ssm = ssm.endpoint_url(u);
        }
        AwsBackend {
            name: name.to_string(),
            manager: manager.to_string(),
            region: settings.region.clone(),
            parameter_prefix: settings.parameter_prefix().to_string(),
            kms_key_id: settings.kms_key_id.clone(),
            ec2: aws_sdk_ec2::Client::from_conf(ec2.build()),
            ssm: aws_sdk_ssm::Client::from_conf(ssm.build()),
            root_devices: Mutex::new(HashMap::new()),
            spot_fallbacks: AtomicU64::new(0),
            account: Mutex::new(None),
        }
    }

    /// How many creates fell back from spot to on-demand since this backend was built.
    pub fn spot_fallbacks(&self) -> u64 {
        self.spot_fallbacks.load(Ordering::Relaxed)
    }

    /// The SSM parameter that carries `file` of `runner` until its instance fetches it.
    pub fn parameter_name(&self, runner: &str, file: &str) -> String {
        format!(
            "{}/{}/{runner}/{}",
            self.parameter_prefix,
            self.manager,
            file_name(file)
        )
    }

    /// The idempotency token of a runner's create: the same for every retry of one attempt.
    pub fn client_token(&self, runner: &str, generation: u32, on_demand_fallback: bool) -> String {
        let mut h = Sha256::new();
        h.update(self.manager.as_bytes());
        h.update([0]);
        h.update(runner.as_bytes());
        let digest = h.finalize();
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        // EC2 tokens are at most 64 ASCII characters.
        let mut t = format!("rc-{hex}-{generation}");
        if on_demand_fallback {
            t.push_str("-od");
        }
        t
    }

    fn classify<E, R>(&self, group: Option<&str>, e: SdkError<E, R>) -> BackendError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug,
    {
        classify(&self.name, group, e)
    }

    /// Live instances with the given extra tag filters.
    async fn describe(&self, filters: Vec<Filter>, group: Option<&str>) -> Result<Vec<Instance>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = self
                .ec2
                .describe_instances()
                .filters(tag_filter(TAG_MANAGER, &self.manager))
                .filters(
                    Filter::builder()
                        .name("instance-state-name")
                        .set_values(Some(LIVE_STATES.map(String::from).to_vec()))
                        .build(),
                )
                .max_results(PAGE);
            for f in &filters {
                req = req.filters(f.clone());
            }
            if let Some(t) = &token {
                req = req.next_token(t);
            }
            let page = req.send().await.map_err(|e| self.classify(group, e))?;
            for r in page.reservations() {
                for i in r.instances() {
                    if let Some(inst) = self.convert_owned(i, r.owner_id()) {
                        out.push(inst);
                    }
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// An EC2 instance as runnerctl sees it; `None` when it is not ours or is gone.
    fn convert(&self, i: &aws_sdk_ec2::types::Instance) -> Option<Instance> {
        self.convert_owned(i, None)
    }

    /// The signed identity an instance of this backend can prove (its account known).
    fn identity(&self, id: &str, owner: Option<&str>) -> Option<String> {
        let account = match owner {
            Some(o) => Some(o.to_string()),
            None => self
                .account
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }?;
        Some(crate::model::ec2_identity(&account, &self.region, id))
    }

    /// [`Self::convert`], the reservation's owner (the account) given.
    fn convert_owned(
        &self,
        i: &aws_sdk_ec2::types::Instance,
        owner: Option<&str>,
    ) -> Option<Instance> {
        let tags = tags_of(i);
        if tags.get(TAG_MANAGER) != Some(&self.manager) {
            return None;
        }
        let state = match i.state().and_then(|s| s.name()) {
            Some(InstanceStateName::Pending) => InstanceState::Pending,
            Some(InstanceStateName::Running) => InstanceState::Running,
            Some(InstanceStateName::Stopping) => InstanceState::Stopping,
            Some(InstanceStateName::Stopped) => InstanceState::Stopped,
            Some(InstanceStateName::ShuttingDown) | Some(InstanceStateName::Terminated) => {
                return None
            }
            _ => InstanceState::Unknown,
        };
        Some(Instance {
            id: i.instance_id()?.to_string(),
            state,
            tags,
            created_at: i.launch_time().map(|t| t.secs().max(0) as u64),
            spot_fallback: false,
            identity: i.instance_id().and_then(|id| self.identity(id, owner)),
            address: i.private_ip_address().map(str::to_string),
        })
    }

    /// The root device name of an AMI (`/dev/xvda`, `/dev/sda1`), needed to size its volume.
    async fn root_device(&self, image: &str, group: &str) -> Result<String> {
        if let Some(d) = self.root_devices.lock().expect("poisoned").get(image) {
            return Ok(d.clone());
        }
        let out = self
            .ec2
            .describe_images()
            .image_ids(image)
            .send()
            .await
            .map_err(|e| self.classify(Some(group), e))?;
        let Some(found) = out.images().iter().find(|i| i.image_id() == Some(image)) else {
            return Err(BackendError::Permanent {
                backend: self.name.clone(),
                code: "InvalidAMIID.NotFound".into(),
                message: format!("group `{group}`: the image `{image}` does not exist"),
            });
        };
        let device = found.root_device_name().unwrap_or("/dev/xvda").to_string();
        self.root_devices
            .lock()
            .expect("poisoned")
            .insert(image.to_string(), device.clone());
        Ok(device)
    }

    /// Stores the instance's secret files in SSM Parameter Store; returns their parameters.
    /// The parameters a runner's credential files go to, with their files.
    fn parameters(&self, req: &CreateRequest) -> Vec<(String, String)> {
        req.boot
            .files
            .iter()
            .filter(|f| bootstrap::is_secret(&f.path))
            .map(|f| {
                (
                    self.parameter_name(&req.runner_name, &f.path),
                    f.path.clone(),
                )
            })
            .collect()
    }

    /// The ARN of an instance of this backend's account and region.
    fn instance_arn(&self, id: &str) -> String {
        let partition = if self.region.starts_with("cn-") {
            "aws-cn"
        } else if self.region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        };
        let account = self
            .account
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default();
        format!(
            "arn:{partition}:ec2:{}:{account}:instance/{id}",
            self.region
        )
    }

    /// Writes the credential files as SecureStrings once the instance exists, each tagged
    /// `runnerctl-instance` with the instance's ARN: the documented runner policy lets an
    /// instance read only parameters whose tag is its own `ec2:SourceInstanceARN`.
    async fn put_secrets(
        &self,
        req: &CreateRequest,
        instance: &str,
    ) -> Result<Vec<(String, String)>> {
        let arn = self.instance_arn(instance);
        let group = req.tags.group.as_str();
        let mut made: Vec<(String, String)> = Vec::new();
        for f in req
            .boot
            .files
            .iter()
            .filter(|f| bootstrap::is_secret(&f.path))
        {
            let name = self.parameter_name(&req.runner_name, &f.path);
            let value = f.content.expose();
            let tier = if value.len() > STANDARD_TIER_MAX {
                ParameterTier::Advanced
            } else {
                ParameterTier::Standard
            };
            let put = || {
                self.ssm
                    .put_parameter()
                    .name(&name)
                    .value(value)
                    .r#type(ParameterType::SecureString)
                    .tier(tier.clone())
                    .set_key_id(self.kms_key_id.clone())
                    .description("runnerctl: a runner's credential, deleted once fetched")
            };
            let mut first = put().tags(
                aws_sdk_ssm::types::Tag::builder()
                    .key(TAG_INSTANCE)
                    .value(&arn)
                    .build()
                    .expect("key and value are set"),
            );
            for (k, v) in req.tags.pairs() {
                first = first.tags(
                    aws_sdk_ssm::types::Tag::builder()
                        .key(k)
                        .value(v)
                        .build()
                        .expect("key and value are set"),
                );
            }
            match first.send().await {
                Ok(_) => {}
                // A retried create: the runner's credential may be new; tags stay from the
                // first put (SSM takes no tags together with `overwrite`).
                Err(e) if e.code() == Some("ParameterAlreadyExists") => {
                    if let Err(e) = put().overwrite(true).send().await {
                        self.delete_parameters(made.iter().map(|(n, _)| n.as_str()))
                            .await;
                        return Err(redact(classify(&self.name, Some(group), e), value));
                    }
                }
                Err(e) => {
                    self.delete_parameters(made.iter().map(|(n, _)| n.as_str()))
                        .await;
                    return Err(redact(classify(&self.name, Some(group), e), value));
                }
            }
            made.push((name, f.path.clone()));
        }
        Ok(made)
    }

    /// Deletes parameters, best effort (an instance deletes its own once fetched).
    async fn delete_parameters<'a>(&self, names: impl Iterator<Item = &'a str>) {
        for n in names {
            match self.ssm.delete_parameter().name(n).send().await {
                Ok(_) => {}
                Err(e) if e.code() == Some("ParameterNotFound") => {}
                Err(e) => tracing::warn!(
                    backend = %self.name,
                    parameter = %n,
                    error = %DisplayErrorContext(&e),
                    "could not delete a credential parameter"
                ),
            }
        }
    }

    /// The hook that fetches the credential files on the instance, then deletes them in SSM.
    fn fetch_hook(&self, params: &[(String, String)]) -> String {
        let mut s = format!(
            r#"#!/bin/sh
# runnerctl (aws): fetch this runner's credential from SSM Parameter Store, then delete it there.
# Needs the AWS CLI on the image and an instance profile allowing ssm:GetParameter and
# ssm:DeleteParameter on {prefix}/* (and kms:Decrypt on the parameters' key).
set -eu
umask 077
dir="${{1:-/run/runnerctl}}"
fetch() {{
  # Written once the instance exists: wait for it (up to 5 minutes).
  tries=0
  until value=$(aws ssm get-parameter --region '{region}' --name "$1" --with-decryption \
    --query Parameter.Value --output text 2>/dev/null); do
    tries=$((tries + 1))
    [ "$tries" -ge 60 ] && {{ echo "runnerctl: cannot read $1" >&2; return 1; }}
    sleep 5
  done
  printf '%s' "$value" >"$2.part" && mv "$2.part" "$2"
  aws ssm delete-parameter --region '{region}' --name "$1" >/dev/null 2>&1 || true
}}
"#,
            prefix = self.parameter_prefix,
            region = self.region,
        );
        for (param, path) in params {
            s.push_str(&format!("fetch '{param}' \"$dir/{}\"\n", file_name(path)));
        }
        s
    }

    async fn run_instance(
        &self,
        req: &CreateRequest,
        spec: &AwsSpec,
        user_data: &str,
        token: &str,
        spot: bool,
    ) -> Result<Option<Instance>> {
        let group = req.tags.group.as_str();
        let root = self.root_device(&spec.image_id, group).await?;
        // The owner tags and a `Name`: sent for the instance and its volume, and returned.
        let mut owner: BTreeMap<String, String> = req
            .tags
            .pairs()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        owner.insert("Name".into(), req.runner_name.clone());
        let tags: Vec<Tag> = owner
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        let spec_for = |t: ResourceType| {
            TagSpecification::builder()
                .resource_type(t)
                .set_tags(Some(tags.clone()))
                .build()
        };
        let mut run = self
            .ec2
            .run_instances()
            .image_id(&spec.image_id)
            .instance_type(InstanceType::from(spec.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .client_token(token)
            .set_subnet_id(spec.subnet_id.clone())
            .set_key_name(spec.key_name.clone())
            .user_data(base64::engine::general_purpose::STANDARD.encode(user_data))
            .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate)
            .metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .http_tokens(HttpTokensState::Required)
                    .build(),
            )
            .block_device_mappings(root_volume(root, spec))
            .tag_specifications(spec_for(ResourceType::Instance))
            .tag_specifications(spec_for(ResourceType::Volume));
        if !spec.security_group_ids.is_empty() {
            run = run.set_security_group_ids(Some(spec.security_group_ids.clone()));
        }
        if let Some(p) = &spec.iam_instance_profile {
            let b = IamInstanceProfileSpecification::builder();
            run = run.iam_instance_profile(if p.starts_with("arn:") {
                b.arn(p).build()
            } else {
                b.name(p).build()
            });
        }
        if spot {
            run = run.instance_market_options(spot_market());
        }
        let out = run
            .send()
            .await
            .map_err(|e| self.classify(Some(group), e))?;
        if let Some(owner) = out.owner_id() {
            *self.account.lock().unwrap_or_else(|p| p.into_inner()) = Some(owner.to_string());
        }
        let Some(i) = out.instances().first() else {
            return Err(BackendError::Transient {
                backend: self.name.clone(),
                code: "EmptyReservation".into(),
                message: format!("group `{group}`: RunInstances answered without an instance"),
            });
        };
        // A token EC2 saw before returns that instance, which may have terminated since.
        let gone = matches!(
            i.state().and_then(|s| s.name()),
            Some(InstanceStateName::ShuttingDown | InstanceStateName::Terminated)
        );
        if gone {
            return Ok(None);
        }
        let id = i.instance_id().unwrap_or_default().to_string();
        let identity = self.identity(&id, out.owner_id());
        Ok(Some(Instance {
            id,
            state: InstanceState::Pending,
            tags: owner,
            created_at: i.launch_time().map(|t| t.secs().max(0) as u64),
            spot_fallback: false,
            identity,
            // The runner's traffic to the broker comes from its private address.
            address: i.private_ip_address().map(str::to_string),
        }))
    }

    /// One attempt at the instance, spot first when asked, with the on-demand fallback.
    async fn launch(
        &self,
        req: &CreateRequest,
        spec: &AwsSpec,
        user_data: &str,
        generation: u32,
    ) -> Result<Option<Instance>> {
        let group = req.tags.group.as_str();
        let token = self.client_token(&req.runner_name, generation, false);
        if !spec.spot {
            return self.run_instance(req, spec, user_data, &token, false).await;
        }
        match self.run_instance(req, spec, user_data, &token, true).await {
            Err(e) if spec.spot_fallback_on_demand && SPOT_REFUSALS.contains(&e.code()) => {
                let (code, message) = (e.code(), e.to_string());
                self.spot_fallbacks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    backend = %self.name,
                    group = %group,
                    runner = %req.runner_name,
                    code = %code,
                    reason = %message,
                    "spot capacity refused; falling back to on-demand"
                );
                let token = self.client_token(&req.runner_name, generation, true);
                let made = self
                    .run_instance(req, spec, user_data, &token, false)
                    .await?;
                Ok(made.map(|i| Instance {
                    spot_fallback: true,
                    ..i
                }))
            }
            other => other,
        }
    }

    async fn find_runner(&self, runner: &str, group: &str) -> Result<Option<Instance>> {
        Ok(self
            .describe(vec![tag_filter(TAG_RUNNER, runner)], Some(group))
            .await?
            .into_iter()
            .next())
    }
}

/// Removes a secret from an error's message, in case AWS echoed the value it refused.
fn redact(e: BackendError, secret: &str) -> BackendError {
    let clean = |m: String| {
        if secret.is_empty() {
            m
        } else {
            m.replace(secret, "<redacted>")
        }
    };
    match e {
        BackendError::Transient {
            backend,
            code,
            message,
        } => BackendError::Transient {
            backend,
            code,
            message: clean(message),
        },
        BackendError::Permanent {
            backend,
            code,
            message,
        } => BackendError::Permanent {
            backend,
            code,
            message: clean(message),
        },
        other => other,
    }
}

/// The last component of a path.
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn tag_filter(key: &str, value: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{key}"))
        .values(value)
        .build()
}

/// Sorts an SDK failure into transient and permanent, keeping AWS's code and the group.
pub fn classify<E, R>(backend: &str, group: Option<&str>, e: SdkError<E, R>) -> BackendError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let scope = group.map(|g| format!("group `{g}`: ")).unwrap_or_default();
    let backend = backend.to_string();
    match &e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            let code = err.code().unwrap_or("Unknown").to_string();
            let message = format!("{scope}{}", err.message().unwrap_or("no message"));
            let transient = TRANSIENT_CODES.contains(&code.as_str())
                || code.starts_with("Insufficient") && code.ends_with("Capacity");
            if transient {
                BackendError::Transient {
                    backend,
                    code,
                    message,
                }
            } else {
                BackendError::Permanent {
                    backend,
                    code,
                    message,
                }
            }
        }
        SdkError::TimeoutError(_) => BackendError::Transient {
            backend,
            code: "Timeout".into(),
            message: format!("{scope}{}", DisplayErrorContext(&e)),
        },
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => BackendError::Transient {
            backend,
            code: "Unreachable".into(),
            message: format!("{scope}{}", DisplayErrorContext(&e)),
        },
        SdkError::ResponseError(_) => BackendError::Transient {
            backend,
            code: "BadResponse".into(),
            message: format!("{scope}{}", DisplayErrorContext(&e)),
        },
        _ => {
            let text = DisplayErrorContext(&e).to_string();
            // No credentials anywhere in the chain: the SDK finds no identity to sign with.
            if text.contains("credentials") || text.contains("identity") {
                return BackendError::Permanent {
                    backend,
                    code: "NoCredentials".into(),
                    message: format!(
                        "{scope}no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a `profile`, or run with an instance role ({text})"
                    ),
                };
            }
            match &e {
                SdkError::DispatchFailure(d) if !d.is_user() => BackendError::Transient {
                    backend,
                    code: "Unreachable".into(),
                    message: format!("{scope}{text}"),
                },
                _ => BackendError::Permanent {
                    backend,
                    code: "ClientError".into(),
                    message: format!("{scope}{text}"),
                },
            }
        }
    }
}

#[async_trait::async_trait]
impl Backend for AwsBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static dyn super::Kind {
        &KIND
    }

    async fn create(&self, req: &CreateRequest) -> Result<Instance> {
        let group = req.tags.group.as_str();
        let Some(spec) = req.spec.get::<AwsSpec>() else {
            return Err(BackendError::Permanent {
                backend: self.name.clone(),
                code: "SpecMismatch".into(),
                message: format!("group `{group}`: its spec is not an EC2 spec"),
            });
        };
        if let Some(i) = self.find_runner(&req.runner_name, group).await? {
            return Ok(i);
        }
        // The hook reads parameters that are written once the instance exists.
        let params = self.parameters(req);
        let user_data = match req.boot.user_data.as_ref().map(|u| u.expose()) {
            None => String::new(),
            Some(u) if params.is_empty() => u.to_string(),
            Some(u) => bootstrap::add_vm_file(
                u,
                bootstrap::FETCH_CREDENTIAL_HOOK,
                0o700,
                &self.fetch_hook(&params),
            )
            .ok_or_else(|| BackendError::Permanent {
                backend: self.name.clone(),
                code: "UserData".into(),
                message: format!("group `{group}`: the user-data is not runnerctl's cloud-config"),
            })?,
        };
        let mut result = Err(BackendError::Permanent {
            backend: self.name.clone(),
            code: "ClientTokensExhausted".into(),
            message: format!(
                "group `{group}`: runner `{}` had {TOKEN_GENERATIONS} instances terminate",
                req.runner_name
            ),
        });
        for generation in 0..TOKEN_GENERATIONS {
            match self.launch(req, spec, &user_data, generation).await {
                Ok(Some(i)) => {
                    result = Ok(i);
                    break;
                }
                Ok(None) => continue,
                // The token was used with other parameters (the spec changed between retries):
                // its instance is either live, and found by its tag, or gone.
                Err(BackendError::Permanent { code, .. })
                    if code == "IdempotentParameterMismatch" =>
                {
                    if let Some(i) = self.find_runner(&req.runner_name, group).await? {
                        result = Ok(i);
                        break;
                    }
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let instance = result?;
        if !params.is_empty() {
            if let Err(e) = self.put_secrets(req, &instance.id).await {
                // An instance whose credential cannot arrive would never start: it goes.
                let _ = self.delete(&instance.id).await;
                return Err(e);
            }
        }
        Ok(instance)
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let Some(found) = self.find_id(id).await? else {
            return Ok(());
        };
        let tags = tags_of(&found);
        if tags.get(TAG_MANAGER) != Some(&self.manager) {
            return Ok(()); // not ours: left alone
        }
        if self.convert(&found).is_some() {
            match self.ec2.terminate_instances().instance_ids(id).send().await {
                Ok(_) => {}
                Err(e) if is_not_found(e.code()) => {}
                Err(e) => return Err(self.classify(tags.get(TAG_GROUP).map(String::as_str), e)),
            }
        }
        // A credential its instance never fetched (it ended before it booted) goes too.
        if let Some(runner) = tags.get(TAG_RUNNER) {
            let names: Vec<String> = [bootstrap::JITCONFIG, bootstrap::TOKEN]
                .iter()
                .map(|f| self.parameter_name(runner, f))
                .collect();
            self.delete_parameters(names.iter().map(String::as_str))
                .await;
        }
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Instance>> {
        self.describe_id(id).await
    }

    async fn list(&self) -> Result<Vec<Instance>> {
        self.describe(vec![], None).await
    }

    /// `StopInstances` (its EBS volumes are kept: a stopped instance costs their storage
    /// only), then waits until EC2 says it is stopped.
    async fn stop(&self, id: &str) -> Result<()> {
        let group = self.ours(id).await?;
        match self.ec2.stop_instances().instance_ids(id).send().await {
            Ok(_) => {}
            Err(e) => return Err(self.classify(group.as_deref(), e)),
        }
        let deadline = std::time::Instant::now() + STATE_WAIT;
        loop {
            let state = self
                .find_id(id)
                .await?
                .and_then(|i| i.state().and_then(|s| s.name()).cloned());
            match state {
                Some(InstanceStateName::Stopped) => return Ok(()),
                None | Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown) => {
                    return Err(BackendError::NotFound {
                        backend: self.name.clone(),
                        id: id.to_string(),
                    })
                }
                Some(_) if std::time::Instant::now() >= deadline => {
                    return Err(BackendError::Transient {
                        backend: self.name.clone(),
                        code: "StopTimeout".into(),
                        message: format!(
                            "instance `{id}` was not stopped within {}s",
                            STATE_WAIT.as_secs()
                        ),
                    })
                }
                Some(_) => tokio::time::sleep(STATE_POLL).await,
            }
        }
    }

    /// `StartInstances`: the instance boots again and its runner unit asks the broker for
    /// its credential. Answers once EC2 took the request (a refusal, such as
    /// `InsufficientInstanceCapacity`, is this call's error).
    async fn start(&self, id: &str) -> Result<()> {
        let group = self.ours(id).await?;
        match self.ec2.start_instances().instance_ids(id).send().await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.classify(group.as_deref(), e)),
        }
    }
}

/// How long a stop is waited for, and how often its state is read meanwhile.
const STATE_WAIT: std::time::Duration = std::time::Duration::from_secs(600);
const STATE_POLL: std::time::Duration = std::time::Duration::from_secs(2);

impl AwsBackend {
    /// The group of instance `id` when it is this manager's and live; not found otherwise
    /// (another's instance is never stopped or started).
    async fn ours(&self, id: &str) -> Result<Option<String>> {
        match self.describe_id(id).await? {
            Some(i) => Ok(i.group().map(str::to_string)),
            None => Err(BackendError::NotFound {
                backend: self.name.clone(),
                id: id.to_string(),
            }),
        }
    }

    /// One instance by id, when it is ours and live.
    async fn describe_id(&self, id: &str) -> Result<Option<Instance>> {
        Ok(self.find_id(id).await?.and_then(|i| self.convert(&i)))
    }

    /// The EC2 instance with this id, whoever owns it, in whatever state.
    async fn find_id(&self, id: &str) -> Result<Option<aws_sdk_ec2::types::Instance>> {
        if !id.starts_with("i-") {
            return Ok(None);
        }
        match self.ec2.describe_instances().instance_ids(id).send().await {
            Ok(out) => Ok(out
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .find(|i| i.instance_id() == Some(id))
                .cloned()),
            Err(e) if is_not_found(e.code()) => Ok(None),
            Err(e) => Err(self.classify(None, e)),
        }
    }
}

fn tags_of(i: &aws_sdk_ec2::types::Instance) -> BTreeMap<String, String> {
    i.tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

fn is_not_found(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("InvalidInstanceID.NotFound" | "InvalidInstanceID.Malformed")
    )
}

/// The root volume of a runner's instance, deleted with it.
fn root_volume(device: String, spec: &AwsSpec) -> BlockDeviceMapping {
    let clamp = |n: u32| n.min(i32::MAX as u32) as i32;
    BlockDeviceMapping::builder()
        .device_name(device)
        .ebs(
            EbsBlockDevice::builder()
                .volume_size(clamp(spec.disk_size_gb))
                .volume_type(VolumeType::from(spec.disk_type.as_str()))
                .set_iops(spec.disk_iops.map(clamp))
                .set_throughput(spec.disk_throughput_mbps.map(clamp))
                .delete_on_termination(true)
                .build(),
        )
        .build()
}

/// A one-time spot request whose instance terminates when interrupted.
fn spot_market() -> InstanceMarketOptionsRequest {
    InstanceMarketOptionsRequest::builder()
        .market_type(MarketType::Spot)
        .spot_options(
            SpotMarketOptions::builder()
                .spot_instance_type(SpotInstanceType::OneTime)
                .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                .build(),
        )
        .build()
}
