"""kairn's agents, hooks and PKI: one package, several console scripts."""
