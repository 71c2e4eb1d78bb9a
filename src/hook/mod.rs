//! `runnerctl container-hook`: GitHub's runner container hooks (`prepare_job`,
//! `run_script_step`, `run_container_step`, `cleanup_job`) with systemd-nspawn guests instead
//! of Docker, for runner VMs of a group with `container_jobs`. The runner runs the tiny
//! JavaScript entry point the bootstrap installs ([`ENTRY_POINT`]), which hands its standard
//! input to this command.
//!
//! A job gets a directory `DIR/jobs/job-ID` with its guests' writable roots (overlays over the
//! image cache `DIR/rootfs/DIGEST`, which jobs only read), its named volumes and its services'
//! logs. `cleanup_job` (and a failed `prepare_job`) kills what still runs there, unmounts and
//! removes it. Guests share the VM's network; the VM itself is single-use.

pub mod guest;
pub mod image;
pub mod protocol;
pub mod tool;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use protocol::{Command, Guest, Mount, Response, State, STATE_VERSION};

/// The JavaScript file `ACTIONS_RUNNER_CONTAINER_HOOKS` names: it hands its input to
/// `runnerctl container-hook` and exits with its status.
pub const ENTRY_POINT: &str = include_str!("../../contrib/container-hook/index.js");

/// Where the bootstrap puts [`ENTRY_POINT`] on a VM.
pub const ENTRY_POINT_PATH: &str = "/usr/local/lib/runnerctl/container-hook.js";

/// The hook's directory on a VM when `RUNNERCTL_HOOK_DIR` does not say otherwise.
pub const DEFAULT_DIR: &str = "/var/lib/runnerctl/container-hook";

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The runner's input is not what the protocol describes.
    #[error("{0}")]
    BadInput(String),
    /// A host tool is missing or failed.
    #[error("{0}")]
    Tool(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// What the runner asks for that nspawn guests do not do.
    #[error("{0}")]
    Unsupported(String),
    /// A step ran and exited with this status, which is the hook's own.
    #[error("the step exited with status {0}")]
    Step(i32),
}

impl HookError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> HookError {
        HookError::Io {
            what: what.into(),
            source,
        }
    }

    /// The same error with what was being done in front.
    pub fn context(self, doing: String) -> HookError {
        match self {
            HookError::Tool(m) => HookError::Tool(format!("{doing}: {m}")),
            HookError::BadInput(m) => HookError::BadInput(format!("{doing}: {m}")),
            HookError::Unsupported(m) => HookError::Unsupported(format!("{doing}: {m}")),
            HookError::Io { what, source } => HookError::Io {
                what: format!("{doing}: {what}"),
                source,
            },
            e @ HookError::Step(_) => e,
        }
    }
}

/// Where the hook keeps images and jobs, and the tools it runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub dir: PathBuf,
    /// An OCI layout of preloaded images (tags are image references as workflows write them),
    /// looked in before any registry.
    pub images: Option<PathBuf>,
    pub nspawn: String,
    pub skopeo: String,
    pub umoci: String,
}

impl Settings {
    pub fn new(dir: PathBuf, images: Option<PathBuf>) -> Result<Settings, HookError> {
        if !dir.is_absolute() || dir.parent().is_none() {
            return Err(HookError::BadInput(format!(
                "the hook's directory must be an absolute path below /, not `{}`",
                dir.display()
            )));
        }
        Ok(Settings {
            dir,
            images,
            nspawn: "systemd-nspawn".into(),
            skopeo: "skopeo".into(),
            umoci: "umoci".into(),
        })
    }

    fn jobs(&self) -> PathBuf {
        self.dir.join("jobs")
    }

    /// A job directory from the runner's state, only if it is one of ours: cleanup removes it,
    /// so a state that names anything else is refused.
    fn job_dir(&self, state: &State) -> Result<PathBuf, HookError> {
        let p = Path::new(&state.dir);
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let ours = p.parent() == Some(self.jobs().as_path())
            && name
                .strip_prefix("job-")
                .is_some_and(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit()));
        if !ours {
            return Err(HookError::BadInput(format!(
                "`state.dir` ({}) is not a job directory of this hook (under {})",
                state.dir,
                self.jobs().display()
            )));
        }
        for g in state.job.iter().chain(state.services.values()) {
            if !Path::new(&g.root).starts_with(p) {
                return Err(HookError::BadInput(format!(
                    "guest `{}` has its root outside the job's directory",
                    g.name
                )));
            }
        }
        Ok(p.to_path_buf())
    }
}

/// Runs one hook call on `input` (the JSON document the runner wrote). `Ok` is success;
/// [`HookError::Step`] carries a step's own exit status.
pub fn run(settings: &Settings, input: &str) -> Result<(), HookError> {
    match protocol::read(input)? {
        Command::PrepareJob {
            response_file,
            args,
        } => prepare_job(settings, &response_file, args),
        Command::RunScriptStep { state, args } => run_script_step(settings, &state, args),
        Command::RunContainerStep { state, args } => run_container_step(settings, &state, *args),
        Command::CleanupJob { state } => match state {
            Some(s) => cleanup(settings, &s),
            None => Ok(()),
        },
    }
}

