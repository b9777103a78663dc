"""Running landmark on a Ray cluster: launch configs, the local multi-node script, Grafana."""
