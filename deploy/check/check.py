#!/usr/bin/env python3
"""Offline checks of deploy/ (run through deploy/check.sh, which provides the
pinned tools). Every check prints one line; any FAIL makes the exit status 1.

1. YAML: every deploy/**/*.yaml parses, without duplicate keys.
2. Kustomize: every kustomization under deploy/k8s renders (a small renderer
   for the subset used here; cross-checked against `kubectl kustomize` or
   `kustomize` when one is installed), and every manifest file is referenced
   by a kustomization except secret.example.yaml, which none may reference.
3. Schemas: every rendered object, and secret.example.yaml, validates against
   the Kubernetes OpenAPI-derived JSON schemas (strict: unknown fields fail)
   of the versions in K8S_VERSIONS (default: 1.30, the oldest supported because
   of the preStop sleep action, and the newest bundled).
4. Kubernetes policy: the choices deploy/README.md explains (replicas, rolling
   update, probes, grace period vs shutdown_grace, security context, secrets
   only from Secrets, PDB/HPA/Service wiring, Redis AOF + noeviction).
5. Compose: compose.yaml validates against the Compose spec schema; Redis
   durability flags, healthcheck, depends_on, replicas, config mount, grace.
   Access logs: no log format in haproxy.cfg can print the query string, which
   carries the apiKey of every guest search (no %r, %HU, %HQ, "option
   httplog", URL or body samples, directly or through a variable), and the
   access log still names the path (%HPO); the detector is run on broken
   copies too, so it can fail. No Ingress annotation logs $request & co.
6. Dockerfile: builder builds the release binary with --locked after a
   dependency-only layer; the final stage is small and runs as a non-root USER.
6b. Alerts: deploy/prometheus/alerts.yml parses; every rule has alert, expr,
   for, labels.severity, annotations summary/description and a runbook_url into
   docs/operations.md (an existing heading); every metric in an expr is one of
   src/metrics.rs (or a _bucket/_count/_sum of a histogram there), with labels
   it has, state/class values the code gives them, rate() on counters and
   delta() on gauges. With promtool on PATH: `promtool check rules` and rule
   unit tests (each alert fires on its series, across two replicas, and not on
   healthy ones or before its `for`).
7. Smoke (when a chargebridge binary and redis-server exist): three replicas on
   deploy/chargebridge.toml against one redis-server started with compose.yaml's
   flags, and one instance on the ConfigMap's TOML and the Deployment's env
   against a redis-server started with the StatefulSet's arguments (password
   from a stand-in Secret): all ready, no start-up warnings (i.e.
   chargebridge's own Redis durability check is satisfied), a delivery posted
   by one replica is replayed byte for byte by the others, a changed body under
   the same key is refused, SIGTERM exits cleanly within shutdown_grace.
   With haproxy installed (required with DEPLOY_CHECK_SMOKE=require), it
   runs compose's haproxy.cfg (bind and servers moved to 127.0.0.1) in front
   of the replicas, sends guest searches (apiKey and guest name in the query,
   one with a wrong key) and a charge through it, and fails if its access log
   lacks a line per request, shows a query string, or holds the apiKey or the
   name; every replica's log is searched for the apiKeys as well. The tenant's
   key is a fresh one per run (through its api_key_env, as a Secret would set
   it), not compose.yaml's default demo key.
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import yaml

import tomllib  # Python >= 3.11

import jsonschema
import kubernetes_validate.utils as kv

APP = "chargebridge"
DEFAULT_SHUTDOWN_GRACE = 30.0  # src/config.rs DEFAULTS_TOML


# --------------------------------------------------------------------------
# reporting


class Report:
    def __init__(self) -> None:
        self.failed: list[str] = []
        self.passed = 0
        self.skipped: list[str] = []

    def section(self, title: str) -> None:
        print(f"\n== {title}")

    def ok(self, msg: str) -> None:
        self.passed += 1
        print(f"  ok    {msg}")

    def fail(self, msg: str) -> None:
        self.failed.append(msg)
        print(f"  FAIL  {msg}")

    def skip(self, msg: str) -> None:
        self.skipped.append(msg)
        print(f"  skip  {msg}")

    def check(self, cond: bool, msg: str, why: str = "") -> bool:
        if cond:
            self.ok(msg)
        else:
            self.fail(msg + (f": {why}" if why else ""))
        return bool(cond)


# --------------------------------------------------------------------------
# helpers


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML keeps the last)."""


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def load_yaml_docs(path: Path) -> list:
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.load_all(f, Loader=UniqueKeyLoader) if d is not None]


def parse_duration(text) -> float:
    """Seconds of a humantime / compose duration ("30s", "1m30s", "500ms", "7d")."""
    if isinstance(text, (int, float)):
        return float(text)
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
    total, pos, s = 0.0, 0, str(text).replace(" ", "")
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ms|sec|min|s|m|h|d)", s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ValueError(f"not a duration: {text!r}")
    return total


def interpolate(value: str) -> str:
    """Compose-style ${VAR}, ${VAR:-default}, ${VAR:?msg} with the environment."""

    def sub(m):
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        v = os.environ.get(name)
        if op in (":-", "-"):
            return v if v else arg
        return v or ""

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}", sub, value)


def flag_value(args: list[str], flag: str):
    """Value after `--flag` (or `--flag=value`) in an argument list."""
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return str(args[i + 1])
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def pod_containers(doc: dict) -> list[dict]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return list(spec.get("containers", [])) + list(spec.get("initContainers", []))


def labels_match(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# --------------------------------------------------------------------------
# kustomize (the subset used here)

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_KUSTOMIZE_KEYS = {"apiVersion", "kind", "resources", "namespace", "images"}
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "PriorityClass", "IngressClass",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
}


class RenderError(Exception):
    pass


def kustomization_file(d: Path):
    for n in KUSTOMIZATION_NAMES:
        if (d / n).is_file():
            return d / n
    return None


def split_image(image: str):
    digest = None
    if "@" in image:
        image, digest = image.split("@", 1)
    name, tag = image, None
    if ":" in image.rsplit("/", 1)[-1]:
        name, tag = image.rsplit(":", 1)
    return name, tag, digest


