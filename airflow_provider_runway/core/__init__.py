"""Airflow-free core: request models, result normalisation, error classification, wire facts.

Nothing here imports Airflow, so the hook, the trigger and the simulator share it.
"""

from __future__ import annotations

from airflow_provider_runway.core.errors import (
    RunwayApiError,
    RunwayAuthError,
    RunwayConcurrencyLimitError,
    RunwayCreateUncertainError,
    RunwayError,
    RunwayFeatureUnavailableError,
    RunwayGenerationError,
    RunwayInsufficientCreditsError,
    RunwayNotExtendableError,
    RunwayNotFoundError,
    RunwayParameterError,
    RunwayProtocolError,
    RunwayRateLimitedError,
    RunwayRequestRejectedError,
    RunwayResultExpiredError,
    RunwayTaskFailedError,
    RunwayTaskTimeoutError,
    RunwayTransportError,
    RunwayUnavailableError,
    parse_envelope,
)
from airflow_provider_runway.core.models import (
    AlephRequest,
    CreateRequest,
    ExtendRequest,
    GenerateRequest,
    ValidationLimits,
    check_extendable,
)
from airflow_provider_runway.core.results import (
    RunwayTask,
    TaskFamily,
    TaskStatus,
    parse_aleph_record,
    parse_callback,
    parse_record,
    parse_runway_record,
)

__all__ = [
    "AlephRequest",
    "CreateRequest",
    "ExtendRequest",
    "GenerateRequest",
    "RunwayApiError",
    "RunwayAuthError",
    "RunwayConcurrencyLimitError",
    "RunwayCreateUncertainError",
    "RunwayError",
    "RunwayFeatureUnavailableError",
    "RunwayGenerationError",
    "RunwayInsufficientCreditsError",
    "RunwayNotExtendableError",
    "RunwayNotFoundError",
    "RunwayParameterError",
    "RunwayProtocolError",
    "RunwayRateLimitedError",
    "RunwayRequestRejectedError",
    "RunwayResultExpiredError",
    "RunwayTask",
    "RunwayTaskFailedError",
    "RunwayTaskTimeoutError",
    "RunwayTransportError",
    "RunwayUnavailableError",
    "TaskFamily",
    "TaskStatus",
    "ValidationLimits",
    "check_extendable",
    "parse_aleph_record",
    "parse_callback",
    "parse_envelope",
    "parse_record",
    "parse_runway_record",
]
