//! `kind: gcp`: the Compute Engine backend's part of the configuration and its registration.

use super::GcpBackend;
use crate::backend::{Backend, BackendSettings, BootStyle, BuildContext, Kind, Result};
use crate::config::{Reader, Schema, Typed};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub struct GcpKind;
pub static KIND: GcpKind = GcpKind;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct GcpSettings {
    /// The project instances run in.
    pub project: String,
    /// Zones tried in this order; a capacity refusal moves to the next one. List and delete
    /// find instances in every zone.
    pub zones: Vec<String>,
    /// A service-account key (or authorized-user) JSON file; by default Application Default
    /// Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's, then the metadata server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    /// Another Compute Engine endpoint (a private one, or a local test server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// Send no credentials: only for a local test endpoint (`endpoint_url` is then required).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
    /// How long a long-running operation (insert, delete) may take. Default: 5m.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_timeout: Option<crate::config::Duration>,
}

impl GcpSettings {
    pub fn operation_timeout(&self) -> std::time::Duration {
        self.operation_timeout
            .map(Into::into)
            .unwrap_or(std::time::Duration::from_secs(300))
    }
}

fn default_disk_gb() -> u32 {
    20
}
fn default_disk_type() -> String {
    "pd-balanced".into()
}
fn default_true() -> bool {
    true
}

/// A GPU model and how many of it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Gpu {
    /// The accelerator type, e.g. `nvidia-tesla-t4`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct GcpSpec {
    /// A machine type of the zone, e.g. `e2-standard-4`; sent as its zonal URL.
    pub machine_type: String,
    /// The boot image, e.g. `projects/debian-cloud/global/images/debian-12-bookworm-v20250610`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Or the newest image of a family, e.g. `projects/debian-cloud/global/images/family/debian-12`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_family: Option<String>,
    #[serde(default = "default_disk_gb")]
    pub disk_size_gb: u32,
    /// `pd-standard`, `pd-balanced`, `pd-ssd`, `pd-extreme`, `hyperdisk-balanced`, …
    #[serde(default = "default_disk_type")]
    pub disk_type: String,
    /// The VPC network. Default: `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// A subnetwork of the zone's region (its name, or `regions/R/subnetworks/S`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnetwork: Option<String>,
    /// An ephemeral external address (runners must reach GitHub: without one, the network
    /// needs Cloud NAT). Default: true.
    #[serde(default = "default_true")]
    pub external_ip: bool,
    /// Network tags (firewall rules select instances by them).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The service account the instance runs as (its email). Default: none, the runner
    /// needs no Google API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// OAuth scopes of that service account. Default: cloud-platform.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<Gpu>,
    /// More labels on the instance (runnerctl's own are always set).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Ask for Spot capacity (deleted when preempted).
    #[serde(default)]
    pub spot: bool,
    /// When Spot capacity is refused in every zone, take standard capacity instead.
    #[serde(default = "default_true")]
    pub spot_fallback_standard: bool,
    /// How a stopped warm pool's instance is kept: `suspend` (memory saved: it resumes where
    /// it was, in seconds) or `stop` (shut down: it boots again on start). Compute Engine
    /// cannot suspend an instance with GPUs.
    #[serde(default)]
    pub warm_stop: WarmStop,
}

/// How Compute Engine keeps a stopped warm instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WarmStop {
    /// `instances.suspend` / `instances.resume`: charged for the disk and the saved memory.
    #[default]
    Suspend,
    /// `instances.stop` / `instances.start`: charged for the disk.
    Stop,
}

impl WarmStop {
    pub fn as_str(self) -> &'static str {
        match self {
            WarmStop::Suspend => "suspend",
            WarmStop::Stop => "stop",
        }
    }
}

impl GcpSpec {
    pub fn typed(self) -> Typed {
        Typed::new("gcp", self)
    }

    /// The boot image's source: the image, or its family.
    pub fn source_image(&self) -> &str {
        self.image
            .as_deref()
            .or(self.image_family.as_deref())
            .unwrap_or_default()
    }
}

/// GCE's resource names: a lowercase letter, then lowercase letters, digits and dashes, not
/// ending with a dash, at most 63 characters (RFC 1035).
pub fn is_resource_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && !s.ends_with('-')
}

/// GCE's label keys: a lowercase letter, then lowercase letters, digits, `_` and `-`, at most
/// 63; values may also be empty or start with a digit.
pub fn is_label(s: &str, key: bool) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    s.len() <= 63
        && s.chars().all(ok)
        && (!key || s.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
}

