"""The content engine's services: the one place for their names, ports and roles (seed 001)."""

from __future__ import annotations

from dataclasses import dataclass

PROJECT = "aquascene"
CONFIG_NAMESPACE = "aquascene"
ENVIRONMENTS = ("dev", "staging", "prod")


@dataclass(frozen=True)
class ContentService:
    name: str  # Kubernetes name and SERVICE_ROLE of the content-engine image
    port: int
    redis_db: int  # seed 001's per-service Redis DB allocation
    public_internet: bool  # calls out to the internet (AI APIs, scraped sites, SMTP, the Graph API)
    description: str


ADMIN_DASHBOARD = "admin-dashboard"  # the service people sign in to (stacks/admin.py)
CONTENT_SERVICES: tuple[ContentService, ...] = (
    ContentService("content-manager", 8000, 0, False, "content CRUD, assets and search"),
    ContentService("ai-processor", 8001, 1, True, "AI content generation"),
    ContentService("web-scraper", 8002, 2, True, "fetches and extracts source pages"),
    ContentService("distributor", 8003, 3, True, "newsletter delivery over SMTP, Instagram posts over HTTPS"),
    ContentService("subscriber-manager", 8004, 4, True, "subscriptions, confirmation mail"),
    # Seed 001's sixth service. It runs the engine's service layer in-process (generation, scraping,
    # newsletters: hence the internet) and reads the five others' /health. Seed 001 allocates Redis
    # DBs 0-4 to the five and 5 to the system; 6 is the first free one.
    ContentService(ADMIN_DASHBOARD, 3000, 6, True, "people's dashboard: review, newsletters, users, audit"),
)
SERVICE_NAMES = tuple(s.name for s in CONTENT_SERVICES)
API_SERVICES = tuple(s for s in CONTENT_SERVICES if s.name != ADMIN_DASHBOARD)  # the public API's five roles
SYSTEM_REDIS_DB = 5  # seed 001: shared/system keys


def namespace_for(environment: str) -> str:
    return f"{PROJECT}-{environment}"


def monitoring_namespace_for(environment: str) -> str:
    """Prometheus, Alertmanager, Grafana and Loki live beside, not inside, the app namespace."""
    return f"{PROJECT}-{environment}-monitoring"


def node_agents_namespace_for(environment: str) -> str:
    """The node-level agents (log shipper, node exporter): the only namespace below `restricted`."""
    return f"{PROJECT}-{environment}-node-agents"


def gateway_namespace_for(environment: str) -> str:
    """Where the public gateway's proxies run: the only way in from outside."""
    return f"{PROJECT}-{environment}-gateway"


def stack_namespaces_for(environment: str) -> list[str]:
    """Every namespace a stack of this environment may create."""
    return [namespace_for(environment), monitoring_namespace_for(environment),
            node_agents_namespace_for(environment), gateway_namespace_for(environment)]
