"""docker/slurm/babysweep.sbatch and docker/kuberay/tools/files-pod.yaml: what the README's
Slurm and KubeRay data sections run."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from cluster_files import DOCKER, Dockerfile, interpolate

SCRIPT = DOCKER / "slurm" / "babysweep.sbatch"
FILES_POD = DOCKER / "kuberay" / "tools" / "files-pod.yaml"


def test_the_sbatch_script_is_valid_bash_with_its_directives_first() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True, timeout=30)
    lines = SCRIPT.read_text().splitlines()
    assert lines[0] == "#!/bin/bash"
    first_command = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    directives = [i for i, line in enumerate(lines) if line.startswith("#SBATCH")]
    assert directives and max(directives) < first_command, "Slurm ignores #SBATCH after a command"


def _fake_cluster(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A PATH whose srun, scontrol, ray, sweep and hostname log their argv instead of running."""
    log = tmp_path / "calls.log"
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    stub = f'#!/bin/bash\necho "$(basename "$0") $*" >> {log}\n'
    for name in ("ray", "sweep"):
        (bin_dir / name).write_text(stub)
    (bin_dir / "scontrol").write_text(stub + 'printf "gpu-a\\ngpu-b\\ngpu-c\\n"\n')
    # srun runs its command (so `hostname --ip-address` answers), as Slurm would on the node.
    (bin_dir / "srun").write_text(
        stub + 'while [[ $1 == -* ]]; do [[ $1 == -w ]] && shift; shift; done\n"$@"\n'
    )
    (bin_dir / "hostname").write_text(stub + 'echo "10.0.0.7 fe80::1"\n')
    for path in bin_dir.iterdir():
        path.chmod(0o755)
    (bin_dir / "activate").write_text(f'export PATH="{bin_dir}:$PATH"\n')
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "BABYSWEEP_VENV": str(tmp_path / "venv"),
        "SWEEP_STORAGE_URL": "postgresql+psycopg://sweep@db/sweep",
        "SWEEP_DATA_DIR": "/shared/data",
        "SWEEP_OUTPUT_DIR": "/shared/runs",
        "SLURM_JOB_NODELIST": "gpu-[a-c]",
        "SLURM_JOB_ID": "42",
        "SLURM_GPUS_PER_TASK": "4",
        "SLURM_CPUS_PER_TASK": "16",
    }
    return log, env


def test_the_sbatch_script_starts_head_then_workers_then_runs_the_sweep(
    tmp_path: Path, check_sweep_argv: Callable[[list[str]], None]
) -> None:
    log, env = _fake_cluster(tmp_path)
    config = "examples/babyllama2-345m.yaml"
    done = subprocess.run(
        ["bash", str(SCRIPT), config, "--resume"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    calls = [line.split() for line in log.read_text().splitlines()]
    rays = [c for c in calls if c[0] == "ray" and c[1] == "start"]
    head = [c for c in rays if "--head" in c]
    workers = [c for c in rays if any(a.startswith("--address=") for a in c)]
    assert len(head) == 1 and "--port=6379" in head[0] and "--num-gpus=4" in head[0]
    assert [c for c in workers if "--address=10.0.0.7:6379" in c] == workers
    assert len(workers) == 2  # gpu-b and gpu-c
    sruns = {c[c.index("-w") + 1]: c for c in calls if c[0] == "srun" and "ray" in c}
    assert sorted(sruns) == ["gpu-a", "gpu-b", "gpu-c"]  # one Ray node per Slurm node
    assert "--head" in sruns["gpu-a"]  # the first node, where the driver (this script) runs
    sweeps = [c for c in calls if c[0] == "sweep"]
    assert [c[1] for c in sweeps] == ["db", "run", "report"]
    run = sweeps[1]
    assert run[2] == config and "--resume" in run
    assert run[run.index("--address") + 1] == "10.0.0.7:6379"
    assert run[run.index("--output-dir") + 1] == "/shared/runs"
    # the driver starts once the head answers (workers may join while trials run)
    (status,) = [c for c in calls if c[:2] == ["ray", "status"]]
    assert status[2] == "--address=10.0.0.7:6379" and calls.index(run) > calls.index(status)
    for argv in sweeps:
        check_sweep_argv(argv)


def test_the_sbatch_script_refuses_without_a_store(tmp_path: Path) -> None:
    _, env = _fake_cluster(tmp_path)
    del env["SWEEP_STORAGE_URL"]
    done = subprocess.run(
        ["bash", str(SCRIPT)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "SWEEP_STORAGE_URL" in done.stderr


def test_the_files_pod_mounts_the_volumes_the_sweep_uses(
    compose: dict[str, Any], dockerfile: Dockerfile, manifests: dict[str, list[dict[str, Any]]]
) -> None:
    (pod,) = [d for d in yaml.safe_load_all(FILES_POD.read_text()) if d]
    assert pod["kind"] == "Pod"
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert container["image"] == interpolate(compose["services"]["sweep"]["image"], {})
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert str(spec["securityContext"]["runAsUser"]) == dockerfile.all("USER")[-1].split(":")[0]
    claims = {d["metadata"]["name"] for d in manifests["storage.yaml"]}
    volumes = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    data = mounts[dockerfile.env()["SWEEP_DATA_DIR"]]
    assert not data.get("readOnly") and volumes[data["name"]] in claims  # data goes in here
    (rayjob,) = [d for d in manifests["rayjob.yaml"] if d["kind"] == "RayJob"]
    output_dir = re.search(r"--output-dir (\S+)", rayjob["spec"]["entrypoint"])[1]  # type: ignore[index]
    (shared,) = [path for path in mounts if output_dir.startswith(path + "/")]
    assert volumes[mounts[shared]["name"]] in claims
    (url,) = [e for e in container["env"] if e["name"] == "SWEEP_STORAGE_URL"]
    assert url["valueFrom"]["secretKeyRef"] == {"name": "babysweep-db", "key": "url"}
    header = [
        ln.removeprefix("#").strip()
        for ln in FILES_POD.read_text().splitlines()
        if ln.startswith("#")
    ]
    assert any(
        shlex.split(ln)[:3] == ["kubectl", "apply", "-f"]
        for ln in header
        if ln.startswith("kubectl")
    )
