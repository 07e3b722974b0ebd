#!/bin/sh
# A well-behaved headers helper (MCP headersHelper, otlpHeadersHelper): one flat JSON object.
printf '%s\n' '{"Authorization": "Bearer tok-hdr-7c6b5a4d3e2f1a0b", "X-Org-Route": "prod"}'
