//! What an instance receives to become a runner.
//!
//! The model is the appliance's first boot: an install step that is retried until it succeeds
//! and leaves a marker, then the runner, started ephemeral so that it takes one job. Running it
//! twice does no harm. The credential (a JIT configuration, or a registration token for GitHub
//! Enterprise Server older than 3.10) travels as a file readable by root only; the script hands
//! it to the runner through the runner's `ACTIONS_RUNNER_INPUT_JITCONFIG` input variable (not
//! the command line, which any process may read) and deletes the file. Nothing secret is written
//! to a log, by the script or by runnerctl.
//!
//! A group may replace the script with its own (`bootstrap_template`); `{{name}}` placeholders
//! are filled with the non-secret values of [`RunnerSetup`].

use crate::config::Secret;

/// How an instance of a backend kind boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootStyle {
    /// A VM: cloud-init user-data with the script and two systemd units.
    Vm,
    /// A container: the script is its command, its files are copied in before it starts.
    Container,
}

/// A file an instance receives at a path, with its mode. Secret contents never print.
#[derive(Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub mode: u32,
    pub content: Secret,
}

impl std::fmt::Debug for File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "File({}, {:o}, <redacted>)", self.path, self.mode)
    }
}

/// What an instance receives to become a runner (rendered by `bootstrap`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootData {
    /// Command a container runs (containers only).
    pub command: Vec<String>,
    /// Environment variables; never secrets.
    pub env: Vec<(String, String)>,
    /// Files written before the instance starts (containers) or by cloud-init (VMs).
    pub files: Vec<File>,
    /// cloud-init user-data (VMs only).
    pub user_data: Option<Secret>,
}

/// The runner's credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A just-in-time configuration (base64 from GitHub's `generate-jitconfig`).
    Jit(Secret),
    /// A registration token for `config.sh --ephemeral`.
    RegistrationToken(Secret),
}

/// Everything the bootstrap of one runner needs.
#[derive(Debug, Clone)]
pub struct RunnerSetup {
    pub runner_name: String,
    pub labels: Vec<String>,
    /// `https://github.com/ORG` or `https://github.com/ORG/REPO` (for `config.sh --url`).
    pub url: String,
    /// The GitHub runner group's name (for `config.sh --runnergroup`).
    pub runner_group: Option<String>,
    /// The runner program: GitHub's runner, or Gitea's `act_runner`.
    pub agent: crate::config::Agent,
    /// Jobs' containers through runnerctl's nspawn container hooks (GitHub's runner only).
    pub container_jobs: Option<crate::config::ContainerJobs>,
    pub credential: Credential,
}

impl RunnerSetup {
    /// The runner's environment for container jobs: where the hooks' entry point is, and what
    /// `runnerctl container-hook` is told.
    fn hook_env(&self) -> Vec<(String, String)> {
        let Some(c) = self
            .container_jobs
            .as_ref()
            .filter(|_| self.agent == crate::config::Agent::ActionsRunner)
        else {
            return Vec::new();
        };
        let mut env = vec![(
            "ACTIONS_RUNNER_CONTAINER_HOOKS".to_string(),
            crate::hook::ENTRY_POINT_PATH.to_string(),
        )];
        if c.require_job_container {
            env.push(("ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER".into(), "true".into()));
        }
        if let Some(i) = &c.images {
            env.push(("RUNNERCTL_HOOK_IMAGES".into(), i.clone()));
        }
        env
    }

    /// The entry point file, when the runner uses the hooks.
    fn hook_file(&self) -> Option<File> {
        (!self.hook_env().is_empty()).then(|| File {
            path: crate::hook::ENTRY_POINT_PATH.into(),
            mode: 0o755,
            content: Secret::new(crate::hook::ENTRY_POINT),
        })
    }
}

pub const DIR: &str = "/run/runnerctl";
pub const SCRIPT: &str = "/run/runnerctl/bootstrap.sh";
pub const SETTINGS: &str = "/run/runnerctl/runner.env";
pub const JITCONFIG: &str = "/run/runnerctl/jitconfig";
pub const TOKEN: &str = "/run/runnerctl/token";

/// The default bootstrap script for containers.
pub const CONTAINER_SCRIPT: &str = include_str!("../scripts/container-bootstrap.sh");

