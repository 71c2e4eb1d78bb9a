//! `kind: aws`: the EC2 backend's part of the configuration and its registration.

use super::AwsBackend;
use crate::backend::{Backend, BackendSettings, BootStyle, BuildContext, Kind, Result};
use crate::bootstrap;
use crate::config::{Reader, Schema, Typed};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub struct AwsKind;
pub static KIND: AwsKind = AwsKind;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct AwsSettings {
    pub region: String,
    /// Another EC2 endpoint (for example a local test server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// A named profile of the shared AWS configuration; by default the standard chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Attempts per AWS call, the first included (the SDK's standard retry). Default: 3.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Where runners' credentials wait in SSM Parameter Store (SecureString) until their
    /// instance fetches them. Default: `/runnerctl`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter_prefix: Option<String>,
    /// KMS key that encrypts those parameters. Default: the account's `alias/aws/ssm`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

impl AwsSettings {
    pub const DEFAULT_PARAMETER_PREFIX: &'static str = "/runnerctl";

    pub fn parameter_prefix(&self) -> &str {
        self.parameter_prefix
            .as_deref()
            .unwrap_or(Self::DEFAULT_PARAMETER_PREFIX)
            .trim_end_matches('/')
    }
}

fn default_disk_gb() -> u32 {
    20
}
fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AwsSpec {
    pub image_id: String,
    pub instance_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    #[serde(default)]
    pub security_group_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_instance_profile: Option<String>,
    #[serde(default = "default_disk_gb")]
    pub disk_size_gb: u32,
    #[serde(default = "default_aws_disk_type")]
    pub disk_type: String,
    /// Provisioned IOPS of the root volume (required by `io1` and `io2`; optional for `gp3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_iops: Option<u32>,
    /// Throughput of a `gp3` root volume in MiB/s (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_throughput_mbps: Option<u32>,
    /// Ask for spot capacity.
    #[serde(default)]
    pub spot: bool,
    /// When spot capacity is refused, take an on-demand instance instead.
    #[serde(default = "default_true")]
    pub spot_fallback_on_demand: bool,
}

fn default_aws_disk_type() -> String {
    "gp3".into()
}

impl AwsSpec {
    pub fn typed(self) -> Typed {
        Typed::new("aws", self)
    }
}

/// EBS volume types.
const VOLUME_TYPES: [&str; 7] = ["gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"];

impl Schema for AwsKind {
    fn kind(&self) -> &'static str {
        "aws"
    }

    fn warm_pools(&self) -> (bool, bool) {
        (true, true)
    }

    fn warm_needs_broker(&self) -> bool {
        true
    }

    fn stopped_refusal(&self, spec: &Typed) -> Option<&'static str> {
        spec.get::<AwsSpec>().filter(|s| s.spot).map(|_| {
            "its spec asks for spot instances, and EC2 stops a spot instance only under a persistent request (runnerctl makes one-time requests); keep a hot pool, or a stopped pool of an on-demand group"
        })
    }

    fn settings(&self, r: &mut Reader<'_, '_>, value: serde_yaml::Value) -> Option<Typed> {
        let s: AwsSettings = r.de(value)?;
        r.required("region", &s.region);
        if s.max_attempts.is_some_and(|n| !(1..=20).contains(&n)) {
            r.error(
                "max_attempts",
                "must be between 1 and 20 (the first attempt counts)",
            );
        }
        if let Some(p) = &s.parameter_prefix {
            let allowed = |c: char| c.is_ascii_alphanumeric() || "_.-/".contains(c);
            if !p.starts_with('/') || p.len() < 2 || !p.chars().all(allowed) {
                r.error(
                    "parameter_prefix",
                    format!("`{p}` is not an SSM parameter path: it starts with `/` and holds letters, digits and `_.-/`"),
                );
            }
        }
        Some(Typed::new("aws", s))
    }

    fn spec(&self, r: &mut Reader<'_, '_>, value: serde_yaml::Value) -> Option<Typed> {
        if value.is_null() {
            r.error(
                "",
                "required field is missing (the instance spec for a `aws` backend)",
            );
            return None;
        }
        let a: AwsSpec = r.de(value)?;
        check_spec(r, &a);
        Some(a.typed())
    }
}

fn check_spec(r: &mut Reader<'_, '_>, a: &AwsSpec) {
    if a.image_id.trim().is_empty() {
        r.error("image_id", "must not be empty");
    }
    if a.instance_type.trim().is_empty() {
        r.error("instance_type", "must not be empty");
    }
    if a.disk_size_gb == 0 {
        r.error("disk_size_gb", "must be at least 1");
    } else {
        r.range("disk_size_gb", u64::from(a.disk_size_gb), 1, 65_536);
    }
    if let Some(n) = a.disk_iops {
        r.range("disk_iops", u64::from(n), 100, 256_000);
    }
    if let Some(n) = a.disk_throughput_mbps {
        r.range("disk_throughput_mbps", u64::from(n), 125, 2_000);
    }
    let io = matches!(a.disk_type.as_str(), "io1" | "io2");
    if io && a.disk_iops.is_none() {
        r.error(
            "disk_iops",
            format!("required by the `{}` volume type", a.disk_type),
        );
    }
    if a.disk_iops.is_some() && !io && a.disk_type != "gp3" {
        r.error(
            "disk_iops",
            format!(
                "the `{}` volume type takes no IOPS (io1, io2, gp3 do)",
                a.disk_type
            ),
        );
    }
    if a.disk_throughput_mbps.is_some() && a.disk_type != "gp3" {
        r.error(
            "disk_throughput_mbps",
            "only a `gp3` volume takes a throughput",
        );
    }
    if !VOLUME_TYPES.contains(&a.disk_type.as_str()) {
        r.error(
            "disk_type",
            format!(
                "`{}` is not an EBS volume type (one of {})",
                a.disk_type,
                VOLUME_TYPES.join(", ")
            ),
        );
    }
}

#[async_trait::async_trait]
impl Kind for AwsKind {
    fn schema(&self) -> &dyn Schema {
        self
    }
    fn boot_style(&self) -> BootStyle {
        BootStyle::Vm
    }
    fn identity_proof(&self) -> bootstrap::Proof {
        bootstrap::Proof::Ec2IdentityDocument
    }
    fn credential_delivery(
        &self,
        settings: &BackendSettings,
        manager: &str,
        runner: &str,
    ) -> String {
        let prefix = settings
            .get::<AwsSettings>()
            .map(|a| a.parameter_prefix().to_string())
            .unwrap_or_default();
        format!(
            "kept in SSM Parameter Store as a SecureString, {prefix}/{manager}/{runner}/jitconfig; the backend adds {} to the user-data, which fetches it with the AWS CLI and deletes it",
            bootstrap::FETCH_CREDENTIAL_HOOK
        )
    }
    async fn build(&self, cx: BuildContext) -> Result<Arc<dyn Backend>> {
        let settings = cx
            .settings
            .get::<AwsSettings>()
            .cloned()
            .unwrap_or_default();
        Ok(Arc::new(
            AwsBackend::connect(&cx.name, &cx.manager, &settings).await?,
        ))
    }
}
