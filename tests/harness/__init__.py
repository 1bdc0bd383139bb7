"""Shared test harness: the fault scenarios, their loopback servers, bad-input cases and the leak scanner."""