/// The bootstrap script of VMs, run by two systemd units that cloud-init installs:
/// `runnerctl-install.service` (`install`, retried until it succeeds, leaves the marker) and
/// `runnerctl-runner.service` (`run`, once installed).
pub const VM_SCRIPT: &str = include_str!("../scripts/vm-bootstrap.sh");

const INSTALL_UNIT: &str = "[Unit]
Description=runnerctl: install the runner (retried until it succeeds)
Wants=network-online.target
After=network-online.target
ConditionPathExists=!/var/lib/runnerctl/installed

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/lib/runnerctl/bootstrap.sh install
Restart=on-failure
RestartSec=10s

[Install]
WantedBy=multi-user.target
";

const RUNNER_UNIT: &str = "[Unit]
Description=runnerctl: ephemeral Actions runner (GitHub or Gitea)
Wants=network-online.target
After=network-online.target runnerctl-install.service
ConditionPathExists=/var/lib/runnerctl/installed

[Service]
Type=simple
ExecStart=/usr/local/lib/runnerctl/bootstrap.sh run
Restart=no

[Install]
WantedBy=multi-user.target
";

/// One `write_files` entry of cloud-config. The content is base64: whatever it holds (a label
/// with a line break a YAML parser honours, such as `\r`, U+0085 or U+2028), it cannot change
/// the document's structure.
fn write_file(path: &str, mode: &str, content: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(content);
    format!("  - path: {path}\n    permissions: '{mode}'\n    owner: root:root\n    encoding: b64\n    content: {b64}\n")
}

/// The content of one `write_files` entry of user-data that [`render`] made, decoded.
pub fn file_content(entry: &serde_yaml::Value) -> Option<String> {
    use base64::Engine;
    let text = entry["content"].as_str()?;
    match entry["encoding"].as_str() {
        Some("b64") => base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()
            .and_then(|b| String::from_utf8(b).ok()),
        _ => Some(text.to_string()),
    }
}

const CLOUD_INIT_HEAD: &str =
    "#cloud-config\n# Rendered by runnerctl. The runner's credential is not in here.\nwrite_files:\n";

/// The hook a VM's bootstrap runs to fetch its credential through the backend's secret channel.
pub const FETCH_CREDENTIAL_HOOK: &str = "/usr/local/lib/runnerctl/fetch-credential";

/// Adds a non-secret file (such as a backend's [`FETCH_CREDENTIAL_HOOK`]) to VM user-data that
/// [`render`] made; `None` when `user_data` is not of that shape.
pub fn add_vm_file(user_data: &str, path: &str, mode: u32, content: &str) -> Option<String> {
    let rest = user_data.strip_prefix(CLOUD_INIT_HEAD)?;
    let entry = write_file(path, &format!("{mode:04o}"), content);
    Some(format!("{CLOUD_INIT_HEAD}{entry}{rest}"))
}

/// The runner unit, with the runner's extra environment (container hooks).
fn runner_unit(env: &[(String, String)]) -> String {
    let lines: String = env
        .iter()
        .map(|(k, v)| format!("Environment=\"{k}={v}\"\n"))
        .collect();
    RUNNER_UNIT.replace("Restart=no\n", &format!("Restart=no\n{lines}"))
}

/// cloud-init user-data for a VM: the script, its settings and the two units; never the
/// credential, which `BootData::files` carries for the backend's secret channel.
fn cloud_init(script: &str, settings: &str, setup: &RunnerSetup) -> String {
    let mut out = String::from(CLOUD_INIT_HEAD);
    out.push_str(&write_file("/etc/runnerctl/runner.env", "0644", settings));
    out.push_str(&write_file(
        "/usr/local/lib/runnerctl/bootstrap.sh",
        "0755",
        script,
    ));
    out.push_str(&write_file(
        "/etc/systemd/system/runnerctl-install.service",
        "0644",
        INSTALL_UNIT,
    ));
    out.push_str(&write_file(
        "/etc/systemd/system/runnerctl-runner.service",
        "0644",
        &runner_unit(&setup.hook_env()),
    ));
    if let Some(f) = setup.hook_file() {
        out.push_str(&write_file(&f.path, "0755", f.content.expose()));
    }
    out.push_str("runcmd:\n  - [systemctl, daemon-reload]\n  - [systemctl, enable, --now, runnerctl-install.service]\n  - [systemctl, enable, --now, runnerctl-runner.service]\n");
    out
}

