"""Real servers for the production backends (Redis, Cassandra, Kafka), started and stopped by the project."""

from ma_ray.services.debian import install_debian_packages
from ma_ray.services.errors import ServiceError
from ma_ray.services.launcher import ALL_SERVICES, ServiceLauncher, ServiceStatus, build_servers

__all__ = [
    "ALL_SERVICES",
    "ServiceError",
    "ServiceLauncher",
    "ServiceStatus",
    "build_servers",
    "install_debian_packages",
]
