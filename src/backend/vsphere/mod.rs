//! The VMware vSphere backend: one VM per runner, cloned from a template through vCenter's Web
//! Services API (SOAP; [`soap`] is the small client of it this backend needs).
//!
//! - Create: find the template, folder, resource pool (and datastore, network, snapshot) by
//!   inventory path; a VM of the runner's name already in the folder is returned when it is
//!   ours (a retried create), refused when it is not. Otherwise `CloneVM_Task` into the folder
//!   with the spec's CPUs, memory and network, as a linked clone from a snapshot when the spec
//!   names one, the bootstrap as cloud-init's `guestinfo.userdata` / `guestinfo.metadata`
//!   (base64, with their `.encoding` keys) and the owner in `runnerctl.*` extraConfig keys;
//!   then the three `runnerctl-*` custom attributes are set and the VM powered on with
//!   `PowerOnVM_Task` (not the clone spec's `powerOn`). With the broker, create waits for the
//!   address VMware Tools reports, to which the broker binds the credential.
//! - The credential never travels in guestinfo (any user who may read the VM reads its
//!   extraConfig): a vSphere group needs the credential broker.
//! - Ownership: the custom attributes, which list, get and delete check. A VM of ours whose
//!   attributes were never set (the process died between the clone and `SetField`) is known by
//!   its extraConfig keys and marked when it is next seen.
//! - Delete: power off, then `Destroy_Task`; a VM already gone is success, another's is left.
//! - List: the folder's VMs through the property collector, every page
//!   (`ContinueRetrievePropertiesEx`); templates are never ours.
//! - Tasks are polled until their deadline; faults are classified ([`classify`]): capacity and
//!   host or network trouble are transient, the rest (a bad login, a missing permission,
//!   template, folder or datastore) permanent, with the fault's name and the group.
//! - The session is renewed when vCenter forgets it, and kept alive while the backend lives.

mod config;
pub mod soap;

use super::{
    Backend, BackendError, CreateRequest, Instance, InstanceState, Result, TAG_GROUP, TAG_MANAGER,
    TAG_RUNNER,
};
use crate::bootstrap;
use crate::config::Secret;
use base64::Engine;
pub use config::{parse_thumbprint, VsphereKind, VsphereSettings, VsphereSpec, KIND};
use soap::{esc, El, MoRef, Session, SoapError, Trust};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The VM properties runnerctl reads.
const VM_PROPS: [&str; 7] = [
    "name",
    "customValue",
    "config.extraConfig",
    "config.template",
    "config.createDate",
    "runtime.powerState",
    "guest.ipAddress",
];
/// The extraConfig keys that carry the owner from the clone on.
const EXTRA_MANAGER: &str = "runnerctl.manager";
const EXTRA_GROUP: &str = "runnerctl.group";
const EXTRA_RUNNER: &str = "runnerctl.runner";
/// Objects per page of a property collector answer.
const PAGE: u32 = 500;
/// How often the session is used when nothing else uses it (vCenter's idle timeout is 30m).
const KEEPALIVE: Duration = Duration::from_secs(300);
/// Network card device types (their `xsi:type`).
const NICS: [&str; 7] = [
    "VirtualVmxnet3",
    "VirtualVmxnet3Vrdma",
    "VirtualVmxnet2",
    "VirtualVmxnet",
    "VirtualE1000e",
    "VirtualE1000",
    "VirtualPCNet32",
];

/// Faults worth retrying: capacity, host and network trouble, a busy object.
const TRANSIENT_FAULTS: [&str; 14] = [
    "InsufficientResourcesFault",
    "InsufficientHostCapacityFault",
    "InsufficientCpuResourcesFault",
    "InsufficientMemoryResourcesFault",
    "InsufficientStorageSpace",
    "HostCommunication",
    "HostNotConnected",
    "HostNotReachable",
    "NoHost",
    "Timedout",
    "TaskInProgress",
    "ConcurrentAccess",
    "NetworkDisruptedAndConfigRolledBack",
    "RequestCanceled",
];

/// Whether a failure is worth retrying, and its code (the fault's name).
pub fn classify(e: &SoapError) -> (bool, String) {
    match e {
        SoapError::Fault { name, .. } => {
            let transient = TRANSIENT_FAULTS.contains(&name.as_str())
                || (name.starts_with("Insufficient") && name.ends_with("ResourcesFault"));
            (transient, name.clone())
        }
        SoapError::Http { status, .. } => {
            (*status == 429 || *status >= 500, format!("HTTP_{status}"))
        }
        SoapError::Transport(_) => (true, "Unreachable".into()),
        SoapError::Answer(_) => (false, "BadAnswer".into()),
    }
}

/// The custom attribute keys of the three owner tags.
#[derive(Debug, Clone, Copy)]
struct Fields {
    manager: i32,
    group: i32,
    runner: i32,
}