/// Where a VM keeps what the broker needs: the one-time token (as the header curl sends) and the
/// CA it pins.
pub const BROKER_TOKEN: &str = "/etc/runnerctl/broker-token";
pub const BROKER_CA: &str = "/etc/runnerctl/broker-ca.pem";

/// The fetch hook of a VM whose credential waits at the broker: one POST with the token (and,
/// where the cloud signs one, the instance's identity proof), the CA pinned, retried with backoff
/// (409: not bound yet; 401: no identity proof yet; network trouble) until the runner's time to
/// start has passed (a warm-pool instance's: its `max_idle_age` too); a refusal (403) stops it;
/// 425 (a warm instance no job took yet, the request held by the broker) is asked again at
/// once. The token file goes once it is redeemed.
const BROKER_HOOK: &str = r#"#!/bin/sh
# runnerctl: fetch this runner's credential from the credential broker, once.
set -u
dir="$1"
out="$dir/{{file}}"
deadline=$(( $(date +%s) + {{wait}} ))
delay=1
proof="$dir/.identity"
while [ "$(date +%s)" -lt "$deadline" ]; do
  {{identity}}
  code=$(curl -sS -o "$out.part" -w '%{http_code}' --max-time 20     --cacert /etc/runnerctl/broker-ca.pem -H @/etc/runnerctl/broker-token -H @"$proof"     -X POST {{url}}/v1/credential 2>/dev/null) || code=000
  rm -f "$proof"
  case "$code" in
  200)
    chmod 600 "$out.part" && mv "$out.part" "$out" && rm -f /etc/runnerctl/broker-token
    exit 0
    ;;
  403 | 400)
    rm -f "$out.part"
    echo "runnerctl: the credential broker refused this instance's token ($code)" >&2
    exit 1
    ;;
  425)
    # A warm-pool instance: no job has taken it yet. The broker held the request; ask again.
    rm -f "$out.part"
    delay=1
    continue
    ;;
  esac
  rm -f "$out.part"
  sleep "$delay"
  [ "$delay" -lt 30 ] && delay=$((delay * 2))
done
echo "runnerctl: no credential from the broker within the time to start" >&2
exit 1
"#;

/// How an instance proves its identity to the broker, besides its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// None: the address only.
    Address,
    /// A Compute Engine identity token from the metadata server (`format=full`, audience the
    /// broker's URL; the instance needs a service account). `RUNNERCTL_METADATA_URL` replaces
    /// the metadata server's address (tests).
    GceIdentityToken,
    /// EC2's signed instance identity document and its RSA-SHA256 signature, from IMDSv2
    /// (`RUNNERCTL_IMDS_URL` replaces IMDS's address, for tests).
    Ec2IdentityDocument,
}