def render(d: Path, used: set, stack=()) -> list[dict]:
    """Objects of the kustomization in `d`; files read are added to `used`."""
    d = d.resolve()
    if d in stack:
        raise RenderError(f"kustomization cycle through {d}")
    kf = kustomization_file(d)
    if kf is None:
        raise RenderError(f"{d}: no kustomization.yaml")
    used.add(kf.resolve())
    (k,) = load_yaml_docs(kf)
    if k.get("kind", "Kustomization") != "Kustomization":
        raise RenderError(f"{kf}: kind {k.get('kind')} is not supported by the offline renderer")
    unknown = set(k) - SUPPORTED_KUSTOMIZE_KEYS
    if unknown:
        raise RenderError(
            f"{kf}: {sorted(unknown)} not supported by the offline renderer "
            "(install kubectl or kustomize to render it)"
        )
    out: list[dict] = []
    for r in k.get("resources", []) or []:
        if "://" in r or r.startswith("github.com/"):
            raise RenderError(f"{kf}: remote resource {r} (offline check)")
        p = (d / r).resolve()
        if p.is_dir():
            out += render(p, used, stack + (d,))
        elif p.is_file():
            used.add(p)
            out += [copy.deepcopy(x) for x in load_yaml_docs(p)]
        else:
            raise RenderError(f"{kf}: resource {r} does not exist")
    for img in k.get("images", []) or []:
        for doc in out:
            for c in pod_containers(doc):
                name, tag, digest = split_image(c.get("image", ""))
                if name != img["name"]:
                    continue
                name = img.get("newName", name)
                if "digest" in img:
                    c["image"] = f"{name}@{img['digest']}"
                else:
                    tag = img.get("newTag", tag)
                    c["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    if k.get("namespace"):
        for doc in out:
            if doc.get("kind") not in CLUSTER_SCOPED:
                doc.setdefault("metadata", {})["namespace"] = k["namespace"]
    seen = set()
    for doc in out:
        ident = (doc.get("apiVersion", "").split("/")[0] if "/" in doc.get("apiVersion", "") else "",
                 doc.get("kind"), doc.get("metadata", {}).get("namespace"), doc.get("metadata", {}).get("name"))
        if ident in seen:
            raise RenderError(f"{kf}: {ident[1]}/{ident[3]} defined twice")
        seen.add(ident)
    return out


def external_kustomize():
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        try:
            subprocess.run(["kubectl", "kustomize", "--help"], capture_output=True, timeout=20, check=True)
            return ["kubectl", "kustomize"]
        except (subprocess.SubprocessError, OSError):
            return None
    return None


def canonical(docs: list[dict]) -> list[str]:
    return sorted(json.dumps(d, sort_keys=True) for d in docs)


# --------------------------------------------------------------------------
# 1-4: YAML, kustomize, schemas, Kubernetes policy


def check_yaml(rep: Report, deploy: Path) -> None:
    rep.section("YAML syntax (deploy/**/*.yaml, duplicate keys refused)")
    files = sorted(p for p in deploy.rglob("*.y*ml") if p.suffix in (".yaml", ".yml"))
    for p in files:
        try:
            n = len(load_yaml_docs(p))
            rep.ok(f"{p.relative_to(deploy.parent)} ({n} document{'s' if n != 1 else ''})")
        except (yaml.YAMLError, OSError) as e:
            rep.fail(f"{p.relative_to(deploy.parent)}: {e}")


def check_kustomize(rep: Report, deploy: Path, work: Path) -> dict[str, list[dict]]:
    rep.section("Kustomize rendering")
    k8s = deploy / "k8s"
    dirs = sorted({p.parent for n in KUSTOMIZATION_NAMES for p in k8s.rglob(n)})
    rendered: dict[str, list[dict]] = {}
    used: set = set()
    outdir = work / "rendered"
    outdir.mkdir(parents=True, exist_ok=True)
    ext = external_kustomize()
    for d in dirs:
        rel = d.relative_to(deploy).as_posix()
        try:
            docs = render(d, used)
        except (RenderError, yaml.YAMLError, OSError) as e:
            rep.fail(f"{rel}: {e}")
            continue
        rendered[rel] = docs
        target = outdir / (rel.replace("/", "_") + ".yaml")
        target.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        kinds = ", ".join(f"{x['kind']}/{x['metadata']['name']}" for x in docs)
        rep.ok(f"{rel} -> {len(docs)} objects [{kinds}] (written to {target.relative_to(work.parent.parent)})")
        if ext:
            r = subprocess.run(ext + [str(d)], capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                rep.fail(f"{rel}: {' '.join(ext)} failed: {r.stderr.strip()[:400]}")
            else:
                theirs = [x for x in yaml.safe_load_all(r.stdout) if x]
                rep.check(canonical(theirs) == canonical(docs),
                          f"{rel}: identical to `{' '.join(ext)}` output",
                          "the offline renderer and kustomize disagree")
    if not ext:
        rep.skip("no kubectl/kustomize installed: offline renderer not cross-checked (fine)")
    manifests = {p.resolve() for p in k8s.rglob("*.yaml")} | {p.resolve() for p in k8s.rglob("*.yml")}
    example = {p for p in manifests if p.name.startswith("secret.example")}
    if len(rendered) == len(dirs):  # otherwise a failed render already explains it
        unreferenced = sorted(manifests - used - example)
        rep.check(not unreferenced, "every manifest under deploy/k8s is referenced by a kustomization",
                  ", ".join(str(p.relative_to(deploy)) for p in unreferenced))
    rep.check(bool(example) and not (example & used),
              "secret.example.yaml exists and no kustomization includes it")
    for rel, docs in rendered.items():
        secrets = [x["metadata"]["name"] for x in docs if x.get("kind") == "Secret"]
        rep.check(not secrets, f"{rel}: renders no Secret (secrets are created with kubectl)", str(secrets))
    # Every secretKeyRef is documented (name and key) by secret.example.yaml.
    documented = set()
    for p in example:
        for d in load_yaml_docs(p):
            if d.get("kind") == "Secret":
                for k in list((d.get("stringData") or {})) + list((d.get("data") or {})):
                    documented.add((d["metadata"]["name"], k))
    refs = set()
    for docs in rendered.values():
        for d in docs:
            for c in pod_containers(d):
                for e in c.get("env", []):
                    r = (e.get("valueFrom") or {}).get("secretKeyRef")
                    if r:
                        refs.add((r["name"], r["key"]))
    missing = sorted(refs - documented)
    rep.check(not missing, f"secret.example.yaml documents every secretKeyRef ({len(refs)})",
              ", ".join(f"{n}/{k}" for n, k in missing))
    return rendered


def check_schemas(rep: Report, deploy: Path, rendered: dict[str, list[dict]], versions: list[str]) -> None:
    rep.section(f"Kubernetes JSON schemas (kubernetes-validate, strict, versions {', '.join(versions)})")
    objects: dict[str, dict] = {}
    for rel, docs in rendered.items():
        for d in docs:
            objects.setdefault(f"{d.get('kind')}/{d.get('metadata', {}).get('name')}", d)
    for p in sorted((deploy / "k8s").rglob("secret.example*.y*ml")):
        for d in load_yaml_docs(p):
            objects[f"{d.get('kind')}/{d.get('metadata', {}).get('name')} ({p.name})"] = d
    for name, d in sorted(objects.items()):
        for v in versions:
            try:
                kv.validate(d, v, strict=True)
                rep.ok(f"{name} valid for Kubernetes {v}")
            except kv.ValidationError as e:
                where = "/".join(str(x) for x in e.path)
                rep.fail(f"{name} invalid for Kubernetes {v} at {where or '<root>'}: {e.message}")
            except kv.SchemaNotFoundError as e:
                rep.fail(f"{name}: {e.message}")
            except kv.VersionNotSupportedError as e:
                rep.fail(f"{name}: {e.message}")


def find(docs: list[dict], kind: str, name: str | None = None):
    for d in docs:
        if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name):
            return d
    return None


def check_k8s_policy(rep: Report, rendered: dict[str, list[dict]]) -> None:
    rep.section("Kubernetes choices (deploy/README.md)")
    base = rendered.get("k8s/base")
    if not base:
        rep.fail("k8s/base did not render")
        return
    dep = find(base, "Deployment", APP)
    if not rep.check(dep is not None, f"base has Deployment/{APP}"):
        return
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"].get("labels", {})
    rep.check(labels_match(spec["selector"].get("matchLabels", {}), pod_labels),
              "Deployment selector matches its pod labels")
    rep.check(spec.get("replicas", 1) >= 3, f"Deployment runs >= 3 replicas ({spec.get('replicas')})")
    ru = spec.get("strategy", {}).get("rollingUpdate", {})
    rep.check(spec.get("strategy", {}).get("type", "RollingUpdate") == "RollingUpdate"
              and str(ru.get("maxUnavailable")) == "0",
              "rolling update with maxUnavailable 0")
    (c,) = [x for x in pod["containers"] if x["name"] == APP]

    def probe_path(p):
        return (c.get(p) or {}).get("httpGet", {}).get("path")

    rep.check(probe_path("readinessProbe") == "/readyz", "readinessProbe GET /readyz")
    rep.check(probe_path("livenessProbe") == "/healthz", "livenessProbe GET /healthz (not tied to Redis)")
    rep.check(c.get("startupProbe") is not None, "startupProbe set")
    res = c.get("resources", {})
    rep.check(bool(res.get("requests", {}).get("cpu")) and bool(res.get("requests", {}).get("memory"))
              and bool(res.get("limits", {}).get("memory")),
              f"resources: cpu/memory requests and a memory limit ({res})")
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    rep.check(psc.get("runAsNonRoot") is True or csc.get("runAsNonRoot") is True, "runAsNonRoot")
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    rep.check(uid is None or uid != 0, f"runAsUser is not 0 ({uid})")
    rep.check(csc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem")
    rep.check(csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation false")
    rep.check("ALL" in (csc.get("capabilities", {}).get("drop") or []), "capabilities drop ALL")

    # configuration: ConfigMap mounted where the args point
    args = c.get("args") or []
    config_path = flag_value(args, "--config") or flag_value(args, "-c")
    cm, toml_text = None, None
    for m in c.get("volumeMounts", []):
        vol = next((v for v in pod.get("volumes", []) if v["name"] == m["name"]), None)
        if vol and "configMap" in vol and config_path and config_path.startswith(m["mountPath"].rstrip("/") + "/"):
            key_path = config_path[len(m["mountPath"].rstrip("/")) + 1:]
            items = vol["configMap"].get("items")
            key = next((i["key"] for i in items if i["path"] == key_path), None) if items else key_path
            cm = find(base, "ConfigMap", vol["configMap"]["name"])
            toml_text = (cm or {}).get("data", {}).get(key)
            rep.check(m.get("readOnly") is True, f"config volume mounted read-only at {m['mountPath']}")
    if not rep.check(toml_text is not None,
                     f"--config {config_path} is a key of a ConfigMap in the base, mounted at its directory"):
        return
    try:
        cfg = tomllib.loads(toml_text)
        rep.ok("ConfigMap TOML parses")
    except tomllib.TOMLDecodeError as e:
        rep.fail(f"ConfigMap TOML: {e}")
        return
    server, idem = cfg.get("server", {}), cfg.get("idempotency", {})
    listen = server.get("listen", "127.0.0.1:8080")
    port = int(listen.rsplit(":", 1)[1])
    rep.check(listen.rsplit(":", 1)[0] in ("0.0.0.0", "[::]", "::"), f"listens on all interfaces ({listen})")
    rep.check(any(p.get("containerPort") == port for p in c.get("ports", [])), f"containerPort {port} = listen port")
    rep.check(idem.get("store") == "redis", "idempotency store = \"redis\" (replicas share records)")
    grace = parse_duration(server.get("shutdown_grace", DEFAULT_SHUTDOWN_GRACE))
    pre = (c.get("lifecycle", {}).get("preStop") or {})
    pre_sleep = pre.get("sleep", {}).get("seconds", 0)
    if "exec" in pre:
        cmd = pre["exec"].get("command", [])
        m = re.search(r"sleep\s+(\d+)", " ".join(map(str, cmd)))
        pre_sleep = int(m.group(1)) if m else 0
    tgps = pod.get("terminationGracePeriodSeconds", 30)
    rep.check(pre_sleep > 0, f"preStop waits ({pre_sleep}s) so endpoints go before SIGTERM")
    rep.check(tgps > pre_sleep + grace,
              f"terminationGracePeriodSeconds {tgps} > preStop {pre_sleep}s + shutdown_grace {grace:g}s")

    # secrets: never in the ConfigMap, always through secretKeyRef
    env = {e["name"]: e for e in c.get("env", [])}
    tenants = cfg.get("tenants", [])
    rep.check(bool(tenants), f"ConfigMap defines tenants ({len(tenants)})")
    for t in tenants:
        ref = t.get("id")
        rep.check("api_key" not in t, f"tenant {ref}: no api_key in the ConfigMap")
        var = t.get("api_key_env")
        if var:
            e = env.get(var, {})
            rep.check("secretKeyRef" in e.get("valueFrom", {}),
                      f"tenant {ref}: {var} comes from a Secret (secretKeyRef)")
        elif t.get("api_key_file"):
            rep.ok(f"tenant {ref}: api_key_file {t['api_key_file']}")
        else:
            rep.fail(f"tenant {ref}: needs api_key_env (or api_key_file)")
    url = idem.get("redis_url")
    rep.check(url is None or "@" not in url, "no Redis credentials in the ConfigMap")
    e = env.get("CHARGEBRIDGE__IDEMPOTENCY__REDIS_URL", {})
    rep.check("secretKeyRef" in e.get("valueFrom", {}), "CHARGEBRIDGE__IDEMPOTENCY__REDIS_URL from a Secret")
    for name, e in env.items():
        if re.search(r"KEY|PASSWORD|TOKEN|SECRET|REDIS_URL", name) and "value" in e:
            rep.fail(f"env {name} has a literal value; use a secretKeyRef")
    flat = json.dumps(cm)
    rep.check(not re.search(r"api_key\s*=|password\s*=|token\s*=", flat), "ConfigMap holds no key/password/token")

    # Service, PDB, HPA
    svc = find(base, "Service", APP)
    if rep.check(svc is not None, f"Service/{APP}"):
        rep.check(labels_match(svc["spec"].get("selector", {}), pod_labels), "Service selects the pods")
        names = {p.get("name") for p in c.get("ports", [])} | {p.get("containerPort") for p in c.get("ports", [])}
        rep.check(all(p.get("targetPort") in names for p in svc["spec"]["ports"]), "Service targetPort is a container port")
    pdb = find(base, "PodDisruptionBudget")
    if rep.check(pdb is not None, "PodDisruptionBudget"):
        ps = pdb["spec"]
        rep.check(labels_match(ps["selector"].get("matchLabels", {}), pod_labels), "PDB selects the pods")
        ok = ps.get("maxUnavailable") == 1 or (
            isinstance(ps.get("minAvailable"), int) and 2 <= ps["minAvailable"] < spec.get("replicas", 1))
        rep.check(ok, f"PDB keeps >= 2 replicas (maxUnavailable {ps.get('maxUnavailable')}, minAvailable {ps.get('minAvailable')})")
    hpa = find(base, "HorizontalPodAutoscaler")
    if rep.check(hpa is not None, "HorizontalPodAutoscaler"):
        hs = hpa["spec"]
        rep.check(hs["scaleTargetRef"].get("kind") == "Deployment" and hs["scaleTargetRef"].get("name") == APP,
                  "HPA targets the Deployment")
        rep.check(hs.get("minReplicas", 1) >= 3 and hs.get("maxReplicas", 0) >= hs.get("minReplicas", 1),
                  f"HPA min {hs.get('minReplicas')} >= 3, max {hs.get('maxReplicas')}")
        cpu = [m for m in hs.get("metrics", []) if m.get("type") == "Resource" and m["resource"]["name"] == "cpu"]
        rep.check(bool(cpu), f"HPA scales on CPU ({cpu[0]['resource']['target'] if cpu else None})")

    # Redis option
    for rel in ("k8s/redis", "k8s/overlays/with-redis"):
        docs = rendered.get(rel)
        if not rep.check(bool(docs), f"{rel} renders"):
            continue
        sts = find(docs, "StatefulSet")
        if not rep.check(sts is not None, f"{rel}: Redis StatefulSet"):
            continue
        (rc,) = [x for x in sts["spec"]["template"]["spec"]["containers"]]
        image = rc.get("image", "")
        rep.check(bool(re.match(r"^(docker\.io/)?(library/)?redis:7", image)), f"{rel}: Redis 7 image ({image})")
        rargs = [str(a) for a in (rc.get("command") or []) + (rc.get("args") or [])]
        check_redis_flags(rep, rel, rargs)
        claims = {t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])}
        data_dir = flag_value(rargs, "--dir") or "/data"
        rep.check(any(m["name"] in claims and m["mountPath"] == data_dir for m in rc.get("volumeMounts", [])),
                  f"{rel}: AOF directory {data_dir} is a PersistentVolumeClaim")
        hsvc = find(docs, "Service", sts["spec"]["serviceName"])
        rep.check(hsvc is not None and hsvc["spec"].get("clusterIP") == "None"
                  and labels_match(hsvc["spec"]["selector"], sts["spec"]["template"]["metadata"]["labels"]),
                  f"{rel}: headless Service {sts['spec']['serviceName']} selects the Redis pod")
    overlay = rendered.get("k8s/overlays/with-redis", [])
    rep.check(find(overlay, "Deployment", APP) is not None and find(overlay, "StatefulSet") is not None,
              "overlays/with-redis = base + redis")


def check_redis_flags(rep: Report, where: str, args: list[str]) -> None:
    rep.check(flag_value(args, "--appendonly") == "yes", f"{where}: Redis --appendonly yes")
    fsync = flag_value(args, "--appendfsync")
    rep.check(fsync in ("everysec", "always"), f"{where}: Redis --appendfsync everysec|always ({fsync})")
    rep.check(flag_value(args, "--maxmemory-policy") == "noeviction", f"{where}: Redis --maxmemory-policy noeviction")


# --------------------------------------------------------------------------
# 5: compose


def compose_command(svc: dict) -> list[str]:
    cmd = svc.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(x) for x in cmd]


