"""The ZooKeeper-to-KRaft migration: phases, transition rules and guards (`phases`), and what
each phase configures and what each transition does (`steps`). Pure; the hooks wire it."""
