//! `kind: vsphere`: the vSphere backend's part of the configuration and its registration.

use super::VsphereBackend;
use crate::backend::{Backend, BackendSettings, BootStyle, BuildContext, Kind, Result};
use crate::config::{Reader, Schema, Secret, SecretSource, Typed};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

pub struct VsphereKind;
pub static KIND: VsphereKind = VsphereKind;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct VsphereSettings {
    /// The vCenter's SDK endpoint, `https://vcenter.example.com/sdk`.
    pub url: String,
    /// The user runnerctl logs in as (`runnerctl@vsphere.local`).
    pub user: String,
    /// Its password: `password_env` (a variable) or `password_file` (a file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// PEM file of the CA that signed the vCenter's certificate (VMCA's root, from
    /// `https://VCENTER/certs/download.zip`); by default the system's trusted roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The SHA-256 fingerprint of the vCenter's certificate (hex, colons allowed): that
    /// certificate only is accepted, whoever signed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbprint: Option<String>,
    /// Accept any certificate, or plain `http://`: only for a local simulator.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// The VM folder runners are made in and listed from (inventory path, `/DC/vm/runners`).
    pub folder: String,
    /// The resource pool they run in (`/DC/host/CLUSTER/Resources`, or a pool below it).
    pub resource_pool: String,
    /// The datastore their disks go to (`/DC/datastore/NAME`); by default the template's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datastore: Option<String>,
    /// How long a vCenter task (clone, power on, destroy) may take. Default: 10m.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_timeout: Option<crate::config::Duration>,
    /// How long a new VM may take to report its IP address through VMware Tools (the broker
    /// binds the runner's credential to it). Default: 10m.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address_timeout: Option<crate::config::Duration>,
}

