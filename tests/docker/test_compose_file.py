"""docker/compose.yaml: services, ports, volumes and variables agree with the image and the code.

The YAML checks need no Docker; the last tests also run `docker compose config` (see conftest).
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_files import (
    DOCKER,
    PROJECT_SERVICES,
    RAY_OWN_VARIABLES,
    REPO,
    SECRET_NAME,
    Dockerfile,
    as_argv,
    interpolate,
    interpolations,
    load_compose,
    required_variables,
    walk_strings,
)
from sqlalchemy.engine import make_url

Compose = dict[str, Any]
RunCompose = Callable[..., subprocess.CompletedProcess[str]]
TEST_PASSWORD = "test-only-0123456789abcdef"
TEST_TOKEN = "test-only-token-fedcba9876543210"
# What `docker/.env` must set beyond .env.example: compose refuses to run without either.
TEST_SECRETS = {"POSTGRES_PASSWORD": TEST_PASSWORD, "RAY_AUTH_TOKEN": TEST_TOKEN}
# The services whose processes join or serve the Ray cluster, so need its token.
RAY_SERVICES = {"ray-head", "ray-worker", "sweep"}


def service(compose: Compose, name: str) -> dict[str, Any]:
    return compose["services"][name]


def mounts(svc: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Short-syntax volumes by target: (source, read_only)."""
    found = {}
    for spec in svc.get("volumes", []):
        source, target, *mode = spec.rsplit(":", 2) if spec.count(":") >= 2 else spec.split(":")
        found[target] = (source, "ro" in mode)
    return found


def runs_ray(svc: dict[str, Any]) -> bool:
    """Whether the container's main process is a Ray node (`ray ...` or `with-ray-node ...`)."""
    argv = as_argv(svc.get("entrypoint")) + as_argv(svc.get("command"))
    return bool(argv) and argv[0] in {"ray", "with-ray-node"}


def sweep_argv(compose: Compose, env: dict[str, str], extra: tuple[str, ...] = ()) -> list[str]:
    svc = service(compose, "sweep")
    argv = [interpolate(a, env) for a in as_argv(svc["entrypoint"]) + as_argv(svc["command"])]
    assert argv[0] == "with-ray-node", "the driver must join the cluster before `sweep run`"
    return argv[1:] + list(extra)


def test_the_stack_has_the_services_the_readme_names(compose: Compose) -> None:
    assert set(compose["services"]) == PROJECT_SERVICES | {"postgres"}


def test_every_babysweep_service_runs_the_one_image(compose: Compose) -> None:
    images = {service(compose, s)["image"] for s in PROJECT_SERVICES}
    builds = {json.dumps(service(compose, s)["build"], sort_keys=True) for s in PROJECT_SERVICES}
    assert len(images) == 1 and len(builds) == 1
    build = service(compose, "ray-head")["build"]
    assert (DOCKER / build["context"]).resolve() == REPO, "the build context is the repo root"
    assert (REPO / build["dockerfile"]) == DOCKER / "Dockerfile"
    assert set(build["args"]) == {"DEVICE"}


def test_postgres_is_private_persistent_and_health_checked(compose: Compose) -> None:
    pg = service(compose, "postgres")
    assert re.fullmatch(r"postgres:\d+", pg["image"]), "pin PostgreSQL's major version"
    assert "ports" not in pg, "PostgreSQL must not be published on the host by default"
    source, _ = mounts(pg)["/var/lib/postgresql/data"]
    assert source in compose["volumes"], "the database needs a named volume"
    assert "pg_isready" in " ".join(as_argv(pg["healthcheck"]["test"]))
    for name in ("migrate", "optuna-dashboard", "sweep"):
        deps = service(compose, name)["depends_on"]
        assert {"postgres", "migrate"} & set(deps), f"{name} may start before the schema exists"


def test_only_the_two_dashboards_are_published_and_only_on_localhost(compose: Compose) -> None:
    published = {
        name: svc["ports"] for name, svc in compose["services"].items() if svc.get("ports")
    }
    assert published == {
        "ray-head": ["127.0.0.1:8265:8265"],
        "optuna-dashboard": ["127.0.0.1:8080:8080"],
    }


