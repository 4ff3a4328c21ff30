# Managed by openstack-deploy: the dashboard's settings are in local_settings.d/_9999_openstack_deploy.py, which
# Django reads after Debian's own snippets there. (Debian's example, copied here when this file is missing, reads
# a secret key from a file the dashboard's daemons could not create.)
