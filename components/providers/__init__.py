"""Pulumi dynamic providers: the resource kinds this project implements itself, each with a real `read`."""
