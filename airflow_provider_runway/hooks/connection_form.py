"""The Runway connection form, described once: every field and extra the hook reads, for both Airflow UIs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from airflow_provider_runway.core.wire import DEFAULT_BASE_URL


@dataclass(frozen=True)
class ExtraField:
    """One key of the connection's ``extra`` as the form shows it.

    :param name: the key in the extra.
    :param label: the form label.
    :param types: JSON schema types the value may take (``"null"`` is added: every extra is optional).
    :param placeholder: example value shown in the empty field.
    :param description: help text under the field.
    :param secret: masked in the form (JSON schema ``format: password``).
    """

    name: str
    label: str
    types: tuple[str, ...]
    placeholder: str
    description: str
    secret: bool = False

    def conn_field(self) -> dict[str, Any]:
        """This field in the ``conn-fields`` form of provider metadata (Airflow 3 UI)."""
        schema: dict[str, Any] = {"type": [*self.types, "null"]}
        if self.secret:
            schema["format"] = "password"
        return {"label": self.label, "schema": schema, "description": self.description}


EXTRA_FIELDS: tuple[ExtraField, ...] = (
    ExtraField("connect_timeout", "Connect timeout (s)", ("number",), "10", "Seconds to open a connection."),
    ExtraField(
        "read_timeout",
        "Read timeout (s)",
        ("number",),
        "30",
        "Seconds to wait for a response (in the triggerer, a request as a whole gets connect + read timeout).",
    ),
    ExtraField(
        "retry_limit",
        "Retries of a failed call",
        ("integer",),
        "5",
        "Retries after transient errors; a create is retried only when no task can exist.",
    ),
    ExtraField("retry_delay", "First retry delay (s)", ("number",), "1", "Base of the exponential back-off."),
    ExtraField(
        "webhook_secret",
        "Webhook secret (HMAC key)",
        ("string",),
        "",
        "Verifies X-Webhook-Signature on callbacks (formerly webhook_hmac_key).",
        secret=True,
    ),
    ExtraField(
        "max_prompt_length", "Longest prompt accepted", ("integer",), "1800", "Checked before any request is sent."
    ),
    ExtraField(
        "allowed_durations",
        "Allowed durations (s)",
        ("array", "string"),
        "[5, 8, 10]",
        "Video durations accepted before any request is sent.",
    ),
    ExtraField(
        "download_allowed_hosts",
        "Internal file hosts allowed",
        ("array", "string"),
        '["files.internal.example"]',
        "File hosts that downloads may reach on internal addresses.",
    ),
    ExtraField(
        "proxies",
        "Proxies",
        ("object",),
        '{"https": "http://proxy.example:3128"}',
        "Proxy per URL scheme, as in requests; otherwise HTTPS_PROXY and NO_PROXY from the environment apply.",
    ),
    ExtraField(
        "verify",
        "Verify TLS",
        ("boolean", "string"),
        "/etc/ssl/certs/internal-ca.pem",
        "true (default), false, or the path of a CA bundle to trust.",
    ),
    ExtraField(
        "cert",
        "Client certificate",
        ("string", "array"),
        "/path/client.pem",
        "Client certificate file, or [certificate, key] paths, for mutual TLS.",
    ),
    ExtraField(
        "upload_base_url",
        "File upload host",
        ("string",),
        "https://kieai.redpandaai.co",
        "Where local and object-storage inputs are uploaded. Unset: KIE's https://kieai.redpandaai.co when the "
        "host is KIE's API, else the host itself (the simulator serves uploads too). Use https.",
    ),
    ExtraField(
        "upload_max_image_mb",
        "Largest input image (MB)",
        ("number",),
        "10",
        "Image inputs (image_url, reference_image) larger than this are refused before anything is sent.",
    ),
    ExtraField(
        "upload_max_video_mb",
        "Largest input video (MB)",
        ("number",),
        "10",
        "Video inputs (video_url) larger than this are refused before anything is sent.",
    ),
    ExtraField(
        "price_table",
        "Credit prices",
        ("object",),
        '{"runway:720p": 12, "runway:1080p": 14, "aleph": null}',
        "Overrides KIE's prices in runway_usage and lineage: credits per second of Runway video by quality, "
        "per Aleph edit; null means unknown.",
    ),
)

HIDDEN_FIELDS: list[str] = ["login"]
RELABELING: dict[str, str] = {"password": "API Key", "schema": "Scheme"}
FIELD_PLACEHOLDERS: dict[str, str] = {
    "host": f"{DEFAULT_BASE_URL.split('://', 1)[1]} (empty means {DEFAULT_BASE_URL})",
    "schema": "https (or http, e.g. for the local simulator)",
    "port": "empty means the scheme's default",
    "password": "KIE.ai API key",
}


def extra_example() -> str:
    """A JSON example of the extra naming every key the hook reads (the Extra field's placeholder)."""
    example: dict[str, Any] = {}
    for item in EXTRA_FIELDS:
        try:
            example[item.name] = json.loads(item.placeholder) if item.placeholder else "..."
        except ValueError:
            example[item.name] = item.placeholder
    return json.dumps(example)


def ui_field_behaviour() -> dict[str, Any]:
    """Hidden fields, labels and placeholders in the form of ``BaseHook.get_ui_field_behaviour``."""
    placeholders = {**FIELD_PLACEHOLDERS, "extra": extra_example()}
    placeholders.update({item.name: item.placeholder for item in EXTRA_FIELDS if item.placeholder})
    return {"hidden_fields": list(HIDDEN_FIELDS), "relabeling": dict(RELABELING), "placeholders": placeholders}


def provider_connection_form() -> dict[str, Any]:
    """``conn-fields`` and ``ui-field-behaviour`` for the connection type in ``get_provider_info``."""
    behaviour = ui_field_behaviour()
    return {
        "conn-fields": {item.name: item.conn_field() for item in EXTRA_FIELDS},
        "ui-field-behaviour": {
            "hidden-fields": behaviour["hidden_fields"],
            "relabeling": behaviour["relabeling"],
            "placeholders": behaviour["placeholders"],
        },
    }
