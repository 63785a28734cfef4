"""The Cloudflare v4 API client: one object holding the retrying transport (``transport``) and
every product's endpoints (``workers``, ``kv``, ``r2``, ``d1``, ``queues``, ``versions``, ``assets``, ...),
shared by the apply's worker threads.

Reference: shared/reference/cloudflare-api.md.
"""
from __future__ import annotations

from deployer.cloudflare.assets import AssetsApi
from deployer.cloudflare.credentials import Credentials, credentials_from_env
from deployer.cloudflare.d1 import D1Api
from deployer.cloudflare.domains import DomainsApi
from deployer.cloudflare.kv import KvApi
from deployer.cloudflare.queue_consumers import QueueConsumersApi
from deployer.cloudflare.queues import QueuesApi
from deployer.cloudflare.r2 import R2Api
from deployer.cloudflare.routes import RoutesApi
from deployer.cloudflare.schedules import SchedulesApi
from deployer.cloudflare.subdomain import SubdomainApi
from deployer.cloudflare.transport import DEFAULT_BASE_URL
from deployer.cloudflare.versions import VersionsApi
from deployer.cloudflare.workers import WorkersApi
from deployer.cloudflare.zones import ZonesApi

__all__ = ["DEFAULT_BASE_URL", "CloudflareClient", "Credentials", "credentials_from_env"]


class CloudflareClient(WorkersApi, KvApi, R2Api, D1Api, QueuesApi, ZonesApi, RoutesApi, DomainsApi, SchedulesApi,
                       SubdomainApi, QueueConsumersApi, VersionsApi, AssetsApi):
    """A thread-safe client shared by up to ``pool_size`` worker threads.

    Requests made through one client share a request budget (``rate_limit`` requests per
    window, Cloudflare's 1200 per 300 s by default) and a pause: a 429 with ``Retry-After``
    seen by any thread holds every thread until then. A new product is one more module of
    endpoints mixed in here.
    """
