"""Typed messages between services: what every topic and shared Redis record carries.

One module per topic; every service imports these types, none declares its own copy.
"""
