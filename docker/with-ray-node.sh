#!/bin/sh
# Run a command (the sweep driver) inside the Ray cluster at $RAY_ADDRESS.
# A Ray driver must sit on a node of the cluster (ray.init looks for a local raylet), so this
# container joins as a node that offers no CPUs or GPUs, so no trial is placed here, then
# replaces itself with the command.
#   with-ray-node sweep run examples/babyllama2-345m.yaml --address ray-head:6379
set -eu
: "${RAY_ADDRESS:?set RAY_ADDRESS to the Ray head, e.g. ray-head:6379}"
ray start --address="$RAY_ADDRESS" --num-cpus=0 --num-gpus=0 --disable-usage-stats
exec "$@"