def test_ray_head_and_workers_use_rays_ports(compose: Compose) -> None:
    head = as_argv(service(compose, "ray-head")["command"])
    assert head[:3] == ["ray", "start", "--head"] and "--block" in head
    assert {"--port=6379", "--dashboard-port=8265", "--dashboard-host=0.0.0.0"} <= set(head)
    assert "ray health-check" in " ".join(
        as_argv(service(compose, "ray-head")["healthcheck"]["test"])
    )
    worker = as_argv(service(compose, "ray-worker")["command"])
    assert worker[:2] == ["ray", "start"] and "--address=ray-head:6379" in worker


def test_workers_reserve_gpus_and_can_scale(compose: Compose) -> None:
    worker = service(compose, "ray-worker")
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert "container_name" not in worker and "ports" not in worker, "--scale needs both absent"
    cpu = load_compose(DOCKER / "compose.cpu.yaml")
    assert cpu["services"] == {
        "ray-worker": {"deploy": {"resources": {"reservations": {"devices": {"!reset": []}}}}}
    }


def test_sweep_is_a_one_shot_driver_on_the_cluster(
    compose: Compose, env_example: dict[str, str], check_sweep_argv: Callable[[list[str]], None]
) -> None:
    svc = service(compose, "sweep")
    assert svc["restart"] == "no" and svc["profiles"] == ["sweep"]
    argv = sweep_argv(compose, env_example)
    assert argv[:2] == ["sweep", "run"] and argv[argv.index("--address") + 1] == "ray-head:6379"
    assert svc["environment"]["RAY_ADDRESS"] == "ray-head:6379"
    check_sweep_argv(argv)
    check_sweep_argv(sweep_argv(compose, env_example, ("--resume", "--stage", "students")))


def test_every_sweep_command_parses_with_the_real_cli(
    compose: Compose, env_example: dict[str, str], check_sweep_argv: Callable[[list[str]], None]
) -> None:
    commands = [
        as_argv(service(compose, s).get("command")) for s in ("migrate", "optuna-dashboard")
    ]
    for argv in commands:
        check_sweep_argv([interpolate(a, env_example) for a in argv])
    dashboard = as_argv(service(compose, "optuna-dashboard")["command"])
    assert dashboard[dashboard.index("--port") + 1] == "8080"
    assert dashboard[dashboard.index("--host") + 1] == "0.0.0.0"  # published on localhost only


def test_store_url_points_at_the_postgres_service(compose: Compose) -> None:
    urls = {
        service(compose, s)["environment"]["SWEEP_STORAGE_URL"]
        for s in ("migrate", "optuna-dashboard", "sweep")
    }
    (template,) = urls
    url = make_url(interpolate(template, {"POSTGRES_PASSWORD": TEST_PASSWORD}))
    assert (url.drivername, url.host, url.port) == ("postgresql+psycopg", "postgres", 5432)
    assert url.password == TEST_PASSWORD, "the password must come from ${POSTGRES_PASSWORD}"
    pg_env = service(compose, "postgres")["environment"]
    assert url.username == interpolate(pg_env["POSTGRES_USER"], {})
    assert url.database == interpolate(pg_env["POSTGRES_DB"], {})
    for name in ("ray-head", "ray-worker"):
        assert "SWEEP_STORAGE_URL" not in service(compose, name).get("environment", {})


def test_containers_get_only_variables_the_code_reads(compose: Compose, code_text: str) -> None:
    for name in PROJECT_SERVICES:
        for var in service(compose, name).get("environment", {}):
            if var in RAY_OWN_VARIABLES:
                continue  # read by Ray, not by babysweep (next test)
            assert f'"{var}"' in code_text, f"{name}: sets {var}, which no code reads"
    assert set(service(compose, "postgres")["environment"]) == {
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
        "POSTGRES_DB",
    }


def test_ray_reads_the_ray_variables_the_containers_get() -> None:
    spec = importlib.util.find_spec("ray")
    assert spec and spec.origin
    sources = [
        p.read_text(errors="ignore")
        for p in (Path(spec.origin).parent / "_private").rglob("*.py")
        if "test" not in p.name
    ]
    for name in RAY_OWN_VARIABLES:
        assert any(f'"{name}"' in text for text in sources), f"Ray {name}: no such variable"