impl VsphereSettings {
    pub fn task_timeout(&self) -> std::time::Duration {
        self.task_timeout
            .map(Into::into)
            .unwrap_or(std::time::Duration::from_secs(600))
    }
    pub fn address_timeout(&self) -> std::time::Duration {
        self.address_timeout
            .map(Into::into)
            .unwrap_or(std::time::Duration::from_secs(600))
    }
    pub fn password_source(&self) -> Option<SecretSource> {
        crate::config::secret_source(&self.password, &self.password_env, &self.password_file)
            .ok()
            .flatten()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VsphereSpec {
    /// The VM or template cloned for each runner (inventory path, `/DC/vm/templates/ubuntu-24.04`).
    pub template: String,
    /// Clone linked to this snapshot of the template (its disks are not copied: seconds instead
    /// of minutes). Default: a full clone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Virtual CPUs. Default: the template's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Memory in MiB. Default: the template's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    /// The network of the first network card (inventory path of a port group,
    /// `/DC/network/VM Network`). Default: the template's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

impl VsphereSpec {
    pub fn typed(self) -> Typed {
        Typed::new("vsphere", self)
    }
}

/// A SHA-256 fingerprint written as hex, with or without colons, as bytes.
pub fn parse_thumbprint(s: &str) -> Option<[u8; 32]> {
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn inventory_path(r: &mut Reader<'_, '_>, field: &str, value: &str, example: &str) {
    if value.trim().is_empty() {
        r.error(
            field,
            format!("required field is missing (an inventory path like {example})"),
        );
    } else if !value.starts_with('/') || value.ends_with('/') || value.contains("//") {
        r.error(
            field,
            format!("`{value}` is not an inventory path like {example}"),
        );
    }
}

impl Schema for VsphereKind {
    fn kind(&self) -> &'static str {
        "vsphere"
    }

    fn warm_pools(&self) -> (bool, bool) {
        (true, true)
    }

    fn warm_needs_broker(&self) -> bool {
        true
    }

    fn settings(&self, r: &mut Reader<'_, '_>, value: serde_yaml::Value) -> Option<Typed> {
        let s: VsphereSettings = r.de(value)?;
        match s.url.split_once("://") {
            _ if s.url.trim().is_empty() => r.required("url", &s.url),
            Some(("https", rest)) if !rest.is_empty() => {}
            Some(("http", rest)) if !rest.is_empty() => {
                if !s.insecure {
                    r.error("url", "plain http:// sends the password in clear: use https://, or set `insecure: true` for a local simulator");
                }
            }
            _ => r.error(
                "url",
                format!(
                    "`{}` is not a URL like https://vcenter.example.com/sdk",
                    s.url
                ),
            ),
        }
        r.required("user", &s.user);
        if r.secret("password", &s.password, &s.password_env, &s.password_file)
            .is_none()
            && !r.has_problem("password")
        {
            r.error(
                "password",
                "required field is missing (`password_env` or `password_file`)",
            );
        }
        if let Some(t) = &s.thumbprint {
            if parse_thumbprint(t).is_none() {
                r.error(
                    "thumbprint",
                    format!("`{t}` is not a SHA-256 fingerprint (64 hex digits, colons allowed)"),
                );
            }
        }
        if s.insecure && (s.thumbprint.is_some() || s.ca_file.is_some()) {
            r.error(
                "insecure",
                "`insecure` accepts any certificate: it excludes `thumbprint` and `ca_file`",
            );
        }
        if s.thumbprint.is_some() && s.ca_file.is_some() {
            r.error("thumbprint", "give `thumbprint` or `ca_file`, not both");
        }
        if let Some(p) = &s.ca_file {
            if let Err(e) = std::fs::metadata(p) {
                r.error("ca_file", format!("cannot read `{}`: {e}", p.display()));
            }
        }
        inventory_path(r, "folder", &s.folder, "/DC/vm/runners");
        inventory_path(
            r,
            "resource_pool",
            &s.resource_pool,
            "/DC/host/CLUSTER/Resources",
        );
        if let Some(d) = &s.datastore {
            inventory_path(r, "datastore", d, "/DC/datastore/NAME");
        }
        if let Some(t) = s.task_timeout {
            let t: std::time::Duration = t.into();
            r.range("task_timeout", t.as_secs(), 10, 6 * 3600);
        }
        if let Some(t) = s.address_timeout {
            let t: std::time::Duration = t.into();
            r.range("address_timeout", t.as_secs(), 10, 6 * 3600);
        }
        Some(Typed::new("vsphere", s))
    }

    fn spec(&self, r: &mut Reader<'_, '_>, value: serde_yaml::Value) -> Option<Typed> {
        if value.is_null() {
            r.error(
                "",
                "required field is missing (the VM spec for a `vsphere` backend)",
            );
            return None;
        }
        let g: VsphereSpec = r.de(value)?;
        inventory_path(r, "template", &g.template, "/DC/vm/templates/ubuntu-24.04");
        if let Some(s) = &g.snapshot {
            r.required("snapshot", s);
        }
        if let Some(c) = g.cpus {
            r.range("cpus", u64::from(c), 1, 768);
        }
        if let Some(m) = g.memory_mb {
            r.range("memory_mb", u64::from(m), 256, 24 * 1024 * 1024);
        }
        if let Some(n) = &g.network {
            inventory_path(r, "network", n, "/DC/network/VM Network");
        }
        Some(g.typed())
    }

    fn secrets(&self, settings: &Typed) -> Vec<(&'static str, SecretSource)> {
        settings
            .get::<VsphereSettings>()
            .and_then(VsphereSettings::password_source)
            .map(|s| vec![("password", s)])
            .unwrap_or_default()
    }

    fn needs_broker(&self) -> Option<&'static str> {
        Some("a VM's guestinfo (extraConfig) is readable by any vSphere user who may read the VM")
    }
}

#[async_trait::async_trait]
impl Kind for VsphereKind {
    fn schema(&self) -> &dyn Schema {
        self
    }
    fn boot_style(&self) -> BootStyle {
        BootStyle::Vm
    }
    fn credential_delivery(&self, _: &BackendSettings, _: &str, _: &str) -> String {
        "through the credential broker only: guestinfo.userdata carries a one-time token, redeemed once from the address VMware Tools reports for the VM".into()
    }
    async fn build(&self, cx: BuildContext) -> Result<Arc<dyn Backend>> {
        let settings = cx
            .settings
            .get::<VsphereSettings>()
            .cloned()
            .unwrap_or_default();
        let password = cx
            .secrets
            .get("password")
            .cloned()
            .unwrap_or_else(|| Secret::new(""));
        Ok(Arc::new(
            VsphereBackend::connect(&cx.name, &cx.manager, &settings, password).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_are_sha256_hex_with_or_without_colons() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_thumbprint(&hex), Some([0xab; 32]));
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_thumbprint(&colons), Some([0xab; 32]));
        assert_eq!(parse_thumbprint("ab:cd"), None);
        assert_eq!(parse_thumbprint(&"zz".repeat(32)), None);
        // A SHA-1 thumbprint (what older vSphere tools print) is not enough.
        assert_eq!(parse_thumbprint(&"ab".repeat(20)), None);
    }
}