def compose_env(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(x.split("=", 1) if "=" in x else (x, os.environ.get(x, "")) for x in env)
    return {k: interpolate(str(v)) for k, v in env.items()}


def check_compose(rep: Report, deploy: Path, schema_path: Path, dockerfile_cmd: list[str] | None):
    rep.section("Compose (deploy/compose.yaml)")
    path = deploy / "compose.yaml"
    try:
        (comp,) = load_yaml_docs(path)
    except (ValueError, yaml.YAMLError, OSError) as e:
        rep.fail(f"compose.yaml: {e}")
        return None
    schema = json.loads(schema_path.read_text())
    # The pinned schema (docker-compose 1.29.2, 2021) predates the top-level
    # `name` (project name) of today's Compose spec; add exactly that.
    schema["properties"].setdefault("name", {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$"})
    errors = sorted(jsonschema.Draft201909Validator(schema).iter_errors(comp), key=lambda e: list(e.path))
    rep.check(not errors, "compose.yaml valid against the Compose spec schema",
              "; ".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5]))
    services = comp.get("services", {})
    redis = next((n for n, s in services.items() if str(s.get("image", "")).startswith("redis:")), None)
    if not rep.check(redis is not None, "a redis service"):
        return None
    rs = services[redis]
    rep.check(bool(re.match(r"redis:7", rs["image"])), f"Redis 7 ({rs['image']})")
    rcmd = compose_command(rs)
    check_redis_flags(rep, f"compose {redis}", rcmd)
    vols = rs.get("volumes", [])
    named = set((comp.get("volumes") or {}).keys())
    data_dir = flag_value(rcmd, "--dir") or "/data"
    rep.check(any(isinstance(v, str) and v.split(":")[0] in named and v.split(":")[1] == data_dir for v in vols)
              or any(isinstance(v, dict) and v.get("source") in named and v.get("target") == data_dir for v in vols),
              f"Redis {data_dir} on a named volume")
    test = rs.get("healthcheck", {}).get("test", [])
    test = " ".join(test) if isinstance(test, list) else str(test)
    rep.check("redis-cli" in test and "ping" in test, "Redis healthcheck redis-cli ping")

    app = next((n for n, s in services.items() if isinstance(s.get("build"), (dict, str))), None)
    if not rep.check(app is not None, "a chargebridge service built from the Dockerfile"):
        return None
    a = services[app]
    build = a["build"] if isinstance(a["build"], dict) else {"context": a["build"]}
    ctx = (deploy / build.get("context", ".")).resolve()
    dockerfile = ctx / build.get("dockerfile", "Dockerfile")
    rep.check(ctx == deploy.parent.resolve() and dockerfile == (deploy / "Dockerfile").resolve(),
              f"build: context .. , dockerfile deploy/Dockerfile ({build})")
    replicas = (a.get("deploy") or {}).get("replicas", a.get("scale", 1))
    rep.check(replicas >= 3, f"{app}: {replicas} replicas")
    dep = (a.get("depends_on") or {})
    rep.check(isinstance(dep, dict) and (dep.get(redis) or {}).get("condition") == "service_healthy",
              f"{app} depends_on {redis} condition service_healthy")
    cmd = compose_command(a) or (dockerfile_cmd or [])
    config_path = flag_value(cmd, "--config")
    mount = None
    for v in a.get("volumes", []):
        src, _, rest = (v.partition(":") if isinstance(v, str) else (v.get("source"), None, v.get("target")))
        target = rest.split(":")[0] if isinstance(v, str) else rest
        if target == config_path:
            mount = (deploy / src).resolve()
    if not rep.check(mount is not None and mount.is_file(), f"{app}: config {config_path} mounted from a file in deploy/"):
        return None
    try:
        cfg = tomllib.loads(mount.read_text())
    except tomllib.TOMLDecodeError as e:
        rep.fail(f"{mount.name}: {e}")
        return None
    rep.ok(f"{mount.name} parses")
    listen = cfg.get("server", {}).get("listen", "127.0.0.1:8080")
    rep.check(listen.startswith("0.0.0.0:"), f"{mount.name}: listen {listen}")
    idem = cfg.get("idempotency", {})
    rep.check(idem.get("store") == "redis", f"{mount.name}: store = \"redis\"")
    url = idem.get("redis_url", "")
    host = re.sub(r"^[a-z+]+://(?:[^@/]*@)?", "", url).split(":")[0].split("/")[0]
    rep.check(host in services, f"{mount.name}: redis_url {url} names the compose service")
    env = compose_env(a)
    for t in cfg.get("tenants", []):
        rep.check("api_key" not in t, f"{mount.name}: tenant {t.get('id')} key not in the file")
        if t.get("api_key_env"):
            rep.check(t["api_key_env"] in env, f"{app}: sets {t['api_key_env']} (api_key_env)")
    grace = parse_duration(cfg.get("server", {}).get("shutdown_grace", DEFAULT_SHUTDOWN_GRACE))
    stop = parse_duration(a.get("stop_grace_period", "10s"))
    rep.check(stop > grace, f"{app}: stop_grace_period {stop:g}s > shutdown_grace {grace:g}s")
    lb = [n for n, s in services.items() if re.match(r"(haproxy|nginx|traefik|envoy)", str(s.get("image", "")).split("/")[-1])]
    haproxy_cfg = None
    if rep.check(bool(lb), f"a load balancer in front ({', '.join(lb)})"):
        for v in services[lb[0]].get("volumes", []):
            src = (deploy / str(v).split(":")[0]).resolve()
            rep.check(src.is_file(), f"{lb[0]}: {src.relative_to(deploy.parent)} exists")
            if "haproxy" in services[lb[0]]["image"]:
                haproxy_cfg = src
                text = src.read_text()
                rep.check(f"{app}:{listen.rsplit(':', 1)[1]}" in text, f"haproxy.cfg targets {app}:{listen.rsplit(':', 1)[1]}")
                rep.check("/readyz" in text, "haproxy.cfg health-checks /readyz")
                check_haproxy_log(rep, src)
                if haproxy_binary():
                    r = subprocess.run([haproxy_binary(), "-c", "-f", str(src)], capture_output=True, text=True)
                    rep.check(r.returncode == 0, "haproxy -c accepts haproxy.cfg", (r.stdout + r.stderr).strip()[-400:])
                else:
                    rep.skip("haproxy not installed: haproxy.cfg syntax not checked")
    if lb and not haproxy_cfg:
        rep.fail(f"{', '.join(lb) or 'no load balancer'}: only HAProxy's access log is checked for the "
                 "query string (apiKey); check this proxy's log format by hand or extend deploy/check")
    return {"config": mount, "env": env, "redis_args": rcmd, "replicas": replicas,
            "haproxy_cfg": haproxy_cfg, "tenants": cfg.get("tenants", [])}


# --------------------------------------------------------------------------
# 5b: access logs never print the query string (it carries the apiKey)
#
# Lightspeed's guest search is GET /lightspeed/search?term=…&
# businessExternalReference=…&apiKey=…: a proxy that logs the request line
# writes every tenant's API key (and guests' names) to its log.

HAPROXY_SECTIONS = {
    "global", "defaults", "frontend", "backend", "listen", "resolvers", "peers", "userlist",
    "mailers", "program", "http-errors", "ring", "log-forward", "cache", "crt-store",
    "traces", "log-profile",
}
# Log-format aliases that print the query string (HAProxy 3.0 manual, 8.2.6):
# %r the request line, %HU the request URI, %HQ the query string.
HAPROXY_QUERY_ALIASES = {"r": "the request line", "HU": "the request URI", "HQ": "the query string"}
# Sample fetches whose value holds the query string (url, url_param, urlp,
# url32, query, pathq, baseq, capture.req.uri) or the body (a charge's body
# carries the apiKey too).
HAPROXY_QUERY_FETCHES = re.compile(
    r"(?<![\w.])(url\w*|query|pathq|baseq|capture\.req\.uri|req\.body\w*|req\.payload\w*)(?![\w.])")
# Directives whose first argument is a custom log format.
HAPROXY_FORMAT_DIRECTIVES = ("log-format", "log-format-sd", "error-log-format", "unique-id-format")


def haproxy_words(line: str) -> tuple[list[str], bool]:
    """A configuration line cut into words as HAProxy does (backslash escapes,
    weak "…" and strong '…' quotes, # comments); and whether it refers to an
    environment variable ($VAR outside strong quotes), whose value this check
    cannot see."""
    words, cur, have, quote, env, i = [], "", False, None, False, 0
    while i < len(line):
        c = line[i]
        if quote == "'":
            if c == "'":
                quote = None
            else:
                cur += c
        elif c == "\\" and i + 1 < len(line):
            cur += {"n": "\n", "r": "\r", "t": "\t"}.get(line[i + 1], line[i + 1])
            have, i = True, i + 2
            continue
        elif quote == '"':
            if c == '"':
                quote = None
            else:
                env |= c == "$"
                cur += c
        elif c in "'\"":
            quote, have = c, True
        elif c == "#":
            break
        elif c in " \t":
            if have:
                words.append(cur)
            cur, have = "", False
        else:
            env |= c == "$"
            cur, have = cur + c, True
        i += 1
    if have:
        words.append(cur)
    return words, env


def haproxy_sections(text: str) -> list[dict]:
    """[{"kind", "name", "lines": [(lineno, words, env)]}], in file order."""
    out: list[dict] = []
    for n, raw in enumerate(text.splitlines(), 1):
        words, env = haproxy_words(raw)
        if not words:
            continue
        if words[0] in HAPROXY_SECTIONS:
            out.append({"kind": words[0], "name": words[1] if len(words) > 1 else None,
                        "args": words[1:], "line": n, "lines": []})
        elif out:
            out[-1]["lines"].append((n, words, env))
    return out


def log_format_items(fmt: str) -> list[tuple[str, str]]:
    """The items of an HAProxy custom log format: ("alias", "HPO") for %HPO,
    %{+Q}HPO or %(name)HPO, ("expr", "path,lower") for %[path,lower]."""
    items, i = [], 0
    while i < len(fmt):
        if fmt[i] != "%":
            i += 1
            continue
        i += 1
        if fmt[i:i + 1] == "%":
            i += 1
            continue
        while fmt[i:i + 1] in ("(", "{"):
            j = fmt.find(")" if fmt[i] == "(" else "}", i)
            if j < 0:
                raise ValueError(f"unterminated {fmt[i]!r} in {fmt!r}")
            i = j + 1
        if fmt[i:i + 1] == "[":
            depth, j = 0, i
            while j < len(fmt):
                depth += {"[": 1, "]": -1}.get(fmt[j], 0)
                if depth == 0:
                    break
                j += 1
            if depth:
                raise ValueError(f"unterminated %[ in {fmt!r}")
            items.append(("expr", fmt[i + 1:j]))
            i = j + 1
        else:
            m = re.match(r"[A-Za-z][A-Za-z0-9]*", fmt[i:])
            if not m:
                raise ValueError(f"'%' not followed by an alias or %[...] in {fmt!r}")
            items.append(("alias", m.group(0)))
            i += m.end()
    return items


def haproxy_log_leaks(text: str) -> tuple[list[str], dict[str, str]]:
    """Where an HAProxy configuration can write the query string (or the body)
    to a log; and, per frontend/listen that logs, its effective access-log
    format. An empty problem list means the log prints neither."""
    sections = haproxy_sections(text)
    problems: list[str] = []
    # set-var(NAME) / set-var-fmt(NAME) definitions: a format that logs a
    # variable logs whatever the variable was set from.
    setvars: dict[str, list[tuple[str, str]]] = {}
    for s in sections:
        for n, words, _ in s["lines"]:
            for k, w in enumerate(words[:-1]):
                m = re.match(r"set-var(-fmt)?\(([^),]+)", w)
                if m:
                    setvars.setdefault(m.group(2), []).append(("fmt" if m.group(1) else "expr", words[k + 1]))

    def expr_leaks(expr: str, seen: frozenset) -> list[str]:
        out = [f"%[{expr}] uses {m.group(1)}" for m in HAPROXY_QUERY_FETCHES.finditer(expr)]
        for name, defs in setvars.items():
            if name not in seen and re.search(rf"(?<![\w.]){re.escape(name)}(?![\w.])", expr):
                for kind, value in defs:
                    out += [f"{name} (set from {value!r}): {p}"
                            for p in (fmt_leaks(value, seen | {name}) if kind == "fmt"
                                      else expr_leaks(value, seen | {name}))]
        return out

    def fmt_leaks(fmt: str, seen: frozenset = frozenset()) -> list[str]:
        try:
            items = log_format_items(fmt)
        except ValueError as e:
            return [str(e)]
        out = []
        for kind, value in items:
            if kind == "alias" and value in HAPROXY_QUERY_ALIASES:
                out.append(f"%{value} prints {HAPROXY_QUERY_ALIASES[value]}, with the query string")
            elif kind == "expr":
                out += expr_leaks(value, seen)
        return out

    formats: dict[int, str] = {}  # section index -> its own last access-log format
    for si, s in enumerate(sections):
        where = f"{s['kind']} {s['name'] or ''}".strip()
        for n, words, env in s["lines"]:
            at = f"line {n} ({where})"
            if words[0] == "option" and len(words) > 1 and words[1] in ("httplog", "httpslog"):
                problems.append(f"{at}: 'option {words[1]}' logs the request line (%r) with its query string")
                formats[si] = "%r"
            elif words[0] in HAPROXY_FORMAT_DIRECTIVES and len(words) > 1:
                if env:
                    problems.append(f"{at}: {words[0]} uses an environment variable (e.g. "
                                    "HAPROXY_HTTP_LOG_FMT, which ends in %r); write the format out")
                problems += [f"{at}: {words[0]}: {p}" for p in fmt_leaks(words[1])]
                if words[0] == "log-format":
                    formats[si] = words[1]
            elif s["kind"] == "log-profile" and words[0] == "on":
                for k, w in enumerate(words[:-1]):
                    if w in ("format", "sd"):
                        problems += [f"{at}: {w}: {p}" for p in fmt_leaks(words[k + 1])]
            elif words[:3] == ["capture", "request", "header"] and len(words) > 3 \
                    and words[3].lower() in ("referer", "referrer", "location"):
                problems.append(f"{at}: captures the {words[3]} header, which holds a whole URL")
            elif len(words) > 2 and words[0] in ("http-request", "tcp-request") and "capture" in words:
                k = words.index("capture")
                if k + 1 < len(words):
                    problems += [f"{at}: capture: {p}" for p in expr_leaks(words[k + 1], frozenset())]

    effective: dict[str, str] = {}
    defaults: dict[str | None, tuple[str | None, bool]] = {}  # name (None = last) -> (format, logs)
    for si, s in enumerate(sections):
        logs = any(w[0] == "log" for _, w, _ in s["lines"])
        parent = (None, False)
        if s["kind"] in ("defaults", "frontend", "listen"):
            a = s["args"]
            if "from" in a and a.index("from") + 1 < len(a):
                parent = defaults.get(a[a.index("from") + 1], (None, False))
            elif s["kind"] != "defaults":
                parent = defaults.get(None, (None, False))
        fmt = formats.get(si, parent[0])
        logs = logs or parent[1]
        if s["kind"] == "defaults":
            defaults[None] = (fmt, logs)
            if s["name"]:
                defaults[s["name"]] = (fmt, logs)
        elif s["kind"] in ("frontend", "listen") and logs:
            where = f"{s['kind']} {s['name']}"
            if fmt is None:
                problems.append(f"{where}: logs without a log-format (set one that names %HPO)")
            else:
                effective[where] = fmt
    return problems, effective


def haproxy_binary():
    """haproxy on PATH, or where Debian installs it (/usr/sbin may be off PATH)."""
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")


def check_haproxy_log(rep: Report, path: Path) -> None:
    """The access-log format of haproxy.cfg prints the path, never the query string."""
    text = path.read_text()
    problems, effective = haproxy_log_leaks(text)
    for p in problems:
        rep.fail(f"haproxy.cfg can log the query string (the apiKey of every guest search): {p}")
    for where, fmt in effective.items():
        try:
            items = log_format_items(fmt)
        except ValueError:
            items = []
        path_item = any(k == "alias" and v in ("HPO", "HP") or k == "expr" and re.match(r"\s*(path|base)\b", v)
                        for k, v in items)
        rep.check(path_item, f"haproxy.cfg {where}: access log names the path ({fmt[-22:]!r})",
                  "no %HPO (or %HP, %[path]) in the format")
    rep.check(bool(effective), "haproxy.cfg: some frontend writes an access log", "no frontend logs")
    if not problems and effective:
        rep.ok(f"haproxy.cfg: no access-log format can print the query string ({len(effective)} frontend(s))")
    # The detector must be able to fail: the stock httplog and a %r format.
    for label, bad in (("option httplog", "\n    option httplog\n"),
                       ("log-format with %{+Q}r", "\n    log-format \"%ci %{+Q}r\"\n"),
                       ("a variable set from the query", "\n    http-request set-var(txn.q) query\n"
                        "    log-format '%ci %[var(txn.q)]'\n")):
        mutated = re.sub(r"(^defaults[^\n]*\n)", lambda m: m.group(1) + bad.lstrip("\n"), text, count=1, flags=re.M)
        rep.check(bool(haproxy_log_leaks(mutated)[0]), f"the log-format check refuses {label} (self-test)")


# Nginx variables that hold the query string: $request (the request line),
# $request_uri, $args, $query_string, $arg_NAME.
NGINX_QUERY_VARS = re.compile(r"\$(request|request_uri|args|query_string|arg_\w+)\b")


def check_ingress_logs(rep: Report, rendered: dict[str, list[dict]]) -> None:
    """No Ingress/Gateway manifest asks its proxy to log the query string."""
    seen = 0
    for rel, docs in rendered.items():
        for d in docs:
            if d.get("kind") not in ("Ingress", "Gateway", "HTTPRoute", "IngressRoute"):
                continue
            seen += 1
            name = f"{rel}: {d['kind']}/{d['metadata']['name']}"
            ann = d.get("metadata", {}).get("annotations") or {}
            bad = [k for k, v in ann.items() if NGINX_QUERY_VARS.search(str(v))]
            rep.check(not bad, f"{name}: no annotation logs the query string", ", ".join(bad))
    if not seen:
        rep.ok("no Ingress or Gateway under deploy/k8s (yours must log the path only: deploy/README.md)")


# --------------------------------------------------------------------------
# 6: Dockerfile


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    out, cur = [], ""
    for line in text.splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        if cur:
            word, _, rest = cur.partition(" ")
            out.append((word.upper(), rest.strip()))
        cur = ""
    return out


def exec_form(rest: str):
    try:
        v = json.loads(rest)
        return v if isinstance(v, list) else None
    except json.JSONDecodeError:
        return None


def check_dockerfile(rep: Report, root: Path):
    rep.section("Dockerfile (deploy/Dockerfile) and .dockerignore")
    path = root / "deploy" / "Dockerfile"
    ins = dockerfile_instructions(path.read_text())
    args = {}
    stages: list[dict] = []
    for word, rest in ins:
        if word == "ARG" and not stages:
            k, _, v = rest.partition("=")
            args[k] = v
        elif word == "FROM":
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), rest.split()[0])
            m = re.search(r"\bAS\s+(\S+)", rest, re.I)
            stages.append({"image": image, "name": m.group(1) if m else None, "ins": []})
        elif stages:
            stages[-1]["ins"].append((word, rest))
    if not rep.check(len(stages) >= 2, f"multi-stage build ({', '.join(s['image'] for s in stages)})"):
        return None
    builder, final = stages[0], stages[-1]
    rep.check(builder["image"].startswith("rust:"), f"builder is the official Rust image ({builder['image']})")
    runs = [r for w, r in builder["ins"] if w == "RUN"]
    builds = [i for i, r in enumerate(runs) if "cargo build --release --locked --bin chargebridge" in r]
    rep.check(len(builds) >= 2, "builder runs `cargo build --release --locked --bin chargebridge` (deps, then sources)")
    copies = [(i, r) for i, (w, r) in enumerate(builder["ins"]) if w == "COPY"]
    first_manifest = next((i for i, r in copies if "Cargo.lock" in r and "Cargo.toml" in r), None)
    first_src = next((i for i, r in copies if re.search(r"(^|\s)src/?(\s|$)", r)), None)
    rep.check(first_manifest is not None and first_src is not None and first_manifest < first_src,
              "Cargo.toml + Cargo.lock copied before src/ (dependency layer cached)")
    rep.check(not final["image"].startswith("rust:"), f"runtime image is small ({final['image']})")
    users = [r for w, r in final["ins"] if w == "USER"]
    user = users[-1].split(":")[0] if users else None
    rep.check(user is not None and user not in ("0", "root"), f"final stage USER is non-root ({users[-1] if users else None})")
    final_copies = [r for w, r in final["ins"] if w in ("COPY", "ADD")]
    rep.check(all("--from=" in r for r in final_copies) and len(final_copies) == 1,
              f"final stage copies only the built binary ({final_copies})")
    rep.check(any(w == "EXPOSE" and "8080" in r.split() for w, r in final["ins"]), "EXPOSE 8080")
    ep = next((exec_form(r) for w, r in reversed(final["ins"]) if w == "ENTRYPOINT"), None)
    cmd = next((exec_form(r) for w, r in reversed(final["ins"]) if w == "CMD"), None)
    rep.check(ep == ["/usr/local/bin/chargebridge"], f"ENTRYPOINT {ep}")
    rep.check(bool(cmd) and cmd[0] == "serve" and flag_value(cmd, "--config") == "/etc/chargebridge/chargebridge.toml",
              f"CMD {cmd}")
    rep.check(not any(w == "HEALTHCHECK" for w, _ in final["ins"]) or "distroless" not in final["image"],
              "no HEALTHCHECK that distroless could not run")

    ignore = [l.strip() for l in (root / ".dockerignore").read_text().splitlines() if l.strip() and not l.startswith("#")]

    def ignored(p: str) -> bool:
        hit = False
        for pat in ignore:
            neg = pat.startswith("!")
            pat = pat.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p, pat + "/*") or p.startswith(pat + "/"):
                hit = not neg
        return hit

    rep.check(ignored("target") and ignored(".git"), ".dockerignore excludes target/ and .git")
    needed = ["Cargo.toml", "Cargo.lock", "src/main.rs", "src/lib.rs"]
    rep.check(not any(ignored(p) for p in needed), ".dockerignore keeps Cargo.toml, Cargo.lock, src/")
    return cmd


