"""A session on the offline local model (SmolLM2) reaches a settled board, with the stored
state equal to the replayed log."""

from __future__ import annotations

from pathlib import Path

import pytest

from planweave import Engine
from planweave.events import JobOptions
from planweave.sessions import SessionSpec


@pytest.mark.local_model
@pytest.mark.timeout(900)
async def test_the_local_model_drives_a_session_to_a_settled_board(tmp_path: Path) -> None:
    from planweave.llm import ModelOptions

    spec = SessionSpec.from_data(
        {
            "name": "local",
            "agents": [
                {"name": "theme", "instructions": "Name the party theme in three words.",
                 "consumes": {"keywords": ["party"]}},
                {"name": "cake", "instructions": "Suggest one cake for the theme.",
                 "depends_on": ["theme"]},
            ],
        }
    )  # fmt: skip
    async with Engine(
        store=f"sqlite:///{tmp_path / 'pw.db'}",
        model="local:",
        model_options=ModelOptions(n_threads=1, max_tokens=64),
        data_dir=tmp_path,
        builtins=False,
        job_defaults=JobOptions(max_agent_steps=1),
    ) as engine:
        s = await engine.sessions.create(spec, inputs=["a jungle party for kids"])
        board = await s.wait_settled(timeout_s=800)
        assert await engine.sessions.replay(s.id) == s.state
    assert board["settled"]
    assert board["agents"]["theme"]["status"] in ("fresh", "failed")
    if board["agents"]["theme"]["status"] == "fresh":
        assert board["agents"]["theme"]["value"]
        assert board["agents"]["cake"]["status"] in ("fresh", "failed")
