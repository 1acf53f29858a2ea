"""ma-ray: Uber's Michelangelo ML platform rebuilt on Ray."""

import logging

from ma_ray.config import Settings, SettingsError, load_settings
from ma_ray.datagen import RideshareConfig, RideshareGenerator

# A library logs, the application decides where: no output unless a handler is configured.
logging.getLogger("ma_ray").addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "RideshareConfig",
    "RideshareGenerator",
    "Settings",
    "SettingsError",
    "__version__",
    "load_settings",
]
