#!/usr/bin/env bash
# Offline checks of deploy/: renders the kustomize trees, validates every
# manifest against the Kubernetes JSON schemas, validates compose.yaml against
# the Compose spec schema, checks the durability/security choices the README
# promises (Redis AOF + noeviction, non-root image, probes, grace periods,
# secrets outside ConfigMaps), and, when a chargebridge binary and
# redis-server are at hand, starts three replicas on the deploy configuration
# against one Redis and checks a duplicate delivery is replayed, not re-posted.
# The Prometheus alerting rules (deploy/prometheus/alerts.yml) are checked
# against src/metrics.rs, and with `promtool` (when on PATH) by check rules and
# rule unit tests.
# Access logs must never print the query string (Lightspeed's guest search
# carries the apiKey there): haproxy.cfg's log format is checked offline, and
# the smoke test runs HAProxy (Debian: apt-get install haproxy; required with
# DEPLOY_CHECK_SMOKE=require) in front of the replicas and greps its log and
# theirs for the apiKey it sent.
#
#   deploy/check.sh            # from any directory
#   DEPLOY_CHECK_SMOKE=require deploy/check.sh   # CI: the smoke test must run
#   DEPLOY_CHECK_SMOKE=skip    deploy/check.sh   # manifests only
#
# Needs python3 (>= 3.11, with the venv module) and, on first run, PyPI access
# for the pinned tools in deploy/check/requirements.txt; they are cached in
# target/deploy-check/ (override with DEPLOY_CHECK_DIR). Exits non-zero on any
# failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
work="${DEPLOY_CHECK_DIR:-$root/target/deploy-check}"
python="${PYTHON:-python3}"
req="$here/check/requirements.txt"

# The Compose spec JSON schema, shipped inside this (pinned, otherwise unused)
# PyPI package; only the schema file is extracted, nothing is installed.
compose_schema_pkg="docker-compose==1.29.2"
compose_schema_member="compose/config/compose_spec.json"

command -v "$python" >/dev/null 2>&1 || { echo "deploy/check.sh: $python not found" >&2; exit 2; }
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "deploy/check.sh: needs Python >= 3.11 (set PYTHON=...)" >&2; exit 2; }
mkdir -p "$work"

stamp="$("$python" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest()[:16])' "$req")"
venv="$work/venv"
if [ ! -f "$venv/.ready-$stamp" ]; then
  echo "==> installing pinned check tools into $venv"
  rm -rf "$venv"
  if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
    echo "deploy/check.sh: '$python -m venv' failed (Debian: apt-get install python3-venv)" >&2
    exit 2
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
  touch "$venv/.ready-$stamp"
fi

schema="$work/compose_spec.json"
if [ ! -s "$schema" ]; then
  echo "==> fetching the Compose spec schema ($compose_schema_pkg from PyPI)"
  dl="$(mktemp -d)"
  trap 'rm -rf "$dl"' EXIT
  "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: --dest "$dl" "$compose_schema_pkg"
  "$venv/bin/python" - "$dl" "$compose_schema_member" "$schema" <<'PY'
import glob, sys, zipfile
dl, member, out = sys.argv[1:]
(wheel,) = glob.glob(dl + "/*.whl")
with zipfile.ZipFile(wheel) as z, open(out, "wb") as f:
    f.write(z.read(member))
PY
  rm -rf "$dl"
  trap - EXIT
fi

exec "$venv/bin/python" "$here/check/check.py" --root "$root" --work "$work" --compose-schema "$schema" "$@"