def test_every_ray_process_presents_the_token_from_the_env_file(compose: Compose) -> None:
    # Ray 2.60 runs in token mode: a node or driver without the head's token is refused.
    ray_services = {name for name, svc in compose["services"].items() if runs_ray(svc)}
    assert ray_services == RAY_SERVICES
    for name, svc in compose["services"].items():
        env = svc.get("environment", {})
        if name not in RAY_SERVICES:  # the token goes only where Ray runs
            assert not RAY_OWN_VARIABLES & set(env), name
            continue
        assert env["RAY_AUTH_MODE"] == "token", name
        token = env["RAY_AUTH_TOKEN"]
        assert token.startswith("${RAY_AUTH_TOKEN:?"), f"{name}: the token must come from .env"
        assert interpolate(token, {"RAY_AUTH_TOKEN": TEST_TOKEN}) == TEST_TOKEN, name
    # The head's healthcheck (`ray health-check`) runs with the head's environment.
    assert as_argv(service(compose, "ray-head")["healthcheck"]["test"])[1] == "ray"
    assert required_variables((DOCKER / "compose.yaml").read_text()) >= {"RAY_AUTH_TOKEN"}


def test_data_and_checkpoints_are_where_the_image_and_the_example_expect(
    compose: Compose, dockerfile: Dockerfile, env_example: dict[str, str]
) -> None:
    data_dir = dockerfile.env()["SWEEP_DATA_DIR"]
    for name in PROJECT_SERVICES - {"ray-head"}:
        source, read_only = mounts(service(compose, name))[data_dir]
        assert read_only and "SWEEP_DATA_HOST_DIR" in source, name
    # Trials (workers) and the driver must see the same checkpoints.
    shared = {mounts(service(compose, s))["/shared"] for s in ("ray-worker", "sweep")}
    assert shared == {("shared", False)} and "shared" in compose["volumes"]
    argv = sweep_argv(compose, env_example)
    assert argv[argv.index("--output-dir") + 1].startswith("/shared/")
    example = yaml.safe_load((REPO / "examples" / "babyllama2-345m.yaml").read_text())
    assert example["output_dir"].startswith("/shared/")
    assert example["data"]["cache_dir"].startswith("/shared/")
    # null: the compose file's $SWEEP_STORAGE_URL and the image's $SWEEP_DATA_DIR apply.
    assert example["storage"] is None and example["data"]["root"] is None


def test_env_example_lists_every_variable_and_no_secret(env_example: dict[str, str]) -> None:
    used = interpolations((DOCKER / "compose.yaml").read_text())
    assert set(env_example) == used, "docker/.env.example and compose.yaml disagree"
    assert env_example["POSTGRES_PASSWORD"] == "", "the example must not carry a password"
    assert env_example["RAY_AUTH_TOKEN"] == "", "the example must not carry a Ray token"
    assert set(TEST_SECRETS) == required_variables((DOCKER / "compose.yaml").read_text())
    secrets = {k: v for k, v in env_example.items() if SECRET_NAME.search(k) and v}
    assert not secrets
    commented = re.findall(r"^# ([A-Z_]+)=", (DOCKER / ".env.example").read_text(), re.M)
    assert set(commented) - used <= {"COMPOSE_FILE"}


def test_no_password_literal_in_compose_files() -> None:
    for path in (DOCKER / "compose.yaml", DOCKER / "compose.cpu.yaml"):
        for where, text in walk_strings(load_compose(path)):
            creds = re.search(r"://[^/\s:@]+:([^@\s]+)@", text)
            assert not creds or creds.group(1).startswith("${"), f"{path.name}{where}"
            if SECRET_NAME.search(where.rsplit(".", 1)[-1]):
                assert text.startswith("${") or "${POSTGRES_PASSWORD" in text, where


def test_env_file_is_git_ignored() -> None:
    result = subprocess.run(
        ["git", "check-ignore", "-q", "docker/.env"], cwd=REPO, capture_output=True
    )
    assert result.returncode == 0, "docker/.env holds the password: .gitignore must cover it"


