"""docker/kuberay/: a RayJob with a GPU worker group on the same image, no secret in sight."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cluster_files import RAY_OWN_VARIABLES, SECRET_NAME, Dockerfile, interpolate, walk_strings

Manifests = dict[str, list[dict[str, Any]]]
# RayJobSpec's fields in KubeRay's ray.io/v1 API: a typo here is silently dropped by the operator.
RAYJOB_FIELDS = {
    "activeDeadlineSeconds", "backoffLimit", "rayClusterSpec", "submitterPodTemplate",
    "metadata", "clusterSelector", "submitterConfig", "entrypoint", "runtimeEnvYAML", "jobId",
    "submissionMode", "entrypointResources", "entrypointNumCpus", "entrypointNumGpus",
    "ttlSecondsAfterFinished", "shutdownAfterJobFinishes", "suspend",
}  # fmt: skip
# RayClusterSpec fields (KubeRay v1.6), the same guard one level down.
RAYCLUSTER_FIELDS = {
    "headGroupSpec", "workerGroupSpecs", "rayVersion", "enableInTreeAutoscaling",
    "autoscalerOptions", "headServiceAnnotations", "suspend", "managedBy",
    "gcsFaultToleranceOptions", "authOptions",
}  # fmt: skip
AUTH_OPTIONS_FIELDS = {"mode", "secretName", "enableK8sTokenAuth"}
# The Secret (key auth_token) that holds the Ray token; README shows its `kubectl create secret`.
RAY_TOKEN_SECRET = "babysweep-ray-token"
WORKER_GROUP_FIELDS = {
    "groupName", "replicas", "minReplicas", "maxReplicas", "rayStartParams", "template",
    "scaleStrategy", "suspend", "idleTimeoutSeconds", "numOfHosts",
}  # fmt: skip


def one(manifests: Manifests, kind: str) -> dict[str, Any]:
    (doc,) = [d for docs in manifests.values() for d in docs if d["kind"] == kind]
    return doc


def pod_specs(manifests: Manifests) -> Iterator[tuple[str, dict[str, Any]]]:
    """(role, pod spec) of the Ray head, each Ray worker group and each Deployment."""
    cluster = one(manifests, "RayJob")["spec"]["rayClusterSpec"]
    yield "ray-head", cluster["headGroupSpec"]["template"]["spec"]
    for group in cluster["workerGroupSpecs"]:
        yield f"worker group {group['groupName']}", group["template"]["spec"]
    for doc in (d for docs in manifests.values() for d in docs if d["kind"] == "Deployment"):
        yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def mounts(pod: dict[str, Any]) -> dict[str, tuple[dict[str, Any], bool]]:
    """mountPath -> (the volume, read-only) for the pod's single container."""
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    return {
        m["mountPath"]: (volumes[m["name"]], bool(m.get("readOnly")))
        for m in container.get("volumeMounts", [])
    }


def entrypoint_commands(manifests: Manifests) -> list[list[str]]:
    entrypoint = one(manifests, "RayJob")["spec"]["entrypoint"]
    return [shlex.split(part) for part in entrypoint.split("&&")]


def test_the_kustomization_applies_every_manifest(manifests: Manifests) -> None:
    (kustomization,) = manifests["kustomization.yaml"]
    applied = {name: docs for name, docs in manifests.items() if name != "kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(applied)
    kinds = sorted(d["kind"] for docs in applied.values() for d in docs)
    assert kinds == [
        "Deployment",
        "PersistentVolumeClaim",
        "PersistentVolumeClaim",
        "RayJob",
        "Service",
    ]


def test_rayjob_uses_known_fields_and_the_images_ray(
    manifests: Manifests, dockerfile: Dockerfile
) -> None:
    job = one(manifests, "RayJob")
    assert job["apiVersion"] == "ray.io/v1"
    assert set(job["spec"]) <= RAYJOB_FIELDS, set(job["spec"]) - RAYJOB_FIELDS
    cluster = job["spec"]["rayClusterSpec"]
    assert set(cluster) <= RAYCLUSTER_FIELDS, set(cluster) - RAYCLUSTER_FIELDS
    assert set(cluster["authOptions"]) <= AUTH_OPTIONS_FIELDS
    assert cluster["rayVersion"] == dockerfile.arg_defaults()["RAY_VERSION"]
    for group in cluster["workerGroupSpecs"]:
        assert set(group) <= WORKER_GROUP_FIELDS, set(group) - WORKER_GROUP_FIELDS


def test_every_pod_runs_the_compose_image_as_its_user(
    manifests: Manifests, compose: dict[str, Any], dockerfile: Dockerfile
) -> None:
    compose_image = interpolate(compose["services"]["sweep"]["image"], {})
    images = {c["image"] for _, pod in pod_specs(manifests) for c in pod["containers"]}
    assert images == {compose_image}
    for role, pod in pod_specs(manifests):
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, role
        assert str(context["runAsUser"]) == dockerfile.all("USER")[-1].split(":")[0], role


def test_kustomize_rewrites_the_same_image(manifests: Manifests, compose: dict[str, Any]) -> None:
    (kustomization,) = manifests["kustomization.yaml"]
    (entry,) = kustomization["images"]
    compose_image = interpolate(compose["services"]["sweep"]["image"], {})
    assert f"{entry['name']}:{entry['newTag']}" == compose_image


def test_a_gpu_worker_group_and_a_head_that_runs_no_trials(manifests: Manifests) -> None:
    cluster = one(manifests, "RayJob")["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-gpus"] == "0" and head["rayStartParams"]["num-cpus"] == "0"
    ports = {
        p["name"]: p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]
    }
    assert ports["gcs-server"] == 6379 and ports["dashboard"] == 8265
    gpu_groups = [
        g
        for g in cluster["workerGroupSpecs"]
        if int(
            g["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu", 0)
        )
        >= 1
    ]
    assert gpu_groups, "no worker group requests nvidia.com/gpu"
    for group in gpu_groups:
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        tolerations = group["template"]["spec"].get("tolerations", [])
        assert any(t["key"] == "nvidia.com/gpu" for t in tolerations)


