#!/usr/bin/env bash
# A single-node Kubernetes on this machine for the cluster tier (tests/k8s), from the binaries
# toolchain/bootstrap.sh builds from Go modules (steps/cluster.sh: kubernetes, etcd, containerd,
# rootlesskit, cached under ~/.cache/buildkit-farm/<name>-<version>/) plus Debian's runc and CNI
# plugins. Nothing is pulled: the pause, rootless BuildKit and python (the metrics sidecar) images are
# built here and imported.
#
#   local/k8s.sh up STATE      start etcd, containerd, apiserver, controller-manager, scheduler,
#                              kubelet and kube-proxy with all state under STATE (a fresh directory);
#                              import the images; a no-provisioner StorageClass with static local PVs
#   local/k8s.sh down [STATE]  stop it all in order and remove what it made (default: the running one)
#   local/k8s.sh images OUT    build pause.tar, buildkit.tar and python.tar (+ buildkit.ref, python.ref) into OUT
#   local/k8s.sh import STATE TAR  one more image into the running cluster (a test's own)
#   local/k8s.sh env STATE     print KUBECONFIG=... and the bin dirs (for a shell: eval "$(...)")
#
# Network: bridge bkf-k8s0 with 10.79.0.1/24, the node's address and the pods' gateway; pods get
# 10.79.0.100-199 on it (CNI bridge + host-local; the plugin refuses a bridge that already has an
# address other than its gateway, so pods share the node's subnet); tests put the addresses clients
# dial in 10.79.0.10-99; Services 10.81.0.0/24. Ports: etcd 127.0.0.1:12379/12380, apiserver
# 10.79.0.1:16443 (on the bridge: kube-proxy reaches it from its namespace), kubelet
# 10.79.0.1:10250 (healthz :10248), controller-manager and scheduler on 10.79.0.1 (their default
# ports), containerd's stream server on 10.79.0.1.
# Services: kube-proxy (iptables mode) runs in its own network namespace, bkf-k8s-svc, plugged into
# the bridge as 10.79.0.2, so that its KUBE-* rules are written there and never into this shared
# machine's firewall; the root namespace routes the Service range via 10.79.0.2 (one route on the
# bridge, gone with it), and kube-proxy masquerades what it forwards (masqueradeAll), so replies
# come back through it; inside, the Service range goes to 10.79.0.3, which nothing holds, so that a
# Service with no endpoint is refused by kube-proxy's REJECT rule. down runs `kube-proxy --cleanup` there, checks no KUBE-* chain is left and
# deletes the namespace. Nothing else writes a firewall rule (ipMasq off, no portmap, kubelet's
# makeIPTablesUtilChains off; down removes kubelet's KUBE-* chains if any appear anyway). Only one
# cluster at a time (/run/bkf-k8s/current names the running one). Kubelet changes three sysctls;
# down restores them.
# shellcheck source-path=SCRIPTDIR/..
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=toolchain/versions.env
source "$ROOT/toolchain/versions.env"
CACHE_ROOT=${BUILDKIT_FARM_CACHE:-$HOME/.cache/buildkit-farm}
K8S_BIN=$CACHE_ROOT/kubernetes-$KUBERNETES_VERSION
ETCD_BIN=$CACHE_ROOT/etcd-$ETCD_VERSION
CTRD_BIN=$CACHE_ROOT/containerd-$CONTAINERD_VERSION
RLK_BIN=$CACHE_ROOT/rootlesskit-$ROOTLESSKIT_VERSION
BK_BINS=("$CACHE_ROOT/buildkitd-$BUILDKIT_VERSION/buildkitd" "$CACHE_ROOT/buildctl-$BUILDKIT_VERSION/buildctl")

