"""Root conftest: the project's pytest plugin is loaded through its entry point.

Nothing else belongs here; fixtures live in ``obshell_contract.plugin`` (for the
contract suite) and ``tests/conftest.py`` (for the project's own tests).
"""