/// A VM as read from the property collector.
#[derive(Debug, Clone, Default)]
struct Vm {
    moref: Option<MoRef>,
    props: BTreeMap<String, El>,
}

impl Vm {
    fn text(&self, prop: &str) -> Option<&str> {
        self.props.get(prop).map(|e| e.text.as_str())
    }
    /// Key/value pairs of an array property (customValue, extraConfig).
    fn pairs(&self, prop: &str) -> BTreeMap<String, String> {
        self.props
            .get(prop)
            .map(|v| {
                v.children
                    .iter()
                    .filter_map(|c| {
                        Some((
                            c.text_at(&["key"])?.to_string(),
                            c.text_at(&["value"]).unwrap_or_default().to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub struct VsphereBackend {
    name: String,
    manager: String,
    settings: VsphereSettings,
    session: Arc<Session>,
    fields: Fields,
    keepalive: tokio::task::JoinHandle<()>,
}

impl Drop for VsphereBackend {
    fn drop(&mut self) {
        self.keepalive.abort();
    }
}

/// Where create's clone goes, resolved from inventory paths.
struct Placement {
    template: MoRef,
    folder: MoRef,
    pool: MoRef,
    datastore: Option<MoRef>,
    snapshot: Option<MoRef>,
    nic: Option<String>,
}

impl VsphereBackend {
    pub async fn connect(
        name: &str,
        manager: &str,
        settings: &VsphereSettings,
        password: Secret,
    ) -> Result<Self> {
        let trust = match (&settings.thumbprint, &settings.ca_file, settings.insecure) {
            (_, _, true) => Trust::Insecure,
            (Some(t), _, _) => Trust::Pinned(parse_thumbprint(t).unwrap_or_default()),
            (None, Some(f), _) => Trust::CaFile(f.clone()),
            (None, None, false) => Trust::System,
        };
        let fail = |e: SoapError| {
            let message = match e.to_string() {
                m if m.contains(&settings.url) => m,
                m => format!("{}: {m}", settings.url),
            };
            classified(name, &e, message)
        };
        let session = Arc::new(
            Session::connect(&settings.url, &settings.user, password, &trust)
                .await
                .map_err(fail)?,
        );
        let fields = ensure_fields(&session).await.map_err(fail)?;
        let weak = Arc::downgrade(&session);
        let keepalive = tokio::spawn(async move {
            loop {
                tokio::time::sleep(KEEPALIVE).await;
                let Some(s) = weak.upgrade() else { return };
                let si = MoRef::new("ServiceInstance", "ServiceInstance");
                if let Err(e) = s.call("CurrentTime", &si, "").await {
                    tracing::debug!(error = %e, "vSphere keep-alive failed");
                }
            }
        });
        Ok(VsphereBackend {
            name: name.into(),
            manager: manager.into(),
            settings: settings.clone(),
            session,
            fields,
            keepalive,
        })
    }

    /// The requests this backend sent (the last few hundred; Login's body left out).
    pub fn recorded(&self) -> Vec<soap::Recorded> {
        self.session.recorded()
    }

    /// Ends the vCenter session.
    pub async fn logout(&self) {
        self.session.logout().await;
    }

    fn error(&self, group: Option<&str>, e: &SoapError) -> BackendError {
        let message = match group {
            Some(g) => format!("group `{g}`: {e}"),
            None => e.to_string(),
        };
        classified(&self.name, e, message)
    }

    fn permanent(&self, group: &str, code: &str, message: String) -> BackendError {
        BackendError::Permanent {
            backend: self.name.clone(),
            code: code.into(),
            message: format!("group `{group}`: {message}"),
        }
    }

    /// The object at an inventory path.
    async fn find(&self, path: &str) -> Result<Option<MoRef>, SoapError> {
        let answer = self
            .session
            .call(
                "FindByInventoryPath",
                &self.session.content().search_index,
                &format!("<inventoryPath>{}</inventoryPath>", esc(path)),
            )
            .await?;
        Ok(answer.child("returnval").and_then(El::moref))
    }

    /// A required object at an inventory path, of one of these kinds.
    async fn require(&self, group: &str, what: &str, path: &str, kinds: &[&str]) -> Result<MoRef> {
        let found = self
            .find(path)
            .await
            .map_err(|e| self.error(Some(group), &e))?;
        match found {
            Some(r) if kinds.contains(&r.kind.as_str()) => Ok(r),
            Some(r) => Err(self.permanent(
                group,
                &format!("Invalid{}", capitalized(what)),
                format!(
                    "{what} `{path}` is a {}, not a {}",
                    r.kind,
                    kinds.join(" or ")
                ),
            )),
            None => Err(self.permanent(
                group,
                &format!("{}NotFound", capitalized(what)),
                format!(
                    "{what} `{path}` is not in the inventory of {}",
                    self.settings.url
                ),
            )),
        }
    }

    /// The properties of one object; `None` when it does not exist.
    async fn props(&self, obj: &MoRef, paths: &[&str]) -> Result<Option<Vm>, SoapError> {
        let spec = format!(
            "<specSet><propSet><type>{}</type>{}</propSet><objectSet>{}<skip>false</skip></objectSet></specSet>",
            esc(&obj.kind),
            path_set(paths),
            obj.xml("obj"),
        );
        match self.retrieve(&spec).await {
            Ok(mut objects) => Ok(objects.pop().filter(|o| !o.props.is_empty())),
            Err(e) if e.fault() == Some("ManagedObjectNotFound") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every object a property filter spec selects, every page.
    async fn retrieve(&self, spec_set: &str) -> Result<Vec<Vm>, SoapError> {
        let pc = &self.session.content().property_collector;
        let mut answer = self
            .session
            .call(
                "RetrievePropertiesEx",
                pc,
                &format!("{spec_set}<options><maxObjects>{PAGE}</maxObjects></options>"),
            )
            .await?;
        let mut out = Vec::new();
        loop {
            let Some(rv) = answer.child("returnval") else {
                return Ok(out); // nothing matched
            };
            for o in rv.all("objects") {
                if o.all("missingSet").any(|m| {
                    m.at(&["fault", "fault"])
                        .and_then(|f| f.xsi_type.as_deref())
                        == Some("ManagedObjectNotFound")
                }) {
                    continue;
                }
                let props = o
                    .all("propSet")
                    .filter_map(|p| {
                        Some((p.text_at(&["name"])?.to_string(), p.child("val")?.clone()))
                    })
                    .collect();
                out.push(Vm {
                    moref: o.child("obj").and_then(El::moref),
                    props,
                });
            }
            let Some(token) = rv.text_at(&["token"]).filter(|t| !t.is_empty()) else {
                return Ok(out);
            };
            answer = self
                .session
                .call(
                    "ContinueRetrievePropertiesEx",
                    pc,
                    &format!("<token>{}</token>", esc(token)),
                )
                .await?;
        }
    }

    /// Waits for a task; its result element.
    async fn wait(&self, task: &MoRef) -> Result<Option<El>, SoapError> {
        let deadline = Instant::now() + self.settings.task_timeout();
        let mut pause = Duration::from_millis(100);
        loop {
            let info = self
                .props(task, &["info.state", "info.error", "info.result"])
                .await?
                .ok_or_else(|| SoapError::Answer(format!("task {} vanished", task.value)))?;
            match info.text("info.state") {
                Some("success") => return Ok(info.props.get("info.result").cloned()),
                Some("error") => {
                    let error = info.props.get("info.error");
                    let name = error
                        .and_then(|e| e.child("fault"))
                        .and_then(|f| f.xsi_type.clone())
                        .unwrap_or_else(|| "TaskFailed".into());
                    let message = error
                        .and_then(|e| e.text_at(&["localizedMessage"]))
                        .filter(|m| !m.is_empty())
                        .unwrap_or("the task failed")
                        .to_string();
                    return Err(SoapError::Fault { name, message });
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(SoapError::Fault {
                    name: "Timedout".into(),
                    message: format!(
                        "task {} did not finish within {}s",
                        task.value,
                        self.settings.task_timeout().as_secs()
                    ),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Calls a `…_Task` method and waits for the task.
    async fn run_task(
        &self,
        method: &str,
        this: &MoRef,
        args: &str,
    ) -> Result<Option<El>, SoapError> {
        let answer = self.session.call(method, this, args).await?;
        let task = answer
            .child("returnval")
            .and_then(El::moref)
            .ok_or_else(|| SoapError::Answer(format!("{method} returned no task")))?;
        self.wait(&task).await
    }

    /// The VM as runnerctl sees it; `None` when it is not this manager's.
    fn convert(&self, vm: &Vm) -> Option<Instance> {
        let moref = vm.moref.as_ref()?;
        if vm.text("config.template") == Some("true") {
            return None;
        }
        let tags = self.owner(vm)?;
        let state = match vm.text("runtime.powerState") {
            Some("poweredOn") => InstanceState::Running,
            Some("poweredOff") => InstanceState::Stopped,
            Some("suspended") => InstanceState::Stopped,
            _ => InstanceState::Unknown,
        };
        Some(Instance {
            id: moref.value.clone(),
            state,
            tags,
            created_at: vm
                .text("config.createDate")
                .and_then(crate::model::parse_rfc3339),
            spot_fallback: false,
            address: vm
                .text("guest.ipAddress")
                .filter(|a| !a.is_empty())
                .map(str::to_string),
            identity: None,
        })
    }

    /// The owner tags of a VM of this manager's: its custom attributes or, when those were
    /// never set, its extraConfig keys.
    fn owner(&self, vm: &Vm) -> Option<BTreeMap<String, String>> {
        let custom = vm.pairs("customValue");
        let by_key = |k: i32| custom.get(&k.to_string()).cloned();
        let tags = match by_key(self.fields.manager) {
            Some(m) => [
                (TAG_MANAGER, Some(m)),
                (TAG_GROUP, by_key(self.fields.group)),
                (TAG_RUNNER, by_key(self.fields.runner)),
            ],
            None => {
                let extra = vm.pairs("config.extraConfig");
                [
                    (TAG_MANAGER, extra.get(EXTRA_MANAGER).cloned()),
                    (TAG_GROUP, extra.get(EXTRA_GROUP).cloned()),
                    (TAG_RUNNER, extra.get(EXTRA_RUNNER).cloned()),
                ]
            }
        };
        let tags: BTreeMap<String, String> = tags
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v?)))
            .collect();
        (tags.get(TAG_MANAGER) == Some(&self.manager)).then_some(tags)
    }

    /// Sets the owner custom attributes a VM lacks.
    async fn mark(&self, vm: &MoRef, tags: &BTreeMap<String, String>) -> Result<(), SoapError> {
        let cfm = &self.session.content().custom_fields_manager;
        for (key, tag) in [
            (self.fields.manager, TAG_MANAGER),
            (self.fields.group, TAG_GROUP),
            (self.fields.runner, TAG_RUNNER),
        ] {
            let value = tags.get(tag).map(String::as_str).unwrap_or_default();
            let args = format!(
                "{}<key>{key}</key><value>{}</value>",
                vm.xml("entity"),
                esc(value)
            );
            self.session.call("SetField", cfm, &args).await?;
        }
        Ok(())
    }

    async fn get_vm(&self, id: &str) -> Result<Option<(Vm, Instance)>, SoapError> {
        if !is_vm_id(id) {
            return Ok(None);
        }
        let Some(vm) = self
            .props(&MoRef::new("VirtualMachine", id), &VM_PROPS)
            .await?
        else {
            return Ok(None);
        };
        Ok(self.convert(&vm).map(|i| (vm, i)))
    }

    /// Resolves where the clone goes, every inventory path of the settings and spec.
    async fn placement(&self, group: &str, spec: &VsphereSpec) -> Result<Placement> {
        let template = self
            .require(group, "template", &spec.template, &["VirtualMachine"])
            .await?;
        let folder = self
            .require(group, "folder", &self.settings.folder, &["Folder"])
            .await?;
        let pool = self
            .require(
                group,
                "resource pool",
                &self.settings.resource_pool,
                &["ResourcePool", "VirtualApp"],
            )
            .await?;
        let datastore = match &self.settings.datastore {
            Some(d) => Some(self.require(group, "datastore", d, &["Datastore"]).await?),
            None => None,
        };
        let snapshot = match &spec.snapshot {
            Some(name) => Some(self.snapshot(group, &template, spec, name).await?),
            None => None,
        };
        let nic = match &spec.network {
            Some(path) => Some(self.nic_change(group, &template, path).await?),
            None => None,
        };
        Ok(Placement {
            template,
            folder,
            pool,
            datastore,
            snapshot,
            nic,
        })
    }

    /// The template's snapshot of that name.
    async fn snapshot(
        &self,
        group: &str,
        template: &MoRef,
        spec: &VsphereSpec,
        name: &str,
    ) -> Result<MoRef> {
        let vm = self
            .props(template, &["snapshot.rootSnapshotList"])
            .await
            .map_err(|e| self.error(Some(group), &e))?
            .unwrap_or_default();
        vm.props
            .get("snapshot.rootSnapshotList")
            .and_then(|list| find_snapshot(list, name))
            .ok_or_else(|| {
                self.permanent(
                    group,
                    "SnapshotNotFound",
                    format!("template `{}` has no snapshot `{name}`", spec.template),
                )
            })
    }

    /// The device change that puts the template's first network card on that network.
    async fn nic_change(&self, group: &str, template: &MoRef, path: &str) -> Result<String> {
        let err = |e: SoapError| self.error(Some(group), &e);
        let network = self
            .require(
                group,
                "network",
                path,
                &["Network", "DistributedVirtualPortgroup"],
            )
            .await?;
        let devices = self
            .props(template, &["config.hardware.device"])
            .await
            .map_err(err)?
            .unwrap_or_default();
        let Some(card) = devices.props.get("config.hardware.device").and_then(|d| {
            d.children
                .iter()
                .find(|c| c.xsi_type.as_deref().is_some_and(|t| NICS.contains(&t)))
        }) else {
            return Err(self.permanent(
                group,
                "NoNetworkCard",
                format!("the template has no network card to put on `{path}`"),
            ));
        };
        let backing = if network.kind == "Network" {
            let name = path.rsplit('/').next().unwrap_or(path);
            format!(
                "<backing xsi:type=\"VirtualEthernetCardNetworkBackingInfo\"><deviceName>{}</deviceName>{}</backing>",
                esc(name),
                network.xml("network")
            )
        } else {
            let pg = self
                .props(&network, &["key", "config.distributedVirtualSwitch"])
                .await
                .map_err(err)?
                .unwrap_or_default();
            let dvs = pg
                .props
                .get("config.distributedVirtualSwitch")
                .and_then(El::moref);
            let uuid = match dvs {
                Some(d) => self.props(&d, &["uuid"]).await.map_err(err)?,
                None => None,
            };
            let uuid = uuid
                .as_ref()
                .and_then(|u| u.text("uuid"))
                .unwrap_or_default();
            format!(
                "<backing xsi:type=\"VirtualEthernetCardDistributedVirtualPortBackingInfo\"><port><switchUuid>{}</switchUuid><portgroupKey>{}</portgroupKey></port></backing>",
                esc(uuid),
                esc(pg.text("key").unwrap_or_default())
            )
        };
        // The card as read, its backing replaced.
        let device = El {
            name: "device".into(),
            ..card.clone()
        }
        .to_xml_with(|c| (c.name == "backing").then(|| backing.clone()));
        Ok(format!(
            "<deviceChange><operation>edit</operation>{device}</deviceChange>"
        ))
    }

    /// The `CloneVM_Task` arguments for a runner.
    fn clone_args(&self, req: &CreateRequest, spec: &VsphereSpec, at: &Placement) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let metadata = serde_json::json!({
            "instance-id": req.runner_name,
            "local-hostname": req.runner_name,
        })
        .to_string();
        let mut extra = vec![
            ("guestinfo.metadata", b64(&metadata)),
            ("guestinfo.metadata.encoding", "base64".to_string()),
        ];
        if let Some(u) = &req.boot.user_data {
            extra.push(("guestinfo.userdata", b64(u.expose())));
            extra.push(("guestinfo.userdata.encoding", "base64".to_string()));
        }
        extra.push((EXTRA_MANAGER, req.tags.manager.clone()));
        extra.push((EXTRA_GROUP, req.tags.group.clone()));
        extra.push((EXTRA_RUNNER, req.tags.runner.clone()));
        let extra: String = extra
            .iter()
            .map(|(k, v)| {
                format!(
                    "<extraConfig><key>{k}</key><value xsi:type=\"xsd:string\">{}</value></extraConfig>",
                    esc(v)
                )
            })
            .collect();
        let mut location = String::new();
        if let Some(d) = &at.datastore {
            location.push_str(&d.xml("datastore"));
        }
        if at.snapshot.is_some() {
            location.push_str("<diskMoveType>createNewChildDiskBacking</diskMoveType>");
        }
        location.push_str(&at.pool.xml("pool"));
        let mut config = String::new();
        if let Some(c) = spec.cpus {
            config.push_str(&format!("<numCPUs>{c}</numCPUs>"));
        }
        if let Some(m) = spec.memory_mb {
            config.push_str(&format!("<memoryMB>{m}</memoryMB>"));
        }
        config.push_str(at.nic.as_deref().unwrap_or_default());
        config.push_str(&extra);
        let snapshot = at
            .snapshot
            .as_ref()
            .map(|s| s.xml("snapshot"))
            .unwrap_or_default();
        format!(
            "{}<name>{}</name><spec><location>{location}</location><template>false</template><config>{config}</config><powerOn>false</powerOn>{snapshot}</spec>",
            at.folder.xml("folder"),
            esc(&req.runner_name),
        )
    }

    /// The VM of that name in the folder.
    async fn find_child(&self, folder: &MoRef, name: &str) -> Result<Option<MoRef>, SoapError> {
        let answer = self
            .session
            .call(
                "FindChild",
                &self.session.content().search_index,
                &format!("{}<name>{}</name>", folder.xml("entity"), esc(name)),
            )
            .await?;
        Ok(answer.child("returnval").and_then(El::moref))
    }

    /// Clones the runner's VM, or finds the one a concurrent create made.
    async fn clone_vm(
        &self,
        req: &CreateRequest,
        spec: &VsphereSpec,
        at: &Placement,
    ) -> Result<MoRef, SoapError> {
        let args = self.clone_args(req, spec, at);
        match self.run_task("CloneVM_Task", &at.template, &args).await {
            Ok(result) => result
                .as_ref()
                .and_then(El::moref)
                .ok_or_else(|| SoapError::Answer("the clone task returned no VM".into())),
            Err(e) if e.fault() == Some("DuplicateName") => self
                .find_child(&at.folder, &req.runner_name)
                .await?
                .ok_or(e),
            Err(e) => Err(e),
        }
    }

    /// Powers a VM on; one already on is fine.
    async fn power_on(&self, vm: &MoRef) -> Result<(), SoapError> {
        match self.run_task("PowerOnVM_Task", vm, "").await {
            Err(e) if e.fault() == Some("InvalidPowerState") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Waits until VMware Tools reports the VM's address (or the deadline passes: the
    /// instance is returned without one, and the health check replaces it if it never
    /// comes up).
    async fn wait_for_address(&self, id: &str) -> Result<Option<Instance>, SoapError> {
        let deadline = Instant::now() + self.settings.address_timeout();
        let mut pause = Duration::from_millis(200);
        loop {
            let found = self.get_vm(id).await?.map(|(_, i)| i);
            match found {
                Some(i) if i.address.is_none() && Instant::now() < deadline => {}
                other => return Ok(other),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// The rest of a create once the VM exists: marked, powered on, its address known.
    async fn finish(&self, req: &CreateRequest, vm: &MoRef) -> Result<Instance, SoapError> {
        let tags: BTreeMap<String, String> = req
            .tags
            .pairs()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.mark(vm, &tags).await?;
        self.power_on(vm).await?;
        let brokered = req
            .boot
            .user_data
            .as_ref()
            .is_some_and(|u| u.expose().contains(bootstrap::BROKER_TOKEN));
        let found = if brokered {
            self.wait_for_address(&vm.value).await?
        } else {
            self.get_vm(&vm.value).await?.map(|(_, i)| i)
        };
        found.ok_or_else(|| SoapError::Answer(format!("VM {} vanished after its clone", vm.value)))
    }

    /// The VM `id` when it is this manager's; not found otherwise (another's VM is never
    /// stopped or started).
    async fn ours(&self, id: &str) -> Result<(MoRef, Instance)> {
        let found = self.get_vm(id).await.map_err(|e| self.error(None, &e))?;
        match found {
            Some((Vm { moref: Some(m), .. }, i)) => Ok((m, i)),
            _ => Err(self.not_found(id)),
        }
    }

    fn not_found(&self, id: &str) -> BackendError {
        BackendError::NotFound {
            backend: self.name.clone(),
            id: id.to_string(),
        }
    }

    /// Removes a VM whose create failed for good, so that nothing is left.
    async fn discard(&self, vm: &MoRef) {
        if let Err(e) = self.destroy(vm).await {
            tracing::warn!(backend = %self.name, vm = %vm.value, error = %e, "could not remove a VM whose create failed; the health check will");
        }
    }

    async fn destroy(&self, vm: &MoRef) -> Result<(), SoapError> {
        let gone = |e: &SoapError| e.fault() == Some("ManagedObjectNotFound");
        match self.run_task("PowerOffVM_Task", vm, "").await {
            Err(e) if e.fault() == Some("InvalidPowerState") => {}
            Err(e) if gone(&e) => return Ok(()),
            other => {
                other?;
            }
        }
        match self.run_task("Destroy_Task", vm, "").await {
            Err(e) if gone(&e) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

/// How long a guest is given to shut itself down before it is powered off.
const GUEST_SHUTDOWN_WAIT: Duration = Duration::from_secs(60);

/// A failure as the backend's error: transient or permanent by [`classify`], with its code.
fn classified(backend: &str, e: &SoapError, message: String) -> BackendError {
    let (transient, code) = classify(e);
    let backend = backend.to_string();
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

/// The custom attribute keys of the owner tags, defined when missing.
async fn ensure_fields(session: &Session) -> Result<Fields, SoapError> {
    let cfm = session.content().custom_fields_manager.clone();
    for attempt in 0..2 {
        let spec = format!(
            "<specSet><propSet><type>CustomFieldsManager</type><pathSet>field</pathSet></propSet><objectSet>{}<skip>false</skip></objectSet></specSet>",
            cfm.xml("obj")
        );
        let answer = session
            .call(
                "RetrievePropertiesEx",
                &session.content().property_collector,
                &spec,
            )
            .await?;
        let mut known = BTreeMap::new();
        for def in answer
            .at(&["returnval", "objects", "propSet", "val"])
            .map(|v| v.children.as_slice())
            .unwrap_or_default()
        {
            let for_vms = matches!(
                def.text_at(&["managedObjectType"]),
                None | Some("VirtualMachine") | Some("")
            );
            if let (Some(name), Some(key), true) =
                (def.text_at(&["name"]), def.text_at(&["key"]), for_vms)
            {
                if let Ok(k) = key.parse::<i32>() {
                    known.insert(name.to_string(), k);
                }
            }
        }
        let missing: Vec<&str> = [TAG_MANAGER, TAG_GROUP, TAG_RUNNER]
            .into_iter()
            .filter(|n| !known.contains_key(*n))
            .collect();
        if missing.is_empty() {
            return Ok(Fields {
                manager: known[TAG_MANAGER],
                group: known[TAG_GROUP],
                runner: known[TAG_RUNNER],
            });
        }
        for name in missing {
            let args = format!("<name>{name}</name><moType>VirtualMachine</moType>");
            match session.call("AddCustomFieldDef", &cfm, &args).await {
                // Another manager defined it meanwhile: read them again.
                Err(e) if e.fault() == Some("DuplicateName") && attempt == 0 => {}
                other => {
                    other?;
                }
            }
        }
    }
    Err(SoapError::Answer(
        "the runnerctl custom attributes could not be defined".into(),
    ))
}

fn path_set(paths: &[&str]) -> String {
    paths
        .iter()
        .map(|p| format!("<pathSet>{}</pathSet>", esc(p)))
        .collect()
}

/// The snapshot of that name in a snapshot tree list, depth first.
fn find_snapshot(list: &El, name: &str) -> Option<MoRef> {
    list.children.iter().find_map(|tree| {
        if tree.text_at(&["name"]) == Some(name) {
            return tree.child("snapshot").and_then(El::moref);
        }
        tree.all("childSnapshotList").find_map(|child| {
            let wrapper = El {
                children: vec![child.clone()],
                ..El::default()
            };
            find_snapshot(&wrapper, name)
        })
    })
}

/// vCenter's VM ids: `vm-` and a number.
fn is_vm_id(id: &str) -> bool {
    id.strip_prefix("vm-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn capitalized(what: &str) -> String {
    what.split(' ')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[async_trait::async_trait]
impl Backend for VsphereBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static dyn super::Kind {
        &KIND
    }

    async fn create(&self, req: &CreateRequest) -> Result<Instance> {
        let group = req.tags.group.as_str();
        let Some(spec) = req.spec.get::<VsphereSpec>() else {
            return Err(self.permanent(
                group,
                "SpecMismatch",
                "its spec is not a vSphere spec".into(),
            ));
        };
        if req.boot.files.iter().any(|f| bootstrap::is_secret(&f.path)) {
            return Err(self.permanent(
                group,
                "NeedsBroker",
                "a VM's guestinfo is readable by any vSphere user who may read the VM: configure the credential broker (`broker:`), through which the runner's credential travels".into(),
            ));
        }
        let err = |e: SoapError| self.error(Some(group), &e);
        let at = self.placement(group, spec).await?;
        if let Some(existing) = self
            .find_child(&at.folder, &req.runner_name)
            .await
            .map_err(err)?
        {
            let ours = self.get_vm(&existing.value).await.map_err(err)?;
            if ours.is_none() {
                return Err(self.permanent(
                    group,
                    "NameTaken",
                    format!(
                        "a VM named `{}` that is not this manager's is in `{}`",
                        req.runner_name, self.settings.folder
                    ),
                ));
            }
            return self.finish(req, &existing).await.map_err(err);
        }
        let vm = self.clone_vm(req, spec, &at).await.map_err(err)?;
        match self.finish(req, &vm).await {
            Ok(i) => Ok(i),
            Err(e) => {
                let (transient, _) = classify(&e);
                if !transient {
                    self.discard(&vm).await;
                }
                Err(err(e))
            }
        }
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let Some((vm, ours)) = self.get_vm(id).await.map_err(|e| self.error(None, &e))? else {
            return Ok(()); // gone, or not ours: left alone
        };
        let Some(moref) = vm.moref else { return Ok(()) };
        self.destroy(&moref)
            .await
            .map_err(|e| self.error(ours.group(), &e))
    }

    /// Shuts the guest down (`ShutdownGuest`, so the first boot's writes reach the disk) and
    /// waits until it is powered off; without VMware Tools, or when the guest does not stop
    /// within a minute, `PowerOffVM_Task`. A VM off (or suspended) already is left so.
    async fn stop(&self, id: &str) -> Result<()> {
        let (vm, ours) = self.ours(id).await?;
        let err = |e: SoapError| self.error(ours.group(), &e);
        if ours.state == InstanceState::Stopped {
            return Ok(());
        }
        let shut = self.session.call("ShutdownGuest", &vm, "").await;
        if shut.is_ok() {
            let deadline = Instant::now() + GUEST_SHUTDOWN_WAIT;
            while Instant::now() < deadline {
                match self.get_vm(id).await.map_err(err)? {
                    Some((_, i)) if i.state == InstanceState::Stopped => return Ok(()),
                    Some(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                    None => return Err(self.not_found(id)),
                }
            }
        }
        match self.run_task("PowerOffVM_Task", &vm, "").await {
            Err(e) if e.fault() == Some("InvalidPowerState") => Ok(()),
            other => other.map(|_| ()).map_err(err),
        }
    }

    /// `PowerOnVM_Task`: the guest boots and its runner unit asks the broker for its
    /// credential. A VM on already is left so.
    async fn start(&self, id: &str) -> Result<()> {
        let (vm, ours) = self.ours(id).await?;
        self.power_on(&vm)
            .await
            .map_err(|e| self.error(ours.group(), &e))
    }

    async fn get(&self, id: &str) -> Result<Option<Instance>> {
        Ok(self
            .get_vm(id)
            .await
            .map_err(|e| self.error(None, &e))?
            .map(|(_, i)| i))
    }

    async fn list(&self) -> Result<Vec<Instance>> {
        let err = |e: SoapError| self.error(None, &e);
        let Some(folder) = self.find(&self.settings.folder).await.map_err(err)? else {
            return Err(BackendError::Permanent {
                backend: self.name.clone(),
                code: "FolderNotFound".into(),
                message: format!(
                    "folder `{}` is not in the inventory of {}",
                    self.settings.folder, self.settings.url
                ),
            });
        };
        let spec = format!(
            "<specSet><propSet><type>VirtualMachine</type>{}</propSet><objectSet>{}<skip>true</skip><selectSet xsi:type=\"TraversalSpec\"><name>children</name><type>Folder</type><path>childEntity</path><skip>false</skip></selectSet></objectSet></specSet>",
            path_set(&VM_PROPS),
            folder.xml("obj"),
        );
        let vms = self.retrieve(&spec).await.map_err(err)?;
        let mut out = Vec::new();
        for vm in &vms {
            let Some(i) = self.convert(vm) else { continue };
            if !vm
                .pairs("customValue")
                .contains_key(&self.fields.manager.to_string())
            {
                // Cloned, never marked: mark it now (best effort; it is ours either way).
                if let Some(m) = &vm.moref {
                    if let Err(e) = self.mark(m, &i.tags).await {
                        tracing::warn!(backend = %self.name, vm = %m.value, error = %e, "could not set the owner attributes");
                    }
                }
            }
            out.push(i);
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_classified() {
        let fault = |n: &str| SoapError::Fault {
            name: n.into(),
            message: "m".into(),
        };
        for t in [
            "InsufficientResourcesFault",
            "InsufficientMemoryResourcesFault",
            "HostCommunication",
            "TaskInProgress",
        ] {
            assert_eq!(classify(&fault(t)), (true, t.to_string()));
        }
        for p in [
            "InvalidLogin",
            "NoPermission",
            "InvalidArgument",
            "FileNotFound",
        ] {
            assert_eq!(classify(&fault(p)), (false, p.to_string()));
        }
        assert!(classify(&SoapError::Transport("reset".into())).0);
        assert!(
            classify(&SoapError::Http {
                status: 503,
                url: "u".into()
            })
            .0
        );
        assert!(
            !classify(&SoapError::Http {
                status: 404,
                url: "u".into()
            })
            .0
        );
    }

    #[test]
    fn only_vcenter_vm_ids_are_asked_about() {
        assert!(is_vm_id("vm-42"));
        for bad in ["vm-", "i-0123", "europe-west1-b/x", "vm-1/../2", "VM-1", ""] {
            assert!(!is_vm_id(bad), "{bad}");
        }
    }

    #[test]
    fn snapshots_are_found_by_name_at_any_depth() {
        let tree = |name: &str, value: &str, children: Vec<El>| El {
            name: "VirtualMachineSnapshotTree".into(),
            children: [
                vec![
                    El {
                        name: "snapshot".into(),
                        ref_type: Some("VirtualMachineSnapshot".into()),
                        text: value.into(),
                        ..El::default()
                    },
                    El {
                        name: "name".into(),
                        text: name.into(),
                        ..El::default()
                    },
                ],
                children
                    .into_iter()
                    .map(|c| El {
                        name: "childSnapshotList".into(),
                        ..c
                    })
                    .collect(),
            ]
            .concat(),
            ..El::default()
        };
        let list = El {
            children: vec![tree(
                "base",
                "snapshot-1",
                vec![tree("deep", "snapshot-2", vec![])],
            )],
            ..El::default()
        };
        assert_eq!(find_snapshot(&list, "base").unwrap().value, "snapshot-1");
        assert_eq!(find_snapshot(&list, "deep").unwrap().value, "snapshot-2");
        assert!(find_snapshot(&list, "nope").is_none());
    }

    #[test]
    fn missing_objects_are_named_in_code() {
        assert_eq!(capitalized("resource pool"), "ResourcePool");
        assert_eq!(capitalized("template"), "Template");
    }
}
