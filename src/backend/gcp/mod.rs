//! The Google Compute Engine backend: one instance per runner, over `google-cloud-compute-v1`
//! (REST/JSON) with Application Default Credentials, a key file, or none (a test endpoint).
//!
//! - Create: `instances.insert` in the first configured zone, named after the runner (GCE's
//!   name rules), with the group's spec (machine and disk types as zonal URLs), labels
//!   `runnerctl-manager`/`-group`/`-runner`, the same three as metadata (exact, for ownership
//!   checks) and the cloud-init bootstrap as `user-data`. The insert carries a `requestId`
//!   derived from the manager, runner, zone and provisioning model, so a retried insert makes no
//!   second instance; an instance of that name already there (`alreadyExists`) is returned. The
//!   operation is polled (`zoneOperations.get`) until DONE or the operation deadline, and its
//!   error is classified like a call's.
//! - The credential never travels in metadata (anyone allowed `compute.instances.get` reads
//!   it): a GCP group needs the credential broker, and its metadata carries only the one-time
//!   token the instance redeems from its own internal address.
//! - Spot: `provisioningModel: SPOT`, `instanceTerminationAction: DELETE`; a capacity or quota
//!   refusal moves to the next zone, and after every zone to standard capacity when the group
//!   allows it (counted and reported like EC2's fallbacks).
//! - Delete: `instances.delete` (the boot disk is auto-deleted with it) after checking the
//!   instance is ours; gone (404) is success. An instance's id is `ZONE/NAME`.
//! - List: `instances.aggregatedList` filtered by the manager label, every page, every zone.
//! - Errors: 429, 5xx, `rateLimitExceeded`, capacity and network trouble are transient; the
//!   rest (a bad image, machine type, network, a permission) is permanent, with GCP's reason
//!   and the group. (Compute's error bodies carry no `status`: classification uses the HTTP
//!   status and `errors[].reason`.)

mod config;
pub mod fake;

use super::{
    Backend, BackendError, CreateRequest, Instance, InstanceState, Result, TAG_GROUP, TAG_MANAGER,
    TAG_RUNNER,
};
use crate::bootstrap;
pub use config::{is_label, is_resource_name, GcpKind, GcpSettings, GcpSpec, Gpu, WarmStop, KIND};
use google_cloud_compute_v1::client::Instances;
use google_cloud_compute_v1::model::{
    self as gce, access_config, attached_disk, operation, scheduling, AcceleratorConfig,
    AccessConfig, AttachedDisk, AttachedDiskInitializeParams, Metadata, NetworkInterface,
    Scheduling, ServiceAccount, Tags,
};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Reasons and operation error codes worth retrying (throttling, capacity, Google's trouble).
const TRANSIENT_REASONS: [&str; 9] = [
    "rateLimitExceeded",
    "userRateLimitExceeded",
    "quotaExceeded",
    "backendError",
    "internalError",
    "ZONE_RESOURCE_POOL_EXHAUSTED",
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
    "QUOTA_EXCEEDED",
    "RESOURCE_OPERATION_RATE_EXCEEDED",
];

/// Refusals for want of capacity or quota in a zone: another zone, or standard capacity, may
/// still have it.
const CAPACITY_REFUSALS: [&str; 6] = [
    "ZONE_RESOURCE_POOL_EXHAUSTED",
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
    "QUOTA_EXCEEDED",
    "quotaExceeded",
    "resourcePoolExhausted",
    "STOCKOUT",
];

/// GCE's largest page of a list.
const PAGE: u32 = 500;
/// One call's ceiling (a black-holed connection must not hold a worker for ever).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

pub struct GcpBackend {
    name: String,
    manager: String,
    project: String,
    zones: Vec<String>,
    operation_timeout: Duration,
    client: Instances,
    spot_fallbacks: AtomicU64,
}

/// A failed call as GCE reported it: HTTP status (when there was an answer), reason, message.
#[derive(Debug, Clone)]
struct Refusal {
    status: Option<u16>,
    reason: String,
    message: String,
}

impl Refusal {
    fn of(e: &google_cloud_gax::error::Error) -> Refusal {
        let status = e.http_status_code();
        let from_status = e.status().map(|s| {
            let reason = s.details.iter().find_map(|d| match d {
                google_cloud_gax::error::rpc::StatusDetails::ErrorInfo(i)
                    if !i.reason.is_empty() =>
                {
                    Some(i.reason.clone())
                }
                _ => None,
            });
            (reason, s.message.clone())
        });
        let (reason, message) = match from_status {
            Some((reason, message)) => (reason, message),
            None => (None, e.to_string()),
        };
        let reason = reason.unwrap_or_else(|| match status {
            Some(s) => format!("HTTP_{s}"),
            None if e.is_timeout() => "Timeout".into(),
            None if e.is_authentication() => "NoCredentials".into(),
            None => "Unreachable".into(),
        });
        Refusal {
            status,
            reason,
            message,
        }
    }

    fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }

    fn is_capacity(&self) -> bool {
        CAPACITY_REFUSALS.contains(&self.reason.as_str())
    }

    fn is_transient(&self) -> bool {
        match self.status {
            None => self.reason != "NoCredentials",
            Some(429) | Some(500..=599) => true,
            Some(_) => TRANSIENT_REASONS.contains(&self.reason.as_str()),
        }
    }
}

