"""``python -m deployer`` is the ``deployer`` console script."""
from deployer.cli.app import console

if __name__ == "__main__":
    console()