impl Schema for GcpKind {
    fn kind(&self) -> &'static str {
        "gcp"
    }

    fn warm_pools(&self) -> (bool, bool) {
        (true, true)
    }

    fn warm_needs_broker(&self) -> bool {
        true
    }

    fn stopped_refusal(&self, spec: &Typed) -> Option<&'static str> {
        spec.get::<GcpSpec>()
            .filter(|s| s.warm_stop == WarmStop::Suspend && !s.gpus.is_empty())
            .map(|_| "Compute Engine cannot suspend an instance with GPUs; set the spec's `warm_stop: stop`")
    }

    fn settings(&self, r: &mut Reader<'_, '_>, value: serde_yaml::Value) -> Option<Typed> {
        let s: GcpSettings = r.de(value)?;
        r.required("project", &s.project);
        if s.zones.is_empty() {
            r.error(
                "zones",
                "at least one zone is required (e.g. [europe-west1-b])",
            );
        }
        for (i, z) in s.zones.iter().enumerate() {
            if !is_resource_name(z) || z.matches('-').count() < 2 {
                r.error(
                    &format!("zones[{i}]"),
                    format!("`{z}` is not a zone name like europe-west1-b"),
                );
            }
        }
        if let Some(u) = &s.endpoint_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                r.error(
                    "endpoint_url",
                    format!("`{u}` is not an http:// or https:// URL"),
                );
            }
        }
        if s.anonymous && s.endpoint_url.is_none() {
            r.error(
                "anonymous",
                "only with `endpoint_url` (a local test endpoint): Compute Engine itself needs credentials",
            );
        }
        if s.anonymous && s.credentials_file.is_some() {
            r.error(
                "anonymous",
                "`credentials_file` and `anonymous` exclude each other",
            );
        }
        if let Some(p) = &s.credentials_file {
            if let Err(e) = std::fs::metadata(p) {
                r.error(
                    "credentials_file",
                    format!("cannot read `{}`: {e}", p.display()),
                );
            }
        }
        if let Some(t) = s.operation_timeout {
            let t: std::time::Duration = t.into();
            r.range("operation_timeout", t.as_secs(), 10, 3600);
        }
        Some(Typed::new("gcp", s))
    }

    fn spec(&self, r: &mut Reader<'_, '_>, value: serde_yaml::Value) -> Option<Typed> {
        if value.is_null() {
            r.error(
                "",
                "required field is missing (the instance spec for a `gcp` backend)",
            );
            return None;
        }
        let g: GcpSpec = r.de(value)?;
        check_spec(r, &g);
        Some(g.typed())
    }

    fn needs_broker(&self) -> Option<&'static str> {
        Some("its instances' metadata is readable by anyone allowed compute.instances.get")
    }
}

fn check_spec(r: &mut Reader<'_, '_>, g: &GcpSpec) {
    if !is_resource_name(&g.machine_type) {
        r.error(
            "machine_type",
            format!(
                "`{}` is not a machine type name like e2-standard-4 (the zone is the backend's)",
                g.machine_type
            ),
        );
    }
    match (&g.image, &g.image_family) {
        (None, None) => r.error(
            "image",
            "required field is missing (`image`, or `image_family`)",
        ),
        (Some(_), Some(_)) => r.error("image_family", "give `image` or `image_family`, not both"),
        (Some(i), None) if !i.contains("/global/images/") => r.error(
            "image",
            format!("`{i}` is not an image path like projects/debian-cloud/global/images/debian-12-bookworm-v20250610"),
        ),
        (None, Some(f)) if !f.contains("/global/images/family/") => r.error(
            "image_family",
            format!("`{f}` is not an image family path like projects/debian-cloud/global/images/family/debian-12"),
        ),
        _ => {}
    }
    r.range("disk_size_gb", u64::from(g.disk_size_gb), 10, 65_536);
    if !is_resource_name(&g.disk_type) {
        r.error(
            "disk_type",
            format!("`{}` is not a disk type like pd-balanced", g.disk_type),
        );
    }
    for (i, t) in g.tags.iter().enumerate() {
        if !is_resource_name(t) {
            r.error(
                &format!("tags[{i}]"),
                format!("`{t}` is not a network tag: lowercase letters, digits and dashes, starting with a letter, at most 63"),
            );
        }
    }
    if !g.scopes.is_empty() && g.service_account.is_none() {
        r.error("scopes", "scopes need a `service_account`");
    }
    for (i, gpu) in g.gpus.iter().enumerate() {
        if !is_resource_name(&gpu.kind) {
            r.error(
                &format!("gpus[{i}].type"),
                format!(
                    "`{}` is not an accelerator type like nvidia-tesla-t4",
                    gpu.kind
                ),
            );
        }
        r.range(&format!("gpus[{i}].count"), u64::from(gpu.count), 1, 16);
    }
    for (k, v) in &g.labels {
        if !is_label(k, true) || !is_label(v, false) {
            r.error(
                &format!("labels.{k}"),
                "label keys and values are lowercase letters, digits, `_` and `-`, at most 63 (keys start with a letter)",
            );
        }
        if k.starts_with("runnerctl-") {
            r.error(
                &format!("labels.{k}"),
                "`runnerctl-` labels are runnerctl's own",
            );
        }
    }
}

#[async_trait::async_trait]
impl Kind for GcpKind {
    fn schema(&self) -> &dyn Schema {
        self
    }
    fn boot_style(&self) -> BootStyle {
        BootStyle::Vm
    }
    fn identity_proof(&self) -> crate::bootstrap::Proof {
        crate::bootstrap::Proof::GceIdentityToken
    }
    fn credential_delivery(&self, _: &BackendSettings, _: &str, _: &str) -> String {
        "through the credential broker only: the instance's metadata carries a one-time token, redeemed once from the instance's address (and, with a service account, with its identity token)".into()
    }
    async fn build(&self, cx: BuildContext) -> Result<Arc<dyn Backend>> {
        let settings = cx
            .settings
            .get::<GcpSettings>()
            .cloned()
            .unwrap_or_default();
        Ok(Arc::new(
            GcpBackend::connect(&cx.name, &cx.manager, &settings).await?,
        ))
    }
}
