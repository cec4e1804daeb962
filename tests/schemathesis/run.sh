#!/usr/bin/env bash
# Schemathesis against a running chargebridge (demo configuration), over the
# charge and search operations of schemas/chargebridge.openapi.yaml.
#   tests/schemathesis/run.sh [BASE_URL] [MAX_EXAMPLES]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
base="${1:-http://127.0.0.1:8080}"
examples="${2:-200}"
export SCHEMATHESIS_HOOKS=hooks
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
cd "$root"
exec schemathesis --config-file "$here/schemathesis.toml" run schemas/chargebridge.openapi.yaml \
  --url "$base" \
  --include-operation-id-regex "^(chargeTransaction|searchGuests)$" \
  --checks all \
  --max-examples "$examples" \
  --seed "${SEED:-21}" \
  --no-color
