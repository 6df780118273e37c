# shellcheck shell=bash
# Step cluster: the single-node Kubernetes the cluster tier (tests/k8s) runs, built from Go modules
# at the versions in versions.env and cached like the other binaries (one table row per part):
#   kubernetes-<v>/  kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kube-proxy
#   etcd-<v>/        etcd
#   containerd-<v>/  containerd containerd-shim-runc-v2 ctr
#   rootlesskit-<v>/ rootlesskit (goes into the rootless BuildKit image)
#   pulumi-kubernetes-<v>/ pulumi-resource-kubernetes (the real provider; <v> is the plugin version
#                    the Python SDK announces, the stamp names the module's pseudo-version;
#                    steps/plugins.sh installs it as the `kubernetes` plugin)
# Each from its committed wrapper module (toolchain/modules/<name>, lib/gomodules.sh).
# runc and the CNI plugins come from Debian (steps/apt.sh). Nothing is linked into .toolchain/bin:
# local/k8s/cluster.sh finds the binaries in the cache by version (cluster_bin_dirs below).
# Cold on 2 cores: kubernetes and pulumi-kubernetes are by far the longest (several minutes each).

KUBERNETES_MOD=k8s.io/kubernetes
ETCD_MOD=go.etcd.io/etcd/server/v3
CONTAINERD_MOD=github.com/containerd/containerd/v2
ROOTLESSKIT_MOD=github.com/rootless-containers/rootlesskit/v2
PULUMI_KUBERNETES_MOD=github.com/pulumi/pulumi-kubernetes/provider/v4
KUBERNETES_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kube-proxy)

go_wrapper kubernetes "${KUBERNETES_CMDS[*]/#/$KUBERNETES_MOD/cmd/}" "$KUBERNETES_MOD@$KUBERNETES_VERSION"
go_wrapper_hook kubernetes staging_replaces
go_wrapper etcd "$ETCD_MOD" "$ETCD_MOD@$ETCD_VERSION"
go_wrapper containerd "$CONTAINERD_MOD/cmd/containerd $CONTAINERD_MOD/cmd/containerd-shim-runc-v2 $CONTAINERD_MOD/cmd/ctr" \
  "$CONTAINERD_MOD@$CONTAINERD_VERSION"
go_wrapper rootlesskit "$ROOTLESSKIT_MOD/cmd/rootlesskit" "$ROOTLESSKIT_MOD@$ROOTLESSKIT_VERSION"
# The provider's command package cannot be built (or listed) from the module cache: it embeds files
# its generate.go writes (build_pulumi_kubernetes). The wrapper pins what main.go and generate.go
# import instead, so both run with -mod=readonly against the committed go.sum.
go_wrapper pulumi-kubernetes \
  "$PULUMI_KUBERNETES_MOD/pkg/provider $PULUMI_KUBERNETES_MOD/pkg/version github.com/pulumi/pulumi/pkg/v3/codegen/schema" \
  "$PULUMI_KUBERNETES_MOD@$PULUMI_KUBERNETES_PROVIDER_COMMIT"

staging_replaces() {
  # staging_replaces WRAPPER_DIR: k8s.io/kubernetes replaces every k8s.io/<staging> module with a
  # local ./staging path, which a dependent module cannot use: replace each with the published
  # k8s.io/<staging>@v0.<minor>.<patch> of the same release instead (toolchain/lock.sh go runs it
  # when it regenerates the kubernetes wrapper; the build uses the committed result).
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
  pinned_wrapper kubernetes
  w=$WRAPPER_DIR
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
    # carried over from the cache under the same stamp (lib/gobuild.sh cached_build)
    if [[ -x "$OUT/$c" ]]; then echo "kept $c"; continue; fi
    s=$(now)
    (cd "$w" && "$GO" build -mod=readonly -trimpath -ldflags "$ld" -o "$OUT/$c" "$KUBERNETES_MOD/cmd/$c")
    echo "built $c in $(elapsed "$s" "$(now)")s"
  done
}

build_etcd() {
  wrapper_build etcd "$OUT/etcd" "" "-s -w" "$ETCD_MOD"
}

build_containerd() {
  local c
  for c in containerd containerd-shim-runc-v2 ctr; do
    wrapper_build containerd "$OUT/$c" "" \
      "-s -w -X $CONTAINERD_MOD/version.Version=$CONTAINERD_VERSION -X $CONTAINERD_MOD/version.Package=$CONTAINERD_MOD" \
      "$CONTAINERD_MOD/cmd/$c"
  done
}

build_rootlesskit() {
  wrapper_build rootlesskit "$OUT/rootlesskit" "" "-s -w" \
    "$ROOTLESSKIT_MOD/cmd/rootlesskit"
}

build_pulumi_kubernetes() {
  # The provider's main package embeds schema-embed.json and terraform-mapping-embed.json, which
  # its own `go generate` (generate.go) writes from schema.json and terraform-mapping.json with the
  # version set; the module cache is read-only, so the package is copied into the wrapper and
  # generated there, in a copy of the committed wrapper module (whose go.sum covers every import of
  # both files). The version the plugin reports (-X .../pkg/version.Version) and the schema's
  # must be the one the Python SDK announces, or the engine warns about a version mismatch.
  local w src mv=$PULUMI_KUBERNETES_MOD@$PULUMI_KUBERNETES_PROVIDER_COMMIT
  pinned_wrapper pulumi-kubernetes
  w=$WRAPPER_DIR
  src=$(mod_download_json "$mv" Dir)
  [[ -d "$src" ]] || { echo "no source directory for $mv" >&2; return 1; }
  mkdir "$w/cmd"
  cp "$src"/cmd/pulumi-resource-kubernetes/{main.go,generate.go,schema.json,terraform-mapping.json} "$w/cmd/"
  chmod u+w "$w"/cmd/*
  local s
  s=$(now)
  (cd "$w/cmd" && VERSION=$PULUMI_KUBERNETES_PROVIDER_VERSION "$GO" run -mod=readonly -trimpath ./generate.go)
  rm -f "$w"/cmd/{generate.go,schema.json,terraform-mapping.json}
  echo "generated the embedded schema in $(elapsed "$s" "$(now)")s"
  s=$(now)
  # stripped: unstripped the binary is about 440 MB
  (cd "$w" && "$GO" build -mod=readonly -trimpath \
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
