"""The connection as Airflow users know it (schema, host, port, proxies, verify, cert), its form, and raw bodies."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import pytest
import responses

from airflow_provider_runway.core.errors import RunwayRequestRejectedError
from airflow_provider_runway.core.models import GenerateRequest
from airflow_provider_runway.get_provider_info import get_provider_info
from airflow_provider_runway.hooks import runway as hook_module
from airflow_provider_runway.hooks import transport
from airflow_provider_runway.hooks.connection_form import EXTRA_FIELDS
from airflow_provider_runway.hooks.runway import RunwayHook
from tests.unit.hooks.aiohttp_compat import mock_aiohttp
from tests.unit.hooks.conftest import API_KEY, BASE, set_connection

GENERATE = f"{BASE}/api/v1/runway/generate"
DETAIL = re.compile(rf"^{re.escape(BASE)}/api/v1/runway/record-detail\?taskId=tas-1$")


class TestSchemaHostPort:
    def test_schema_field_chooses_the_scheme(self, monkeypatch: pytest.MonkeyPatch) -> None:
        conn = {"conn_type": "runway", "schema": "http", "host": "127.0.0.1", "port": 8089, "password": API_KEY}
        set_connection(monkeypatch, conn)
        assert RunwayHook().base_url == "http://127.0.0.1:8089"

    def test_uri_form_path_is_the_schema(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_connection(monkeypatch, f"runway://:{API_KEY}@127.0.0.1:8089/http")
        assert RunwayHook().base_url == "http://127.0.0.1:8089"

    def test_no_schema_means_https(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_connection(monkeypatch, {"conn_type": "runway", "host": "api.kie.ai", "port": 8443, "password": API_KEY})
        assert RunwayHook().base_url == "https://api.kie.ai:8443"


class TestProxiesVerifyCert:
    def test_sync_requests_carry_the_extras(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        extra = {
            "proxies": {"https": "http://proxy.test:3128"},
            "verify": str(tmp_path / "ca.pem"),
            "cert": [str(tmp_path / "c.pem"), str(tmp_path / "k.pem")],
        }
        set_connection(monkeypatch, {"conn_type": "runway", "host": BASE, "password": API_KEY, "extra": extra})
        hook = RunwayHook(retry_limit=0)
        seen: dict[str, object] = {}

        def record(*args: object, **kwargs: object) -> object:
            seen.update(kwargs)
            raise ValueError("stop here")

        monkeypatch.setattr(hook._session(), "request", record)
        with pytest.raises(Exception, match="stop here"):
            hook.get_credits()
        assert seen["proxies"] == {"https": "http://proxy.test:3128"}
        assert seen["verify"] == str(tmp_path / "ca.pem")
        assert seen["cert"] == (str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))

    @pytest.mark.parametrize(("value", "expected"), [(None, True), ("false", False), (False, False), ("True", True)])
    def test_verify_values(self, monkeypatch: pytest.MonkeyPatch, value: object, expected: object) -> None:
        set_connection(monkeypatch, {"conn_type": "runway", "password": API_KEY, "extra": {"verify": value}})
        assert RunwayHook()._settings().verify == expected

    @pytest.mark.asyncio
    async def test_async_session_trusts_the_environment_and_uses_the_proxy_extra(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        extra = {"proxies": '{"https": "http://proxy.test:3128"}', "verify": "false"}
        set_connection(monkeypatch, {"conn_type": "runway", "password": API_KEY, "extra": extra})
        settings = RunwayHook()._settings()
        assert settings.async_proxy == "http://proxy.test:3128"
        assert settings.ssl_context() is False
        assert transport.proxy_for(settings) == ("http://proxy.test:3128", None)

    def test_async_proxy_from_the_environment_read_once_per_wait(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_connection(monkeypatch, {"conn_type": "runway", "password": API_KEY, "host": "https://api.kie.ai"})
        settings = RunwayHook()._settings()
        for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        assert transport.proxy_for(settings) == (None, None)
        monkeypatch.setenv("HTTPS_PROXY", "http://envproxy.test:8080")
        assert transport.proxy_for(settings)[0] == "http://envproxy.test:8080"
        monkeypatch.setenv("NO_PROXY", "api.kie.ai")
        assert transport.proxy_for(settings) == (None, None)

    def test_ssl_context_trusts_the_given_bundle(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        import certifi  # requests' own CA bundle: always installed, unlike a system CA file

        # A bundle of one CA certificate: the context must trust exactly it, not the system's store.
        first_ca = re.search(
            r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n", Path(certifi.where()).read_text(), re.S
        )
        assert first_ca is not None
        bundle = tmp_path / "one-ca.pem"
        bundle.write_text(first_ca.group(0))
        set_connection(monkeypatch, {"conn_type": "runway", "password": API_KEY, "extra": {"verify": str(bundle)}})
        context = RunwayHook()._settings().ssl_context()
        assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname
        assert context.get_ca_certs(binary_form=True) == [ssl.PEM_cert_to_DER_cert(first_ca.group(0))]

    def test_ssl_contexts_are_built_once_per_bundle_until_it_changes(self, tmp_path: Path) -> None:
        import os

        import certifi  # requests' own CA bundle: always installed, unlike a system CA file

        bundle = tmp_path / "ca.pem"
        bundle.write_bytes(Path(certifi.where()).read_bytes())

        def settings(verify: bool | str) -> transport.Settings:
            return transport.Settings("https://api.kie.ai", "k", 1.0, 1.0, 0, 0.0, {}, verify=verify)

        # The default store: aiohttp's verified context, built once per process, not one per session.
        assert settings(True).ssl_context() is True
        first = settings(str(bundle)).ssl_context()
        assert isinstance(first, ssl.SSLContext) and first.verify_mode == ssl.CERT_REQUIRED
        assert settings(str(bundle)).ssl_context() is first
        stat = bundle.stat()
        os.utime(bundle, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # the bundle was replaced
        assert settings(str(bundle)).ssl_context() is not first

    def test_bad_proxies_extra_names_the_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_connection(monkeypatch, {"conn_type": "runway", "password": API_KEY, "extra": {"proxies": "nope"}})
        with pytest.raises(ValueError, match="proxies"):
            RunwayHook()._settings()


class TestConnectionForm:
    def test_one_description_feeds_both_uis(self) -> None:
        connection_type = get_provider_info()["connection-types"][0]
        behaviour = RunwayHook.get_ui_field_behaviour()
        assert set(connection_type["conn-fields"]) == {item.name for item in EXTRA_FIELDS}
        assert connection_type["ui-field-behaviour"] == {
            "hidden-fields": behaviour["hidden_fields"],
            "relabeling": behaviour["relabeling"],
            "placeholders": behaviour["placeholders"],
        }
        for item in EXTRA_FIELDS:
            assert item.name in behaviour["placeholders"]["extra"]
            assert connection_type["conn-fields"][item.name]["description"] == item.description

    def test_every_extra_the_hook_reads_is_in_the_form(self) -> None:
        source = Path(hook_module.__file__).read_text() + Path(transport.__file__).read_text()
        read = set(re.findall(r'extra(?:\.get\(|, )"(\w+)"', source))
        read |= {"max_prompt_length", "allowed_durations", hook_module.WEBHOOK_SECRET_EXTRA}  # ValidationLimits
        read -= {"use_https"}  # read as a fallback for connections of earlier releases only
        assert read, "the pattern found no extra reads: update it"
        assert read <= {item.name for item in EXTRA_FIELDS}


class TestBodiesAreParsedRaw:
    """A short key's characters inside a body are data: only what is shown is redacted."""

    SHORT_KEY = "tas"

    @responses.activate
    def test_create_with_a_short_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_connection(monkeypatch, {"conn_type": "runway", "host": BASE, "password": self.SHORT_KEY})
        responses.post(GENERATE, json={"code": 200, "msg": "success", "data": {"taskId": "tas-1"}})
        assert RunwayHook(retry_limit=0).create_generate_task(GenerateRequest(prompt="a fox")) == "tas-1"

    @pytest.mark.asyncio
    async def test_async_read_with_a_short_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_connection(monkeypatch, {"conn_type": "runway", "host": BASE, "password": self.SHORT_KEY})
        record = {"code": 200, "msg": "success", "data": {"taskId": "tas-1", "state": "generating"}}
        with mock_aiohttp() as mocked:
            mocked.get(DETAIL, payload=record)
            task = await RunwayHook(retry_limit=0).aget_task("tas-1")
        assert task.task_id == "tas-1"

    @responses.activate
    def test_an_echoed_key_is_redacted_in_the_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        set_connection(monkeypatch, {"conn_type": "runway", "host": BASE, "password": API_KEY})
        responses.post(GENERATE, json={"code": 400, "msg": f"bad header Bearer {API_KEY} for {API_KEY}", "data": None})
        with pytest.raises(RunwayRequestRejectedError) as raised:
            RunwayHook(retry_limit=0).create_generate_task(GenerateRequest(prompt="a fox"))
        assert API_KEY not in str(raised.value) and API_KEY not in raised.value.remote_message
        assert "***" in str(raised.value)
