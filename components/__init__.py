"""The cloud's building blocks. Floors, each using only those below it:

- cloud.py: the assembly that wires the cloud in install order;
- one module per service (keystone, glance, ...) beside the infrastructure services and the lab;
- shared building blocks: host.py, passwords.py (and later remote files, services, registrations);
- the pure ground: config.py (typed stack config), profiles.py, and providers/ (dynamic providers).
"""
