#!/usr/bin/env python3
"""Cut the part of Lightspeed's K-Series PMS OpenAPI description that chargebridge uses.

Reads the vendor file (YAML with PyYAML installed, otherwise JSON: convert it first,
e.g. `yq -o=json`) and writes `pms-api.subset.openapi.json` next to this script:
only the operations listed in OPERATIONS, every component schema they reference
(followed transitively), the security schemes they name, and `openapi`, `info`,
`servers`, plus an `x-source` record of where the file came from.

    python3 tests/vendor/lightspeed/extract.py VENDOR_FILE \
        --commit <40-hex commit of the vendor file> [--fetched 2026-12-02] [--out FILE]

The output is deterministic (sorted keys, two-space indent), so re-running it on
the same vendor file gives the same bytes and a changed vendor file gives a diff.
"""

import argparse
import copy
import datetime
import hashlib
import json
import pathlib
import sys

REPOSITORY = "api-evangelist/lightspeed"
VENDOR_PATH = "openapi/lightspeed-pms-api-openapi.yml"
HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "pms-api.subset.openapi.json"

# path -> methods chargebridge calls (the `chargebridge lightspeed` commands).
OPERATIONS = {
    "/pms/v1/providers": ["get", "post"],
    "/pms/v1/providers/{id}": ["get", "put", "delete"],
    "/pms/v1/business-locations/{businessLocationId}/revenue-centers": ["get"],
}

OPERATIONS_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

# Keys of a path item that apply to all of its operations.
PATH_ITEM_SHARED = ("parameters", "servers", "summary", "description")


def load(path):
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        import yaml  # PyYAML
    except ImportError:
        sys.exit(
            f"{path}: not JSON and PyYAML is not installed; "
            "convert the YAML to JSON first (yq -o=json FILE > FILE.json)"
        )
    # BaseLoader would keep every scalar a string; SafeLoader gives numbers and
    # booleans their JSON types, as the description means them.
    return yaml.safe_load(text)


def pointer_get(doc, ref):
    """The value a local `#/a/b` reference points to."""
    if not ref.startswith("#/"):
        sys.exit(f"external reference not supported: {ref}")
    node = doc
    for raw in ref[2:].split("/"):
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(key)]
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            sys.exit(f"unresolvable reference: {ref}")
    return node


def refs_in(node):
    """Every `$ref` string anywhere below `node`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs_in(item)


def security_names(node):
    for requirement in node.get("security", []) or []:
        yield from requirement.keys()


def extract(doc, source):
    paths = {}
    missing = []
    for path, methods in OPERATIONS.items():
        item = doc.get("paths", {}).get(path)
        if item is None:
            missing.append(path)
            continue
        kept = {k: copy.deepcopy(item[k]) for k in PATH_ITEM_SHARED if k in item}
        for method in methods:
            if method not in item:
                missing.append(f"{method.upper()} {path}")
                continue
            kept[method] = copy.deepcopy(item[method])
        paths[path] = kept
    if missing:
        sys.exit("not in the vendor file: " + ", ".join(missing))

    # Follow references transitively: from the operations into components and
    # from those components into further components.
    wanted = set()
    queue = list(refs_in(paths))
    while queue:
        ref = queue.pop()
        if ref in wanted:
            continue
        wanted.add(ref)
        queue.extend(refs_in(pointer_get(doc, ref)))

    components = {}
    for ref in sorted(wanted):
        parts = ref[2:].split("/")
        if len(parts) != 3 or parts[0] != "components":
            sys.exit(f"reference outside components/<kind>/<name>: {ref}")
        kind, name = parts[1], parts[2].replace("~1", "/").replace("~0", "~")
        components.setdefault(kind, {})[name] = copy.deepcopy(pointer_get(doc, ref))

    schemes = set(security_names(doc))
    for item in paths.values():
        for method in OPERATIONS_METHODS:
            if method in item:
                schemes.update(security_names(item[method]))
    all_schemes = doc.get("components", {}).get("securitySchemes", {})
    for name in sorted(schemes):
        if name not in all_schemes:
            sys.exit(f"security scheme {name} is not defined")
        components.setdefault("securitySchemes", {})[name] = copy.deepcopy(
            all_schemes[name]
        )

    out = {
        "openapi": doc["openapi"],
        "info": doc["info"],
        "servers": doc.get("servers", []),
        "x-source": source,
        "paths": paths,
        "components": components,
    }
    if "security" in doc:
        out["security"] = doc["security"]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("vendor_file", type=pathlib.Path)
    parser.add_argument("--commit", required=True, help="commit of the vendor file")
    parser.add_argument(
        "--fetched",
        default=datetime.date.today().isoformat(),
        help="date the vendor file was fetched (default: today)",
    )
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--save-json",
        type=pathlib.Path,
        help="also write the whole vendor file, converted to JSON, here",
    )
    args = parser.parse_args()

    raw = args.vendor_file.read_bytes()
    doc = load(args.vendor_file)
    if args.save_json:
        args.save_json.write_text(
            json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
    source = {
        "repository": f"https://github.com/{REPOSITORY}",
        "path": VENDOR_PATH,
        "commit": args.commit,
        "fetched": args.fetched,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "extractedBy": "extracted by tests/vendor/lightspeed/extract.py",
        "operations": [
            f"{m.upper()} {p}" for p, methods in OPERATIONS.items() for m in methods
        ],
    }
    subset = extract(doc, source)
    args.out.write_text(
        json.dumps(subset, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    schemas = len(subset["components"].get("schemas", {}))
    print(f"{args.out}: {len(source['operations'])} operations, {schemas} schemas")


if __name__ == "__main__":
    main()
