# Managed by openstack-deploy: the dashboard's settings, read after local_settings.py and Debian's snippets in
# this folder (theirs set a local-memory cache, which keeps each daemon process's sessions to itself).
DEBUG = False
SECRET_KEY = 'K3y \'with\' "quotes" \\ and {braces}'
ALLOWED_HOSTS = ['10.0.0.10', 'controller']
WEBROOT = '/'
STATIC_ROOT = '/var/lib/openstack-dashboard/static/'
# The pages' scripts and styles are compressed once, by `manage.py compress` after a change of this file.
COMPRESS_OFFLINE = True
TIME_ZONE = 'UTC'

OPENSTACK_KEYSTONE_URL = 'http://controller:5000/v3/'
OPENSTACK_KEYSTONE_DEFAULT_DOMAIN = "Default"
OPENSTACK_KEYSTONE_DEFAULT_ROLE = 'user'
OPENSTACK_API_VERSIONS = {"identity": 3, "image": 2, "volume": 3}
DEFAULT_SERVICE_REGIONS = {"*": 'RegionOne'}

# Sessions in memcached, shared by every daemon process (and every controller).
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
        "LOCATION": ['controller:11211'],
    },
}

# Self-service networks with routers (the seeds' networking option 2); no HA or distributed routers.
OPENSTACK_NEUTRON_NETWORK = {
    "enable_router": True,
    "enable_quotas": True,
    "enable_ipv6": True,
    "enable_distributed_router": False,
    "enable_ha_router": False,
    "enable_fip_topology_check": True,
}
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
