"""Shared building blocks every service is made of: packages, config files, services, a service's database,
its Keystone registration. Services use these with a few lines of data and never import each other."""
