# Environment shared by the bootstrap, the pulumi wrapper and the tests. Source it; it only sets variables.
# shellcheck shell=bash

OSD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../toolchain/versions.env
. "$OSD_ROOT/toolchain/versions.env"

OSD_CACHE=${OSD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/openstack-deploy}
# The toolchain is cached outside the repository under a key of everything that pins it,
# so any bump builds a fresh set and an unchanged one is reused.
OSD_TOOLCHAIN_KEY=$(cat "$OSD_ROOT/toolchain/versions.env" "$OSD_ROOT"/toolchain/{cli,langhost}/go.mod "$OSD_ROOT"/toolchain/{cli,langhost}/go.sum \
  | sha256sum | cut -c1-16)
OSD_TOOLCHAIN_BIN=$OSD_CACHE/toolchain/pulumi-$PULUMI_VERSION-$OSD_TOOLCHAIN_KEY/bin
# The openstack resource plugin, the same way: keyed by its wrapper module's files (sources, token table).
OSD_PROVIDER_KEY=$(cd "$OSD_ROOT/toolchain/provider" && cat go.mod go.sum tokens.json ./*.go cmd/*/*.go | sha256sum | cut -c1-16)
OSD_VENV=$OSD_ROOT/venv

PATH=$OSD_VENV/bin:$PATH
if [ -x "$OSD_TOOLCHAIN_BIN/pulumi" ]; then
  PATH=$OSD_TOOLCHAIN_BIN:$PATH
fi

# Nothing here may reach for the internet: no update check, no automatic plugin download.
export PULUMI_SKIP_UPDATE_CHECK=1
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=1
# Default backend: a local file backend inside the project (git-ignored). Set PULUMI_BACKEND_URL for S3 or Pulumi Cloud.
export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$OSD_ROOT/.state}
# Resource operations at once (the CLI's --parallel; its own default is 4 per CPU): a step's time is mostly its
# host's, so a refresh reads many host steps at once. The dynamic providers serve that many threads
# (components/providers/server.py) and cap the SSH sessions per host (components/providers/ssh.py).
PULUMI_PARALLEL=${PULUMI_PARALLEL:-32}
export PATH OSD_ROOT OSD_CACHE OSD_TOOLCHAIN_BIN OSD_PROVIDER_KEY OSD_VENV PULUMI_VERSION LANGHOST_VERSION PULUMI_PARALLEL