def test_entrypoint_migrates_then_runs_with_the_real_cli(
    manifests: Manifests, check_sweep_argv: Callable[[list[str]], None]
) -> None:
    commands = entrypoint_commands(manifests)
    assert [c[:3] for c in commands] == [
        ["sweep", "db", "upgrade"],
        ["sweep", "run", commands[1][2]],
    ]
    for argv in commands:
        check_sweep_argv(argv)
    (dashboard,) = (d for d in manifests["optuna-dashboard.yaml"] if d["kind"] == "Deployment")
    argv = dashboard["spec"]["template"]["spec"]["containers"][0]["command"]
    check_sweep_argv(argv)
    assert argv[argv.index("--port") + 1] == "8080"


def test_checkpoints_and_data_are_on_volumes_every_ray_pod_mounts(
    manifests: Manifests, dockerfile: Dockerfile
) -> None:
    run = entrypoint_commands(manifests)[1]
    output_dir = run[run.index("--output-dir") + 1]
    claims = {d["metadata"]["name"]: d for d in manifests["storage.yaml"]}
    data_dir = dockerfile.env()["SWEEP_DATA_DIR"]
    for role, pod in pod_specs(manifests):
        found = mounts(pod)
        volume, read_only = found[data_dir]
        assert read_only and volume["persistentVolumeClaim"]["claimName"] in claims, role
        if role.startswith(("ray-head", "worker group")):
            (shared,) = [path for path in found if output_dir.startswith(path + "/")]
            claim = claims[found[shared][0]["persistentVolumeClaim"]["claimName"]]
            assert claim["spec"]["accessModes"] == ["ReadWriteMany"], "nodes share checkpoints"
            assert found["/dev/shm"][0]["emptyDir"]["medium"] == "Memory", "Ray's object store"


def test_the_store_url_comes_from_a_secret_never_a_literal(
    manifests: Manifests, code_text: str
) -> None:
    assert "Secret" not in {d["kind"] for docs in manifests.values() for d in docs}
    needs_store = {"ray-head", "babysweep-optuna-dashboard"}
    for role, pod in pod_specs(manifests):
        env = {e["name"]: e for c in pod["containers"] for e in c.get("env", [])}
        for name, entry in env.items():
            if name not in RAY_OWN_VARIABLES:  # those are read by Ray (test_compose_file)
                assert f'"{name}"' in code_text, f"{role}: sets {name}, which no code reads"
            if SECRET_NAME.search(name):
                assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], role
        assert ("SWEEP_STORAGE_URL" in env) == (role in needs_store), role


def test_ray_token_auth_from_a_secret_and_failing_closed(manifests: Manifests) -> None:
    cluster = one(manifests, "RayJob")["spec"]["rayClusterSpec"]
    # The operator puts the Secret's token on every Ray pod, the submitter and its own job polls.
    assert cluster["authOptions"] == {"mode": "token", "secretName": RAY_TOKEN_SECRET}
    for role, pod in pod_specs(manifests):
        (container,) = pod["containers"]
        env = {e["name"]: e for e in container.get("env", [])}
        # Never by hand: the operator skips its own RAY_AUTH_TOKEN where one is already set.
        assert "RAY_AUTH_TOKEN" not in env, role
        if role.startswith(("ray-head", "worker group")):
            # Set here too, so an operator that drops authOptions leaves Ray unable to start
            # (token mode, no token) instead of running without authentication.
            assert env["RAY_AUTH_MODE"] == {"name": "RAY_AUTH_MODE", "value": "token"}, role
        else:
            assert "RAY_AUTH_MODE" not in env, f"{role} does not talk to Ray"


@pytest.mark.parametrize("name", ["rayjob.yaml", "optuna-dashboard.yaml", "storage.yaml"])
def test_no_password_literal(manifests: Manifests, name: str) -> None:
    for where, text in walk_strings(manifests[name]):
        assert not re.search(r"://[^/\s:@]+:[^@\s]+@", text), f"{name}{where}: credentials"


def test_optuna_dashboard_service_reaches_the_container_port(manifests: Manifests) -> None:
    deployment, service = manifests["optuna-dashboard.yaml"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    (port,) = service["spec"]["ports"]
    assert ports[port["targetPort"]] == port["port"] == 8080
    assert service["spec"]["type"] == "ClusterIP", "no public exposure: port-forward instead"
    assert (
        service["spec"]["selector"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
