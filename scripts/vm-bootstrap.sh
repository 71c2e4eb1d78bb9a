#!/bin/sh
# runnerctl bootstrap for VMs. `install` runs once (its unit retries it until it succeeds and it
# leaves a marker); `run` starts an ephemeral runner. Safe to run twice.
set -u
. /etc/runnerctl/runner.env
MARKER=/var/lib/runnerctl/installed
CREDENTIAL_DIR=/run/runnerctl

case "${1:-}" in
install)
  [ -f "$MARKER" ] && exit 0
  if [ -x /usr/local/bin/runnerctl-install ]; then
    /usr/local/bin/runnerctl-install || exit 1
  fi
  mkdir -p /var/lib/runnerctl && touch "$MARKER"
  ;;
run)
  [ -f "$MARKER" ] || exit 1
  mkdir -p "$CREDENTIAL_DIR" && chmod 700 "$CREDENTIAL_DIR"
  # The credential never travels in the user-data: the backend delivers it through its own
  # secret channel, fetched here by its hook, or placed as a file.
  if [ ! -f "$CREDENTIAL_DIR/jitconfig" ] && [ ! -f "$CREDENTIAL_DIR/token" ]; then
    if [ -f /var/lib/runnerctl/started ]; then
      echo "runnerctl: runner {{runner_name}} was started already; nothing to do"
      exit 0
    fi
    if [ -x /usr/local/lib/runnerctl/fetch-credential ]; then
      /usr/local/lib/runnerctl/fetch-credential "$CREDENTIAL_DIR" || exit 1
    fi
  fi
  tries=0
  while [ ! -f "$CREDENTIAL_DIR/jitconfig" ] && [ ! -f "$CREDENTIAL_DIR/token" ]; do
    tries=$((tries + 1))
    [ "$tries" -ge 120 ] && { echo "runnerctl: no credential arrived" >&2; exit 1; }
    sleep 5
  done
  touch /var/lib/runnerctl/started
  cd "${RUNNER_DIR:-/home/runner}" || exit 1
  if [ -f "$CREDENTIAL_DIR/jitconfig" ]; then
    ACTIONS_RUNNER_INPUT_JITCONFIG=$(cat "$CREDENTIAL_DIR/jitconfig")
    export ACTIONS_RUNNER_INPUT_JITCONFIG
    rm -f "$CREDENTIAL_DIR/jitconfig"
    echo "runnerctl: starting runner {{runner_name}} (just-in-time configuration)"
    exec ./run.sh
  fi
  if [ "${RUNNER_AGENT:-}" = act_runner ]; then
    # Gitea's act_runner takes the token as an argument only; no job runs here yet, and the
    # token is replaced on the forge once this runner has registered.
    token=$(cat "$CREDENTIAL_DIR/token")
    rm -f "$CREDENTIAL_DIR/token"
    act_runner register --no-interactive --ephemeral --instance "$RUNNER_URL" --token "$token" \
      --name "$RUNNER_NAME" --labels "$RUNNER_LABELS" || exit 1
    unset token
    exec act_runner daemon
  fi
  ACTIONS_RUNNER_INPUT_TOKEN=$(cat "$CREDENTIAL_DIR/token")
  export ACTIONS_RUNNER_INPUT_TOKEN
  rm -f "$CREDENTIAL_DIR/token"
  ./config.sh --unattended --ephemeral --replace --url "$RUNNER_URL" --name "$RUNNER_NAME" \
    --labels "$RUNNER_LABELS" ${RUNNER_GROUP:+--runnergroup "$RUNNER_GROUP"} --work _work || exit 1
  unset ACTIONS_RUNNER_INPUT_TOKEN
  exec ./run.sh
  ;;
*)
  echo "usage: $0 install|run" >&2
  exit 2
  ;;
esac
