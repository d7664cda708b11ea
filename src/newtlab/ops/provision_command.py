"""The command ``provision`` runs per device by default (apart, so the CLI loads it cheaply)."""

DEFAULT_COMMAND = "newtron provision -S {spec_dir} -d {device} -x"