fn env_pairs(env: &protocol::Env) -> Vec<(String, String)> {
    env.iter()
        .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
        .collect()
}

fn warn_create_options(what: &str, options: Option<&str>) {
    if let Some(o) = options.filter(|o| !o.trim().is_empty()) {
        eprintln!("runnerctl: {what}: Docker's create options are not used by nspawn guests: {o}");
    }
}

fn prepare_job(
    settings: &Settings,
    response_file: &str,
    args: protocol::PrepareJobArgs,
) -> Result<(), HookError> {
    if args.container.is_none() && args.services.is_empty() {
        return Err(HookError::BadInput(
            "prepare_job has neither a job container nor services".into(),
        ));
    }
    let id = format!("job-{:016x}", fastrand::u64(..));
    let dir = settings.jobs().join(&id);
    std::fs::create_dir_all(&dir)
        .map_err(|e| HookError::io(format!("creating {}", dir.display()), e))?;
    let mut state = State {
        runnerctl: STATE_VERSION,
        dir: dir.display().to_string(),
        job: None,
        services: BTreeMap::new(),
    };
    let made = prepare_guests(settings, &dir, &id, args, &mut state)
        .and_then(|response| write_response(response_file, &response));
    if let Err(e) = made {
        // Nothing half-made stays: services stopped, roots unmounted, the directory gone.
        if let Err(c) = cleanup(settings, &state) {
            eprintln!("runnerctl: cleaning up the failed prepare_job: {c}");
        }
        return Err(e);
    }
    Ok(())
}

/// Starts the guest of service `s` and records it in `state` (before it starts, so a failure
/// further on still stops it); its context for the job.
fn start_service(
    settings: &Settings,
    dir: &Path,
    id: &str,
    s: &protocol::Service,
    state: &mut State,
) -> Result<protocol::ContainerContext, HookError> {
    let image = image::get(settings, &s.image, s.registry.as_ref())
        .map_err(|e| e.context(format!("service `{}`", s.context_name)))?;
    warn_create_options(
        &format!("service `{}`", s.context_name),
        s.create_options.as_deref(),
    );
    let gdir = dir
        .join("services")
        .join(guest::machine_name(&[&s.context_name]));
    let root = guest::make_root(&image, &gdir)?;
    let mut g = Guest {
        name: guest::machine_name(&["rc", &id[4..], &s.context_name]),
        root: root.display().to_string(),
        mounts: s.user_mount_volumes.clone(),
        env: guest::environment(&image.env, &env_pairs(&s.environment_variables), &[]),
        workdir: image.cwd.clone(),
        pid: None,
    };
    let argv: Vec<String> = match &s.entrypoint {
        Some(e) if !e.is_empty() => std::iter::once(e.clone())
            .chain(s.entry_point_args.iter().cloned())
            .collect(),
        _ if !s.entry_point_args.is_empty() => s.entry_point_args.clone(),
        _ => image.args.clone(),
    };
    if argv.is_empty() {
        return Err(HookError::BadInput(format!(
            "service `{}`: image `{}` has no command and none was given",
            s.context_name, s.image
        )));
    }
    let binds = guest::bind_options(&g.mounts, dir)?;
    let a = guest::nspawn_args(&g, &binds, &g.env, g.workdir.as_deref(), &argv)?;
    let log = gdir.join("service.log");
    // Recorded before it starts, so a failure further on still stops it.
    state.services.insert(s.context_name.clone(), g.clone());
    g.pid = Some(
        guest::start(settings, &a, &log)
            .map_err(|e| e.context(format!("service `{}`", s.context_name)))?,
    );
    state.services.insert(s.context_name.clone(), g.clone());
    Ok(protocol::ContainerContext {
        id: g.name,
        network: "host".into(),
        ports: protocol::ports(&s.port_mappings),
    })
}

fn prepare_guests(
    settings: &Settings,
    dir: &Path,
    id: &str,
    args: protocol::PrepareJobArgs,
    state: &mut State,
) -> Result<Response, HookError> {
    // In the input's order: the runner matches the answers to its services by position.
    let mut services = Vec::with_capacity(args.services.len());
    for s in &args.services {
        services.push(start_service(settings, dir, id, s, state)?);
    }
    let mut alpine = false;
    let mut container = None;
    if let Some(c) = &args.container {
        let image = image::get(settings, &c.image, c.registry.as_ref())
            .map_err(|e| e.context("the job container".into()))?;
        warn_create_options("the job container", c.create_options.as_deref());
        let root = guest::make_root(&image, &dir.join("job"))?;
        let names: Vec<&str> = args
            .services
            .iter()
            .map(|s| s.context_name.as_str())
            .collect();
        guest::add_hosts(&root, &names)?;
        alpine = guest::is_alpine(&root);
        let mut mounts: Vec<Mount> = c.system_mount_volumes.clone();
        mounts.extend(c.user_mount_volumes.iter().cloned());
        // Checked now, so a bad mount fails the job's preparation, not its first step.
        guest::bind_options(&mounts, dir)?;
        let g = Guest {
            name: guest::machine_name(&["rc", &id[4..]]),
            root: root.display().to_string(),
            mounts,
            env: guest::environment(&image.env, &env_pairs(&c.environment_variables), &[]),
            workdir: c.working_directory.clone().or(image.cwd.clone()),
            pid: None,
        };
        container = Some(protocol::ContainerContext {
            id: g.name.clone(),
            network: "host".into(),
            ports: protocol::ports(&c.port_mappings),
        });
        state.job = Some(g);
    }
    Ok(Response {
        state: state.clone(),
        context: protocol::Context {
            container,
            services,
        },
        is_alpine: alpine,
    })
}

