"""The Kubernetes base as the tests see it: build it with `kubectl kustomize`, validate it offline,
and turn the Job's pod spec into the command line and environment a pod would run with.

There is no cluster here; what Kubernetes does to a pod spec before it starts the container
(environment from ConfigMaps and Secrets, the downward API, `$(VAR)` expansion, volume mounts) is
done here instead, for exactly the features the base uses. Anything else is an error, so the
base cannot grow a feature the local run silently ignores.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
BASE = REPO / "deploy" / "kubernetes"
KUBECTL = shutil.which("kubectl")

# The Kubernetes version whose schemas the manifests must pass: the oldest release in which
# everything the Job uses is GA (Indexed Jobs 1.24, podFailurePolicy 1.31, backoffLimitPerIndex 1.33).
K8S_VERSION = "1.33.0"

INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"


class ManifestError(AssertionError):
    """The base does not build, or an object fails its schema; the message names the object."""


def kustomize(folder: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize FOLDER`, parsed: every object of the base."""
    assert KUBECTL is not None, "kubectl is needed"
    proc = subprocess.run([KUBECTL, "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise ManifestError(f"kubectl kustomize {folder} failed: {proc.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def validate(objects: list[dict[str, Any]], version: str = K8S_VERSION) -> None:
    """Each object against the strict schema of `version` (unknown fields are errors, and so is a
    kind with no schema)."""
    import kubernetes_validate

    for obj in objects:
        label = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            raise ManifestError(f"{label} fails the Kubernetes {version} schema at {path}: {exc.message}") from None
        except kubernetes_validate.SchemaNotFoundError as exc:
            raise ManifestError(f"{label}: {exc.message}") from None


def only(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") == kind]


def the_job(objects: list[dict[str, Any]]) -> dict[str, Any]:
    jobs = only(objects, "Job")
    assert len(jobs) == 1, f"expected one Job, found {len(jobs)}"
    return jobs[0]


def config_map(objects: list[dict[str, Any]], name: str) -> dict[str, str]:
    """The data of the ConfigMap called `name` (the generated name, hash suffix included)."""
    for obj in only(objects, "ConfigMap"):
        if obj["metadata"]["name"] == name:
            return dict(obj.get("data") or {})
    raise ManifestError(f"no ConfigMap {name} in the build")


def the_container(job: dict[str, Any]) -> dict[str, Any]:
    containers = job["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"expected one container, found {len(containers)}"
    return dict(containers[0])


@dataclass
class Pod:
    """What one pod of the Job would run: its argv (the image's paths) and environment."""

    index: int
    argv: list[str]
    env: dict[str, str]


_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion in command, args and env values (unknown names stay)."""
    return _VAR_REF.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def pod(objects: list[dict[str, Any]], index: int, secrets: dict[str, dict[str, str]]) -> Pod:
    """The container of pod `index` as the kubelet would start it: envFrom in order, then env
    (env wins), with the downward API's completion index and the given Secrets' data."""
    container = the_container(the_job(objects))
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_map(objects, source["configMapRef"]["name"]))
        elif "secretRef" in source:
            env.update(secrets[source["secretRef"]["name"]])
        else:
            raise ManifestError(f"envFrom source the local run does not know: {source}")
    for item in container.get("env", []):
        name = item["name"]
        if "value" in item:
            env[name] = _expand(str(item["value"]), env)
            continue
        ref = item.get("valueFrom", {})
        if "secretKeyRef" in ref:
            env[name] = secrets[ref["secretKeyRef"]["name"]][ref["secretKeyRef"]["key"]]
        elif ref.get("fieldRef", {}).get("fieldPath") == f"metadata.annotations['{INDEX_ANNOTATION}']":
            env[name] = str(index)
        else:
            raise ManifestError(f"env {name}: a source the local run does not know: {ref}")
    # Indexed Jobs: the controller sets it unless the container already does.
    env.setdefault("JOB_COMPLETION_INDEX", str(index))
    argv = [_expand(str(a), env) for a in [*container.get("command", []), *container.get("args", [])]]
    return Pod(index, argv, env)


def volume_dirs(objects: list[dict[str, Any]], root: Path) -> dict[str, Path]:
    """Each volume mount of the container as a local folder under `root`: a ConfigMap's files
    written out, an emptyDir empty. Keys are the mount paths."""
    job = the_job(objects)
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"].get("volumes", [])}
    mounts: dict[str, Path] = {}
    for mount in the_container(job).get("volumeMounts", []):
        volume = volumes[mount["name"]]
        local = root / f"volume-{mount['name']}"
        local.mkdir(parents=True, exist_ok=True)
        if "configMap" in volume:
            for key, text in config_map(objects, volume["configMap"]["name"]).items():
                (local / key).write_text(text)
        elif "emptyDir" not in volume:
            raise ManifestError(f"volume {mount['name']}: a kind the local run does not know: {volume}")
        mounts[mount["mountPath"].rstrip("/")] = local
    return mounts


def localize(argv: list[str], mounts: dict[str, Path]) -> list[str]:
    """The pod's argv with the image's mount paths replaced by the local folders."""
    out = []
    for arg in argv:
        for path, local in mounts.items():
            if arg == path or arg.startswith(path + "/"):
                arg = str(local) + arg[len(path):]
                break
        out.append(arg)
    return out


def read_env_file(path: Path) -> dict[str, str]:
    """A kustomize env file (NAME=VALUE lines, # comments) as a dict."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            out[name] = value
    return out


def write_env_file(path: Path, values: dict[str, str]) -> None:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
