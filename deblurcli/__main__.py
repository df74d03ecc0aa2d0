"""``python -m deblurcli``: the same as the ``deblur`` command."""

from deblurcli.cli.main import run

if __name__ == "__main__":
    run()
