"""File name stems from task ids (Airflow-free core): safe characters only, never a path, never shared."""

from __future__ import annotations

import pytest

from airflow_provider_runway.core.naming import safe_file_stem


class TestSafeFileStem:
    def test_ordinary_ids_are_kept(self) -> None:
        assert safe_file_stem("ee603959-debb-48d1-98c4-a6d1c717eba6") == "ee603959-debb-48d1-98c4-a6d1c717eba6"
        assert safe_file_stem("Task_1.v2") == "Task_1.v2"

    @pytest.mark.parametrize(
        "task_id",
        ["../../etc/passwd", "/abs/path", "a/b", "..\\..\\win", "%2e%2e%2fx", "név/../ő", ".hidden", "a\x00b"],
    )
    def test_traversal_ids_stay_a_single_safe_name(self, task_id: str) -> None:
        stem = safe_file_stem(task_id)
        assert "/" not in stem and "\\" not in stem
        assert not stem.startswith(".")
        assert set(stem) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")

    def test_ids_that_differ_only_in_dropped_characters_get_different_names(self) -> None:
        assert safe_file_stem("a/b") != safe_file_stem("ab") != safe_file_stem("a\\b")
        assert safe_file_stem("a/b") != safe_file_stem("a\\b")

    @pytest.mark.parametrize("task_id", ["", ".", "..", "....", "/", "//..//", "\u00e9\u00e9", " "])
    def test_degenerate_ids_are_refused(self, task_id: str) -> None:
        with pytest.raises(ValueError, match="cannot be used as a file name"):
            safe_file_stem(task_id)

    @pytest.mark.parametrize("task_id", [None, 42, b"abc"])
    def test_non_strings_are_refused(self, task_id: object) -> None:
        with pytest.raises(TypeError, match="must be a string"):
            safe_file_stem(task_id)  # type: ignore[arg-type]