# --------------------------------------------------------------------------
# 6b: Prometheus alerting rules (deploy/prometheus/alerts.yml)

ALERT_SEVERITIES = {"critical", "warning", "info"}
# Labels Prometheus adds to every scraped series (usable in by/on clauses).
TARGET_LABELS = {"instance", "job", "pod", "namespace", "container", "service", "node"}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
    "unless", "bool", "offset", "inf", "nan",
}
COUNTER_FUNCS = {"rate", "irate", "increase", "resets"}
GAUGE_FUNCS = {"delta", "idelta", "deriv", "predict_linear"}


def declared_metrics(root: Path) -> dict[str, dict]:
    """Metric names of src/metrics.rs: {name: {"kind": counter|gauge|histogram, "labels": set}}."""
    text = (root / "src" / "metrics.rs").read_text(encoding="utf-8")
    out: dict[str, dict] = {}
    for m in re.finditer(r'\b(counter|gauge|histogram)!\(\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"', text):
        end = text.find(";", m.end())
        call = text[m.end(): end if end >= 0 else len(text)]
        labels = set(re.findall(r'"([a-zA-Z_][a-zA-Z0-9_]*)"\s*=>', call))
        entry = out.setdefault(m.group(2), {"kind": m.group(1), "labels": set()})
        entry["labels"] |= labels
    return out


