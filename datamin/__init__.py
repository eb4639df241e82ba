"""datamin: a privacy-minimising event pipeline. Shared parts: configuration, errors, the command
line, the local broker."""
