"""The ZooKeeper-to-KRaft migration: phases, transition rules and guards (`phases`), and what
each phase configures and what each transition does (`steps`), pure; the hooks wire them
(`hooks`, with `preflight` and `revert`) and stop with MigrationError."""


class MigrationError(Exception):
    """A migration hook stopped: what it waited for, or what it refused."""
