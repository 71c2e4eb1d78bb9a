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

use crate::backend::{BootData, File};
use crate::config::{BackendKind, Secret};

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
    pub credential: Credential,
}

pub const DIR: &str = "/run/runnerctl";
pub const SCRIPT: &str = "/run/runnerctl/bootstrap.sh";
pub const SETTINGS: &str = "/run/runnerctl/runner.env";
pub const JITCONFIG: &str = "/run/runnerctl/jitconfig";
pub const TOKEN: &str = "/run/runnerctl/token";

/// The default bootstrap script for containers.
pub const CONTAINER_SCRIPT: &str = r#"#!/bin/sh
# runnerctl bootstrap: install once (retried until it succeeds), then run an ephemeral runner.
# Safe to run twice: the install step leaves a marker; the runner takes one job and exits.
set -u
. /run/runnerctl/runner.env
MARKER=/var/lib/runnerctl/installed

install() {
  [ -f "$MARKER" ] && return 0
  # Images may ship an installer of their own (downloading the runner, adding packages).
  if [ -x /usr/local/bin/runnerctl-install ]; then
    /usr/local/bin/runnerctl-install || return 1
  fi
  mkdir -p /var/lib/runnerctl && touch "$MARKER"
}

tries=0
until install; do
  tries=$((tries + 1))
  if [ "$tries" -ge 10 ]; then
    echo "runnerctl: install failed $tries times; giving up" >&2
    exit 1
  fi
  echo "runnerctl: install failed; retrying" >&2
  sleep $((tries * 3))
done

cd "${RUNNER_DIR:-/home/runner}" || exit 1
if [ ! -f /run/runnerctl/jitconfig ] && [ ! -f /run/runnerctl/token ]; then
  # A second run: the credential was consumed by the first, whose runner owns this instance.
  echo "runnerctl: runner {{runner_name}} was started already; nothing to do"
  exit 0
fi
if [ -f /run/runnerctl/jitconfig ]; then
  ACTIONS_RUNNER_INPUT_JITCONFIG=$(cat /run/runnerctl/jitconfig)
  export ACTIONS_RUNNER_INPUT_JITCONFIG
  rm -f /run/runnerctl/jitconfig
  echo "runnerctl: starting runner {{runner_name}} (just-in-time configuration)"
  exec ./run.sh
fi
ACTIONS_RUNNER_INPUT_TOKEN=$(cat /run/runnerctl/token)
export ACTIONS_RUNNER_INPUT_TOKEN
rm -f /run/runnerctl/token
echo "runnerctl: registering runner {{runner_name}}"
./config.sh --unattended --ephemeral --replace --url "$RUNNER_URL" --name "$RUNNER_NAME" \
  --labels "$RUNNER_LABELS" ${RUNNER_GROUP:+--runnergroup "$RUNNER_GROUP"} --work _work || exit 1
unset ACTIONS_RUNNER_INPUT_TOKEN
exec ./run.sh
"#;

/// Why a bootstrap cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot read bootstrap template `{path}`: {source}")]
    Template {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the bootstrap of `{0}` instances is not available in this version (only containers and the fake backend)")]
    Unsupported(BackendKind),
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
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

/// Renders what an instance of `kind` receives. `template` replaces the default script.
pub fn render(
    kind: BackendKind,
    setup: &RunnerSetup,
    template: Option<&str>,
) -> Result<BootData, BootstrapError> {
    match kind {
        BackendKind::Docker | BackendKind::Fake => {}
        other => return Err(BootstrapError::Unsupported(other)),
    }
    let settings = format!(
        "RUNNER_NAME={}\nRUNNER_LABELS={}\nRUNNER_URL={}\nRUNNER_GROUP={}\n",
        shell_quote(&setup.runner_name),
        shell_quote(&setup.labels.join(",")),
        shell_quote(&setup.url),
        shell_quote(setup.runner_group.as_deref().unwrap_or("")),
    );
    let (path, secret) = match &setup.credential {
        Credential::Jit(s) => (JITCONFIG, s.clone()),
        Credential::RegistrationToken(s) => (TOKEN, s.clone()),
    };
    Ok(BootData {
        command: vec!["/bin/sh".into(), SCRIPT.into()],
        env: vec![("RUNNER_NAME".into(), setup.runner_name.clone())],
        files: vec![
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
            File {
                path: path.into(),
                mode: 0o600,
                content: secret,
            },
        ],
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
            credential: cred,
        }
    }

    #[test]
    fn the_secret_only_travels_as_a_root_only_file() {
        let b = render(
            BackendKind::Docker,
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
            BackendKind::Docker,
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
            BackendKind::Docker,
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
    fn settings_are_shell_quoted() {
        let mut s = setup(Credential::Jit(Secret::new("S")));
        s.labels = vec!["it's".into()];
        let b = render(BackendKind::Docker, &s, None).unwrap();
        assert!(b.files[1]
            .content
            .expose()
            .contains(r"RUNNER_LABELS='it'\''s'"));
    }
}