/// The hook's lines that write the identity proof header to `$proof` (empty: none).
fn proof_lines(proof: Proof, url: &str) -> String {
    match proof {
        Proof::Address => ": >\"$proof\"".into(),
        Proof::GceIdentityToken => format!(
            r#"md="${{RUNNERCTL_METADATA_URL:-http://metadata.google.internal}}"
  if id=$(curl -sSf --max-time 10 -H 'Metadata-Flavor: Google' "$md/computeMetadata/v1/instance/service-accounts/default/identity?format=full&audience="{} 2>/dev/null); then
    printf 'X-Runnerctl-Identity: %s\n' "$id" >"$proof"
  else
    : >"$proof"
  fi"#,
            shell_quote(url)
        ),
        Proof::Ec2IdentityDocument => r#"imds="${RUNNERCTL_IMDS_URL:-http://169.254.169.254}"
  if t=$(curl -sSf --max-time 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$imds/latest/api/token" 2>/dev/null) &&
    doc=$(curl -sSf --max-time 5 -H "X-aws-ec2-metadata-token: $t" "$imds/latest/dynamic/instance-identity/document" 2>/dev/null | base64 | tr -d '\n') &&
    sig=$(curl -sSf --max-time 5 -H "X-aws-ec2-metadata-token: $t" "$imds/latest/dynamic/instance-identity/signature" 2>/dev/null | tr -d '\n'); then
    printf 'X-Runnerctl-Identity: %s.%s\n' "$doc" "$sig" >"$proof"
  else
    : >"$proof"
  fi"#
            .into(),
    }
}

/// Makes an instance's bootstrap fetch its credential from the broker at `url` (CA `ca_pem`
/// pinned) with the one-time `token`, for at most `wait_secs`: the credential file leaves
/// `BootData::files` (no backend delivers it), and the token, the CA and the fetch hook join
/// the user-data (a VM) or the files (a container).
pub fn through_broker(
    boot: &mut BootData,
    url: &str,
    ca_pem: &str,
    token: &Secret,
    wait_secs: u64,
) -> Result<(), BootstrapError> {
    through_broker_proving(boot, url, ca_pem, token, wait_secs, Proof::Address)
}

/// [`through_broker`], the instance also proving its identity with `proof`.
pub fn through_broker_proving(
    boot: &mut BootData,
    url: &str,
    ca_pem: &str,
    token: &Secret,
    wait_secs: u64,
    proof: Proof,
) -> Result<(), BootstrapError> {
    let not_vm = || BootstrapError::NotVm;
    let Some(i) = boot.files.iter().position(|f| is_secret(&f.path)) else {
        return Err(not_vm());
    };
    let credential = boot.files.remove(i);
    let file = credential.path.rsplit('/').next().unwrap_or("jitconfig");
    let hook = BROKER_HOOK
        .replace("{{file}}", file)
        .replace("{{wait}}", &wait_secs.to_string())
        .replace(
            "{{identity}}",
            &proof_lines(proof, url.trim_end_matches('/')),
        )
        .replace("{{url}}", &shell_quote(url.trim_end_matches('/')));
    let header = format!("Authorization: Bearer {}\n", token.expose());
    let Some(user_data) = boot.user_data.as_ref().map(|u| u.expose().to_string()) else {
        // A container (or the fake backend's stand-in): the same files, copied in.
        for (path, mode, content) in [
            (FETCH_CREDENTIAL_HOOK, 0o700, hook),
            (BROKER_CA, 0o644, ca_pem.to_string()),
            (BROKER_TOKEN, 0o600, header),
        ] {
            boot.files.push(File {
                path: path.into(),
                mode,
                content: Secret::new(content),
            });
        }
        return Ok(());
    };
    let with = add_vm_file(&user_data, FETCH_CREDENTIAL_HOOK, 0o700, &hook)
        .and_then(|u| add_vm_file(&u, BROKER_CA, 0o644, ca_pem))
        .and_then(|u| add_vm_file(&u, BROKER_TOKEN, 0o600, &header))
        .ok_or_else(not_vm)?;
    boot.user_data = Some(Secret::new(with));
    Ok(())
}

/// Why a bootstrap cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot read bootstrap template `{path}`: {source}")]
    Template {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the credential broker serves VMs; this bootstrap is not a VM's")]
    NotVm,
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The value [`shell_quote`] quoted.
pub fn shell_unquote(s: &str) -> String {
    s.strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .map(|v| v.replace(r"'\''", "'"))
        .unwrap_or_else(|| s.to_string())
}

fn fill(template: &str, setup: &RunnerSetup) -> String {
    template
        .replace("{{runner_name}}", &setup.runner_name)
        .replace("{{labels}}", &setup.labels.join(","))
        .replace("{{url}}", &setup.url)
        .replace(
            "{{runner_group}}",
            setup.runner_group.as_deref().unwrap_or(""),
        )
}

/// Renders what an instance that boots in `style` receives. `template` replaces the default
/// script.
pub fn render(
    style: BootStyle,
    setup: &RunnerSetup,
    template: Option<&str>,
) -> Result<BootData, BootstrapError> {
    let settings = format!(
        "RUNNER_NAME={}\nRUNNER_LABELS={}\nRUNNER_URL={}\nRUNNER_GROUP={}\nRUNNER_AGENT={}\n",
        shell_quote(&setup.runner_name),
        shell_quote(&setup.labels.join(",")),
        shell_quote(&setup.url),
        shell_quote(setup.runner_group.as_deref().unwrap_or("")),
        match setup.agent {
            crate::config::Agent::ActionsRunner => "actions-runner",
            crate::config::Agent::ActRunner => "act_runner",
        },
    );
    let (path, secret) = match &setup.credential {
        Credential::Jit(s) => (JITCONFIG, s.clone()),
        Credential::RegistrationToken(s) => (TOKEN, s.clone()),
    };
    let credential = File {
        path: path.into(),
        mode: 0o600,
        content: secret,
    };
    if style == BootStyle::Vm {
        let script = fill(template.unwrap_or(VM_SCRIPT), setup);
        return Ok(BootData {
            command: vec![],
            env: vec![],
            files: vec![credential],
            user_data: Some(Secret::new(cloud_init(&script, &settings, setup))),
        });
    }
    let mut env = vec![("RUNNER_NAME".into(), setup.runner_name.clone())];
    env.extend(setup.hook_env());
    let hook = setup.hook_file();
    Ok(BootData {
        command: vec!["/bin/sh".into(), SCRIPT.into()],
        env,
        files: [
            File {
                path: SCRIPT.into(),
                mode: 0o755,
                content: Secret::new(fill(template.unwrap_or(CONTAINER_SCRIPT), setup)),
            },
            File {
                path: SETTINGS.into(),
                mode: 0o644,
                content: Secret::new(settings),
            },
            credential,
        ]
        .into_iter()
        .chain(hook)
        .collect(),
        user_data: None,
    })
}

/// Reads a group's template file.
pub fn read_template(path: &std::path::Path) -> Result<String, BootstrapError> {
    std::fs::read_to_string(path).map_err(|source| BootstrapError::Template {
        path: path.display().to_string(),
        source,
    })
}

/// Whether a file carries a secret (shown redacted).
pub fn is_secret(path: &str) -> bool {
    path == JITCONFIG || path == TOKEN
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(cred: Credential) -> RunnerSetup {
        RunnerSetup {
            runner_name: "rm-demo-1a2b".into(),
            labels: vec!["self-hosted".into(), "linux".into()],
            url: "https://github.com/octo-org".into(),
            runner_group: Some("demo".into()),
            agent: crate::config::Agent::ActionsRunner,
            container_jobs: None,
            credential: cred,
        }
    }

    #[test]
    fn the_secret_only_travels_as_a_root_only_file() {
        let b = render(
            BootStyle::Container,
            &setup(Credential::Jit(Secret::new("SEKRIT"))),
            None,
        )
        .unwrap();
        let secret_files: Vec<_> = b
            .files
            .iter()
            .filter(|f| f.content.expose().contains("SEKRIT"))
            .collect();
        assert_eq!(secret_files.len(), 1);
        assert_eq!(secret_files[0].path, JITCONFIG);
        assert_eq!(secret_files[0].mode, 0o600);
        assert!(b.env.iter().all(|(_, v)| !v.contains("SEKRIT")));
        assert!(b.command.iter().all(|c| !c.contains("SEKRIT")));
        assert!(!format!("{b:?}").contains("SEKRIT"), "debug output redacts");
    }

    #[test]
    fn registration_tokens_use_their_own_file() {
        let b = render(
            BootStyle::Container,
            &setup(Credential::RegistrationToken(Secret::new("TOK"))),
            None,
        )
        .unwrap();
        assert!(b
            .files
            .iter()
            .any(|f| f.path == TOKEN && f.content.expose() == "TOK"));
    }

    #[test]
    fn templates_get_non_secret_values_only() {
        let b = render(
            BootStyle::Container,
            &setup(Credential::Jit(Secret::new("S"))),
            Some("#!/bin/sh\necho {{runner_name}} {{labels}} {{url}} {{runner_group}}\n"),
        )
        .unwrap();
        let script = &b.files[0];
        assert_eq!(
            script.content.expose(),
            "#!/bin/sh\necho rm-demo-1a2b self-hosted,linux https://github.com/octo-org demo\n"
        );
    }

    #[test]
    fn vms_get_cloud_init_without_the_credential() {
        for kind in [BootStyle::Vm] {
            let b = render(kind, &setup(Credential::Jit(Secret::new("SEKRIT"))), None).unwrap();
            let ud = b.user_data.as_ref().unwrap().expose();
            assert!(ud.starts_with("#cloud-config\n"));
            assert!(
                !ud.contains("SEKRIT"),
                "the credential is never in user-data"
            );
            let doc: serde_yaml::Value = serde_yaml::from_str(ud).expect("valid YAML");
            let files = doc["write_files"].as_sequence().unwrap();
            for f in files {
                assert!(
                    !file_content(f).unwrap().contains("SEKRIT"),
                    "the credential is in no file of the user-data"
                );
            }
            let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
            assert_eq!(
                paths,
                [
                    "/etc/runnerctl/runner.env",
                    "/usr/local/lib/runnerctl/bootstrap.sh",
                    "/etc/systemd/system/runnerctl-install.service",
                    "/etc/systemd/system/runnerctl-runner.service",
                ]
            );
            let install = file_content(&files[2]).unwrap();
            assert!(
                install.contains("Restart=on-failure"),
                "retried until it succeeds"
            );
            assert!(install.contains("ConditionPathExists=!/var/lib/runnerctl/installed"));
            let runner = file_content(&files[3]).unwrap();
            assert!(runner.contains("ConditionPathExists=/var/lib/runnerctl/installed"));
            let script = file_content(&files[1]).unwrap();
            assert!(script.contains("starting runner rm-demo-1a2b"));
            assert_eq!(files[1]["permissions"], "0755");
            // The credential goes to the backend, for its secret channel.
            assert_eq!(b.files.len(), 1);
            assert_eq!(
                (b.files[0].path.as_str(), b.files[0].mode),
                (JITCONFIG, 0o600)
            );
            assert!(b.command.is_empty() && b.env.is_empty());
        }
    }

    #[test]
    fn the_scripts_are_valid_shell() {
        for script in [CONTAINER_SCRIPT, VM_SCRIPT] {
            let out = std::process::Command::new("sh")
                .args(["-n", "-c", script])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn settings_are_shell_quoted() {
        let mut s = setup(Credential::Jit(Secret::new("S")));
        s.labels = vec!["it's".into()];
        let b = render(BootStyle::Container, &s, None).unwrap();
        assert!(b.files[1]
            .content
            .expose()
            .contains(r"RUNNER_LABELS='it'\''s'"));
    }

    #[test]
    fn container_jobs_install_the_hook_entry_point_and_set_the_runner_s_environment() {
        let mut s = setup(Credential::Jit(Secret::new("S")));
        let b = render(BootStyle::Vm, &s, None).unwrap();
        assert!(!b.user_data.unwrap().expose().contains("CONTAINER_HOOKS"));
        s.container_jobs = Some(crate::config::ContainerJobs {
            require_job_container: true,
            images: Some("/var/lib/runnerctl/images".into()),
        });
        let b = render(BootStyle::Vm, &s, None).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(b.user_data.unwrap().expose()).unwrap();
        let files = doc["write_files"].as_sequence().unwrap();
        let hook = files
            .iter()
            .find(|f| f["path"] == crate::hook::ENTRY_POINT_PATH)
            .expect("the entry point is installed");
        assert_eq!(hook["permissions"], "0755");
        assert!(file_content(hook).unwrap().contains("container-hook"));
        let unit = files
            .iter()
            .find(|f| f["path"] == "/etc/systemd/system/runnerctl-runner.service")
            .map(|f| file_content(f).unwrap())
            .unwrap();
        assert!(unit.contains(
            "Environment=\"ACTIONS_RUNNER_CONTAINER_HOOKS=/usr/local/lib/runnerctl/container-hook.js\""
        ), "{unit}");
        assert!(unit.contains("Environment=\"ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER=true\""));
        assert!(unit.contains("Environment=\"RUNNERCTL_HOOK_IMAGES=/var/lib/runnerctl/images\""));
        // Containers (the fake backend) get the same through their environment.
        let b = render(BootStyle::Container, &s, None).unwrap();
        assert!(b
            .env
            .iter()
            .any(|(k, _)| k == "ACTIONS_RUNNER_CONTAINER_HOOKS"));
        assert!(b
            .files
            .iter()
            .any(|f| f.path == crate::hook::ENTRY_POINT_PATH));
        // act_runner does not use the hooks.
        s.agent = crate::config::Agent::ActRunner;
        let b = render(BootStyle::Vm, &s, None).unwrap();
        assert!(!b.user_data.unwrap().expose().contains("CONTAINER_HOOKS"));
    }
}
