#!/bin/sh
# Served at /config: what a fuller OS would fetch and run after boot.
echo "{{ .Metadata.greeting }} ({{ .Group }}, {{ .MAC }})"
