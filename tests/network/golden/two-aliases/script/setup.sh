#!/bin/sh
# Written by respin from two-aliases.toml: edit that model, not this file.
# Policy routing: each alias address leaves through its own gateway and table.
set -eu

ip link set dev eth0 up
ip -4 address replace 192.0.2.10/24 dev eth0
ip -4 address replace 198.51.100.10/24 dev eth0 label eth0:1
ip -4 address replace 203.0.113.10/24 dev eth0 label eth0:isp2
ip -4 route replace default via 192.0.2.1 dev eth0

# eth0:1: table 1 (test)
ip -4 route replace table 1 192.0.2.0/24 dev eth0 scope link src 192.0.2.10
ip -4 route replace table 1 198.51.100.0/24 dev eth0 scope link src 198.51.100.10
ip -4 route replace table 1 203.0.113.0/24 dev eth0 scope link src 203.0.113.10
ip -4 route replace table 1 default via 198.51.100.1 dev eth0
[ -n "$(ip -4 rule show from 198.51.100.10 lookup 1 priority 1000)" ] || ip -4 rule add from 198.51.100.10 lookup 1 priority 1000
[ -n "$(ip -4 rule show to 198.51.100.10 lookup 1 priority 1001)" ] || ip -4 rule add to 198.51.100.10 lookup 1 priority 1001

# eth0:isp2: table 200 (isp2)
ip -4 route replace table 200 192.0.2.0/24 dev eth0 scope link src 192.0.2.10
ip -4 route replace table 200 198.51.100.0/24 dev eth0 scope link src 198.51.100.10
ip -4 route replace table 200 203.0.113.0/24 dev eth0 scope link src 203.0.113.10
ip -4 route replace table 200 default via 203.0.113.1 dev eth0
[ -n "$(ip -4 rule show from 203.0.113.10 lookup 200 priority 500)" ] || ip -4 rule add from 203.0.113.10 lookup 200 priority 500
[ -n "$(ip -4 rule show to 203.0.113.10 lookup 200 priority 501)" ] || ip -4 rule add to 203.0.113.10 lookup 200 priority 501
