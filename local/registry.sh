#!/usr/bin/env bash
# OCI registries on this machine for the local farm and the e2e tier: distribution's `registry`
# (built by toolchain/bootstrap.sh from Go modules, see toolchain/steps/registry.sh), served over
# TLS with a certificate from a local CA that the stack config trusts (`registries:`).
#
#   local/registry.sh ca                      make the local CA (once): $DIR/ca.pem
#   local/registry.sh up NAME ADDR:PORT [--proxy URL] [--ca-dir DIR] [--plain]
#                                             start registry NAME on ADDR:PORT (a pull-through
#                                             mirror of URL with --proxy; its cert signed by the
#                                             CA in DIR instead of $DIR's; plain HTTP, no TLS,
#                                             with --plain: for the `http: true` opt-in only)
#   local/registry.sh down [NAME...]          stop them (all without a name); data stays
#   local/registry.sh bundle                  print the path of a CA bundle (system CAs + the local
#                                             CA) for clients: SSL_CERT_FILE=$(local/registry.sh bundle)
#
# State: $BKF_REGISTRY_DIR (default .state/local/registry): ca.pem/ca-key.pem, and per registry
# NAME/{config.yml,cert.pem,key.pem,data/,registry.log,pid}. The access log (every request) is
# NAME/registry.log. Listens only on the address given (loopback, the test hosts' bridge 10.77.0.1
# or the local cluster's bridge 10.79.0.1, which its pods reach as their gateway: local/k8s.sh).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${BKF_REGISTRY_DIR:-$ROOT/.state/local/registry}
BIN=${BKF_REGISTRY_BIN:-$(command -v registry || echo "$ROOT/.toolchain/bin/registry")}

log() { printf 'registry: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

make_ca() {
  # make_ca CADIR: an ECDSA P-256 CA valid for 30 days (renewed when it has less than a day; the
  # local stack config then trusts the new one, and the next `make farm` restarts the nodes)
  local d=$1
  mkdir -p "$d"
  if [ -s "$d/ca.pem" ] && openssl x509 -in "$d/ca.pem" -noout -checkend 86400 >/dev/null; then
    return 0
  fi
  (umask 077; openssl ecparam -name prime256v1 -genkey -noout -out "$d/ca-key.pem")
  openssl req -x509 -new -key "$d/ca-key.pem" -sha256 -days 30 -subj "/CN=buildkit-farm local registry CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$d/ca.pem" 2>/dev/null
  log "new local CA: $d/ca.pem"
}

server_cert() {
  # server_cert RDIR HOST CADIR: the registry's certificate for HOST (an IP), signed by CADIR's CA
  local r=$1 host=$2 ca=$3 san
  if [[ $host =~ ^[0-9.]+$ ]]; then san="IP:$host"; else san="DNS:$host"; fi
  (umask 077; openssl ecparam -name prime256v1 -genkey -noout -out "$r/key.pem")
  openssl req -new -key "$r/key.pem" -subj "/CN=$host" -out "$r/csr.pem" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$san" >"$r/ext.cnf"
  openssl x509 -req -in "$r/csr.pem" -CA "$ca/ca.pem" -CAkey "$ca/ca-key.pem" -CAcreateserial -days 7 \
    -sha256 -extfile "$r/ext.cnf" -out "$r/cert.pem" 2>/dev/null
  rm -f "$r/csr.pem" "$r/ext.cnf"
}

bundle() {
  make_ca "$DIR"
  local b=$DIR/client-bundle.pem
  cat /etc/ssl/certs/ca-certificates.crt "$DIR/ca.pem" >"$b.tmp" 2>/dev/null || cp "$DIR/ca.pem" "$b.tmp"
  mv "$b.tmp" "$b"
  echo "$b"
}

running() { [ -s "$1/pid" ] && kill -0 "$(cat "$1/pid")" 2>/dev/null; }

up() {
  local name=$1 addr=$2 proxy="" cadir=$DIR plain=0
  shift 2
  while [ $# -gt 0 ]; do
    case $1 in
      --proxy) proxy=$2; shift 2 ;;
      --ca-dir) cadir=$2; shift 2 ;;
      --plain) plain=1; shift ;;
      *) die "unknown option $1" ;;
    esac
  done
  [ -x "$BIN" ] || die "no registry binary at $BIN: run toolchain/bootstrap.sh"
  local host=${addr%:*}
  case $host in
    127.*|10.77.0.1|10.79.0.1) ;;
    *) die "$addr: registries listen only on loopback or a test bridge (10.77.0.1, the cluster's 10.79.0.1)" ;;
  esac
  make_ca "$DIR"
  make_ca "$cadir"
  local r=$DIR/$name
  mkdir -p "$r/data"
  if running "$r"; then
    if openssl x509 -in "$r/cert.pem" -noout -checkend 86400 >/dev/null 2>&1 &&
       openssl verify -CAfile "$cadir/ca.pem" "$r/cert.pem" >/dev/null 2>&1; then
      log "$name already running (pid $(cat "$r/pid"))"
      return 0
    fi
    log "$name: certificate expires within a day or its CA was renewed; restarting"
    down "$name"
  fi
  server_cert "$r" "$host" "$cadir"
  {
    printf 'version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n'
    printf 'storage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\n' "$r/data"
    printf 'http:\n  addr: %s\n' "$addr"
    if ((!plain)); then printf '  tls:\n    certificate: %s\n    key: %s\n' "$r/cert.pem" "$r/key.pem"; fi
    if [ -n "$proxy" ]; then printf 'proxy:\n  remoteurl: %s\n' "$proxy"; fi
  } >"$r/config.yml"
  # a mirror dials its upstream over TLS signed by the local CA: Go reads SSL_CERT_FILE
  SSL_CERT_FILE=$(bundle) OTEL_TRACES_EXPORTER=none setsid "$BIN" serve "$r/config.yml" \
    >>"$r/registry.log" 2>&1 </dev/null &
  echo $! >"$r/pid"

  local url="https://$addr/"
  ((!plain)) || url="http://$addr/"
  for _ in $(seq 50); do
    if curl -fsS --cacert "$cadir/ca.pem" "${url}v2/" >/dev/null 2>&1; then
      log "$name up on $url (pid $(cat "$r/pid")${proxy:+, mirror of $proxy}; log $r/registry.log)"
      return 0
    fi
    running "$r" || break
    sleep 0.2
  done
  tail -n 20 "$r/registry.log" >&2 || true
  die "$name did not answer on ${url}v2/"
}

down() {
  local names=("$@") n r pid
  if [ ${#names[@]} -eq 0 ]; then
    for r in "$DIR"/*/; do [ -f "$r/config.yml" ] && names+=("$(basename "$r")"); done
  fi
  for n in "${names[@]}"; do
    r=$DIR/$n
    if running "$r"; then
      pid=$(cat "$r/pid")
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
      log "$n stopped"
    fi
    rm -f "$r/pid"
  done
}

case "${1:-}" in
  ca) make_ca "$DIR"; echo "$DIR/ca.pem" ;;
  up) shift; [ $# -ge 2 ] || die "usage: $0 up NAME ADDR:PORT [--proxy URL] [--ca-dir DIR]"; up "$@" ;;
  down) shift; down "$@" ;;
  bundle) bundle ;;
  *) echo "usage: $0 ca|up|down|bundle" >&2; exit 2 ;;
esac
