#!/usr/bin/env python3
"""Cut the part of apaleo's Finance and Booking API descriptions that chargebridge's apaleo adapter uses.

Reads the vendor files (OpenAPI 3.0 JSON) and writes one `*.subset.openapi.json`
per vendor file next to this script: only the operations listed in SOURCES, every
component they reference (followed transitively), the security schemes they name,
the top-level `openapi`, `info`, `servers` and `security`, plus an `x-source`
record of where the file came from.

    python3 tests/vendor/apaleo/extract.py VENDOR_FILE... \
        --commit <40-hex commit of the vendor files> [--fetched 2026-12-03] [--out-dir DIR]

The output is deterministic (sorted keys, two-space indent), so re-running it on
the same vendor files gives the same bytes and a changed vendor file gives a diff.
"""

import argparse
import copy
import datetime
import hashlib
import json
import pathlib
import sys

REPOSITORY = "lipppy/apaleo-api-client-tools"
HERE = pathlib.Path(__file__).resolve().parent

# vendor path -> (subset file, {path: [methods the adapter calls]}), see src/pms/apaleo.rs.
SOURCES = {
    "codegen-apaleo-api-client/openapi_jsons/core_v1_finance.json": (
        "finance.subset.openapi.json",
        {
            "/finance/v1/folios": ["get"],
            "/finance/v1/folios/{id}": ["get"],
            "/finance/v1/folio-actions/{folioId}/charges": ["post"],
            "/finance/v1/folios/{folioId}/payments": ["get", "post"],
            "/finance/v1/folios/{folioId}/refunds": ["get", "post"],
        },
    ),
    "codegen-apaleo-api-client/openapi_jsons/core_v1_booking.json": (
        "booking.subset.openapi.json",
        {"/booking/v1/reservations": ["get"]},
    ),
}

OPERATIONS_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

# Keys of a path item that apply to all of its operations.
PATH_ITEM_SHARED = ("parameters", "servers", "summary", "description")

# Top-level keys kept as published: OpenAPI 3 and Swagger 2.0 (OPERA's files).
TOP_LEVEL_KEPT = (
    "openapi", "swagger", "info", "servers", "host", "basePath", "schemes",
    "consumes", "produces", "security",
)


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
    # SafeLoader gives numbers and booleans their JSON types, as the description
    # means them.
    return yaml.safe_load(text)


def unescape(raw):
    return raw.replace("~1", "/").replace("~0", "~")


def pointer_get(doc, ref):
    """The value a local `#/a/b` reference points to."""
    if not ref.startswith("#/"):
        sys.exit(f"external reference not supported: {ref}")
    node = doc
    for raw in ref[2:].split("/"):
        key = unescape(raw)
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


def extract(doc, operations, source):
    paths = {}
    missing = []
    for path, methods in operations.items():
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

    # Follow references transitively: from the operations into components
    # (OpenAPI 3: #/components/<kind>/<name>; Swagger 2.0: #/definitions/<name>,
    # #/parameters/<name>, #/responses/<name>) and from those into further ones.
    wanted = set()
    queue = list(refs_in(paths))
    while queue:
        ref = queue.pop()
        if ref in wanted:
            continue
        wanted.add(ref)
        queue.extend(refs_in(pointer_get(doc, ref)))

    out = {k: copy.deepcopy(doc[k]) for k in TOP_LEVEL_KEPT if k in doc}
    out["x-source"] = source
    out["paths"] = paths
    for ref in sorted(wanted):
        parts = [unescape(p) for p in ref[2:].split("/")]
        if len(parts) == 3 and parts[0] == "components":
            target = out.setdefault("components", {}).setdefault(parts[1], {})
        elif len(parts) == 2 and parts[0] in ("definitions", "parameters", "responses"):
            target = out.setdefault(parts[0], {})
        else:
            sys.exit(f"reference outside the component sections: {ref}")
        target[parts[-1]] = copy.deepcopy(pointer_get(doc, ref))

    # The security schemes the document or the kept operations name.
    schemes = set(security_names(doc))
    for item in paths.values():
        for method in OPERATIONS_METHODS:
            if method in item:
                schemes.update(security_names(item[method]))
    if "swagger" in doc:
        all_schemes, section = doc.get("securityDefinitions", {}), ("securityDefinitions",)
    else:
        all_schemes = doc.get("components", {}).get("securitySchemes", {})
        section = ("components", "securitySchemes")
    for name in sorted(schemes):
        if name not in all_schemes:
            sys.exit(f"security scheme {name} is not defined")
        target = out
        for key in section:
            target = target.setdefault(key, {})
        target[name] = copy.deepcopy(all_schemes[name])
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "vendor_files",
        type=pathlib.Path,
        nargs="+",
        help="the vendor files, named as in the repository (see SOURCES)",
    )
    parser.add_argument("--commit", required=True, help="commit of the vendor files")
    parser.add_argument(
        "--fetched",
        default=datetime.date.today().isoformat(),
        help="date the vendor files were fetched (default: today)",
    )
    parser.add_argument("--out-dir", type=pathlib.Path, default=HERE)
    args = parser.parse_args()

    given = {p.name: p for p in args.vendor_files}
    unknown = sorted(set(given) - {pathlib.PurePosixPath(s).name for s in SOURCES})
    if unknown:
        sys.exit("not a file this script knows: " + ", ".join(unknown))
    for vendor_path, (out_name, operations) in SOURCES.items():
        name = pathlib.PurePosixPath(vendor_path).name
        if name not in given:
            sys.exit(f"missing vendor file {name} ({vendor_path})")
        raw = given[name].read_bytes()
        doc = load(given[name])
        source = {
            "repository": f"https://github.com/{REPOSITORY}",
            "path": vendor_path,
            "commit": args.commit,
            "fetched": args.fetched,
            "sha256": hashlib.sha256(raw).hexdigest(),
            "extractedBy": f"extracted by tests/vendor/{HERE.name}/extract.py",
            "operations": [
                f"{m.upper()} {p}" for p, methods in operations.items() for m in methods
            ],
        }
        subset = extract(doc, operations, source)
        out = args.out_dir / out_name
        out.write_text(
            json.dumps(subset, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
        kinds = {
            k: len(v)
            for k, v in {**subset.get("components", {}), **{
                k: subset[k] for k in ("definitions", "parameters", "responses") if k in subset
            }}.items()
        }
        print(f"{out}: {len(source['operations'])} operations, {kinds}")


if __name__ == "__main__":
    main()
