"""Per-tenant quotas: how many jobs a tenant runs and queues, what it stores, what it spends.

Checked where a job is submitted (``Engine.submit``), against what the store says the tenant's
jobs hold (``Store.tenant_usage``, one read), so every process that shares a store sees the
same totals. A submission over a quota is refused with ``QuotaExceeded`` and starts nothing; one
within the spend quota gets a dollar budget no larger than what the tenant has left, so a
running job cannot take its tenant far past the quota either. The running-jobs limit is not a
refusal: the control plane holds a tenant's further jobs back until one of its running jobs
ends (``control._dispatch``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from planweave.constants import (
    DEFAULT_MAX_QUEUED_JOBS_PER_TENANT,
    DEFAULT_MAX_RUNNING_JOBS_PER_TENANT,
    DEFAULT_MAX_TENANT_SPEND_USD,
    DEFAULT_MAX_TENANT_STORAGE_BYTES,
    DEFAULT_TENANT_SPEND_WINDOW_S,
)
from planweave.errors import QuotaExceeded, UsageError
from planweave.store.base import TenantUsage

if TYPE_CHECKING:
    from planweave.events import JobOptions
    from planweave.store.base import Store

__all__ = ["TenantQuotas", "check_quotas", "submit_within_quotas", "within_quotas"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantQuotas:
    """What each tenant may hold at once; ``None`` turns one limit off.

    Attributes:
        max_running_jobs: A tenant's jobs that run at once in this engine's control plane
            (default 64). Its further jobs are accepted but queued: none of their tasks goes to
            a worker until one of the tenant's running jobs ends, then the waiting job with the
            highest priority, then the oldest, starts by itself.
        max_queued_jobs: A tenant's jobs that may wait beyond the running ones (default
            1,000); a submission past ``max_running_jobs + max_queued_jobs`` unfinished jobs
            is refused (``tenant_job_limit``). Counted only while ``max_running_jobs`` is set.
        max_storage_bytes: Bytes a tenant's stored jobs may hold (default 10 GiB): their
            recorded data (``JobState.data_bytes``) and their artifact files. A submission
            while the tenant holds this much is refused (``tenant_storage_limit``); deleting
            finished jobs frees it.
        max_spend_usd: Dollars a tenant's jobs may spend in ``spend_window_s`` (default $100).
            A submission while the tenant has spent this much is refused
            (``tenant_spend_limit``); one within it gets the dollar budget
            ``min(its own max_cost_usd, what the tenant has left)``.
        spend_window_s: The rolling window spend is counted over (default a day): every job
            of the tenant that ran at any time inside it counts with all it spent.
    """

    max_running_jobs: int | None = DEFAULT_MAX_RUNNING_JOBS_PER_TENANT
    max_queued_jobs: int | None = DEFAULT_MAX_QUEUED_JOBS_PER_TENANT
    max_storage_bytes: int | None = DEFAULT_MAX_TENANT_STORAGE_BYTES
    max_spend_usd: float | None = DEFAULT_MAX_TENANT_SPEND_USD
    spend_window_s: float = DEFAULT_TENANT_SPEND_WINDOW_S

    def __post_init__(self) -> None:
        for name in ("max_running_jobs", "max_queued_jobs", "max_storage_bytes"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise UsageError(f"TenantQuotas.{name} must be a whole number >= 0 or None")
        if self.max_running_jobs == 0:
            raise UsageError("TenantQuotas.max_running_jobs must be at least 1 (None: no limit)")
        if self.max_spend_usd is not None and not self.max_spend_usd >= 0:
            raise UsageError("TenantQuotas.max_spend_usd must be >= 0 or None")
        if not self.spend_window_s > 0:
            raise UsageError("TenantQuotas.spend_window_s must be greater than 0")


def check_quotas(
    quotas: TenantQuotas, tenant: str, usage: TenantUsage, *, submitting: int = 0
) -> float | None:
    """Refuse a submission over a quota; return the most the new job may spend (``None``: no
    tenant limit on it).

    ``submitting`` counts the tenant's other submissions in flight in this process (not yet in
    the store's totals).

    Raises:
        QuotaExceeded: the tenant is at one of its quotas.
    """
    running, queued = quotas.max_running_jobs, quotas.max_queued_jobs
    if running is not None and queued is not None:
        active = usage.active_jobs + submitting
        if active >= running + queued:
            raise QuotaExceeded(
                "tenant_job_limit",
                f"tenant {tenant!r} has {active} unfinished jobs, its limit of {running} "
                f"running plus {queued} waiting: wait for some to finish, or cancel some",
            )
    limit_bytes = quotas.max_storage_bytes
    if limit_bytes is not None and usage.stored_bytes >= limit_bytes:
        raise QuotaExceeded(
            "tenant_storage_limit",
            f"tenant {tenant!r} stores {usage.stored_bytes} bytes of jobs, its limit is "
            f"{limit_bytes}: delete finished jobs to free space",
        )
    limit_usd = quotas.max_spend_usd
    if limit_usd is None:
        return None
    left = limit_usd - usage.spent_usd
    if left <= 0:
        hours = quotas.spend_window_s / 3600
        raise QuotaExceeded(
            "tenant_spend_limit",
            f"tenant {tenant!r} spent ${usage.spent_usd:.2f} in the last {hours:g} h, its "
            f"limit is ${limit_usd:.2f}: wait for older jobs to leave the window",
        )
    return left


async def within_quotas(
    store: Store,
    quotas: TenantQuotas,
    tenant: str,
    idempotency_key: str | None,
    opts: JobOptions,
    submitting: int,
) -> JobOptions:
    """Refuse a submission over the tenant's quotas (``check_quotas``); cap the job's dollar
    budget at what the tenant has left to spend."""
    if idempotency_key is not None and await store.find_job(tenant, idempotency_key):
        return opts  # a repeat: the plane answers with the first job, starting nothing
    usage = await store.tenant_usage(tenant, since=time.time() - quotas.spend_window_s)
    left_usd = check_quotas(quotas, tenant, usage, submitting=submitting)
    if left_usd is not None and (opts.max_cost_usd is None or opts.max_cost_usd > left_usd):
        opts = opts.model_copy(update={"max_cost_usd": left_usd})
    return opts


async def submit_within_quotas(
    store: Store,
    quotas: TenantQuotas,
    submitting: dict[str, int],
    tenant: str,
    idempotency_key: str | None,
    opts: JobOptions,
    submit: Callable[..., Awaitable[str]],
) -> str:
    """``submit(options=...)`` once the tenant's quotas allow it (``within_quotas``), counting
    the tenant's submissions still under way in ``submitting`` so that concurrent ones count
    against the quotas too."""
    others = submitting.get(tenant, 0)
    submitting[tenant] = others + 1
    try:
        opts = await within_quotas(store, quotas, tenant, idempotency_key, opts, others)
        return await submit(options=opts)
    finally:
        left = submitting[tenant] - 1
        if left:
            submitting[tenant] = left
        else:
            del submitting[tenant]
