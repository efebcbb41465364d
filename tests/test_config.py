"""Settings: flags over PLANWEAVE_* environment over planweave.toml over defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from planweave import TenantQuotas
from planweave.config import Settings, load_settings
from planweave.errors import ConfigError
from planweave.events import JobOptions
from planweave.llm import ModelOptions


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_defaults_without_file_or_environment() -> None:
    settings = load_settings({}, env={})
    assert settings == Settings()
    assert settings.model == "local:"
    assert settings.bus == "memory://"
    assert settings.store_url == "sqlite:///.planweave/planweave.db"


def test_the_default_store_lives_in_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": tmp_path / "d"}, env={})
    assert settings.store_url == f"sqlite:///{tmp_path / 'd' / 'planweave.db'}"


def test_flag_beats_env_beats_toml_beats_default(tmp_path: Path) -> None:
    (tmp_path / "planweave.toml").write_text(
        'model = "scripted:toml.yaml"\nbus = "memory://toml"\nstore = "sqlite:///toml.db"\n'
        'log_level = "info"\n'
    )
    env = {"PLANWEAVE_MODEL": "scripted:env.yaml", "PLANWEAVE_BUS": "memory://env"}
    settings = load_settings({"model": "scripted:flag.yaml", "bus": None}, env=env)
    assert settings.model == "scripted:flag.yaml"  # flag
    assert settings.bus == "memory://env"  # env (the None flag does not count)
    assert settings.store == "sqlite:///toml.db"  # toml
    assert settings.log_level == "INFO"
    assert settings.allow_private_network is False  # default


def test_a_planweave_table_and_an_explicit_config_file(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "custom.toml"
    config.parent.mkdir()
    config.write_text(
        '[planweave]\nmodel = "openai:gpt-4o-mini"\ndata_dir = "state"\nlocal_threads = 3\n'
        "allow_private_network = true\n"
    )
    (tmp_path / "planweave.toml").write_text('model = "ignored:"\n')
    settings = load_settings({}, env={}, config_file=config)
    assert settings.model == "openai:gpt-4o-mini"
    assert settings.data_dir == tmp_path / "conf" / "state"  # relative to the file
    assert settings.local_threads == 3
    assert settings.allow_private_network is True


def test_environment_values_are_parsed() -> None:
    env = {
        "PLANWEAVE_LOCAL_THREADS": "4",
        "PLANWEAVE_ALLOW_PRIVATE_NETWORK": "true",
        "PLANWEAVE_DATA_DIR": "/tmp/pwdata",
        "PLANWEAVE_WORKSPACE": "ws",
        "PLANWEAVE_LOG_LEVEL": "debug",
    }
    settings = load_settings({}, env=env)
    assert settings.local_threads == 4
    assert settings.allow_private_network is True
    assert settings.data_dir == Path("/tmp/pwdata")
    assert settings.workspace == Path("ws")
    assert settings.log_level == "DEBUG"


def test_unknown_toml_key_names_the_file_and_the_key(tmp_path: Path) -> None:
    (tmp_path / "planweave.toml").write_text('modle = "local:"\n')
    with pytest.raises(ConfigError, match=r"planweave\.toml: unknown key 'modle'.*model"):
        load_settings({}, env={})


def test_bad_toml_value_says_what_is_expected(tmp_path: Path) -> None:
    (tmp_path / "planweave.toml").write_text("local_threads = 0\n")
    with pytest.raises(
        ConfigError,
        match=r"planweave\.toml: key 'local_threads': expected a "
        r"whole number of at least 1, got 0",
    ):
        load_settings({}, env={})


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(
        ConfigError, match="environment variable PLANWEAVE_LOG_LEVEL: expected one of DEBUG"
    ):
        load_settings({}, env={"PLANWEAVE_LOG_LEVEL": "loud"})


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "planweave.toml").write_text("model = \n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings({}, env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({}, env={}, config_file=tmp_path / "nope.toml")


def test_settings_are_frozen_and_keyword_only() -> None:
    settings = Settings(model="scripted:x.yaml")
    with pytest.raises(ValueError, match="frozen"):
        settings.model = "local:"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Settings("scripted:x.yaml")  # type: ignore[misc]


def test_engine_kwargs(tmp_path: Path) -> None:
    settings = Settings(
        model="openai:gpt-4o-mini",
        data_dir=tmp_path,
        local_threads=2,
        openai_base_url="http://localhost:8080/v1",
        allow_private_network=True,
    )
    kwargs = settings.engine_kwargs()
    assert kwargs == {
        "store": f"sqlite:///{tmp_path / 'planweave.db'}",
        "bus": "memory://",
        "run_workers": True,
        "tools": [],
        "model": "openai:gpt-4o-mini",
        "data_dir": tmp_path,
        "model_options": ModelOptions(n_threads=2, base_url="http://localhost:8080/v1"),
        "allow_private_network": True,
        "max_user_plan_tasks": 10_000,
        "job_defaults": JobOptions(max_cost_usd=5.0, max_job_tokens=2_000_000),
        "tenant_quotas": TenantQuotas(),
        "spell_paths": (Path("spells"),),
    }


def test_workers_run_in_process_only_with_the_in_process_bus() -> None:
    assert load_settings({}, env={}).engine_kwargs()["run_workers"] is True
    shared = load_settings({}, env={"PLANWEAVE_BUS": "redis://cache:6379/0"})
    assert shared.engine_kwargs()["run_workers"] is False
    both = load_settings({"bus": "redis://cache:6379/0", "workers": True}, env={})
    assert both.engine_kwargs()["run_workers"] is True
    kinds = load_settings({}, env={"PLANWEAVE_WORKER_KINDS": "tool, executor"})
    assert kinds.worker_kinds == ("tool", "executor")


def test_tenant_quotas_are_on_by_default_and_settable_from_every_layer() -> None:
    assert load_settings({}, env={}).tenant_quotas() == TenantQuotas(
        max_running_jobs=64,
        max_queued_jobs=1_000,
        max_storage_bytes=10 * 1024**3,
        max_spend_usd=100.0,
        spend_window_s=86_400.0,
    )
    env = {
        "PLANWEAVE_MAX_RUNNING_JOBS_PER_TENANT": "2",
        "PLANWEAVE_MAX_QUEUED_JOBS_PER_TENANT": "3",
        "PLANWEAVE_MAX_TENANT_STORAGE_BYTES": "0",
        "PLANWEAVE_MAX_TENANT_SPEND_USD": "7.5",
        "PLANWEAVE_TENANT_SPEND_WINDOW_S": "3600",
    }
    assert load_settings({}, env=env).engine_kwargs()["tenant_quotas"] == TenantQuotas(
        max_running_jobs=2,
        max_queued_jobs=3,
        max_storage_bytes=None,
        max_spend_usd=7.5,
        spend_window_s=3600.0,
    )
    off = load_settings({"max_running_jobs_per_tenant": 0, "max_tenant_spend_usd": 0}, env={})
    quotas = off.tenant_quotas()
    assert (quotas.max_running_jobs, quotas.max_queued_jobs, quotas.max_spend_usd) == (
        None,
        None,
        None,
    )
    with pytest.raises(ConfigError, match="PLANWEAVE_MAX_QUEUED_JOBS_PER_TENANT: expected"):
        load_settings({}, env={"PLANWEAVE_MAX_QUEUED_JOBS_PER_TENANT": "-1"})


def test_job_budgets_have_defaults_that_every_layer_can_raise(tmp_path: Path) -> None:
    defaults = load_settings({}, env={})
    assert (defaults.max_cost_usd, defaults.max_job_tokens) == (5.0, 2_000_000)
    raised = load_settings(
        {"max_job_tokens": 9_000_000},
        env={"PLANWEAVE_MAX_COST_USD": "50", "PLANWEAVE_PRIVATE_NETWORK_TENANTS": "ops, lab"},
    )
    job = raised.engine_kwargs()["job_defaults"]
    assert (job.max_cost_usd, job.max_job_tokens) == (50.0, 9_000_000)
    assert raised.private_network_tenants == ("ops", "lab")
    with pytest.raises(ConfigError, match="PLANWEAVE_MAX_JOB_TOKENS: expected a whole number"):
        load_settings({}, env={"PLANWEAVE_MAX_JOB_TOKENS": "lots"})


def test_max_user_plan_tasks_and_the_leases_from_every_layer(tmp_path: Path) -> None:
    defaults = load_settings({}, env={})
    assert defaults.max_user_plan_tasks == 10_000
    assert defaults.claim_lease_s is None and defaults.work_lease_s is None
    kwargs = defaults.engine_kwargs()
    assert kwargs["max_user_plan_tasks"] == 10_000
    assert "claim_lease_s" not in kwargs and "work_lease_s" not in kwargs  # the engine's own

    (tmp_path / "planweave.toml").write_text(
        "max_user_plan_tasks = 70\nclaim_lease_s = 12.5\nwork_lease_s = 40\n"
    )
    from_toml = load_settings({}, env={})
    assert (from_toml.max_user_plan_tasks, from_toml.claim_lease_s, from_toml.work_lease_s) == (
        70,
        12.5,
        40.0,
    )
    env = {"PLANWEAVE_CLAIM_LEASE_S": "3", "PLANWEAVE_WORK_LEASE_S": "4"}
    from_env = load_settings({"max_user_plan_tasks": 5}, env=env)
    assert (from_env.max_user_plan_tasks, from_env.claim_lease_s, from_env.work_lease_s) == (
        5,
        3.0,
        4.0,
    )
    from_flags = load_settings({"claim_lease_s": 1.5, "work_lease_s": 2.5}, env=env)
    kwargs = from_flags.engine_kwargs()
    assert (kwargs["claim_lease_s"], kwargs["work_lease_s"]) == (1.5, 2.5)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PLANWEAVE_CLAIM_LEASE_S", "0"),
        ("PLANWEAVE_WORK_LEASE_S", "soon"),
        ("PLANWEAVE_MAX_USER_PLAN_TASKS", "0"),
    ],
)
def test_bad_lease_and_limit_values_name_their_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"environment variable {name}: expected"):
        load_settings({}, env={name: value})