impl GcpBackend {
    /// Connects with the configured credentials, at `settings.endpoint_url` when set.
    pub async fn connect(name: &str, manager: &str, settings: &GcpSettings) -> Result<Self> {
        let fail = |code: &str, message: String| BackendError::Permanent {
            backend: name.to_string(),
            code: code.into(),
            message,
        };
        let credentials = credentials(settings).map_err(|m| fail("NoCredentials", m))?;
        let mut builder = Instances::builder().with_credentials(credentials);
        if let Some(u) = &settings.endpoint_url {
            builder = builder.with_endpoint(u.trim_end_matches('/'));
        }
        let client = builder.build().await.map_err(|e| {
            fail(
                "ClientError",
                format!("cannot build the Compute client: {e}"),
            )
        })?;
        Ok(GcpBackend {
            name: name.to_string(),
            manager: manager.to_string(),
            project: settings.project.clone(),
            zones: settings.zones.clone(),
            operation_timeout: settings.operation_timeout(),
            client,
            spot_fallbacks: AtomicU64::new(0),
        })
    }

    /// How many creates fell back from Spot to standard since this backend was built.
    pub fn spot_fallbacks(&self) -> u64 {
        self.spot_fallbacks.load(Ordering::Relaxed)
    }

    fn error(&self, group: Option<&str>, r: &Refusal) -> BackendError {
        let scope = group.map(|g| format!("group `{g}`: ")).unwrap_or_default();
        let message = format!("{scope}{}", r.message);
        if r.is_transient() {
            BackendError::Transient {
                backend: self.name.clone(),
                code: r.reason.clone(),
                message,
            }
        } else {
            BackendError::Permanent {
                backend: self.name.clone(),
                code: r.reason.clone(),
                message,
            }
        }
    }

    /// The instance of this name in this zone, whoever owns it; `None` when there is none.
    async fn fetch(
        &self,
        zone: &str,
        name: &str,
    ) -> std::result::Result<Option<gce::Instance>, Refusal> {
        let call = self
            .client
            .get()
            .set_project(&self.project)
            .set_zone(zone)
            .set_instance(name)
            .send();
        match bounded(call).await {
            Ok(i) => Ok(Some(i)),
            Err(r) if r.is_not_found() => Ok(None),
            Err(r) => Err(r),
        }
    }

