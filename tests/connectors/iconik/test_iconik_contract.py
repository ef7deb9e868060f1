"""The OpenAPI contract check itself: it must catch requests and answers iconik's spec forbids.

Every other test in this directory passes through it (see conftest.py); these prove it can fail.
"""

from __future__ import annotations

import pytest
from openapi_core.exceptions import OpenAPIError

JOB_PATH = "/API/jobs/v1/jobs/9b2f3c4d-0000-4000-8000-000000000000/"


def test_a_webhook_without_a_status_breaks_the_spec(contract) -> None:
    hook = {"url": "https://opsgate.acme.example/h", "event_type": "assets"}
    with pytest.raises(OpenAPIError):
        contract.check(
            contract.exchange("POST", "/API/notifications/v1/webhooks/", body=hook), response=False
        )


def test_a_request_without_the_auth_token_header_breaks_the_spec(contract) -> None:
    with pytest.raises(OpenAPIError):
        contract.check(contract.exchange("GET", JOB_PATH, headers={"App-ID": "app"}), response=False)


def test_an_undocumented_path_breaks_the_spec(contract) -> None:
    with pytest.raises(OpenAPIError):
        contract.check(contract.exchange("GET", "/API/assets/v1/assets/x/secrets/"), response=False)


def test_a_read_only_field_in_a_request_body_breaks_the_spec(contract) -> None:
    body = {"title": "x", "id": "4f0d6a1e-0000-4000-8000-000000000000"}
    with pytest.raises(OpenAPIError):
        contract.check(contract.exchange("PATCH", "/API/assets/v1/assets/x/", body=body), response=False)


def test_a_job_answer_without_a_status_breaks_the_spec(contract) -> None:
    job = {"id": "9b2f3c4d-0000-4000-8000-000000000000", "title": "Copy", "type": "TRANSFER"}
    with pytest.raises(OpenAPIError):
        contract.check(contract.exchange("GET", JOB_PATH, answer=job))


def test_a_documented_request_and_answer_pass(contract) -> None:
    job = {
        "id": "9b2f3c4d-0000-4000-8000-000000000000",
        "title": "Copy",
        "type": "TRANSFER",
        "status": "READY",
    }
    contract.check(contract.exchange("GET", JOB_PATH, answer=job))
