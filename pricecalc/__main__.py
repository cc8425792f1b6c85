"""``python -m pricecalc`` runs the command line (the same as the ``pricecalc`` script)."""

from pricecalc.cli import cli

if __name__ == "__main__":
    cli(prog_name="pricecalc")