def label_values(root: Path) -> dict[str, set[str]]:
    """Values the code gives the `state` and `class` labels."""
    journal = (root / "src" / "journal" / "mod.rs").read_text(encoding="utf-8")
    pms = (root / "src" / "pms" / "mod.rs").read_text(encoding="utf-8")
    return {
        "state": set(re.findall(r'JournalState::\w+ => "([a-z_]+)"', journal)),
        "class": set(re.findall(r'ErrorClass::\w+ => "([a-z_]+)"', pms)),
    }


def markdown_anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    anchors = set()
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m and not in_code:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def promql_parts(expr: str):
    """(metric names, [(metric, label, op, value)], grouping labels, [(func, metric)])
    of a PromQL expression: enough of the grammar for the rules here."""
    selectors = []
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}", expr):
        for lm in re.finditer(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', m.group(2)):
            selectors.append((m.group(1), lm.group(1), lm.group(2), lm.group(3)))
    grouping = set()
    for m in re.finditer(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr):
        grouping |= {x.strip() for x in m.group(1).split(",") if x.strip()}
    calls = re.findall(r"\b([a-z_]+)\s*\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[\[{]", expr)
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}", " ", bare)
    bare = re.sub(r"\[[^\]]*\]", " ", bare)
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", bare):
        word = m.group(1)
        if word.lower() in PROMQL_WORDS or re.fullmatch(r"\d.*", word):
            continue
        names.add(word)
    return names, selectors, grouping, calls


