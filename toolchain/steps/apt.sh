# shellcheck shell=bash
# Step apt: the Debian packages the farm and the tests run (runc, sshd, CNI plugins, qemu, ...;
# docker.io: the Docker engine the --load e2e test starts on its own socket).
# systemd-container (systemd-nspawn) and debootstrap: the EC2 node tier (tests/ec2) boots a Debian
# rootfs with systemd as PID 1. Installing systemd-container also upgrades the host's systemd
# packages to the same version (PID 1 here is not systemd: nothing is re-executed).
# prometheus: its promtool checks and unit-tests the alert rules in examples/prometheus (the package's
# server is not started: there is no systemd here).
# gcc and libc6-dev: the static uid-map helper in the cluster tier's rootless BuildKit image
# (local/k8s/subidmap.c).

APT_PACKAGES=(
  runc openssh-server openssh-client iproute2 iptables containernetworking-plugins
  qemu-user-static binfmt-support busybox-static shellcheck uidmap jq curl ca-certificates
  procps util-linux
)
# only for the test tiers (part test) and the cluster tier (part cluster)
APT_PACKAGES_TEST=(docker.io systemd-container debootstrap prometheus)
APT_PACKAGES_CLUSTER=(gcc libc6-dev)

step_apt() {
  step_begin apt
  if [[ "${BOOTSTRAP_SKIP_APT:-}" == 1 ]]; then
    step_result skipped
    step_end
    return
  fi
  local missing=() p wanted=("${APT_PACKAGES[@]}")
  if want test; then wanted+=("${APT_PACKAGES_TEST[@]}"); fi
  # the cluster tier drives its builds with the docker CLI too
  if want cluster; then wanted+=("${APT_PACKAGES_TEST[@]}" "${APT_PACKAGES_CLUSTER[@]}"); fi
  for p in "${wanted[@]}"; do
    if [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" != "ii " ]]; then
      missing+=("$p")
    fi
  done
  if ((${#missing[@]} == 0)); then
    step_result present
    step_end
    return
  fi
  log "installing: ${missing[*]}"
  local sudo=()
  if ((EUID != 0)); then
    if command -v sudo >/dev/null; then sudo=(sudo -n); else
      fail "not root and no sudo: cannot install ${missing[*]}"
      step_end
      return
    fi
  fi
  # Do not start services (sshd) from package scripts on a build machine.
  local policy_added=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${sudo[@]}" chmod 0755 /usr/sbin/policy-rc.d
    policy_added=1
  fi
  local rc=0
  {
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  } || rc=$?
  if ((policy_added)); then "${sudo[@]}" rm -f /usr/sbin/policy-rc.d; fi
  if ((rc != 0)); then
    fail "apt-get install ${missing[*]} failed (exit $rc)"
  else
    step_result installed
  fi
  step_end
}
