#!/usr/bin/env bash
# buildkit-farm: connect a CI job to the farm in one step. The GitHub action (action.yml beside this
# file) and the GitLab template (examples/ci/gitlab/buildkit-farm.gitlab-ci.yml) both run this; any
# shell can. It runs the stack's own create script (stack output buildxCreateScript), which writes
# the certs 0600, wakes stopped nodes, orders each platform's nodes by the affinity key, skips a
# dead node and waits for booting ones: nothing of that is repeated here. This script only gathers
# the inputs, masks the client key and leaves the builder selected.
#
# Inputs (environment; a set variable wins over the same field of BKF_OUTPUTS):
#   BKF_OUTPUTS        `pulumi stack output --json` (with --show-secrets it also holds the client key)
#   BKF_CREATE_SCRIPT  stack output buildxCreateScript
#   BKF_BUILDER        stack output builderName
#   BKF_TLS_CA         stack output caCert
#   BKF_TLS_CERT       stack output clientCert
#   BKF_TLS_KEY        stack output clientKey (secret)
#   BKF_KEY            affinity key (default: $GITHUB_REPOSITORY, else $CI_PROJECT_PATH)
#   BKF_READY_TIMEOUT  seconds to wait for booting or woken nodes (default: the stack's own bound)
#   BKF_PLATFORMS      the platforms the job will build (comma- or space-separated; default: no check):
#                      refused unless a node that joined claims each
# On GitHub it adds BUILDX_BUILDER and BUILDX_CONFIG to $GITHUB_ENV and builder/nodes to $GITHUB_OUTPUT.
set -euo pipefail

github() { [ "${GITHUB_ACTIONS:-}" = true ]; }
die() {
  if github; then echo "::error::buildkit-farm: $*" >&2; else echo "buildkit-farm: $*" >&2; fi
  exit 1
}
# GitHub masks a value line by line: register every line of a PEM before anything can print it
mask() {
  github || return 0
  local line
  while IFS= read -r line; do [ -z "$line" ] || echo "::add-mask::$line"; done <<<"$1"
}

outputs=${BKF_OUTPUTS:-}
mask "${BKF_TLS_KEY:-}"
if [ -n "$outputs" ]; then
  command -v jq >/dev/null || die "the outputs input needs jq on PATH"
  jq -e 'type == "object"' >/dev/null 2>&1 <<<"$outputs" ||
    die "outputs is not a JSON object: pass the whole of \`pulumi stack output --json\`"
  # the secret fields, when --show-secrets put them there
  mask "$(jq -r '[.clientKey // empty, ((.clientKeys // {}) | objects | .[])] | .[] | strings' <<<"$outputs")"
fi

# field NAME: a stack output from BKF_OUTPUTS (empty when absent)
field() {
  [ -n "$outputs" ] || return 0
  jq -r --arg k "$1" '.[$k] // empty | strings' <<<"$outputs"
}
# need VALUE OUTPUT INPUT VARIABLE: refuse a missing input in one line
need() {
  [ -n "$1" ] || die "missing the stack output $2: set the input $3 ($4) or outputs (BKF_OUTPUTS)"
}

script=${BKF_CREATE_SCRIPT:-$(field buildxCreateScript)}
builder=${BKF_BUILDER:-$(field builderName)}
ca=${BKF_TLS_CA:-$(field caCert)}
cert=${BKF_TLS_CERT:-$(field clientCert)}
client_key=${BKF_TLS_KEY:-$(field clientKey)}
need "$script" buildxCreateScript create-script BKF_CREATE_SCRIPT
need "$builder" builderName builder-name BKF_BUILDER
need "$ca" caCert ca-cert BKF_TLS_CA
need "$cert" clientCert client-cert BKF_TLS_CERT
case $client_key in
  *"PRIVATE KEY"*) ;;
  *) die "missing the client key (stack output clientKey): set the input client-key (BKF_TLS_KEY)" \
       "or pass outputs from \`pulumi stack output --json --show-secrets\`";;
esac
key=${BKF_KEY:-${GITHUB_REPOSITORY:-${CI_PROJECT_PATH:-}}}
if [ -n "${BKF_READY_TIMEOUT:-}" ]; then
  [[ $BKF_READY_TIMEOUT =~ ^[0-9]+$ ]] || die "ready-timeout must be whole seconds, not '$BKF_READY_TIMEOUT'"
  # one bound for both waits the script may do: a woken node's start and a booting node's install
  export BKF_WAKE_TIMEOUT=${BKF_WAKE_TIMEOUT:-$BKF_READY_TIMEOUT}
fi

# the builder and its cert files live with the job (RUNNER_TEMP is emptied after it)
export BUILDX_CONFIG="${BUILDX_CONFIG:-${RUNNER_TEMP:-$HOME/.docker}/buildx}"
work=$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/buildkit-farm.XXXXXX")
trap 'rm -rf "$work"' EXIT
printf '%s\n' "$script" >"$work/create.sh"
# the create script reads the key from $BKF_KEY (a farm with one node per platform ignores it)
status=0
BKF_TLS_CA=$ca BKF_TLS_CERT=$cert BKF_TLS_KEY=$client_key BKF_KEY=$key \
  bash "$work/create.sh" | tee "$work/out" || status=$?
[ "$status" = 0 ] || die "no builder: the create script failed (exit $status), its messages are above"
# a literal prefix (a builder name may hold regex characters)
ready=$(awk -v p="builder $builder ready: " 'index($0, p) == 1 { print; exit }' "$work/out")
[ -n "$ready" ] ||
  die "the create script made no builder named $builder: builder-name must be the stack output builderName"
nodes=${ready#*ready: }
# buildx sends a platform no node claims to the builder's first node, where it runs emulated or fails
# with `exec format error` (docker/buildx#2119): the job's platforms are checked against the nodes'
if [ -n "${BKF_PLATFORMS:-}" ]; then
  claimed=" "
  for n in $nodes; do claimed+="${n#*=} "; done
  claimed=${claimed//,/ }
  for p in ${BKF_PLATFORMS//,/ }; do
    case $claimed in
      *" $p "*) ;;
      *) die "platform $p is not built by builder $builder (its nodes: $nodes): buildx would send it to" \
           "the first node, to run emulated or fail; build only the platforms listed";;
    esac
  done
fi

if [ -n "${GITHUB_ENV:-}" ]; then
  { echo "BUILDX_BUILDER=$builder"; echo "BUILDX_CONFIG=$BUILDX_CONFIG"; } >>"$GITHUB_ENV"
fi
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  { echo "builder=$builder"; echo "nodes=$nodes"; } >>"$GITHUB_OUTPUT"
fi
echo "buildkit-farm: builder $builder selected (BUILDX_CONFIG=$BUILDX_CONFIG): $nodes"
