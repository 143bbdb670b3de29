"""The command line: one module per command group, each only parsing and rendering.

The only package that imports click."""