def assert_ray_auth(services: dict[str, Any]) -> None:
    """The resolved token reaches exactly the Ray services, in token mode."""
    for name, svc in services.items():
        env = svc.get("environment") or {}
        if name in RAY_SERVICES:
            assert env.get("RAY_AUTH_MODE") == "token", name
            assert env.get("RAY_AUTH_TOKEN") == TEST_TOKEN, name
        else:
            assert not RAY_OWN_VARIABLES & set(env), name


def test_compose_config_resolves_the_gpu_and_cpu_stacks(run_compose: RunCompose) -> None:
    gpu = run_compose("--profile", "sweep", "config", "--format", "json", env=TEST_SECRETS)
    assert gpu.returncode == 0, gpu.stderr
    services = json.loads(gpu.stdout)["services"]
    assert set(services) == PROJECT_SERVICES | {"postgres"}
    url = make_url(services["sweep"]["environment"]["SWEEP_STORAGE_URL"])
    assert url.password == TEST_PASSWORD and url.host == "postgres"
    assert services["sweep"]["environment"]["RAY_ADDRESS"] == "ray-head:6379"
    assert services["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert_ray_auth(services)
    cpu_env = {
        **TEST_SECRETS,
        "COMPOSE_FILE": "compose.yaml:compose.cpu.yaml",
        "BABYSWEEP_DEVICE": "cpu",
    }
    cpu = run_compose("--profile", "sweep", "config", "--format", "json", env=cpu_env)
    assert cpu.returncode == 0, cpu.stderr
    cpu_services = json.loads(cpu.stdout)["services"]
    assert not cpu_services["ray-worker"]["deploy"]["resources"]["reservations"].get("devices")
    assert cpu_services["ray-head"]["build"]["args"] == {"DEVICE": "cpu"}
    assert_ray_auth(cpu_services)


@pytest.mark.parametrize("missing", sorted(TEST_SECRETS))
def test_compose_refuses_to_start_without_a_secret(run_compose: RunCompose, missing: str) -> None:
    env = {k: v for k, v in TEST_SECRETS.items() if k != missing}
    result = run_compose("config", "--quiet", env=env)
    assert result.returncode != 0
    assert missing in result.stderr


def test_compose_interpolates_only_variables_in_env_example(
    run_compose: RunCompose, env_example: dict[str, str]
) -> None:
    result = run_compose("config", "--variables", env=TEST_SECRETS)
    assert result.returncode == 0, result.stderr
    names = {line.split()[0] for line in result.stdout.splitlines()[1:] if line.strip()}
    assert names == set(env_example)


def test_the_readmes_override_mounts_your_sweep_file_and_corpus(
    run_compose: RunCompose, tmp_path: Path
) -> None:
    """docker/README.md's compose.override.yaml, as written: the services that read the sweep
    file get it, the Ray workers get the corpus, and compose.yaml's own mounts stay."""
    readme = (DOCKER / "README.md").read_text()
    (snippet,) = re.findall(r"```yaml\n(x-mine:.*?)```", readme, re.S)
    override = tmp_path / "compose.override.yaml"
    override.write_text(snippet)
    env = {**TEST_SECRETS, "SWEEP_CONFIG": "/config/sweep.yaml"}
    args = ("-f", "compose.yaml", "-f", str(override), "--profile", "sweep")
    result = run_compose(*args, "config", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]

    def targets(name: str) -> dict[str, dict[str, Any]]:
        return {v["target"]: v for v in services[name].get("volumes", [])}

    for name in ("migrate", "optuna-dashboard", "sweep", "ray-worker"):
        mine = targets(name)
        assert mine["/config/sweep.yaml"]["source"] == str(DOCKER / "my-sweep.yaml"), name
        assert mine["/corpus"]["source"] == str((DOCKER / "../../my-corpus").resolve()), name
        assert mine["/config/sweep.yaml"]["read_only"] and mine["/corpus"]["read_only"], name
        assert "/data" in mine, name  # BLiMP and GLUE still come from SWEEP_DATA_HOST_DIR
    assert "/shared" in targets("sweep") and "/shared" in targets("ray-worker")
    assert "/config/sweep.yaml" in services["sweep"]["entrypoint"]
    assert "/config/sweep.yaml" in services["migrate"]["command"]
