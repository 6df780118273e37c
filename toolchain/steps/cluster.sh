# shellcheck shell=bash
# Step cluster: the single-node Kubernetes the cluster tier (tests/k8s) runs, built from Go modules
# at the versions in versions.env and cached like the other binaries (one table row per part):
#   kubernetes-<v>/  kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl
#   etcd-<v>/        etcd
#   containerd-<v>/  containerd containerd-shim-runc-v2 ctr
#   rootlesskit-<v>/ rootlesskit (goes into the rootless BuildKit image)
#   pulumi-kubernetes-<v>/ pulumi-resource-kubernetes (the real provider; <v> is the plugin version
#                    the Python SDK announces, the stamp names the module's pseudo-version;
#                    steps/plugins.sh installs it as the `kubernetes` plugin)
# runc and the CNI plugins come from Debian (steps/apt.sh). Nothing is linked into .toolchain/bin:
# local/k8s/cluster.sh finds the binaries in the cache by version (cluster_bin_dirs below).
# Cold on 2 cores: kubernetes and pulumi-kubernetes are by far the longest (several minutes each).

KUBERNETES_MOD=k8s.io/kubernetes
ETCD_MOD=go.etcd.io/etcd/server/v3
CONTAINERD_MOD=github.com/containerd/containerd/v2
ROOTLESSKIT_MOD=github.com/rootless-containers/rootlesskit/v2
PULUMI_KUBERNETES_MOD=github.com/pulumi/pulumi-kubernetes/provider/v4
KUBERNETES_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

