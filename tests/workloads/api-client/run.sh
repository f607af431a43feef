#!/bin/sh
# An API client: syncs an inventory with a remote JSON API through corral's proxy (the only way out
# of the sandbox). The API's address is in api.json; the proxy comes from the environment that
# corral sets (HTTP_PROXY), which urllib honours like any other client.
set -eu
python3 inventory_sync.py api.json
