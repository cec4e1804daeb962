#!/usr/bin/env bash
# Builds the seed corpora under fuzz/corpus/<target>/ from the committed sources:
#
#   parse_charge, fingerprint  the request bodies of fixtures/deliveries/**/*.json
#                              (a JSON `body` as compact JSON, members in file order,
#                              numbers exactly as written; a string verbatim;
#                              `bodyBase64` decoded; `padding` left out) and
#                              fixtures/payloads/*.json as they stand
#   fit_message                fuzz/seeds/fit_message/*, plus every
#                              `customerErrorMessage` and `description` of the fixtures
#
# and fuzz/regressions/<target>/* for every target. Files are named by the SHA-1 of
# their content, as libFuzzer names its own, so re-running only adds what is new.
# Needs python3 (standard library only).
set -euo pipefail
cd "$(dirname "$0")"

python3 - ../fixtures corpus <<'PY'
import base64, hashlib, json, pathlib, sys

fixtures, corpus = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
targets = ("parse_charge", "fingerprint", "fit_message")
added = {t: 0 for t in targets}


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    path = corpus / target / hashlib.sha1(data).hexdigest()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        added[target] += 1


class Num(str):
    """A JSON number kept as its text."""


def compact(v):
    # serde_json's compact form, numbers as written (json.dumps would reprint them).
    if isinstance(v, Num):
        return str(v)
    if isinstance(v, dict):
        return "{" + ",".join(compact(k) + ":" + compact(x) for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ",".join(compact(x) for x in v) + "]"
    return json.dumps(v, ensure_ascii=False)


for f in sorted(fixtures.rglob("*.json")):
    raw = f.read_bytes()
    doc = json.loads(raw, parse_float=Num, parse_int=Num)
    request = doc.get("request") if isinstance(doc, dict) else None
    if not isinstance(request, dict):
        for t in ("parse_charge", "fingerprint"):  # a plain payload
            put(t, raw)
        continue
    if "bodyBase64" in request:
        body = base64.b64decode(request["bodyBase64"])
    elif isinstance(request.get("body"), str):
        body = request["body"].encode()
    elif "body" in request:
        body = compact(request["body"]).encode()
    else:
        body = b""
    for t in ("parse_charge", "fingerprint"):
        put(t, body)
    expect = doc.get("expect") or {}
    for text in (expect.get("customerErrorMessage"), doc.get("description")):
        if isinstance(text, str):
            put("fit_message", text)

for t in targets:
    for source in ("seeds", "regressions"):
        d = pathlib.Path(source) / t
        if d.is_dir():
            for f in sorted(d.iterdir()):
                if f.is_file():
                    put(t, f.read_bytes())

for t in targets:
    total = len(list((corpus / t).iterdir()))
    print(f"seed: {t}: {added[t]} new, {total} in corpus/{t}")
PY
