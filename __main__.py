"""Entry point: load the typed stack config, build the cloud, export what operators need."""

import pulumi

from components import config
from components.cloud import Cloud

cfg = config.load()  # raises a one-line ConfigError before any resource is registered
cloud = Cloud("cloud", cfg)

pulumi.export("hosts", cloud.hosts_summary)
