"""The PostgreSQL connection budget: can every client connect at the worst moment?

Two inequalities, checked for every stack before any resource is declared
(stacks/config.py builds the budget from a StackConfig and reports a broken one with its
numbers; this module knows only plain values, so it imports nothing of the stack's):

1. client side — the services connect through the pooler. At the HPA's maximum (or the fixed
   replica count) every pod may hold its whole SQLAlchemy pool plus overflow:
       sum over services of pods x (db_pool_size + db_max_overflow)  <=  pooler max_client_conn
   Checked against one instance's max_client_conn: clients are spread over the instances,
   but during a rollout or after a failure one instance must take them all.
2. server side — what may open connections to PostgreSQL itself:
       pooler instances x default_pool_size  +  direct jobs  +  reserved  <=  max_connections
   The migration and backup jobs connect directly (DDL and pg_dump need a session of their
   own, which transaction pooling does not give); "reserved" is PostgreSQL's superuser slots,
   the metrics exporter and Grafana's read-only datasource.

Without a pooler every service connects directly, and the services join the server side.
RDS Proxy has no client-connection setting, so in rds mode only the server side is checked
(the proxy's share of max_connections is its `max_connections_percent`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

# Connections PostgreSQL must keep for others than the apps.
RESERVED_CONNECTIONS: Mapping[str, int] = {
    "superuser_reserved_connections": 3,  # PostgreSQL's default: operators and the CloudNativePG instance manager
    "metrics exporter": 1,
    "grafana datasource": 5,  # maxOpenConns of the read-only datasource (components/monitoring/grafana.py)
}


@dataclass(frozen=True)
class Client:
    """One workload's most simultaneous connections."""

    name: str
    pods: int  # HPA maximum, else replicas; 1 for a job
    per_pod: int  # pool + overflow; 1 for a job's single session

    @property
    def connections(self) -> int:
        return self.pods * self.per_pod

    def describe(self) -> str:
        return f"{self.name} {self.pods} x {self.per_pod}" if self.pods > 1 or self.per_pod > 1 else self.name


@dataclass(frozen=True)
class Pooler:
    max_client_conn: int | None  # None: no client limit of ours (RDS Proxy)
    server_connections: int


@dataclass(frozen=True)
class Budget:
    pooled: Sequence[Client]  # through the pooler (or directly, without one)
    direct: Sequence[Client]  # always directly (jobs)
    pooler: Pooler | None
    max_connections: int
    reserved: Mapping[str, int] = field(default_factory=lambda: dict(RESERVED_CONNECTIONS))

    @property
    def client_connections(self) -> int:
        return sum(c.connections for c in self.pooled)

    @property
    def server_connections(self) -> int:
        """Everything that may be connected to PostgreSQL at once, reserved slots included."""
        via = self.pooler.server_connections if self.pooler is not None else self.client_connections
        return via + sum(c.connections for c in self.direct) + sum(self.reserved.values())

    def problems(self) -> list[tuple[str, str]]:
        """(config key, message) for each inequality that does not hold."""
        found: list[tuple[str, str]] = []
        clients = " + ".join(c.describe() for c in self.pooled)
        if self.pooler is not None and self.pooler.max_client_conn is not None:
            if self.client_connections > self.pooler.max_client_conn:
                found.append(("postgres.pooler.max_client_conn",
                              f"worst-case client connections {self.client_connections} ({clients}; pods at the "
                              f"HPA maximum x (app.db_pool_size + app.db_max_overflow)) exceed max_client_conn "
                              f"{self.pooler.max_client_conn}; raise it to at least {self.client_connections} or "
                              f"lower the pool sizes or services' max_replicas"))
        if self.server_connections > self.max_connections:
            via = (f"pooler {self.pooler.server_connections} (instances x default_pool_size)"
                   if self.pooler is not None else f"services {self.client_connections} ({clients}) without a pooler")
            parts = [via, *(f"{c.name} {c.connections}" for c in self.direct),
                     *(f"{k} {v}" for k, v in self.reserved.items())]
            key = "postgres.pooler.default_pool_size" if self.pooler is not None else "postgres.pooler.enabled"
            fix = ("lower postgres.pooler.default_pool_size or instances" if self.pooler is not None
                   else "set postgres.pooler.enabled: true")
            found.append((key, f"PostgreSQL server connections {self.server_connections} ({' + '.join(parts)}) "
                               f"exceed max_connections {self.max_connections}; {fix}"))
        return found
