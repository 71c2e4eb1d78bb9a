#!/bin/sh
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

# A warm-pool container: its credential is copied in when a job takes it (`ready` comes last).
if [ -f /run/runnerctl/warm ]; then
  echo "runnerctl: warm; waiting for a job"
  until [ -f /run/runnerctl/incoming/ready ]; do
    sleep 0.05 2>/dev/null || sleep 1
  done
  for f in jitconfig token; do
    if [ -f "/run/runnerctl/incoming/$f" ]; then
      mv "/run/runnerctl/incoming/$f" "/run/runnerctl/$f"
    fi
  done
  rm -rf /run/runnerctl/incoming /run/runnerctl/warm
fi
# With the credential broker, the credential is fetched with a one-time token.
if [ -f /etc/runnerctl/broker-token ] && [ -x /usr/local/lib/runnerctl/fetch-credential ]; then
  /usr/local/lib/runnerctl/fetch-credential /run/runnerctl || exit 1
fi
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
if [ "${RUNNER_AGENT:-}" = act_runner ]; then
  # Gitea's act_runner takes the token as an argument only; nothing else runs here yet, and the
  # token is replaced on the forge once this runner has registered.
  token=$(cat /run/runnerctl/token)
  rm -f /run/runnerctl/token
  echo "runnerctl: registering act_runner {{runner_name}}"
  act_runner register --no-interactive --ephemeral --instance "$RUNNER_URL" --token "$token" \
    --name "$RUNNER_NAME" --labels "$RUNNER_LABELS" || exit 1
  unset token
  exec act_runner daemon
fi
ACTIONS_RUNNER_INPUT_TOKEN=$(cat /run/runnerctl/token)
export ACTIONS_RUNNER_INPUT_TOKEN
rm -f /run/runnerctl/token
echo "runnerctl: registering runner {{runner_name}}"
./config.sh --unattended --ephemeral --replace --url "$RUNNER_URL" --name "$RUNNER_NAME" \
  --labels "$RUNNER_LABELS" ${RUNNER_GROUP:+--runnergroup "$RUNNER_GROUP"} --work _work || exit 1
unset ACTIONS_RUNNER_INPUT_TOKEN
exec ./run.sh
