"""The ``ctis`` command line: a thin front end over the services."""
