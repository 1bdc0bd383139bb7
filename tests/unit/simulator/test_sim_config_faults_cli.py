"""Configuration checks, fault rules and the command line parser."""

from __future__ import annotations

import dataclasses

import pytest

from airflow_provider_runway.simulator.cli import build_parser, config_from_args
from airflow_provider_runway.simulator.config import SimulatorConfig
from airflow_provider_runway.simulator.faults import FaultBook, FaultRule, endpoint_name


@pytest.mark.parametrize(
    "fields",
    [
        {"error_style": "xml"},
        {"time_scale": 0},
        {"wait_seconds": -1},
        {"concurrency_limit": -1},
        {"failure_rate": 1.5},
        {"video_size_bytes": -5},
        {"aleph_mode": "off"},
        {"rate_limit_creates": -1},
        {"rate_limit_window": 0},
        {"failure_code": 42},
        {"upload_max_bytes": 0},
        {"upload_retention_seconds": -1},
    ],
)
def test_bad_config_is_refused(fields):
    with pytest.raises(ValueError):
        SimulatorConfig(**fields)


def test_updated_refuses_unknown_and_startup_only_fields():
    cfg = SimulatorConfig()
    assert cfg.updated({"time_scale": 0.5}).time_scale == 0.5
    with pytest.raises(ValueError, match="unknown"):
        cfg.updated({"nope": 1})
    with pytest.raises(ValueError, match="startup"):
        cfg.updated({"seed": 2})


def test_to_dict_hides_keys():
    data = SimulatorConfig(api_keys=("k1", "k2"), webhook_hmac_key="s3cret").to_dict()
    assert data["api_keys"] == 2
    assert "s3cret" not in repr(data) and "k1" not in repr(data)


def test_count_rule_fires_n_times_then_goes():
    book = FaultBook()
    book.add(FaultRule(endpoint="record-detail", kind="http500", count=2))
    assert book.pick("generate") is None
    assert book.pick("record-detail") is not None
    assert book.pick("record-detail") is not None
    assert book.pick("record-detail") is None
    assert book.rules == []


def test_fraction_rule_fires_about_that_often_and_stays():
    book = FaultBook(seed=1)
    book.add(FaultRule(endpoint="*", kind="http455", fraction=0.25))
    fired = sum(book.pick("credit") is not None for _ in range(1000))
    assert 180 < fired < 320
    assert len(book.rules) == 1


def test_endpoint_may_be_given_as_a_path():
    assert FaultRule(endpoint="/api/v1/runway/record-detail", kind="drop", count=1).endpoint == "record-detail"
    assert endpoint_name("/files/abc.mp4") == "files"
    assert endpoint_name("/_sim/counters") is None


@pytest.mark.parametrize(
    "fields",
    [
        {"endpoint": "nope", "kind": "http500", "count": 1},
        {"endpoint": "*", "kind": "explode", "count": 1},
        {"endpoint": "*", "kind": "http500"},
        {"endpoint": "*", "kind": "http500", "count": 1, "fraction": 0.5},
        {"endpoint": "*", "kind": "http500", "fraction": 0},
        {"endpoint": "*", "kind": "http500", "count": 0},
    ],
)
def test_bad_fault_rules_are_refused(fields):
    with pytest.raises(ValueError):
        FaultRule(**fields)


def test_cli_flags_reach_the_config():
    args = build_parser().parse_args(
        [
            "--port",
            "0",
            "--api-key",
            "a",
            "--api-key",
            "b",
            "--error-style",
            "http",
            "--time-scale",
            "0.01",
            "--concurrency-limit",
            "0",
            "--durations",
            "5,10",
            "--webhook-hmac-key",
            "k",
            "--generating-jitter",
            "3",
        ]
    )
    cfg = config_from_args(args)
    assert args.port == 0
    assert cfg.api_keys == ("a", "b")
    assert cfg.error_style == "http"
    assert cfg.time_scale == 0.01
    assert cfg.concurrency_limit == 0
    assert cfg.durations == (5, 10)
    assert cfg.webhook_hmac_key == "k"
    assert cfg.generating_jitter == 3.0


def test_cli_defaults_are_the_config_defaults_but_a_fresh_seed():
    config = config_from_args(build_parser().parse_args([]))
    assert dataclasses.replace(config, seed=SimulatorConfig().seed) == SimulatorConfig()


def test_restarted_cli_simulators_do_not_reuse_task_ids():
    seeds = {config_from_args(build_parser().parse_args([])).seed for _ in range(5)}
    assert len(seeds) > 1
    assert config_from_args(build_parser().parse_args(["--seed", "7"])).seed == 7


def test_cli_flags_of_todays_kie_options():
    args = build_parser().parse_args(
        [
            "--rate-limit-creates",
            "0",
            "--rate-limit-window",
            "5",
            "--concurrency-mode",
            "refuse",
            "--failure-code",
            "500",
            "--aleph-failure-flags",
            "--aleph-mode",
            "505",
            "--upload-retention-seconds",
            "60",
            "--upload-max-bytes",
            "1000",
            "--upload-dir",
            "/tmp/sim-uploads",
        ]
    )
    cfg = config_from_args(args)
    assert (cfg.rate_limit_creates, cfg.rate_limit_window, cfg.concurrency_mode) == (0, 5.0, "refuse")
    assert (cfg.failure_code, cfg.aleph_failure_flags, cfg.aleph_mode) == (500, True, "505")
    assert (cfg.upload_retention_seconds, cfg.upload_max_bytes, cfg.upload_dir) == (60.0, 1000, "/tmp/sim-uploads")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--aleph-mode", "off"])


def test_todays_kie_defaults():
    cfg = SimulatorConfig()
    assert (cfg.rate_limit_creates, cfg.rate_limit_window) == (20, 10.0)
    assert cfg.concurrency_mode == "fail_task" and cfg.failure_code == 400
    assert cfg.aleph_mode == "on" and cfg.aleph_failure_flags is False
    assert cfg.upload_retention_seconds == 3 * 86400
    with pytest.raises(ValueError, match="startup"):
        cfg.updated({"upload_dir": "/tmp/x"})


def test_upload_endpoints_have_names_for_counters_and_faults():
    assert endpoint_name("/api/file-stream-upload") == "file-stream-upload"
    assert endpoint_name("/api/file-url-upload") == "file-url-upload"
    assert endpoint_name("/api/file-base64-upload") == "file-base64-upload"
    assert endpoint_name("/tempfile/key-1/a/b.png") == "tempfile"
    assert FaultRule(endpoint="/api/file-base64-upload", kind="http500", count=1).endpoint == "file-base64-upload"
