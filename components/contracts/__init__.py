"""Formats shared by the program and what reads its output: standard library only.

The policy pack imports these from its own venv (no pydantic, another Pulumi SDK), and the
preview-fixture trimmer and the review summary parse with them, so each format is written and
parsed in one module.
"""
