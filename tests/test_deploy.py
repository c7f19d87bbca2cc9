"""The county deployment's files (deploy/), read as Compose and nginx would read them: no Docker daemon runs here,
so what can be checked without one is checked here."""

from __future__ import annotations

import re

import yaml

from kb.config import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))


def test_no_shell_substitution_is_left_for_compose_to_interpolate() -> None:
    text = (DEPLOY / "docker-compose.yml").read_text(encoding="utf-8")
    assert not re.search(r"(?<!\$)\$\(", text), "Compose v1 refuses $( … ): write $$( … )"


def test_every_api_replica_has_a_readiness_check_and_the_shared_settings() -> None:
    services = compose()["services"]
    replicas = [name for name, service in services.items() if service.get("command") is None
                and "KB_STORE" in service.get("environment", {})]
    assert replicas == ["api1", "api2"]
    for name in replicas:
        service = services[name]
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
        environment = service["environment"]
        for variable in ("KB_CONVERSATION_SECRET", "KB_MODEL_ARTEFACTS", "KB_TRUSTED_PROXIES", "KB_QUERY_LOG"):
            assert variable in environment, f"{name} lacks {variable}"
        assert environment["KB_QUERY_LOG"].startswith("postgresql://"), "one question log for the replicas"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    nginx = services["nginx"]
    assert all(nginx["depends_on"][name]["condition"] == "service_healthy" for name in replicas)
    address = nginx["networks"]["kb"]["ipv4_address"]
    assert services["api1"]["environment"]["KB_TRUSTED_PROXIES"] == address, "only nginx is believed"


def test_nginx_re_resolves_the_replicas_and_streams_answers_unbuffered() -> None:
    conf = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    assert re.search(r"^resolver ", conf, re.M) and re.search(r"zone kb_api", conf)
    assert all(re.search(rf"server {name}:8000 resolve", conf) for name in ("api1", "api2"))
    streamed = re.search(r"location ~ \^/\((?P<paths>[^)]*)\)\$ \{(?P<body>[^}]*)\}", conf)
    assert streamed and "v1/chat/completions" in streamed["paths"]
    assert "proxy_buffering off" in streamed["body"] and "limit_req zone=" in streamed["body"]


def test_the_readme_never_shows_milvus_lite_listening_beyond_this_machine() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"python -m milvus_lite server[^`]*", readme)
    assert commands and all("--host 127.0.0.1" in command for command in commands), commands
