"""Entry point: load the typed stack config, build the cloud, export what operators need."""

import pulumi

from components import config, sdklog, settle
from components.cloud import Cloud

settle.install()  # the SDK's wait at the end of the run, without its quadratic cost (components/settle.py)
sdklog.install()  # the SDK's debug lines kept in the program unless OSD_SDK_DEBUG=1 (components/sdklog.py)

cfg = config.load_or_exit()  # a mistake ends the run with one line naming the key, before any resource
cloud = Cloud("cloud", cfg)

pulumi.export("hosts", cloud.hosts_summary)
pulumi.export("auth_url", cloud.keystone.auth_url)
pulumi.export("dashboard_url", cloud.horizon.url)
pulumi.export("admin_openrc", cloud.keystone.admin_openrc)  # secret
pulumi.export("clouds_yaml", cloud.keystone.clouds_yaml)  # secret; cloud name `admin`
if cloud.post_deploy is not None:  # the key of the servers launched with the `openstack-deploy` keypair
    pulumi.export("server_private_key", cloud.post_deploy.server_private_key)  # secret
