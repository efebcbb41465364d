"""Messages the engine builds without validating them are the same as validated ones."""

from __future__ import annotations

from planweave.events import TaskCompleted, TaskReady, ToolCalled, Usage, trusted


def test_a_trusted_event_equals_the_validated_one_field_for_field_and_in_json() -> None:
    fields = {"job_id": "j", "task_id": "t", "seq": 3, "id": "j:3", "at": 5.0, "attempt": 1}
    made = trusted(TaskCompleted, dict(fields))
    checked = TaskCompleted(**fields)
    assert made == checked
    assert made.model_dump_json() == checked.model_dump_json()
    assert made.model_fields_set == checked.model_fields_set


def test_fields_left_out_get_their_defaults_and_made_defaults_are_made_each_time() -> None:
    first = trusted(TaskReady, {"job_id": "j", "task_id": "t", "seq": 1})
    second = trusted(TaskReady, {"job_id": "j", "task_id": "t", "seq": 2})
    assert first.id != second.id and len(first.id) == 32  # a fresh id each
    assert first.at > 0 and first.causation_id is None and first.type == "TaskReady"
    call = trusted(ToolCalled, {"job_id": "j", "id": "x", "at": 1.0, "name": "n", "outcome": "ok"})
    other = trusted(ToolCalled, {"job_id": "j", "id": "y", "at": 1.0, "name": "n", "outcome": "ok"})
    assert call.args == {} and call.args is not other.args  # not one shared dict
    done = trusted(TaskCompleted, {"job_id": "j", "id": "z", "at": 1.0, "attempt": 1})
    assert done.usage == Usage()


def test_given_values_win_over_defaults() -> None:
    usage = Usage(tokens_in=3)
    done = trusted(
        TaskCompleted, {"job_id": "j", "id": "z", "at": 2.0, "attempt": 1, "usage": usage}
    )
    assert done.id == "z" and done.at == 2.0 and done.usage is usage