def metric_base(name: str, metrics: dict[str, dict]):
    """The declared metric a series name belongs to, and the extra labels it has."""
    if name in metrics:
        return name, set()
    for suffix in ("_bucket", "_count", "_sum"):
        base = name[: -len(suffix)] if name.endswith(suffix) else None
        if base and metrics.get(base, {}).get("kind") == "histogram":
            return base, ({"le"} if suffix == "_bucket" else set())
    return None, set()


def series_kind(name: str, metrics: dict[str, dict]) -> str | None:
    base, _ = metric_base(name, metrics)
    if base is None:
        return None
    return "counter" if base != name else metrics[base]["kind"]


# Rule unit tests for `promtool test rules`: every alert fires on the series
# that should fire it (across two replicas reporting the same journal), and not
# on healthy ones or too early. Run against a copy of the rules without
# annotations (promtool compares rendered annotations; `check rules` validates
# their templates).
ALERT_UNIT_TESTS = {
    "evaluation_interval": "1m",
    "tests": [
        {
            "interval": "1m",
            "input_series": [
                {"series": 'chargebridge_journal_entries{tenant="h1",state="needs_attention",instance="a"}', "values": "0 1x20"},
                {"series": 'chargebridge_journal_entries{tenant="h1",state="needs_attention",instance="b"}', "values": "0 1x20"},
                {"series": 'chargebridge_journal_entries{tenant="ok",state="needs_attention",instance="a"}', "values": "0x20"},
                {"series": 'chargebridge_journal_entries{tenant="h1",state="failed",instance="a"}', "values": "3x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "4m", "alertname": "ChargebridgeNeedsAttention", "exp_alerts": []},
                {"eval_time": "7m", "alertname": "ChargebridgeNeedsAttention",
                 "exp_alerts": [{"exp_labels": {"severity": "warning", "tenant": "h1"}}]},
            ],
        },
        {
            "interval": "1m",
            "input_series": [
                {"series": 'chargebridge_journal_oldest_entry_age_seconds{tenant="h1",state="queued",instance="a"}', "values": "0+60x30"},
                {"series": 'chargebridge_journal_oldest_entry_age_seconds{tenant="h1",state="queued",instance="b"}', "values": "0+60x30"},
                {"series": 'chargebridge_journal_oldest_entry_age_seconds{tenant="h2",state="needs_attention",instance="a"}', "values": "5000x30"},
            ],
            "alert_rule_test": [
                {"eval_time": "15m", "alertname": "ChargebridgeQueueStale", "exp_alerts": []},
                {"eval_time": "19m", "alertname": "ChargebridgeQueueStale",
                 "exp_alerts": [{"exp_labels": {"severity": "critical", "tenant": "h1"}}]},
            ],
        },
        {
            "interval": "1m",
            "input_series": [
                {"series": 'chargebridge_journal_entries{tenant="h1",state="queued",instance="a"}', "values": "0+1x60"},
                {"series": 'chargebridge_journal_entries{tenant="flat",state="queued",instance="a"}', "values": "5x60"},
            ],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": "ChargebridgeQueueGrowing", "exp_alerts": []},
                {"eval_time": "30m", "alertname": "ChargebridgeQueueGrowing",
                 "exp_alerts": [{"exp_labels": {"severity": "warning", "tenant": "h1"}}]},
            ],
        },
        {
            "interval": "1m",
            "input_series": [
                {"series": 'chargebridge_journal_entries{tenant="h1",state="unknown",instance="a"}', "values": "2x30"},
                {"series": 'chargebridge_journal_entries{tenant="ok",state="unknown",instance="a"}', "values": "0x30"},
                {"series": 'chargebridge_journal_entries{tenant="blip",state="unknown",instance="a"}', "values": "0 0 1 1 0x27"},
            ],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": "ChargebridgeUnknownOutcomes", "exp_alerts": []},
                {"eval_time": "12m", "alertname": "ChargebridgeUnknownOutcomes",
                 "exp_alerts": [{"exp_labels": {"severity": "warning", "tenant": "h1"}}]},
            ],
        },
        {
            "interval": "1m",
            "input_series": [
                {"series": 'chargebridge_pms_errors_total{adapter="opera",op="post",class="unavailable",instance="a"}', "values": "0+3x30"},
                {"series": 'chargebridge_pms_duration_seconds_count{adapter="opera",op="post",instance="a"}', "values": "0+10x30"},
                {"series": 'chargebridge_pms_errors_total{adapter="mews",op="post",class="rejected",instance="a"}', "values": "0+5x30"},
                {"series": 'chargebridge_pms_duration_seconds_count{adapter="mews",op="post",instance="a"}', "values": "0+10x30"},
                {"series": 'chargebridge_pms_errors_total{adapter="apaleo",op="post",class="unknown",instance="a"}', "values": "0+1x30"},
                {"series": 'chargebridge_pms_duration_seconds_count{adapter="apaleo",op="post",instance="a"}', "values": "0+100x30"},
            ],
            "alert_rule_test": [
                {"eval_time": "3m", "alertname": "ChargebridgePmsErrors", "exp_alerts": []},
                {"eval_time": "15m", "alertname": "ChargebridgePmsErrors",
                 "exp_alerts": [{"exp_labels": {"severity": "warning", "adapter": "opera"}}]},
            ],
        },
        {
            "interval": "1m",
            "input_series": [
                {"series": 'chargebridge_journal_restored_total{instance="a"}', "values": "0x5 2x20"},
                {"series": 'chargebridge_journal_restored_total{instance="b"}', "values": "0x25"},
            ],
            "alert_rule_test": [
                {"eval_time": "4m", "alertname": "ChargebridgeRedisLostQueuedCharges", "exp_alerts": []},
                {"eval_time": "8m", "alertname": "ChargebridgeRedisLostQueuedCharges",
                 "exp_alerts": [{"exp_labels": {"severity": "warning"}}]},
                {"eval_time": "24m", "alertname": "ChargebridgeRedisLostQueuedCharges", "exp_alerts": []},
            ],
        },
    ],
}


def check_alerts(rep: Report, root: Path, work: Path) -> None:
    path = root / "deploy" / "prometheus" / "alerts.yml"
    rel = path.relative_to(root)
    rep.section(f"Prometheus alerting rules ({rel})")
    try:
        (doc,) = load_yaml_docs(path)
    except (OSError, ValueError, yaml.YAMLError) as e:
        rep.fail(f"{rel}: {e}")
        return
    metrics = declared_metrics(root)
    values = label_values(root)
    runbook_doc = root / "docs" / "operations.md"
    anchors = markdown_anchors(runbook_doc) if runbook_doc.is_file() else set()
    rep.check(len(metrics) >= 10, f"src/metrics.rs declares {len(metrics)} metrics")
    rep.check(bool(values["state"]) and bool(values["class"]),
              f"journal states ({len(values['state'])}) and PMS error classes ({len(values['class'])}) read from src/")
    groups = (doc or {}).get("groups")
    if not rep.check(isinstance(groups, list) and groups, f"{rel}: has rule groups"):
        return
    names = []
    for g in groups:
        gname = g.get("name", "?")
        rules = g.get("rules") or []
        rep.check(bool(g.get("name")) and bool(rules), f"group {gname}: named, with rules")
        for r in rules:
            name = r.get("alert")
            where = f"{gname}/{name or r.get('record', '?')}"
            if not rep.check(bool(name), f"{where}: an alerting rule (alert:)"):
                continue
            names.append(name)
            problems = []
            expr = r.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                problems.append("no expr")
                expr = ""
            try:
                if parse_duration(r.get("for", "")) <= 0:
                    problems.append("`for` is zero")
            except ValueError:
                problems.append(f"`for` missing or not a duration: {r.get('for')!r}")
            severity = (r.get("labels") or {}).get("severity")
            if severity not in ALERT_SEVERITIES:
                problems.append(f"labels.severity {severity!r} not one of {sorted(ALERT_SEVERITIES)}")
            ann = r.get("annotations") or {}
            for key in ("summary", "description"):
                if not str(ann.get(key, "")).strip():
                    problems.append(f"no annotations.{key}")
            runbook = str(ann.get("runbook_url", ""))
            page, _, anchor = runbook.partition("#")
            if page != "docs/operations.md":
                problems.append(f"annotations.runbook_url {runbook!r} does not point to docs/operations.md")
            elif anchor and anchor not in anchors:
                problems.append(f"annotations.runbook_url: no heading #{anchor} in docs/operations.md")
            rep.check(not problems, f"{where}: expr, for, labels.severity={severity}, summary, description, runbook",
                      "; ".join(problems))

            used, selectors, grouping, calls = promql_parts(expr)
            problems = []
            labels_in_expr = set(TARGET_LABELS)
            for n in sorted(used):
                base, extra = metric_base(n, metrics)
                if base is None:
                    problems.append(f"{n} is not a metric of src/metrics.rs (nor a _bucket/_count/_sum of a histogram there)")
                else:
                    labels_in_expr |= metrics[base]["labels"] | extra
            for metric, label, op, value in selectors:
                base, extra = metric_base(metric, metrics)
                if base is None:
                    continue
                if label not in metrics[base]["labels"] | extra | TARGET_LABELS:
                    problems.append(f"{metric} has no label {label}")
                if label in values and op in ("=", "!=") and value not in values[label]:
                    problems.append(f"{label}={value!r} is not a value chargebridge gives it ({sorted(values[label])})")
                if label in values and op in ("=~", "!~") and re.fullmatch(r"[a-z_|]+", value):
                    for v in value.split("|"):
                        if v not in values[label]:
                            problems.append(f"{label}=~ names {v!r}, not a value chargebridge gives it")
            for g_label in sorted(grouping - labels_in_expr):
                problems.append(f"groups by {g_label}, a label none of its metrics has")
            for func, metric in calls:
                kind = series_kind(metric, metrics)
                if func in COUNTER_FUNCS and kind not in (None, "counter"):
                    problems.append(f"{func}() of {metric}, a {kind}")
                if func in GAUGE_FUNCS and kind not in (None, "gauge"):
                    problems.append(f"{func}() of {metric}, a {kind} (use rate/increase)")
            rep.check(bool(used) and not problems,
                      f"{where}: metrics {', '.join(sorted(used)) or '(none)'} exist with these labels",
                      "; ".join(problems) or "uses no metric")
    dupes = sorted({n for n in names if names.count(n) > 1})
    rep.check(not dupes, f"{len(names)} alert names, each once", ", ".join(dupes))

    promtool = shutil.which("promtool")
    if not promtool:
        rep.skip("promtool not installed: `promtool check rules` and the rule unit tests not run "
                 "(Debian: apt-get install prometheus)")
        return
    r = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    rep.check(r.returncode == 0, f"promtool check rules {rel}", (r.stdout + r.stderr).strip()[-600:])
    outdir = work / "alerts-test"
    outdir.mkdir(parents=True, exist_ok=True)
    stripped = copy.deepcopy(doc)
    for g in stripped["groups"]:
        for rule in g.get("rules") or []:
            rule.pop("annotations", None)
    (outdir / "rules.yml").write_text(yaml.safe_dump(stripped, sort_keys=False))
    tests = {"rule_files": ["rules.yml"], **ALERT_UNIT_TESTS}
    (outdir / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    tested = {t["alertname"] for case in ALERT_UNIT_TESTS["tests"] for t in case["alert_rule_test"]}
    rep.check(tested == set(names), "every alert has a rule unit test",
              f"untested: {sorted(set(names) - tested)}, unknown: {sorted(tested - set(names))}")
    r = subprocess.run([promtool, "test", "rules", "tests.yml"], cwd=outdir,
                       capture_output=True, text=True, timeout=60)
    rep.check(r.returncode == 0,
              f"promtool test rules: each alert fires when it should and not before "
              f"({len(ALERT_UNIT_TESTS['tests'])} cases, written to {outdir.relative_to(root)})",
              (r.stdout + r.stderr).strip()[-1500:])


# --------------------------------------------------------------------------
# 7: smoke


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None, timeout=15):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def wait_http(url: str, want: int, seconds: float) -> int | None:
    end, last = time.monotonic() + seconds, None
    while time.monotonic() < end:
        try:
            last = http("GET", url, timeout=3)[0]
            if last == want:
                return last
        except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
            pass
        time.sleep(0.1)
    return last


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def find_binary(root: Path):
    if os.environ.get("CHARGEBRIDGE_BIN"):
        return Path(os.environ["CHARGEBRIDGE_BIN"])
    cands = [root / "target" / p / APP for p in ("release", "debug")]
    cands = [c for c in cands if c.is_file() and os.access(c, os.X_OK)]
    return max(cands, key=lambda c: c.stat().st_mtime) if cands else None