fn write_response(path: &str, response: &Response) -> Result<(), HookError> {
    let text = serde_json::to_string(response)
        .map_err(|e| HookError::Tool(format!("cannot encode the response: {e}")))?;
    std::fs::write(path, text)
        .map_err(|e| HookError::io(format!("writing the response file {path}"), e))
}

fn run_script_step(
    settings: &Settings,
    state: &State,
    args: protocol::ScriptStepArgs,
) -> Result<(), HookError> {
    let dir = settings.job_dir(state)?;
    let g = state.job.as_ref().ok_or_else(|| {
        HookError::BadInput("run_script_step: this job has no job container".into())
    })?;
    if args.entry_point.is_empty() {
        return Err(HookError::BadInput(
            "run_script_step needs an `entryPoint`".into(),
        ));
    }
    let binds = guest::bind_options(&g.mounts, &dir)?;
    let env = guest::environment(
        &g.env,
        &env_pairs(&args.environment_variables),
        &args.prepend_path,
    );
    let argv: Vec<String> = std::iter::once(args.entry_point.clone())
        .chain(args.entry_point_args.iter().cloned())
        .collect();
    let workdir = args.working_directory.as_deref().or(g.workdir.as_deref());
    let a = guest::nspawn_args(g, &binds, &env, workdir, &argv)?;
    match guest::run(settings, &a)? {
        0 => Ok(()),
        code => Err(HookError::Step(code)),
    }
}

fn run_container_step(
    settings: &Settings,
    state: &State,
    args: protocol::ContainerStepArgs,
) -> Result<(), HookError> {
    let dir = settings.job_dir(state)?;
    if args.dockerfile.as_deref().is_some_and(|d| !d.is_empty()) {
        return Err(HookError::Unsupported(
            "run_container_step: building an image from a Dockerfile is not supported by runnerctl's nspawn hooks; use a pre-built image".into(),
        ));
    }
    let reference = args
        .image
        .as_deref()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| {
            HookError::BadInput("run_container_step needs an `image` (or a `dockerfile`)".into())
        })?;
    let image = image::get(settings, reference, args.registry.as_ref())
        .map_err(|e| e.context("the container step".into()))?;
    warn_create_options("the container step", args.create_options.as_deref());
    let step_dir = dir.join("steps").join(format!("{:08x}", fastrand::u32(..)));
    let root = guest::make_root(&image, &step_dir)?;
    let mut mounts = args.system_mount_volumes.clone();
    mounts.extend(args.user_mount_volumes.iter().cloned());
    let g = Guest {
        name: guest::machine_name(&[
            "rc",
            &dir.file_name().and_then(|n| n.to_str()).unwrap_or("")[4..],
            "step",
        ]),
        root: root.display().to_string(),
        mounts,
        env: image.env.clone(),
        workdir: args.working_directory.clone().or(image.cwd.clone()),
        pid: None,
    };
    let outcome = (|| {
        let binds = guest::bind_options(&g.mounts, &dir)?;
        let env = guest::environment(
            &g.env,
            &env_pairs(&args.environment_variables),
            &args.prepend_path,
        );
        let argv: Vec<String> = match &args.entry_point {
            Some(e) if !e.is_empty() => std::iter::once(e.clone())
                .chain(args.entry_point_args.iter().cloned())
                .collect(),
            _ if !args.entry_point_args.is_empty() => image
                .args
                .first()
                .cloned()
                .into_iter()
                .chain(args.entry_point_args.iter().cloned())
                .collect(),
            _ => image.args.clone(),
        };
        if argv.is_empty() {
            return Err(HookError::BadInput(format!(
                "image `{reference}` has no command and the step gives none"
            )));
        }
        let a = guest::nspawn_args(&g, &binds, &env, g.workdir.as_deref(), &argv)?;
        guest::run(settings, &a)
    })();
    // A one-off guest: its root goes with the step.
    let swept = guest::sweep(&step_dir);
    match outcome? {
        0 => swept,
        code => Err(HookError::Step(code)),
    }
}

fn cleanup(settings: &Settings, state: &State) -> Result<(), HookError> {
    let dir = settings.job_dir(state)?;
    for g in state.services.values() {
        guest::stop(g);
    }
    guest::sweep(&dir)
}