BRIDGE=bkf-k8s0
NODE_IP=10.79.0.1
NODE_NAME=bkf-k8s-node
POD_RANGE=(10.79.0.100 10.79.0.199)
SERVICE_CIDR=10.81.0.0/24
#: kube-proxy's network namespace and its address on the bridge (the root namespace's next hop to
#: the Service range)
SVC_NS=bkf-k8s-svc
SVC_IP=10.79.0.2
#: the next hop of the Service range inside that namespace: held by nothing (svc_netns_up)
SVC_NOWHERE=10.79.0.3
APISERVER_PORT=16443
ETCD_PORT=12379
ETCD_PEER_PORT=12380
RUN=/run/bkf-k8s
#: the sandbox image containerd pins (never pulled, never garbage collected)
PAUSE_IMAGE=registry.k8s.io/pause:bkf-local
#: the rootless BuildKit image; the stack pins it as <this>@<manifest digest>
BUILDKIT_IMAGE=localhost/buildkit-farm/buildkit:$BUILDKIT_VERSION-rootless-local
#: an image with python3 for metrics.port's sidecar (kubernetes.metricsImage), from this machine's python3
PYTHON=/usr/bin/python3.11
PYTHON_IMAGE=localhost/buildkit-farm/python:3.11-local
#: static local PVs for the cache claims (the no-provisioner StorageClass binds them)
PV_COUNT=${BKF_K8S_PVS:-3}
STORAGE_CLASS=bkf-local
#: sysctls kubelet sets (kubelet: kernel.panic, kernel.panic_on_oops, vm.overcommit_memory) or the
#: CNI bridge plugin as a gateway (ip_forward): saved at up, restored at down
SYSCTLS="kernel.panic kernel.panic_on_oops vm.overcommit_memory net.ipv4.ip_forward"
COMPONENTS="kube-proxy kubelet kube-scheduler kube-controller-manager kube-apiserver etcd"

