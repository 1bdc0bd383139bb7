"""RunwaySimulator served inside the test's own event loop, and SimulatorClient against it."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from airflow_provider_runway.core import wire
from airflow_provider_runway.core.results import TaskStatus, parse_runway_record
from airflow_provider_runway.simulator import RunwaySimulator, SimulatorClient, SimulatorConfig

pytestmark = pytest.mark.integration


@pytest.mark.asyncio
async def test_start_and_stop_in_the_running_loop():
    config = SimulatorConfig(wait_seconds=0.05, queueing_seconds=0.05, generating_seconds=0.1, seed=42)
    sim = RunwaySimulator(config)
    url = await sim.start()
    try:
        headers = {"Authorization": "Bearer k"}
        async with aiohttp.ClientSession(headers=headers) as session:
            body = {"prompt": "x", "aspectRatio": "1:1"}
            async with session.post(url + wire.RUNWAY_GENERATE_PATH, json=body) as response:
                task_id = (await response.json())["data"]["taskId"]
            for _ in range(200):
                async with session.get(url + wire.RUNWAY_RECORD_DETAIL_PATH, params={"taskId": task_id}) as response:
                    task = parse_runway_record((await response.json())["data"])
                if task.is_terminal:
                    break
                await asyncio.sleep(0.02)
        assert task.status is TaskStatus.SUCCEEDED
        # the blocking control client works too, from a worker thread
        counters = await asyncio.to_thread(lambda: SimulatorClient(url).counters())
        assert counters["requests"]["generate"] == 1
        assert sim.engine.find(task_id) is not None
    finally:
        await sim.stop()
