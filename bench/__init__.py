"""Benchmarks, each a script: ``python bench/NAME.py`` (see each module's docstring).

A package only so that type checking names its modules ``bench.*``: as top-level
modules, ``bench/newtlink.py`` would stand for the ``newtlink`` package that
``newtlab.agent`` imports when it is shipped to a server.
"""