    /// Waits for a zonal operation to be DONE; its error, if any, as a refusal.
    async fn wait(&self, zone: &str, op: gce::Operation) -> std::result::Result<(), Refusal> {
        let deadline = tokio::time::Instant::now() + self.operation_timeout;
        let mut op = op;
        let mut pause = Duration::from_millis(200);
        loop {
            if op.status == Some(operation::Status::Done) {
                return match op.error.as_ref().and_then(|e| e.errors.first()) {
                    None => Ok(()),
                    Some(e) => Err(Refusal {
                        status: op.http_error_status_code.map(|c| c as u16),
                        reason: e.code.clone().unwrap_or_else(|| "OperationFailed".into()),
                        message: e
                            .message
                            .clone()
                            .or(op.http_error_message.clone())
                            .unwrap_or_default(),
                    }),
                };
            }
            if tokio::time::Instant::now() + pause > deadline {
                return Err(Refusal {
                    status: None,
                    reason: "OperationTimeout".into(),
                    message: format!(
                        "operation {} not done after {}s",
                        op.name.clone().unwrap_or_default(),
                        self.operation_timeout.as_secs()
                    ),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
            let Some(name) = op.name.clone() else {
                return Ok(());
            };
            let call = self
                .client
                .get_operation()
                .set_project(&self.project)
                .set_zone(zone)
                .set_operation(name)
                .send();
            op = bounded(call).await?;
        }
    }

    /// The instance a spec describes, in one zone.
    fn body(&self, req: &CreateRequest, spec: &GcpSpec, zone: &str, spot: bool) -> gce::Instance {
        let name = instance_name(&req.runner_name);
        let mut labels: std::collections::HashMap<String, String> = spec
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut items = Vec::new();
        for (k, v) in req.tags.pairs() {
            labels.insert(k.to_string(), label_value(v));
            items.push(gce::metadata::Items::new().set_key(k).set_value(v));
        }
        // A stopped warm pool's instance says how it is to be stopped.
        if req.warm == Some(crate::model::Pool::Stopped) {
            labels.insert(LABEL_WARM_STOP.into(), spec.warm_stop.as_str().into());
        }
        if let Some(u) = &req.boot.user_data {
            items.push(
                gce::metadata::Items::new()
                    .set_key("user-data")
                    .set_value(u.expose()),
            );
        }
        let disk = AttachedDisk::new()
            .set_boot(true)
            .set_auto_delete(true)
            .set_type(attached_disk::Type::Persistent)
            .set_initialize_params(
                AttachedDiskInitializeParams::new()
                    .set_source_image(spec.source_image())
                    .set_disk_size_gb(i64::from(spec.disk_size_gb))
                    .set_disk_type(format!("zones/{zone}/diskTypes/{}", spec.disk_type))
                    .set_labels(labels.clone()),
            );
        let mut nic = NetworkInterface::new().set_network(network_url(spec));
        if let Some(s) = &spec.subnetwork {
            nic = nic.set_subnetwork(subnetwork_url(s, zone));
        }
        if spec.external_ip {
            nic = nic.set_access_configs([AccessConfig::new()
                .set_name("External NAT")
                .set_type(access_config::Type::OneToOneNat)]);
        }
        let mut scheduling = Scheduling::new();
        if spot {
            scheduling = scheduling
                .set_provisioning_model(scheduling::ProvisioningModel::Spot)
                .set_instance_termination_action(scheduling::InstanceTerminationAction::Delete)
                .set_automatic_restart(false)
                .set_on_host_maintenance(scheduling::OnHostMaintenance::Terminate);
        } else {
            scheduling = scheduling.set_provisioning_model(scheduling::ProvisioningModel::Standard);
        }
        if !spec.gpus.is_empty() {
            // GPUs cannot live-migrate.
            scheduling =
                scheduling.set_on_host_maintenance(scheduling::OnHostMaintenance::Terminate);
        }
        let mut instance = gce::Instance::new()
            .set_name(name)
            .set_machine_type(format!("zones/{zone}/machineTypes/{}", spec.machine_type))
            .set_labels(labels)
            .set_metadata(Metadata::new().set_items(items))
            .set_disks([disk])
            .set_network_interfaces([nic])
            .set_scheduling(scheduling)
            .set_guest_accelerators(spec.gpus.iter().map(|g| {
                AcceleratorConfig::new()
                    .set_accelerator_type(format!("zones/{zone}/acceleratorTypes/{}", g.kind))
                    .set_accelerator_count(g.count.min(i32::MAX as u32) as i32)
            }));
        if !spec.tags.is_empty() {
            instance = instance.set_tags(Tags::new().set_items(spec.tags.clone()));
        }
        if let Some(sa) = &spec.service_account {
            let scopes = if spec.scopes.is_empty() {
                vec!["https://www.googleapis.com/auth/cloud-platform".to_string()]
            } else {
                spec.scopes.clone()
            };
            instance = instance
                .set_service_accounts([ServiceAccount::new().set_email(sa).set_scopes(scopes)]);
        }
        instance
    }

    /// One insert in one zone, waited for; the instance made (or found under that name).
    async fn insert(
        &self,
        req: &CreateRequest,
        spec: &GcpSpec,
        zone: &str,
        spot: bool,
    ) -> std::result::Result<Instance, Refusal> {
        let name = instance_name(&req.runner_name);
        let call = self
            .client
            .insert()
            .set_project(&self.project)
            .set_zone(zone)
            .set_request_id(self.request_id(&req.runner_name, zone, spot))
            .set_body(self.body(req, spec, zone, spot))
            .send();
        match bounded(call).await {
            Ok(op) => self.wait(zone, op).await?,
            // Made by an earlier attempt (or another worker): that one is the runner's.
            Err(r) if r.status == Some(409) => {}
            Err(r) => return Err(r),
        }
        match self.fetch(zone, &name).await? {
            Some(i) => self.convert(&i).ok_or(Refusal {
                status: Some(409),
                reason: "alreadyExists".into(),
                message: format!(
                    "an instance named `{name}` exists in {zone} and is not this manager's"
                ),
            }),
            None => Err(Refusal {
                status: None,
                reason: "InstanceVanished".into(),
                message: format!("`{name}` was inserted in {zone} but is gone (preempted?)"),
            }),
        }
    }

    /// The idempotency key of one insert (a UUID, as GCE requires): the same for every retry.
    pub fn request_id(&self, runner: &str, zone: &str, spot: bool) -> String {
        let mut h = Sha256::new();
        for part in [
            self.manager.as_str(),
            runner,
            zone,
            if spot { "spot" } else { "standard" },
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        let d = h.finalize();
        let mut b = [0u8; 16];
        b.copy_from_slice(&d[..16]);
        b[6] = (b[6] & 0x0f) | 0x40; // version 4 layout
        b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    }

    /// The runner's instance in any configured zone, when one exists.
    async fn find_runner(&self, runner: &str, group: &str) -> Result<Option<Instance>> {
        let name = instance_name(runner);
        for zone in &self.zones {
            match self.fetch(zone, &name).await {
                Ok(Some(i)) => return Ok(self.convert(&i)),
                Ok(None) => {}
                Err(r) => return Err(self.error(Some(group), &r)),
            }
        }
        Ok(None)
    }

    /// A GCE instance as runnerctl sees it; `None` when it is not this manager's.
    fn convert(&self, i: &gce::Instance) -> Option<Instance> {
        let tags = tags_of(i);
        if tags.get(TAG_MANAGER) != Some(&self.manager) {
            return None;
        }
        let zone = i.zone.as_deref().map(last_segment)?;
        let name = i.name.as_deref()?;
        use gce::instance::Status as S;
        let state = match i.status.as_ref() {
            Some(S::Provisioning | S::Staging | S::Pending) => InstanceState::Pending,
            Some(S::Running) => InstanceState::Running,
            Some(S::Stopping | S::Suspending | S::PendingStop | S::Deprovisioning) => {
                InstanceState::Stopping
            }
            Some(S::Stopped | S::Suspended | S::Terminated) => InstanceState::Stopped,
            _ => InstanceState::Unknown,
        };
        Some(Instance {
            id: format!("{zone}/{name}"),
            state,
            tags,
            created_at: i
                .creation_timestamp
                .as_deref()
                .and_then(crate::model::parse_rfc3339),
            spot_fallback: false,
            // The runner's traffic to the broker comes from its internal address.
            address: i
                .network_interfaces
                .first()
                .and_then(|n| n.network_ip.clone()),
            // With a service account the instance can prove itself with its identity token.
            identity: match (i.service_accounts.is_empty(), i.id) {
                (false, Some(id)) => Some(crate::model::gce_identity(
                    &self.project,
                    zone,
                    name,
                    &id.to_string(),
                )),
                _ => None,
            },
        })
    }

    async fn create_in_zones(
        &self,
        req: &CreateRequest,
        spec: &GcpSpec,
        spot: bool,
    ) -> std::result::Result<Instance, Refusal> {
        let mut last = None;
        for zone in &self.zones {
            match self.insert(req, spec, zone, spot).await {
                Err(r) if r.is_capacity() => {
                    tracing::warn!(
                        backend = %self.name,
                        group = %req.tags.group,
                        runner = %req.runner_name,
                        zone = %zone,
                        reason = %r.reason,
                        spot,
                        "no capacity in the zone; trying the next"
                    );
                    last = Some(r);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or(Refusal {
            status: None,
            reason: "NoZones".into(),
            message: "no zone is configured".into(),
        }))
    }
}

#[async_trait::async_trait]
impl Backend for GcpBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static dyn super::Kind {
        &KIND
    }

    async fn create(&self, req: &CreateRequest) -> Result<Instance> {
        let group = req.tags.group.as_str();
        let permanent = |code: &str, message: String| BackendError::Permanent {
            backend: self.name.clone(),
            code: code.into(),
            message: format!("group `{group}`: {message}"),
        };
        let Some(spec) = req.spec.get::<GcpSpec>() else {
            return Err(permanent(
                "SpecMismatch",
                "its spec is not a GCP spec".into(),
            ));
        };
        if req.boot.files.iter().any(|f| bootstrap::is_secret(&f.path)) {
            return Err(permanent(
                "NeedsBroker",
                "a GCP instance's metadata is readable by anyone allowed compute.instances.get: configure the credential broker (`broker:`), through which the runner's credential travels".into(),
            ));
        }
        if let Some(i) = self.find_runner(&req.runner_name, group).await? {
            return Ok(i);
        }
        let made = match self.create_in_zones(req, spec, spec.spot).await {
            Err(r) if spec.spot && spec.spot_fallback_standard && r.is_capacity() => {
                self.spot_fallbacks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    backend = %self.name,
                    group = %group,
                    runner = %req.runner_name,
                    reason = %r.reason,
                    "Spot capacity refused in every zone; falling back to standard"
                );
                self.create_in_zones(req, spec, false)
                    .await
                    .map(|i| Instance {
                        spot_fallback: true,
                        ..i
                    })
            }
            other => other,
        };
        made.map_err(|r| self.error(Some(group), &r))
    }

    async fn delete(&self, id: &str) -> Result<()> {
        // Not an id of ours (`ZONE/NAME`): nothing of ours to delete, and nothing is asked.
        let Some((zone, name)) = split_id(id) else {
            return Ok(());
        };
        let found = self
            .fetch(zone, name)
            .await
            .map_err(|r| self.error(None, &r))?;
        let Some(found) = found else {
            return Ok(());
        };
        let Some(ours) = self.convert(&found) else {
            return Ok(()); // not ours: left alone
        };
        let group = ours.group().map(str::to_string);
        let call = self
            .client
            .delete()
            .set_project(&self.project)
            .set_zone(zone)
            .set_instance(name)
            .send();
        let result = match bounded(call).await {
            Ok(op) => self.wait(zone, op).await,
            Err(r) => Err(r),
        };
        match result {
            Ok(()) => Ok(()),
            Err(r) if r.is_not_found() => Ok(()),
            Err(r) => Err(self.error(group.as_deref(), &r)),
        }
    }

    /// `instances.suspend` (or `stop`, as the instance's label says, from the spec's
    /// `warm_stop`); an instance suspended or stopped already is left so.
    async fn stop(&self, id: &str) -> Result<()> {
        use gce::instance::Status as S;
        let (zone, name, group, found) = self.ours(id).await?;
        let verb = match found.labels.get(LABEL_WARM_STOP).map(String::as_str) {
            Some("stop") => "stop",
            _ => "suspend",
        };
        let deadline = tokio::time::Instant::now() + self.operation_timeout;
        let mut status = found.status;
        loop {
            match status {
                Some(S::Suspended | S::Stopped | S::Terminated) => return Ok(()),
                Some(S::Running) => {
                    return self
                        .power(&zone, &name, verb)
                        .await
                        .map_err(|r| self.error(group.as_deref(), &r))
                }
                // Booting, or on its way to stopping already: looked at again.
                _ if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    status = self
                        .fetch(&zone, &name)
                        .await
                        .map_err(|r| self.error(group.as_deref(), &r))?
                        .ok_or_else(|| BackendError::NotFound {
                            backend: self.name.clone(),
                            id: id.to_string(),
                        })?
                        .status;
                }
                other => {
                    return Err(BackendError::Transient {
                        backend: self.name.clone(),
                        code: "StopTimeout".into(),
                        message: format!("instance `{id}` stayed {other:?}; it was not {verb}ed"),
                    })
                }
            }
        }
    }

    /// `instances.resume` a suspended instance, `instances.start` a stopped one; a running
    /// one is left so.
    async fn start(&self, id: &str) -> Result<()> {
        use gce::instance::Status as S;
        let (zone, name, group, found) = self.ours(id).await?;
        let verb = match found.status {
            Some(S::Suspended | S::Suspending) => "resume",
            Some(S::Stopped | S::Terminated | S::Stopping) => "start",
            _ => return Ok(()),
        };
        self.power(&zone, &name, verb)
            .await
            .map_err(|r| self.error(group.as_deref(), &r))
    }

    async fn get(&self, id: &str) -> Result<Option<Instance>> {
        let Some((zone, name)) = split_id(id) else {
            return Ok(None);
        };
        let found = self
            .fetch(zone, name)
            .await
            .map_err(|r| self.error(None, &r))?;
        Ok(found.and_then(|i| self.convert(&i)))
    }

    async fn list(&self) -> Result<Vec<Instance>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut call = self
                .client
                .aggregated_list()
                .set_project(&self.project)
                .set_filter(format!(
                    "labels.{TAG_MANAGER} = \"{}\"",
                    label_value(&self.manager)
                ))
                .set_max_results(PAGE);
            if let Some(t) = &token {
                call = call.set_page_token(t);
            }
            let page = bounded(call.send())
                .await
                .map_err(|r| self.error(None, &r))?;
            for scoped in page.items.values() {
                out.extend(scoped.instances.iter().filter_map(|i| self.convert(i)));
            }
            match page.next_page_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

/// The label of a stopped warm pool's instance naming how it is stopped (`suspend`, `stop`).
pub const LABEL_WARM_STOP: &str = "runnerctl-warm-stop";

impl GcpBackend {
    /// The instance `id` when it is this manager's: its zone, name, group and GCE form; not
    /// found otherwise (another's instance is never stopped or started).
    async fn ours(&self, id: &str) -> Result<(String, String, Option<String>, gce::Instance)> {
        let not_found = || BackendError::NotFound {
            backend: self.name.clone(),
            id: id.to_string(),
        };
        let (zone, name) = split_id(id).ok_or_else(not_found)?;
        let found = self
            .fetch(zone, name)
            .await
            .map_err(|r| self.error(None, &r))?
            .ok_or_else(not_found)?;
        let ours = self.convert(&found).ok_or_else(not_found)?;
        let group = ours.group().map(str::to_string);
        Ok((zone.to_string(), name.to_string(), group, found))
    }

    /// Runs one of `suspend`, `resume`, `stop`, `start` on instance `zone/name` and waits for
    /// its operation.
    async fn power(&self, zone: &str, name: &str, verb: &str) -> std::result::Result<(), Refusal> {
        let (p, z, n) = (self.project.as_str(), zone, name);
        let op = match verb {
            "suspend" => {
                bounded(
                    self.client
                        .suspend()
                        .set_project(p)
                        .set_zone(z)
                        .set_instance(n)
                        .send(),
                )
                .await?
            }
            "resume" => {
                bounded(
                    self.client
                        .resume()
                        .set_project(p)
                        .set_zone(z)
                        .set_instance(n)
                        .send(),
                )
                .await?
            }
            "stop" => {
                bounded(
                    self.client
                        .stop()
                        .set_project(p)
                        .set_zone(z)
                        .set_instance(n)
                        .send(),
                )
                .await?
            }
            _ => {
                bounded(
                    self.client
                        .start()
                        .set_project(p)
                        .set_zone(z)
                        .set_instance(n)
                        .send(),
                )
                .await?
            }
        };
        self.wait(zone, op).await
    }
}

/// The zone and name of an instance id (`ZONE/NAME`), when it is one.
fn split_id(id: &str) -> Option<(&str, &str)> {
    id.split_once('/')
        .filter(|(zone, name)| is_resource_name(zone) && is_resource_name(name))
}

/// A call with a ceiling; its failure as a refusal.
async fn bounded<T>(
    call: impl std::future::Future<Output = google_cloud_compute_v1::Result<T>>,
) -> std::result::Result<T, Refusal> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Refusal::of(&e)),
        Err(_) => Err(Refusal {
            status: None,
            reason: "Timeout".into(),
            message: format!(
                "no answer from Compute Engine within {}s",
                CALL_TIMEOUT.as_secs()
            ),
        }),
    }
}

/// The credentials the settings ask for.
fn credentials(
    s: &GcpSettings,
) -> std::result::Result<google_cloud_auth::credentials::Credentials, String> {
    use google_cloud_auth::credentials;
    if s.anonymous {
        return Ok(credentials::anonymous::Builder::new().build());
    }
    let Some(path) = &s.credentials_file else {
        return credentials::Builder::default()
            .build()
            .map_err(|e| format!("no Application Default Credentials: set GOOGLE_APPLICATION_CREDENTIALS, `credentials_file`, or run on GCE with a service account ({e})"));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("`{}` is not a JSON key file: {e}", path.display()))?;
    let built = match json.get("type").and_then(|t| t.as_str()) {
        Some("service_account") => credentials::service_account::Builder::new(json).build(),
        Some("authorized_user") => credentials::user_account::Builder::new(json).build(),
        other => {
            return Err(format!(
                "`{}`: a key file of type {other:?} is not supported (service_account or authorized_user)",
                path.display()
            ))
        }
    };
    built.map_err(|e| format!("`{}`: {e}", path.display()))
}

/// The owner tags of an instance: its `runnerctl-*` metadata (exact), else its labels.
fn tags_of(i: &gce::Instance) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    for key in [TAG_MANAGER, TAG_GROUP, TAG_RUNNER] {
        let from_metadata = i
            .metadata
            .as_ref()
            .and_then(|m| m.items.iter().find(|it| it.key.as_deref() == Some(key)))
            .and_then(|it| it.value.clone());
        if let Some(v) = from_metadata.or_else(|| i.labels.get(key).cloned()) {
            tags.insert(key.to_string(), v);
        }
    }
    tags
}