log() { printf 'k8s: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
T0=$(date +%s.%N)
lap() { log "$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%6.1fs", b - a }') $*"; }

need() {
  # need FILE...: every file is an executable, else the toolchain is incomplete
  local b missing=()
  for b in "$@"; do [ -x "$b" ] || missing+=("$b"); done
  ((${#missing[@]} == 0)) || die "missing ${missing[*]}: run toolchain/bootstrap.sh"
}

need_image_bins() {
  need "$RLK_BIN/rootlesskit" "${BK_BINS[@]}" /usr/sbin/runc /bin/busybox "$PYTHON"
  command -v gcc >/dev/null || die "missing gcc (the uid-map helper): run toolchain/bootstrap.sh"
}

need_cluster_bins() {
  need "$K8S_BIN"/{kube-apiserver,kube-controller-manager,kube-scheduler,kubelet,kubectl,kube-proxy} "$ETCD_BIN/etcd" \
    "$CTRD_BIN"/{containerd,containerd-shim-runc-v2,ctr} /usr/sbin/runc \
    /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/loopback
}

kc() { KUBECONFIG=$S/admin.kubeconfig "$K8S_BIN/kubectl" "$@"; }
ctr_() { "$CTRD_BIN/ctr" -a "$S/run/containerd.sock" -n k8s.io "$@"; }

# ----------------------------------------------------------------------------- images

build_images() {
  # build_images OUT: pause.tar, buildkit.tar and buildkit.ref (the name:tag@digest to pin).
  local out=$1 w
  need_image_bins
  mkdir -p "$out"
  w=$(mktemp -d "$out/rootfs.XXXXXX")
  # Debian's newuidmap fails inside a pod ("write to uid_map failed: Operation not permitted": the
  # container has no CAP_SYS_ADMIN); this setuid helper writes the map keeping only CAP_SET[UG]ID.
  # (static glibc warns that getpwuid needs glibc's NSS at run time: the image has /etc/passwd)
  gcc -static -O2 -o "$w/newuidmap" "$ROOT/local/k8s/subidmap.c" 2>"$w/gcc.log" || die "$(cat "$w/gcc.log")"
  cp "$w/newuidmap" "$w/newgidmap"
  chmod 4755 "$w/newuidmap" "$w/newgidmap"

  local pr=$w/pause
  mkdir -p "$pr"/{bin,dev,proc,sys}
  cp /bin/busybox "$pr/bin/"
  python3 "$ROOT/local/k8s/mkoci.py" "$pr" "$out/pause.tar" \
    '{"Entrypoint":["/bin/busybox","sleep","2147483647"]}' "$PAUSE_IMAGE" >/dev/null

  local r=$w/buildkit a l
  mkdir -p "$r"/{bin,usr/bin,etc,tmp,proc,sys,dev,run/user/1000,home/user/.local/share/buildkit} \
    "$r"/{home/user/.config/buildkit,lib/x86_64-linux-gnu,lib64}
  cp /bin/busybox "$r/bin/"
  # cp: the metrics sidecar's init container copies buildctl out (upstream's image has busybox's cp too)
  for a in sh ls cat echo sleep id mkdir touch date wc ps mount df env grep find du awk test rm cp; do
    ln -sf busybox "$r/bin/$a"
  done
  cp "${BK_BINS[@]}" "$RLK_BIN/rootlesskit" "$r/usr/bin/"
  cp /usr/sbin/runc "$r/usr/bin/runc"
  for l in $(ldd /usr/sbin/runc | awk '/=>/ { print $3 }'); do cp -L "$l" "$r/lib/x86_64-linux-gnu/"; done
  cp -L /lib64/ld-linux-x86-64.so.2 "$r/lib64/"
  cp -p "$w/newuidmap" "$w/newgidmap" "$r/usr/bin/"
  printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n' >"$r/etc/passwd"
  printf 'root:x:0:\nuser:x:1000:\n' >"$r/etc/group"
  echo 'user:100000:65536' >"$r/etc/subuid"
  echo 'user:100000:65536' >"$r/etc/subgid"
  chmod 1777 "$r/tmp"
  chown -R 1000:1000 "$r/home/user" "$r/run/user/1000"
  chmod 700 "$r/run/user/1000"
  # the upstream -rootless image's entrypoint, user and environment
  local d
  d=$(python3 "$ROOT/local/k8s/mkoci.py" "$r" "$out/buildkit.tar" '{"Entrypoint":["rootlesskit","buildkitd"],
    "User":"1000:1000","WorkingDir":"/home/user","Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/home/user","USER=user","XDG_RUNTIME_DIR=/run/user/1000",
    "BUILDKIT_HOST=unix:///run/user/1000/buildkit/buildkitd.sock"]}' "$BUILDKIT_IMAGE" "${BUILDKIT_IMAGE%:*}@")
  echo "$BUILDKIT_IMAGE@$d" >"$out/buildkit.ref"
  build_python_image "$w/python" "$out"
  rm -rf "$w"
  cat "$out/buildkit.ref"
}

build_python_image() {
  # build_python_image ROOTFS OUT: python.tar and python.ref, this machine's python3 with its standard
  # library and the shared libraries it and its extension modules load (what python:3.11-slim gives
  # the sidecar in real use); no pip, no tests, no headers
  local r=$1 out=$2 v l
  v=$(basename "$PYTHON")
  mkdir -p "$r"/{usr/bin,usr/lib,lib/x86_64-linux-gnu,lib64,etc,tmp,proc,sys,dev}
  cp "$PYTHON" "$r/usr/bin/"
  ln -s "$v" "$r/usr/bin/python3"
  tar -C /usr/lib -cf - --exclude="$v/test" --exclude="$v/config-*" --exclude="$v/ensurepip" \
    --exclude="$v/lib2to3" --exclude="$v/idlelib" --exclude="$v/tkinter" --exclude="$v/turtledemo" \
    --exclude="$v/site-packages" --exclude="$v/dist-packages" --exclude="$v/lib-dynload/_test*" "$v" |
    tar -C "$r/usr/lib" -xf -
  for l in $(ldd "$PYTHON" "/usr/lib/$v"/lib-dynload/*.so | awk '/=>/ { print $3 }' | sort -u); do
    cp -L "$l" "$r/lib/x86_64-linux-gnu/"
  done
  cp -L /lib64/ld-linux-x86-64.so.2 "$r/lib64/"
  printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n' >"$r/etc/passwd"
  printf 'root:x:0:\nuser:x:1000:\n' >"$r/etc/group"
  chmod 1777 "$r/tmp"
  local d
  d=$(python3 "$ROOT/local/k8s/mkoci.py" "$r" "$out/python.tar" '{"Entrypoint":["python3"],"User":"1000:1000"}' \
    "$PYTHON_IMAGE" "${PYTHON_IMAGE%:*}@")
  echo "$PYTHON_IMAGE@$d" >"$out/python.ref"
}

# ----------------------------------------------------------------------------- PKI and configs

mkcert() {
  # mkcert NAME CN O SAN: a leaf signed by the cluster CA (SAN empty: a client cert)
  local n=$1 cn=$2 o=$3 san=$4 p=$S/pki subj
  subj="/CN=$cn"
  [ -z "$o" ] || subj="/O=$o/CN=$cn"
  openssl genrsa -out "$p/$n.key" 2048 2>/dev/null
  openssl req -new -key "$p/$n.key" -subj "$subj" -out "$p/$n.csr"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$san" ]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"
      echo "subjectAltName=$san"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } >"$p/$n.ext"
  openssl x509 -req -in "$p/$n.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -days 2 \
    -extfile "$p/$n.ext" -out "$p/$n.crt" 2>/dev/null
  rm -f "$p/$n.csr" "$p/$n.ext"
}

kubeconfig() {
  # kubeconfig NAME CERT: a kubeconfig for one identity
  cat >"$S/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: bkf-k8s
  cluster: {certificate-authority: $S/pki/ca.crt, server: "https://$NODE_IP:$APISERVER_PORT"}
users:
- name: $1
  user: {client-certificate: $S/pki/$2.crt, client-key: $S/pki/$2.key}
contexts:
- name: bkf-k8s
  context: {cluster: bkf-k8s, user: $1}
current-context: bkf-k8s
EOF
}

make_pki() {
  local p=$S/pki
  mkdir -p "$p"
  openssl genrsa -out "$p/ca.key" 2048 2>/dev/null
  openssl req -x509 -new -nodes -key "$p/ca.key" -subj "/CN=bkf-k8s-ca" -days 2 -out "$p/ca.crt"
  openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
  openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  mkcert apiserver kube-apiserver "" \
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:127.0.0.1,IP:$NODE_IP,IP:${SERVICE_CIDR%.0/*}.1"
  mkcert admin kubernetes-admin system:masters ""
  mkcert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters ""
  mkcert controller-manager system:kube-controller-manager "" ""
  mkcert scheduler system:kube-scheduler "" ""
  mkcert kubelet "system:node:$NODE_NAME" system:nodes ""
  mkcert kubelet-serving "$NODE_NAME" "" "DNS:$NODE_NAME,IP:$NODE_IP"
  # bound to the built-in system:node-proxier role
  mkcert kube-proxy system:kube-proxy "" ""
  kubeconfig admin admin
  kubeconfig controller-manager controller-manager
  kubeconfig scheduler scheduler
  kubeconfig kubelet kubelet
  kubeconfig kube-proxy kube-proxy
}

write_configs() {
  mkdir -p "$S/cni/net.d"
  cat >"$S/cni/net.d/10-bkf-k8s.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "bkf-k8s",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false,
     "ipam": {"type": "host-local", "dataDir": "$S/cni/ipam", "ranges": [[{"subnet": "${NODE_IP%.*}.0/24",
       "rangeStart": "${POD_RANGE[0]}", "rangeEnd": "${POD_RANGE[1]}", "gateway": "$NODE_IP"}]]}},
    {"type": "loopback"}
  ]
}
EOF
  cat >"$S/containerd.toml" <<EOF
version = 3
root = "$S/containerd/root"
state = "$S/run/containerd-state"

[grpc]
  address = "$S/run/containerd.sock"

[ttrpc]
  address = "$S/run/containerd.sock.ttrpc"

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '$PAUSE_IMAGE'
  [plugins.'io.containerd.cri.v1.runtime']
    # root in this VM lacks CAP_SYS_RESOURCE: the negative oom_score_adj of sandboxes is EPERM
    # ("can't get final child's PID from pipe: EOF") unless restricted to the daemon's own
    restrict_oom_score_adj = true
    # pod network namespaces under our state dir (down unmounts them), not /var/run/netns
    netns_mounts_under_state_dir = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '/usr/sbin/runc'
          # runc's state under ours, not /run/containerd/runc
          Root = '$S/run/runc'
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['/usr/lib/cni']
      conf_dir = '$S/cni/net.d'
  [plugins.'io.containerd.grpc.v1.cri']
    disable_tcp_service = true
    stream_server_address = '$NODE_IP'
    stream_server_port = '0'
EOF
  cat >"$S/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# this VM: cgroup v1 and swap
failCgroupV1: false
failSwapOn: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$S/run/containerd.sock
imageServiceEndpoint: unix://$S/run/containerd.sock
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: $NODE_IP
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $S/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $S/pki/kubelet-serving.crt
tlsPrivateKeyFile: $S/pki/kubelet-serving.key
clusterDomain: cluster.local
clusterDNS: []
resolvConf: ""
staticPodPath: ""
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 20
protectKernelDefaults: false
# no KUBE-FIREWALL/KUBE-KUBELET-CANARY chains in this shared machine's firewall
makeIPTablesUtilChains: false
podLogsDir: $S/podlogs
EOF
  cat >"$S/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $S/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
mode: iptables
# clients outside the pods' range come through the root namespace's route: masquerade all, so
# that a pod's reply goes back through this namespace (and its conntrack entry) to the client
iptables: {masqueradeAll: true}
# NodePorts only on this namespace's own address; health and metrics inside it
nodePortAddresses: ["$SVC_IP/32"]
healthzBindAddress: $SVC_IP:10256
metricsBindAddress: 127.0.0.1:10249
# leave the machine's conntrack table size and timeouts alone
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

storage_manifest() {
  local i
  cat <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: $STORAGE_CLASS}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
EOF
  for i in $(seq 0 $((PV_COUNT - 1))); do
    mkdir -p "$S/pv/pv$i"
    cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: bkf-pv$i}
spec:
  capacity: {storage: 50Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: $STORAGE_CLASS
  local: {path: $S/pv/pv$i}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [$NODE_NAME]}
EOF
  done
}

# ----------------------------------------------------------------------------- processes

# shellcheck disable=SC2054  # the commas are inside flag values
start() {
  # start COMPONENT: in the background, pid in $S/run/<c>.pid, log in $S/logs/<c>.log
  local c=$1 p=$S/pki cmd
  case $c in
    etcd) cmd=("$ETCD_BIN/etcd" --name default --data-dir "$S/etcd"
      --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT"
      --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT"
      --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT"
      --initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT"
      --unsafe-no-fsync --log-level warn) ;;
    containerd) cmd=("$CTRD_BIN/containerd" --config "$S/containerd.toml") ;;
    kube-apiserver) cmd=("$K8S_BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT"
      --bind-address="$NODE_IP" --secure-port="$APISERVER_PORT" --advertise-address="$NODE_IP"
      --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" --client-ca-file="$p/ca.crt"
      --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key"
      --service-account-issuer=https://kubernetes.default.svc.cluster.local
      --service-cluster-ip-range="$SERVICE_CIDR" --authorization-mode=Node,RBAC
      --enable-admission-plugins=NodeRestriction,PodSecurity
      --kubelet-client-certificate="$p/apiserver-kubelet-client.crt"
      --kubelet-client-key="$p/apiserver-kubelet-client.key" --kubelet-preferred-address-types=InternalIP
      --allow-privileged=true --profiling=false) ;;
    kube-controller-manager) cmd=("$K8S_BIN/kube-controller-manager" --kubeconfig="$S/controller-manager.kubeconfig"
      --authentication-kubeconfig="$S/controller-manager.kubeconfig"
      --authorization-kubeconfig="$S/controller-manager.kubeconfig" --bind-address="$NODE_IP" --leader-elect=false
      --cluster-signing-cert-file="$p/ca.crt" --cluster-signing-key-file="$p/ca.key" --root-ca-file="$p/ca.crt"
      --service-account-private-key-file="$p/sa.key" --use-service-account-credentials=true
      --service-cluster-ip-range="$SERVICE_CIDR") ;;
    kube-scheduler) cmd=("$K8S_BIN/kube-scheduler" --kubeconfig="$S/scheduler.kubeconfig"
      --authentication-kubeconfig="$S/scheduler.kubeconfig" --authorization-kubeconfig="$S/scheduler.kubeconfig"
      --bind-address="$NODE_IP" --leader-elect=false) ;;
    kubelet) cmd=("$K8S_BIN/kubelet" --config="$S/kubelet.yaml" --kubeconfig="$S/kubelet.kubeconfig"
      --node-ip="$NODE_IP" --hostname-override="$NODE_NAME" --root-dir="$S/kubelet" --cert-dir="$S/kubelet/pki") ;;
    # in its own network namespace: its rules go there (nsenter rather than `ip netns exec`, which
    # remounts /sys)
    kube-proxy) cmd=(nsenter --net="/run/netns/$SVC_NS" "$K8S_BIN/kube-proxy" --config="$S/kube-proxy.yaml") ;;
    *) die "unknown component $c" ;;
  esac
  PATH=$CTRD_BIN:$PATH setsid "${cmd[@]}" >"$S/logs/$c.log" 2>&1 </dev/null &
  echo $! >"$S/run/$c.pid"
}

wait_for() {
  # wait_for SECONDS WHAT COMMAND...: poll until COMMAND succeeds
  local t=$1 what=$2 i
  shift 2
  for ((i = 0; i < t * 4; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  die "$what not ready after ${t}s (logs in $S/logs)"
}

up() {
  S=$(readlink -f "$1")
  need_cluster_bins
  [ "$(id -u)" = 0 ] || die "must run as root (bridge, mounts, cgroups)"
  mkdir -p "$RUN"
  if [ -f "$RUN/current" ]; then
    local prev c
    prev=$(cat "$RUN/current")
    # another run's live cluster (fixed bridge and ports): refuse rather than pull it down
    for c in $COMPONENTS containerd; do
      if [ -f "$prev/run/$c.pid" ] && kill -0 "$(cat "$prev/run/$c.pid")" 2>/dev/null; then
        die "a cluster is running ($prev: $c); one at a time (local/k8s.sh down $prev ends it)"
      fi
    done
    log "a previous cluster ($prev) was not torn down: taking it down first"
    (down "$prev")
    S=$(readlink -f "$1")
  fi
  ! ip link show "$BRIDGE" >/dev/null 2>&1 || die "bridge $BRIDGE exists but no cluster is recorded; remove it"
  ! ip netns list | grep -qw "$SVC_NS" || die "network namespace $SVC_NS exists but no cluster is recorded; remove it"
  mkdir -p "$S"/{run,logs,etcd,containerd,kubelet,podlogs,images}
  chmod 700 "$S/etcd"
  echo "$S" >"$RUN/current"
  local k
  for k in $SYSCTLS; do echo "$k=$(sysctl -n "$k")"; done >"$S/sysctl.orig"
  if ! { iptables-save; ip6tables-save; } 2>/dev/null | grep -q ':KUBE-'; then touch "$S/kube-chains-ours"; fi
  # the shims' sockets go to /run/containerd/s whatever the config says: ours if it was not there
  [ -e /run/containerd ] || touch "$S/run-containerd-ours"

  ip link add "$BRIDGE" type bridge
  ip addr add "$NODE_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  svc_netns_up
  make_pki
  write_configs
  lap "pki and configs"
  start etcd
  start containerd
  wait_for 30 etcd curl -fsS "http://127.0.0.1:$ETCD_PORT/health"
  start kube-apiserver
  wait_for 60 kube-apiserver kc get --raw /readyz
  lap "apiserver ready"
  start kube-controller-manager
  start kube-scheduler
  wait_for 30 containerd test -S "$S/run/containerd.sock"
  if [ -f "${BKF_K8S_IMAGES:-}/buildkit.tar" ]; then
    cp "$BKF_K8S_IMAGES"/{pause.tar,buildkit.tar,buildkit.ref,python.tar,python.ref} "$S/images/"
  else
    build_images "$S/images" >/dev/null
  fi
  local i
  for i in pause buildkit python; do
    # (ctr warns on every call that cgroup v1 is deprecated)
    ctr_ images import "$S/images/$i.tar" >"$S/logs/import-$i.log" 2>&1 || die "$(cat "$S/logs/import-$i.log")"
  done
  lap "images imported"
  start kubelet
  wait_for 90 "node $NODE_NAME" kc wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s
  wait_for 30 "default service account" kc get serviceaccount default
  start kube-proxy
  # its first sync wrote the Service chains (the apiserver's own Service is always there)
  wait_for 60 "kube-proxy's rules" in_svc_ns iptables -t nat -S KUBE-SERVICES
  storage_manifest | kc apply -f - >/dev/null
  lap "node ready"
  log "up: KUBECONFIG=$S/admin.kubeconfig"
}

stop_pid() {
  # stop_pid FILE: SIGTERM, 10 s, then SIGKILL
  local f=$1 p i
  [ -f "$f" ] || return 0
  p=$(cat "$f")
  if kill "$p" 2>/dev/null; then
    for ((i = 0; i < 40; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null
  fi
  rm -f "$f"
}

in_svc_ns() { nsenter --net="/run/netns/$SVC_NS" "$@"; }

svc_netns_up() {
  # kube-proxy's network namespace: a veth into the bridge, forwarding on, no redirects (it
  # forwards out of the interface it received on); the root namespace's route to the Services
  ip netns add "$SVC_NS"
  ip link add "$SVC_NS-0" type veth peer name eth0 netns "$SVC_NS"
  ip link set "$SVC_NS-0" master "$BRIDGE" up
  ip -n "$SVC_NS" addr add "$SVC_IP/24" dev eth0
  ip -n "$SVC_NS" link set lo up
  ip -n "$SVC_NS" link set eth0 up
  in_svc_ns sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.eth0.send_redirects=0
  # the Service range routed inside too, as a node's default route takes it: a Service's packet
  # that no DNAT rule took (no endpoint) then reaches the FORWARD chain, where kube-proxy REJECTs
  # it; with no route the kernel answered "network unreachable" before any rule (seen in the
  # cluster tier). The next hop is an address nothing holds (no dummy device in this kernel): what
  # no rule refused ends as "host unreachable" once ARP gives up
  ip -n "$SVC_NS" route add "$SERVICE_CIDR" via "$SVC_NOWHERE" dev eth0
  ip route add "$SERVICE_CIDR" via "$SVC_IP" dev "$BRIDGE"
}

kube_chains_in() {
  # kube_chains_in CMD...: the KUBE-* chains (iptables and ip6tables, every table) CMD's namespace has
  { "$@" iptables-save; "$@" ip6tables-save; } 2>/dev/null | sed -n 's/^:\(KUBE-[^ ]*\).*/\1/p' | sort -u
}

svc_netns_down() {
  ip netns list | grep -qw "$SVC_NS" || return 0
  in_svc_ns "$K8S_BIN/kube-proxy" --cleanup >"$S/logs/kube-proxy-cleanup.log" 2>&1 ||
    log "kube-proxy --cleanup failed (log: $S/logs/kube-proxy-cleanup.log)"
  # --cleanup leaves its KUBE-FIREWALL chain (filter); the namespace is ours alone: empty every table
  local ipt t
  for ipt in iptables ip6tables; do
    for t in filter nat mangle raw; do
      { in_svc_ns "$ipt" -t "$t" -F && in_svc_ns "$ipt" -t "$t" -X; } 2>/dev/null || true
    done
  done
  local left
  left=$(kube_chains_in in_svc_ns | tr '\n' ' ')
  [ -z "$left" ] || log "ERROR: KUBE-* chains left in $SVC_NS after kube-proxy --cleanup: $left"
  ip netns del "$SVC_NS"
  ip link del "$SVC_NS-0" 2>/dev/null || true
}

remove_kube_chains() {
  # kubelet's firewall chains, if it made any (there were none before up)
  local ipt t c
  for ipt in iptables ip6tables; do
    while "$ipt" -t filter -D INPUT -j KUBE-FIREWALL 2>/dev/null; do :; done
    while "$ipt" -t filter -D OUTPUT -j KUBE-FIREWALL 2>/dev/null; do :; done
    for t in filter nat mangle; do
      for c in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
        if "$ipt" -t "$t" -F "$c" 2>/dev/null; then "$ipt" -t "$t" -X "$c" && log "removed $ipt $t $c"; fi
      done
    done
  done
}

down() {
  S=$(readlink -f "${1:-$(cat "$RUN/current" 2>/dev/null || true)}")
  if [ -z "$S" ] || [ ! -d "$S" ]; then
    log "no cluster to take down"
    # a pointer to a state dir that is gone is stale; any other belongs to another run
    if [ -f "$RUN/current" ] && [ ! -d "$(cat "$RUN/current")" ]; then rm -f "$RUN/current"; fi
    return 0
  fi
  local i c
  if [ -f "$S/run/kube-apiserver.pid" ] && kill -0 "$(cat "$S/run/kube-apiserver.pid")" 2>/dev/null; then
    # pods first, so that kubelet itself unmounts their volumes and tears down their networks
    kc delete statefulset,deployment --all --all-namespaces --wait=false >/dev/null 2>&1 || true
    kc delete pod --all --all-namespaces --grace-period=1 --wait=false >/dev/null 2>&1 || true
    for ((i = 0; i < 60; i++)); do
      [ -z "$(kc get pods -A -o name 2>/dev/null)" ] && break
      sleep 0.5
    done
    for ((i = 0; i < 60; i++)); do
      [ -z "$(ctr_ tasks ls -q 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
  # in order: the apiserver hangs on SIGTERM once etcd is gone
  for c in $COMPONENTS; do stop_pid "$S/run/$c.pid"; done
  if [ -S "$S/run/containerd.sock" ]; then
    for c in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true; done
    sleep 0.5
    for c in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks rm -f "$c" >/dev/null 2>&1 || true; done
  fi
  stop_pid "$S/run/containerd.pid"
  # shims of our containerd only (their -address is our socket)
  local p
  for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $S/run/containerd.sock" || true); do
    log "killing leftover shim $p"
    kill -9 "$p" 2>/dev/null || true
  done
  # mounts under our tree, deepest first (pod volumes, rootfs overlays, network namespaces); none
  # after an up that failed early, where grep's status 1 ended down here (pipefail) and left the
  # bridge and kube-proxy's namespace behind
  awk '{ print $2 }' /proc/mounts | { grep "^$S/" || true; } | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
  done
  svc_netns_down
  # (the route to the Services goes with the bridge)
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE"; fi
  # kubelet's QoS cgroups (empty once every pod is gone)
  local ctl
  for ctl in /sys/fs/cgroup/*/; do
    [ -d "${ctl}kubepods" ] && find "${ctl}kubepods" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  for ctl in /sys/fs/cgroup/*/kubepods; do [ -d "$ctl" ] && log "cgroup $ctl is left (not empty)"; done
  rm -f /var/lib/cni/results/bkf-k8s-* 2>/dev/null || true
  [ ! -f "$S/kube-chains-ours" ] || remove_kube_chains
  if [ -f "$S/run-containerd-ours" ] && [ -d /run/containerd ]; then
    rmdir /run/containerd/s /run/containerd 2>/dev/null || log "/run/containerd is not empty: left"
  fi
  if [ -f "$S/sysctl.orig" ]; then
    local k v
    while IFS='=' read -r k v; do
      [ "$(sysctl -n "$k")" = "$v" ] || sysctl -qw "$k=$v"
    done <"$S/sysctl.orig"
    rm -f "$S/sysctl.orig"
  fi
  [ "$(cat "$RUN/current" 2>/dev/null)" != "$S" ] || rm -f "$RUN/current"
  log "down: $S"
}

import_image() {
  # import_image STATE TAR: one more image (a test's own, e.g. the idle scaler's) into the running cluster
  S=$(readlink -f "$1")
  [ -S "$S/run/containerd.sock" ] || die "no cluster running in $S"
  ctr_ images import "$2" >"$S/logs/import-extra.log" 2>&1 || die "$(cat "$S/logs/import-extra.log")"
}

case ${1:-} in
  up) [ $# = 2 ] || die "usage: $0 up STATE"; up "$2" ;;
  import) [ $# = 3 ] || die "usage: $0 import STATE TAR"; import_image "$2" "$3" ;;
  down) down "${2:-}" ;;
  images) [ $# = 2 ] || die "usage: $0 images OUT"; build_images "$2" ;;
  env) [ $# = 2 ] || die "usage: $0 env STATE"
    echo "export KUBECONFIG=$2/admin.kubeconfig PATH=$K8S_BIN:$CTRD_BIN:\$PATH" ;;
  *) die "usage: $0 up STATE | down [STATE] | images OUT | import STATE TAR | env STATE" ;;
esac
