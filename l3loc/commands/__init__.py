"""The subcommands of the ``l3loc`` command, one module each.

Every module has a docstring (the command's help, with examples), ``add_arguments(parser)`` and
``run(args) -> exit status``. ``l3loc.cli`` builds ``l3loc <command>`` from them and
``tools/<tool>.py`` runs the same parser and function, so the two never disagree.
"""
