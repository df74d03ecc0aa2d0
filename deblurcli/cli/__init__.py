"""The ``deblur`` command line: thin commands over the library."""
