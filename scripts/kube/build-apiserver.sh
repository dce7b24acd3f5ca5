#!/usr/bin/env bash
# Builds a real kube-apiserver and a small embedded etcd for the Kubernetes provider's tests (envtest's way:
# the tests find them through KUBEBUILDER_ASSETS, PATH, or this script's cache directory).
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces its staging modules with local paths. So a
# scratch module OUTSIDE the repository requires it at one release and replaces every k8s.io staging module
# with the published v0.<minor>.<patch> of the same release. The binaries are cached; a machine builds them once.
#
# Usage: scripts/kube/build-apiserver.sh            (KUBE_VERSION=v1.37.2 ETCD_VERSION=v3.7.3 by default)
# Prints the directory holding kube-apiserver and etcd (use it as KUBEBUILDER_ASSETS).
# The build is slow (tens of minutes on 2 cores): it runs niced with one package at a time unless told otherwise.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.3}"
BUILD_PARALLELISM="${BUILD_PARALLELISM:-1}"
staging_version="v0.${KUBE_VERSION#v1.}"
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/warmpool/kube"
out_dir="${cache_root}/${KUBE_VERSION}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ -x "${out_dir}/kube-apiserver" && -x "${out_dir}/etcd" ]]; then
  echo "${out_dir}"
  exit 0
fi

export GOFLAGS=-mod=mod
export CGO_ENABLED=0
mkdir -p "${out_dir}"

# kube-apiserver
scratch="${cache_root}/src-apiserver-${KUBE_VERSION}"
mkdir -p "${scratch}"
cd "${scratch}"
if [[ ! -f go.mod ]]; then
  go mod init warmpool.local/kube-apiserver >&2
fi
kube_gomod="$(go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
# Every `k8s.io/<staging> => ./staging/src/k8s.io/<staging>` line of Kubernetes' own go.mod, pointed at the release.
replaces="$(sed -n 's#^[[:space:]]*\(k8s.io/[A-Za-z0-9._-]*\) => ./staging/src/.*#\1#p' "${kube_gomod}")"
for module in ${replaces}; do
  go mod edit -replace "${module}=${module}@${staging_version}"
done
go mod edit -require "k8s.io/kubernetes@${KUBE_VERSION}"
cat > tools.go <<GO
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
go mod tidy -e >&2 || true
nice -n 19 go build -p "${BUILD_PARALLELISM}" -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=${KUBE_VERSION}" -o "${out_dir}/kube-apiserver.partial" k8s.io/kubernetes/cmd/kube-apiserver >&2
mv "${out_dir}/kube-apiserver.partial" "${out_dir}/kube-apiserver"

# etcd: a few lines around go.etcd.io/etcd/server/v3/embed (etcd-main.go beside this script).
etcd_scratch="${cache_root}/src-etcd-${ETCD_VERSION}"
mkdir -p "${etcd_scratch}"
cd "${etcd_scratch}"
if [[ ! -f go.mod ]]; then
  go mod init warmpool.local/etcd >&2
fi
cp "${here}/etcd-main.go" main.go
go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >&2
go mod tidy >&2
nice -n 19 go build -p "${BUILD_PARALLELISM}" -trimpath -ldflags "-s -w" -o "${out_dir}/etcd.partial" . >&2
mv "${out_dir}/etcd.partial" "${out_dir}/etcd"

echo "${out_dir}"
