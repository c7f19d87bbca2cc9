"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (schemathesis): no request gets a 5xx.

Schemathesis reads /openapi.json from the real app (real model, real corpus index), then for every operation
sends the schema's examples, its boundary ("coverage") cases and ~30 generated requests, valid and invalid,
straight to the ASGI app in-process: no socket, no network. Every response must not be a server error, must
match the schema and content type where the API declares them, and every error must be our JSON envelope.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,
                                               response_schema_conformance)

from kb.config import ServerSettings, Settings
from kb.knowledge_base import KnowledgeBase
from server.app import create_app, open_service

ADMIN_KEY = "fuzz-admin-key-123"
#: Fixed, so a failure found in CI is found again on a developer's machine.
SEED = 20240601
MAX_EXAMPLES = 30


@pytest.fixture(scope="module")
def fuzz_app(corpus_kb: KnowledgeBase, corpus_index: Path, settings: Settings,
             tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    """The real app over the real index: rate limiting effectively off, admin and WeChat on, log in a tmp dir."""
    server = replace(ServerSettings(), query_log=tmp_path_factory.mktemp("fuzz") / "querylog.sqlite",
                     admin_key=ADMIN_KEY, cors_origins=(), rate_per_minute=1_000_000, rate_burst=1_000_000,
                     wechat_token="fuzz-wechat-token", wechat_app_id="", wechat_aes_key="")
    # The index the knowledge base was opened from, so /api/admin/reload reloads that one.
    return create_app(open_service(replace(settings, index_dir=corpus_index, server=server), corpus_kb))


@pytest.fixture(scope="module")
def api_schema(fuzz_app: FastAPI) -> schemathesis.BaseSchema:
    config = SchemathesisConfig.from_dict({"seed": SEED})
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app, config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_api_never_answers_with_a_server_error(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN_KEY}"})
