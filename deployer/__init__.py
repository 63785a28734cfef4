"""deployer: workers.yaml -> validate -> plan -> apply (one upload per changed script) -> state."""

__version__ = "0.1.0"
