//! The runner's container-hook protocol: what arrives on standard input, what `prepare_job`
//! answers, and the state the runner hands back to every later command of the job. Shapes as
//! GitHub's examples (`shared/contracts/container-hooks/`) show them; pure data, no I/O.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::HookError;

/// One call of the hook, as read from standard input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Input {
    pub command: String,
    #[serde(default)]
    pub response_file: Option<String>,
    #[serde(default)]
    pub state: serde_json::Value,
    #[serde(default)]
    pub args: serde_json::Value,
}

/// The four commands, with their arguments parsed.
#[derive(Debug)]
pub enum Command {
    PrepareJob {
        response_file: String,
        args: PrepareJobArgs,
    },
    RunScriptStep {
        state: State,
        args: ScriptStepArgs,
    },
    RunContainerStep {
        state: State,
        args: Box<ContainerStepArgs>,
    },
    CleanupJob {
        state: Option<State>,
    },
}

/// A volume to mount into a guest.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    pub source_volume_path: String,
    pub target_volume_path: String,
    #[serde(default)]
    pub read_only: bool,
}

/// Registry credentials for an image. Never logged, never in a command line.
#[derive(Deserialize, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct Registry {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub server_url: Option<String>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("server_url", &self.server_url)
            .finish()
    }
}

/// Environment variables as the runner sends them; a null value is left out.
pub type Env = BTreeMap<String, Option<String>>;

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct JobContainer {
    pub image: String,
    #[serde(default)]
    pub working_directory: Option<String>,
    #[serde(default)]
    pub create_options: Option<String>,
    #[serde(default)]
    pub environment_variables: Env,
    #[serde(default)]
    pub user_mount_volumes: Vec<Mount>,
    #[serde(default)]
    pub system_mount_volumes: Vec<Mount>,
    #[serde(default)]
    pub registry: Option<Registry>,
    #[serde(default)]
    pub port_mappings: Vec<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub context_name: String,
    pub image: String,
    #[serde(default)]
    pub create_options: Option<String>,
    /// The runner writes `entryPoint`; GitHub's published example spells it `entrypoint`.
    #[serde(default, alias = "entryPoint")]
    pub entrypoint: Option<String>,
    #[serde(default)]
    pub entry_point_args: Vec<String>,
    #[serde(default)]
    pub environment_variables: Env,
    #[serde(default)]
    pub user_mount_volumes: Vec<Mount>,
    #[serde(default)]
    pub port_mappings: Vec<String>,
    #[serde(default)]
    pub registry: Option<Registry>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PrepareJobArgs {
    #[serde(default)]
    pub container: Option<JobContainer>,
    #[serde(default)]
    pub services: Vec<Service>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScriptStepArgs {
    pub entry_point: String,
    #[serde(default)]
    pub entry_point_args: Vec<String>,
    #[serde(default)]
    pub environment_variables: Env,
    #[serde(default)]
    pub prepend_path: Vec<String>,
    #[serde(default)]
    pub working_directory: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStepArgs {
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub dockerfile: Option<String>,
    #[serde(default)]
    pub entry_point: Option<String>,
    #[serde(default)]
    pub entry_point_args: Vec<String>,
    #[serde(default)]
    pub working_directory: Option<String>,
    #[serde(default)]
    pub create_options: Option<String>,
    #[serde(default)]
    pub environment_variables: Env,
    #[serde(default)]
    pub prepend_path: Vec<String>,
    #[serde(default)]
    pub user_mount_volumes: Vec<Mount>,
    #[serde(default)]
    pub system_mount_volumes: Vec<Mount>,
    #[serde(default)]
    pub registry: Option<Registry>,
    #[serde(default)]
    pub port_mappings: Vec<String>,
}

/// What `prepare_job` hands the runner to give back: the job's directory, its guest and the
/// services' guests. Paths are checked against the hook's own directory before use.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    /// `runnerctl` marks its own state, so another hook's state is refused.
    pub runnerctl: u32,
    /// The job's directory under the hook's directory (guests' roots, logs, volumes).
    pub dir: String,
    /// The job guest, when the job runs in a container.
    #[serde(default)]
    pub job: Option<Guest>,
    /// Service guests by context name.
    #[serde(default)]
    pub services: BTreeMap<String, Guest>,
}

/// One nspawn guest: its machine name, root, and what every command in it gets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Guest {
    pub name: String,
    pub root: String,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// The image's and the job's environment, in order (later wins).
    #[serde(default)]
    pub env: Vec<(String, String)>,
    #[serde(default)]
    pub workdir: Option<String>,
    /// The PID of a service guest's `systemd-nspawn`.
    #[serde(default)]
    pub pid: Option<u32>,
}

pub const STATE_VERSION: u32 = 1;

/// `prepare_job`'s answer, written to the response file.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub state: State,
    pub context: Context,
    pub is_alpine: bool,
}

/// The runner reads `services` as a list matched by position to the job's services (the
/// input's `args.services`), not as an object keyed by name (actions/runner `HookResponse.cs`).
#[derive(Debug, Serialize)]
pub struct Context {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerContext>,
    pub services: Vec<ContainerContext>,
}