def expand_k8s_vars(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in command/args."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), text)


def k8s_env(container: dict, secrets: dict) -> dict[str, str]:
    """A container's env, secretKeyRefs read from `secrets` {(name, key): value}."""
    env = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = expand_k8s_vars(str(e["value"]), env)
        elif "secretKeyRef" in (e.get("valueFrom") or {}):
            r = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = secrets[(r["name"], r["key"])]
    return env


def haproxy_for_smoke(text: str, listen_port: int, servers: list[int]) -> str:
    """deploy/compose/haproxy.cfg made runnable outside Docker: the frontend
    binds a free loopback port and the replicas are literal servers instead of
    Docker-DNS ones. Everything else, the global log target, the defaults with
    the access-log format and the health check, stays as it is."""
    out, skip = [], False
    for raw in text.splitlines():
        words, _ = haproxy_words(raw)
        if words and words[0] in HAPROXY_SECTIONS:
            skip = words[0] == "resolvers"  # Docker's DNS (127.0.0.11) is not here
        if skip:
            continue
        if words[:1] == ["bind"]:
            out.append(f"    bind 127.0.0.1:{listen_port}")
        elif words[:1] == ["server-template"]:
            out += [f"    server cb{i + 1} 127.0.0.1:{p}" for i, p in enumerate(servers)]
        elif words[:1] in (["default-server"], ["server"]):
            kept, i = [], 0
            while i < len(words):
                if words[i] in ("resolvers", "init-addr", "resolve-prefer", "resolve-opts"):
                    i += 2
                    continue
                kept.append(words[i])
                i += 1
            out.append("    " + " ".join(kept))
        else:
            out.append(raw)
    return "\n".join(out) + "\n"


def check_smoke(rep: Report, root: Path, mode: str, compose_info, rendered) -> None:
    rep.section("Smoke: the deploy configurations run; replicas share one Redis")
    if mode == "skip":
        rep.skip("DEPLOY_CHECK_SMOKE=skip")
        return
    binary, redis_server = find_binary(root), shutil.which("redis-server")
    missing = [w for w, ok in (("a chargebridge binary (cargo build, or CHARGEBRIDGE_BIN)", binary),
                               ("redis-server", redis_server)) if not ok]
    if missing or compose_info is None:
        msg = f"needs {' and '.join(missing) or 'a valid compose.yaml'}"
        (rep.fail if mode == "require" else rep.skip)(msg)
        return
    rep.ok(f"binary {binary} (built {time.strftime('%Y-%m-%d %H:%M', time.localtime(binary.stat().st_mtime))})")
    tmp = Path(tempfile.mkdtemp(prefix="chargebridge-deploy-check-"))
    procs: list[subprocess.Popen] = []
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGEBRIDGE__") and k != "RUST_LOG"}

    def start_redis(name: str, args: list[str]):
        """redis-server with a deployment's arguments, on a private port and dir."""
        args = list(args)
        if args and os.path.basename(args[0]) == "redis-server":
            args = args[1:]
        for flag in ("--dir", "--port", "--bind"):
            while flag in args:
                i = args.index(flag)
                del args[i:i + 2]
        (tmp / name).mkdir()
        port = free_port()
        shown = " ".join("***" if i and args[i - 1] == "--requirepass" else a for i, a in enumerate(args))
        procs.append(subprocess.Popen(
            [redis_server, *args, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp / name), "--save", ""],
            stdout=open(tmp / f"{name}.log", "wb"), stderr=subprocess.STDOUT))
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        up = rep.check(redis_ping(port) or "--requirepass" in args, f"{name}: redis-server {shown} on :{port}")
        return port if up else None

    def start(name: str, config: Path, env: dict) -> dict:
        port = free_port()
        env = dict(base_env, **env, CHARGEBRIDGE__SERVER__LISTEN=f"127.0.0.1:{port}")
        log = tmp / f"{name}.log"
        p = subprocess.Popen([str(binary), "serve", "--config", str(config)], env=env,
                             stdout=open(log, "wb"), stderr=subprocess.STDOUT)
        procs.append(p)
        return {"name": name, "url": f"http://127.0.0.1:{port}", "proc": p, "log": log}

    try:
        # Compose: three replicas on deploy/chargebridge.toml and compose.yaml's
        # environment; Redis with compose.yaml's command line. Only the Redis
        # address differs (the compose service name does not resolve here).
        rport = start_redis("compose-redis", compose_info["redis_args"])
        if rport is None:
            return
        cenv = dict(compose_info["env"], CHARGEBRIDGE__IDEMPOTENCY__REDIS_URL=f"redis://127.0.0.1:{rport}")
        # The tenant's API key, as a secret store would set it: a fresh one,
        # not compose.yaml's default (the public demo key, which chargebridge
        # warns about). Charges carry it in the body, guest searches in the
        # query string; no log may contain it afterwards.
        tenant_key = f"smoke-key-{uuid.uuid4().hex}"
        wrong_key = f"wrong-key-{uuid.uuid4().hex}"
        tenant = next((t for t in compose_info["tenants"] if t.get("api_key_env") in cenv), None)
        if rep.check(tenant is not None, "the compose tenant's API key comes from compose.yaml's environment "
                     "(api_key_env; set to a fresh key here)"):
            cenv[tenant["api_key_env"]] = tenant_key
        api_keys = [("the tenant's apiKey", tenant_key), ("a wrong apiKey", wrong_key)]
        replicas = [start(f"compose-replica-{i + 1}", compose_info["config"], cenv)
                    for i in range(compose_info["replicas"])]

        # Kubernetes: the ConfigMap's TOML with the Deployment's env; Redis with
        # the StatefulSet's arguments and env (password) from stand-in Secrets.
        k8s = None
        docs = rendered.get("k8s/overlays/with-redis") or []
        dep, cm, sts = find(docs, "Deployment", APP), find(docs, "ConfigMap"), find(docs, "StatefulSet")
        if dep and cm and sts:
            password = uuid.uuid4().hex
            secrets: dict = {}

            class Stand(dict):  # any other secret key: the tenant's API key
                def __missing__(self, k):
                    return tenant_key

            secrets = Stand({("chargebridge-redis", "password"): password})
            (rc,) = sts["spec"]["template"]["spec"]["containers"]
            renv = k8s_env(rc, secrets)
            rargs = [expand_k8s_vars(str(a), renv) for a in (rc.get("command") or []) + (rc.get("args") or [])]
            kport = start_redis("k8s-redis", rargs)
            if kport is not None:
                secrets[("chargebridge", "redis-url")] = f"redis://:{password}@127.0.0.1:{kport}"
                toml_path = tmp / "k8s-chargebridge.toml"
                toml_path.write_text(next(iter(cm["data"].values())))
                (c,) = [x for x in dep["spec"]["template"]["spec"]["containers"] if x["name"] == APP]
                kenv = k8s_env(c, secrets)
                k8s = start("k8s-pod", toml_path, kenv)
                for t in tomllib.loads(toml_path.read_text()).get("tenants", []):
                    v = kenv.get(t.get("api_key_env") or "")
                    if v and v not in (k for _, k in api_keys):
                        api_keys.append(("the k8s tenant's apiKey", v))

        everyone = replicas + ([k8s] if k8s else [])
        for r in everyone:
            rep.check(wait_http(r["url"] + "/healthz", 200, 20) == 200, f"{r['name']}: /healthz 200")
        for r in everyone:
            got = wait_http(r["url"] + "/readyz", 200, 10)
            rep.check(got == 200, f"{r['name']}: /readyz 200 (Redis reachable)", f"got {got}")

        seed = (root / "fixtures" / "payloads" / "seed-example.json").read_bytes()
        seed = re.sub(rb'("apiKey"\s*:\s*)"[^"]*"', lambda m: m.group(1) + b'"' + tenant_key.encode() + b'"',
                      seed, count=1)
        key = f"LS1_{uuid.uuid4()}"
        hdr = {"Content-Type": "application/json", "Accept": "application/json",
               "X-Lightspeed-Idempotency-Key": key}

        def post(r, body):
            st, h, b = http("POST", r["url"] + "/lightspeed/charge", body, hdr)
            j = json.loads(b) if b[:1] == b"{" else {}
            replayed = {k.lower(): v for k, v in h.items()}.get("idempotent-replayed")
            return st, j, b, replayed

        s1, j1, b1, _ = post(replicas[0], seed)
        rep.check(s1 == 200 and j1.get("status") == "posted",
                  f"{replicas[0]['name']} posts the seed charge", f"{s1} {b1[:200]!r}")
        for r in replicas[1:]:
            s2, _, b2, rp = post(r, seed)
            rep.check(s2 == 200 and b2 == b1 and rp == "true",
                      f"{r['name']} replays the same delivery byte for byte (Idempotent-Replayed: true)",
                      f"{s2} {rp} {b2[:200]!r}")
        changed = seed.replace(b'"ownerName": "John Doe"', b'"ownerName": "Jane Roe"')
        s3, j3, b3, _ = post(replicas[-1], changed)
        rep.check(s3 == 422 and j3.get("code") == "idempotency_key_reused",
                  f"{replicas[-1]['name']} refuses a changed body under the same key (422 idempotency_key_reused)",
                  f"{s3} {b3[:200]!r}")
        if k8s:
            s4, j4, b4, _ = post(k8s, seed)
            s5, _, b5, rp5 = post(k8s, seed)
            rep.check(s4 == 200 and j4.get("status") == "posted" and s5 == 200 and b5 == b4 and rp5 == "true",
                      f"{k8s['name']} posts once, then replays (password-protected Redis)", f"{s4} {s5} {rp5}")
        sm, _, bm = http("GET", replicas[0]["url"] + "/metrics")
        rep.check(sm == 200 and b"chargebridge_" in bm, "/metrics serves chargebridge_* series")

        # The proxy: compose's HAProxy (its haproxy.cfg, bind and servers moved
        # to loopback) in front of the replicas. Guest searches carry the
        # apiKey and the guest's name in the query string; the access log must
        # name their path and hold neither.
        term = "Jane"  # a checked-in guest of the memory PMS
        ref = (tenant or {}).get("business_external_reference") or "smoke-client"

        def mask(text: str) -> str:
            for _, v in api_keys:
                text = text.replace(v, "***")
            return text

        def search(base: str, key: str) -> tuple[int, bytes]:
            q = urllib.parse.urlencode({"term": term, "businessExternalReference": ref, "apiKey": key})
            st, _, b = http("GET", f"{base}/lightspeed/search?{q}")
            return st, b

        lb = None
        haproxy = haproxy_binary()
        if compose_info.get("haproxy_cfg") is None:
            rep.fail("no haproxy.cfg in compose.yaml: the proxy's log cannot be checked for the apiKey")
        elif not haproxy:
            (rep.fail if mode == "require" else rep.skip)(
                "haproxy not installed (apt-get install haproxy): the proxy's access log is not checked for the apiKey")
        else:
            lport = free_port()
            lb_cfg = tmp / "haproxy.cfg"
            lb_cfg.write_text(haproxy_for_smoke(compose_info["haproxy_cfg"].read_text(), lport,
                                                [int(r["url"].rsplit(":", 1)[1]) for r in replicas]))
            lb_log = tmp / "lb.log"
            p = subprocess.Popen([haproxy, "-db", "-f", str(lb_cfg)], stdout=open(lb_log, "wb"),
                                 stderr=subprocess.STDOUT)
            procs.append(p)
            lb = {"name": "lb", "url": f"http://127.0.0.1:{lport}", "proc": p, "log": lb_log}
            version = " ".join(subprocess.run([haproxy, "-v"], capture_output=True, text=True).stdout.split()[:3])
            got = wait_http(lb["url"] + "/readyz", 200, 10)
            if not rep.check(got == 200, f"lb: {version} on compose/haproxy.cfg forwards to the replicas",
                             f"/readyz {got}: {lb_log.read_text(errors='replace')[-400:]}"):
                lb = None
        # Through the proxy one search per replica (round robin) with the
        # tenant's key, one with a wrong key, and a charge; without HAProxy the
        # same searches go to the replicas directly, so their logs are checked
        # all the same.
        targets = [(lb["name"], lb["url"])] * len(replicas) if lb else [(r["name"], r["url"]) for r in replicas]
        for i, (where, base) in enumerate(targets):
            st, b = search(base, tenant_key)
            found = json.loads(b).get("reservations") if st == 200 and b[:1] == b"{" else None
            rep.check(st == 200 and bool(found), f"{where}: guest search {i + 1}/{len(targets)} (tenant's apiKey "
                      "in the query) answers 200 with the guest", mask(f"{st} {b[:200]!r}"))
        st, b = search(targets[0][1], wrong_key)
        try:
            j = json.loads(b)
        except ValueError:
            j = {}
        refused = (st == 401 or j.get("success") is False) and not j.get("reservations") and j.get("code") == "unauthorized"
        rep.check(refused, f"{targets[0][0]}: guest search with a wrong apiKey is refused (unauthorized, no guests)",
                  mask(f"{st} {b[:200]!r}"))
        if lb:
            st, _, b = http("POST", lb["url"] + "/lightspeed/charge", seed,
                            dict(hdr, **{"X-Lightspeed-Idempotency-Key": f"LS1_{uuid.uuid4()}"}))
            rep.check(st == 200 and b'"posted"' in b, "lb: a charge through the proxy is posted", mask(f"{st} {b[:200]!r}"))
            searches = len(replicas) + 1
            end = time.monotonic() + 5
            while time.monotonic() < end:  # HAProxy writes a line when a request ends
                text = lb_log.read_text(errors="replace")
                if text.count("/lightspeed/search") >= searches and "/lightspeed/charge" in text:
                    break
                time.sleep(0.05)
            lb["proc"].terminate()
            try:
                lb["proc"].wait(timeout=5)
            except subprocess.TimeoutExpired:
                lb["proc"].kill()
            text = lb_log.read_text(errors="replace")
            lines = [l for l in text.splitlines() if "/lightspeed/" in l]
            rep.check(sum("/lightspeed/search" in l for l in lines) == searches
                      and sum("/lightspeed/charge" in l for l in lines) == 1,
                      f"lb: access log has a line per request naming its path ({len(lines)})",
                      mask(" | ".join(lines)[:600]))
            with_query = [l for l in lines if "?" in l]
            rep.check(not with_query, "lb: no access-log line carries a query string", mask(" | ".join(with_query)[:600]))
            leaked = [label for label, v in api_keys if v in text]
            if term.lower() in text.lower():
                leaked.append(f"the guest's name ({term})")
            rep.check(not leaked, "lb: access log holds neither apiKey nor the searched guest's name",
                      "found " + ", ".join(leaked) + ": " + mask(" | ".join(lines)[:400]))

        for r in everyone:
            r["proc"].send_signal(signal.SIGTERM)
        for r in everyone:
            try:
                rc_ = r["proc"].wait(timeout=DEFAULT_SHUTDOWN_GRACE + 5)
            except subprocess.TimeoutExpired:
                rc_ = None
            rep.check(rc_ == 0, f"{r['name']}: SIGTERM -> clean exit", f"exit {rc_}")
        for r in everyone:
            text = r["log"].read_text(errors="replace")
            bad = [l for l in text.splitlines() if re.search(r'"level":"(WARN|ERROR)"|\b(WARN|ERROR)\b', l)]
            rep.check(not bad, f"{r['name']}: no warnings or errors logged "
                      "(so chargebridge's own Redis durability check passed)", " | ".join(bad)[:600])
            leaked = [label for label, v in api_keys if v in text]
            rep.check(not leaked, f"{r['name']}: log holds no apiKey (sent in charges and searches)",
                      "found " + ", ".join(leaked) + ": " + mask(" | ".join(
                          l for l in text.splitlines() if any(v in l for _, v in api_keys))[:400]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True, type=Path)
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--compose-schema", required=True, type=Path)
    opts = ap.parse_args()
    root, deploy = opts.root.resolve(), opts.root.resolve() / "deploy"
    versions = os.environ.get("K8S_VERSIONS", f"1.30 {kv.major_minor(kv.latest_version())}").split()
    smoke = os.environ.get("DEPLOY_CHECK_SMOKE", "auto")
    if smoke not in ("auto", "require", "skip"):
        print(f"DEPLOY_CHECK_SMOKE={smoke}: expected auto, require or skip", file=sys.stderr)
        return 2
    started = time.monotonic()
    rep = Report()
    check_yaml(rep, deploy)
    rendered = check_kustomize(rep, deploy, opts.work)
    check_schemas(rep, deploy, rendered, versions)
    check_k8s_policy(rep, rendered)
    check_ingress_logs(rep, rendered)
    docker_cmd = check_dockerfile(rep, root)
    compose_info = check_compose(rep, deploy, opts.compose_schema, docker_cmd)
    check_alerts(rep, root, opts.work)
    check_smoke(rep, root, smoke, compose_info, rendered)
    took = time.monotonic() - started
    print(f"\n{rep.passed} passed, {len(rep.failed)} failed, {len(rep.skipped)} skipped ({took:.1f}s)")
    for f in rep.failed:
        print(f"  FAIL  {f}")
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main())
