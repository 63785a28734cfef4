"""``python -m deployer`` is the ``deployer`` console script."""
from deployer.cli import main

if __name__ == "__main__":
    main()