/// A guest as the job's `job.container` / `job.services.NAME` context shows it: `ports` maps
/// the container's port to the host's, both strings. Guests share the VM's network, so a port
/// is reached on the same number.
#[derive(Debug, Serialize)]
pub struct ContainerContext {
    pub id: String,
    pub network: String,
    pub ports: BTreeMap<String, String>,
}

/// The container ports of `port_mappings` (`HOST:CONTAINER`, `CONTAINER`, with `/proto`), each
/// reachable on the same number since guests share the VM's network.
pub fn ports(mappings: &[String]) -> BTreeMap<String, String> {
    mappings
        .iter()
        .filter_map(|m| {
            let port = m.rsplit(':').next()?.split('/').next()?.trim();
            (!port.is_empty() && port.chars().all(|c| c.is_ascii_digit()))
                .then(|| (port.to_string(), port.to_string()))
        })
        .collect()
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, v: serde_json::Value) -> Result<T, HookError> {
    serde_json::from_value(v).map_err(|e| HookError::BadInput(format!("{what}: {e}")))
}

fn state(v: serde_json::Value) -> Result<State, HookError> {
    if v.is_null() || v.as_object().is_some_and(|o| o.is_empty()) {
        return Err(HookError::BadInput(
            "`state` is empty: prepare_job did not run for this job (or not with runnerctl's hook)"
                .into(),
        ));
    }
    let s: State = parse("`state`", v)?;
    if s.runnerctl != STATE_VERSION {
        return Err(HookError::BadInput(format!(
            "`state` is of version {} of runnerctl's hook; this one reads version {STATE_VERSION}",
            s.runnerctl
        )));
    }
    Ok(s)
}

/// Parses the JSON document the runner sends; every mistake names what is wrong.
pub fn read(text: &str) -> Result<Command, HookError> {
    let input: Input = serde_json::from_str(text)
        .map_err(|e| HookError::BadInput(format!("the hook's input is not valid JSON: {e}")))?;
    let args = input.args;
    Ok(match input.command.as_str() {
        "prepare_job" => Command::PrepareJob {
            response_file: input.response_file.filter(|f| !f.is_empty()).ok_or_else(|| {
                HookError::BadInput("prepare_job needs a `responseFile`".into())
            })?,
            args: parse("prepare_job's `args`", args)?,
        },
        "run_script_step" => Command::RunScriptStep {
            state: state(input.state)?,
            args: parse("run_script_step's `args`", args)?,
        },
        "run_container_step" => Command::RunContainerStep {
            state: state(input.state)?,
            args: parse("run_container_step's `args`", args)?,
        },
        "cleanup_job" => Command::CleanupJob {
            state: match input.state {
                serde_json::Value::Null => None,
                serde_json::Value::Object(o) if o.is_empty() => None,
                v => Some(state(v)?),
            },
        },
        other => {
            return Err(HookError::BadInput(format!(
                "unknown command `{other}` (expected prepare_job, run_script_step, run_container_step or cleanup_job)"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_the_container_side_of_each_mapping() {
        let m = [
            "80:8080".to_string(),
            "9000".into(),
            "127.0.0.1:53:53/udp".into(),
        ];
        let p = ports(&m);
        assert_eq!(p.get("8080").map(String::as_str), Some("8080"));
        assert_eq!(p.get("9000").map(String::as_str), Some("9000"));
        assert_eq!(p.get("53").map(String::as_str), Some("53"));
        assert!(ports(&["x:y".into()]).is_empty());
    }

    #[test]
    fn bad_inputs_name_what_is_wrong() {
        let e = read("{").unwrap_err().to_string();
        assert!(e.contains("not valid JSON"), "{e}");
        let e = read(r#"{"command":"build_it","args":{}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown command `build_it`"), "{e}");
        let e = read(r#"{"command":"prepare_job","args":{}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("responseFile"), "{e}");
        let e = read(r#"{"command":"run_script_step","state":{},"args":{}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`state` is empty"), "{e}");
        let e = read(r#"{"command":"prepare_job","responseFile":"/r","args":{"container":{}}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("image"), "{e}");
    }

    #[test]
    fn registry_passwords_do_not_show_in_debug_output() {
        let r = Registry {
            username: Some("u".into()),
            password: Some("hunter2".into()),
            server_url: None,
        };
        assert!(!format!("{r:?}").contains("hunter2"));
    }

    #[test]
    fn github_s_examples_parse() {
        let text = include_str!("../../tests/fixtures/container-hooks/prepare-job.json");
        let Command::PrepareJob { args, .. } = read(text).unwrap() else {
            panic!()
        };
        assert_eq!(args.container.unwrap().image, "node:22");
        assert_eq!(args.services[0].context_name, "redis");
        let text = include_str!("../../tests/fixtures/container-hooks/run-script-step.json");
        // GitHub's examples carry Docker's state, not runnerctl's: refused by name.
        let e = read(text).unwrap_err().to_string();
        assert!(e.contains("`state`"), "{e}");
    }
}