staging_replaces() {
  # staging_replaces WRAPPER_DIR: k8s.io/kubernetes replaces every k8s.io/<staging> module with a
  # local ./staging path, which a dependent module cannot use: replace each with the published
  # k8s.io/<staging>@v0.<minor>.<patch> of the same release instead.
  local gomod pub=v0.${KUBERNETES_VERSION#v1.}
  gomod=$(mod_download_json "$KUBERNETES_MOD@$KUBERNETES_VERSION" GoMod)
  [[ -n "$gomod" ]] || { echo "no go.mod for $KUBERNETES_MOD@$KUBERNETES_VERSION" >&2; return 1; }
  local args=() m
  while IFS= read -r m; do
    [[ -n "$m" ]] && args+=("-replace=$m=$m@$pub")
  done < <("$GO" mod edit -json "$gomod" | jq -r '
      (.Replace // [])[] | select(.New.Path | startswith("./staging/")) | .Old.Path')
  ((${#args[@]})) || { echo "no staging replaces found in $gomod" >&2; return 1; }
  echo "staging modules replaced with $pub: ${#args[@]}"
  (cd "$1" && "$GO" mod edit "${args[@]}")
}

build_kubernetes() {
  local w
  mk_tmp wrap-kubernetes
  w=$MK_TMP
  new_wrapper "$w" kubernetes
  (cd "$w" && "$GO" mod edit -require="$KUBERNETES_MOD@$KUBERNETES_VERSION")
  mirror_directives "$w" "$KUBERNETES_MOD@$KUBERNETES_VERSION"
  staging_replaces "$w"
  # the version the binaries report (kubectl version, the node's kubeletVersion)
  local minor=${KUBERNETES_VERSION#v1.}
  minor=${minor%%.*}
  local ld="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  local c s
  for c in "${KUBERNETES_CMDS[@]}"; do
    s=$(now)
    (cd "$w" && "$GO" build -trimpath -ldflags "$ld" -o "$OUT/$c" "$KUBERNETES_MOD/cmd/$c")
    echo "built $c in $(elapsed "$s" "$(now)")s"
  done
}

build_etcd() {
  wrapper_build etcd "$OUT/etcd" "" "-s -w" "$ETCD_MOD" "$ETCD_MOD@$ETCD_VERSION"
}

build_containerd() {
  local c
  for c in containerd containerd-shim-runc-v2 ctr; do
    wrapper_build containerd "$OUT/$c" "" \
      "-s -w -X $CONTAINERD_MOD/version.Version=$CONTAINERD_VERSION -X $CONTAINERD_MOD/version.Package=$CONTAINERD_MOD" \
      "$CONTAINERD_MOD/cmd/$c" "$CONTAINERD_MOD@$CONTAINERD_VERSION"
  done
}

build_rootlesskit() {
  wrapper_build rootlesskit "$OUT/rootlesskit" "" "-s -w" \
    "$ROOTLESSKIT_MOD/cmd/rootlesskit" "$ROOTLESSKIT_MOD@$ROOTLESSKIT_VERSION"
}

build_pulumi_kubernetes() {
  # The provider's main package embeds schema-embed.json and terraform-mapping-embed.json, which
  # its own `go generate` (generate.go) writes from schema.json and terraform-mapping.json with the
  # version set; the module cache is read-only, so the package is copied into the wrapper and
  # generated there. The version the plugin reports (-X .../pkg/version.Version) and the schema's
  # must be the one the Python SDK announces, or the engine warns about a version mismatch.
  local w src mv=$PULUMI_KUBERNETES_MOD@$PULUMI_KUBERNETES_PROVIDER_COMMIT
  mk_tmp wrap-pulumi-kubernetes
  w=$MK_TMP
  new_wrapper "$w" pulumi-kubernetes
  (cd "$w" && "$GO" mod edit -require="$mv")
  # its only replace (sdk/v4 => ../sdk) is local, so nothing is mirrored; kept for a future commit
  mirror_directives "$w" "$mv"
  src=$(mod_download_json "$mv" Dir)
  [[ -d "$src" ]] || { echo "no source directory for $mv" >&2; return 1; }
  mkdir "$w/cmd"
  cp "$src"/cmd/pulumi-resource-kubernetes/{main.go,generate.go,schema.json,terraform-mapping.json} "$w/cmd/"
  chmod u+w "$w"/cmd/*
  local s
  s=$(now)
  (cd "$w/cmd" && VERSION=$PULUMI_KUBERNETES_PROVIDER_VERSION "$GO" run -trimpath ./generate.go)
  rm -f "$w"/cmd/{generate.go,schema.json,terraform-mapping.json}
  echo "generated the embedded schema in $(elapsed "$s" "$(now)")s"
  s=$(now)
  # stripped: unstripped the binary is about 440 MB
  (cd "$w" && "$GO" build -trimpath \
    -ldflags "-s -w -X $PULUMI_KUBERNETES_MOD/pkg/version.Version=$PULUMI_KUBERNETES_PROVIDER_VERSION" \
    -o "$OUT/pulumi-resource-kubernetes" ./cmd)
  echo "built pulumi-resource-kubernetes in $(elapsed "$s" "$(now)")s"
}

step_cluster() {
  build_step kubernetes "$KUBERNETES_VERSION" "$KUBERNETES_MOD@$KUBERNETES_VERSION" build_kubernetes \
    "${KUBERNETES_CMDS[@]}"
  build_step etcd "$ETCD_VERSION" "$ETCD_MOD@$ETCD_VERSION" build_etcd etcd
  build_step containerd "$CONTAINERD_VERSION" "$CONTAINERD_MOD@$CONTAINERD_VERSION" build_containerd \
    containerd containerd-shim-runc-v2 ctr
  build_step rootlesskit "$ROOTLESSKIT_VERSION" "$ROOTLESSKIT_MOD@$ROOTLESSKIT_VERSION" build_rootlesskit \
    rootlesskit
  build_step pulumi-kubernetes "$PULUMI_KUBERNETES_PROVIDER_VERSION" \
    "$PULUMI_KUBERNETES_MOD@$PULUMI_KUBERNETES_PROVIDER_COMMIT" build_pulumi_kubernetes \
    pulumi-resource-kubernetes
}
