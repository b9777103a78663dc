"""Job spec models, machine settings and job-file loading."""