/// The instance name of a runner: GCE's rules (lowercase letters, digits, dashes, starting
/// with a letter, at most 63); a name that had to be shortened keeps a digest of the original.
pub fn instance_name(runner: &str) -> String {
    let mut s: String = runner
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-') => c,
            _ => '-',
        })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        s.insert_str(0, "r-");
    }
    let trimmed = s.trim_end_matches('-');
    if trimmed == runner && trimmed.len() <= 63 {
        return s;
    }
    let d = Sha256::digest(runner.as_bytes());
    let hex: String = d[..4].iter().map(|b| format!("{b:02x}")).collect();
    let mut head = trimmed.to_string();
    head.truncate(54);
    format!("{}-{hex}", head.trim_end_matches('-'))
}

/// A label value of GCE's rules (lowercase letters, digits, `_`, `-`, at most 63).
pub fn label_value(v: &str) -> String {
    v.chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '_') => c,
            _ => '_',
        })
        .take(63)
        .collect()
}

fn network_url(spec: &GcpSpec) -> String {
    let n = spec.network.as_deref().unwrap_or("default");
    if n.contains('/') {
        n.to_string()
    } else {
        format!("global/networks/{n}")
    }
}

fn subnetwork_url(s: &str, zone: &str) -> String {
    if s.contains('/') {
        return s.to_string();
    }
    // europe-west1-b is in europe-west1.
    let region = zone.rsplit_once('-').map_or(zone, |(r, _)| r);
    format!("regions/{region}/subnetworks/{s}")
}

fn last_segment(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_follow_gce_rules() {
        assert_eq!(instance_name("rm-linux-3f2a"), "rm-linux-3f2a");
        let long = format!("rm-{}", "x".repeat(80));
        let n = instance_name(&long);
        assert!(n.len() <= 63 && is_resource_name(&n), "{n}");
        assert_ne!(
            instance_name(&format!("{long}a")),
            instance_name(&format!("{long}b"))
        );
        for odd in ["Rm_Linux", "9lives", "a.b", "ends-"] {
            let n = instance_name(odd);
            assert!(is_resource_name(&n), "{odd} -> {n}");
        }
        assert_ne!(instance_name("Rm_Linux"), instance_name("rm-linux"));
    }

    #[test]
    fn label_values_follow_gce_rules() {
        assert_eq!(label_value("Rm.Linux"), "rm_linux");
        assert_eq!(label_value(&"a".repeat(70)).len(), 63);
    }
}
